//! The built tree as every export reads it: the manifest's entries in its order, each checked against the tree on disk, with owners and hard links, and file contents read only from inside the tree.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::owners::Owners;
use crate::build::manifest::Manifest;
use crate::vocab::{EntryType, Sha256};

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        size: u64,
        /// From the manifest.
        sha256: Sha256,
    },
    /// A further name of the file at `entries[to]` (same inode), which
    /// comes earlier in the sorted order.
    HardLink {
        to: usize,
    },
    Symlink {
        target: PathBuf,
    },
    /// Only the initramfs adds one (`/dev/console`); a tree never has any.
    CharDevice {
        major: u32,
        minor: u32,
    },
}

/// One path of the tree, `/` left out.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Root path, such as `/usr/bin/bash`.
    pub path: PathBuf,
    pub kind: Kind,
    /// Permission bits (`& 07777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Entry {
    /// The root path without its leading `/`.
    pub fn relative(&self) -> &Path {
        self.path.strip_prefix("/").unwrap_or(&self.path)
    }
}

/// A built tree and its entries, sorted as the manifest sorts them (a
/// directory before its content).
#[derive(Debug)]
pub struct Tree {
    /// The host folder of the tree.
    pub root: PathBuf,
    pub entries: Vec<Entry>,
    /// The one timestamp of every entry.
    pub epoch: i64,
    root_fd: OwnedFd,
}

impl Tree {
    /// Reads the tree at `root` as `manifest` describes it. Every entry is
    /// `lstat`ed: a type, mode, size or link target that differs from the
    /// manifest is an error (the tree was changed after its build), so an
    /// export always says what the manifest says.
    pub fn read(root: &Path, manifest: &Manifest, owners: &Owners, epoch: i64) -> Result<Tree> {
        let root_fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("failed to open the tree `{}`", root.display()))?;
        let mut entries = Vec::with_capacity(manifest.entries.len());
        let mut inodes: HashMap<(u64, u64), usize> = HashMap::new();
        for item in &manifest.entries {
            let host = root.join(item.path.strip_prefix("/").unwrap_or(&item.path));
            let meta = std::fs::symlink_metadata(&host)
                .with_context(|| format!("failed to inspect `{}`", host.display()))?;
            let mode = item.mode.bits();
            let stale = |what: &str| {
                anyhow::anyhow!(
                    "`{}` is not what the manifest says ({what}): the tree changed after its build; run the build with --force",
                    host.display()
                )
            };
            let kind = match item.kind {
                EntryType::Dir if meta.is_dir() => Kind::Dir,
                EntryType::Symlink if meta.file_type().is_symlink() => {
                    let target = item.target.clone().ok_or_else(|| stale("no link target"))?;
                    let on_disk = std::fs::read_link(&host)
                        .with_context(|| format!("failed to read the link `{}`", host.display()))?;
                    if on_disk != target {
                        return Err(stale("another link target"));
                    }
                    Kind::Symlink { target }
                }
                EntryType::File if meta.is_file() => {
                    let size = item.size.ok_or_else(|| stale("no size"))?;
                    if meta.len() != size {
                        return Err(stale("another size"));
                    }
                    let sha256 = item.sha256.ok_or_else(|| stale("no digest"))?;
                    match inodes.get(&(meta.dev(), meta.ino())) {
                        Some(&to) => Kind::HardLink { to },
                        None => {
                            inodes.insert((meta.dev(), meta.ino()), entries.len());
                            Kind::File { size, sha256 }
                        }
                    }
                }
                _ => return Err(stale("another type")),
            };
            if item.kind != EntryType::Symlink && meta.mode() & 0o7777 != mode {
                return Err(stale("another mode"));
            }
            let (uid, gid) = owners.of(&item.path);
            entries.push(Entry { path: item.path.clone(), kind, mode, uid, gid });
        }
        Ok(Tree { root: root.to_path_buf(), entries, epoch, root_fd })
    }

    /// Opens a regular file of the tree for reading, refusing any symlink
    /// and any path that leaves the tree (`openat2(2)`), so that an export
    /// reads the tree and nothing else.
    pub fn open(&self, entry: &Entry) -> Result<File> {
        let fd = rustix::fs::openat2(
            &self.root_fd,
            entry.relative(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .with_context(|| {
            format!("failed to open `{}` in `{}`", entry.path.display(), self.root.display())
        })?;
        Ok(File::from(fd))
    }

    /// The entry at a root path.
    pub fn find(&self, path: &Path) -> Option<usize> {
        self.entries.binary_search_by(|e| e.path.as_path().cmp(path)).ok()
    }

    /// Every name of each file that has more than one (indices, sorted).
    pub fn hard_link_groups(&self) -> Vec<Vec<usize>> {
        let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, entry) in self.entries.iter().enumerate() {
            if let Kind::HardLink { to } = entry.kind {
                groups.entry(to).or_insert_with(|| vec![to]).push(i);
            }
        }
        let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
        groups.sort();
        groups
    }

    /// Adds an entry that is not on disk (the initramfs's console), in its
    /// sorted place; hard-link indices after it are moved along.
    pub fn insert(&mut self, entry: Entry) -> Result<()> {
        let at = match self.entries.binary_search_by(|e| e.path.cmp(&entry.path)) {
            Ok(_) => bail!("`{}` is already in the tree", entry.path.display()),
            Err(at) => at,
        };
        for e in &mut self.entries {
            if let Kind::HardLink { to } = &mut e.kind
                && *to >= at
            {
                *to += 1;
            }
        }
        self.entries.insert(at, entry);
        Ok(())
    }

    /// The size of a regular file's content (0 for anything else).
    pub fn content_size(entry: &Entry) -> u64 {
        match entry.kind {
            Kind::File { size, .. } => size,
            _ => 0,
        }
    }
}
