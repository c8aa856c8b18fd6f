//! Installing the filter in the traced process between `fork` and `exec`, and handing its listener to the supervisor.
//!
//! This runs in a forked child of a possibly multi-threaded parent, so it may
//! only make async-signal-safe calls (`signal-safety(7)`): it allocates
//! nothing, takes no lock and touches only data prepared before the fork
//! (the BPF program and the socket). Each call below is a plain system call:
//! `prctl(2)`, `seccomp(2)` (through `syscall(2)`, which only loads registers
//! and sets `errno`), `sendmsg(2)` and `close(2)`; `sendmsg` and `close` are
//! on the async-signal-safe list of POSIX, and the others are system calls
//! that, like them, touch no state of the C library but `errno`. The `CMSG_*`
//! helpers are pointer arithmetic on a buffer on the stack.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Installs `program` with `SECCOMP_FILTER_FLAG_NEW_LISTENER` and sends the
/// listener over `socket`. The caller must make this its last step before
/// `exec`: from here on, every traced call waits for the supervisor.
pub(super) fn install(program: &[libc::sock_filter], socket: BorrowedFd<'_>) -> io::Result<()> {
    let prog = libc::sock_fprog {
        // The program is about 50 instructions (`syscalls::program`).
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr().cast_mut(),
    };
    let listener = match set_filter(&prog) {
        // seccomp(2): a process without CAP_SYS_ADMIN in its user namespace
        // must set no_new_privs first, so that a set-user-ID program cannot
        // run under a filter its caller chose. Root of its own user
        // namespace (the sandbox) need not, and keeps set-user-ID semantics.
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            set_filter(&prog)?
        }
        other => other?,
    };
    let sent = send_fd(socket, listener);
    // The supervisor holds its own copy now; this process must not keep the
    // listener across exec (it is close-on-exec already, but the program
    // should not even see it before then).
    // SAFETY: `listener` is a descriptor this function owns.
    unsafe { libc::close(listener) };
    sent
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
/// prog)`, returning the listener (close-on-exec, `seccomp_unotify(2)`).
fn set_filter(prog: &libc::sock_fprog) -> io::Result<RawFd> {
    // SAFETY: `prog` points to a valid program for the duration of the call;
    // the kernel copies it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 { Err(io::Error::last_os_error()) } else { Ok(fd as RawFd) }
}

/// A control-message buffer on the stack with room for one descriptor,
/// aligned as `struct cmsghdr` needs.
#[repr(C)]
union FdMessage {
    // SAFETY: CMSG_SPACE is arithmetic on sizes.
    bytes: [u8; unsafe { libc::CMSG_SPACE(size_of::<RawFd>() as u32) } as usize],
    _align: libc::cmsghdr,
}

/// Sends `fd` with `SCM_RIGHTS` (`unix(7)`) and one byte of data, which a
/// `SOCK_SEQPACKET` message carries so the receiver can tell a message from
/// the end of the stream.
fn send_fd(socket: BorrowedFd<'_>, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let mut control = FdMessage { bytes: [0; size_of::<FdMessage>()] };
    // SAFETY: msghdr is a plain C struct; zero is a valid value for it.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: writing a union field of plain bytes.
    msg.msg_control = unsafe { control.bytes.as_mut_ptr() }.cast();
    msg.msg_controllen = size_of::<FdMessage>();
    // SAFETY: the control buffer is large enough for one header and one
    // descriptor (CMSG_SPACE above) and aligned for cmsghdr.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
        libc::CMSG_DATA(cmsg).cast::<RawFd>().write_unaligned(fd);
    }
    loop {
        // SAFETY: `msg` and everything it points to live on this stack frame.
        let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}
