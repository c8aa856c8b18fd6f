//! PID 1 of the new namespaces, before `exec`: the mounts, `pivot_root`, the hostname, the loopback interface and the nested user namespace that locks it all.

use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::UnshareFlags;

use super::{Launch, SAFE, Sandbox, Step, StepLog, binfmt, init, keeper, layer};

/// `AT_RECURSIVE` for `mount_setattr(2)`.
pub(super) const AT_RECURSIVE: libc::c_uint = 0x8000;

pub(super) fn run(
    sandbox: &Sandbox,
    launch: &Launch,
    log: &StepLog,
    alive: OwnedFd,
) -> io::Result<()> {
    die_with_keeper(log, alive)?;
    log.set(Step::MakingMountsPrivate);
    rustix::mount::mount_change(c"/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)?;
    layer::open_binds(&sandbox.access, log)?;
    match &sandbox.access.layer {
        Some(writable_layer) => layer::mount_layer(writable_layer, log)?,
        None => mount_root(sandbox, log)?,
    }
    mount_proc(sandbox, log)?;
    if let Some(entry) = &launch.emulator {
        log.set(Step::RegisteringCpuEmulator);
        binfmt::native::register(&sandbox.binfmt_dir, entry)?;
    }
    mount_sys(sandbox, log)?;
    mount_dev(sandbox, log)?;
    mount_tmp_and_masks(sandbox, launch, log)?;
    pivot(sandbox, log)?;
    layer::mount_home(&sandbox.access, launch, log)?;
    layer::attach_binds(&sandbox.access, log)?;
    log.set(Step::SettingHostname);
    rustix::system::sethostname(&sandbox.hostname)?;
    if !sandbox.access.share_network {
        loopback_up();
    }
    lock(&sandbox.access.inner_maps, log)?;
    if sandbox.interactive {
        // The program gets the default dispositions back.
        keeper::ignore_forwarded_signals(false);
    }
    layer::enter_workdir(&sandbox.access, log)?;
    if let Some(tracer) = &launch.tracer {
        log.set(Step::InstallingTracer);
        tracer.install_in_child()?;
    }
    if sandbox.interactive {
        log.set(Step::ForkingCommand);
        init::start(launch.foreground)?;
    }
    log.set(Step::Executing);
    Ok(())
}

/// The check's `/tmp`, and the empty read-only tmpfs over each masked
/// folder.
fn mount_tmp_and_masks(sandbox: &Sandbox, launch: &Launch, log: &StepLog) -> io::Result<()> {
    log.set(Step::MountingTmp);
    rustix::mount::mount(
        c"tmpfs",
        sandbox.tmp_dir.as_c_str(),
        c"tmpfs",
        SAFE,
        launch.tmp_options.as_c_str(),
    )?;
    log.set(Step::MaskingHostDirs);
    for dir in &sandbox.masked {
        rustix::mount::mount(
            c"tmpfs",
            dir.as_c_str(),
            c"tmpfs",
            SAFE | MountFlags::RDONLY | MountFlags::NOEXEC,
            c"mode=0755,size=4k",
        )?;
    }
    Ok(())
}

/// Asks to die with the keeper, and leaves if it is already gone: nobody
/// would reap or time us out.
fn die_with_keeper(log: &StepLog, alive: OwnedFd) -> io::Result<()> {
    log.set(Step::ParentDeathSignal);
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    let mut poll = [rustix::event::PollFd::new(&alive, rustix::event::PollFlags::IN)];
    if rustix::event::poll(&mut poll, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 }))? > 0
    {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(1) };
    }
    Ok(())
}

/// After private propagation (`mount_namespaces(7)`): the root bound on
/// its mount point with everything under it, all read-only
/// (`mount_setattr(2)` with `AT_RECURSIVE`).
fn mount_root(sandbox: &Sandbox, log: &StepLog) -> io::Result<()> {
    log.set(Step::BindMountingRoot);
    rustix::mount::mount_bind_recursive(sandbox.root.as_c_str(), sandbox.mount_point.as_c_str())?;
    log.set(Step::MakingRootReadOnly);
    read_only_recursive(&sandbox.mount_point)
}

fn read_only_recursive(path: &CStr) -> io::Result<()> {
    mount_setattr(rustix::fs::CWD, path, AT_RECURSIVE, libc::MOUNT_ATTR_RDONLY, 0)
}

/// Sets `attr_set` (`MOUNT_ATTR_*`) and `propagation` (`MS_*`, or 0) on the
/// mount at `path` from `dir` (`mount_setattr(2)`; `flags` may hold
/// `AT_RECURSIVE` and `AT_EMPTY_PATH`).
pub(super) fn mount_setattr(
    dir: impl std::os::fd::AsFd,
    path: &CStr,
    flags: libc::c_uint,
    attr_set: u64,
    propagation: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = libc::mount_attr { attr_set, attr_clr: 0, propagation, userns_fd: 0 };
    // SAFETY: mount_setattr(2) reads `attr` of the given size; the path is
    // a valid C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn mount_proc(sandbox: &Sandbox, log: &StepLog) -> io::Result<()> {
    log.set(Step::MountingProc);
    rustix::mount::mount(
        c"proc",
        sandbox.proc_dir.as_c_str(),
        c"proc",
        SAFE | MountFlags::NOEXEC,
        None,
    )?;
    for path in &sandbox.proc_read_only {
        match rustix::mount::mount_bind(path.as_c_str(), path.as_c_str()) {
            Err(rustix::io::Errno::NOENT) => continue,
            other => other?,
        }
        rustix::mount::mount_remount(
            path.as_c_str(),
            MountFlags::BIND | MountFlags::RDONLY | SAFE | MountFlags::NOEXEC,
            c"",
        )?;
    }
    // The namespace's own binfmt_misc goes on the read-only /proc/sys.
    binfmt::register(&sandbox.emulation, log)
}

/// A read-only sysfs on `/sys`, as container runtimes mount one: allowed
/// in a user namespace that owns the network namespace (`sysfs(5)` shows
/// the mounter's network namespace), so both sides of a probe see the same
/// machine, with only `lo`. With the host's network there is none of ours:
/// the host's `/sys` is bound instead, read-only with everything under it
/// (`mount_setattr(2)`), as rootless runtimes do.
fn mount_sys(sandbox: &Sandbox, log: &StepLog) -> io::Result<()> {
    let Some(dir) = &sandbox.sys_dir else { return Ok(()) };
    log.set(Step::MountingSys);
    let flags = SAFE | MountFlags::RDONLY | MountFlags::NOEXEC;
    match rustix::mount::mount(c"sysfs", dir.as_c_str(), c"sysfs", flags, None) {
        Err(rustix::io::Errno::PERM) if sandbox.access.share_network => {
            rustix::mount::mount_bind_recursive(c"/sys", dir.as_c_str())?;
            read_only_recursive(dir)
        }
        other => Ok(other?),
    }
}

fn mount_dev(sandbox: &Sandbox, log: &StepLog) -> io::Result<()> {
    log.set(Step::MountingDev);
    rustix::mount::mount(
        c"tmpfs",
        sandbox.dev_dir.as_c_str(),
        c"tmpfs",
        SAFE | MountFlags::NOEXEC,
        c"mode=0755,size=64k",
    )?;
    log.set(Step::PopulatingDev);
    for (host, target) in &sandbox.dev_nodes {
        let fd = rustix::fs::open(
            target.as_c_str(),
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o666),
        )?;
        drop(fd);
        rustix::mount::mount_bind(host.as_c_str(), target.as_c_str())?;
    }
    for (target, link) in &sandbox.dev_links {
        rustix::fs::symlink(target.as_c_str(), link.as_c_str())?;
    }
    for dir in &sandbox.dev_dirs {
        rustix::fs::mkdir(dir.as_c_str(), rustix::fs::Mode::from_raw_mode(0o755))?;
        rustix::fs::chmod(dir.as_c_str(), rustix::fs::Mode::from_raw_mode(0o1777))?;
    }
    Ok(())
}

/// Into the root: `pivot_root(".", ".")` stacks the old root under the new
/// one, and detaching it leaves only the new (`pivot_root(2)`, NOTES).
fn pivot(sandbox: &Sandbox, log: &StepLog) -> io::Result<()> {
    log.set(Step::PivotingRoot);
    rustix::process::chdir(sandbox.mount_point.as_c_str())?;
    rustix::process::pivot_root(c".", c".")?;
    rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
    rustix::process::chdir(c"/")?;
    Ok(())
}

/// A nested user and mount namespace: the mounts copied into it are locked
/// (`mount_namespaces(7)`, "Restrictions on mount namespaces"), so nothing
/// inside can remount the root (or a read-only bind) read-write, unmount
/// /proc or /dev, or reach what they cover. Its maps make the user inside
/// (root, unless asked otherwise) the keeper's root, that is the caller:
/// another user holds no capability once it executes (`capabilities(7)`),
/// and what it writes on a bind belongs to the caller.
fn lock(inner_maps: &(Vec<u8>, Vec<u8>), log: &StepLog) -> io::Result<()> {
    log.set(Step::LockingMounts);
    // SAFETY: single-threaded, as in the keeper.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) }?;
    log.set(Step::SwitchingUser);
    write_user_maps(&inner_maps.0, &inner_maps.1)
}

/// Maps root of a new user namespace to `uid_map`/`gid_map`
/// (`user_namespaces(7)`: setgroups must be denied before an unprivileged
/// process may write its gid_map).
pub(super) fn write_user_maps(uid_map: &[u8], gid_map: &[u8]) -> io::Result<()> {
    write_proc(c"/proc/self/setgroups", b"deny")?;
    write_proc(c"/proc/self/uid_map", uid_map)?;
    write_proc(c"/proc/self/gid_map", gid_map)
}

fn write_proc(path: &CStr, bytes: &[u8]) -> io::Result<()> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    rustix::io::write(&fd, bytes)?;
    Ok(())
}

/// Sets `IFF_UP` on `lo` (`netdevice(7)`, `SIOCSIFFLAGS`); best effort.
pub(super) fn loopback_up() {
    // SAFETY: socket, ioctl and close are async-signal-safe; `ifr` is a
    // zeroed plain C struct.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        libc::close(fd);
    }
}
