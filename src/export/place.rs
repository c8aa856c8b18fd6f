//! Where an export lands, by the one rule of [`crate::build::output`]: refuse a path this tool did not write, write the new output beside it, rename it into place, and record it in the folder's ledger.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::digest::Digested;
use crate::build::output::{self, Found, Refusal};
use crate::{build::install, fsutil};

/// Whether `path` may receive an export of the tree at `tree`: not a place
/// the guard refuses, not the tree or anything in it, and nothing there,
/// an empty folder, or an earlier output of this tool.
pub fn claim(sysroot: &Path, tree: &Path, path: &Path) -> Result<Found, Refusal> {
    output::Guard::new(sysroot).check(path)?;
    let (at, tree_at) = (output::normalise(path), output::normalise(tree));
    if at.starts_with(&tree_at) || tree_at.starts_with(&at) {
        return Err(Refusal {
            path: path.to_path_buf(),
            why: format!(
                "it is the tree being exported (`{}`), or inside it, or a folder holding it",
                tree.display()
            ),
        });
    }
    output::check_recorded(path)
}

/// A fresh, randomly named file beside `path`, for [`commit_file`].
pub fn new_file(path: &Path) -> Result<tempfile::NamedTempFile> {
    let parent = fsutil::parent_dir(path);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create `{}`", parent.display()))?;
    fsutil::user_temp_file(parent, &format!(".{}.", file_name(path)))
}

/// Renames a finished file into place, after a last look at what is
/// there, and records it with the digest taken while it was written.
pub fn commit_file(file: tempfile::NamedTempFile, path: &Path, digest: &Digested) -> Result<()> {
    let found = output::check_recorded(path)?;
    if found != Found::Nothing && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        // An earlier export of another format, at the same path: ours.
        fsutil::remove_tree(path)?;
    }
    file.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    output::record_file(path, digest.size, &digest.sha256)
}

/// A fresh staging folder beside `path` (`.<name>.staging-<pid>`), after
/// removing those that killed runs left.
pub fn staging_dir(path: &Path) -> Result<PathBuf> {
    let parent = fsutil::parent_dir(path);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create `{}`", parent.display()))?;
    let mut warnings = Vec::new();
    install::remove_stale_staging(path, &mut warnings)?;
    let staging = install::staging_path(path)?;
    fsutil::remove_tree(&staging)?;
    std::fs::create_dir(&staging)
        .with_context(|| format!("failed to create `{}`", staging.display()))?;
    Ok(staging)
}

/// Swaps a complete staging folder in at `path` (one `renameat2(2)`),
/// after a last look at what is there, removes what it replaced, and
/// records the new folder.
pub fn commit_dir(staging: &Path, path: &Path) -> Result<()> {
    let result = (|| {
        let found = output::check_recorded(path)?;
        if found != Found::Nothing && std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
            // An earlier export of another format, at the same path: ours.
            std::fs::remove_file(path)
                .with_context(|| format!("failed to remove `{}`", path.display()))?;
        }
        install::swap_in(staging, path)
    })();
    match result {
        Ok(Some(previous)) => fsutil::remove_tree(&previous)?,
        Ok(None) => {}
        Err(e) => {
            let _ = fsutil::remove_tree(staging);
            return Err(e);
        }
    }
    output::record(path)
}

/// Removes a staging folder after a failure.
pub fn discard(staging: &Path) {
    let _ = fsutil::remove_tree(staging);
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The total size of the regular files under `path` (or of `path`).
pub fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| size_of(&e.path())).sum()
}
