//! A check's command started without a fork of the tool: a launcher in the tool's memory (`CLONE_VM | CLONE_VFORK`) joins the limits and enters the namespaces, starts PID 1 as the tool's own child (`CLONE_PARENT`) and leaves; the tool then waits for PID 1 through a pidfd.
//!
//! A `fork` of the tool copies its page tables, write-protects them (a TLB
//! shootdown on every core running one of its threads), and fills and
//! unmaps them again; on a smoke run of every host program that was a
//! fifth of all CPU time. Here nothing is copied: the launcher and PID 1
//! run on stacks of their own in the tool's memory while the thread that
//! started them is suspended, as `posix_spawn(3)` runs its child, and so
//! obey the same rules as a forked child (no allocation, no lock, only
//! system calls on data prepared before), and one more: they write nothing
//! of the tool's memory but their stacks, the [`Launcher`] they are given,
//! the step log and the suspended thread's `errno`. The tool's other
//! threads go on meanwhile.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use super::exec::Exec;
use super::{Launch, Sandbox, Step, StepLog};
use super::{keeper, pid1};

/// PID 1 of a check, a child of the tool, running.
#[derive(Debug)]
pub struct Started {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    reaped: bool,
}

/// What the launcher needs, on the starting thread's stack; it writes only
/// `pid1` and `failed`.
struct Launcher<'a> {
    sandbox: &'a Sandbox,
    launch: &'a Launch,
    log: &'a StepLog,
    exec: &'a Exec,
    /// Standard input, output and error of the command.
    stdio: [RawFd; 3],
    alive_read: RawFd,
    alive_write: RawFd,
    /// Where PID 1's stack starts.
    pid1_stack: *mut libc::c_void,
    pid1: AtomicI32,
    failed: AtomicI32,
}

/// The size of each of the two stacks, the launcher's and PID 1's.
const STACK: usize = 1 << 20;

/// The launcher's and PID 1's stacks: one mapping per thread of the tool
/// that starts checks, kept for its next check (unmapping memory the
/// tool's threads share costs every core running one of them a TLB flush).
struct Stacks {
    base: *mut libc::c_void,
}

impl Stacks {
    fn new() -> io::Result<Stacks> {
        // SAFETY: a fresh private mapping, used only as these two stacks.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                2 * STACK,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::STACK,
            )
        }?;
        let stacks = Stacks { base };
        // PID 1's stack grows down towards the launcher's: a page between
        // them faults rather than overwrite the launcher's frames.
        // SAFETY: the lowest page of stack 1, within the mapping.
        unsafe {
            rustix::mm::mprotect(
                stacks.base.cast::<u8>().add(STACK).cast(),
                4096,
                rustix::mm::MprotectFlags::empty(),
            )
        }?;
        Ok(stacks)
    }

    /// The top of stack `n` (0 or 1), where it starts growing down from;
    /// 16-byte aligned.
    fn top(&self, n: usize) -> *mut libc::c_void {
        // SAFETY: within the mapping.
        unsafe { self.base.cast::<u8>().add((n + 1) * STACK).cast() }
    }

    /// Runs `f` with this thread's stacks, made on its first call.
    fn lend<T>(f: impl FnOnce(&Stacks) -> io::Result<T>) -> io::Result<T> {
        thread_local! {
            static KEPT: std::cell::RefCell<Option<Stacks>> = const { std::cell::RefCell::new(None) };
        }
        let stacks = match KEPT.with(|kept| kept.borrow_mut().take()) {
            Some(stacks) => stacks,
            None => Stacks::new()?,
        };
        let result = f(&stacks);
        KEPT.with(|kept| *kept.borrow_mut() = Some(stacks));
        result
    }
}

impl Drop for Stacks {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length; no child runs on it.
        let _ = unsafe { rustix::mm::munmap(self.base, 2 * STACK) };
    }
}

/// Starts `exec` inside `sandbox` with `launch`, standard input from
/// `/dev/null`, output and errors to `stdout` and `stderr`; returns once
/// the command executes. The error says why it could not, `log` at which
/// step.
pub(super) fn start(
    sandbox: &Sandbox,
    launch: &Launch,
    log: &StepLog,
    exec: &Exec,
    stdout: BorrowedFd,
    stderr: BorrowedFd,
) -> io::Result<Started> {
    let null = std::fs::File::open("/dev/null")?;
    // PID 1 sees this pipe close if the tool died before PID 1 asked to die
    // with it: the tool holds the only write end.
    let (alive_read, alive_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let mut launcher = Launcher {
        sandbox,
        launch,
        log,
        exec,
        stdio: [null.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()],
        alive_read: alive_read.as_raw_fd(),
        alive_write: alive_write.as_raw_fd(),
        pid1_stack: std::ptr::null_mut(),
        pid1: AtomicI32::new(0),
        failed: AtomicI32::new(0),
    };
    let launched = Stacks::lend(|stacks| {
        launcher.pid1_stack = stacks.top(1);
        run_launcher(&launcher, stacks.top(0))
    });
    drop(alive_read);
    let pid1 = launcher.pid1.load(Ordering::SeqCst);
    let failure = match (launched, launcher.failed.load(Ordering::SeqCst)) {
        (Err(e), _) => Some(e),
        (Ok(()), 0) => None,
        (Ok(()), errno) => Some(io::Error::from_raw_os_error(errno)),
    };
    if let Some(error) = failure {
        if pid1 > 0 {
            reap(pid1);
        }
        return Err(error);
    }
    let pid = rustix::process::Pid::from_raw(pid1).ok_or(io::ErrorKind::NotFound)?;
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            // SAFETY: kill(2) and waitpid(2) of our own child.
            unsafe { libc::kill(pid1, libc::SIGKILL) };
            reap(pid1);
            return Err(e.into());
        }
    };
    log.set_pid1(pid1);
    drop(alive_write);
    Ok(Started { pid: pid1, pidfd, reaped: false })
}

/// Runs the launcher on the stack whose top is `stack`, this thread
/// suspended until it is gone, and reaps it.
fn run_launcher(launcher: &Launcher, stack: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: `stack` is the top of a stack no one else uses; `launcher`
    // outlives the child, since this thread is suspended until the child
    // exits (CLONE_VFORK; it never executes).
    let pid = unsafe {
        libc::clone(
            launcher_main,
            stack,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(launcher).cast_mut().cast(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    reap(pid);
    Ok(())
}

/// The launcher: leaves PID 1's pid, or the error it stopped on, in its
/// [`Launcher`] and exits.
extern "C" fn launcher_main(launcher: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `run_launcher` passes a `Launcher` that outlives this child;
    // it is only read here, besides its two atomics.
    let launcher = unsafe { &*launcher.cast::<Launcher>() };
    let code = match launch_pid1(launcher) {
        Ok((pid, failed)) => {
            launcher.pid1.store(pid, Ordering::SeqCst);
            failed.map_or(0, |e| {
                launcher.failed.store(errno(&e), Ordering::SeqCst);
                1
            })
        }
        Err(e) => {
            launcher.failed.store(errno(&e), Ordering::SeqCst);
            1
        }
    };
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(code) }
}

fn errno(error: &io::Error) -> i32 {
    error.raw_os_error().unwrap_or(libc::EIO).max(1)
}

/// The keeper's first steps, on the launcher's own copy of the descriptors
/// and signal dispositions, then PID 1 started as the tool's child.
fn launch_pid1(launcher: &Launcher) -> io::Result<(libc::pid_t, Option<io::Error>)> {
    keeper::default_signals();
    keeper::die_with_tool(launcher.log)?;
    // SAFETY: close(2) and dup2(2) on this process's own descriptor table.
    unsafe {
        libc::close(launcher.alive_write);
        for (target, &fd) in launcher.stdio.iter().enumerate() {
            let target = target as RawFd;
            let done = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if done < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    keeper::join_limits(launcher.launch, launcher.log)?;
    keeper::enter_namespaces(launcher.sandbox, launcher.launch, launcher.log)?;
    launcher.log.set(Step::ForkingPid1);
    let pid1 = Pid1 {
        sandbox: launcher.sandbox,
        launch: launcher.launch,
        log: launcher.log,
        exec: launcher.exec,
        // SAFETY: the launcher's copy of the descriptor, closed with it.
        alive_read: unsafe { OwnedFd::from_raw_fd(launcher.alive_read) },
    };
    start_pid1(pid1, launcher.pid1_stack)
}

/// What PID 1 needs, on the launcher's stack.
struct Pid1<'a> {
    sandbox: &'a Sandbox,
    launch: &'a Launch,
    log: &'a StepLog,
    exec: &'a Exec,
    /// The read end of the pipe PID 1 sees close if the tool died before
    /// PID 1 could ask to die with it.
    alive_read: OwnedFd,
}

/// Starts PID 1 on the stack whose top is `stack`, as the tool's child
/// (`CLONE_PARENT`), the launcher suspended until PID 1 has executed the
/// command or died (`CLONE_VFORK`). Returns PID 1's pid, with the error it
/// stopped on when it died before executing (the tool reaps it).
fn start_pid1(
    pid1: Pid1,
    stack: *mut libc::c_void,
) -> io::Result<(libc::pid_t, Option<io::Error>)> {
    let failed = AtomicI32::new(0);
    let mut start = (pid1, &failed);
    // SAFETY: `stack` is the top of a stack no one else uses; `start`
    // outlives the child's use of it, since this thread is suspended until
    // the child executes or exits (CLONE_VFORK).
    let pid = unsafe {
        libc::clone(
            pid1_main,
            stack,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT | libc::SIGCHLD,
            (&raw mut start).cast(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    match failed.load(Ordering::SeqCst) {
        0 => Ok((pid, None)),
        errno => Ok((pid, Some(io::Error::from_raw_os_error(errno)))),
    }
}

/// PID 1: enters the root and executes the command; on failure, leaves the
/// error for the launcher and exits.
extern "C" fn pid1_main(start: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `start_pid1` passes its `(Pid1, &AtomicI32)`, alive and not
    // used by the suspended keeper until this child executes or exits.
    let (pid1, failed) = unsafe { &mut *start.cast::<(Pid1, &AtomicI32)>() };
    // The read end is this child's to close, the keeper's copy closed by
    // `keep`; `OwnedFd`'s drop is only close(2).
    // SAFETY: as above; the keeper never reads it.
    let alive = unsafe { OwnedFd::from_raw_fd(pid1.alive_read.as_raw_fd()) };
    let error = match pid1::run(pid1.sandbox, pid1.launch, pid1.log, alive) {
        Ok(()) => pid1.exec.run(),
        Err(e) => e,
    };
    failed.store(error.raw_os_error().unwrap_or(libc::EIO).max(1), Ordering::SeqCst);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(127) }
}

/// Reaps a child of the tool, whatever happened to it.
fn reap(pid: libc::pid_t) -> Option<ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) of our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid {
            return Some(ExitStatus::from_raw(status));
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return None;
        }
    }
}

impl Started {
    /// Waits for PID 1 until `deadline`: its status, once it has ended (and
    /// every process of its namespace with it).
    pub fn wait_deadline(&mut self, deadline: Instant) -> io::Result<Option<ExitStatus>> {
        if self.reaped {
            return Err(io::Error::other("PID 1 was already waited for"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut poll = [rustix::event::PollFd::new(&self.pidfd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut poll, Some(&timeout)) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        self.reaped = true;
        reap(self.pid).map(Some).ok_or_else(io::Error::last_os_error)
    }

    /// Kills PID 1, and so every process of its namespace.
    pub fn kill(&self) {
        let _ =
            rustix::process::pidfd_send_signal(self.pidfd.as_fd(), rustix::process::Signal::KILL);
    }
}

impl Drop for Started {
    /// PID 1 not waited for is killed and reaped: nothing is left behind.
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            reap(self.pid);
        }
    }
}
