//! Installing the filter in the traced process between `fork` and `exec`, and handing its listener to the supervisor.
//!
//! This runs in a forked child of a possibly multi-threaded parent, so it may
//! only make async-signal-safe calls (`signal-safety(7)`): it allocates
//! nothing, takes no lock and touches only data prepared before the fork
//! (the BPF program and the socket). Each call below is a plain system call:
//! `prctl(2)`, `seccomp(2)` (through `syscall(2)`, which only loads registers
//! and sets `errno`), `sendmsg(2)` (by `fd_passing.rs`) and `close(2)`; `sendmsg` and `close` are
//! on the async-signal-safe list of POSIX, and the others are system calls
//! that, like them, touch no state of the C library but `errno`.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

/// Installs `program` with `SECCOMP_FILTER_FLAG_NEW_LISTENER` and sends the
/// listener over `socket`. The caller must make this its last step before
/// `exec`: from here on, every traced call waits for the supervisor.
pub(super) fn install(program: &[libc::sock_filter], socket: BorrowedFd<'_>) -> io::Result<()> {
    let prog = libc::sock_fprog {
        // The program is about 70 instructions (`syscalls::program`).
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
    // SAFETY: `listener` is open until the close below.
    let sent = super::fd_passing::send(socket, unsafe { BorrowedFd::borrow_raw(listener) });
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
