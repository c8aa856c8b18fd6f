//! The supervisor thread: receives the listener from the traced child, answers every notification with `SECCOMP_USER_NOTIF_FLAG_CONTINUE` after recording what the call names, and ends when the traced tree is gone or it is told to stop.
//!
//! `seccomp_unotify(2)` is followed to the letter: buffers sized with
//! `SECCOMP_GET_NOTIF_SIZES` and zeroed before each `SECCOMP_IOCTL_NOTIF_RECV`;
//! the notification checked with `SECCOMP_IOCTL_NOTIF_ID_VALID` after the
//! target's `/proc` files are opened and again after its memory is read;
//! every notification answered, even when reading it failed (an unanswered
//! one would leave its thread blocked). `CONTINUE` is safe here because the
//! supervisor only observes: the kernel runs the call as if there were no
//! filter, and what we read cannot change what it does.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::target::Target;
use super::{Access, Event, Found, Trace, syscalls};

/// `<linux/seccomp.h>`; the `libc` crate does not have it yet.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;

/// What the caller asks of the thread through the control pipe.
pub(super) const FINISH: u8 = b'f';
pub(super) const STOP: u8 = b's';

/// The thread's body: the listener first, then the notifications.
pub(super) fn run(socket: OwnedFd, control: OwnedFd) -> Result<Trace> {
    let Some(listener) = wait_for_listener(&socket, &control)? else {
        return Ok(Trace::default());
    };
    // Nobody else may send a listener now: a second traced process would
    // fail its `sendmsg` instead of waiting for a supervisor that never
    // reads it.
    drop(socket);
    let listener = Listener::new(listener)?;
    serve(&listener, &control)
}

/// Waits for the traced process to send its listener. `None` when told to
/// stop first; an error when told to finish and none was sent.
fn wait_for_listener(socket: &OwnedFd, control: &OwnedFd) -> Result<Option<OwnedFd>> {
    loop {
        let mut fds = [PollFd::new(socket, PollFlags::IN), PollFd::new(control, PollFlags::IN)];
        poll(&mut fds).context("failed to wait for the traced process's listener")?;
        let (socket_ready, control_ready) =
            (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if socket_ready {
            return super::fd_passing::receive(socket.as_fd(), false)
                .context("failed to receive the seccomp listener")?
                .map(Some)
                .context(
                    "the traced process closed its socket without sending its seccomp listener",
                );
        }
        if control_ready {
            if read_control(control)? == STOP {
                return Ok(None);
            }
            // The caller saw the traced process exit (or exec); it sent its
            // listener before that, or never will.
            match super::fd_passing::receive(socket.as_fd(), true) {
                Ok(Some(fd)) => return Ok(Some(fd)),
                Ok(None) | Err(_) => bail!(
                    "the traced process never installed its seccomp filter (it failed or exited before its exec)"
                ),
            }
        }
    }
}

/// Answers notifications until every process using the filter is gone
/// (`POLLHUP`, `seccomp_unotify(2)`) or the caller says stop.
fn serve(listener: &Listener, control: &OwnedFd) -> Result<Trace> {
    let mut seen: BTreeMap<(PathBuf, Access, Found), u32> = BTreeMap::new();
    let mut notifications = 0u64;
    loop {
        let mut fds =
            [PollFd::new(&listener.fd, PollFlags::IN), PollFd::new(control, PollFlags::IN)];
        poll(&mut fds).context("failed to wait for seccomp notifications")?;
        let (events, control_ready) = (fds[0].revents(), !fds[1].revents().is_empty());
        if control_ready && read_control(control)? == STOP {
            break;
        }
        if events.contains(PollFlags::IN) {
            let Some(notif) =
                listener.receive().context("failed to receive a seccomp notification")?
            else {
                continue;
            };
            notifications += 1;
            let observed = observe(listener, &notif);
            listener.answer(notif.id).context("failed to answer a seccomp notification")?;
            if let Some((path, access, found)) = observed {
                seen.entry((path, access, found)).or_insert(notif.pid);
            }
        } else if events.intersects(PollFlags::HUP | PollFlags::ERR) {
            break;
        }
    }
    let events = seen
        .into_iter()
        .map(|((path, access, found), pid)| Event { path, access, found, pid })
        .collect();
    Ok(Trace { events, notifications })
}

/// What one notification's call names and what is there, or `None` for a
/// call we do not record (or whose thread is gone).
fn observe(listener: &Listener, notif: &libc::seccomp_notif) -> Option<(PathBuf, Access, Found)> {
    let syscall = syscalls::find(notif.data.arch, notif.data.nr)?;
    let unknown = |path: PathBuf, errno: Errno| {
        Some((path, syscall.access, Found::Unknown { errno: errno.raw_os_error() }))
    };
    let target = match Target::open(notif.pid) {
        Ok(target) => target,
        Err(_) if !listener.id_valid(notif.id) => return None,
        Err(errno) => return unknown(PathBuf::new(), errno),
    };
    // From here `target` names the thread that made the call, not a later
    // process with the same number.
    if !listener.id_valid(notif.id) {
        return None;
    }
    let named = target.named(syscall, &notif.data.args);
    // The thread was still stopped in the call while we read its memory, so
    // what we read is what the call uses (another thread of the same process
    // could still change it: an observer cannot close that race, and need not).
    if !listener.id_valid(notif.id) {
        return None;
    }
    match named {
        Ok(named) => target.look_up(named),
        Err((path, errno)) => unknown(path, errno),
    }
}

/// The seccomp listener, with its buffers sized as the kernel says.
struct Listener {
    fd: OwnedFd,
    notif_size: usize,
    resp_size: usize,
}

impl Listener {
    fn new(fd: OwnedFd) -> Result<Listener> {
        // SAFETY: a plain C struct, filled by the kernel.
        let mut sizes: libc::seccomp_notif_sizes = unsafe { std::mem::zeroed() };
        // SAFETY: SECCOMP_GET_NOTIF_SIZES writes one seccomp_notif_sizes.
        let r = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_GET_NOTIF_SIZES, 0, &mut sizes as *mut _)
        };
        if r != 0 {
            return Err(io::Error::last_os_error())
                .context("failed to query seccomp notification sizes");
        }
        // Best effort (Linux 6.6): wake this thread on the CPU of the target
        // and switch to it at once, which shortens each round trip.
        // SAFETY: SET_FLAGS takes its flags by value.
        unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        };
        // The kernel's structures may be larger than the ones we know (newer
        // fields at the end); ours are a prefix of theirs.
        Ok(Listener {
            fd,
            notif_size: usize::from(sizes.seccomp_notif).max(size_of::<libc::seccomp_notif>()),
            resp_size: usize::from(sizes.seccomp_notif_resp)
                .max(size_of::<libc::seccomp_notif_resp>()),
        })
    }

    /// The next notification; `None` when its thread was interrupted or died
    /// between the poll and now (`ENOENT`), or for a signal (`EINTR`).
    fn receive(&self) -> io::Result<Option<libc::seccomp_notif>> {
        // u64 words: aligned for the struct; zeroed, as RECV requires.
        let mut buf = vec![0u64; self.notif_size.div_ceil(8)];
        // SAFETY: the buffer holds at least the size the kernel writes.
        let r = unsafe {
            libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, buf.as_mut_ptr())
        };
        if r != 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENOENT | libc::EINTR) => Ok(None),
                _ => Err(err),
            };
        }
        // SAFETY: the buffer starts with a seccomp_notif, which is plain data.
        Ok(Some(unsafe { buf.as_ptr().cast::<libc::seccomp_notif>().read() }))
    }

    fn id_valid(&self, id: u64) -> bool {
        // SAFETY: ID_VALID reads one u64.
        unsafe {
            libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id as *const u64)
                == 0
        }
    }

    /// Lets the call run as if unfiltered. A thread that died or was
    /// interrupted meanwhile (`ENOENT`) needs no answer.
    fn answer(&self, id: u64) -> io::Result<()> {
        let mut buf = vec![0u64; self.resp_size.div_ceil(8)];
        let resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // SAFETY: the buffer is large and aligned enough for the struct.
        unsafe { buf.as_mut_ptr().cast::<libc::seccomp_notif_resp>().write(resp) };
        // SAFETY: SEND reads one seccomp_notif_resp from the buffer.
        let r = unsafe {
            libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, buf.as_ptr())
        };
        if r != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ENOENT) {
                return Err(err);
            }
        }
        Ok(())
    }
}

fn poll(fds: &mut [PollFd<'_>]) -> io::Result<()> {
    loop {
        match rustix::event::poll(fds, None) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn read_control(control: &OwnedFd) -> Result<u8> {
    let mut byte = [0u8; 1];
    let n = rustix::io::read(control, &mut byte)
        .context("failed to read the supervisor's control pipe")?;
    // The write end closed: the `Supervisor` was dropped.
    Ok(if n == 0 { STOP } else { byte[0] })
}
