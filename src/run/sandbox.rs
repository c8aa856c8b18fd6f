//! Entering a root filesystem the way a container runtime does: the only code that enters a rootfs, and the only code that mounts.
//!
//! An attached command (`shell`, `run`) is started through a hook that runs
//! between `fork` and `exec` (`Command::pre_exec`), in three processes:
//! 1. the forked process, the *keeper* (`run/sandbox/keeper.rs`), puts every
//!    signal back to its default action (it never executes, so it would
//!    otherwise run the tool's own handlers, `signal(7)`), joins the
//!    check's cgroups (or sets rlimits), unshares new user, mount, PID, UTS,
//!    IPC and (unless the network is shared) network namespaces, mapping the
//!    user (root too) to root inside (`user_namespaces(7)`), so nothing inside
//!    holds a capability over the host's kernel; then it forks again, and
//!    waits;
//! 2. the second child is PID 1 of the new PID namespace (`run/sandbox/pid1.rs`).
//!    It makes every mount private (`mount_namespaces(7)`: nothing propagates
//!    to the host), bind-mounts the root (recursively) and makes every mount
//!    under it read-only, mounts `/proc` (with `/proc/sys` and the other paths
//!    that reach the host's kernel read-only), a tmpfs `/dev` holding bind
//!    mounts of the host's `null`, `zero`, `full`, `random`, `urandom` and
//!    `tty`, a read-only sysfs on `/sys` (as container runtimes give one;
//!    the host's `/sys`, read-only, when the network is the host's, whose
//!    sysfs a user namespace cannot mount), and a tmpfs `/tmp` of the
//!    check's size; a sysroot used as the reference also gets an empty
//!    `/run`, as a built tree has. A root holding another architecture's
//!    programs gets its emulators registered in the namespace's own
//!    binfmt_misc (`run/sandbox/binfmt.rs`). Then
//!    it moves into the root with `pivot_root(".", ".")` and detaches the old
//!    root (`pivot_root(2)`, NOTES), sets the hostname and brings `lo` up.
//!    Last it enters a nested user and mount namespace, which locks every
//!    mount as it is: nothing inside can make the tree writable again. Then
//!    the program is executed;
//! 3. the keeper exits with PID 1's status.
//!
//! An [`Access`] (`shell` and `run`, and smoke checks that ask) changes
//! this in four places only (`run/sandbox/access.rs`, `run/sandbox/layer.rs`): PID 1
//! takes the host paths to bind first, as detached mounts, right after
//! making mounts private; with binds or writes it sees the tree through an
//! overlay whose upper layer is a tmpfs, instead of the read-only bind,
//! attaches the binds after `pivot_root` and then makes the overlay
//! read-only (unless writes are asked for); the nested user namespace maps
//! the user asked for, not root, to the caller; and the host's network is
//! shared by not unsharing the network namespace at all.
//!
//! A check ([`Sandbox::start`]) makes the same steps without a fork of the
//! tool (`run/sandbox/launcher.rs`): a *launcher* running in the tool's
//! memory (`clone(2)` with `CLONE_VM | CLONE_VFORK`, as `posix_spawn(3)`
//! runs its child) does the keeper's part and starts PID 1 the same way, as
//! the tool's own child (`CLONE_PARENT`), then exits; the tool waits for
//! PID 1 through a pidfd. A `fork` would copy, write-protect, fill and
//! unmap the page tables of a process the tool's size on every check.
//!
//! Killing PID 1 (a timeout) kills every process of the namespace
//! (`pid_namespaces(7)`) and lets the keeper reap it and exit, so nothing is
//! left; the tool dying kills the keeper, and PID 1 with it through
//! `PR_SET_PDEATHSIG`. The mounts belong to the private mount namespace and
//! vanish with its last process: the host's mount table never changes, and
//! the root is never written to.
//!
//! Between `fork` and `exec` only async-signal-safe calls are allowed
//! (`signal-safety(7)`): every string is prepared beforehand ([`Sandbox`],
//! [`Launch`]), nothing allocates, and which step failed is reported through
//! a shared page ([`StepLog`]) rather than formatted text.

mod access;
pub mod binfmt;
mod exec;
mod init;
mod keeper;
mod launcher;
mod layer;
pub(crate) mod limits;
mod netslot;
mod pid1;
mod prepare;
mod steps;

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustix::mount::MountFlags;

pub use self::access::{Access, Bind, BindError, Ids, check_source, is_dir_inside, resolve_item};
pub use self::init::{Forwarding, forward_to_pid1, take_terminal_back, terminal_is_ours};
pub use self::launcher::Started;
pub use self::limits::{Cgroups, CheckLimits, LimitHit};
pub use self::netslot::NetSlot;
pub use self::steps::{Step, StepLog};

/// The device nodes bind-mounted from the host into `/dev`.
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// What plays `/` inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// A built tree.
    Tree,
    /// The sysroot a tree was built from, as the reference a tree is
    /// compared with: its own `/run` is hidden behind an empty read-only
    /// folder, as in a built tree, and its `/sys` is covered by the same
    /// fresh sysfs the tree gets.
    Reference,
}

/// How to enter a root.
#[derive(Clone, Debug)]
pub struct Options {
    /// The host directory that becomes `/`.
    pub root: PathBuf,
    pub kind: RootKind,
    /// The hostname inside.
    pub hostname: String,
    /// Whether commands are attached (`shell`, `run`): PID 1 is then an
    /// init that runs the command as PID 2, forwards signals to it and
    /// reaps orphans (`run/sandbox/init.rs`), and the keeper ignores the
    /// signals forwarded.
    pub interactive: bool,
}

/// Everything needed to enter one root, prepared before any fork.
#[derive(Debug)]
pub struct Sandbox {
    /// The host path the root is bind-mounted on (the root itself, or the
    /// host's `/tmp` when the root is `/`, which cannot be pivoted onto
    /// itself).
    mount_point: CString,
    root: CString,
    proc_dir: CString,
    /// Parts of `/proc` that reach the host's kernel, made read-only as
    /// container runtimes do (`readonlyPaths` of the OCI runtime spec): a
    /// user namespace removes capabilities, but the host's uid 0 still owns
    /// `/proc/sys` by plain file permissions.
    proc_read_only: Vec<CString>,
    dev_dir: CString,
    tmp_dir: CString,
    /// `/proc/sys/fs/binfmt_misc` inside, and its `register` file.
    binfmt_dir: (CString, CString),
    /// Folders hidden behind an empty read-only tmpfs (the reference's
    /// `/run`).
    masked: Vec<CString>,
    /// Where a read-only sysfs is mounted (`/sys`), when the root has it.
    sys_dir: Option<CString>,
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
    interactive: bool,
    /// Binds, the writable layer, the network and the user inside.
    access: access::Prepared,
    /// The emulators of the root's foreign architectures.
    emulation: binfmt::Prepared,
}

/// What one command gets besides the sandbox: its limits and its `/tmp`.
#[derive(Debug)]
pub struct Launch {
    /// `cgroup.procs` of the command's cgroups, written by the keeper. The
    /// [`CheckLimits`] they come from outlive the command.
    join_fds: Vec<std::os::fd::RawFd>,
    rlimits: Vec<limits::Rlimit>,
    /// Mount options of its `/tmp`, with the size.
    tmp_options: CString,
    /// A seccomp tracer installed as the very last step before `exec`
    /// (`rootfs trace`).
    tracer: Option<Arc<crate::run::trace::Filter>>,
    /// An attached command takes the terminal on standard input.
    foreground: bool,
    /// Native programs run under this emulator (`run/sandbox/binfmt.rs`).
    emulator: Option<Arc<binfmt::native::Entry>>,
    /// The user and network namespaces to join instead of making new ones,
    /// when the sandbox has a network of its own.
    slot: Option<Arc<NetSlot>>,
}

impl Launch {
    /// A command with a `/tmp` of `tmp_size` bytes and these limits.
    pub fn new(limits: Option<&CheckLimits>, tmp_size: u64) -> Launch {
        let tmp_options = CString::new(format!("mode=1777,size={tmp_size}"))
            .expect("no NUL in formatted numbers");
        Launch {
            join_fds: limits.map(|l| l.join_fds()).unwrap_or_default(),
            rlimits: limits.map(|l| l.rlimits().to_vec()).unwrap_or_default(),
            tmp_options,
            tracer: None,
            foreground: false,
            emulator: None,
            slot: None,
        }
    }

    /// The same, joining the user and network namespaces of `slot` (a
    /// worker's, [`NetSlot`]) rather than making a pair of its own.
    pub fn in_slot(mut self, slot: Arc<NetSlot>) -> Launch {
        self.slot = Some(slot);
        self
    }

    /// The same, with every native program it executes, itself first, run
    /// under the emulator of `entry`.
    pub fn emulated(mut self, entry: Arc<binfmt::native::Entry>) -> Launch {
        self.emulator = Some(entry);
        self
    }

    /// The same, for an attached command that takes the terminal's
    /// foreground (see [`terminal_is_ours`]).
    pub fn in_foreground(mut self, foreground: bool) -> Launch {
        self.foreground = foreground;
        self
    }

    /// The same, with every path the command's process tree uses recorded
    /// by `tracer`'s supervisor.
    pub fn traced(mut self, tracer: Arc<crate::run::trace::Filter>) -> Launch {
        self.tracer = Some(tracer);
        self
    }
}

impl Sandbox {
    /// Prepares entering `options.root` with `access`: binds, a writable
    /// layer, the host's network, another user.
    pub fn with_access(options: &Options, access: &Access) -> Result<Sandbox> {
        prepare::sandbox(options, access)
    }

    /// Whether commands share the caller's network (`--network host`).
    pub fn shares_network(&self) -> bool {
        self.access.share_network
    }

    /// The root, as a host path.
    pub fn root(&self) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(self.root.as_bytes()))
    }

    /// `argv` run inside with `env` as its whole environment, as a duct
    /// expression whose process is the keeper; the log says how far the
    /// entering got, and PID 1's pid while it runs.
    pub fn command(
        self: &Arc<Self>,
        argv: &[String],
        env: &[(String, String)],
        launch: Arc<Launch>,
    ) -> Result<(duct::Expression, Arc<StepLog>)> {
        let (program, args) = argv.split_first().context("empty command line")?;
        let log = Arc::new(StepLog::new()?);
        let sandbox = self.clone();
        let hook_log = log.clone();
        let expression =
            duct::cmd(program, args).full_env(env.iter().cloned()).before_spawn(move |cmd| {
                let sandbox = sandbox.clone();
                let log = hook_log.clone();
                let launch = launch.clone();
                // SAFETY: the hook runs in the forked child and only makes
                // async-signal-safe system calls on data prepared beforehand.
                unsafe {
                    cmd.pre_exec(move || keeper::run(&sandbox, &launch, &log));
                }
                Ok(())
            });
        Ok((expression, log))
    }

    /// `argv` run inside with `env` as its whole environment, as a check
    /// is started (`run/sandbox/launcher.rs`): PID 1 a child of the tool,
    /// standard input `/dev/null`, output and errors to `stdout` and
    /// `stderr`. Returns once the command executes; `log` says how far the
    /// entering got.
    pub fn start(
        &self,
        argv: &[String],
        env: &[(String, String)],
        launch: &Launch,
        log: &StepLog,
        stdout: std::os::fd::BorrowedFd,
        stderr: std::os::fd::BorrowedFd,
    ) -> Result<Started> {
        anyhow::ensure!(!self.interactive, "an attached command is started with `command`");
        let exec = exec::Exec::new(argv, env)?;
        launcher::start(self, launch, log, &exec, stdout, stderr)
            .map_err(|e| anyhow::anyhow!("{e} (while {})", log.step().words()))
    }

    /// Enters once without running anything (the exec of a path that does
    /// not exist is the only step allowed to fail), so that a machine where
    /// namespaces are not allowed gets one clear error instead of one
    /// failure per check.
    pub fn preflight(self: &Arc<Self>) -> Result<()> {
        let launch = Launch::new(None, 1 << 20);
        let argv = ["/.rootfs-preflight".to_string()];
        let log = Arc::new(StepLog::new()?);
        let result = if self.interactive {
            let (expression, command_log) = self.command(&argv, &[], Arc::new(launch))?;
            let ran = expression.stdin_null().stdout_null().stderr_null().unchecked().run();
            log.set(command_log.step());
            ran.map(drop)
        } else {
            let null = std::fs::File::options().write(true).open("/dev/null")?;
            let exec = exec::Exec::new(&argv, &[])?;
            launcher::start(self, &launch, &log, &exec, null.as_fd(), null.as_fd()).map(drop)
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound && log.step() == Step::Executing => {
                Ok(())
            }
            // Only the namespaces themselves depend on what the kernel
            // allows users; a later step names its own cause.
            Err(e) if (log.step() as u32) <= Step::ForkingPid1 as u32 => Err(anyhow::anyhow!(
                "cannot enter `{}` ({} failed: {e}); entering needs root, or a kernel that allows \
                 unprivileged user namespaces",
                self.root().display(),
                log.step().words()
            )),
            Err(e) => Err(anyhow::anyhow!(
                "cannot enter `{}`: {} failed: {e}",
                self.root().display(),
                log.step().words()
            )),
            Ok(()) => Ok(()),
        }
    }
}

/// Mount flags every mount made inside gets besides its own.
const SAFE: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV);

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
