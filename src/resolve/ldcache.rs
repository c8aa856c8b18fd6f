//! `/etc/ld.so.cache`: reading it as glibc's loader does, and writing one for a built rootfs.
//!
//! The format is glibc's "new" cache (`glibc-ld.so.cache1.1`, `sysdeps/generic/dl-cache.h`),
//! optionally preceded by the pre-2.32 "old" format (`ld.so-1.7.0`):
//!
//! ```text
//! header (48 bytes): magic "glibc-ld.so.cache" (17), version "1.1" (3), nlibs u32,
//!                    len_strings u32, flags u8 (2 = little, 3 = big endian), pad [3],
//!                    extension_offset u32, unused [3 x u32]
//! entries (24 bytes each): flags i32, key u32, value u32, osversion u32, hwcap u64
//! strings: NUL-terminated, addressed from the start of the new-format header
//! ```
//!
//! Numbers are in the byte order of the machine the cache is for (ldconfig
//! writes its own), which the header's flags say; 0 there means unknown,
//! and each loader then reads it as its own.
//!
//! Entries are sorted so that `_dl_cache_libcmp` *decreases* along the array;
//! the loader binary-searches them (`search_cache` in `elf/dl-cache.c`).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

const MAGIC_NEW: &[u8] = b"glibc-ld.so.cache1.1";
const MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
const HEADER_NEW: usize = 48;
const ENTRY_NEW: usize = 24;
const ENTRY_OLD: usize = 12;

/// `FLAG_ELF_LIBC6`, the flags of 32-bit x86 and of the generic loader.
pub const FLAGS_LIBC6: i32 = 0x0003;

/// `FLAG_ELF`: an ELF library of unknown libc (ldconfig's mark for one that
/// needs no libc).
pub const FLAG_ELF: i32 = 0x0001;

/// `DL_CACHE_HWCAP_EXTENSION`: the entry lives in a `glibc-hwcaps/<name>`
/// subdirectory, whose name is found through the low 32 bits.
const HWCAP_EXTENSION: u64 = 1 << 62;
/// `cache_extension_magic`.
const EXTENSION_MAGIC: u32 = 0xeaa4_2174;
/// `cache_extension_tag_glibc_hwcaps`.
const TAG_GLIBC_HWCAPS: u32 = 1;

/// One library the cache knows about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub flags: i32,
    /// The soname the loader looks up.
    pub name: String,
    /// Where it lives (a root path).
    pub path: PathBuf,
    pub hwcap: u64,
    /// For an entry in a `glibc-hwcaps` subdirectory, that subdirectory's
    /// name (`x86-64-v3`).
    pub hwcaps_subdir: Option<String>,
}

/// A parsed cache, entries in file order.
#[derive(Clone, Debug, Default)]
pub struct LdCache {
    pub entries: Vec<Entry>,
    /// The byte order the header declares: `Some(true)` for big endian,
    /// `None` when it declares none (read as little endian then, the
    /// order of every machine that wrote such caches here).
    pub big_endian: Option<bool>,
}

impl LdCache {
    /// Parses the bytes of an `ld.so.cache` file.
    pub fn parse(bytes: &[u8]) -> Result<LdCache> {
        let start = if bytes.starts_with(MAGIC_NEW) {
            0
        } else if bytes.starts_with(MAGIC_OLD) {
            // The old format is followed, 8-byte aligned, by a new one.
            let nlibs = u32_at(bytes, MAGIC_OLD.len())? as usize;
            let end = (MAGIC_OLD.len() + 4 + nlibs * ENTRY_OLD).next_multiple_of(8);
            ensure!(
                bytes.get(end..).is_some_and(|b| b.starts_with(MAGIC_NEW)),
                "old-format cache without a new-format section"
            );
            end
        } else {
            bail!("not an ld.so.cache file (unknown magic)");
        };
        let new = &bytes[start..];
        ensure!(new.len() >= HEADER_NEW, "truncated cache header");
        let big_endian = match new[28] & 3 {
            0 => None,
            2 => Some(false),
            3 => Some(true),
            _ => bail!("the cache's byte order flag is invalid"),
        };
        let order = Order(big_endian == Some(true));
        let u32_at = |bytes: &[u8], at: usize| order.u32_at(bytes, at);
        let nlibs = u32_at(new, 20)? as usize;
        let extension_offset = u32_at(new, 32)? as usize;
        ensure!(HEADER_NEW + nlibs * ENTRY_NEW <= new.len(), "truncated cache entries");
        let subdirs = if extension_offset != 0 {
            hwcaps_subdirs(new, extension_offset, order)?
        } else {
            Vec::new()
        };
        let mut entries = Vec::with_capacity(nlibs);
        for i in 0..nlibs {
            let at = HEADER_NEW + i * ENTRY_NEW;
            let flags = u32_at(new, at)? as i32;
            let key = u32_at(new, at + 4)? as usize;
            let value = u32_at(new, at + 8)? as usize;
            let hwcap = u64::from(u32_at(new, at + 16)?) | (u64::from(u32_at(new, at + 20)?) << 32);
            let hwcaps_subdir = if hwcap >> 32 == HWCAP_EXTENSION >> 32 {
                Some(
                    subdirs
                        .get((hwcap & 0xffff_ffff) as usize)
                        .cloned()
                        .context("cache entry names a missing glibc-hwcaps subdirectory")?,
                )
            } else {
                None
            };
            entries.push(Entry {
                flags,
                name: c_str_at(new, key)?.to_string(),
                path: PathBuf::from(c_str_at(new, value)?),
                hwcap,
                hwcaps_subdir,
            });
        }
        Ok(LdCache { entries, big_endian })
    }

    /// The path the loader takes from the cache for `name`, as
    /// `search_cache` chooses it: among entries with this name and the
    /// expected `flags`, the best usable `glibc-hwcaps` entry (the earliest in
    /// `hwcaps_priority`), else the first plain entry without legacy hwcap
    /// bits.
    pub fn lookup(
        &self,
        name: &str,
        accepts: impl Fn(i32) -> bool,
        hwcaps_priority: &[String],
    ) -> Option<&Path> {
        // Entries are sorted by decreasing libcmp, so a binary search finds
        // the block of equal names.
        let start = self.entries.partition_point(|e| libcmp(&e.name, name) == Ordering::Greater);
        let mut best: Option<(usize, &Path)> = None;
        for entry in
            self.entries[start..].iter().take_while(|e| libcmp(&e.name, name) == Ordering::Equal)
        {
            if !accepts(entry.flags) {
                continue;
            }
            match &entry.hwcaps_subdir {
                Some(subdir) => {
                    let Some(priority) = hwcaps_priority.iter().position(|s| s == subdir) else {
                        continue;
                    };
                    if best.is_none_or(|(p, _)| priority < p) {
                        best = Some((priority, &entry.path));
                    }
                }
                None => {
                    if best.is_some() {
                        break;
                    }
                    // Legacy hwcap bits (other than the TLS bit) are never
                    // written by a current ldconfig; such entries would need
                    // the platform's capability mask, which a sysroot does
                    // not tell us, so they are not used.
                    if entry.hwcap & !(1 << 63) != 0 {
                        continue;
                    }
                    return Some(&entry.path);
                }
            }
        }
        best.map(|(_, path)| path)
    }

    /// Serialises entries in the new format, sorted the way ldconfig sorts
    /// them (`compare` in `elf/cache.c`), in the byte order `self.big_endian`
    /// says (little when `None`). Only plain entries are written.
    pub fn to_bytes(&self) -> Vec<u8> {
        let big = self.big_endian == Some(true);
        let u32_bytes = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut entries: Vec<&Entry> =
            self.entries.iter().filter(|e| e.hwcaps_subdir.is_none()).collect();
        entries.sort_by(|a, b| {
            libcmp(&b.name, &a.name)
                .then(b.flags.cmp(&a.flags))
                .then(b.hwcap.cmp(&a.hwcap))
                .then_with(|| a.path.cmp(&b.path))
        });
        let mut strings = Vec::new();
        let strings_at = HEADER_NEW + entries.len() * ENTRY_NEW;
        let mut add = |s: &[u8]| -> u32 {
            let at = strings_at + strings.len();
            strings.extend_from_slice(s);
            strings.push(0);
            at as u32
        };
        let mut table = Vec::with_capacity(entries.len() * ENTRY_NEW);
        for e in &entries {
            let key = add(e.name.as_bytes());
            let value = add(e.path.as_os_str().as_encoded_bytes());
            table.extend_from_slice(&u32_bytes(e.flags as u32));
            table.extend_from_slice(&u32_bytes(key));
            table.extend_from_slice(&u32_bytes(value));
            table.extend_from_slice(&u32_bytes(0));
            let hwcap = if big { e.hwcap.to_be_bytes() } else { e.hwcap.to_le_bytes() };
            table.extend_from_slice(&hwcap);
        }
        let mut out = Vec::with_capacity(strings_at + strings.len());
        out.extend_from_slice(MAGIC_NEW);
        out.extend_from_slice(&u32_bytes(entries.len() as u32));
        out.extend_from_slice(&u32_bytes(strings.len() as u32));
        out.extend_from_slice(&[if big { 3 } else { 2 }, 0, 0, 0]);
        out.extend_from_slice(&u32_bytes(0));
        out.extend_from_slice(&[0u8; 12]);
        out.extend_from_slice(&table);
        out.extend_from_slice(&strings);
        out
    }
}

/// `_dl_cache_libcmp` from `elf/dl-cache.c`: byte order, except that runs of
/// digits compare as numbers, and a digit sorts after any other byte.
pub fn libcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        let (ca, cb) = (a[i], b.get(j).copied().unwrap_or(0));
        if ca.is_ascii_digit() {
            if !cb.is_ascii_digit() {
                return Ordering::Greater;
            }
            // glibc accumulates in an int; compare the same way so that
            // absurdly long digit runs behave identically.
            let (mut va, mut vb) = (0i32, 0i32);
            while i < a.len() && a[i].is_ascii_digit() {
                va = va.wrapping_mul(10).wrapping_add(i32::from(a[i] - b'0'));
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                vb = vb.wrapping_mul(10).wrapping_add(i32::from(b[j] - b'0'));
                j += 1;
            }
            if va != vb {
                return va.cmp(&vb);
            }
        } else if cb.is_ascii_digit() {
            return Ordering::Less;
        } else if ca != cb {
            // `char` is signed on the targets glibc runs this on.
            return (ca as i8).cmp(&(cb as i8));
        } else {
            i += 1;
            j += 1;
        }
    }
    0i8.cmp(&(b.get(j).copied().unwrap_or(0) as i8))
}

fn hwcaps_subdirs(new: &[u8], offset: usize, order: Order) -> Result<Vec<String>> {
    let u32_at = |bytes: &[u8], at: usize| order.u32_at(bytes, at);
    ensure!(u32_at(new, offset)? == EXTENSION_MAGIC, "bad cache extension magic");
    let count = u32_at(new, offset + 4)? as usize;
    for i in 0..count {
        let section = offset + 8 + i * 16;
        if u32_at(new, section)? != TAG_GLIBC_HWCAPS {
            continue;
        }
        let (at, size) = (u32_at(new, section + 8)? as usize, u32_at(new, section + 12)? as usize);
        return (0..size / 4)
            .map(|k| Ok(c_str_at(new, u32_at(new, at + 4 * k)? as usize)?.to_string()))
            .collect();
    }
    Ok(Vec::new())
}

/// The byte order of a cache's numbers: big endian when true.
#[derive(Clone, Copy)]
struct Order(bool);

impl Order {
    fn u32_at(self, bytes: &[u8], at: usize) -> Result<u32> {
        let raw = bytes.get(at..at + 4).context("cache offset out of range")?;
        let raw: [u8; 4] = raw.try_into().expect("four bytes");
        Ok(if self.0 { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) })
    }
}

/// The old format's count, always little endian on the machines that
/// still wrote it.
fn u32_at(bytes: &[u8], at: usize) -> Result<u32> {
    Order(false).u32_at(bytes, at)
}

fn c_str_at(bytes: &[u8], at: usize) -> Result<&str> {
    let tail = bytes.get(at..).context("cache string offset out of range")?;
    let end = tail.iter().position(|&b| b == 0).context("unterminated cache string")?;
    std::str::from_utf8(&tail[..end]).context("cache string is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `flags` of an entry for a 64-bit x86 libc6 library:
    /// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64` (each architecture's are in
    /// `resolve/arch.rs`).
    const FLAGS_X86_64: i32 = 0x0303;

    #[test]
    fn libcmp_compares_digit_runs_as_numbers() {
        assert_eq!(libcmp("libc.so.6", "libc.so.6"), Ordering::Equal);
        assert_eq!(libcmp("libfoo.so.10", "libfoo.so.9"), Ordering::Greater);
        assert_eq!(libcmp("libfoo.so.1", "libfoo.so"), Ordering::Greater);
        assert_eq!(libcmp("lib2", "liba"), Ordering::Greater);
        assert_eq!(libcmp("liba", "lib2"), Ordering::Less);
    }

    #[test]
    fn written_cache_reads_back_and_finds_every_entry() {
        let names =
            ["libz.so.1", "libc.so.6", "libfoo.so.10", "libfoo.so.9", "libfoo.so", "libm.so.6"];
        for big_endian in [None, Some(true)] {
            round_trip(&names, big_endian);
        }
    }

    fn round_trip(names: &[&str], big_endian: Option<bool>) {
        let cache = LdCache {
            big_endian,
            entries: names
                .iter()
                .map(|n| Entry {
                    flags: FLAGS_X86_64,
                    name: n.to_string(),
                    path: PathBuf::from(format!("/opt/lib/{n}")),
                    hwcap: 0,
                    hwcaps_subdir: None,
                })
                .collect(),
        };
        let back = LdCache::parse(&cache.to_bytes()).unwrap();
        assert_eq!(back.big_endian, Some(big_endian == Some(true)));
        for pair in back.entries.windows(2) {
            assert_eq!(libcmp(&pair[0].name, &pair[1].name), Ordering::Greater);
        }
        for &n in names {
            assert_eq!(
                back.lookup(n, |f| f == FLAGS_X86_64, &[]),
                Some(Path::new(&format!("/opt/lib/{n}")))
            );
            assert_eq!(back.lookup(n, |f| f == FLAGS_LIBC6, &[]), None);
        }
        assert_eq!(back.lookup("libnothere.so.1", |f| f == FLAGS_X86_64, &[]), None);
    }
}
