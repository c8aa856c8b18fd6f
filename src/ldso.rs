//! The dynamic loader's fixed configuration for one target: trusted directories, `$LIB`, `$PLATFORM`, hwcaps subdirectories, the cache.
//!
//! glibc compiles these into `ld.so` (`SYSTEM_DIRS`, `DL_DST_LIB`) or takes
//! them from the CPU at start-up (`AT_PLATFORM`, the hwcaps). We derive them
//! from the sysroot's layout and the CPU of the machine running the tool, which
//! is the machine that will run the rootfs. `ld.so --help` on a Debian 12
//! x86_64 host prints the same lists.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use goblin::elf::header::{ELFCLASS64, EM_386, EM_AARCH64, EM_X86_64};

use crate::elf::Ident;
use crate::elf::IsaLevel;
use crate::ldcache::{self, LdCache};
use crate::sysroot::Sysroot;

/// What the loader of one target (class and machine) searches, and how.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// The trusted directories searched last, in order (`SYSTEM_DIRS`).
    pub default_dirs: Vec<PathBuf>,
    /// Expansion of `$LIB`.
    pub lib: String,
    /// Expansion of `$PLATFORM` (`AT_PLATFORM`, possibly refined by glibc).
    pub platform: String,
    /// Names of the usable `glibc-hwcaps` subdirectories, best first.
    pub glibc_hwcaps: Vec<String>,
    /// Every subdirectory tried inside a search directory, in order,
    /// ending with the directory itself (`""`).
    pub subdirs: Vec<String>,
    /// The `flags` of this target's ld.so.cache entries, as ldconfig writes
    /// them (`_DL_CACHE_DEFAULT_ID`).
    pub cache_flags: i32,
    /// Whether plain `FLAG_ELF` entries are accepted too: glibc's generic
    /// `_dl_cache_check_flags` takes `1` or the default id, the x86_64 and
    /// AArch64 ones only the default id (`sysdeps/.../dl-cache.h`).
    pub accepts_plain_elf: bool,
}

impl LoaderConfig {
    /// Whether the loader uses a cache entry with these flags
    /// (`_dl_cache_check_flags`).
    pub fn accepts_cache_flags(&self, flags: i32) -> bool {
        flags == self.cache_flags || (self.accepts_plain_elf && flags == ldcache::FLAG_ELF)
    }
}

/// Debian's multiarch tuple for a target, the name of its library directory.
pub fn multiarch_tuple(ident: &Ident) -> Option<&'static str> {
    match (ident.class, ident.machine) {
        (ELFCLASS64, EM_X86_64) => Some("x86_64-linux-gnu"),
        (ELFCLASS64, EM_AARCH64) => Some("aarch64-linux-gnu"),
        (_, EM_386) => Some("i386-linux-gnu"),
        _ => None,
    }
}

impl LoaderConfig {
    /// With `cpu`, the loader of a CPU of at most that x86-64 level: the
    /// `glibc-hwcaps` subdirectories above it are not searched, and the
    /// refined platforms and legacy hwcaps that need more are dropped.
    pub fn for_target(sysroot: &Sysroot, ident: &Ident, cpu_cap: Option<IsaLevel>) -> LoaderConfig {
        let tuple = multiarch_tuple(ident);
        let multiarch =
            tuple.filter(|t| sysroot.locate(&Path::new("/lib").join(t)).is_ok_and(|l| l.is_dir));
        // Debian builds glibc with slibdir=/lib/<tuple> and
        // libdir=/usr/lib/<tuple>, and adds /lib and /usr/lib; upstream uses
        // /lib64 and /usr/lib64 on 64-bit targets.
        let (default_dirs, lib) = match multiarch {
            Some(t) => (
                vec![
                    PathBuf::from(format!("/lib/{t}")),
                    PathBuf::from(format!("/usr/lib/{t}")),
                    PathBuf::from("/lib"),
                    PathBuf::from("/usr/lib"),
                ],
                format!("lib/{t}"),
            ),
            None if ident.class == ELFCLASS64 => {
                (vec![PathBuf::from("/lib64"), PathBuf::from("/usr/lib64")], "lib64".to_string())
            }
            // Debian's biarch `libc6-i386` on a 64-bit host is built with
            // slibdir=/lib32 and libdir=/usr/lib32.
            None if ident.machine == EM_386
                && sysroot.locate(Path::new("/lib32")).is_ok_and(|l| l.is_dir) =>
            {
                (vec![PathBuf::from("/lib32"), PathBuf::from("/usr/lib32")], "lib32".to_string())
            }
            None => (vec![PathBuf::from("/lib"), PathBuf::from("/usr/lib")], "lib".to_string()),
        };
        let (cache_flags, accepts_plain_elf) = match (ident.class, ident.machine) {
            (ELFCLASS64, EM_X86_64) => (ldcache::FLAGS_X86_64, false),
            (ELFCLASS64, EM_AARCH64) => (ldcache::FLAGS_AARCH64, false),
            _ => (ldcache::FLAGS_LIBC6, true),
        };
        let mut cpu = if ident.class == ELFCLASS64 && ident.machine == EM_X86_64 {
            x86_64_cpu()
        } else {
            Cpu::default()
        };
        if let Some(cap) = cpu_cap {
            cpu.cap(cap);
        }
        let platform = cpu.platform.clone().unwrap_or_else(|| default_platform(ident).to_string());
        let subdirs = subdirs(&cpu);
        LoaderConfig {
            default_dirs,
            lib,
            platform,
            glibc_hwcaps: cpu.glibc_hwcaps,
            subdirs,
            cache_flags,
            accepts_plain_elf,
        }
    }
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

fn default_platform(ident: &Ident) -> &'static str {
    match ident.machine {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        EM_386 => "i686",
        _ => "",
    }
}

/// The subdirectories glibc 2.36 tries in each search directory
/// (`_dl_important_hwcaps` in `elf/dl-hwcaps.c`): first
/// `glibc-hwcaps/<name>` for each usable level, best first; then every
/// combination of the legacy names (`tls`, the platform, the hwcap names)
/// from the longest down, `tls` most significant; then the directory itself.
fn subdirs(cpu: &Cpu) -> Vec<String> {
    let mut out: Vec<String> =
        cpu.glibc_hwcaps.iter().map(|h| format!("glibc-hwcaps/{h}")).collect();
    let mut legacy: Vec<&str> = vec!["tls"];
    legacy.extend(cpu.platform.as_deref());
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
        let (dirs, conf_files) = crate::ldconf::dirs(sysroot)?;
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
