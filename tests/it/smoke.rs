//! Smoke tests inside built trees: every shipped spec passes, failures and hangs are reported, the isolation holds, and neither the tree nor the host changes.
//!
//! Entering a rootfs needs root or an unprivileged user namespace. CI runs
//! as root, so these run there; elsewhere each test says why it skips.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rootfs::build::{Built, Options, build};
use rootfs::run::smoke::{self, Check, Expect, Outcome};

use crate::support::{
    can_enter, mountinfo, project_root, shipped_specs, tree_listing, xtask_binary,
};

fn built(spec: &Path, out_root: &Path) -> Built {
    build(&Options::new(spec, out_root)).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)))
}

fn options(name: &str) -> smoke::Options {
    smoke::Options { jobs: 2, hostname: name.to_string(), reference: None }
}

fn check(argv: &[&str], timeout: f64) -> Check {
    Check::exits_zero(argv, Duration::from_secs_f64(timeout))
}

/// Processes of this host whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn every_shipped_spec_passes_its_smoke_tests_and_leaves_the_tree_unchanged() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let before_mounts = mountinfo();
    for spec in shipped_specs() {
        let built = built(&spec, tmp.path());
        let listing = tree_listing(&built.out);
        let manifest = std::fs::read(&built.manifest_path).unwrap();
        let checks = smoke::checks(&built.spec, &built.manifest);
        assert!(checks.len() > built.manifest.commands.len() / 2, "{}", spec.display());
        // Judged against the host, as `cargo xtask rootfs smoke` does.
        let (reference, _) =
            smoke::reference(&built.spec, &built.manifest, &built.out, Path::new("/"));
        let options = smoke::Options { reference, ..options(&built.spec.name) };
        let report = smoke::run(&built.out, &checks, &options).unwrap();
        assert_eq!(report.failed(), 0, "{}:\n{}", spec.display(), report.table());
        assert!(report.table().ends_with(&format!("{} passed, 0 failed\n", checks.len())));
        assert_eq!(
            tree_listing(&built.out),
            listing,
            "{}: the smoke tests changed the tree",
            spec.display()
        );
        assert_eq!(std::fs::read(&built.manifest_path).unwrap(), manifest);
    }
    assert_eq!(mountinfo(), before_mounts, "the host's mount table changed");
}

#[test]
fn a_failing_command_and_a_deleted_library_are_reported_with_their_output() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = built(&project_root().join("rootfs-spec/default.toml"), tmp.path());
    let mut failing = check(&["ls", "/no-such-dir"], 10.0);
    failing.name = "ls of a missing dir".into();
    let mut wrong_text = check(&["cat", "/etc/hostname-does-not-exist"], 10.0);
    wrong_text.expect = Expect::Exit { code: 1, contains: Some("this text is not there".into()) };
    let report = smoke::run(&built.out, &[failing, wrong_text], &options("default")).unwrap();
    let table = report.table();
    assert_eq!(report.failed(), 2, "{table}");
    assert!(table.contains("ls of a missing dir"), "{table}");
    assert!(table.contains("exit 2, expected 0"), "{table}");
    assert!(
        table.contains("| ls: cannot access '/no-such-dir': No such file or directory"),
        "{table}"
    );
    assert!(table.contains("output does not contain \"this text is not there\""), "{table}");
    assert!(table.ends_with("0 passed, 2 failed\n"), "{table}");
    let junit = report.junit("rootfs.default").unwrap();
    assert!(
        junit.contains("<testsuite name=\"rootfs.default\" tests=\"2\"")
            && junit.contains("failures=\"2\""),
        "{junit}"
    );

    // Remove a library `ls` needs from the built tree: the loader inside
    // must fail, and the report must say so.
    let libselinux =
        std::fs::canonicalize(built.out.join("usr/lib/x86_64-linux-gnu/libselinux.so.1")).unwrap();
    std::fs::remove_file(&libselinux).unwrap();
    let report =
        smoke::run(&built.out, &[check(&["/usr/bin/ls", "/"], 10.0)], &options("default")).unwrap();
    let table = report.table();
    assert_eq!(report.failed(), 1, "{table}");
    assert!(table.contains("exit 127, expected 0"), "{table}");
    assert!(table.contains("error while loading shared libraries: libselinux.so.1"), "{table}");
}

#[test]
fn a_command_that_hangs_is_killed_with_its_children_at_its_timeout() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("hang.toml");
    std::fs::write(&spec, "name = \"hang\"\ncommands = [\"bash\", \"sleep\"]\n").unwrap();
    let built = built(&spec, tmp.path());
    // A child and a grandchild that outlive the shell's own sleep.
    let marker = "31415926";
    let script = format!("sleep {marker} & (sleep {marker} &) ; sleep {marker}");
    let before_mounts = mountinfo();
    let started = Instant::now();
    let report =
        smoke::run(&built.out, &[check(&["bash", "-c", &script], 1.0)], &options("hang")).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.results[0].outcome, Outcome::TimedOut, "{}", report.table());
    assert!(report.table().contains("TIMEOUT  "), "{}", report.table());
    // Killed at its timeout, not after the hour it asked for; the bound is
    // generous for a loaded 2-core machine.
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(15),
        "took {elapsed:?}"
    );
    // The whole namespace died with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_with(&format!("sleep {marker}")).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(processes_with(&format!("sleep {marker}")), Vec::<String>::new());
    assert_eq!(mountinfo(), before_mounts);
}

#[test]
fn inside_the_hostname_network_pids_and_tmp_are_its_own() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = built(&project_root().join("rootfs-spec/default.toml"), tmp.path());
    let host_name = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let marker = format!("rootfs-smoke-{}", std::process::id());
    let checks = [
        check(&["hostname"], 10.0),
        check(&["ip", "-o", "link"], 10.0),
        check(&["ps", "-e", "-o", "pid,comm"], 10.0),
        check(&["bash", "-c", &format!("echo inside > /tmp/{marker} && cat /tmp/{marker}")], 10.0),
        // Even after trying to remount the tree read-write.
        check(&["bash", "-c", "mount -o remount,bind,rw / ; echo x > /usr/written-by-smoke"], 10.0),
        // The host's kernel settings stay out of reach, even for root.
        check(&["bash", "-c", "echo 1 > /proc/sys/kernel/printk_ratelimit"], 10.0),
    ];
    let report = smoke::run(&built.out, &checks, &options("isolated-host")).unwrap();
    let output = |i: usize| report.results[i].output.clone();
    assert_eq!(output(0).trim(), "isolated-host");
    assert_ne!(output(0).trim(), host_name);
    let link_text = output(1);
    let links: Vec<&str> = link_text.lines().collect();
    assert_eq!(links.len(), 1, "only the loopback interface: {links:?}");
    assert!(links[0].starts_with("1: lo: <LOOPBACK,UP"), "{links:?}");
    let ps = output(2);
    assert!(
        ps.lines().any(|l| l.trim() == "1 ps"),
        "PID 1 is the command itself, not the host's init:\n{ps}"
    );
    assert_eq!(ps.lines().count(), 2, "no other process is visible:\n{ps}");
    assert_eq!(output(3).trim(), "inside");
    assert!(!Path::new("/tmp").join(&marker).exists(), "a write to /tmp inside reached the host");
    assert!(
        !built.out.join("tmp").join(&marker).exists(),
        "a write to /tmp inside reached the tree"
    );
    assert!(output(4).contains("Read-only file system"), "{}", output(4));
    assert!(output(5).contains("Read-only file system"), "{}", output(5));
    assert!(!built.out.join("usr/written-by-smoke").exists());
}

/// One worker's checks share its network namespace, one after the other:
/// a check cannot change it (no capability over it, even as root inside),
/// so the next check finds `lo` as the first found it.
#[test]
fn a_check_leaves_nothing_in_the_network_the_next_one_sees() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = built(&project_root().join("rootfs-spec/default.toml"), tmp.path());
    let change = "ip addr add 10.9.9.9/32 dev lo; ip link set lo down; ip link add d0 type dummy";
    let checks = [
        check(&["bash", "-c", change], 10.0),
        check(&["bash", "-c", "ip -o addr; ip -o link"], 10.0),
    ];
    // One job: the second check runs in the first one's namespace.
    let options = smoke::Options { jobs: 1, ..options("isolated-net") };
    let report = smoke::run(&built.out, &checks, &options).unwrap();
    let first = &report.results[0].output;
    assert!(first.contains("Operation not permitted"), "{first}");
    let second = &report.results[1].output;
    assert!(!second.contains("10.9.9.9") && !second.contains("d0"), "{second}");
    assert!(second.contains("1: lo: <LOOPBACK,UP"), "{second}");
}

/// `cargo xtask rootfs smoke` interrupted with Ctrl-C while a check hangs:
/// nothing of it survives, and the host's mounts are as before.
#[test]
fn an_interrupted_run_leaves_no_process_and_no_mount_behind() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let marker = "27182818";
    let spec = tmp.path().join("int.toml");
    let text = format!(
        "name = \"int\"\ncommands = [\"bash\", \"sleep\"]\n[smoke]\nskip = [\"sleep\"]\n[[smoke.checks]]\nrun = [\"bash\", \"-c\", \"sleep {marker} & sleep {marker}\"]\ntimeout = 60\n"
    );
    std::fs::write(&spec, text).unwrap();
    let out = tmp.path().join("out/int");
    let before_mounts = mountinfo();
    let mut child = xtask_command()
        .args(["rootfs", "smoke"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_with(&format!("sleep {marker}")).len() < 2 {
        assert!(Instant::now() < deadline, "the check never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Ctrl-C reaches the whole foreground process group.
    let group = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process_group(group, rustix::process::Signal::INT).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_with(&format!("sleep {marker}")).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(processes_with(&format!("sleep {marker}")), Vec::<String>::new());
    assert_eq!(mountinfo(), before_mounts, "the host's mount table changed");
    // Removing the tree is safe: nothing is mounted in it.
    std::fs::remove_dir_all(&out).unwrap();
}

use std::os::unix::process::CommandExt;

fn xtask_command() -> std::process::Command {
    std::process::Command::new(xtask_binary())
}

/// A normal user builds and smoke-tests their own tree through a user
/// namespace, or is told in one line why that cannot work here.
#[test]
fn a_normal_user_gets_a_user_namespace_or_one_clear_line() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (to switch to an unprivileged user)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let nobody = 65534;
    let home = tmp.path().join("nobody");
    std::fs::create_dir_all(&home).unwrap();
    rustix::fs::chown(
        &home,
        Some(rustix::process::Uid::from_raw(nobody)),
        Some(rustix::process::Gid::from_raw(nobody)),
    )
    .unwrap();
    // The temporary directory itself must be reachable.
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let spec = project_root().join("rootfs-spec/default.toml");
    let out: PathBuf = home.join("default");
    let mut command = xtask_command();
    command
        .args(["rootfs", "smoke"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    // SAFETY: setgroups, setgid and setuid are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(nobody) != 0
                || libc::setuid(nobody) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        assert!(stdout.contains(" passed, 0 failed"), "{stdout}\n{stderr}");
        // The limits hold through cgroups, or one line says they are
        // rlimits only (this user cannot make a cgroup here).
        let notes = stderr.lines().filter(|l| l.contains("limited with rlimits only")).count();
        let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        assert!(notes <= 1, "{stderr}");
        assert!(notes == 1 || own_cgroup.contains("0::/user"), "no word on the limits:\n{stderr}");
        // Built by that user, the tree's files are root's inside.
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(out.join("etc/passwd")).unwrap(),
        );
        assert_eq!(owner, nobody);
    } else {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains("user namespace"), "{stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("stack backtrace"), "{stderr}");
    }
}

#[test]
fn run_passes_the_exit_status_back_and_shell_reads_its_input() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = project_root().join("rootfs-spec/default.toml");
    let out = tmp.path().join("default");
    let status = xtask_command()
        .args(["rootfs", "run"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .args(["--", "bash", "-c", "exit 7"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    let mut shell = xtask_command()
        .args(["rootfs", "shell"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    shell.stdin.take().unwrap().write_all(b"echo \"inside $(hostname)\"; exit 3\n").unwrap();
    let output = shell.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "inside default");
}

/// Programs that reject `--version` and `--help` (or ignore them) pass when
/// they behave exactly as on the host; one whose library is gone fails,
/// with both exit statuses and the diff.
#[test]
fn probes_are_judged_against_the_host() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("eight.toml");
    let commands = ["ip", "dash", "clear", "false", "infocmp", "chattr", "git-shell", "cat"];
    let missing: Vec<&&str> = commands
        .iter()
        .filter(|c| !rootfs::resolve::DEFAULT_PATH.iter().any(|d| Path::new(d).join(c).exists()))
        .collect();
    if !missing.is_empty() {
        eprintln!("skipped: {missing:?} not installed (`cargo xtask test` installs them)");
        return;
    }
    let list: Vec<String> = commands.iter().map(|c| format!("\"{c}\"")).collect();
    std::fs::write(&spec, format!("name = \"eight\"\ncommands = [{}]\n", list.join(", "))).unwrap();
    let out = tmp.path().join("out/eight");
    let smoke = |extra: &[&str]| {
        let output = xtask_command()
            .args(["rootfs", "smoke"])
            .arg(&spec)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, table) = smoke(&[]);
    assert_eq!(code, Some(0), "{table}");
    assert!(table.ends_with("8 passed, 0 failed\n"), "{table}");
    // A library `ip` needs, gone from the tree as it stands.
    let libmnl = std::fs::canonicalize(out.join("usr/lib/x86_64-linux-gnu/libmnl.so.0")).unwrap();
    std::fs::remove_file(&libmnl).unwrap();
    let (code, table) = smoke(&["--no-build"]);
    assert_eq!(code, Some(1), "{table}");
    assert!(table.ends_with("7 passed, 1 failed\n"), "{table}");
    let ip = table.lines().find(|l| l.starts_with("ip ")).unwrap();
    assert!(ip.contains("FAIL") && ip.contains("differs from the host: exit 127 here"), "{table}");
    assert!(
        table.contains("| +/usr/sbin/ip: error while loading shared libraries: libmnl.so.0"),
        "{table}"
    );
}

/// A check's command is found and executed as `execvp(3)` would inside: a
/// bare name on the check's own `PATH`, a script without `#!` through
/// `/bin/sh`, a name on no folder of `PATH` reported as not found, with
/// the program as PID 1 of its namespace, and the tool's environment left
/// as it was.
#[test]
fn a_checks_command_is_looked_up_and_executed_as_execvp_does() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("exec.toml");
    let text = "name = \"exec\"\ncommands = [\"sh\"]\n\n[[files]]\ndest = \"/opt/tools/plain-script\"\n\
                content = \"echo plain-script ran as $0 with $1\\n\"\nmode = \"0755\"\n";
    std::fs::write(&spec, text).unwrap();
    let built = built(&spec, tmp.path());
    let mut script = check(&["plain-script", "one"], 20.0);
    script.env = vec![("PATH".into(), "/nowhere:/opt/tools:/usr/bin".into())];
    script.expect = Expect::Exit {
        code: 0,
        contains: Some("plain-script ran as /opt/tools/plain-script with one".into()),
    };
    let pid1 = check(&["sh", "-c", "test $$ = 1"], 20.0);
    let mut missing = check(&["sh", "-c", "true"], 20.0);
    missing.env = vec![("PATH".into(), "/nowhere:/opt".into())];
    let before: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os().collect();
    let report = smoke::run(&built.out, &[script, pid1, missing], &options("exec")).unwrap();
    let table = report.table();
    // PID 1 runs in the tool's memory until it executes: the tool's own
    // environment is not the command's.
    let after: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os().collect();
    assert_eq!(before, after);
    assert_eq!(report.results[0].outcome, Outcome::Pass, "{table}");
    assert_eq!(report.results[1].outcome, Outcome::Pass, "{table}");
    match &report.results[2].outcome {
        Outcome::Error(why) => {
            assert!(why.contains("No such file or directory") && why.contains("executing"), "{why}")
        }
        other => panic!("{other:?}\n{table}"),
    }
}
