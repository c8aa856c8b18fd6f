//! One leaf of the tree written: a symlink, bytes of the spec, or a host file copied (or hard-linked) with the digest of exactly the bytes that landed in the tree.
//!
//! A host file's digest comes from one of three places, all describing the
//! copy itself:
//! - a copy with no cached digest reads the host file once, hashing each
//!   block as it writes it;
//! - a reflink (`FICLONE`, btrfs and XFS) shares the host file's blocks, and
//!   the digest is read back from the copy;
//! - a digest cached for the host file's state (device, inode, mode, size,
//!   mtime) is reused when a reflink or `copy_file_range(2)` copied it and the
//!   state is the same after the copy; when the state moved during the copy,
//!   the copy is read back and hashed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use sha2::Digest;

use super::{InstallOptions, LinkMode, WrittenFile};
use crate::build::plan::EntryKind;
use crate::vocab::{FileState, Sha256};

/// Size of each block read and hashed.
const BLOCK: usize = 256 * 1024;

pub(super) fn write_leaf(
    dir: &OwnedFd,
    name: &Path,
    kind: &EntryKind,
    times: &Timestamps,
    options: &InstallOptions,
    reflink: &AtomicBool,
) -> Result<Option<WrittenFile>> {
    match kind {
        EntryKind::Symlink { target, host } => {
            if options.link == LinkMode::Hard
                && let Some(host) = host
                && link_symlink(dir, name, host, target)?
            {
                return Ok(None);
            }
            rustix::fs::symlinkat(target, dir, name).context("symlinkat")?;
            rustix::fs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW)
                .context("utimensat")?;
            Ok(None)
        }
        EntryKind::Data { bytes, mode } => {
            let mut file = File::from(create(dir, name)?);
            file.write_all(bytes).context("write")?;
            finish(&file, *mode, times)?;
            Ok(None)
        }
        EntryKind::File { host, mode, .. } => {
            copy_host_file(dir, name, host, *mode, times, options, reflink).map(Some)
        }
        EntryKind::Dir { .. } => unreachable!("directories are created before leaves"),
    }
}

fn copy_host_file(
    dir: &OwnedFd,
    name: &Path,
    host: &Path,
    mode: u32,
    times: &Timestamps,
    options: &InstallOptions,
    reflink: &AtomicBool,
) -> Result<WrittenFile> {
    if options.link == LinkMode::Hard
        && let Some(linked) = hard_link(dir, name, host, mode, options)?
    {
        return Ok(linked);
    }
    let source =
        File::open(host).with_context(|| format!("failed to open `{}`", host.display()))?;
    let meta = source.metadata().with_context(|| format!("failed to stat `{}`", host.display()))?;
    let state = FileState::of(&meta);
    let known = known_digest(options, host, &state);
    let mut dest = File::from(create(dir, name)?);
    let sha256 = copy_with_digest(&source, &mut dest, meta.len(), known, reflink)
        .with_context(|| format!("failed to copy `{}`", host.display()))?;
    // A file that changed while it was copied: the digest is of what was
    // copied, but its recorded state is not the one it was hashed with.
    let after = source.metadata().map(|m| FileState::of(&m)).ok();
    let state = (after.as_ref() == Some(&state)).then_some(state);
    let size = dest.metadata().context("fstat")?.len();
    finish(&dest, mode, times)?;
    Ok(WrittenFile { mode, size, sha256, state })
}

/// A hard link to the host symlink `host` (`linkat(2)` does not follow
/// it), when it still points at `target`; `false` when no link was made
/// (another filesystem, or `protected_hardlinks` refusing a symlink the
/// user does not own) or the host's target moved (the link is then
/// removed). A new symlink costs a new inode, and on ext4 finding a free
/// inode right after many files were deleted takes up to a millisecond
/// (`find_inode_bit` skips the recently deleted ones): 220 symlinks were
/// most of a hard-linked build's system time. The link keeps the host's
/// timestamps, as a hard-linked file does.
fn link_symlink(dir: &OwnedFd, name: &Path, host: &Path, target: &Path) -> Result<bool> {
    if rustix::fs::linkat(rustix::fs::CWD, host, dir, name, AtFlags::empty()).is_err() {
        return Ok(false);
    }
    let linked = rustix::fs::readlinkat(dir, name, Vec::new()).context("readlinkat")?;
    if linked.as_bytes() == target.as_os_str().as_bytes() {
        return Ok(true);
    }
    rustix::fs::unlinkat(dir, name, AtFlags::empty()).context("unlinkat")?;
    Ok(false)
}

/// A hard link to the host file, when its mode is the one wanted (the link
/// shares the host's inode, whose mode must not change) and the link can be
/// made (same filesystem); `None` otherwise, for a copy. The host file is
/// opened only when no digest of its state is known: a `stat(2)` and a
/// `linkat(2)` are all most files cost.
fn hard_link(
    dir: &OwnedFd,
    name: &Path,
    host: &Path,
    mode: u32,
    options: &InstallOptions,
) -> Result<Option<WrittenFile>> {
    let meta =
        std::fs::metadata(host).with_context(|| format!("failed to stat `{}`", host.display()))?;
    let host_mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
    if host_mode != mode
        || rustix::fs::linkat(rustix::fs::CWD, host, dir, name, AtFlags::empty()).is_err()
    {
        return Ok(None);
    }
    let state = FileState::of(&meta);
    let sha256 = match known_digest(options, host, &state) {
        Some(digest) => digest,
        None => File::open(host)
            .and_then(|source| hash_all(&source))
            .with_context(|| format!("failed to read `{}`", host.display()))?,
    };
    Ok(Some(WrittenFile { mode, size: meta.len(), sha256, state: Some(state) }))
}

/// The cached digest of `host`, when it was taken of the same state.
fn known_digest(options: &InstallOptions, host: &Path, state: &FileState) -> Option<Sha256> {
    options
        .known_digests
        .get(host)
        .filter(|(known_state, _)| known_state == state)
        .map(|(_, digest)| *digest)
}

/// Copies `source` into the empty `dest` and returns the sha256 of the
/// bytes in `dest`. At most `size` bytes, its size when it was opened, are
/// copied: a file that keeps growing (a log) cannot make the copy endless.
fn copy_with_digest(
    source: &File,
    dest: &mut File,
    size: u64,
    known: Option<Sha256>,
    reflink: &AtomicBool,
) -> Result<Sha256> {
    let before = source.metadata().map(|m| FileState::of(&m)).ok();
    if reflink.load(Ordering::Relaxed) {
        match rustix::fs::ioctl_ficlone(&*dest, source) {
            Ok(()) => return digest_after_kernel_copy(source, dest, known, before),
            Err(_) => reflink.store(false, Ordering::Relaxed),
        }
    }
    if known.is_some() {
        // `std::io::copy` between files is `copy_file_range(2)`: the bytes
        // stay in the kernel.
        std::io::copy(&mut source.take(size), dest).context("copy_file_range")?;
        return digest_after_kernel_copy(source, dest, known, before);
    }
    // No digest yet: one read of the host file, hashed as it is written.
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; BLOCK];
    let mut reader = source.take(size);
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read"),
        };
        hasher.update(&buffer[..n]);
        dest.write_all(&buffer[..n]).context("write")?;
    }
    Ok(Sha256::finish(hasher))
}

/// The digest of a copy the kernel made: the cached one while the host
/// file kept its state throughout, else the copy read back.
fn digest_after_kernel_copy(
    source: &File,
    dest: &File,
    known: Option<Sha256>,
    before: Option<FileState>,
) -> Result<Sha256> {
    let after = source.metadata().map(|m| FileState::of(&m)).ok();
    match known {
        Some(digest) if before.is_some() && before == after => Ok(digest),
        _ => hash_all(dest).context("reading the copy back"),
    }
}

/// The sha256 of a whole open file, read with positioned reads (the
/// descriptor's offset is left alone).
fn hash_all(file: &File) -> std::io::Result<Sha256> {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; BLOCK]);
    }
    BUFFER.with_borrow_mut(|buffer| {
        let mut hasher = sha2::Sha256::new();
        let mut offset = 0u64;
        loop {
            let n = std::os::unix::fs::FileExt::read_at(file, buffer, offset)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            offset += n as u64;
        }
        Ok(Sha256::finish(hasher))
    })
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

fn finish(file: &File, mode: u32, times: &Timestamps) -> Result<()> {
    rustix::fs::fchmod(file, Mode::from_raw_mode(mode)).context("fchmod")?;
    rustix::fs::futimens(file, times).context("futimens")?;
    Ok(())
}
