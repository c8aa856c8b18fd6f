//! The SHA1 of each file content the SBOM lists, by the content's sha256, kept beside the outputs (`.rootfs/sha1.json`) so a build reads no file only to hash it for SPDX.
//!
//! SPDX 2.3 requires a SHA1 checksum of every file; the manifest already
//! knows each file's sha256 (from the bytes copied, or the digest cache).
//! The map is content-addressed, so an entry never goes stale: it is kept
//! while some tree or host file still has that content (the digest cache
//! or the manifest just written names its sha256), and dropped otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// sha256 -> sha1, both lower-case hex.
pub type Sha1s = HashMap<String, String>;

/// The SHA1 cache for outputs in the folder holding `out`.
pub fn path_for(out: &Path) -> PathBuf {
    crate::fsutil::side_dir(out).join("sha1.json")
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The map in `bytes`, when they are a SHA1 cache of this tool.
fn parse(bytes: &[u8]) -> Option<Sha1s> {
    let map: Sha1s = serde_json::from_slice(bytes).ok()?;
    map.iter().all(|(k, v)| is_hex(k, 64) && is_hex(v, 40)).then_some(map)
}

/// Whether `bytes` are a SHA1 cache of this tool.
pub fn recognise(bytes: &[u8]) -> bool {
    crate::fsutil::is_json_map_of::<String, String>(bytes, |k, v| is_hex(k, 64) && is_hex(v, 40))
}

/// Reads the cache; a missing or unreadable one is empty.
pub fn read(path: &Path) -> Sha1s {
    std::fs::read(path).ok().and_then(|bytes| parse(&bytes)).unwrap_or_default()
}

/// Adds `fresh` to `known`, keeps the entries whose sha256 is in `live`,
/// and writes the cache back atomically (sorted, so the same contents make
/// the same file).
pub fn update(path: &Path, mut known: Sha1s, fresh: Sha1s, live: &HashSet<&str>) -> Result<()> {
    known.extend(fresh);
    let kept: BTreeMap<String, String> =
        known.into_iter().filter(|(sha256, _)| live.contains(sha256.as_str())).collect();
    let bytes = serde_json::to_vec(&kept).context("serialising the SHA1 cache")?;
    crate::fsutil::write_side_file(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_maps_of_hex_digests_are_recognised() {
        let good = format!(r#"{{"{}":"{}"}}"#, "a".repeat(64), "b".repeat(40));
        assert!(recognise(good.as_bytes()));
        assert!(recognise(b"{}"));
        assert!(!recognise(br#"{"x":"y"}"#));
        assert!(!recognise(b"my notes\n"));
    }

    #[test]
    fn update_keeps_only_live_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".rootfs-sha1.json");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let known: Sha1s = [(a.clone(), "1".repeat(40))].into();
        let fresh: Sha1s = [(b.clone(), "2".repeat(40))].into();
        update(&path, known, fresh, &[b.as_str()].into()).unwrap();
        let read = read(&path);
        assert_eq!(read.len(), 1);
        assert_eq!(read[&b], "2".repeat(40));
    }
}
