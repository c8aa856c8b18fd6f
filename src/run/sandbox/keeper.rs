//! The keeper: the process forked by the tool for an attached command (`shell`, `run`; a check's part is played by `launcher.rs`, which shares these steps). It joins the command's limits, unshares the namespaces, forks PID 1 of the new PID namespace, waits for it and leaves the same way.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::thread::UnshareFlags;

use super::{Launch, Sandbox, Step, StepLog, pid1};

/// Runs in the forked child before `exec`; returns only in PID 1 (or, for
/// an attached command, in the command forked off it), which goes on to
/// execute the command.
pub(super) fn run(sandbox: &Sandbox, launch: &Launch, log: &StepLog) -> io::Result<()> {
    default_signals();
    die_with_tool(log)?;
    join_limits(launch, log)?;
    enter_namespaces(sandbox, launch, log)?;
    if sandbox.interactive {
        ignore_forwarded_signals(true);
    }
    log.set(Step::ForkingPid1);
    // A pipe whose write end only the keeper holds: PID 1 sees it close if
    // the keeper died before PID 1 could ask to die with it.
    let (alive_read, alive_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // SAFETY: fork in a single-threaded process; the child only makes
    // async-signal-safe calls until exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        drop(alive_write);
        return pid1::run(sandbox, launch, log, alive_read);
    }
    drop(alive_read);
    log.set_pid1(pid);
    keep(pid, &alive_write, log)
}

/// Asks for SIGKILL when the parent dies, and leaves if it died already.
pub(super) fn die_with_tool(log: &StepLog) -> io::Result<()> {
    log.set(Step::ParentDeathSignal);
    let parent = rustix::process::getppid();
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    if rustix::process::getppid() != parent {
        // The tool died before we asked to die with it.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(1) };
    }
    Ok(())
}

/// The namespaces of the command: a worker's user and network namespaces
/// joined, or new ones made (with the user maps written), then new mount,
/// PID, UTS and IPC namespaces.
pub(super) fn enter_namespaces(
    sandbox: &Sandbox,
    launch: &Launch,
    log: &StepLog,
) -> io::Result<()> {
    let slot = launch.slot.as_deref().filter(|_| !sandbox.access.share_network);
    if let Some(slot) = slot {
        // A worker's namespaces, made with the same maps (`netslot.rs`):
        // the user namespace first, which gives the capabilities the
        // network namespace's `setns(2)` asks for.
        log.set(Step::JoiningNetwork);
        rustix::thread::move_into_link_name_space(
            slot.user.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::User),
        )?;
        rustix::thread::move_into_link_name_space(
            slot.net.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
    }
    log.set(Step::Unsharing);
    let mut flags =
        UnshareFlags::NEWNS | UnshareFlags::NEWPID | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC;
    if slot.is_none() {
        flags |= UnshareFlags::NEWUSER;
    }
    if slot.is_none() && !sandbox.access.share_network {
        flags |= UnshareFlags::NEWNET;
    }
    // SAFETY: this process is single-threaded (fresh from fork, or a
    // launcher of its own), so unsharing cannot surprise another thread.
    unsafe { rustix::thread::unshare_unsafe(flags) }?;
    if slot.is_none() {
        log.set(Step::WritingUserMaps);
        pid1::write_user_maps(&sandbox.user_maps.0, &sandbox.user_maps.1)?;
    }
    Ok(())
}

/// Joins the check's cgroups (writing `0` to `cgroup.procs` moves the
/// writer, `cgroups(7)`), or sets its rlimits when there are none.
pub(super) fn join_limits(launch: &Launch, log: &StepLog) -> io::Result<()> {
    log.set(Step::JoiningCgroups);
    for &fd in &launch.join_fds {
        // SAFETY: write(2) on a descriptor opened before the fork.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    log.set(Step::SettingRlimits);
    for rlimit in &launch.rlimits {
        let limit =
            rustix::process::Rlimit { current: Some(rlimit.value), maximum: Some(rlimit.value) };
        rustix::process::setrlimit(rlimit.resource, limit)?;
    }
    Ok(())
}

/// Every signal back to its default action, and none blocked, first thing
/// after the fork. The keeper never executes anything, so without this it
/// keeps the handlers the tool installed (`signal(7)`: a child of `fork`
/// inherits its parent's dispositions and mask; only `execve` resets
/// handlers): the SIGCHLD handler of duct's waits (`sigchld`, through
/// `signal-hook`) wrote a byte to the tool's pipe in the keeper when PID 1
/// exited, and where no process held that pipe's reading end any more
/// (the keeper between its two `close_range` calls in `keep`, the tool's
/// thread done waiting) the write raised SIGPIPE, which killed the keeper:
/// the check reported exit status 141, though PID 1 itself cannot die of
/// SIGPIPE
/// (`pid_namespaces(7)`: a namespace's init gets no signal it has no
/// handler for). PID 1 and the program inherit this clean state, whatever
/// the tool's threads had installed, ignored or blocked. No signal can
/// reach a handler before this that matters: the keeper has no child yet,
/// and the tool's other handlers only set a flag or forward to a PID 1
/// that is not forked yet.
pub(super) fn default_signals() {
    // SAFETY: sigaction(2) and sigprocmask(2) are async-signal-safe, on
    // zeroed plain C structs; the numbers glibc keeps for itself (32, 33)
    // and SIGKILL and SIGSTOP fail with EINVAL, which changes nothing.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        for signal in 1..NSIG {
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// One more than the highest signal number on Linux (`_NSIG`).
const NSIG: libc::c_int = 65;

/// The signals PID 1 forwards (`init::FORWARDED`) ignored (`ignore`) or
/// back to their defaults: the keeper of an attached command only waits,
/// and what reaches it (the terminal's Ctrl-C when the command could not
/// take the terminal, a hangup) reaches the command through the tool.
pub(super) fn ignore_forwarded_signals(ignore: bool) {
    let disposition = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    for signal in super::init::FORWARDED {
        // SAFETY: signal(2) is async-signal-safe.
        unsafe { libc::signal(signal, disposition) };
    }
}

/// Closes every descriptor the keeper does not need (among them the pipe
/// `std` uses to report a failed exec, so the parent's `spawn` returns as
/// soon as PID 1 has executed), waits for PID 1 and leaves the same way.
fn keep(pid: libc::pid_t, alive: &OwnedFd, log: &StepLog) -> ! {
    let keep_fd = alive.as_raw_fd() as libc::c_uint;
    // SAFETY: only system calls from here to _exit.
    unsafe {
        if keep_fd > 3 {
            libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, keep_fd - 1, 0 as libc::c_uint);
        }
        libc::syscall(libc::SYS_close_range, keep_fd + 1, libc::c_uint::MAX, 0 as libc::c_uint);
        let mut status = 0;
        loop {
            let r = libc::waitpid(pid, &mut status, 0);
            if r == pid {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(125);
            }
        }
        log.set_pid1(0);
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        let signal = libc::WTERMSIG(status);
        // Die the same way, but without leaving a core of this process in
        // the tool's working directory.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signal, libc::SIG_DFL);
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal);
    }
}
