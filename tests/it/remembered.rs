//! The reference's side of a probe is remembered beside the tree: an unchanged rerun runs no probe on the sysroot, and a changed program in a directory sysroot runs its probe there again (and is judged by what it prints now).
//!
//! These enter the tree, which needs root or an unprivileged user
//! namespace; CI runs as root, so they run there.

use std::path::{Path, PathBuf};

use rootfs::build::{Built, Options, build};
use rootfs::run::smoke::{self, Outcome, Report};

use crate::support::{can_enter, cc, copy_sysroot, outside_tmp};

/// A program whose `--version` prints `hello VERSION`. Built with:
/// `cc -o hello hello.c -DVERSION=N`.
const HELLO_C: &str = r#"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("hello %d\n", VERSION);
        return 0;
    }
    return 2;
}
"#;

/// A directory sysroot with bash, the C library and `hello`, and the
/// folders the sandbox mounts on.
fn sysroot(work: &Path) -> PathBuf {
    let dir = work.join("sysroot");
    copy_sysroot(&dir);
    for sub in ["etc", "proc", "dev", "tmp", "sys", "run"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    hello(&dir, 1);
    dir
}

fn hello(sysroot: &Path, version: u32) {
    cc(&sysroot.join("usr/bin/hello"), HELLO_C, &[&format!("-DVERSION={version}")]);
}

fn tree(dir: &Path, sysroot: &Path) -> Built {
    let spec = dir.join("remembered.toml");
    std::fs::write(&spec, "name = \"remembered\"\ncommands = [\"hello\", \"bash\"]\n").unwrap();
    let mut options = Options::new(&spec, dir);
    options.sysroot = sysroot.to_path_buf();
    build(&options).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)))
}

fn smoke_against(built: &Built, sysroot: &Path) -> Report {
    let checks = smoke::checks(&built.spec, &built.manifest);
    let (reference, _) = smoke::reference(&built.spec, &built.manifest, &built.out, sysroot);
    assert_eq!(reference.as_deref(), Some(sysroot));
    let options = smoke::Options { jobs: 2, hostname: "remembered".into(), reference };
    smoke::run(&built.out, &checks, &options).unwrap()
}

/// Each probe's runs on the sysroot, by name.
fn reference_runs(report: &Report) -> Vec<(String, usize)> {
    report.results.iter().map(|r| (r.check.name.clone(), r.reference_runs)).collect()
}

fn note(report: &Report) -> String {
    report.notes.iter().find(|n| n.starts_with("reference: ")).cloned().unwrap_or_default()
}

#[test]
fn a_rerun_runs_only_the_tree_and_a_changed_program_runs_on_the_sysroot_again() {
    if !can_enter() {
        return;
    }
    let tmp = outside_tmp("rootfs-remembered-");
    let sysroot = sysroot(tmp.path());
    let built = tree(tmp.path(), &sysroot);

    let first = smoke_against(&built, &sysroot);
    assert_eq!(first.failed(), 0, "{}", first.table());
    assert_eq!(reference_runs(&first), [("hello".into(), 1), ("bash".into(), 1)]);
    assert!(note(&first).starts_with("reference: 2 probes ran on the sysroot, 0 were taken"));
    assert!(smoke::remembered::path_for(&built.out).is_file());

    let again = smoke_against(&built, &sysroot);
    assert_eq!(again.failed(), 0, "{}", again.table());
    assert_eq!(reference_runs(&again), [("hello".into(), 0), ("bash".into(), 0)]);
    assert!(note(&again).starts_with("reference: 0 probes ran on the sysroot, 2 were taken"));
    assert_eq!(again.results[0].host.as_ref().unwrap().output, "hello 1\n");

    // The sysroot's program changes and the tree is not rebuilt: the
    // reference runs the new program, which no longer agrees with the
    // tree's copy of the old one.
    hello(&sysroot, 2);
    let changed = smoke_against(&built, &sysroot);
    let hello_row = &changed.results[0];
    assert!(hello_row.reference_runs >= 1, "{}", changed.table());
    assert_eq!(hello_row.host.as_ref().unwrap().output, "hello 2\n");
    assert!(matches!(hello_row.outcome, Outcome::Fail(_)), "{}", changed.table());
    assert_eq!(changed.results[1].outcome, Outcome::Pass, "{}", changed.table());

    // Rebuilt, the tree has the new program; what the sysroot printed is
    // remembered from the run before.
    let rebuilt = tree(tmp.path(), &sysroot);
    let after = smoke_against(&rebuilt, &sysroot);
    assert_eq!(after.failed(), 0, "{}", after.table());
    assert_eq!(reference_runs(&after), [("hello".into(), 0), ("bash".into(), 0)]);
}

/// The arguments, the environment and the limits are part of the key:
/// a probe of the same program asked differently runs on the sysroot.
#[test]
fn another_environment_or_timeout_is_another_key() {
    if !can_enter() {
        return;
    }
    let tmp = outside_tmp("rootfs-remembered-");
    let sysroot = sysroot(tmp.path());
    let built = tree(tmp.path(), &sysroot);
    let checks = smoke::checks(&built.spec, &built.manifest);
    let options =
        smoke::Options { jobs: 2, hostname: "remembered".into(), reference: Some(sysroot.clone()) };
    let runs = |checks: &[smoke::Check]| {
        let report = smoke::run(&built.out, checks, &options).unwrap();
        report.results.iter().map(|r| r.reference_runs).collect::<Vec<_>>()
    };
    assert_eq!(runs(&checks), [1, 1]);
    assert_eq!(runs(&checks), [0, 0]);
    let mut with_env = checks.clone();
    with_env[0].env = vec![("LANG".into(), "C.UTF-8".into())];
    with_env[1].timeout *= 2;
    assert_eq!(runs(&with_env), [1, 1]);
    // Both states are kept: the first is still remembered.
    assert_eq!(runs(&checks), [0, 0]);
}
