//! The seccomp tracer: tiny C programs that dlopen, exec, read, list, open from a thread, miss a file, run as 32-bit code or inside a chroot, traced as root and rootless.
//!
//! Each scenario runs three ways when the tests run as root: traced by root;
//! traced by root with the child dropped to uid and gid 65534 (then
//! `PR_SET_NO_NEW_PRIVS`); and rootless through and through, by re-executing
//! this test binary as 65534 (`ROOTFS_TRACE_HARNESS` names the fixtures
//! built by the first run), where an unprivileged supervisor traces its own
//! unprivileged child, which sets no_new_privs only because `install_in_child`
//! does it when the kernel asks. As another user, only the last way runs.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rootfs::run::trace::{Access, Event, FileType, Found, Trace};

use crate::support::cc;

/// Set in the re-executed copy of this binary: the fixture directory.
const HARNESS: &str = "ROOTFS_TRACE_HARNESS";
const NOBODY: u32 = 65534;

/// Who traces and who is traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// Root traces root.
    Root,
    /// Root traces a child that dropped to 65534 and set no_new_privs.
    Nobody,
    /// This process, not root, traces a child of its own uid.
    Caller,
}

/// One traced run.
struct Run {
    status: ExitStatus,
    pid: u32,
    trace: Trace,
    stderr: String,
}

impl Run {
    /// The event for `path` and `access`; panics with the whole trace.
    fn event(&self, path: &Path, access: Access) -> &Event {
        self.trace.events.iter().find(|e| e.path == path && e.access == access).unwrap_or_else(
            || panic!("no {access:?} of `{}` in:\n{}", path.display(), self.listing()),
        )
    }

    fn listing(&self) -> String {
        self.trace.events.iter().map(|e| format!("{e:?}\n")).collect()
    }

    fn assert_success(&self) {
        assert!(self.status.success(), "{:?}: {}\n{}", self.status, self.stderr, self.listing());
    }
}

/// Runs `command` traced as `who` says, with `setup` run in the child just
/// before the filter is installed.
fn traced(
    mut command: Command,
    who: Who,
    setup: impl Fn() -> io::Result<()> + Send + Sync + 'static,
) -> Run {
    let (filter, supervisor) = rootfs::run::trace::start().unwrap();
    let filter = Arc::new(filter);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: the hook makes only async-signal-safe system calls.
    unsafe {
        command.pre_exec(move || {
            if who == Who::Nobody {
                drop_to_nobody()?;
            }
            setup()?;
            filter.install_in_child()
        });
    }
    let child = command.spawn().unwrap_or_else(|e| panic!("{who:?}: {e}"));
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let trace = supervisor.finish().unwrap();
    Run {
        status: output.status,
        pid,
        trace,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `setgroups`, `setresgid`, `setresuid` to 65534, then no_new_privs: an
/// unprivileged process may install a seccomp filter only with it. Changing
/// the uid made the process non-dumpable (`prctl(2)`), which would make its
/// `/proc/self` files root's, so it is made dumpable again, as a process
/// started as 65534 is.
fn drop_to_nobody() -> io::Result<()> {
    // SAFETY: plain system calls with integer arguments.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(NOBODY, NOBODY, NOBODY) != 0
            || libc::setresuid(NOBODY, NOBODY, NOBODY) != 0
            || libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn no_setup() -> io::Result<()> {
    Ok(())
}

/// Runs `scenario` on fixtures built once by `build`, each way this user
/// can (see the module's notes). `name` is the test's path in this binary.
fn each_way(name: &str, build: impl FnOnce(&Path), scenario: impl Fn(&Path, Who)) {
    if let Some(dir) = std::env::var_os(HARNESS) {
        scenario(Path::new(&dir), Who::Caller);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Readable by 65534: temporary directories are 0700.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    build(tmp.path());
    if !rustix::process::geteuid().is_root() {
        scenario(tmp.path(), Who::Caller);
        return;
    }
    scenario(tmp.path(), Who::Root);
    scenario(tmp.path(), Who::Nobody);
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(HARNESS, tmp.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir("/")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "as uid {NOBODY}:\n{text}");
    assert!(text.contains("1 passed"), "the test did not run as uid {NOBODY}:\n{text}");
}

fn assert_file(event: &Event, file_type: FileType) {
    assert_eq!(event.file_type(), Some(file_type), "{event:?}");
}

#[test]
fn a_library_dlopened_by_a_name_built_at_run_time_is_found() {
    let build = |dir: &Path| {
        cc(&dir.join("libplugin.so"), "int plugin(void) { return 1; }\n", &["-shared", "-fPIC"]);
        cc(
            &dir.join("dlopener"),
            r#"#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    char name[64];
    snprintf(name, sizeof name, "lib%s%s.so", "plug", "in");
    if (!dlopen(name, RTLD_NOW)) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    return 0;
}
"#,
            &["-ldl"],
        );
    };
    each_way(
        "trace::a_library_dlopened_by_a_name_built_at_run_time_is_found",
        build,
        |dir, who| {
            let mut command = Command::new(dir.join("dlopener"));
            command.env("LD_LIBRARY_PATH", dir);
            let run = traced(command, who, no_setup);
            run.assert_success();
            assert_file(run.event(&dir.join("libplugin.so"), Access::Open), FileType::Regular);
            assert_file(run.event(&dir.join("dlopener"), Access::Exec), FileType::Regular);
            // The loader's search: the hwcaps subdirectories it tried first.
            assert!(
                run.trace
                    .events
                    .iter()
                    .any(|e| e.path.starts_with(dir.join("glibc-hwcaps")) && !e.exists()),
                "{}",
                run.listing()
            );
        },
    );
}

#[test]
fn a_program_executed_by_the_traced_one_is_found() {
    let build = |dir: &Path| {
        cc(&dir.join("helper"), "int main(void) { return 0; }\n", &[]);
        cc(
            &dir.join("executor"),
            r#"#include <fcntl.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    char *args[] = {"helper", 0};
    if (argc > 2) {
        /* fexecve: execveat(fd, "", ..., AT_EMPTY_PATH), the file by its descriptor. */
        int fd = open(argv[1], O_RDONLY);
        fexecve(fd, args, environ);
    } else {
        execv(argv[1], args);
    }
    return 127;
}
"#,
            &[],
        );
    };
    each_way("trace::a_program_executed_by_the_traced_one_is_found", build, |dir, who| {
        for by_descriptor in [false, true] {
            let mut command = Command::new(dir.join("executor"));
            command.arg(dir.join("helper"));
            if by_descriptor {
                command.arg("fexecve");
            }
            let run = traced(command, who, no_setup);
            run.assert_success();
            let helper = run.event(&dir.join("helper"), Access::Exec);
            assert_eq!(
                helper.found,
                Found::File { file_type: FileType::Regular, canonical: Some(dir.join("helper")) },
                "fexecve: {by_descriptor}"
            );
        }
    });
}

const READER: &str = r#"#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char buf[64];
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) return 1;
    while (read(fd, buf, sizeof buf) > 0) {}
    return 0;
}
"#;

#[test]
fn a_data_file_opened_by_a_relative_path_is_found_by_its_absolute_path() {
    let build = |dir: &Path| {
        cc(&dir.join("reader"), READER, &[]);
        std::fs::create_dir(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/file.txt"), "hello\n").unwrap();
        // Through a relative symbolic link: the canonical path resolves it.
        std::os::unix::fs::symlink("data", dir.join("link")).unwrap();
    };
    each_way(
        "trace::a_data_file_opened_by_a_relative_path_is_found_by_its_absolute_path",
        build,
        |dir, who| {
            let mut command = Command::new(dir.join("reader"));
            command.arg("./link/file.txt").current_dir(dir);
            let run = traced(command, who, no_setup);
            run.assert_success();
            let event = run.event(&dir.join("link/file.txt"), Access::Open);
            assert_eq!(
                event.found,
                Found::File {
                    file_type: FileType::Regular,
                    canonical: Some(dir.join("data/file.txt"))
                }
            );
        },
    );
}

#[test]
fn a_missing_file_is_recorded_as_missing() {
    let build = |dir: &Path| cc(&dir.join("reader"), READER, &[]);
    each_way("trace::a_missing_file_is_recorded_as_missing", build, |dir, who| {
        let mut command = Command::new(dir.join("reader"));
        command.arg(dir.join("no/such/file"));
        let run = traced(command, who, no_setup);
        assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
        let event = run.event(&dir.join("no/such/file"), Access::Open);
        assert_eq!(event.found, Found::Missing);
        assert!(!event.exists());
    });
}

#[test]
fn a_directory_listed_with_readdir_is_found() {
    let build = |dir: &Path| {
        cc(
            &dir.join("lister"),
            r#"#include <dirent.h>
#include <fcntl.h>
int main(int argc, char **argv) {
    DIR *d = opendir(argv[1]);
    if (!d) return 1;
    int n = 0;
    while (readdir(d)) n++;
    /* A path relative to the directory's descriptor. */
    int fd = openat(dirfd(d), "entry", O_RDONLY);
    closedir(d);
    return n > 2 && fd >= 0 ? 0 : 2;
}
"#,
            &[],
        );
        std::fs::create_dir(dir.join("listed")).unwrap();
        std::fs::write(dir.join("listed/entry"), "").unwrap();
    };
    each_way("trace::a_directory_listed_with_readdir_is_found", build, |dir, who| {
        let mut command = Command::new(dir.join("lister"));
        command.arg(dir.join("listed"));
        let run = traced(command, who, no_setup);
        run.assert_success();
        assert_file(run.event(&dir.join("listed"), Access::OpenDirectory), FileType::Directory);
        assert_file(run.event(&dir.join("listed/entry"), Access::Open), FileType::Regular);
        let list = run.event(&dir.join("listed"), Access::List);
        assert_eq!(
            list.found,
            Found::File { file_type: FileType::Directory, canonical: Some(dir.join("listed")) }
        );
    });
}

#[test]
fn a_file_opened_only_by_a_second_thread_is_found() {
    let build = |dir: &Path| {
        cc(
            &dir.join("threads"),
            r#"#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
static void *opener(void *path) {
    int fd = open(path, O_RDONLY);
    if (fd >= 0) close(fd);
    return (void *)(long)(fd >= 0);
}
int main(int argc, char **argv) {
    pthread_t thread;
    void *ok;
    if (pthread_create(&thread, 0, opener, argv[1])) return 2;
    pthread_join(thread, &ok);
    return ok ? 0 : 1;
}
"#,
            &["-pthread"],
        );
        std::fs::write(dir.join("for-the-thread"), "x").unwrap();
    };
    each_way("trace::a_file_opened_only_by_a_second_thread_is_found", build, |dir, who| {
        let mut command = Command::new(dir.join("threads"));
        command.arg(dir.join("for-the-thread"));
        let run = traced(command, who, no_setup);
        run.assert_success();
        let event = run.event(&dir.join("for-the-thread"), Access::Open);
        assert_file(event, FileType::Regular);
        assert_ne!(event.pid, run.pid, "opened by the second thread, not the main one");
    });
}

#[test]
fn a_shell_running_cat_and_ls_shows_the_exec_the_open_and_the_listing() {
    let script = "cat /etc/hostname; ls /usr/share >/dev/null";
    each_way(
        "trace::a_shell_running_cat_and_ls_shows_the_exec_the_open_and_the_listing",
        |_| {},
        |_, who| {
            let mut command = Command::new("/bin/sh");
            command.args(["-c", script]).current_dir("/");
            let run = traced(command, who, no_setup);
            run.assert_success();
            let cat = run
                .trace
                .events
                .iter()
                .find(|e| {
                    e.access == Access::Exec
                        && (e.path == Path::new("/usr/bin/cat") || e.path == Path::new("/bin/cat"))
                        && e.exists()
                })
                .unwrap_or_else(|| panic!("no exec of cat in:\n{}", run.listing()));
            assert_eq!(
                cat.found,
                Found::File {
                    file_type: FileType::Regular,
                    canonical: Some("/usr/bin/cat".into())
                }
            );
            assert_file(run.event(Path::new("/etc/hostname"), Access::Open), FileType::Regular);
            assert_file(run.event(Path::new("/usr/share"), Access::List), FileType::Directory);
            // The shared libraries cat and ls load.
            assert!(run.trace.events.iter().any(|e| e.access == Access::Open
                && e.path.file_name().is_some_and(|n| n == "libc.so.6")
                && e.exists()));
        },
    );
}

/// A 32-bit program without a C library, making its calls with `int $0x80`
/// (i386 numbers: open 5, stat64 195, getdents64 220, exit 1).
const I386_PROGRAM: &str = r#"
static long sys(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}
static char buf[4096], st[256];
void _start(void) {
    long fd = sys(5, (long)DIR "/data32", 0, 0);
    sys(195, (long)DIR "/missing32", (long)st, 0);
    long dir = sys(5, (long)DIR, 0200000, 0);
    long n = sys(220, dir, (long)buf, sizeof buf);
    sys(1, fd >= 0 && n > 0 ? 0 : 1, 0, 0);
}
"#;

#[test]
fn thirty_two_bit_calls_are_traced_with_the_i386_table() {
    let build = |dir: &Path| {
        let define = format!("-DDIR=\"{}\"", dir.display());
        cc(
            &dir.join("prog32"),
            I386_PROGRAM,
            &["-m32", "-nostdlib", "-static", "-fno-pic", "-fno-stack-protector", &define],
        );
        std::fs::write(dir.join("data32"), "x").unwrap();
    };
    each_way("trace::thirty_two_bit_calls_are_traced_with_the_i386_table", build, |dir, who| {
        let run = traced(Command::new(dir.join("prog32")), who, no_setup);
        run.assert_success();
        assert_file(run.event(&dir.join("data32"), Access::Open), FileType::Regular);
        assert_eq!(run.event(&dir.join("missing32"), Access::Stat).found, Found::Missing);
        assert_file(run.event(dir, Access::OpenDirectory), FileType::Directory);
        assert_file(run.event(dir, Access::List), FileType::Directory);
    });
}

/// A static program for a tree of its own: it opens a file through an
/// absolute symbolic link, lists the directory, and misses a file.
const IN_ROOT_PROGRAM: &str = r#"#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    int fd = open("/data/link/file", O_RDONLY);
    DIR *d = opendir("/real");
    int missing = open("/missing", O_RDONLY);
    return fd >= 0 && d && readdir(d) && missing < 0 ? 0 : 1;
}
"#;

/// How a traced process gets into its own root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Chroot,
    PivotRoot,
    /// As the sandbox does: a keeper unshares a PID namespace too and forks
    /// PID 1, which pivots into the tree and installs the filter, while the
    /// keeper waits for it.
    ForkedPid1,
}

/// Enters `root` in new user and mount namespaces (`uid` and `gid` as root
/// inside), as `entry` says. The maps are formatted before the fork.
fn enter_root(
    root: &Path,
    entry: Entry,
    (uid, gid): (u32, u32),
) -> impl Fn() -> io::Result<()> + Send + Sync + 'static {
    use rustix::mount::{MountPropagationFlags, UnmountFlags};
    use rustix::thread::UnshareFlags;
    let root = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).unwrap();
    let uid_map = format!("0 {uid} 1\n").into_bytes();
    let gid_map = format!("0 {gid} 1\n").into_bytes();
    move || {
        let mut flags = UnshareFlags::NEWUSER | UnshareFlags::NEWNS;
        if entry == Entry::ForkedPid1 {
            flags |= UnshareFlags::NEWPID;
        }
        // SAFETY: the child is single-threaded.
        unsafe { rustix::thread::unshare_unsafe(flags) }?;
        for (path, bytes) in [
            (c"/proc/self/setgroups", &b"deny"[..]),
            (c"/proc/self/uid_map", &uid_map),
            (c"/proc/self/gid_map", &gid_map),
        ] {
            let fd = rustix::fs::open(path, rustix::fs::OFlags::WRONLY, rustix::fs::Mode::empty())?;
            rustix::io::write(&fd, bytes)?;
        }
        if entry == Entry::ForkedPid1 {
            keep_pid1()?;
        }
        if entry == Entry::Chroot {
            rustix::process::chroot(root.as_c_str())?;
        } else {
            rustix::mount::mount_change(
                c"/",
                MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
            )?;
            rustix::mount::mount_bind_recursive(root.as_c_str(), root.as_c_str())?;
            rustix::process::chdir(root.as_c_str())?;
            rustix::process::pivot_root(c".", c".")?;
            rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
        }
        rustix::process::chdir(c"/")?;
        Ok(())
    }
}

/// Forks PID 1 of the new PID namespace and returns in it; the keeper
/// closes its descriptors (among them the pipe through which `spawn` learns
/// of the exec), waits for PID 1 and exits with its status.
fn keep_pid1() -> io::Result<()> {
    // SAFETY: fork in the single-threaded child; both sides make only
    // system calls until exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        return Ok(());
    }
    // SAFETY: system calls only, then _exit.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 {}
        libc::_exit(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 });
    }
}

#[test]
fn a_process_in_another_root_is_seen_as_it_sees_itself() {
    if !crate::support::can_enter() {
        return;
    }
    let build = |dir: &Path| {
        let root = dir.join("root");
        for sub in ["bin", "real", "data"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        cc(&root.join("bin/prog"), IN_ROOT_PROGRAM, &["-static"]);
        std::fs::write(root.join("real/file"), "x").unwrap();
        // Absolute: it must resolve inside the tree, not on the host.
        std::os::unix::fs::symlink("/real", root.join("data/link")).unwrap();
    };
    each_way("trace::a_process_in_another_root_is_seen_as_it_sees_itself", build, |dir, who| {
        for entry in [Entry::Chroot, Entry::PivotRoot, Entry::ForkedPid1] {
            let ids = match who {
                Who::Nobody => (NOBODY, NOBODY),
                _ => (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw()),
            };
            let run =
                traced(Command::new("/bin/prog"), who, enter_root(&dir.join("root"), entry, ids));
            run.assert_success();
            let what = format!("{who:?} {entry:?}");
            let exec = run.event(Path::new("/bin/prog"), Access::Exec);
            // Numbered in our PID namespace, not as PID 1 of its own.
            assert_ne!(exec.pid, 1, "{what}");
            assert_eq!(
                exec.found,
                Found::File { file_type: FileType::Regular, canonical: Some("/bin/prog".into()) },
                "{what}"
            );
            let open = run.event(Path::new("/data/link/file"), Access::Open);
            assert_eq!(
                open.found,
                Found::File { file_type: FileType::Regular, canonical: Some("/real/file".into()) },
                "{what}"
            );
            assert_eq!(
                run.event(Path::new("/real"), Access::List).found,
                Found::File { file_type: FileType::Directory, canonical: Some("/real".into()) },
                "{what}"
            );
            assert_eq!(
                run.event(Path::new("/missing"), Access::Open).found,
                Found::Missing,
                "{what}"
            );
        }
    });
}

#[test]
fn a_child_that_never_installs_the_filter_is_an_error_not_a_hang() {
    let (filter, supervisor) = rootfs::run::trace::start().unwrap();
    let filter = Arc::new(filter);
    let mut command = Command::new("/bin/true");
    // SAFETY: the hook makes no call at all.
    unsafe {
        command.pre_exec(move || {
            let _ = &filter;
            Err(io::Error::from_raw_os_error(libc::EPERM))
        });
    }
    assert!(command.status().is_err());
    let err = supervisor.finish().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the traced process never installed its seccomp filter (it failed or exited before its exec)"
    );
}

#[test]
fn stopping_returns_at_once_and_the_traced_calls_then_fail_instead_of_hanging() {
    let (filter, supervisor) = rootfs::run::trace::start().unwrap();
    let filter = Arc::new(filter);
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "sleep 0.3; cat /etc/hostname"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the hook makes only async-signal-safe calls.
    unsafe { command.pre_exec(move || filter.install_in_child()) };
    let mut child = command.spawn().unwrap();
    let trace = supervisor.stop().unwrap();
    assert!(
        trace.events.iter().any(|e| e.access == Access::Exec && e.path == Path::new("/bin/sh"))
    );
    // The exec of cat fails with ENOSYS now that nobody listens.
    let status = child.wait().unwrap();
    assert!(!status.success() || status.signal().is_some());
}

/// The system calls compared with strace: every path-taking call we trace.
const STRACE_CALLS: &str = "open,openat,openat2,creat,execve,execveat,stat,lstat,newfstatat,statx,access,faccessat,\
                            faccessat2,readlink,readlinkat,chdir";

fn strace() -> Option<&'static str> {
    ["/usr/bin/strace", "/bin/strace"].into_iter().find(|p| Path::new(p).exists())
}

/// The paths of every call in an strace log (its first string argument),
/// made absolute from `/`; glibc's `fstat` (`AT_EMPTY_PATH`) has none.
fn strace_paths(log: &str) -> BTreeSet<PathBuf> {
    log.lines()
        .filter_map(|line| line.split_once('"').map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once('"').map(|(path, _)| path))
        .filter(|path| !path.is_empty())
        .map(|path| Path::new("/").join(path).components().collect())
        .collect()
}

/// A command run from `/` with nothing of the test's environment (cargo's
/// `LD_LIBRARY_PATH` would triple the loader's lookups).
fn clean(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdout(Stdio::null());
    command
}

/// strace, run on the same command, sees the same paths: nothing it sees is
/// missing, and we see nothing it does not (but the directories behind
/// `getdents`, which it shows as descriptors).
#[test]
fn the_paths_match_what_strace_sees() {
    let Some(strace) = strace() else {
        eprintln!("skipped: strace is not installed");
        return;
    };
    let script = "cat /etc/hostname; ls /usr/share >/dev/null; test -e /etc/passwd; cd /usr && ls -d /usr/lib >/dev/null";
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("strace.log");
    let trace_arg = format!("trace={STRACE_CALLS}");
    let log_arg = log.to_str().unwrap();
    let args = ["-f", "-qq", "-e", &trace_arg, "-o", log_arg, "/bin/sh", "-c", script];
    assert!(clean(strace, &args).status().unwrap().success());
    let theirs = strace_paths(&std::fs::read_to_string(&log).unwrap());
    let run = traced(clean("/bin/sh", &["-c", script]), Who::Caller, no_setup);
    run.assert_success();
    let ours: BTreeSet<PathBuf> = run
        .trace
        .events
        .iter()
        .filter(|e| e.access != Access::List)
        .map(|e| e.path.clone())
        .collect();
    let missed: Vec<_> = theirs.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed {missed:?}, extra {extra:?}\n{}",
        run.listing()
    );
    assert!(theirs.len() > 10, "{theirs:?}");
}

/// Times a loop of 200 `cat` untraced, traced by us, and under strace (when
/// installed) on the same calls, best of seven runs taken in turns, and
/// prints the figures: the cost is one round trip to the supervisor per
/// traced call.
#[test]
fn the_overhead_of_tracing_is_measured() {
    let script = "for i in $(seq 200); do cat /etc/hostname >/dev/null; done";
    let strace = strace();
    let trace_arg = format!("trace={STRACE_CALLS},getdents,getdents64");
    let timed = |run: &dyn Fn()| {
        let start = Instant::now();
        run();
        start.elapsed()
    };
    let (mut plain, mut ours, mut theirs) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let notifications = std::cell::Cell::new(0);
    for _ in 0..7 {
        plain = plain
            .min(timed(&|| assert!(clean("/bin/sh", &["-c", script]).status().unwrap().success())));
        ours = ours.min(timed(&|| {
            let run = traced(clean("/bin/sh", &["-c", script]), Who::Caller, no_setup);
            run.assert_success();
            assert!(
                run.trace
                    .events
                    .iter()
                    .any(|e| e.access == Access::Exec && e.path.ends_with("cat"))
            );
            notifications.set(run.trace.notifications);
        }));
        if let Some(strace) = strace {
            let args = ["-f", "-qq", "-e", &trace_arg, "-o", "/dev/null", "/bin/sh", "-c", script];
            theirs =
                theirs.min(timed(&|| assert!(clean(strace, &args).status().unwrap().success())));
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ratio = |d: Duration| d.as_secs_f64() / plain.as_secs_f64();
    let notifications = notifications.get();
    let each = ours.saturating_sub(plain).as_secs_f64() * 1e6 / notifications.max(1) as f64;
    eprintln!(
        "trace overhead: 200 × cat: untraced {:.0} ms, traced {:.0} ms ({:.2}×; {notifications} notifications, \
         {each:.0} µs each)",
        ms(plain),
        ms(ours),
        ratio(ours),
    );
    if strace.is_some() {
        eprintln!(
            "trace overhead: strace -f on the same calls {:.0} ms ({:.2}×)",
            ms(theirs),
            ratio(theirs)
        );
    }
}
