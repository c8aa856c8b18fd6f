//! PID 1 as an init for `shell` and `run`, as `tini` and `catatonit` are: the command runs as PID 2 in a process group of its own (the terminal's foreground one, when the tool had the terminal), and PID 1 forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, reaps every orphan, and exits with the command's status.
//!
//! PID 1 of a PID namespace gets no signal it has no handler for
//! (`pid_namespaces(7)`), so a command that is PID 1 itself ignores Ctrl-C
//! and `kill`; as PID 2 it gets the default actions. PID 1 blocks the
//! signals it forwards and takes them with `sigwaitinfo(2)` (a blocked
//! signal is queued for PID 1 like for any process), from the tool, which
//! forwards what it receives to PID 1's host pid, or from inside. PID 1 is
//! a process group of its own too, so a signal from the terminal reaches
//! it only through the tool, and the command gets it once. A command
//! killed by a signal makes PID 1 exit with 128 + its number, as a shell
//! says it (PID 1 cannot die of a signal it sends itself); when the command
//! is gone PID 1 exits, and the kernel kills what is left of the namespace.
//!
//! Everything here runs between `fork` and `exec`, or instead of `exec`,
//! and makes only async-signal-safe calls (`signal-safety(7)`).

use std::io;

/// The signals PID 1 forwards to the command, and the tool to PID 1.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Forks the command off PID 1. Returns in the command only (which goes on
/// to `exec`); PID 1 forwards signals and reaps until the command ends,
/// and exits with its status. `foreground`: the command's process group
/// takes the terminal on standard input (`tcsetpgrp(3)`).
pub(super) fn start(foreground: bool) -> io::Result<()> {
    // SAFETY: sigset_t is a plain C struct, filled by sigemptyset; only
    // async-signal-safe calls.
    let (waited, previous) = unsafe {
        let mut waited: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut waited);
        for signal in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            libc::sigaddset(&mut waited, *signal);
        }
        let mut previous: libc::sigset_t = std::mem::zeroed();
        // Blocked before the fork, so that none is lost before PID 1 waits.
        if libc::sigprocmask(libc::SIG_BLOCK, &waited, &mut previous) < 0 {
            return Err(io::Error::last_os_error());
        }
        (waited, previous)
    };
    // SAFETY: fork in a single-threaded process; both sides only make
    // async-signal-safe calls until exec or _exit.
    let command = unsafe { libc::fork() };
    if command < 0 {
        return Err(io::Error::last_os_error());
    }
    if command == 0 {
        become_command(foreground, &previous);
        return Ok(());
    }
    supervise(command, &waited)
}

/// In the command: a process group of its own, the terminal's foreground
/// when asked, and the signal mask it had.
fn become_command(foreground: bool, mask: &libc::sigset_t) {
    // SAFETY: setpgid, signal, tcsetpgrp and sigprocmask are
    // async-signal-safe.
    unsafe {
        libc::setpgid(0, 0);
        if foreground {
            // A process of a background group that changes the foreground
            // gets SIGTTOU unless it ignores it (`tcsetpgrp(3)`). Standard
            // input that is not the session's terminal is left as it is.
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(0, libc::getpgrp());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
        libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
    }
}

/// PID 1 from here on: closes what it holds of the tool's (among them the
/// pipe `std` reports a failed `exec` on, which only the command may hold),
/// then forwards and reaps until the command ends.
fn supervise(command: libc::pid_t, waited: &libc::sigset_t) -> ! {
    // SAFETY: only async-signal-safe system calls from here to _exit.
    unsafe {
        libc::setpgid(0, 0);
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let signal = libc::sigwaitinfo(waited, &mut info);
            if signal < 0 {
                continue;
            }
            if signal != libc::SIGCHLD {
                libc::kill(command, signal);
                continue;
            }
            // Every child that ended: the command, or an orphan the kernel
            // gave PID 1 to reap.
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == command {
                    if libc::WIFEXITED(status) {
                        libc::_exit(libc::WEXITSTATUS(status));
                    }
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
            }
        }
    }
}

/// The tool's side while a command runs attached: each forwarded signal
/// the tool receives goes to PID 1, which passes it on; restored when
/// dropped.
pub struct Forwarding {
    ids: Vec<signal_hook::SigId>,
}

/// Forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the tool to the PID 1
/// that `log` names, until the result is dropped.
pub fn forward_to_pid1(log: std::sync::Arc<super::StepLog>) -> anyhow::Result<Forwarding> {
    use anyhow::Context;
    let mut forwarding = Forwarding { ids: Vec::new() };
    for signal in FORWARDED {
        let log = log.clone();
        // SAFETY: the handler reads an atomic and calls kill(2), both
        // async-signal-safe.
        let id = unsafe {
            signal_hook::low_level::register(signal, move || {
                if let Some(pid) = log.pid1() {
                    libc::kill(pid.as_raw_nonzero().get(), signal);
                }
            })
        }
        .context("installing a signal handler")?;
        forwarding.ids.push(id);
    }
    Ok(forwarding)
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Whether the tool's process group is the foreground one of the terminal
/// on standard input: then the command takes the terminal, and the tool
/// takes it back with [`take_terminal_back`] when the command ends.
pub fn terminal_is_ours() -> bool {
    // SAFETY: plain system calls on descriptor 0.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

/// Makes the tool's process group the terminal's foreground again, after
/// the command's group had it (SIGTTOU ignored meanwhile, `tcsetpgrp(3)`).
pub fn take_terminal_back() {
    // SAFETY: setting a disposition around one tcsetpgrp; restored after.
    unsafe {
        let previous = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(0, libc::getpgrp());
        libc::signal(libc::SIGTTOU, previous);
    }
}
