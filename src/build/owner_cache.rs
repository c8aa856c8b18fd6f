//! The package owning each file a build asked about, kept beside the outputs (`.rootfs/owners.json`) with the state of the sysroot's dpkg status file, so that a build reads the packages' lists again only once a package changed.
//!
//! Finding owners means reading every package's list (`dpkg.rs`): 793
//! files, 7.6 MB on this host, most of a cold `--link hard` build's reads.
//! dpkg rewrites its status file on every change to a package (install,
//! upgrade, removal), which gives it a new inode, and the lists change only
//! then; the stamp already takes the status file's state for the state of
//! the whole database. An answer is used only while that state, and the
//! sysroot, are the ones it was found with, and only for a build whose
//! every path is in it; any other build reads the lists and writes the
//! answers anew.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::build::dpkg::Package;
use crate::build::side_file::{self, SideFile};
use crate::vocab::FileState;

/// The file as written, on one line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerFile {
    format: u32,
    /// The sysroot the paths are in.
    pub sysroot: PathBuf,
    /// The state of its status file, taken before the lists were read.
    pub status: Option<FileState>,
    /// The packages that own any of the paths.
    pub packages: Vec<Package>,
    /// Every path asked about, with the index of its owner in `packages`;
    /// `None` when no package lists it.
    pub paths: BTreeMap<PathBuf, Option<u32>>,
}

/// Bumped when what the file means changes. (A field of its own: the
/// flattened wrapper of `SideFile::FORMAT` cannot carry a [`FileState`].)
const FORMAT: u32 = 1;

/// An owner cache's shape, checked without keeping its entries.
#[derive(Deserialize)]
struct Shape {
    format: u32,
    #[serde(rename = "sysroot")]
    _sysroot: serde::de::IgnoredAny,
    #[serde(rename = "status")]
    _status: serde::de::IgnoredAny,
    #[serde(rename = "packages")]
    _packages: serde::de::IgnoredAny,
    #[serde(rename = "paths")]
    _paths: serde::de::IgnoredAny,
}

impl SideFile for OwnerFile {
    const NAME: &'static str = "owners.json";
    const WHAT: &'static str = "an owner cache";
    const PRETTY: bool = false;

    fn valid(&self) -> bool {
        self.format == FORMAT
            && self.paths.values().flatten().all(|i| (*i as usize) < self.packages.len())
    }

    fn recognise(bytes: &[u8]) -> bool {
        serde_json::from_slice::<Shape>(bytes).is_ok_and(|shape| shape.format == FORMAT)
    }
}

impl OwnerFile {
    /// The answers for `paths` of `sysroot`, found with its status file in
    /// state `status`.
    pub fn new(
        sysroot: &Path,
        status: Option<FileState>,
        packages: Vec<Package>,
        paths: BTreeMap<PathBuf, Option<u32>>,
    ) -> OwnerFile {
        OwnerFile { format: FORMAT, sysroot: sysroot.to_path_buf(), status, packages, paths }
    }
}

/// The owner cache for outputs in the folder holding `out`.
pub fn path_for(out: &Path) -> PathBuf {
    side_file::path_for::<OwnerFile>(out)
}

/// The cache at `path` when it was written for `sysroot` with its status
/// file in state `status` (which must be known); `None` otherwise.
pub fn read(path: &Path, sysroot: &Path, status: Option<&FileState>) -> Option<OwnerFile> {
    let status = status?;
    let file = side_file::read::<OwnerFile>(path);
    (file.format == FORMAT && file.sysroot == sysroot && file.status.as_ref() == Some(status))
        .then_some(file)
}

/// Writes the cache atomically.
pub fn write(path: &Path, file: &OwnerFile) -> Result<()> {
    side_file::write(path, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_serves_only_its_sysroot_and_status_state() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::write(&status, "a").unwrap();
        let state = FileState::read(&status);
        let package = Package { name: "p".into(), version: "1".into(), arch: "all".into() };
        let paths = [(PathBuf::from("/usr/bin/p"), Some(0)), (PathBuf::from("/etc/x"), None)];
        let file = OwnerFile::new(dir.path(), state.clone(), vec![package], paths.into());
        let path = path_for(&dir.path().join("tree"));
        write(&path, &file).unwrap();
        assert!(side_file::recognise::<OwnerFile>(&std::fs::read(&path).unwrap()));
        assert_eq!(read(&path, dir.path(), state.as_ref()), Some(file));
        assert_eq!(read(&path, Path::new("/elsewhere"), state.as_ref()), None);
        assert_eq!(read(&path, dir.path(), None), None);
        std::fs::write(&status, "changed").unwrap();
        assert_eq!(read(&path, dir.path(), FileState::read(&status).as_ref()), None);
    }
}
