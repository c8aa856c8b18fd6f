//! The package owning each file a build asked about, kept beside the outputs (`.rootfs/owners.json`) with the state of the sysroot's dpkg status file, so that a build reads the packages' lists again only once a package changed.
//!
//! Finding owners means reading every package's list (`dpkg.rs`): 793
//! files, 7.6 MB on this host, most of a cold `--link hard` build's reads.
//! dpkg rewrites its status file on every change to a package (install,
//! upgrade, removal), which gives it a new inode, and the lists change only
//! then; the stamp already takes the status file's state for the state of
//! the whole database. Answers are kept per sysroot and used only while
//! its status file has the state they were found with, and only for a
//! build whose every path is among them; any other build reads the lists
//! and adds its answers (the trees of one folder ask about different
//! paths), or replaces them once the state moved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::build::dpkg::Package;
use crate::build::side_file::{self, SideFile};
use crate::resolve::sysroot::Sysroot;
use crate::vocab::FileState;

/// The file as written, on one line: the answers for each sysroot built
/// from in this folder (the host, an image or package sysroot, another
/// architecture's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerFile {
    format: u32,
    sysroots: BTreeMap<PathBuf, Answers>,
}

/// The owners found in one sysroot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
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
/// Format 1 held one sysroot's answers; still recognised as this tool's
/// (and replaced), never read.
const FORMAT: u32 = 2;

/// An owner cache's shape, checked without keeping its entries: its format
/// number, the fields each format has, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    format: u32,
    #[serde(rename = "sysroots", default)]
    _sysroots: Option<serde::de::IgnoredAny>,
    #[serde(rename = "sysroot", default)]
    _sysroot: Option<serde::de::IgnoredAny>,
    #[serde(rename = "status", default)]
    _status: Option<serde::de::IgnoredAny>,
    #[serde(rename = "packages", default)]
    _packages: Option<serde::de::IgnoredAny>,
    #[serde(rename = "paths", default)]
    _paths: Option<serde::de::IgnoredAny>,
}

impl SideFile for OwnerFile {
    const NAME: &'static str = "owners.json";
    const WHAT: &'static str = "an owner cache";
    const PRETTY: bool = false;

    fn valid(&self) -> bool {
        self.format == FORMAT
            && self
                .sysroots
                .values()
                .all(|a| a.paths.values().flatten().all(|i| (*i as usize) < a.packages.len()))
    }

    fn recognise(bytes: &[u8]) -> bool {
        serde_json::from_slice::<Shape>(bytes).is_ok_and(|shape| matches!(shape.format, 1 | FORMAT))
    }
}

/// The owner cache for outputs in the folder holding `out`.
pub fn path_for(out: &Path) -> PathBuf {
    side_file::path_for::<OwnerFile>(out)
}

/// The answers at `path` for `sysroot` when they were found with its
/// status file in state `status` (which must be known); `None` otherwise.
pub fn read(path: &Path, sysroot: &Path, status: Option<&FileState>) -> Option<Answers> {
    let status = status?;
    let mut file = side_file::read::<OwnerFile>(path);
    file.sysroots.remove(sysroot).filter(|a| a.status.as_ref() == Some(status))
}

/// Records `found` for `sysroot` in the cache at `path`, written
/// atomically: added to the answers there for the same status state
/// (another tree of the folder asked about other paths), in place of
/// answers for another one. Other sysroots' answers stay while their
/// status file keeps its recorded state.
pub fn update(path: &Path, sysroot: &Path, found: Answers) -> Result<()> {
    let mut file = side_file::read::<OwnerFile>(path);
    let status_of = |root: &Path| {
        FileState::read(&Sysroot::new(root).host(Path::new(crate::build::dpkg::STATUS)))
    };
    file.sysroots.retain(|root, answers| root == sysroot || answers.status == status_of(root));
    let merged = match file.sysroots.remove(sysroot) {
        Some(before) if before.status == found.status => merge(before, found),
        _ => found,
    };
    file.sysroots.insert(sysroot.to_path_buf(), merged);
    file.format = FORMAT;
    side_file::write(path, &file)
}

/// The answers of `before` and `now` (for the same status state) as one;
/// `now` wins where both answer.
fn merge(before: Answers, now: Answers) -> Answers {
    let packages: BTreeSet<&Package> = before.packages.iter().chain(&now.packages).collect();
    let index: BTreeMap<&Package, u32> =
        packages.iter().enumerate().map(|(i, p)| (*p, i as u32)).collect();
    let reindex = |answers: &Answers, i: Option<u32>| {
        i.and_then(|i| answers.packages.get(i as usize)).map(|p| index[p])
    };
    let mut paths: BTreeMap<PathBuf, Option<u32>> = BTreeMap::new();
    for answers in [&before, &now] {
        for (path, owner) in &answers.paths {
            paths.insert(path.clone(), reindex(answers, *owner));
        }
    }
    let packages = packages.into_iter().cloned().collect();
    Answers { status: now.status, packages, paths }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str) -> Package {
        Package { name: name.into(), version: "1".into(), arch: "all".into() }
    }

    #[test]
    fn answers_serve_only_their_sysroot_and_status_state_and_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let status = root.join("var/lib/dpkg/status");
        std::fs::create_dir_all(status.parent().unwrap()).unwrap();
        std::fs::write(&status, "a").unwrap();
        let state = FileState::read(&status);
        let answers = |name: &str, path: &str| Answers {
            status: state.clone(),
            packages: vec![package(name)],
            paths: [(PathBuf::from(path), Some(0)), (PathBuf::from("/etc/x"), None)].into(),
        };
        let path = path_for(&dir.path().join("tree"));
        update(&path, &root, answers("p", "/usr/bin/p")).unwrap();
        assert!(side_file::recognise::<OwnerFile>(&std::fs::read(&path).unwrap()));
        assert_eq!(read(&path, &root, state.as_ref()), Some(answers("p", "/usr/bin/p")));
        assert_eq!(read(&path, Path::new("/elsewhere"), state.as_ref()), None);
        assert_eq!(read(&path, &root, None), None);

        // Another tree's answers for the same state add up.
        update(&path, &root, answers("q", "/usr/bin/q")).unwrap();
        let both = read(&path, &root, state.as_ref()).unwrap();
        assert_eq!(both.packages, [package("p"), package("q")]);
        assert_eq!(both.paths[Path::new("/usr/bin/p")], Some(0));
        assert_eq!(both.paths[Path::new("/usr/bin/q")], Some(1));
        assert_eq!(both.paths[Path::new("/etc/x")], None);

        // The first format, one sysroot's answers, is this tool's.
        let first = br#"{"format":1,"sysroot":"/","status":null,"packages":[],"paths":{}}"#;
        assert!(side_file::recognise::<OwnerFile>(first));
        assert!(!side_file::recognise::<OwnerFile>(br#"{"format":1,"notes":"mine"}"#));

        // A package changed: the state moved, nothing is served.
        std::fs::write(&status, "changed").unwrap();
        assert_eq!(read(&path, &root, FileState::read(&status).as_ref()), None);
    }
}
