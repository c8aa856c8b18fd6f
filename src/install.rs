//! Writing a plan to disk: the only code that writes, into a staging folder beside the output that is swapped in when complete.
//!
//! Invariants:
//! - nothing is written outside the output's parent folder: the staging tree
//!   is created fresh, every parent directory is opened with `openat2(2)`
//!   and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and every file is created
//!   with `O_CREAT | O_EXCL | O_NOFOLLOW`, so no symlink, whoever made it, is
//!   ever written through;
//! - the previous output is replaced in one `renameat2(2)` with
//!   `RENAME_EXCHANGE`, so a failed or interrupted build leaves it as it was;
//! - every timestamp is set to one fixed epoch, and directories are stamped
//!   after their content, deepest first, so two builds give identical trees.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps};
use sha2::{Digest, Sha256};

use crate::manifest::{CommandEntry, Manifest, ManifestEntry};
use crate::plan::{EntryKind, Plan};
use crate::resolve::InputKind;

/// How regular files get into the tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LinkMode {
    /// Copies (a reflink where the filesystem can, else `copy_file_range`).
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
    pub known_digests: HashMap<PathBuf, (crate::stamp::FileState, String)>,
}

/// What an install did.
pub struct Installed {
    pub manifest: Manifest,
    /// Digests of the host files, for the next build.
    pub digests: HashMap<PathBuf, (crate::stamp::FileState, String)>,
    /// Where the previous tree now is, swapped out of `out`: the caller
    /// removes it with [`remove_tree`] once the manifest and stamp of the
    /// new tree are written, so that a failure there cannot leave the new
    /// tree without them.
    pub previous: Option<PathBuf>,
    /// Things that went wrong without making the build wrong (a stale
    /// staging folder that could not be removed).
    pub warnings: Vec<String>,
}

/// Writes `plan` to `out` atomically and returns its manifest (not yet
/// written; see [`write_file_atomically`]).
pub fn install(plan: &Plan, out: &Path, options: &InstallOptions) -> Result<Installed> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("failed to create `{}`", parent.display()))?;
    let name = out
        .file_name()
        .with_context(|| format!("output `{}` has no folder name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let staging = parent.join(format!(".{name}.staging-{}", std::process::id()));
    let mut warnings = Vec::new();
    remove_stale_staging(parent, &name, &mut warnings)?;

    let mut installed = match write_tree(plan, &staging, options) {
        Ok(installed) => installed,
        Err(e) => {
            let _ = remove_tree(&staging);
            return Err(e);
        }
    };
    if let Err(e) = swap_in(&staging, out) {
        let _ = remove_tree(&staging);
        return Err(e);
    }
    // `staging` now holds the previous tree, if there was one.
    installed.previous = std::fs::symlink_metadata(&staging).is_ok().then_some(staging);
    installed.warnings = warnings;
    Ok(installed)
}

/// Staging folders of builds that were killed. One that cannot be removed
/// is a warning, not a reason to refuse building.
fn remove_stale_staging(parent: &Path, name: &str, warnings: &mut Vec<String>) -> Result<()> {
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
        if !alive && let Err(e) = remove_tree(&entry.path()) {
            warnings.push(format!("{e:#}"));
        }
    }
    Ok(())
}

/// Removes a tree without ever following a symlink: every directory is
/// opened with `O_NOFOLLOW` relative to its parent's descriptor, made
/// writable through that descriptor (a mode like `/proc`'s 0555 would stop
/// the removal of its content), emptied, then removed.
pub fn remove_tree(path: &Path) -> Result<()> {
    let context = || format!("failed to remove `{}`", path.display());
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(context),
        Ok(meta) if !meta.is_dir() => return std::fs::remove_file(path).with_context(context),
        Ok(_) => {}
    }
    let dir = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(context)?;
    empty_dir(&dir).with_context(context)?;
    drop(dir);
    std::fs::remove_dir(path).with_context(context)
}

fn empty_dir(dir: &OwnedFd) -> Result<()> {
    let _ = rustix::fs::fchmod(dir, Mode::from_raw_mode(0o700));
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).context("listing a directory")? {
        let entry = entry.context("listing a directory")?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    for name in names {
        let stat = rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("inspecting `{}`", name.to_string_lossy()))?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory {
            let child = rustix::fs::openat(
                dir,
                name.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("opening `{}`", name.to_string_lossy()))?;
            empty_dir(&child).with_context(|| format!("in `{}`", name.to_string_lossy()))?;
            rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)
                .with_context(|| format!("removing `{}`", name.to_string_lossy()))?;
        } else {
            rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty())
                .with_context(|| format!("removing `{}`", name.to_string_lossy()))?;
        }
    }
    Ok(())
}

fn swap_in(staging: &Path, out: &Path) -> Result<()> {
    let flags = match std::fs::symlink_metadata(out) {
        Ok(meta) if meta.is_dir() => RenameFlags::EXCHANGE,
        Ok(_) => bail!(
            "`{}` exists and is not a folder; remove it or choose another --out",
            out.display()
        ),
        Err(_) => RenameFlags::NOREPLACE,
    };
    rustix::fs::renameat_with(rustix::fs::CWD, staging, rustix::fs::CWD, out, flags).with_context(
        || format!("failed to move the new tree `{}` to `{}`", staging.display(), out.display()),
    )
}

fn write_tree(plan: &Plan, staging: &Path, options: &InstallOptions) -> Result<Installed> {
    std::fs::create_dir(staging)
        .with_context(|| format!("failed to create `{}`", staging.display()))?;
    let root = rustix::fs::open(
        staging,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("failed to open `{}`", staging.display()))?;
    let times = Timestamps {
        last_access: Timespec { tv_sec: options.epoch, tv_nsec: 0 },
        last_modification: Timespec { tv_sec: options.epoch, tv_nsec: 0 },
    };

    // Directories first, in order (a parent sorts before its children),
    // each opened once for the files that go in it.
    let sorted = plan.sorted();
    let mut dirs: HashMap<PathBuf, OwnedFd> = HashMap::new();
    for &(path, entry) in &sorted {
        if let EntryKind::Dir { .. } = entry.kind {
            let (parent, name) = split(path)?;
            let parent_fd = dir_fd(&dirs, &root, parent)?;
            rustix::fs::mkdirat(parent_fd, name, Mode::from_raw_mode(0o700)).with_context(
                || {
                    format!(
                        "failed to create directory `{}` in `{}`",
                        path.display(),
                        staging.display()
                    )
                },
            )?;
            let fd = open_beneath(&root, path).with_context(|| {
                format!("failed to open `{}` in `{}`", path.display(), staging.display())
            })?;
            dirs.insert(path.clone(), fd);
        }
    }

    let progress = progress_bar(plan, options.progress);
    let reflink = AtomicBool::new(true);
    let leaves: Vec<(&PathBuf, &EntryKind)> = sorted
        .iter()
        .filter(|(_, e)| !matches!(e.kind, EntryKind::Dir { .. }))
        .map(|&(p, e)| (p, &e.kind))
        .collect();
    let written: Vec<Result<(PathBuf, Option<WrittenFile>)>> = leaves
        .par_iter()
        .map(|(path, kind)| {
            let (parent, name) = split(path)?;
            let dir = dir_fd(&dirs, &root, parent)?;
            let result =
                write_leaf(dir, name, kind, &times, options, &reflink).with_context(|| {
                    format!("failed to write `{}` in `{}`", path.display(), staging.display())
                });
            progress.inc(1);
            result.map(|w| ((*path).clone(), w))
        })
        .collect();
    progress.finish_and_clear();
    let mut files: HashMap<PathBuf, WrittenFile> = HashMap::new();
    for result in written {
        let (path, file) = result?;
        if let Some(file) = file {
            files.insert(path, file);
        }
    }

    // Directory modes and times last, deepest first, so that adding
    // children does not move a stamped mtime and a read-only directory does
    // not stop its own filling.
    for &(path, entry) in sorted.iter().rev() {
        if let EntryKind::Dir { mode } = entry.kind {
            let fd = &dirs[path];
            rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
                .with_context(|| format!("failed to set the mode of `{}`", path.display()))?;
            rustix::fs::futimens(fd, &times)
                .with_context(|| format!("failed to set the times of `{}`", path.display()))?;
        }
    }
    rustix::fs::fchmod(&root, Mode::from_raw_mode(0o755))
        .with_context(|| format!("failed to set the mode of `{}`", staging.display()))?;
    rustix::fs::futimens(&root, &times)
        .with_context(|| format!("failed to set the times of `{}`", staging.display()))?;

    let mut digests = HashMap::new();
    let entries = sorted
        .iter()
        .map(|&(path, entry)| {
            let (kind, mode, size, sha256, target, source) = match &entry.kind {
                EntryKind::Dir { mode } => ("dir", *mode, None, None, None, None),
                EntryKind::File { host, .. } => {
                    let file = &files[path];
                    if let Some(state) = &file.state {
                        digests.insert(host.clone(), (state.clone(), file.sha256.clone()));
                    }
                    (
                        "file",
                        file.mode,
                        Some(file.size),
                        Some(file.sha256.clone()),
                        None,
                        Some(host.clone()),
                    )
                }
                EntryKind::Data { bytes, mode } => (
                    "file",
                    *mode,
                    Some(bytes.len() as u64),
                    Some(hex(&Sha256::digest(bytes))),
                    None,
                    None,
                ),
                EntryKind::Symlink { target, host } => {
                    ("symlink", 0o777, None, None, Some(target.clone()), host.clone())
                }
            };
            ManifestEntry {
                path: path.clone(),
                kind: kind.to_string(),
                mode: format!("{mode:04o}"),
                size,
                sha256,
                target,
                source,
                why: entry.why.iter().map(ToString::to_string).collect(),
            }
        })
        .collect();
    let commands = plan
        .commands
        .iter()
        .map(|c| CommandEntry {
            name: c.name.clone(),
            path: c.path.clone(),
            kind: match c.kind {
                InputKind::Static => "static",
                InputKind::Script => "script",
                _ => "dynamic",
            }
            .to_string(),
        })
        .collect();
    Ok(Installed {
        manifest: Manifest {
            format: crate::manifest::FORMAT,
            name: plan.name.clone(),
            commands,
            entries,
        },
        digests,
        previous: None,
        warnings: Vec::new(),
    })
}

/// A regular file as written.
struct WrittenFile {
    mode: u32,
    size: u64,
    sha256: String,
    /// The host file's state when it was read, to reuse the digest.
    state: Option<crate::stamp::FileState>,
}

fn write_leaf(
    dir: &OwnedFd,
    name: &Path,
    kind: &EntryKind,
    times: &Timestamps,
    options: &InstallOptions,
    reflink: &AtomicBool,
) -> Result<Option<WrittenFile>> {
    match kind {
        EntryKind::Symlink { target, .. } => {
            rustix::fs::symlinkat(target, dir, name).context("symlinkat")?;
            rustix::fs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW)
                .context("utimensat")?;
            Ok(None)
        }
        EntryKind::Data { bytes, mode } => {
            let fd = create(dir, name)?;
            let mut file = File::from(fd);
            file.write_all(bytes).context("write")?;
            rustix::fs::fchmod(&file, Mode::from_raw_mode(*mode)).context("fchmod")?;
            rustix::fs::futimens(&file, times).context("futimens")?;
            Ok(None)
        }
        EntryKind::File { host, mode, .. } => {
            let source =
                File::open(host).with_context(|| format!("failed to open `{}`", host.display()))?;
            let meta = source
                .metadata()
                .with_context(|| format!("failed to stat `{}`", host.display()))?;
            let state = crate::stamp::FileState::of(&meta);
            let host_mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
            // Hard links share the host's inode: only when its mode is the
            // one wanted, since changing it would change the host file.
            if options.link == LinkMode::Hard
                && host_mode == *mode
                && rustix::fs::linkat(rustix::fs::CWD, host, dir, name, AtFlags::empty()).is_ok()
            {
                let sha256 = digest_of(host, &source, &state, options)?;
                return Ok(Some(WrittenFile {
                    mode: host_mode,
                    size: meta.len(),
                    sha256,
                    state: Some(state),
                }));
            }
            let fd = create(dir, name)?;
            let mut dest = File::from(fd);
            copy(&source, &mut dest, host, reflink)?;
            rustix::fs::fchmod(&dest, Mode::from_raw_mode(*mode)).context("fchmod")?;
            rustix::fs::futimens(&dest, times).context("futimens")?;
            let sha256 = digest_of(host, &source, &state, options)?;
            Ok(Some(WrittenFile { mode: *mode, size: meta.len(), sha256, state: Some(state) }))
        }
        EntryKind::Dir { .. } => unreachable!("directories are created before leaves"),
    }
}

fn create(dir: &OwnedFd, name: &Path) -> Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .context("create")
}

/// Copies with a reflink (`FICLONE`, shares blocks on btrfs and XFS) when the
/// filesystem allows it, else with `copy_file_range(2)` through
/// `std::io::copy`, which stays in the kernel.
fn copy(source: &File, dest: &mut File, host: &Path, reflink: &AtomicBool) -> Result<()> {
    if reflink.load(Ordering::Relaxed) {
        match rustix::fs::ioctl_ficlone(&*dest, source) {
            Ok(()) => return Ok(()),
            Err(_) => reflink.store(false, Ordering::Relaxed),
        }
    }
    let mut reader = source;
    std::io::copy(&mut reader, dest)
        .with_context(|| format!("failed to copy `{}`", host.display()))?;
    Ok(())
}

/// The sha256 of a host file, reused from the previous build when the file
/// has not changed since.
fn digest_of(
    host: &Path,
    source: &File,
    state: &crate::stamp::FileState,
    options: &InstallOptions,
) -> Result<String> {
    if let Some((known_state, digest)) = options.known_digests.get(host)
        && known_state == state
    {
        return Ok(digest.clone());
    }
    // Positioned reads into one buffer per thread: no page tables to build
    // and tear down as a map would, and memory stays flat however large the
    // files are.
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 256 * 1024]);
    }
    BUFFER.with_borrow_mut(|buffer| {
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        loop {
            let n = std::os::unix::fs::FileExt::read_at(source, buffer, offset)
                .with_context(|| format!("failed to read `{}`", host.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            offset += n as u64;
        }
        Ok(hex(&hasher.finalize()))
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn split(path: &Path) -> Result<(&Path, &Path)> {
    let parent = path.parent().with_context(|| format!("`{}` has no parent", path.display()))?;
    let name = path.file_name().with_context(|| format!("`{}` has no name", path.display()))?;
    Ok((parent, Path::new(name)))
}

fn dir_fd<'a>(
    dirs: &'a HashMap<PathBuf, OwnedFd>,
    root: &'a OwnedFd,
    path: &Path,
) -> Result<&'a OwnedFd> {
    if path == Path::new("/") {
        return Ok(root);
    }
    dirs.get(path).with_context(|| format!("parent `{}` was not created first", path.display()))
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

fn progress_bar(plan: &Plan, enabled: bool) -> indicatif::ProgressBar {
    let count =
        plan.entries.values().filter(|e| !matches!(e.kind, EntryKind::Dir { .. })).count() as u64;
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    // Hidden automatically when stderr is not a terminal.
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(count),
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

/// Writes `text` to `path` through a temporary file in the same folder and
/// a rename, so readers see the old or the new file, never half of one.
pub fn write_file_atomically(path: &Path, text: &[u8]) -> Result<()> {
    // A fresh, randomly named file created with O_EXCL: a symlink planted
    // under a predictable name cannot redirect the write.
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("failed to create a temporary file in `{}`", parent.display()))?;
    tmp.write_all(text).with_context(|| format!("failed to write `{}`", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(())
}
