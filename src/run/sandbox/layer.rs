//! PID 1's mounts for what an [`Access`](super::Access) opens, before `exec`: the host paths to bind taken as detached mounts, the writable layer over the tree, the mount points and binds after `pivot_root`, the working directory.
//!
//! Like the rest of PID 1, everything here makes only async-signal-safe
//! system calls on data prepared before the fork.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use super::access::{Layer, Prepared};
use super::pid1::{AT_RECURSIVE, mount_setattr};
use super::{Launch, SAFE, Step, StepLog};

/// `MS_PRIVATE` as `mount_attr.propagation` takes it (`<linux/mount.h>`).
const MS_PRIVATE: u64 = 1 << 18;

/// Takes each host path to bind as a detached copy of its mounts
/// (`open_tree(2)`, `OPEN_TREE_CLONE | AT_RECURSIVE`: recursive, as the
/// mounts copied from the host are locked together), made `nosuid`,
/// `nodev`, private, and read-only when asked, on every mount of the copy
/// (`mount_setattr(2)`), before it is attached anywhere. This comes before
/// any mount of ours, which might cover a source.
pub(super) fn open_binds(access: &Prepared, log: &StepLog) -> io::Result<()> {
    log.set(Step::OpeningBinds);
    for bind in &access.binds {
        let tree = rustix::mount::open_tree(
            rustix::fs::CWD,
            bind.source.as_c_str(),
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )?;
        let mut set = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
        if bind.read_only {
            set |= libc::MOUNT_ATTR_RDONLY;
        }
        mount_setattr(
            tree.as_fd(),
            c"",
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            set,
            MS_PRIVATE,
        )?;
        // Closed by the exec (`OPEN_TREE_CLOEXEC`), once attached.
        bind.fd.store(std::os::fd::IntoRawFd::into_raw_fd(tree), Ordering::Relaxed);
    }
    Ok(())
}

/// The tree seen through an overlay whose upper layer is a tmpfs of the
/// layer's size (`overlayfs(5)`; allowed in a user namespace; a full
/// tmpfs fails writes with ENOSPC, `tmpfs(5)`): PID 1 keeps the tree as
/// its working directory, covers the tree's path with the scratch tmpfs,
/// makes the mount points the tree lacks in the upper folder (so that their
/// parents need not be writable for us in the tree), and mounts the
/// overlay, lower layer `.`, on `<scratch>/merged`.
pub(super) fn mount_layer(layer: &Layer, log: &StepLog) -> io::Result<()> {
    log.set(Step::MountingLayer);
    rustix::process::chdir(layer.scratch.as_c_str())?;
    rustix::mount::mount(
        c"tmpfs",
        layer.scratch.as_c_str(),
        c"tmpfs",
        SAFE,
        layer.scratch_options.as_c_str(),
    )?;
    for dir in &layer.dirs {
        rustix::fs::mkdir(dir.as_c_str(), Mode::from_raw_mode(0o755))?;
    }
    for (path, mode, dir) in &layer.entries {
        make_node(path, *dir)?;
        rustix::fs::chmod(path.as_c_str(), Mode::from_raw_mode(*mode))?;
    }
    let root = layer.dirs.last().expect("upper, work, merged");
    rustix::mount::mount(c"overlay", root.as_c_str(), c"overlay", SAFE, layer.options.as_c_str())?;
    rustix::process::chdir(c"/")?;
    Ok(())
}

/// After `pivot_root`: each bind's mount point made where it is missing
/// (directories of `/tmp` or `/dev`, or of a bind mounted before it: a path
/// walks inside the new root only), and the bind attached there
/// (`move_mount(2)`). Then, unless writes are allowed, the layer itself
/// (the root mount alone) is made read-only.
pub(super) fn attach_binds(access: &Prepared, log: &StepLog) -> io::Result<()> {
    for bind in &access.binds {
        log.set(Step::MakingMountPoint);
        for parent in &bind.parents {
            match rustix::fs::mkdir(parent.as_c_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        make_node(&bind.target, bind.dir)?;
        log.set(Step::BindMounting);
        // SAFETY: the descriptor was opened by `open_binds` in this process
        // and is not closed before exec.
        let tree = unsafe { BorrowedFd::borrow_raw(bind.fd.load(Ordering::Relaxed)) };
        rustix::mount::move_mount(
            tree,
            c"",
            rustix::fs::CWD,
            bind.target.as_c_str(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?;
    }
    if access.layer.is_some() && !access.writable {
        log.set(Step::SealingRoot);
        mount_setattr(rustix::fs::CWD, c"/", 0, libc::MOUNT_ATTR_RDONLY, 0)?;
    }
    Ok(())
}

/// After `pivot_root`, before the binds (one may go inside it): a tmpfs on
/// the home, as `/tmp`'s size, then mode 0700. PID 1 is the caller's root
/// here, the user inside is mapped to that root, so the user owns it.
pub(super) fn mount_home(access: &Prepared, launch: &Launch, log: &StepLog) -> io::Result<()> {
    if let Some(home) = &access.home {
        log.set(Step::MountingHome);
        rustix::mount::mount(
            c"tmpfs",
            home.as_c_str(),
            c"tmpfs",
            SAFE,
            launch.tmp_options.as_c_str(),
        )?;
        rustix::fs::chmod(home.as_c_str(), Mode::from_raw_mode(0o700))?;
    }
    Ok(())
}

/// A directory or an empty file at `path`, unless something is there.
fn make_node(path: &CStr, dir: bool) -> io::Result<()> {
    if dir {
        return match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    // `O_EXCL`: an existing file is left as it is, not opened for writing
    // (which would copy it up into the layer).
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::from_raw_mode(0o644)) {
        Ok(_) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The working directory inside, last, as the user who will run there.
pub(super) fn enter_workdir(access: &Prepared, log: &StepLog) -> io::Result<()> {
    if let Some(dir) = &access.workdir {
        log.set(Step::ChangingDirectory);
        rustix::process::chdir(dir.as_c_str())?;
    }
    Ok(())
}
