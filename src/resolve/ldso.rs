//! The dynamic loader's fixed configuration for one target: trusted directories, `$LIB`, `$PLATFORM`, hwcaps subdirectories, the cache.
//!
//! glibc compiles these into `ld.so` (`SYSTEM_DIRS`, `DL_DST_LIB`) or takes
//! them from the CPU at start-up (`AT_PLATFORM`, the hwcaps). We derive them
//! from the target's architecture (`resolve/arch.rs`, named by the ELF headers), the
//! sysroot's layout and, when the target is the machine running the tool, its
//! CPU (the machine that will run the rootfs). For another architecture the
//! CPU is not known: its baseline is assumed, no `glibc-hwcaps` level is
//! searched, and the plan keeps every level's build anyway
//! (`build/plan/cpu_variants.rs`). `ld.so --help` of each architecture's loader
//! (under qemu-user for a foreign one) prints the same lists.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use goblin::elf::header::{ELFCLASS64, EM_386};

use crate::resolve::arch::Arch;
use crate::resolve::elf::Ident;
use crate::resolve::elf::IsaLevel;
use crate::resolve::ldcache::LdCache;
use crate::resolve::sysroot::Sysroot;

/// What the loader of one target (class and machine) searches, and how.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// The trusted directories searched last, in order (`SYSTEM_DIRS`).
    pub default_dirs: Vec<PathBuf>,
    /// Expansion of `$LIB`.
    pub lib: String,
    /// Expansion of `$PLATFORM` (`AT_PLATFORM`, possibly refined by glibc);
    /// `None` where the kernel passes none and the loader leaves the
    /// path element out.
    pub platform: Option<String>,
    /// Names of the usable `glibc-hwcaps` subdirectories, best first.
    pub glibc_hwcaps: Vec<String>,
    /// Every subdirectory tried inside a search directory, in order,
    /// ending with the directory itself (`""`).
    pub subdirs: Vec<String>,
    /// The `flags` of this target's ld.so.cache entries, as ldconfig writes
    /// them (`_DL_CACHE_DEFAULT_ID`).
    pub cache_flags: i32,
    /// Every `flags` value the loader takes (`_dl_cache_check_flags`).
    pub cache_accepts: Vec<i32>,
    /// The byte order of the caches this loader reads.
    pub cache_big_endian: bool,
}

impl LoaderConfig {
    /// Whether the loader uses a cache entry with these flags
    /// (`_dl_cache_check_flags`).
    pub fn accepts_cache_flags(&self, flags: i32) -> bool {
        self.cache_accepts.contains(&flags)
    }
}

impl LoaderConfig {
    /// With `cpu`, the loader of a CPU of at most that x86-64 level: the
    /// `glibc-hwcaps` subdirectories above it are not searched, and the
    /// refined platforms and legacy hwcaps that need more are dropped.
    pub fn for_target(sysroot: &Sysroot, ident: &Ident, cpu_cap: Option<IsaLevel>) -> LoaderConfig {
        let arch = Arch::of_ident(ident);
        let (default_dirs, lib) = trusted_dirs(sysroot, ident, arch);
        let (cache_flags, cache_accepts) = match arch {
            Some(a) => (a.cache_flags, a.cache_accepts.to_vec()),
            // The generic loader (`sysdeps/generic/dl-cache.h`).
            None => {
                (crate::resolve::ldcache::FLAGS_LIBC6, vec![crate::resolve::ldcache::FLAG_ELF, 3])
            }
        };
        let mut cpu = match arch {
            Some(a) if a.debian == "amd64" && Arch::host() == Some(a) => x86_64_cpu(),
            Some(a) => Cpu {
                glibc_hwcaps: Vec::new(),
                platform: None,
                legacy: a.legacy_hwcaps.iter().map(|s| s.to_string()).collect(),
            },
            None => Cpu::default(),
        };
        if let Some(cap) = cpu_cap {
            cpu.cap(cap);
        }
        let platform = cpu.platform.clone().or_else(|| arch?.platform.map(str::to_string));
        let subdirs = subdirs(&cpu, platform.as_deref());
        LoaderConfig {
            default_dirs,
            lib,
            platform,
            glibc_hwcaps: cpu.glibc_hwcaps,
            subdirs,
            cache_flags,
            cache_accepts,
            cache_big_endian: ident.data == goblin::elf::header::ELFDATA2MSB,
        }
    }
}

/// The trusted directories and `$LIB`. Debian builds glibc with
/// slibdir=/lib/<tuple> and libdir=/usr/lib/<tuple>, and adds /lib and
/// /usr/lib; upstream uses its own library directory (`/lib64` on most
/// 64-bit targets, `/lib64/lp64d` on riscv64).
fn trusted_dirs(sysroot: &Sysroot, ident: &Ident, arch: Option<&Arch>) -> (Vec<PathBuf>, String) {
    let is_dir = |p: &Path| sysroot.locate(p).is_ok_and(|l| l.is_dir);
    let multiarch = arch.map(|a| a.triplet).filter(|t| is_dir(&Path::new("/lib").join(t)));
    if let Some(t) = multiarch {
        let dirs = [format!("/lib/{t}"), format!("/usr/lib/{t}"), "/lib".into(), "/usr/lib".into()];
        return (dirs.into_iter().map(PathBuf::from).collect(), format!("lib/{t}"));
    }
    // Debian's biarch `libc6-i386` on a 64-bit host is built with
    // slibdir=/lib32 and libdir=/usr/lib32.
    if ident.machine == EM_386 && is_dir(Path::new("/lib32")) {
        return (vec![PathBuf::from("/lib32"), PathBuf::from("/usr/lib32")], "lib32".to_string());
    }
    let lib = match arch {
        Some(a) => a.upstream_lib,
        None if ident.class == ELFCLASS64 => "lib64",
        None => "lib",
    };
    (vec![PathBuf::from(format!("/{lib}")), PathBuf::from(format!("/usr/{lib}"))], lib.to_string())
}

/// The CPU-dependent parts of the loader's search on this machine, in
/// words: a tree built here and used on another CPU may need other files.
pub fn host_cpu() -> String {
    let cpu = x86_64_cpu();
    format!("{:?} {:?} {:?}", cpu.platform, cpu.glibc_hwcaps, cpu.legacy)
}

/// The CPU-dependent parts of the loader's search.
#[derive(Clone, Debug, Default)]
struct Cpu {
    glibc_hwcaps: Vec<String>,
    /// glibc's refined `AT_PLATFORM` (`haswell`, `xeon_phi`), when it sets one.
    platform: Option<String>,
    /// Legacy hwcap names (`avx512_1`, `x86_64`), in glibc's order.
    legacy: Vec<String>,
}

impl Cpu {
    /// What a CPU of at most `cap` would offer of this one's features.
    fn cap(&mut self, cap: IsaLevel) {
        self.glibc_hwcaps.retain(|h| cap.allows_hwcaps(h));
        // `haswell` needs AVX2 and `avx512_1` AVX-512: x86-64-v3 and v4.
        if cap < IsaLevel::V3 {
            self.platform = None;
        }
        if cap < IsaLevel::V4 {
            self.legacy.retain(|l| l != "avx512_1");
        }
    }
}

/// The subdirectories glibc 2.36 tries in each search directory
/// (`_dl_important_hwcaps` in `elf/dl-hwcaps.c`): first
/// `glibc-hwcaps/<name>` for each usable level, best first; then every
/// combination of the legacy names (`tls`, the platform, the hwcap names)
/// from the longest down, `tls` most significant; then the directory itself.
fn subdirs(cpu: &Cpu, platform: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> =
        cpu.glibc_hwcaps.iter().map(|h| format!("glibc-hwcaps/{h}")).collect();
    let mut legacy: Vec<&str> = vec!["tls"];
    legacy.extend(platform);
    legacy.extend(cpu.legacy.iter().map(String::as_str));
    let n = legacy.len();
    for mask in (1..(1u32 << n)).rev() {
        let parts: Vec<&str> =
            (0..n).filter(|i| mask & (1 << (n - 1 - i)) != 0).map(|i| legacy[i]).collect();
        out.push(parts.join("/"));
    }
    out.push(String::new());
    out
}

#[cfg(target_arch = "x86_64")]
fn x86_64_cpu() -> Cpu {
    use std::arch::is_x86_feature_detected as has;
    // The x86-64 micro-architecture levels (`sysdeps/x86/get-isa-level.h`).
    let v2 = has!("cmpxchg16b")
        && has!("popcnt")
        && has!("sse3")
        && has!("sse4.1")
        && has!("sse4.2")
        && has!("ssse3");
    let v3 = v2
        && has!("avx")
        && has!("avx2")
        && has!("bmi1")
        && has!("bmi2")
        && has!("f16c")
        && has!("fma")
        && has!("lzcnt")
        && has!("movbe")
        && has!("xsave");
    let avx512 = has!("avx512f")
        && has!("avx512bw")
        && has!("avx512cd")
        && has!("avx512dq")
        && has!("avx512vl");
    let v4 = v3 && avx512;
    let mut glibc_hwcaps = Vec::new();
    for (ok, name) in [(v4, "x86-64-v4"), (v3, "x86-64-v3"), (v2, "x86-64-v2")] {
        if ok {
            glibc_hwcaps.push(name.to_string());
        }
    }
    // `init_cpu_features` in `sysdeps/x86/cpu-features.c` refines the
    // platform on Intel CPUs only.
    let vendor = std::arch::x86_64::__cpuid(0);
    let intel = (vendor.ebx, vendor.edx, vendor.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e);
    let platform = if !intel {
        None
    } else if has!("avx512f") && has!("avx512er") && has!("avx512pf") {
        Some("xeon_phi".to_string())
    } else if has!("avx2")
        && has!("fma")
        && has!("bmi1")
        && has!("bmi2")
        && has!("lzcnt")
        && has!("movbe")
        && has!("popcnt")
    {
        Some("haswell".to_string())
    } else {
        None
    };
    let mut legacy = Vec::new();
    // `HWCAP_X86_AVX512_1`: set on Intel CPUs with AVX512F and AVX512CD.
    if intel && has!("avx512f") && has!("avx512cd") {
        legacy.push("avx512_1".to_string());
    }
    legacy.push("x86_64".to_string());
    Cpu { glibc_hwcaps, platform, legacy }
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_64_cpu() -> Cpu {
    Cpu::default()
}

/// Where cache lookups come from: the sysroot's `/etc/ld.so.cache`, or, when
/// it has none, the directories `/etc/ld.so.conf` lists (what `ldconfig`
/// would have put in a cache).
#[derive(Clone, Debug)]
pub enum CacheSource {
    Cache(LdCache),
    Conf(Vec<PathBuf>),
}

impl CacheSource {
    /// Loads the sysroot's cache, falling back to its `ld.so.conf`. A cache
    /// the loader would reject is ignored as the loader ignores it; the
    /// returned note says so.
    pub fn load(sysroot: &Sysroot) -> Result<Loaded> {
        let cache_path = Path::new("/etc/ld.so.cache");
        // Whatever was read, and the cache even when absent: its appearing
        // would change the answers.
        let mut files = vec![cache_path.to_path_buf(), PathBuf::from("/etc/ld.so.conf")];
        if let Ok(found) = sysroot.locate(cache_path) {
            let host = sysroot.host(&found.real);
            files.extend(found.links.iter().map(|l| l.path.clone()));
            files.push(found.real.clone());
            let bytes = std::fs::read(&host)
                .with_context(|| format!("failed to read `{}`", host.display()))?;
            return Ok(match LdCache::parse(&bytes) {
                Ok(cache) => Loaded { source: CacheSource::Cache(cache), note: None, files },
                Err(e) => Loaded {
                    source: CacheSource::Conf(Vec::new()),
                    note: Some(format!("ignoring `{}` as the loader would: {e:#}", host.display())),
                    files,
                },
            });
        }
        let (dirs, conf_files) = crate::resolve::ldconf::dirs(sysroot)?;
        files.extend(conf_files);
        Ok(Loaded { source: CacheSource::Conf(dirs), note: None, files })
    }
}

/// The cache source of a sysroot, with what the user should know and the
/// files it depends on (root paths).
#[derive(Clone, Debug)]
pub struct Loaded {
    pub source: CacheSource,
    pub note: Option<String>,
    pub files: Vec<PathBuf>,
}
