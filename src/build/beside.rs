//! The files beside a tree (manifest, SBOM, stamp, digest and SHA1 caches), written as pending files before the tree is swapped in and renamed into place after it, so that the manifest and stamp in place always describe the tree in place.
//!
//! The order of a build's last steps, and what an interruption leaves:
//! (They live in the folder `.rootfs/` beside the tree; earlier versions
//! wrote them as siblings of the tree, `<out>.manifest.json` and
//! `../.rootfs-digests.json`, which a build still recognises as its own
//! and removes once the new ones are in place.)
//!
//! 1. the tree is complete in its staging folder; `<name>.manifest.json.pending`
//!    and `<name>.stamp.json.pending` are written for it (the stamp records the
//!    staging folder's device and inode, which the rename keeps);
//! 2. the tree is swapped in;
//! 3. the pending manifest, then the pending stamp, are renamed into place.
//!
//! Interrupted before 2, the old tree is in place with its own manifest and
//! stamp. Interrupted between 2 and 3, the stamp in place names another tree
//! folder, so the next build rebuilds, and [`Beside::current_manifest`]
//! takes the pending manifest, whose stamp does name the tree in place.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::build::digest_cache::DigestFile;
use crate::build::license_cache::LicenseFile;
use crate::build::manifest::{self, Manifest};
use crate::build::output::{self, Refusal};
use crate::build::owner_cache::OwnerFile;
use crate::build::sha1_cache::Sha1File;
use crate::build::side_file;
use crate::build::stamp::{self, Stamp};
use crate::fsutil;
use crate::vocab::FileState;

/// The paths of a tree and of the files beside it.
#[derive(Clone, Debug)]
pub struct Beside {
    pub out: PathBuf,
    pub manifest: PathBuf,
    /// `<out>.spdx.json`, written and committed with the manifest.
    pub sbom: PathBuf,
    pub stamp: PathBuf,
    /// The digest cache, shared by every tree in the same folder.
    pub digests: PathBuf,
    /// The SBOM's SHA1s by sha256, shared the same way.
    pub sha1s: PathBuf,
    /// The licenses of copyright files by their state, shared the same way.
    pub licenses: PathBuf,
    /// The owners of the files a build asked about, shared the same way.
    pub owners: PathBuf,
}

/// What a file of an earlier version's layout is, to recognise it.
#[derive(Clone, Copy, Debug)]
enum LegacyKind {
    Manifest,
    Sbom,
    Stamp,
    Digests,
    Sha1s,
}

impl LegacyKind {
    fn recognise(self, bytes: &[u8]) -> bool {
        match self {
            LegacyKind::Manifest => Manifest::parse(bytes).is_ok(),
            LegacyKind::Sbom => crate::build::sbom::recognise(bytes),
            LegacyKind::Stamp => serde_json::from_slice::<Stamp>(bytes).is_ok(),
            LegacyKind::Digests => side_file::recognise::<DigestFile>(bytes),
            LegacyKind::Sha1s => side_file::recognise::<Sha1File>(bytes),
        }
    }
}

/// The pending files a build wrote, each with its state right after: the
/// state changes if anything else writes or replaces the file.
#[derive(Debug, Default)]
pub struct Written(Vec<(PathBuf, FileState)>);

impl Written {
    /// Notes the file just written at `path`; returns its state.
    fn record(&mut self, path: PathBuf) -> Result<FileState> {
        let state = FileState::read(&path)
            .with_context(|| format!("failed to inspect `{}`", path.display()))?;
        self.0.push((path, state.clone()));
        Ok(state)
    }

    /// Adds the files another step of the same build wrote.
    pub(crate) fn merge(&mut self, other: Written) {
        self.0.extend(other.0);
    }

    /// Whether `path` is a file this build wrote, unchanged since.
    fn holds(&self, path: &Path) -> bool {
        self.0.iter().any(|(p, state)| p == path && FileState::read(path).as_ref() == Some(state))
    }
}

fn pending(path: &Path) -> PathBuf {
    fsutil::sibling(path, ".pending")
}

impl Beside {
    pub fn of(out: &Path) -> Beside {
        Beside {
            out: out.to_path_buf(),
            manifest: manifest::path_for(out),
            sbom: crate::build::sbom::path_for(out),
            stamp: stamp::path_for(out),
            digests: crate::build::digest_cache::path_for(out),
            sha1s: crate::build::sha1_cache::path_for(out),
            licenses: crate::build::license_cache::path_for(out),
            owners: crate::build::owner_cache::path_for(out),
        }
    }

    /// Where earlier versions wrote the manifest, SBOM, stamp and caches:
    /// beside the tree, in its parent folder. Each path, with what it is.
    fn legacy(&self) -> [(PathBuf, LegacyKind); 5] {
        let parent = fsutil::parent_dir(&self.out);
        [
            (fsutil::sibling(&self.out, ".manifest.json"), LegacyKind::Manifest),
            (fsutil::sibling(&self.out, ".spdx.json"), LegacyKind::Sbom),
            (fsutil::sibling(&self.out, ".stamp.json"), LegacyKind::Stamp),
            (parent.join(".rootfs-digests.json"), LegacyKind::Digests),
            (parent.join(".rootfs-sha1.json"), LegacyKind::Sha1s),
        ]
    }

    /// Removes the files of [`Beside::legacy`] that are this tool's; a
    /// file there that is not is left alone.
    fn remove_legacy(&self) {
        for (path, kind) in self.legacy() {
            if std::fs::read(&path).is_ok_and(|bytes| kind.recognise(&bytes)) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Refuses, before anything is written, when the tree folder or any
    /// file beside it holds something this tool did not write. `written`:
    /// the pending files this build wrote, with their states then; one
    /// still in that state is this build's own and is not read again (the
    /// SBOM and stamp of a large tree are tens of megabytes each).
    pub(crate) fn claim(&self, written: &Written) -> Result<(), Refusal> {
        let is_stamp = |b: &[u8]| serde_json::from_slice::<Stamp>(b).is_ok();
        let check = |path: &Path, what: &str, recognise: &dyn Fn(&[u8]) -> bool| {
            if written.holds(path) {
                return Ok(output::Found::Ours);
            }
            output::check_file(path, what, recognise)
        };
        // Each manifest is read once: the one that recognises it is the one
        // the tree is compared with. With no tree in place (a first or cold
        // build) there is nothing to compare, and a manifest is recognised
        // by its shape without building its entries (tens of megabytes for
        // a large tree, on top of everything the build holds at its end).
        let tree_in_place = std::fs::read_dir(&self.out).is_ok_and(|mut d| d.next().is_some());
        let mut manifests = Vec::new();
        for path in [&self.manifest, &pending(&self.manifest)] {
            if !tree_in_place && written.holds(path) {
                continue;
            }
            let mut parsed = None;
            output::check_file(path, "a manifest", |b| {
                if !tree_in_place {
                    return Manifest::recognise(b);
                }
                parsed = Manifest::parse(b).ok();
                parsed.is_some()
            })?;
            manifests.extend(parsed);
        }
        check(&self.sbom, "an SBOM", &crate::build::sbom::recognise)?;
        check(&pending(&self.sbom), "an SBOM", &crate::build::sbom::recognise)?;
        check(&self.stamp, "a stamp", &is_stamp)?;
        check(&pending(&self.stamp), "a stamp", &is_stamp)?;
        output::check_side_file::<DigestFile>(&self.digests)?;
        output::check_side_file::<Sha1File>(&self.sha1s)?;
        output::check_side_file::<LicenseFile>(&self.licenses)?;
        output::check_side_file::<OwnerFile>(&self.owners)?;
        // A tree of an earlier version is described by the manifest beside
        // it, where that version wrote it.
        let legacy = fsutil::sibling(&self.out, ".manifest.json");
        manifests.extend(Manifest::read(&legacy).ok());
        let manifests: Vec<&Manifest> = manifests.iter().collect();
        output::check_tree(&self.out, &manifests)?;
        Ok(())
    }

    /// Writes the manifest of the staged tree as pending; returns the state
    /// of the file, which the rename into place keeps.
    pub(crate) fn write_pending_manifest(
        &self,
        manifest: &Manifest,
        written: &mut Written,
    ) -> Result<FileState> {
        let path = pending(&self.manifest);
        fsutil::write_side_file_with(&path, |w| manifest.write_json(w))?;
        written.record(path)
    }

    /// Writes the SBOM of the staged tree as pending; returns the state of
    /// the file, which the rename into place keeps.
    pub(crate) fn write_pending_sbom(
        &self,
        write: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
        written: &mut Written,
    ) -> Result<FileState> {
        let path = pending(&self.sbom);
        fsutil::write_side_file_with(&path, write)?;
        written.record(path)
    }

    pub(crate) fn write_pending_stamp(&self, stamp: &Stamp, written: &mut Written) -> Result<()> {
        let path = pending(&self.stamp);
        fsutil::write_side_file_with(&path, |w| stamp.write_json(w))?;
        written.record(path).map(drop)
    }

    /// Renames the pending manifest and SBOM, then the pending stamp, into
    /// place.
    pub(crate) fn commit(&self) -> Result<()> {
        for path in [&self.manifest, &self.sbom, &self.stamp] {
            std::fs::rename(pending(path), path)
                .with_context(|| format!("failed to write `{}`", path.display()))?;
        }
        self.remove_legacy();
        Ok(())
    }

    /// Removes pending files of a build that failed.
    pub(crate) fn discard_pending(&self) {
        for path in [&self.manifest, &self.sbom, &self.stamp] {
            let _ = std::fs::remove_file(pending(path));
        }
    }

    /// The manifest that describes the tree now at `out`: the one in place,
    /// or the pending one of a build interrupted after its swap. An error
    /// when neither does, rather than an answer from an older manifest.
    pub fn current_manifest(&self) -> Result<Manifest> {
        for (manifest, stamp) in [
            (self.manifest.clone(), self.stamp.clone()),
            (pending(&self.manifest), pending(&self.stamp)),
        ] {
            if Stamp::read(&stamp).is_some_and(|s| s.describes(&self.out, &manifest)) {
                return Manifest::read(&manifest);
            }
        }
        if !self.out.exists() {
            anyhow::bail!(
                "no build at `{}` yet: run `cargo xtask rootfs build` first",
                self.out.display()
            );
        }
        anyhow::bail!(
            "the manifest beside `{}` does not describe the tree there (it was moved, copied, or changed by an interrupted build): run `cargo xtask rootfs build` again",
            self.out.display()
        )
    }
}
