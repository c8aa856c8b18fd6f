//! Entering a built rootfs the way a container runtime does: the only code that enters a rootfs, and the only code that mounts.
//!
//! A command is started through a hook that runs between `fork` and `exec`
//! (`Command::pre_exec`):
//! 1. the forked process (the *keeper*) unshares new user, mount, PID, UTS,
//!    IPC and network namespaces, mapping the user (root too) to root
//!    inside (`user_namespaces(7)`), so nothing inside holds a capability
//!    over the host's kernel; then it forks again;
//! 2. the second child is PID 1 of the new PID namespace. It makes every
//!    mount private (`mount_namespaces(7)`: nothing propagates to the host),
//!    bind-mounts the rootfs onto itself read-only, mounts `/proc` (with
//!    `/proc/sys` and the other paths that reach the host's kernel
//!    read-only), a tmpfs `/dev` holding bind mounts of the host's `null`,
//!    `zero`, `full`, `random`, `urandom` and `tty`, and a tmpfs `/tmp`, then
//!    moves into the tree with `pivot_root(".", ".")` and detaches the old
//!    root (`pivot_root(2)`, NOTES), sets the hostname and brings `lo` up.
//!    Last it enters a nested user and mount namespace, which locks every
//!    mount as it is: nothing inside can make the tree writable again. Then
//!    the program is executed;
//! 3. the keeper waits for it and exits with its status.
//!
//! Killing the keeper (a timeout, Ctrl-C, the tool dying) kills PID 1
//! through `PR_SET_PDEATHSIG`, and the death of PID 1 kills every process of
//! the namespace (`pid_namespaces(7)`). The mounts belong to the private mount
//! namespace and vanish with its last process: the host's mount table never
//! changes, and the tree is never written to.
//!
//! Between `fork` and `exec` only async-signal-safe calls are allowed
//! (`signal-safety(7)`): every string is prepared beforehand, nothing
//! allocates, and which step failed is reported through a shared memory page
//! rather than formatted text.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::UnshareFlags;

/// The steps of entering, for messages; the shared page holds an index.
const STEPS: &[&str] = &[
    "starting",
    "setting the parent-death signal",
    "unsharing namespaces (unshare)",
    "writing the user namespace's uid and gid maps",
    "forking PID 1 of the new PID namespace",
    "making mounts private",
    "bind-mounting the rootfs",
    "remounting the rootfs read-only",
    "mounting /proc",
    "mounting a tmpfs on /dev",
    "populating /dev",
    "mounting a tmpfs on /tmp",
    "pivot_root into the rootfs",
    "setting the hostname",
    "executing the command",
    "locking the mounts in a nested user namespace",
];
const STEP_PDEATH: u32 = 1;
const STEP_UNSHARE: u32 = 2;
const STEP_USERMAP: u32 = 3;
const STEP_FORK: u32 = 4;
const STEP_PRIVATE: u32 = 5;
const STEP_BIND: u32 = 6;
const STEP_READONLY: u32 = 7;
const STEP_PROC: u32 = 8;
const STEP_DEV: u32 = 9;
const STEP_DEV_NODES: u32 = 10;
const STEP_TMP: u32 = 11;
const STEP_PIVOT: u32 = 12;
const STEP_HOSTNAME: u32 = 13;
const STEP_EXEC: u32 = 14;
const STEP_LOCK: u32 = 15;

/// The device nodes bind-mounted from the host into `/dev`.
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Everything needed to enter one rootfs, prepared before any fork.
#[derive(Debug)]
pub struct Enter {
    root: CString,
    proc_dir: CString,
    /// Parts of `/proc` that reach the host's kernel, made read-only as
    /// container runtimes do (`readonlyPaths` of the OCI runtime spec): a
    /// user namespace removes capabilities, but the host's uid 0 still owns
    /// `/proc/sys` by plain file permissions.
    proc_read_only: Vec<CString>,
    dev_dir: CString,
    tmp_dir: CString,
    /// (host node, mount point inside the new /dev).
    dev_nodes: Vec<(CString, CString)>,
    /// (target, link path) for /dev/fd, /dev/stdin, ...
    dev_links: Vec<(CString, CString)>,
    dev_dirs: Vec<CString>,
    hostname: Vec<u8>,
    /// Contents of `uid_map` and `gid_map` of the outer user namespace:
    /// this user as root inside. Root gets a user namespace too, so that
    /// nothing inside holds a capability over the host's kernel objects
    /// (`/proc/sys`, device nodes, the host's mounts).
    user_maps: (Vec<u8>, Vec<u8>),
    /// Flags of the host mount holding the tree, which a remount inside a
    /// user namespace must keep (they are locked).
    kept_flags: MountFlags,
    /// Whether the command shares the terminal: the keeper then ignores
    /// SIGINT and SIGQUIT so that they reach the program only.
    interactive: bool,
}

impl Enter {
    /// Prepares entering the tree at `root` (a host path).
    pub fn new(root: &Path, hostname: &str, interactive: bool) -> Result<Enter> {
        let root = std::path::absolute(root)
            .with_context(|| format!("failed to resolve `{}`", root.display()))?;
        for dir in ["proc", "dev", "tmp"] {
            let path = root.join(dir);
            anyhow::ensure!(
                path.is_dir() && !path.is_symlink(),
                "`{}` is missing: the rootfs needs a /{dir} directory to mount on",
                path.display()
            );
        }
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .with_context(|| format!("`{}` contains a NUL byte", p.display()))
        };
        let dev = root.join("dev");
        let dev_nodes = DEV_NODES
            .iter()
            .map(|n| Ok((c(&Path::new("/dev").join(n))?, c(&dev.join(n))?)))
            .collect::<Result<Vec<_>>>()?;
        let dev_links = [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ]
        .iter()
        .map(|(target, name)| Ok((c(Path::new(target))?, c(&dev.join(name))?)))
        .collect::<Result<Vec<_>>>()?;
        let dev_dirs = vec![c(&dev.join("shm"))?, c(&dev.join("pts"))?];
        let euid = rustix::process::geteuid();
        let user_maps = {
            let uid = euid.as_raw();
            let gid = rustix::process::getegid().as_raw();
            (format!("0 {uid} 1\n").into_bytes(), format!("0 {gid} 1\n").into_bytes())
        };
        let statvfs = rustix::fs::statvfs(&root)
            .with_context(|| format!("failed to statvfs `{}`", root.display()))?;
        let mut kept_flags = MountFlags::empty();
        for (st, ms) in [
            (rustix::fs::StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
            (rustix::fs::StatVfsMountFlags::NODEV, MountFlags::NODEV),
            (rustix::fs::StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
            (rustix::fs::StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
            (rustix::fs::StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
            (rustix::fs::StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
        ] {
            if statvfs.f_flag.contains(st) {
                kept_flags |= ms;
            }
        }
        let proc_read_only = ["sys", "sysrq-trigger", "irq", "bus", "fs"]
            .iter()
            .map(|p| c(&root.join("proc").join(p)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Enter {
            proc_read_only,
            proc_dir: c(&root.join("proc"))?,
            dev_dir: c(&dev)?,
            tmp_dir: c(&root.join("tmp"))?,
            root: c(&root)?,
            dev_nodes,
            dev_links,
            dev_dirs,
            hostname: hostname.as_bytes().to_vec(),
            user_maps,
            kept_flags,
            interactive,
        })
    }

    /// Enters the rootfs once without running anything (the exec of a path
    /// that does not exist is the only step allowed to fail), so that a
    /// machine where namespaces are not allowed gets one clear error
    /// instead of one failure per check.
    pub fn preflight(self: &Arc<Self>) -> Result<()> {
        let (expression, log) = self.command(&["/.rootfs-preflight".to_string()], &[])?;
        match expression.stdin_null().stdout_null().stderr_null().unchecked().run() {
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    && log.step() == STEPS[STEP_EXEC as usize] =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!(
                "cannot enter the rootfs `{}` ({} failed: {e}); entering needs root, or a kernel that allows \
                 unprivileged user namespaces",
                self.root().display(),
                log.step()
            )),
            Ok(_) => Ok(()),
        }
    }

    pub fn root(&self) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(self.root.as_bytes()))
    }

    /// `argv` run inside the rootfs with the minimal environment, as a duct
    /// expression whose process is the keeper.
    pub fn command(
        self: &Arc<Self>,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<(duct::Expression, Arc<StepLog>)> {
        let (program, args) = argv.split_first().context("empty command line")?;
        let log = Arc::new(StepLog::new()?);
        let enter = self.clone();
        let hook_log = log.clone();
        let expression =
            duct::cmd(program, args).full_env(env.iter().cloned()).before_spawn(move |cmd| {
                let enter = enter.clone();
                let log = hook_log.clone();
                // SAFETY: the hook runs in the forked child and only makes
                // async-signal-safe system calls on data prepared beforehand.
                unsafe {
                    cmd.pre_exec(move || enter.in_child(&log));
                }
                Ok(())
            });
        Ok((expression, log))
    }

    /// Runs in the forked child (the keeper) before `exec`.
    fn in_child(&self, log: &StepLog) -> io::Result<()> {
        log.set(STEP_PDEATH);
        let parent = rustix::process::getppid();
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        if rustix::process::getppid() != parent {
            // The tool died before we asked to die with it.
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(1) };
        }
        log.set(STEP_UNSHARE);
        let flags = UnshareFlags::NEWUSER
            | UnshareFlags::NEWNS
            | UnshareFlags::NEWPID
            | UnshareFlags::NEWUTS
            | UnshareFlags::NEWIPC
            | UnshareFlags::NEWNET;
        // SAFETY: this process is single-threaded (fresh from fork), so
        // unsharing cannot surprise another thread.
        unsafe { rustix::thread::unshare_unsafe(flags) }?;
        log.set(STEP_USERMAP);
        write_user_maps(&self.user_maps.0, &self.user_maps.1)?;
        if self.interactive {
            // SAFETY: signal(2) is async-signal-safe.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGQUIT, libc::SIG_IGN);
            }
        }
        log.set(STEP_FORK);
        // A pipe whose write end only the keeper holds: PID 1 sees it close
        // if the keeper died before PID 1 could ask to die with it.
        let (alive_read, alive_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // SAFETY: fork in a single-threaded process; the child only makes
        // async-signal-safe calls until exec.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            drop(alive_write);
            return self.in_pid1(log, alive_read);
        }
        drop(alive_read);
        keep(pid, &alive_write)
    }

    /// Runs as PID 1 of the new namespaces, before `exec`.
    fn in_pid1(&self, log: &StepLog, alive: std::os::fd::OwnedFd) -> io::Result<()> {
        log.set(STEP_PDEATH);
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        let mut poll = [rustix::event::PollFd::new(&alive, rustix::event::PollFlags::IN)];
        if rustix::event::poll(&mut poll, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 }))?
            > 0
        {
            // The keeper is gone: nobody would reap or time us out.
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(1) };
        }
        drop(alive);

        log.set(STEP_PRIVATE);
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )?;
        log.set(STEP_BIND);
        rustix::mount::mount_bind_recursive(self.root.as_c_str(), self.root.as_c_str())?;
        log.set(STEP_READONLY);
        rustix::mount::mount_remount(
            self.root.as_c_str(),
            MountFlags::BIND | MountFlags::RDONLY | self.kept_flags,
            c"",
        )?;
        log.set(STEP_PROC);
        rustix::mount::mount(
            c"proc",
            self.proc_dir.as_c_str(),
            c"proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        )?;
        for path in &self.proc_read_only {
            match rustix::mount::mount_bind(path.as_c_str(), path.as_c_str()) {
                Err(rustix::io::Errno::NOENT) => continue,
                other => other?,
            }
            rustix::mount::mount_remount(
                path.as_c_str(),
                MountFlags::BIND
                    | MountFlags::RDONLY
                    | MountFlags::NOSUID
                    | MountFlags::NODEV
                    | MountFlags::NOEXEC,
                c"",
            )?;
        }
        log.set(STEP_DEV);
        rustix::mount::mount(
            c"tmpfs",
            self.dev_dir.as_c_str(),
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            c"mode=0755",
        )?;
        log.set(STEP_DEV_NODES);
        for (host, target) in &self.dev_nodes {
            let fd = rustix::fs::open(
                target.as_c_str(),
                rustix::fs::OFlags::WRONLY
                    | rustix::fs::OFlags::CREATE
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(0o666),
            )?;
            drop(fd);
            rustix::mount::mount_bind(host.as_c_str(), target.as_c_str())?;
        }
        for (target, link) in &self.dev_links {
            rustix::fs::symlink(target.as_c_str(), link.as_c_str())?;
        }
        for dir in &self.dev_dirs {
            rustix::fs::mkdir(dir.as_c_str(), rustix::fs::Mode::from_raw_mode(0o755))?;
            rustix::fs::chmod(dir.as_c_str(), rustix::fs::Mode::from_raw_mode(0o1777))?;
        }
        log.set(STEP_TMP);
        rustix::mount::mount(
            c"tmpfs",
            self.tmp_dir.as_c_str(),
            c"tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            c"mode=1777",
        )?;
        log.set(STEP_PIVOT);
        rustix::process::chdir(self.root.as_c_str())?;
        rustix::process::pivot_root(c".", c".")?;
        rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
        rustix::process::chdir(c"/")?;
        log.set(STEP_HOSTNAME);
        rustix::system::sethostname(&self.hostname)?;
        loopback_up();
        // A nested user and mount namespace: the mounts copied into it are
        // locked (`mount_namespaces(7)`, "Restrictions on mount
        // namespaces"), so nothing inside can remount the tree read-write,
        // unmount /proc or /dev, or reach what they cover.
        log.set(STEP_LOCK);
        // SAFETY: single-threaded, as above.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) }?;
        write_user_maps(b"0 0 1\n", b"0 0 1\n")?;
        if self.interactive {
            // SAFETY: signal(2) is async-signal-safe; the program gets the
            // default dispositions back.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            }
        }
        log.set(STEP_EXEC);
        Ok(())
    }
}

/// The keeper: closes every descriptor it does not need (among them the
/// pipe `std` uses to report a failed exec, so the parent's `spawn` returns
/// as soon as PID 1 has executed), waits for PID 1 and leaves the same way.
fn keep(pid: libc::pid_t, alive: &std::os::fd::OwnedFd) -> ! {
    use std::os::fd::AsRawFd;
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

/// Maps root of a new user namespace to `uid_map`/`gid_map`
/// (`user_namespaces(7)`: setgroups must be denied before an unprivileged
/// process may write its gid_map).
fn write_user_maps(uid_map: &[u8], gid_map: &[u8]) -> io::Result<()> {
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
fn loopback_up() {
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

/// A page of memory shared with the forked children, where they record the
/// step they are at; after a failure the parent reads which one failed.
#[derive(Debug)]
pub struct StepLog {
    page: *mut AtomicU32,
}

// SAFETY: the page is only accessed through an atomic.
unsafe impl Send for StepLog {}
// SAFETY: as above.
unsafe impl Sync for StepLog {}

impl StepLog {
    fn new() -> Result<StepLog> {
        // SAFETY: a fresh anonymous shared mapping, unmapped in Drop.
        let page = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                4096,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
            )
        }
        .context("failed to map a shared page")?;
        Ok(StepLog { page: page.cast() })
    }

    fn set(&self, step: u32) {
        // SAFETY: the page lives as long as self and is aligned.
        unsafe { (*self.page).store(step, Ordering::SeqCst) }
    }

    /// The step reached, as words.
    pub fn step(&self) -> &'static str {
        // SAFETY: as in `set`.
        let step = unsafe { (*self.page).load(Ordering::SeqCst) } as usize;
        STEPS.get(step).copied().unwrap_or("starting")
    }
}

impl Drop for StepLog {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length.
        let _ = unsafe { rustix::mm::munmap(self.page.cast(), 4096) };
    }
}

/// Why entering may fail for this user, in one line, before trying: `None`
/// when it should work.
pub fn cannot_enter_reason() -> Option<String> {
    if rustix::process::geteuid().is_root() {
        return None;
    }
    let path = Path::new("/proc/sys/kernel/unprivileged_userns_clone");
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "0") {
        return Some(
            "entering the rootfs needs root or an unprivileged user namespace, and this kernel disables them \
             (kernel.unprivileged_userns_clone = 0): run as root"
                .to_string(),
        );
    }
    let max = Path::new("/proc/sys/user/max_user_namespaces");
    if std::fs::read_to_string(max).is_ok_and(|v| v.trim() == "0") {
        return Some(
            "entering the rootfs needs root or a user namespace, and user.max_user_namespaces = 0 here: run as root"
                .to_string(),
        );
    }
    None
}
