//! Running another architecture's programs in a sandbox: a qemu-user emulator registered with binfmt_misc in the sandbox's own instance, so every `exec` inside, not only the first, goes through it.
//!
//! Since Linux 6.7 a user namespace can mount a binfmt_misc instance of its
//! own; its registrations serve the processes of that namespace and of the
//! namespaces nested in it, and nothing outside (the host's instance, if it
//! has one, is neither read nor changed). PID 1 mounts it on the new
//! `/proc/sys/fs/binfmt_misc`, before `pivot_root` so that the emulator's
//! host path can be opened, and registers one entry per foreign
//! architecture with the `F` flag: the kernel opens the emulator then and
//! keeps it open, so it runs after `pivot_root` although the tree does not
//! hold it (`binfmt_misc` in the kernel's admin guide). With Debian's
//! `<arch>-binfmt-P` name the `P` flag is set too, and programs get their
//! own `argv[0]` (qemu knows from that name to expect it). On an older
//! kernel the mount is refused, and the host's registration, when there is
//! one, is what serves.

pub(crate) mod native;

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

use super::{SAFE, Step, StepLog};
use crate::resolve::arch::Arch;
use crate::resolve::sysroot::Sysroot;

/// Where Debian's qemu-user-static puts the names that ask for the `P`
/// flag (symlinks to the emulators).
const BINFMT_P_DIR: &str = "/usr/libexec/qemu-binfmt";

/// The emulator of one architecture on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emulator {
    pub arch: &'static Arch,
    /// The host path registered.
    pub path: PathBuf,
    /// Whether `argv[0]` is passed on (the `P` flag).
    pub preserve_argv0: bool,
}

/// An architecture whose emulator this machine lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingEmulator {
    pub arch: &'static Arch,
    /// Where it was looked for.
    pub path: PathBuf,
}

impl std::fmt::Display for MissingEmulator {
    /// The one line saying what to install.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "skipped: {} programs need `{}` on this machine: install Debian's qemu-user-static",
            self.arch.debian,
            self.path.display()
        )
    }
}

/// The emulator of `arch`, or where it is missing from.
pub fn emulator(arch: &'static Arch) -> Result<Emulator, MissingEmulator> {
    let with_p = Path::new(BINFMT_P_DIR).join(format!("{}-binfmt-P", arch.qemu));
    if with_p.is_file() {
        return Ok(Emulator { arch, path: with_p, preserve_argv0: true });
    }
    let plain = Path::new("/usr/bin").join(arch.qemu_static());
    if plain.is_file() {
        return Ok(Emulator { arch, path: plain, preserve_argv0: false });
    }
    Err(MissingEmulator { arch, path: plain })
}

/// The architectures `root` holds programs of that this machine does not
/// run itself: those whose loader it has.
pub fn foreign_arches(root: &Path) -> Vec<&'static Arch> {
    let sysroot = Sysroot::new(root);
    crate::resolve::arch::ALL
        .iter()
        .filter(|a| !a.runs_natively())
        .filter(|a| sysroot.locate(Path::new(a.interp)).is_ok_and(|l| !l.is_dir))
        .collect()
}

/// The line saying what to install, when `root` holds programs of an
/// architecture whose emulator this machine lacks.
pub fn missing_emulator(root: &Path) -> Option<String> {
    foreign_arches(root).into_iter().find_map(|a| emulator(a).err()).map(|m| m.to_string())
}

/// The registrations of a sandbox, as C strings prepared before the fork.
#[derive(Debug, Default)]
pub struct Prepared {
    /// `proc/sys/fs/binfmt_misc` under the root's mount point.
    mount_dir: Option<CString>,
    register: Option<CString>,
    /// One `:name:M::magic:mask:interpreter:flags` line per architecture.
    lines: Vec<Vec<u8>>,
}

/// What `root` needs registered, mounted at `mount_dir`.
pub fn prepare(root: &Path, mount_dir: &Path) -> io::Result<Prepared> {
    let emulators: Vec<Emulator> =
        foreign_arches(root).into_iter().filter_map(|a| emulator(a).ok()).collect();
    if emulators.is_empty() {
        return Ok(Prepared::default());
    }
    let c = |p: &Path| {
        use std::os::unix::ffi::OsStrExt;
        CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
    };
    Ok(Prepared {
        mount_dir: Some(c(mount_dir)?),
        register: Some(c(&mount_dir.join("register"))?),
        lines: emulators.iter().map(registration).collect(),
    })
}

/// The registration of `emulator` for the ELF executables (`ET_EXEC` and
/// `ET_DYN`: the type's low bit is masked) of its architecture: the
/// identity bytes with any OS ABI, then type and machine in the
/// architecture's byte order, as Debian's `/usr/lib/binfmt.d/` files say.
pub fn registration(emulator: &Emulator) -> Vec<u8> {
    let arch = emulator.arch;
    let mut magic = vec![0x7f, b'E', b'L', b'F', arch.class, arch.data, 1, 0];
    let mut mask = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
    magic.extend([0; 8]);
    mask.extend([0xff; 8]);
    let (e_type, machine) = if arch.big_endian() {
        (2u16.to_be_bytes(), arch.machine.to_be_bytes())
    } else {
        (2u16.to_le_bytes(), arch.machine.to_le_bytes())
    };
    magic.extend(e_type);
    magic.extend(machine);
    mask.extend(if arch.big_endian() { [0xff, 0xfe] } else { [0xfe, 0xff] });
    mask.extend([0xff, 0xff]);
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("\\x{b:02x}")).collect::<String>();
    let flags = if emulator.preserve_argv0 { "PF" } else { "F" };
    format!(
        ":rootfs-qemu-{}:M::{}:{}:{}:{flags}",
        arch.qemu,
        hex(&magic),
        hex(&mask),
        emulator.path.display()
    )
    .into_bytes()
}

/// In PID 1, before `pivot_root`: mounts the namespace's own binfmt_misc
/// and registers every emulator, then makes the instance read-only. A
/// kernel that refuses the mount (before 6.7) leaves the host's
/// registrations to serve.
pub(super) fn register(prepared: &Prepared, log: &StepLog) -> io::Result<()> {
    let (Some(dir), Some(register)) = (&prepared.mount_dir, &prepared.register) else {
        return Ok(());
    };
    log.set(Step::RegisteringEmulators);
    let flags = SAFE | MountFlags::NOEXEC;
    match rustix::mount::mount(c"binfmt_misc", dir.as_c_str(), c"binfmt_misc", flags, None) {
        Err(rustix::io::Errno::PERM | rustix::io::Errno::NODEV | rustix::io::Errno::NOENT) => {
            return Ok(());
        }
        other => other?,
    }
    let fd = rustix::fs::open(
        register.as_c_str(),
        rustix::fs::OFlags::WRONLY,
        rustix::fs::Mode::empty(),
    )?;
    for line in &prepared.lines {
        rustix::io::write(&fd, line)?;
    }
    drop(fd);
    super::pid1::mount_setattr(rustix::fs::CWD, dir, 0, libc::MOUNT_ATTR_RDONLY, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_match_debians_for_aarch64_and_s390x() {
        let arm64 = Arch::by_debian_name("arm64").unwrap();
        let emulator = Emulator {
            arch: arm64,
            path: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".into(),
            preserve_argv0: true,
        };
        // `/usr/lib/binfmt.d/qemu-aarch64.conf` of Debian 12, renamed.
        let debian = r":rootfs-qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PF";
        assert_eq!(String::from_utf8(registration(&emulator)).unwrap(), debian);
        let s390x = Arch::by_debian_name("s390x").unwrap();
        let emulator = Emulator {
            arch: s390x,
            path: "/usr/bin/qemu-s390x-static".into(),
            preserve_argv0: false,
        };
        let line = String::from_utf8(registration(&emulator)).unwrap();
        assert!(line.contains(r"\x02\x02\x01\x00"), "{line}");
        assert!(line.contains(r"\x00\x02\x00\x16:"), "{line}");
        assert!(line.contains(r"\xff\xfe\xff\xff:"), "{line}");
        assert!(line.ends_with(":/usr/bin/qemu-s390x-static:F"), "{line}");
    }
}
