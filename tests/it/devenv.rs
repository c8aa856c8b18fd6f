//! `shell` and `run` as a development environment, as root and as an unprivileged user (uid 65534): binds written as the caller, read-only binds, the host's network on request, the user inside, a throwaway writable layer, the spec's `[shell]` defaults under the flags, and the errors of each.
//!
//! Every test runs the `xtask` binary once per caller: as root and as
//! 65534 when the tests run as root (as CI does), else as the user running
//! them. Each caller builds its own tree, in a home folder it owns.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::{mountinfo, project_root, tree_listing, xtask_binary};

/// Who runs the tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The user running the tests (root in CI).
    Me,
    /// uid and gid 65534, switched to from root.
    Nobody,
}

const NOBODY: u32 = 65534;

impl Caller {
    /// Root and 65534 when the tests run as root; else the user itself.
    pub fn all() -> Vec<Caller> {
        if rustix::process::geteuid().is_root() {
            vec![Caller::Me, Caller::Nobody]
        } else {
            eprintln!("note: running as 65534 as well needs root; testing as this user only");
            vec![Caller::Me]
        }
    }

    pub fn uid(self) -> u32 {
        match self {
            Caller::Me => rustix::process::geteuid().as_raw(),
            Caller::Nobody => NOBODY,
        }
    }

    /// `program` run as this caller, with a minimal environment.
    pub fn command(self, program: impl AsRef<std::ffi::OsStr>, home: &Path) -> Command {
        let mut command = Command::new(program);
        command.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", home).current_dir(home);
        if self == Caller::Nobody {
            // SAFETY: setgroups, setgid and setuid are async-signal-safe.
            unsafe {
                command.pre_exec(|| {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(NOBODY) != 0
                        || libc::setuid(NOBODY) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
    }
}

/// A spec and its tree, in a temporary folder the caller owns.
pub struct Fixture {
    pub caller: Caller,
    /// Owned by the caller: the spec, the tree and the folders to bind.
    pub home: PathBuf,
    pub spec: PathBuf,
    pub out: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    /// The default spec with `id`, `touch` and `sleep` besides, and `extra`
    /// (such as a `[shell]` table) at the end; built once. `None` (with a
    /// line saying why) when this caller cannot enter a tree here.
    pub fn new(caller: Caller, extra: &str) -> Option<Fixture> {
        if !crate::support::can_enter() {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), PermissionsExt::from_mode(0o755)).unwrap();
        let home = tmp.path().join("home");
        let fixture = Fixture {
            caller,
            spec: home.join("devenv.toml"),
            out: home.join("out"),
            home,
            _tmp: tmp,
        };
        fixture.dir("");
        let default = project_root().join("rootfs-spec/default.toml");
        let text = format!(
            "name = \"devenv\"\ninclude = [{:?}]\ncommands = [\"id\", \"touch\", \"sleep\"]\n{extra}",
            default.display().to_string()
        );
        std::fs::write(&fixture.spec, text).unwrap();
        let built = fixture.xtask(&["build"]).output().unwrap();
        assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
        let probe = fixture.xtask(&["run", "--user", "root", "--", "true"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&probe.stderr);
        if caller == Caller::Nobody && !probe.status.success() && stderr.contains("user namespace")
        {
            eprintln!("skipped as 65534: {}", stderr.trim());
            return None;
        }
        Some(fixture)
    }

    /// A folder in the home, owned by the caller.
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.home.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let id = Some(self.caller.uid());
        rustix::fs::chown(
            &dir,
            id.map(rustix::process::Uid::from_raw),
            id.map(rustix::process::Gid::from_raw),
        )
        .unwrap();
        dir
    }

    /// `rootfs <subcommand> SPEC --out OUT <rest...>`, as the caller, in
    /// its home.
    pub fn xtask(&self, args: &[&str]) -> Command {
        let mut command = self.caller.command(xtask_binary(), &self.home);
        command.arg("rootfs").arg(args[0]).arg(&self.spec).arg("--out").arg(&self.out);
        command.args(&args[1..]);
        command
    }

    /// `run FLAGS -- sh -c SCRIPT`.
    pub fn run(&self, flags: &[&str], script: &str) -> Output {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        self.xtask(&args).output().unwrap()
    }

    pub fn tree(&self) -> Vec<String> {
        tree_listing(&self.out)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Standard output, asserting success.
fn stdout_of(output: Output) -> String {
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn a_bind_is_written_as_the_caller_and_a_read_only_one_refuses_writes() {
    for caller in Caller::all() {
        let Some(fx) = Fixture::new(caller, "") else { continue };
        let before = fx.tree();
        let mounts = mountinfo();
        let shared = fx.dir("shared");
        let bind = format!("{}:/src", shared.display());
        stdout_of(fx.run(&["--bind", &bind], "echo x > /src/f"));
        let meta = std::fs::metadata(shared.join("f")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (caller.uid(), caller.uid()), "{caller:?}");
        assert_eq!(std::fs::read_to_string(shared.join("f")).unwrap(), "x\n");

        let locked = fx.dir("locked");
        let bind = format!("{}:/src:ro", locked.display());
        let script = "echo x > /src/f; mount -o remount,bind,rw /src; echo y > /src/g";
        let output = fx.run(&["--bind", &bind], script);
        assert!(!output.status.success(), "{caller:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("/src/f: Read-only file system"), "{caller:?}: {stderr}");
        assert!(stderr.contains("/src/g: Read-only file system"), "{caller:?}: {stderr}");
        assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0, "{caller:?}");

        // A bind of a file, at a path the tree lacks, under a symlink of
        // the tree (`/bin -> usr/bin`).
        std::fs::write(fx.home.join("note"), "from the host\n").unwrap();
        let bind = format!("{}:/bin/extra/note", fx.home.join("note").display());
        let out = stdout_of(fx.run(&["--bind", &bind], "cat /usr/bin/extra/note"));
        assert_eq!(out, "from the host\n");
        // Without a path inside, a symlink is bound at its own path (as
        // `--bind /etc/resolv.conf` must be), with what it leads to.
        let link = fx.home.join("link");
        std::os::unix::fs::symlink("note", &link).unwrap();
        let link = link.display().to_string();
        let out = stdout_of(fx.run(&["--bind", &format!("{link}:ro")], &format!("cat {link}")));
        assert_eq!(out, "from the host\n");

        assert_eq!(fx.tree(), before, "{caller:?}: the tree on disk changed");
        assert_eq!(mountinfo(), mounts, "the host's mount table changed");
    }
}

/// A one-page HTTP server on the host's loopback, answering until dropped
/// (or for a minute at most).
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const PAGE: &str = "rootfs-devenv-page";

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut request = [0u8; 1024];
                        let _ = stream.read(&mut request);
                        let response = format!(
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{PAGE}\n",
                            PAGE.len() + 1
                        );
                        let _ = stream.write_all(response.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Server { port, stop, thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request to the server with bash's `/dev/tcp`, printing the answer.
fn fetch(port: u16) -> String {
    format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} || exit 9; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; \
         while read -r line; do echo \"$line\"; done <&3"
    )
}

#[test]
fn the_hosts_network_is_reachable_with_network_host_only() {
    let server = Server::start();
    for caller in Caller::all() {
        let Some(fx) = Fixture::new(caller, "") else { continue };
        let mut args = vec!["run", "--network", "host", "--", "bash", "-c"];
        let script = fetch(server.port);
        args.push(&script);
        let out = stdout_of(fx.xtask(&args).output().unwrap());
        assert!(out.contains("HTTP/1.0 200 OK") && out.contains(PAGE), "{caller:?}: {out}");

        for flags in [&[][..], &["--network", "none"][..]] {
            let mut args = vec!["run"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["--", "bash", "-c", &script]);
            let output = fx.xtask(&args).output().unwrap();
            assert_eq!(output.status.code(), Some(9), "{caller:?} {flags:?}");
            assert!(text(&output.stderr).contains("Connection refused"), "{caller:?}");
            assert!(!text(&output.stdout).contains(PAGE));
        }
    }
}

#[test]
fn the_user_inside_is_the_caller_unless_asked() {
    for caller in Caller::all() {
        let Some(fx) = Fixture::new(caller, "") else { continue };
        let ids = |flags: &[&str]| stdout_of(fx.run(flags, "echo $(id -u) $(id -g) $HOME"));
        let me = caller.uid();
        let home = if me == 0 { "/root" } else { "/tmp" };
        assert_eq!(ids(&[]), format!("{me} {me} {home}\n"), "{caller:?}");
        assert_eq!(ids(&["--user", "app"]), "1000 1000 /home/app\n", "{caller:?}");
        assert_eq!(ids(&["--user", "root"]), "0 0 /root\n", "{caller:?}");
        assert_eq!(ids(&["--user", "4321:99"]), "4321 99 /tmp\n", "{caller:?}");
        // A uid of no account gets gid 0, as `[image] user` and container
        // runtimes give it, whoever the caller is.
        assert_eq!(ids(&["--user", "4321"]), "4321 0 /tmp\n", "{caller:?}");
        // What a user other than root writes on a bind is the caller's, and
        // that user holds no capability.
        let shared = fx.dir("shared");
        let bind = format!("{}:/home/app/work", shared.display());
        let script = "echo x > /home/app/work/f && while read -r k v; do [ \"$k\" = CapEff: ] && echo $v; done < /proc/self/status; exit 0";
        let out = stdout_of(fx.run(&["--user", "app", "--bind", &bind], script));
        assert_eq!(out, "0000000000000000\n", "{caller:?}");
        assert_eq!(std::fs::metadata(shared.join("f")).unwrap().uid(), me);
    }
}

#[test]
fn a_writable_layer_takes_writes_and_the_tree_stays_as_it_was() {
    for caller in Caller::all() {
        let Some(fx) = Fixture::new(caller, "") else { continue };
        let before = fx.tree();
        let output = fx.run(&[], "touch /usr/bin/new");
        assert!(text(&output.stderr).contains("Read-only file system"), "{caller:?}");
        let out = stdout_of(
            fx.run(&["--writable"], "touch /usr/bin/new && echo made > /etc/made && cat /etc/made"),
        );
        assert_eq!(out, "made\n");
        assert_eq!(fx.tree(), before, "{caller:?}: the tree on disk changed");
        assert!(!fx.out.join("usr/bin/new").exists());
    }
}

/// `[shell] writable_size` bounds the layer: `cat /dev/zero` into the tree
/// ends in ENOSPC inside, after about that much, and the tree on disk
/// stays as it was.
#[test]
fn a_full_writable_layer_says_no_space_left_and_the_host_is_untouched() {
    for caller in Caller::all() {
        let Some(fx) = Fixture::new(caller, "[shell]\nwritable_size = \"1M\"\n") else { continue };
        let before = fx.tree();
        let output =
            fx.run(&["--writable"], "cat /dev/zero > /etc/big; echo status=$?; ls -ln /etc/big");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("No space left on device"), "{caller:?}: {stderr}");
        let stdout = text(&output.stdout);
        let mut lines = stdout.lines();
        assert_eq!(lines.next(), Some("status=1"), "{caller:?}: {stdout}{stderr}");
        // `-rw-r--r-- 1 0 0 SIZE ...`
        let size = lines.next().and_then(|l| l.split_whitespace().nth(4));
        let written: u64 = size.and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        assert!(written <= 1 << 20, "{caller:?}: {written} bytes went into a 1M layer");
        assert_eq!(fx.tree(), before, "{caller:?}: the tree on disk changed");
        assert!(!fx.out.join("etc/big").exists());
        // The flag overrides the table.
        let output = fx.run(
            &["--writable", "--writable-size", "64K"],
            "cat /dev/zero > /etc/big; echo status=$?; ls -ln /etc/big",
        );
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(stderr.contains("No space left on device"), "{caller:?}: {stderr}");
        let size = stdout.lines().nth(1).and_then(|l| l.split_whitespace().nth(4));
        let written: u64 = size.and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        assert!(written <= 64 << 10, "{caller:?}: {written} bytes went into a 64K layer");
        assert_eq!(fx.tree(), before, "{caller:?}: the tree on disk changed");
    }
}

const SHELL_TABLE: &str = "
[shell]
binds = [\"work:/src\", { src = \"notes\", dest = \"/srv/notes\", read_only = true }]
workdir = \"/src\"
env = { GREETING = \"hello\" }
env_pass = [\"ROOTFS_TEST_PASSED\"]
";

#[test]
fn the_shell_table_applies_without_flags_and_flags_override_it() {
    for caller in Caller::all() {
        let Some(fx) = Fixture::new(caller, SHELL_TABLE) else { continue };
        let work = fx.dir("work");
        let notes = fx.dir("notes");
        std::fs::write(notes.join("n"), "a note\n").unwrap();
        let script =
            "pwd; echo \"$GREETING ${ROOTFS_TEST_PASSED-unset}\"; cat /srv/notes/n; echo x > here";
        let out = stdout_of(
            fx.xtask(&["run", "--", "sh", "-c", script])
                .env("ROOTFS_TEST_PASSED", "passed")
                .output()
                .unwrap(),
        );
        assert_eq!(out, "/src\nhello passed\na note\n", "{caller:?}");
        assert!(work.join("here").is_file());

        let other = fx.dir("other");
        let bind = format!("{}:/src", other.display());
        let flags = ["--workdir", "/tmp", "--env", "GREETING=bye", "--bind", &bind];
        let out = stdout_of(fx.run(&flags, "pwd; echo $GREETING; echo y > /src/there"));
        assert_eq!(out, "/tmp\nbye\n");
        assert!(other.join("there").is_file() && !work.join("there").exists());

        // `--bind .` mounts the current directory at its own path and
        // works there.
        let cwd = fx.dir("checkout");
        let out = fx
            .xtask(&["run", "--bind", ".", "--", "sh", "-c", "pwd; echo z > made"])
            .current_dir(&cwd)
            .output()
            .unwrap();
        let canonical = std::fs::canonicalize(&cwd).unwrap();
        assert_eq!(stdout_of(out), format!("{}\n", canonical.display()));
        assert!(cwd.join("made").is_file());
    }
}

#[test]
fn binds_and_users_that_cannot_be_are_refused_with_exit_2() {
    let Some(fx) = Fixture::new(Caller::Me, "") else { return };
    let shared = fx.dir("shared");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--bind", "/no/such/dir:/src"],
            "--bind `/no/such/dir:/src`: the host path `/no/such/dir` cannot be bound: No such file or directory",
        ),
        (
            &["--bind", &format!("{}:/src/../etc", shared.display())],
            "a bind path must not contain `..`, got `/src/../etc`",
        ),
        (&["--bind", &format!("{}:/proc/x", shared.display())], "`/proc/x` is under /proc"),
        (
            &["--bind", &format!("{}:/etc/passwd", shared.display())],
            "is a directory and `/etc/passwd` is a file in the tree",
        ),
        (
            &["--bind", &format!("{}:/etc/passwd/x", shared.display())],
            "the bind path `/etc/passwd/x` cannot be placed in the tree: `/etc/passwd` is not a directory",
        ),
        (
            &["--user", "nosuch"],
            "--user `nosuch` is not a user of the spec; the users are: root, app",
        ),
        (
            &["--workdir", "/no-such-dir"],
            "--workdir: `/no-such-dir` is not a directory in the tree",
        ),
        (&["--workdir", "src"], "--workdir: a working directory must be an absolute path"),
        (&["--env", "NOEQUALS"], "--env `NOEQUALS`: write KEY=VALUE"),
    ];
    for (flags, message) in cases {
        let output = fx.run(flags, "echo ran");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
        assert!(!text(&output.stdout).contains("ran"));
    }
}

#[test]
fn a_shell_table_bind_that_cannot_be_points_into_the_spec() {
    let Some(fx) = Fixture::new(Caller::Me, "[shell]\nbinds = [\"missing:/src\"]\n") else {
        return;
    };
    let output = fx.run(&[], "echo ran");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be bound: No such file or directory"), "{stderr}");
    assert!(stderr.contains("devenv.toml:5:10"), "{stderr}");
    // A flag at the same path replaces it, and it is not looked at.
    let bind = format!("{}:/src", fx.dir("there").display());
    assert_eq!(stdout_of(fx.run(&["--bind", &bind], "echo ran")), "ran\n");
}

#[test]
fn a_smoke_check_may_bind_a_host_folder_and_use_the_hosts_network() {
    let server = Server::start();
    let data_check = "[[smoke.checks]]\nrun = [\"cat\", \"/data/x\"]\nbinds = [\"data:/data:ro\"]\ncontains = \"host data\"\n";
    let net_check = format!(
        "[[smoke.checks]]\nrun = [\"bash\", \"-c\", {:?}]\nnetwork = \"host\"\ncontains = {PAGE:?}\n",
        fetch(server.port)
    );
    let extra = format!("{data_check}{net_check}");
    for caller in Caller::all() {
        let Some(fx) = Fixture::new(caller, &extra) else { continue };
        std::fs::write(fx.dir("data").join("x"), "host data\n").unwrap();
        let output = fx.xtask(&["smoke"]).output().unwrap();
        let out = text(&output.stdout);
        assert!(output.status.success(), "{caller:?}: {out}{}", text(&output.stderr));
        assert!(out.contains(": cat /data/x ") && out.contains(" 0 failed"), "{out}");
    }
}

#[test]
fn home_is_writable_for_every_user_and_the_tree_stays_as_it_was() {
    for caller in Caller::all() {
        let Some(fx) = Fixture::new(caller, "") else { continue };
        let before = fx.tree();
        // `ls -ldn`: mode and numeric owner, as the user inside sees them.
        let script = "echo kept > \"$HOME/.gitconfig\" && cat \"$HOME/.gitconfig\" && set -- $(ls -ldn \"$HOME\") && echo \"$HOME $1 $3\"";
        let me = caller.uid();
        let own = if me == 0 { "/root drwx------ 0" } else { "/tmp drwxrwxrwt 65534" };
        let cases: &[(&[&str], String)] = &[
            (&[], format!("kept\n{own}\n")),
            (&["--user", "root"], "kept\n/root drwx------ 0\n".into()),
            (&["--user", "app"], "kept\n/home/app drwx------ 1000\n".into()),
            (&["--user", "4321"], "kept\n/tmp drwxrwxrwt 4321\n".into()),
        ];
        for (flags, expected) in cases {
            let output = fx.run(flags, script);
            assert_eq!(stdout_of(output), *expected, "{caller:?} {flags:?}");
        }
        assert_eq!(fx.tree(), before, "{caller:?}: the tree on disk changed");
    }
}

#[test]
fn a_command_missing_from_the_tree_exits_127_with_a_hint() {
    let Some(fx) = Fixture::new(Caller::Me, "") else { return };
    let output = fx.xtask(&["run", "--", "jq", "."]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("error: `jq` is not in the tree\n"), "{stderr}");
    assert!(stderr.contains("help: add \"jq\" to `commands` in the spec"), "{stderr}");
    let output = fx.run(&[], "exit 3");
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn shell_and_run_mistakes_are_found_before_any_build() {
    if !crate::support::can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let default = project_root().join("rootfs-spec/default.toml");
    let spec = tmp.path().join("early.toml");
    let table = "[shell]\nbinds = [\"/no/such/dir:/src\"]\n[[smoke.checks]]\nrun = [\"true\"]\nbinds = [\"/no/such/check-dir:/x\"]\n";
    let body =
        format!("name = \"early\"\ninclude = [{:?}]\n{table}", default.display().to_string());
    std::fs::write(&spec, body).unwrap();
    let out = tmp.path().join("out");
    let run = |args: &[&str]| {
        let mut command = Command::new(xtask_binary());
        command.args(["rootfs", args[0]]).arg(&spec).arg("--out").arg(&out).args(&args[1..]);
        command.output().unwrap()
    };
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--", "true"], "the host path `/no/such/dir` cannot be bound"),
        (&["shell"], "the host path `/no/such/dir` cannot be bound"),
        (&["smoke"], "the host path `/no/such/check-dir` cannot be bound"),
        (
            &["run", "--bind", "/etc:../x", "--", "true"],
            "--bind `/etc:../x`: the path inside must be absolute, got `../x` in `/etc:../x`",
        ),
        // With the table's bind replaced by a flag, the next mistake shows.
        (
            &["run", "--bind", "/tmp:/src", "--user", "nosuch", "--", "true"],
            "--user `nosuch` is not a user of the spec",
        ),
        (
            &["run", "--bind", "/tmp:/src", "--env", "NOEQUALS", "--", "true"],
            "--env `NOEQUALS`: write KEY=VALUE",
        ),
        (
            &["run", "--writable-size", "2T", "--", "true"],
            "invalid value '2T' for '--writable-size <SIZE>': give a number of bytes or a size such as \"256M\" or \"2G\", at least 4096 bytes",
        ),
    ];
    for (args, message) in cases {
        let output = run(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("built "), "{args:?} built first: {stderr}");
        assert!(!out.exists(), "{args:?} built the tree");
        assert!(!tmp.path().join("early.lock").exists(), "{args:?} wrote the lock");
    }
}

/// A DNS server on `addr` (UDP) that answers every A query with
/// 192.0.2.7 and any other query with no record, until `stop` is set.
fn dns_server(socket: std::net::UdpSocket, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else { continue };
            let query = &buf[..n];
            // The question: labels up to a zero byte, then type and class.
            let mut end = 12;
            while end < n && query[end] != 0 {
                end += 1 + query[end] as usize;
            }
            let question = &query[12..(end + 5).min(n)];
            let is_a = question.len() >= 4 && question[question.len() - 4..][..2] == [0, 1];
            let mut reply = query[..2].to_vec();
            reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
            reply.extend_from_slice(question);
            if is_a {
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
            }
            let _ = socket.send_to(&reply, peer);
        }
    })
}

#[test]
fn names_resolve_through_the_bound_resolv_conf_with_the_hosts_network() {
    let Ok(socket) = std::net::UdpSocket::bind("127.0.0.77:53") else {
        eprintln!("skipped: cannot listen on 127.0.0.77:53 (needs root, and the port free)");
        return;
    };
    let Some(fx) = Fixture::new(Caller::Me, "") else { return };
    let default = project_root().join("rootfs-spec/default.toml");
    let text = format!(
        "name = \"devenv\"\ninclude = [{:?}]\ncommands = [\"getent\"]\n",
        default.display().to_string()
    );
    std::fs::write(&fx.spec, text).unwrap();
    let resolv = fx.home.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.77\noptions timeout:1 attempts:1\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = dns_server(socket, stop.clone());
    let bind = format!("{}:/etc/resolv.conf:ro", resolv.display());
    let flags = ["--network", "host", "--bind", &bind, "--", "getent", "ahostsv4", "example.test"];
    let mut args = vec!["run"];
    args.extend_from_slice(&flags);
    let output = fx.xtask(&args).output().unwrap();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let out = stdout_of(output);
    assert!(out.starts_with("192.0.2.7 "), "{out}");
    assert!(out.contains("example.test"), "{out}");
}
