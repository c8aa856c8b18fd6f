//! Both sides of a probe see the same machine: the tree and the reference get the same read-only `/sys`, `trace` proposes the sysroot's own lines for the accounts a program looks up that the tree's `/etc/passwd` and `/etc/group` lack, and an output that differs from the host's only in the order of its lines is reported as `same lines, other order`, while every other difference still fails.
//!
//! These enter the tree, which needs root or an unprivileged user
//! namespace; CI runs as root, so they run there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rootfs::build::{Built, Options, build};
use rootfs::run::smoke::{self, Check, Expect, Outcome};

use crate::devenv::{Caller, Fixture};
use crate::support::{can_enter, cc, copy_sysroot, rootfs_cli};

fn tree(dir: &Path) -> Built {
    let spec = dir.join("sameview.toml");
    let text = "name = \"sameview\"\ncommands = [\"sh\", \"ls\", \"touch\"]\n";
    std::fs::write(&spec, text).unwrap();
    build(&Options::new(&spec, dir)).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)))
}

/// `sh -c SCRIPT`, judged against the same run on the host.
fn same_as_host(script: &str) -> Check {
    let mut check = Check::exits_zero(&["sh", "-c", script], Duration::from_secs(30));
    check.name = script.to_string();
    check.expect = Expect::SameAsHost { exit: None, contains: None };
    check
}

fn against_the_host(built: &Built, checks: &[Check]) -> smoke::Report {
    let options =
        smoke::Options { jobs: 2, hostname: "sameview".into(), reference: Some("/".into()) };
    smoke::run(&built.out, checks, &options).unwrap()
}

/// The reference once saw the host's `/sys` (so `lvm` and `dmraid` behaved
/// differently there) and the tree nothing; now both get a sysfs of their
/// own network namespace, read-only, as a container runtime mounts it.
#[test]
fn the_tree_and_the_reference_see_the_same_read_only_sys() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    let mut read_only = Check::exits_zero(&["touch", "/sys/x"], Duration::from_secs(30));
    read_only.expect = Expect::Exit { code: 1, contains: Some("Read-only file system".into()) };
    let checks = [same_as_host("ls /sys/class/net; ls /sys/kernel"), read_only];
    let report = against_the_host(&built, &checks);
    assert_eq!(report.failed(), 0, "{}", report.table());
    let listing = &report.results[0].output;
    assert!(listing.starts_with("lo\n"), "{listing}");
}

/// With the host's network a user namespace cannot mount a sysfs: `run`
/// binds the host's `/sys`, read-only.
#[test]
fn with_the_hosts_network_sys_is_the_hosts_read_only() {
    let Some(caller) = Caller::all().first().copied() else { return };
    let Some(fixture) = Fixture::new(caller, "") else { return };
    let output = fixture.run(&["--network", "host"], "ls /sys/class/net; touch /sys/x");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), host);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}

/// The tree lacks `/usr/share/doc`, the host has it: each script prints
/// one thing on the host and another in the tree. Only the same lines in
/// another order pass, and say so; a changed line, a line twice instead of
/// another, or another exit status still fail.
#[test]
fn only_an_order_of_lines_passes_as_same_lines_other_order() {
    if !can_enter() {
        return;
    }
    if !Path::new("/usr/share/doc").is_dir() {
        eprintln!("skipped: the host has no /usr/share/doc to tell it from the tree");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    assert!(!built.out.join("usr/share/doc").exists());
    let on_host = |host: &str, tree: &str| {
        same_as_host(&format!("if [ -d /usr/share/doc ]; then {host}; else {tree}; fi"))
    };
    let checks = [
        on_host("echo troff; echo grops", "echo grops; echo troff"),
        on_host("echo troff; echo grops", "echo troff; echo eqn"),
        on_host("echo a; echo a; echo b", "echo a; echo b; echo b"),
        on_host("echo a; echo b", "echo b; echo a; exit 1"),
    ];
    let report = against_the_host(&built, &checks);
    let table = report.table();
    let outcomes: Vec<(bool, bool)> =
        report.results.iter().map(|r| (r.outcome == Outcome::Pass, r.reordered)).collect();
    assert_eq!(outcomes, [(true, true), (false, false), (false, false), (false, false)], "{table}");
    let first = table.lines().nth(1).unwrap();
    assert!(first.contains("pass") && first.ends_with("same lines, other order"), "{table}");
}

/// The fixture's C source. Built with: `cc -o needs-account needs-account.c`.
const NEEDS_ACCOUNT_C: &str = r#"
#include <grp.h>
#include <pwd.h>
#include <stdio.h>

int main(void) {
    struct passwd *pw = getpwnam("rootfs-it-svc");
    if (!pw) { fprintf(stderr, "no user rootfs-it-svc\n"); return 1; }
    struct group *gr = getgrgid(pw->pw_gid);
    printf("%s %u %s\n", pw->pw_name, (unsigned)pw->pw_uid, gr ? gr->gr_name : "?");
    return 0;
}
"#;

/// A sysroot (in `/var/tmp`: the sandbox has its own `/tmp`) whose
/// `/etc/passwd` and `/etc/group` have accounts a built tree lacks, and a
/// program that looks one of them up, as exim4 looks up `Debian-exim`.
fn accounts_sysroot(work: &Path) -> PathBuf {
    let dir = work.join("sysroot");
    copy_sysroot(&dir);
    for sub in ["etc", "proc", "dev", "tmp", "sys", "run"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n\
         rootfs-it-svc:x:4242:4243:a service:/var/lib/svc:/usr/sbin/nologin\n\
         rootfs-it-other:x:4244:4244::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nrootfs-it-svc-group:x:4243:\nrootfs-it-other:x:4244:\n",
    )
    .unwrap();
    cc(&dir.join("usr/bin/needs-account"), NEEDS_ACCOUNT_C, &[]);
    dir
}

/// `rootfs <subcommand> SPEC --out OUT --sysroot SYSROOT <rest...>`.
fn xtask(subcommand: &str, spec: &Path, sysroot: &Path, rest: &[&str]) -> (i32, String) {
    let sysroot = sysroot.to_str().unwrap();
    let extra = [&["--sysroot", sysroot][..], rest].concat();
    rootfs_cli(subcommand, spec, &spec.with_file_name("out"), &extra)
}

/// `trace --write` proposes the user the program looks up and its primary
/// group, as the sysroot's lines, and no other account of the sysroot;
/// with the fragment included the program finds its account in the tree,
/// and a second trace writes the same bytes.
#[test]
fn trace_proposes_the_sysroots_own_lines_for_the_accounts_a_program_needs() {
    if !can_enter() {
        return;
    }
    let work = PathBuf::from("/var/tmp").join(format!("rootfs-accounts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let sysroot = accounts_sysroot(&work);
    let spec = work.join("accounts.toml");
    let fragment = work.join("accounts.trace.toml");
    let write = ["--write", fragment.to_str().unwrap()];
    let text = "name = \"accounts\"\ncommands = [\"/usr/bin/needs-account\"]\n\
                [smoke.args]\n\"needs-account\" = []\n";
    std::fs::write(&spec, text).unwrap();
    let (code, text) = xtask("trace", &spec, &sysroot, &[]);
    assert_eq!(code, 1, "something is missing, so the exit status is 1:\n{text}");
    let (code, text) = xtask("trace", &spec, &sysroot, &write);
    assert_eq!(code, 0, "{text}");
    let listed = "users (1), from the sysroot's /etc/passwd:\n  \
                  rootfs-it-svc:x:4242:4243:a service:/var/lib/svc:/usr/sbin/nologin\n";
    assert!(text.contains(listed), "{text}");
    let written = std::fs::read_to_string(&fragment).unwrap();
    let user = "[[users]]\nname = \"rootfs-it-svc\"\nuid = 4242\ngid = 4243\n\
                home = \"/var/lib/svc\"\nshell = \"/usr/sbin/nologin\"\ngecos = \"a service\"\n";
    assert!(written.contains(user), "{written}");
    let group = "[[groups]]\nname = \"rootfs-it-svc-group\"\ngid = 4243\n";
    assert!(written.contains(group), "{written}");
    assert!(!written.contains("rootfs-it-other"), "an account nothing looked up:\n{written}");

    let included =
        format!("include = [\"accounts.trace.toml\"]\n{}", std::fs::read_to_string(&spec).unwrap());
    std::fs::write(&spec, included).unwrap();
    let (code, text) = xtask("smoke", &spec, &sysroot, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 passed, 0 failed"), "{text}");
    let (_, text) = xtask("trace", &spec, &sysroot, &write);
    assert_eq!(std::fs::read_to_string(&fragment).unwrap(), written, "{text}");
    let _ = std::fs::remove_dir_all(&work);
}
