//! A user and network namespace made once for each worker of a smoke run and entered by its checks one after the other, instead of a fresh pair for every run: making a network namespace and tearing it down costs a run more than everything else it does.
//!
//! Measured on the machine of BENCHMARKS.md (a VM, Linux 6.18): a fork,
//! `unshare(CLONE_NEWNS)`, a bind, `pivot_root` and a detach took about
//! 2.5 ms from fork to reap; with `CLONE_NEWNET` too, about 17 to 29 ms,
//! most of it waiting on the kernel (the new namespace's set-up, and the
//! old root's detach waiting behind the teardown of earlier ones).
//!
//! A worker's checks never run at once, and every process of a check is
//! gone (its PID namespace killed and reaped) before the worker's next
//! check starts, so each check still has a network of its own while it
//! runs: only `lo`, up, and a sysfs showing it. The user namespace is the
//! one the keeper would have made (this user as root inside), made once
//! with it because a sysfs may only be mounted by a holder of
//! `CAP_SYS_ADMIN` in the user namespace owning the network namespace
//! (`sysfs(5)`): the keeper joins both with `setns(2)` and unshares the
//! rest.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};

use super::pid1;

/// The namespaces of one worker, held by descriptors: they live as long as
/// the slot, with no process in them between checks.
#[derive(Debug)]
pub struct NetSlot {
    pub(super) user: OwnedFd,
    pub(super) net: OwnedFd,
}

impl NetSlot {
    /// Makes a user namespace mapping this user to root, and a network
    /// namespace owned by it with `lo` up, in a child that waits until
    /// both are opened from `/proc/<pid>/ns/`.
    pub fn create() -> Result<NetSlot> {
        let maps = (
            format!("0 {} 1\n", rustix::process::geteuid().as_raw()).into_bytes(),
            format!("0 {} 1\n", rustix::process::getegid().as_raw()).into_bytes(),
        );
        let (ready_read, ready_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .context("creating a pipe for a network slot")?;
        let (done_read, done_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .context("creating a pipe for a network slot")?;
        // SAFETY: the child only makes async-signal-safe calls on data
        // prepared before the fork, then exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error()).context("forking a network slot's child");
        }
        if pid == 0 {
            drop((ready_read, done_write));
            let status = i32::from(child(&maps, &ready_write, &done_read).is_err());
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(status) };
        }
        drop((ready_write, done_read));
        let opened = wait_ready(&ready_read).and_then(|()| open_namespaces(pid));
        drop(done_write);
        let mut status = 0;
        // SAFETY: reaps the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        opened
    }
}

/// In the child: the namespaces, their maps and `lo`, then a byte to say
/// so, then waiting for the parent to close its end.
fn child(maps: &(Vec<u8>, Vec<u8>), ready: &OwnedFd, done: &OwnedFd) -> io::Result<()> {
    use rustix::thread::UnshareFlags;
    // SAFETY: this process is single-threaded (fresh from fork).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNET) }?;
    pid1::write_user_maps(&maps.0, &maps.1)?;
    pid1::loopback_up();
    rustix::io::write(ready, b"1")?;
    let mut byte = [0u8; 1];
    let _ = rustix::io::read(done, &mut byte);
    Ok(())
}

fn wait_ready(ready: &OwnedFd) -> Result<()> {
    let mut byte = [0u8; 1];
    let n = rustix::io::read(ready.as_fd(), &mut byte).context("waiting for a network slot")?;
    anyhow::ensure!(n == 1, "the network slot's child could not make its namespaces");
    Ok(())
}

fn open_namespaces(pid: libc::pid_t) -> Result<NetSlot> {
    let open = |name: &str| -> Result<OwnedFd> {
        let path = format!("/proc/{pid}/ns/{name}");
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
        rustix::fs::open(path.as_str(), flags, rustix::fs::Mode::empty())
            .with_context(|| format!("failed to open `{path}`"))
    };
    Ok(NetSlot { user: open("user")?, net: open("net")? })
}
