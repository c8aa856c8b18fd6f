//! Writing a plan to disk: the only code that writes a tree, into a staging folder beside the output that is swapped in when complete.
//!
//! Invariants:
//! - nothing is written outside the output's parent folder: the staging tree
//!   is created fresh, every parent directory is opened with `openat2(2)`
//!   and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and every file is created
//!   with `O_CREAT | O_EXCL | O_NOFOLLOW`, so no symlink, whoever made it, is
//!   ever written through;
//! - the previous output is replaced in one `renameat2(2)` with
//!   `RENAME_EXCHANGE`, so a failed or interrupted build leaves it as it was;
//! - every timestamp is set to one fixed epoch (a hard link keeps the host
//!   file's own), and directories are stamped after their content, deepest
//!   first, so two builds give identical trees;
//! - the digest recorded for a file is the digest of the bytes in the tree
//!   (see `build/install/copy.rs`).

mod copy;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use rustix::fs::{Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps};

use crate::build::digest_cache::Digests;
use crate::build::manifest::{CommandEntry, Manifest, ManifestEntry};
use crate::build::plan::{Entry, EntryKind, Plan};
use crate::fsutil;
use crate::vocab::{self, EntryType, Sha256};

/// How regular files get into the tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LinkMode {
    /// Copies (a reflink where the filesystem can, else a read and write
    /// that also computes the digest).
    #[default]
    Copy,
    /// Hard links to the host files where possible: fast, for throwaway
    /// trees, but a write inside the tree writes the host file.
    Hard,
}

/// Settings of one install.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// Seconds since the Unix epoch for every timestamp.
    pub epoch: i64,
    pub link: LinkMode,
    /// Show a progress bar on a terminal.
    pub progress: bool,
    /// Digests already known, by host path, with the file state they were
    /// computed for (from the digest cache).
    pub known_digests: Digests,
}

/// A complete tree in its staging folder, not yet swapped in.
pub struct Staged {
    /// The staging folder, beside the output.
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Digests of the host files, for the next build.
    pub digests: Digests,
    /// Things that went wrong without making the build wrong (a stale
    /// staging folder that could not be removed).
    pub warnings: Vec<String>,
}

/// Writes `plan` into a fresh staging folder beside `out`. On failure the
/// staging folder is removed and `out` is untouched.
pub(crate) fn stage(plan: &Plan, out: &Path, options: &InstallOptions) -> Result<Staged> {
    let parent = fsutil::parent_dir(out);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create `{}`", parent.display()))?;
    let staging = staging_path(out)?;
    let mut warnings = Vec::new();
    remove_stale_staging(out, &mut warnings)?;
    match write_tree(plan, &staging, options) {
        Ok((manifest, digests)) => Ok(Staged { path: staging, manifest, digests, warnings }),
        Err(e) => {
            let _ = fsutil::remove_tree(&staging);
            Err(e)
        }
    }
}

/// Swaps the staged tree in at `out` with one `renameat2(2)`. Returns where
/// the previous tree now is (the staging path), for the caller to remove
/// once the files beside the new tree are in place.
pub fn swap_in(staged: &Path, out: &Path) -> Result<Option<PathBuf>> {
    let flags = match std::fs::symlink_metadata(out) {
        Ok(meta) if meta.is_dir() => RenameFlags::EXCHANGE,
        Ok(_) => bail!("`{}` exists and is not a folder", out.display()),
        Err(_) => RenameFlags::NOREPLACE,
    };
    rustix::fs::renameat_with(rustix::fs::CWD, staged, rustix::fs::CWD, out, flags).with_context(
        || format!("failed to move the new tree `{}` to `{}`", staged.display(), out.display()),
    )?;
    Ok((flags == RenameFlags::EXCHANGE).then(|| staged.to_path_buf()))
}

/// `.<name>.staging-<pid>` beside `out`.
pub fn staging_path(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("output `{}` has no folder name", out.display()))?;
    let mut staging = std::ffi::OsString::from(".");
    staging.push(name);
    staging.push(format!(".staging-{}", std::process::id()));
    Ok(out.with_file_name(staging))
}

/// Staging folders of builds of `out` that were killed. One that cannot be
/// removed is a warning, not a reason to refuse building.
pub fn remove_stale_staging(out: &Path, warnings: &mut Vec<String>) -> Result<()> {
    let parent = fsutil::parent_dir(out);
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.staging-");
    let entries = std::fs::read_dir(parent)
        .with_context(|| format!("failed to list `{}`", parent.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list `{}`", parent.display()))?;
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        // A build still running (same name, live pid) keeps its folder.
        let alive =
            rest.parse::<i32>().ok().and_then(rustix::process::Pid::from_raw).is_some_and(|pid| {
                // EPERM: alive, but another user's.
                pid != rustix::process::getpid()
                    && !matches!(
                        rustix::process::test_kill_process(pid),
                        Err(rustix::io::Errno::SRCH)
                    )
            });
        if !alive && let Err(e) = fsutil::remove_tree(&entry.path()) {
            warnings.push(format!("{e:#}"));
        }
    }
    Ok(())
}

/// The open directories of the staging tree, by root path.
struct Dirs {
    root: OwnedFd,
    by_path: HashMap<PathBuf, OwnedFd>,
}

impl Dirs {
    fn get(&self, path: &Path) -> Result<&OwnedFd> {
        if path == Path::new("/") {
            return Ok(&self.root);
        }
        self.by_path
            .get(path)
            .with_context(|| format!("parent `{}` was not created first", path.display()))
    }
}

/// A regular file as written.
pub(crate) struct WrittenFile {
    pub mode: u32,
    pub size: u64,
    pub sha256: Sha256,
    /// The host file's state when it was read, to reuse the digest.
    pub state: Option<crate::vocab::FileState>,
}

fn write_tree(
    plan: &Plan,
    staging: &Path,
    options: &InstallOptions,
) -> Result<(Manifest, Digests)> {
    let times = Timestamps {
        last_access: Timespec { tv_sec: options.epoch, tv_nsec: 0 },
        last_modification: Timespec { tv_sec: options.epoch, tv_nsec: 0 },
    };
    let sorted = plan.sorted();
    let dirs = create_dirs(staging, &sorted)?;
    let files = write_leaves(&dirs, &sorted, staging, options, &times)?;
    stamp_dirs(&dirs, &sorted, staging, &times)?;
    Ok(manifest_of(plan, &sorted, &files))
}

/// The staging folder and every directory of the plan, in order (a parent
/// sorts before its children), each opened once for what goes in it. They
/// are created private (0700) and get their modes at the end.
fn create_dirs(staging: &Path, sorted: &[(&PathBuf, &Entry)]) -> Result<Dirs> {
    std::fs::create_dir(staging)
        .with_context(|| format!("failed to create `{}`", staging.display()))?;
    let root = rustix::fs::open(
        staging,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("failed to open `{}`", staging.display()))?;
    let mut dirs = Dirs { root, by_path: HashMap::new() };
    for &(path, entry) in sorted {
        if let EntryKind::Dir { .. } = entry.kind {
            let in_staging = || format!("`{}` in `{}`", path.display(), staging.display());
            let (parent, name) = split(path)?;
            let parent_fd = dirs.get(parent)?;
            rustix::fs::mkdirat(parent_fd, name, Mode::from_raw_mode(0o700))
                .with_context(|| format!("failed to create directory {}", in_staging()))?;
            let fd = open_beneath(&dirs.root, path)
                .with_context(|| format!("failed to open {}", in_staging()))?;
            dirs.by_path.insert(path.clone(), fd);
        }
    }
    Ok(dirs)
}

/// Files and symlinks, in parallel.
fn write_leaves<'p>(
    dirs: &Dirs,
    sorted: &[(&'p PathBuf, &'p Entry)],
    staging: &Path,
    options: &InstallOptions,
    times: &Timestamps,
) -> Result<HashMap<&'p Path, WrittenFile>> {
    let leaves: Vec<(&'p PathBuf, &'p EntryKind)> = sorted
        .iter()
        .filter(|(_, e)| !matches!(e.kind, EntryKind::Dir { .. }))
        .map(|&(p, e)| (p, &e.kind))
        .collect();
    let progress = progress_bar(leaves.len(), options.progress);
    let reflink = AtomicBool::new(true);
    let written: Vec<Result<(&Path, Option<WrittenFile>)>> = leaves
        .par_iter()
        .map(|(path, kind)| {
            let (parent, name) = split(path)?;
            let dir = dirs.get(parent)?;
            let result =
                copy::write_leaf(dir, name, kind, times, options, &reflink).with_context(|| {
                    format!("failed to write `{}` in `{}`", path.display(), staging.display())
                });
            progress.inc(1);
            result.map(|w| (path.as_path(), w))
        })
        .collect();
    progress.finish_and_clear();
    let mut files = HashMap::new();
    for result in written {
        if let (path, Some(file)) = result? {
            files.insert(path, file);
        }
    }
    Ok(files)
}

/// Directory modes and times last, deepest first, so that adding children
/// does not move a stamped mtime and a read-only directory does not stop
/// its own filling.
fn stamp_dirs(
    dirs: &Dirs,
    sorted: &[(&PathBuf, &Entry)],
    staging: &Path,
    times: &Timestamps,
) -> Result<()> {
    let stamp = |fd: &OwnedFd, mode: u32, path: &Path| -> Result<()> {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
            .with_context(|| format!("failed to set the mode of `{}`", path.display()))?;
        rustix::fs::futimens(fd, times)
            .with_context(|| format!("failed to set the times of `{}`", path.display()))?;
        Ok(())
    };
    for &(path, entry) in sorted.iter().rev() {
        if let EntryKind::Dir { mode } = entry.kind {
            stamp(dirs.get(path)?, mode, path)?;
        }
    }
    stamp(&dirs.root, 0o755, staging)
}

/// The manifest of the written tree, and the digests of the host files.
fn manifest_of(
    plan: &Plan,
    sorted: &[(&PathBuf, &Entry)],
    files: &HashMap<&Path, WrittenFile>,
) -> (Manifest, Digests) {
    // On every core: each entry's reasons become text (libc has one per
    // program that needs it).
    let (entries, digests): (Vec<ManifestEntry>, Vec<Option<Digested>>) =
        sorted.par_iter().map(|&(path, entry)| manifest_entry(path, entry, files)).unzip();
    let digests: Digests = digests.into_iter().flatten().collect();
    let commands = plan
        .commands
        .iter()
        .map(|c| CommandEntry { name: c.name.clone(), path: c.path.clone(), kind: c.kind })
        .collect();
    let manifest = Manifest {
        format: crate::build::manifest::FORMAT,
        name: plan.name.clone(),
        commands,
        entries,
        portability: None,
    };
    (manifest, digests)
}

/// One entry of [`Digests`]: a host file, its state and sha256.
type Digested = (PathBuf, (vocab::FileState, Sha256));

/// The manifest's line for one entry, and for a file copied from the host,
/// its host path with the state and digest to keep.
fn manifest_entry(
    path: &Path,
    entry: &Entry,
    files: &HashMap<&Path, WrittenFile>,
) -> (ManifestEntry, Option<Digested>) {
    let mut item = ManifestEntry {
        path: path.to_path_buf(),
        kind: entry.kind.entry_type(),
        mode: vocab::Mode::of_st_mode(0),
        size: None,
        sha256: None,
        target: None,
        source: None,
        why: entry.why.iter().map(ToString::to_string).collect(),
    };
    let mut digest = None;
    let mode = match &entry.kind {
        EntryKind::Dir { mode } => *mode,
        EntryKind::File { host, .. } => {
            let file = &files[&path];
            if let Some(state) = &file.state {
                digest = Some((host.clone(), (state.clone(), file.sha256)));
            }
            item.size = Some(file.size);
            item.sha256 = Some(file.sha256);
            item.source = Some(host.clone());
            file.mode
        }
        EntryKind::Data { bytes, mode } => {
            item.size = Some(bytes.len() as u64);
            item.sha256 = Some(Sha256::of(bytes));
            *mode
        }
        EntryKind::Symlink { target, host } => {
            item.target = Some(target.clone());
            item.source = host.clone();
            0o777
        }
    };
    item.mode = vocab::Mode::of_st_mode(mode);
    debug_assert!(item.kind != EntryType::File || item.sha256.is_some());
    (item, digest)
}

fn split(path: &Path) -> Result<(&Path, &Path)> {
    let parent = path.parent().with_context(|| format!("`{}` has no parent", path.display()))?;
    let name = path.file_name().with_context(|| format!("`{}` has no name", path.display()))?;
    Ok((parent, Path::new(name)))
}

/// Opens a directory of the staging tree, refusing any symlink on the way
/// and any escape from it (`openat2(2)`).
fn open_beneath(root: &OwnedFd, path: &Path) -> Result<OwnedFd> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    Ok(rustix::fs::openat2(
        root.as_fd(),
        relative,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

fn progress_bar(count: usize, enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    // Hidden automatically when stderr is not a terminal.
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(count as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} writing {pos}/{len} files {wide_bar} {elapsed}",
        )
        .expect("valid template"),
    );
    bar
}

/// Removes what `stage` or `swap_in` left: a staging folder, or the
/// previous tree swapped out.
pub fn remove(path: &Path) -> Result<()> {
    fsutil::remove_tree(path)
}
