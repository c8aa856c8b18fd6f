//! Output paths and the one rule for replacing them: a path is replaced only when nothing is there, when it is an empty folder, or when it is an output this tool wrote.
//!
//! Every command that writes (a build, and anything that builds first, an
//! export) checks each path it is about to replace with these functions
//! before it writes anything, and again just before the final rename. A
//! refusal is a [`Refusal`] (exit status 2), and `--force` never overrides
//! it: it only forces a rebuild of an output that is ours.
//!
//! How an output is recognised as ours:
//! - a tree: every path in it is a path of the manifest beside it (or of the
//!   manifest of the build that was interrupted while swapping it in), with
//!   the same type. Edited files are still ours; a file the user added is
//!   not, and the whole folder is then refused rather than deleted with it;
//! - a file describing a tree (manifest, stamp, digest cache, in the
//!   folder `.rootfs/` beside it): its content
//!   parses as that file of this tool;
//! - anything else this tool writes (an export): it is recorded in the
//!   ledger `.rootfs/outputs.json` of its folder, a file by size and sha256,
//!   a folder by its listing.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::build::manifest::Manifest;
use crate::build::side_file::{self, SideFile};
use crate::fsutil;
use crate::vocab::EntryType;

/// A path this tool will not replace, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub path: PathBuf,
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refusing to replace `{}`: {}\nhelp: give an output path that does not exist yet, an empty folder, or an earlier output of this tool; nothing was written or removed",
            self.path.display(),
            self.why
        )
    }
}

impl std::error::Error for Refusal {}

fn refuse(path: &Path, why: impl Into<String>) -> Refusal {
    Refusal { path: path.to_path_buf(), why: why.into() }
}

/// What is at an output path that may be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Nothing,
    EmptyDir,
    /// An output of this tool.
    Ours,
}

/// Places an output may never be, whatever they hold: `/`, the sysroot and
/// the folders holding it, the current directory and its parents, the home
/// directory and its parents.
#[derive(Clone, Debug)]
pub struct Guard {
    sysroot: PathBuf,
    cwd: Option<PathBuf>,
    home: Option<PathBuf>,
}

impl Guard {
    pub fn new(sysroot: &Path) -> Guard {
        Guard {
            sysroot: normalise(sysroot),
            cwd: std::env::current_dir().ok().map(|d| normalise(&d)),
            home: std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| normalise(h.as_ref())),
        }
    }

    /// Refuses the places listed on [`Guard`].
    pub fn check(&self, path: &Path) -> Result<(), Refusal> {
        let at = normalise(path);
        if at == Path::new("/") {
            return Err(refuse(path, "it is the root of the filesystem"));
        }
        if self.sysroot.starts_with(&at) {
            return Err(refuse(path, "it is the sysroot, or a folder holding it"));
        }
        if self.sysroot != Path::new("/") && at.starts_with(&self.sysroot) {
            return Err(refuse(path, "it is inside the sysroot, which the build only reads"));
        }
        if self.cwd.as_ref().is_some_and(|cwd| cwd.starts_with(&at)) {
            return Err(refuse(path, "it is the current directory, or a folder holding it"));
        }
        if self.home.as_ref().is_some_and(|home| home.starts_with(&at)) {
            return Err(refuse(path, "it is the home directory, or a folder holding it"));
        }
        Ok(())
    }
}

/// An absolute path with `.` and `..` taken out and every symlink of its
/// parents resolved, so that two spellings of one place compare equal. The
/// last component is not followed: a symlink there is judged as a symlink.
pub fn normalise(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let lexical = crate::resolve::rootpath::lexical(&absolute);
    let (Some(parent), Some(name)) = (lexical.parent(), lexical.file_name()) else {
        return lexical;
    };
    // The nearest parent that exists, with its symlinks resolved.
    let mut base = parent.to_path_buf();
    let mut rest = Vec::new();
    while std::fs::canonicalize(&base).is_err() {
        match (base.file_name().map(|n| n.to_os_string()), base.parent()) {
            (Some(n), Some(p)) => {
                rest.push(n);
                base = p.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&base).unwrap_or(base);
    out.extend(rest.iter().rev());
    out.push(name);
    out
}

/// Whether the tree folder at `out` may be replaced: nothing there, an
/// empty folder, or a tree every path of which one of `manifests` lists
/// with the same type.
pub fn check_tree(out: &Path, manifests: &[&Manifest]) -> Result<Found, Refusal> {
    let Some(meta) = lstat(out)? else { return Ok(Found::Nothing) };
    if meta.file_type().is_symlink() {
        return Err(refuse(out, "it is a symlink; give the folder it points to, if you mean that"));
    }
    if !meta.is_dir() {
        return Err(refuse(out, "it is a file, not a folder this tool wrote"));
    }
    let listing = listing(out)?;
    if listing.is_empty() {
        return Ok(Found::EmptyDir);
    }
    if manifests.is_empty() {
        return Err(refuse(
            out,
            format!(
                "it is a folder with content this tool did not write (no manifest of this tool is beside it at `{}`)",
                crate::build::manifest::path_for(out).display()
            ),
        ));
    }
    let foreign: Vec<&PathBuf> = listing
        .iter()
        .filter(|(rel, kind)| {
            let path = Path::new("/").join(rel);
            !manifests.iter().any(|m| m.entry(&path).is_some_and(|e| Some(e.kind) == *kind))
        })
        .map(|(rel, _)| rel)
        .collect();
    if foreign.is_empty() {
        return Ok(Found::Ours);
    }
    let shown: Vec<String> = foreign.iter().take(5).map(|p| format!("`{}`", p.display())).collect();
    let more =
        if foreign.len() > 5 { format!(" and {} more", foreign.len() - 5) } else { String::new() };
    Err(refuse(
        out,
        format!(
            "it holds {}{more}, which this tool did not write; move them out of the folder first",
            shown.join(", ")
        ),
    ))
}

/// Whether the file at `path` may be replaced: nothing there, or a regular
/// file whose content `recognise` accepts as this tool's `what`.
pub fn check_file(
    path: &Path,
    what: &str,
    recognise: impl FnOnce(&[u8]) -> bool,
) -> Result<Found, Refusal> {
    let Some(meta) = lstat(path)? else { return Ok(Found::Nothing) };
    if !meta.is_file() {
        return Err(refuse(path, format!("it should be {what} of this tool, and is not a file")));
    }
    let bytes = std::fs::read(path).map_err(|e| refuse(path, format!("it cannot be read: {e}")))?;
    if recognise(&bytes) { Ok(Found::Ours) } else { Err(not_ours(path, what)) }
}

/// The refusal of a file at `path` that is not `what` of this tool.
pub(crate) fn not_ours(path: &Path, what: &str) -> Refusal {
    refuse(path, format!("it is not {what} of this tool"))
}

/// [`check_file`] for a file of `.rootfs/` of type `T`.
pub fn check_side_file<T: SideFile>(path: &Path) -> Result<Found, Refusal> {
    check_file(path, T::WHAT, side_file::recognise::<T>)
}

/// Where the ledger of the outputs in `path`'s folder is.
fn ledger_path(path: &Path) -> PathBuf {
    side_file::path_for::<Ledger>(path)
}

/// `.rootfs/outputs.json`: the outputs of this tool in one folder that no
/// manifest describes, by file name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Ledger {
    outputs: BTreeMap<String, Recorded>,
}

impl SideFile for Ledger {
    const NAME: &'static str = "outputs.json";
    const WHAT: &'static str = "a ledger of outputs";
    const PRETTY: bool = true;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
enum Recorded {
    File { size: u64, sha256: String },
    Dir { entries: BTreeMap<PathBuf, EntryType> },
}

fn read_ledger(path: &Path) -> Result<Ledger, Refusal> {
    let at = ledger_path(path);
    match check_side_file::<Ledger>(&at)? {
        Found::Nothing | Found::EmptyDir => Ok(Ledger::default()),
        Found::Ours => {
            let bytes = std::fs::read(&at).map_err(|e| refuse(&at, e.to_string()))?;
            side_file::parse(&bytes).ok_or_else(|| refuse(&at, "it changed while it was read"))
        }
    }
}

fn file_key(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether an output recorded in its folder's ledger (a file or a folder)
/// may be replaced: nothing there, an empty folder, a file with the size
/// and sha256 recorded, or a folder every path of which was recorded.
pub fn check_recorded(path: &Path) -> Result<Found, Refusal> {
    let Some(meta) = lstat(path)? else { return Ok(Found::Nothing) };
    if meta.file_type().is_symlink() {
        return Err(refuse(path, "it is a symlink"));
    }
    let ledger = read_ledger(path)?;
    let recorded = ledger.outputs.get(&file_key(path));
    if meta.is_dir() {
        let listing = listing(path)?;
        if listing.is_empty() {
            return Ok(Found::EmptyDir);
        }
        let Some(Recorded::Dir { entries }) = recorded else {
            return Err(refuse(path, "it is a folder with content that this tool did not write"));
        };
        let foreign: Vec<&PathBuf> = listing
            .iter()
            .filter(|(rel, kind)| entries.get(rel).copied() != *kind)
            .map(|(rel, _)| rel)
            .collect();
        return match foreign.first() {
            None => Ok(Found::Ours),
            Some(first) => Err(refuse(
                path,
                format!("it holds `{}`, which this tool did not write", first.display()),
            )),
        };
    }
    match recorded {
        Some(Recorded::File { size, sha256 }) if meta.is_file() && meta.size() == *size => {
            if fsutil::sha256_file(path).is_ok_and(|digest| &digest == sha256) {
                Ok(Found::Ours)
            } else {
                Err(refuse(path, "it changed since this tool wrote it"))
            }
        }
        _ => Err(refuse(path, "it is a file this tool did not write")),
    }
}

/// Records an output just written at `path` (a file or a folder) in its
/// folder's ledger, so that a later run may replace it.
pub fn record(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("failed to inspect `{}`", path.display()))?;
    let recorded = if meta.is_dir() {
        let mut entries = BTreeMap::new();
        for (rel, kind) in listing(path).map_err(anyhow::Error::new)? {
            let kind = kind.with_context(|| {
                format!(
                    "`{}` in `{}` is not a file, folder or symlink",
                    rel.display(),
                    path.display()
                )
            })?;
            entries.insert(rel, kind);
        }
        Recorded::Dir { entries }
    } else {
        let sha256 = fsutil::sha256_file(path)
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        Recorded::File { size: meta.size(), sha256 }
    };
    insert(path, recorded)
}

/// Records a file just written at `path` whose size and sha256 the writer
/// computed as it wrote it, so that a big archive is not read again. The
/// caller vouches for the digest; [`check_recorded`] will compare it with
/// the file.
pub fn record_file(path: &Path, size: u64, sha256: &str) -> Result<()> {
    insert(path, Recorded::File { size, sha256: sha256.to_string() })
}

fn insert(path: &Path, recorded: Recorded) -> Result<()> {
    let mut ledger = read_ledger(path).map_err(anyhow::Error::new)?;
    ledger.outputs.insert(file_key(path), recorded);
    side_file::write(&ledger_path(path), &ledger)
}

fn lstat(path: &Path) -> Result<Option<std::fs::Metadata>, Refusal> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(refuse(path, format!("it cannot be inspected: {e}"))),
    }
}

/// Every path under `dir`, relative to it, with its type (`None` for a
/// device, socket or fifo, which this tool never writes); symlinks are not
/// followed. Sorted.
fn listing(dir: &Path) -> Result<Vec<(PathBuf, Option<EntryType>)>, Refusal> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let here = dir.join(&rel);
        let entries = std::fs::read_dir(&here)
            .map_err(|e| refuse(dir, format!("`{}` cannot be listed: {e}", here.display())))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| refuse(dir, format!("`{}` cannot be listed: {e}", here.display())))?;
            let kind = entry
                .file_type()
                .map_err(|e| refuse(dir, format!("`{}`: {e}", entry.path().display())))?;
            let child = rel.join(entry.file_name());
            let entry_type = if kind.is_dir() {
                pending.push(child.clone());
                Some(EntryType::Dir)
            } else if kind.is_symlink() {
                Some(EntryType::Symlink)
            } else if kind.is_file() {
                Some(EntryType::File)
            } else {
                None
            };
            out.push((child, entry_type));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_roots_parents_and_the_sysroot() {
        let guard = Guard::new(Path::new("/"));
        assert!(guard.check(Path::new("/")).is_err());
        assert!(guard.check(Path::new("/usr/..")).is_err());
        let cwd = std::env::current_dir().unwrap();
        assert!(guard.check(&cwd).is_err());
        assert!(guard.check(cwd.parent().unwrap()).is_err());
        assert!(guard.check(&cwd.join("target/rootfs/x")).is_ok());
        let tmp = tempfile::tempdir().unwrap();
        let guard = Guard::new(&tmp.path().join("sysroot"));
        assert!(guard.check(tmp.path()).is_err());
        assert!(guard.check(&tmp.path().join("sysroot/out")).is_err());
        assert!(guard.check(&tmp.path().join("out")).is_ok());
    }

    #[test]
    fn recorded_files_are_ours_until_they_change() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("x.tar");
        assert_eq!(check_recorded(&file).unwrap(), Found::Nothing);
        std::fs::write(&file, b"user data").unwrap();
        assert!(check_recorded(&file).is_err());
        record(&file).unwrap();
        assert_eq!(check_recorded(&file).unwrap(), Found::Ours);
        std::fs::write(&file, b"user edit").unwrap();
        assert!(check_recorded(&file).is_err());
        record_file(&file, 9, &fsutil::sha256_hex(b"user edit")).unwrap();
        assert_eq!(check_recorded(&file).unwrap(), Found::Ours);
        record_file(&file, 9, &fsutil::sha256_hex(b"something")).unwrap();
        assert!(check_recorded(&file).is_err());
    }
}
