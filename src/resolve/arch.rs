//! The architectures Debian ships with glibc, as data: ELF identity, Debian and multiarch names, the loader's path, its `ld.so.cache` flags, hwcaps levels, `$PLATFORM`, and the qemu-user emulator that runs it.
//!
//! One table, read by the loader emulation (`resolve/ldso.rs`), the cache writer,
//! the smoke checks (which emulator runs a foreign tree) and the exports. A
//! target is always named by the ELF headers of the objects (and the
//! sysroot's directories), never by the machine running the tool.
//!
//! The cache flags are glibc's `FLAG_*` values (`sysdeps/generic/ldconfig.h`):
//! the low byte says the library's libc (`FLAG_ELF` 1, `FLAG_ELF_LIBC6` 3),
//! the high byte its ABI (`FLAG_X8664_LIB64` 0x0300, `FLAG_S390_LIB64`
//! 0x0400, `FLAG_POWERPC_LIB64` 0x0500, `FLAG_ARM_LIBHF` 0x0900,
//! `FLAG_AARCH64_LIB64` 0x0a00, `FLAG_RISCV_FLOAT_ABI_DOUBLE` 0x1000). What
//! each loader accepts is its `_dl_cache_check_flags` (`sysdeps/unix/sysv/
//! linux/<arch>/dl-cache.h`, the generic one in `sysdeps/generic/dl-cache.h`).

use goblin::elf::header::{
    ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, EM_386, EM_AARCH64, EM_ARM, EM_PPC64,
    EM_RISCV, EM_S390, EM_X86_64,
};

use crate::resolve::elf::Ident;

/// One architecture as glibc's loader for it behaves on Debian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    /// Debian's name (`dpkg --print-architecture`).
    pub debian: &'static str,
    /// `EI_CLASS`, `EI_DATA` and `e_machine` of its objects.
    pub class: u8,
    pub data: u8,
    pub machine: u16,
    /// The multiarch tuple, the name of its library directories.
    pub triplet: &'static str,
    /// `PT_INTERP` of its programs: the loader.
    pub interp: &'static str,
    /// Where upstream glibc puts libraries without multiarch (`$LIB`
    /// and the trusted directories of a non-Debian sysroot).
    pub upstream_lib: &'static str,
    /// The flags ldconfig gives this architecture's libc6 libraries.
    pub cache_flags: i32,
    /// Every flags value `_dl_cache_check_flags` accepts.
    pub cache_accepts: &'static [i32],
    /// `AT_PLATFORM` of its baseline CPU under Linux: the kernel sets it
    /// from the CPU, so a tree made elsewhere can only assume one
    /// (`None`: the kernel passes none, and `$PLATFORM` stays unexpanded).
    pub platform: Option<&'static str>,
    /// Legacy hwcaps names glibc 2.36 searches (`HWCAP_IMPORTANT` bits the
    /// baseline CPU has), in the loader's order.
    pub legacy_hwcaps: &'static [&'static str],
    /// Its `glibc-hwcaps` subdirectory names, best first
    /// (`sysdeps/<arch>/.../dl-hwcaps-subdirs.c`).
    pub glibc_hwcaps: &'static [&'static str],
    /// `qemu-<name>-static` runs its programs on another machine.
    pub qemu: &'static str,
}

/// The `glibc-hwcaps` levels of x86-64 (`sysdeps/x86_64/dl-hwcaps-subdirs.c`).
pub const X86_64_HWCAPS: &[&str] = &["x86-64-v4", "x86-64-v3", "x86-64-v2"];

/// Every architecture this tool knows, in Debian's alphabetical order.
pub const ALL: &[Arch] = &[
    Arch {
        debian: "amd64",
        class: ELFCLASS64,
        data: ELFDATA2LSB,
        machine: EM_X86_64,
        triplet: "x86_64-linux-gnu",
        interp: "/lib64/ld-linux-x86-64.so.2",
        upstream_lib: "lib64",
        cache_flags: 0x0303,
        cache_accepts: &[0x0303],
        platform: Some("x86_64"),
        legacy_hwcaps: &["x86_64"],
        glibc_hwcaps: X86_64_HWCAPS,
        qemu: "x86_64",
    },
    Arch {
        debian: "arm64",
        class: ELFCLASS64,
        data: ELFDATA2LSB,
        machine: EM_AARCH64,
        triplet: "aarch64-linux-gnu",
        interp: "/lib/ld-linux-aarch64.so.1",
        upstream_lib: "lib64",
        cache_flags: 0x0a03,
        cache_accepts: &[0x0a03],
        platform: Some("aarch64"),
        // `HWCAP_IMPORTANT` is `HWCAP_ATOMICS` (`sysdeps/unix/sysv/linux/
        // aarch64/dl-procinfo.h`), which every ARMv8.1 CPU has.
        legacy_hwcaps: &["atomics"],
        glibc_hwcaps: &[],
        qemu: "aarch64",
    },
    Arch {
        debian: "armhf",
        class: ELFCLASS32,
        data: ELFDATA2LSB,
        machine: EM_ARM,
        triplet: "arm-linux-gnueabihf",
        interp: "/lib/ld-linux-armhf.so.3",
        upstream_lib: "lib",
        // Unmarked libc6 entries are accepted too, from before the ABI mark.
        cache_flags: 0x0903,
        cache_accepts: &[0x0903, 0x0003],
        platform: Some("v7l"),
        // `HWCAP_IMPORTANT` is `HWCAP_ARM_VFP | HWCAP_ARM_NEON`.
        legacy_hwcaps: &["vfp", "neon"],
        glibc_hwcaps: &[],
        qemu: "arm",
    },
    Arch {
        debian: "i386",
        class: ELFCLASS32,
        data: ELFDATA2LSB,
        machine: EM_386,
        triplet: "i386-linux-gnu",
        interp: "/lib/ld-linux.so.2",
        upstream_lib: "lib",
        cache_flags: 0x0003,
        cache_accepts: &[0x0001, 0x0003],
        platform: Some("i686"),
        // `HWCAP_IMPORTANT` is `HWCAP_X86_SSE2 | HWCAP_X86_AVX512_1` on i386.
        legacy_hwcaps: &["sse2"],
        glibc_hwcaps: &[],
        qemu: "i386",
    },
    Arch {
        debian: "ppc64el",
        class: ELFCLASS64,
        data: ELFDATA2LSB,
        machine: EM_PPC64,
        triplet: "powerpc64le-linux-gnu",
        interp: "/lib64/ld64.so.2",
        upstream_lib: "lib64",
        cache_flags: 0x0503,
        cache_accepts: &[0x0503],
        platform: Some("power8"),
        // `HWCAP_IMPORTANT` is `PPC_FEATURE_HAS_ALTIVEC | PPC_FEATURE_HAS_DFP`.
        legacy_hwcaps: &["altivec", "dfp"],
        glibc_hwcaps: &["power10", "power9"],
        qemu: "ppc64le",
    },
    Arch {
        debian: "riscv64",
        class: ELFCLASS64,
        data: ELFDATA2LSB,
        machine: EM_RISCV,
        triplet: "riscv64-linux-gnu",
        interp: "/lib/ld-linux-riscv64-lp64d.so.1",
        upstream_lib: "lib64/lp64d",
        cache_flags: 0x1003,
        cache_accepts: &[0x1003],
        platform: None,
        legacy_hwcaps: &[],
        glibc_hwcaps: &[],
        qemu: "riscv64",
    },
    Arch {
        debian: "s390x",
        class: ELFCLASS64,
        data: ELFDATA2MSB,
        machine: EM_S390,
        triplet: "s390x-linux-gnu",
        interp: "/lib/ld64.so.1",
        upstream_lib: "lib64",
        cache_flags: 0x0403,
        cache_accepts: &[0x0403],
        platform: Some("z196"),
        legacy_hwcaps: &[],
        glibc_hwcaps: &["z16", "z15", "z14", "z13"],
        qemu: "s390x",
    },
];

impl Arch {
    /// The architecture of objects with this ELF identity.
    pub fn of_ident(ident: &Ident) -> Option<&'static Arch> {
        ALL.iter()
            .find(|a| a.class == ident.class && a.data == ident.data && a.machine == ident.machine)
    }

    /// The architecture Debian names `name`.
    pub fn by_debian_name(name: &str) -> Option<&'static Arch> {
        ALL.iter().find(|a| a.debian == name)
    }

    /// The ELF identity of its objects.
    pub fn ident(&self) -> Ident {
        Ident { class: self.class, data: self.data, machine: self.machine }
    }

    /// The architecture a sysroot is for, by the loaders it holds: the
    /// running machine's when it has that one too (a multiarch sysroot),
    /// else the first of the table it has.
    pub fn of_sysroot(sysroot: &crate::resolve::sysroot::Sysroot) -> Option<&'static Arch> {
        let has =
            |a: &&Arch| sysroot.locate(std::path::Path::new(a.interp)).is_ok_and(|l| !l.is_dir);
        Arch::host().filter(has).or_else(|| ALL.iter().find(has))
    }

    /// The architecture of the machine running this tool.
    pub fn host() -> Option<&'static Arch> {
        let (class, data) = (
            if cfg!(target_pointer_width = "64") { ELFCLASS64 } else { ELFCLASS32 },
            if cfg!(target_endian = "big") { ELFDATA2MSB } else { ELFDATA2LSB },
        );
        let machine = match std::env::consts::ARCH {
            "x86_64" => EM_X86_64,
            "x86" => EM_386,
            "aarch64" => EM_AARCH64,
            "arm" => EM_ARM,
            "powerpc64" => EM_PPC64,
            "riscv64" => EM_RISCV,
            "s390x" => EM_S390,
            _ => return None,
        };
        Arch::of_ident(&Ident { class, data, machine })
    }

    /// Whether the machine running this tool runs these programs itself:
    /// its own architecture, or the 32-bit one its kernel also runs
    /// (i386 on amd64, armhf on arm64; the latter only where the CPU has
    /// AArch32, which is not known here, so it is not assumed).
    pub fn runs_natively(&self) -> bool {
        match Arch::host() {
            Some(host) => host == self || (host.debian == "amd64" && self.debian == "i386"),
            None => false,
        }
    }

    /// The cache file's byte order for this loader: ldconfig writes the
    /// cache in the byte order of the machine it runs for.
    pub fn big_endian(&self) -> bool {
        self.data == ELFDATA2MSB
    }

    /// The emulator's file name: `qemu-aarch64-static`.
    pub fn qemu_static(&self) -> String {
        format!("qemu-{}-static", self.qemu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_is_found_by_its_ident_and_its_name() {
        for arch in ALL {
            assert_eq!(Arch::of_ident(&arch.ident()), Some(arch));
            assert_eq!(Arch::by_debian_name(arch.debian), Some(arch));
            assert!(arch.cache_accepts.contains(&arch.cache_flags), "{}", arch.debian);
        }
        assert_eq!(Arch::by_debian_name("s390x").map(Arch::big_endian), Some(true));
        assert_eq!(Arch::by_debian_name("ppc64").map(|a| a.debian), None);
    }

    #[test]
    fn the_host_runs_its_own_programs() {
        let host = Arch::host().expect("the tests run on an architecture of the table");
        assert!(host.runs_natively());
        let foreign = ALL.iter().filter(|a| !a.runs_natively()).count();
        assert!(foreign >= ALL.len() - 2);
    }
}
