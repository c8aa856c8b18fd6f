//! Digests of host files, kept beside the outputs (`.rootfs/digests.json`) and shared by every build there, so an unchanged host file is hashed once.
//!
//! An entry is used only while the file's [`FileState`] (device, inode,
//! mode, size, mtime; not ctime, which hard-linking the file moves) is the
//! one recorded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::build::side_file::{self, SideFile};
use crate::vocab::{FileState, Sha256};

/// Host path -> (state when hashed, sha256).
pub type Digests = HashMap<PathBuf, (FileState, Sha256)>;

/// The file as written: sorted, on one line.
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DigestFile(BTreeMap<PathBuf, (FileState, Sha256)>);

/// The entries of a [`DigestFile`], sorted, written as the same map.
struct Sorted<'a>(Vec<(&'a PathBuf, &'a (FileState, Sha256))>);

impl Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().copied())
    }
}

impl SideFile for DigestFile {
    const NAME: &'static str = "digests.json";
    const WHAT: &'static str = "a digest cache";
    const PRETTY: bool = false;

    fn recognise(bytes: &[u8]) -> bool {
        crate::fsutil::is_json_map_of::<PathBuf, (FileState, Sha256)>(bytes, |_, _| true)
    }
}

/// The digest cache for outputs in the folder holding `out`.
pub fn path_for(out: &Path) -> PathBuf {
    side_file::path_for::<DigestFile>(out)
}

/// Reads the cache; a missing or unreadable one is empty.
pub fn read(path: &Path) -> Digests {
    side_file::read::<DigestFile>(path).0.into_iter().collect()
}

/// Adds `fresh` to the `known` digests, dropping entries whose file is
/// gone or changed, and writes them back atomically; when `known` is the
/// cache as it was read (`on_disk`), a cache that would be written the
/// same (nothing in `fresh` that it lacks, nothing dropped) is left alone.
pub fn update(path: &Path, known: Digests, fresh: Digests, on_disk: bool) -> Result<()> {
    use rayon::prelude::*;
    // The entries are written in order from both maps as they are, and the
    // files looked at on every core: merging the maps, or a sorted copy of
    // them, would hold a large tree's tens of thousands of entries twice.
    let older = known.iter().filter(|(host, _)| !fresh.contains_key(*host));
    let mut entries: Vec<(&PathBuf, &(FileState, Sha256))> = fresh.iter().chain(older).collect();
    let unchanged: Vec<bool> = entries
        .par_iter()
        .map(|(host, (state, _))| FileState::read(host).as_ref() == Some(state))
        .collect();
    let nothing_new = fresh.iter().all(|(host, digest)| known.get(host) == Some(digest));
    if on_disk && nothing_new && !known.is_empty() && unchanged.iter().all(|u| *u) {
        return Ok(());
    }
    let mut unchanged = unchanged.into_iter();
    entries.retain(|_| unchanged.next().unwrap_or(false));
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    side_file::write_as::<DigestFile>(path, &Sorted(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_the_sorted_map_on_one_line_and_drops_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, gone) = (dir.path().join("kept"), dir.path().join("gone"));
        std::fs::write(&kept, "a").unwrap();
        let state = FileState::read(&kept).unwrap();
        let fresh: Digests =
            [(kept.clone(), (state.clone(), Sha256::of(b"1"))), (gone, (state, Sha256::of(b"2")))]
                .into();
        let path = path_for(&dir.path().join("tree"));
        update(&path, Digests::new(), fresh, true).unwrap();
        let read = read(&path);
        assert_eq!(read.keys().collect::<Vec<_>>(), [&kept]);
        let map: BTreeMap<_, _> = read.clone().into_iter().collect();
        assert_eq!(std::fs::read(&path).unwrap(), serde_json::to_vec(&map).unwrap());

        // The same digests again: the file is left as it is (a rewrite is a
        // new file renamed over it).
        let written = FileState::read(&path).unwrap();
        update(&path, read.clone(), read.clone(), true).unwrap();
        assert_eq!(FileState::read(&path), Some(written.clone()));
        // Digests that are not all from the file: it is written.
        std::fs::remove_file(&path).unwrap();
        update(&path, read.clone(), read.clone(), false).unwrap();
        assert_eq!(super::read(&path), read);
        let written = FileState::read(&path).unwrap();
        // A file of the cache changed: it is dropped, and the cache rewritten.
        std::fs::write(&kept, "changed").unwrap();
        update(&path, read.clone(), Digests::new(), true).unwrap();
        assert_ne!(FileState::read(&path).map(|s| s.ino), Some(written.ino));
        assert!(super::read(&path).is_empty());
    }
}
