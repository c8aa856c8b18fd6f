//! The stamp beside a built rootfs (`<out>.stamp.json`): the state of every input at build time, so an unchanged rebuild is a cheap no-op.
//!
//! The check re-reads the spec files and `lstat`s every recorded input: each
//! copied file and mirrored symlink, every directory the resolver searched
//! (a library appearing there could change the answer), the output tree's
//! root, and the tool itself.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What `lstat(2)` says about a path, enough to notice any change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileState {
    pub fn of(meta: &Metadata) -> FileState {
        FileState {
            dev: meta.dev(),
            ino: meta.ino(),
            mode: meta.mode(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether the content can be assumed unchanged: same file, size and
    /// mtime. Unlike full equality this ignores ctime, which also moves when
    /// a hard link to the file is made or removed; a file rewritten in place
    /// with its mtime set back would fool it, as it fools make and rsync.
    pub fn same_content(&self, other: &FileState) -> bool {
        (self.dev, self.ino, self.size, self.mtime_ns)
            == (other.dev, other.ino, other.size, other.mtime_ns)
    }

    /// The state of `path` without following a final symlink; `None` when
    /// it does not exist.
    pub fn read(path: &Path) -> Option<FileState> {
        std::fs::symlink_metadata(path).ok().map(|m| FileState::of(&m))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stamp {
    /// Everything about how the build was asked for: tool, options.
    pub key: String,
    /// sha256 of each spec file read.
    pub specs: BTreeMap<PathBuf, String>,
    /// State of each input (`None`: it did not exist).
    pub inputs: BTreeMap<PathBuf, Option<FileState>>,
    /// The output tree's root and manifest as written.
    pub out: Option<FileState>,
    pub manifest: Option<FileState>,
}

/// Where the stamp of the rootfs at `out` lives.
pub fn path_for(out: &Path) -> PathBuf {
    crate::manifest::sibling(out, ".stamp.json")
}

/// sha256 of some bytes, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::install::hex(&Sha256::digest(bytes))
}

impl Stamp {
    pub fn read(path: &Path) -> Option<Stamp> {
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec(self).context("serialising the stamp")?;
        crate::install::write_file_atomically(path, &text)
    }

    /// The first reason the build at `out` is stale, or `None` when it is up
    /// to date.
    pub fn stale_reason(
        &self,
        key: &str,
        specs: &BTreeMap<PathBuf, String>,
        out: &Path,
    ) -> Option<String> {
        if self.key != key {
            return Some("the tool or its options changed".to_string());
        }
        if &self.specs != specs {
            return Some("the spec changed".to_string());
        }
        if self.out.is_none() || FileState::read(out) != self.out {
            return Some(format!("`{}` changed", out.display()));
        }
        if FileState::read(&crate::manifest::path_for(out)) != self.manifest {
            return Some("the manifest changed".to_string());
        }
        self.inputs
            .iter()
            .find(|(path, state)| FileState::read(path) != **state)
            .map(|(path, _)| format!("`{}` changed", path.display()))
    }
}
