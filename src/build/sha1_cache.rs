//! The SHA1 of each file content the SBOM lists, by the content's sha256, kept beside the outputs (`.rootfs/sha1.json`) so a build reads no file only to hash it for SPDX.
//!
//! SPDX 2.3 requires a SHA1 checksum of every file; the manifest already
//! knows each file's sha256 (from the bytes copied, or the digest cache).
//! The map is content-addressed, so an entry never goes stale: it is kept
//! while some tree or host file still has that content (the digest cache
//! or the manifest just written names its sha256), and dropped otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::build::side_file::{self, SideFile};
use crate::vocab::Sha256;

/// sha256 -> sha1 (lower-case hex).
pub type Sha1s = HashMap<Sha256, String>;

/// The file as written: sorted (so the same contents make the same file),
/// on one line.
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha1File(BTreeMap<Sha256, String>);

impl SideFile for Sha1File {
    const NAME: &'static str = "sha1.json";
    const WHAT: &'static str = "a SHA1 cache";
    const PRETTY: bool = false;

    fn valid(&self) -> bool {
        self.0.values().all(|v| is_hex(v, 40))
    }

    fn recognise(bytes: &[u8]) -> bool {
        crate::fsutil::is_json_map_of::<Sha256, String>(bytes, |_, v| is_hex(v, 40))
    }
}

/// The SHA1 cache for outputs in the folder holding `out`.
pub fn path_for(out: &Path) -> PathBuf {
    side_file::path_for::<Sha1File>(out)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads the cache; a missing or unreadable one is empty.
pub fn read(path: &Path) -> Sha1s {
    side_file::read::<Sha1File>(path).0.into_iter().collect()
}

/// Adds `fresh` to `known`, keeps the entries whose sha256 is in `live`,
/// and writes the cache back atomically; a cache that would be written as
/// it was read (`known`, nothing fresh, nothing dropped) is left alone.
pub fn update(path: &Path, mut known: Sha1s, fresh: Sha1s, live: &HashSet<Sha256>) -> Result<()> {
    if fresh.is_empty() && !known.is_empty() && known.keys().all(|sha256| live.contains(sha256)) {
        return Ok(());
    }
    known.extend(fresh);
    let kept = known.into_iter().filter(|(sha256, _)| live.contains(sha256)).collect();
    side_file::write(path, &Sha1File(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_maps_of_hex_digests_are_recognised() {
        let recognise = side_file::recognise::<Sha1File>;
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
        let (a, b) = (Sha256::of(b"a"), Sha256::of(b"b"));
        let known: Sha1s = [(a, "1".repeat(40))].into();
        let fresh: Sha1s = [(b, "2".repeat(40))].into();
        update(&path, known, fresh, &[b].into()).unwrap();
        let read = read(&path);
        assert_eq!(read.len(), 1);
        assert_eq!(read[&b], "2".repeat(40));
    }
}
