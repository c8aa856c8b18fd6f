//! Digests of host files, kept beside the outputs (`.rootfs/digests.json`) and shared by every build there, so an unchanged host file is hashed once.
//!
//! An entry is used only while the file's [`FileState`] (device, inode,
//! mode, size, mtime; not ctime, which hard-linking the file moves) is the
//! one recorded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stamp::FileState;

/// The digest cache for outputs in the folder holding `out`.
pub fn path_for(out: &Path) -> PathBuf {
    crate::fsutil::side_dir(out).join("digests.json")
}

/// Whether `bytes` are a digest cache of this tool.
pub fn recognise(bytes: &[u8]) -> bool {
    crate::fsutil::is_json_map_of::<PathBuf, (FileState, String)>(bytes, |_, _| true)
}

/// Host path -> (state when hashed, sha256).
pub type Digests = HashMap<PathBuf, (FileState, String)>;

/// Reads the cache; a missing or unreadable one is empty.
pub fn read(path: &Path) -> Digests {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Digests>(&bytes).ok())
        .unwrap_or_default()
}

/// Adds `fresh` to the cache on disk, dropping entries whose file is gone
/// or changed, and writes it back atomically.
pub fn update(path: &Path, mut known: Digests, fresh: Digests) -> Result<()> {
    use rayon::prelude::*;
    known.extend(fresh);
    let kept: BTreeMap<PathBuf, (FileState, String)> = known
        .into_par_iter()
        .filter(|(host, (state, _))| FileState::read(host).as_ref() == Some(state))
        .collect();
    let bytes = serde_json::to_vec(&kept).context("serialising the digest cache")?;
    crate::fsutil::write_side_file(path, &bytes)
}
