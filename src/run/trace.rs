//! Recording every path a process tree opens, executes, stats, reads as a link or lists, with seccomp user notification and no tracing program.
//!
//! The traced process installs, as its last step before `exec`, a seccomp
//! filter that sends the path-taking system calls (see `syscalls.rs`) to a
//! *listener* (`seccomp(2)`, `SECCOMP_FILTER_FLAG_NEW_LISTENER`), and hands
//! that listener to a supervisor thread in our process over a Unix socket.
//! Filters are inherited by every thread and child and survive `exec`, so
//! the whole tree is followed without `ptrace`. For each call the
//! supervisor reads the path from the stopped thread (`/proc/<pid>/mem`),
//! makes it absolute as the thread sees it (its working directory, its
//! directory descriptor, its root), looks it up inside the thread's root,
//! and lets the call continue unchanged (`seccomp_unotify(2)`,
//! `SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::os::unix::process::CommandExt;
//! let (filter, supervisor) = rootfs::run::trace::start()?;
//! let filter = std::sync::Arc::new(filter);
//! let mut command = std::process::Command::new("/bin/true");
//! // SAFETY: the hook makes only async-signal-safe calls.
//! unsafe { command.pre_exec(move || filter.install_in_child()) };
//! command.status()?;
//! let trace = supervisor.finish()?;
//! # Ok(()) }
//! ```
//!
//! What "found" means, and the limits:
//! - A path is looked up when the call is made, before it runs: `Found`
//!   says what was there then, not whether the call succeeded (a file the
//!   call creates is `Missing`; one it may not read is still a `File`). A
//!   file that changes between our look and the call (TOCTOU) is seen as it
//!   was; for an observer that is the best there is.
//! - Lookups run as the supervisor, inside the target's root
//!   (`RESOLVE_IN_ROOT`), with the supervisor's permissions: a directory the
//!   target may search and we may not gives `Unknown` (`EACCES`).
//! - Reading a thread's memory and descriptors needs ptrace access to it
//!   (`ptrace(2)`, "Ptrace access mode checking"): the same uid and a
//!   dumpable process, or `CAP_SYS_PTRACE` in its user namespace, which the
//!   owner of that namespace holds: a rootless caller tracing its own
//!   sandbox passes. Yama's `ptrace_scope` 1 allows it too, since the traced
//!   tree descends from the supervisor's process; at 2 only root can trace.
//!   A thread we may not read gives `Unknown` (`EACCES`), never a hang.
//! - The lookup must not wait for the traced tree: a FUSE file system served
//!   by a traced process, whose server thread is itself stopped in a traced
//!   call, would deadlock it. Nothing here uses FUSE.
//! - A relative path is joined to the directory its descriptor or the
//!   working directory names *at the time of the call*; a descriptor that
//!   was closed (or a call that races with another thread's `chdir`) gives
//!   `Unknown` (`EBADF`, `ENOENT`) or a path from the new directory.
//! - `canonical` is the path with every symbolic link resolved inside the
//!   target's root, from the descriptor our lookup opened: its
//!   `/proc/self/fd` link names it from our root, and the target's root is
//!   the prefix `/proc/<pid>/root` names from ours. Both links are computed
//!   the same way, so the prefix holds for a chroot and for a pivot_root'ed
//!   mount namespace alike; when it does not, `canonical` is `None` and the
//!   caller resolves the path itself (a sysroot walker).
//! - Opens done by the kernel itself during `execve` (the `#!` interpreter,
//!   the ELF interpreter from `PT_INTERP`) are not system calls and are not
//!   seen; the ELF reader knows them. x32 calls are not traced.
//! - A process that already has a seccomp listener in its filter chain
//!   (a container runtime supervising it) cannot get a second one (`EBUSY`).

mod child;
mod fd_passing;
mod supervisor;
mod syscalls;
mod target;

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::thread::JoinHandle;

use anyhow::{Context, Result};

/// What a call does with its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// `open`, `openat`, `openat2`, `creat`.
    Open,
    /// An open with `O_DIRECTORY` (`opendir(3)` uses one).
    OpenDirectory,
    /// `execve`, `execveat`.
    Exec,
    /// The `stat` family and the `access` family.
    Stat,
    /// `readlink`, `readlinkat`.
    Readlink,
    /// `getdents`, `getdents64`: the directory an open descriptor refers to.
    List,
    /// `chdir`.
    Chdir,
}

/// The type of the file found at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileType {
    Directory,
    Regular,
    /// Only when the call does not follow a final link (`lstat`,
    /// `readlink`, `O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`).
    Symlink,
    /// A device, a FIFO or a socket.
    Other,
}

/// What was at a path when the call was made.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Found {
    /// A file, and the path with its links resolved inside the target's
    /// root when that could be worked out (see the module's notes).
    File { file_type: FileType, canonical: Option<PathBuf> },
    /// Nothing (`ENOENT`, or `ENOTDIR` for a component on the way).
    Missing,
    /// A path under `/proc`, which describes processes rather than files of
    /// a tree (and read by us would describe the supervisor): noted, never
    /// looked up.
    Proc,
    /// A descriptor that names no file of a tree: a pipe, a socket, an
    /// anonymous inode, a memfd, a deleted file. The event's path is the
    /// descriptor's link text (`pipe:[123]`).
    NoPath,
    /// The path or the file could not be worked out: the target's memory
    /// could not be read (`EIO`, `EACCES`), the path had no end within
    /// `PATH_MAX` (`ENAMETOOLONG`), its directory was outside the target's
    /// root (`EXDEV`), or the lookup failed otherwise (`ELOOP`, `EACCES`).
    /// The event's path is the part known, possibly empty or relative.
    Unknown { errno: i32 },
}

/// One path a traced process used.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Event {
    /// Absolute, as the process sees it (inside its root), with `.` and
    /// repeated slashes removed and `..` kept.
    pub path: PathBuf,
    pub access: Access,
    pub found: Found,
    /// The first thread that made this call with this result, as numbered
    /// in the supervisor's PID namespace (a thread ID: the process ID for a
    /// single-threaded process).
    pub pid: u32,
}

impl Event {
    pub fn exists(&self) -> bool {
        matches!(self.found, Found::File { .. })
    }

    pub fn file_type(&self) -> Option<FileType> {
        match self.found {
            Found::File { file_type, .. } => Some(file_type),
            _ => None,
        }
    }
}

/// What a trace recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// Sorted by path, then access and what was found; one event for each
    /// distinct (path, access, found), with the first thread that made it.
    pub events: Vec<Event>,
    /// How many calls were stopped and answered.
    pub notifications: u64,
}

/// The traced process's side: the BPF program and its end of the socket,
/// both made before the fork. Share it with the `pre_exec` hook (an `Arc`).
#[derive(Debug)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    socket: OwnedFd,
}

impl Filter {
    /// Installs the filter in the calling process and sends its listener to
    /// the supervisor: to be called in a `pre_exec` hook, as the very last
    /// step before `exec` (after any namespace setup, in the forked grandchild
    /// if the sandbox forks), since every traced call after it waits for the
    /// supervisor. Sets `PR_SET_NO_NEW_PRIVS` only when `seccomp(2)` refuses
    /// the filter without it (a process without `CAP_SYS_ADMIN` in its user
    /// namespace); root of its own user namespace keeps set-user-ID programs
    /// working. Makes only async-signal-safe calls (`signal-safety(7)`). One
    /// process tree per `Filter`: the supervisor takes the first listener and
    /// closes its socket, so a second install fails to send (or, if it sent
    /// at the same moment, its traced calls fail with `ENOSYS`); it never
    /// hangs.
    pub fn install_in_child(&self) -> io::Result<()> {
        child::install(&self.program, self.socket.as_fd())
    }
}

/// The supervisor thread of one trace.
#[derive(Debug)]
pub struct Supervisor {
    thread: Option<JoinHandle<Result<Trace>>>,
    control: OwnedFd,
}

impl Supervisor {
    /// Waits until every process of the traced tree has exited (the listener
    /// reports `POLLHUP` once the last process using the filter is gone: at
    /// its exit, before it is reaped, on Linux 6.18), and returns what it
    /// recorded. Call it after the traced process was
    /// spawned (spawning returns after its `exec`, when the listener has been
    /// sent): a process that never installed the filter is an error. A
    /// daemon left behind keeps this waiting; [`Supervisor::stop`] does not
    /// wait.
    pub fn finish(mut self) -> Result<Trace> {
        self.end(supervisor::FINISH)
    }

    /// Stops at once and returns what was recorded. Processes still running
    /// keep the filter, and their traced calls then fail with `ENOSYS`
    /// (`seccomp_unotify(2)`: the listener is closed).
    pub fn stop(mut self) -> Result<Trace> {
        self.end(supervisor::STOP)
    }

    fn end(&mut self, command: u8) -> Result<Trace> {
        // A failed write means the thread already ended; join tells why.
        let _ = rustix::io::write(&self.control, &[command]);
        let thread = self.thread.take().context("the supervisor was already ended")?;
        thread.join().map_err(|_| anyhow::anyhow!("the seccomp supervisor thread panicked"))?
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.end(supervisor::STOP);
        }
    }
}

/// Prepares a trace before any fork: the filter and a
/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)` (close-on-exec is
/// enough: the child sends before its `exec`, and forks in between keep
/// it), and starts the supervisor thread, which waits for the listener.
pub fn start() -> Result<(Filter, Supervisor)> {
    let (socket, child_socket) =
        socketpair().context("failed to create the socket pair for the seccomp listener")?;
    let (control_read, control_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .context("failed to create the supervisor's control pipe")?;
    let thread = std::thread::Builder::new()
        .name("seccomp-supervisor".to_string())
        .spawn(move || supervisor::run(socket, control_read))
        .context("failed to start the seccomp supervisor thread")?;
    let filter = Filter { program: syscalls::program(), socket: child_socket };
    Ok((filter, Supervisor { thread: Some(thread), control: control_write }))
}

/// `socketpair(2)` through `libc`: rustix has it only with its `net` feature,
/// which nothing else here needs.
fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into `fds`.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
