//! Smoke checks are bounded: processes and memory by cgroups (or rlimits with one line saying so), `/tmp` by its size, output by what is kept, and a check killed by a limit says which.
//!
//! These enter the tree, which needs root or an unprivileged user
//! namespace; cgroups need root here (CI runs as root, so they run there).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rootfs::build::{Built, Options, build};
use rootfs::run::smoke::{self, Check, Expect, Outcome, Report};

fn can_use_cgroups() -> bool {
    if !crate::support::can_enter() {
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (cgroups cannot be made by this user here)");
        return false;
    }
    true
}

fn tree(dir: &Path) -> Built {
    let spec = dir.join("limits.toml");
    let text = "name = \"limits\"\ncommands = [\"bash\", \"sh\", \"sleep\", \"dd\", \"seq\", \"head\", \"yes\"]\n";
    std::fs::write(&spec, text).unwrap();
    build(&Options::new(&spec, dir)).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)))
}

fn run(built: &Built, check: Check) -> Report {
    let options = smoke::Options { jobs: 1, hostname: "limits".into(), reference: None };
    smoke::run(&built.out, &[check], &options).unwrap()
}

fn check(script: &str) -> Check {
    Check::exits_zero(&["/bin/bash", "-c", script], Duration::from_secs(60))
}

/// A check doubling a string 30 times, to 1 GiB, under a memory limit of
/// 256M.
fn hungry() -> Check {
    let mut hungry = check("x=x; for i in $(seq 30); do x=$x$x; done; echo ${#x}");
    hungry.limits.memory = 256 << 20;
    hungry
}

/// Processes of this host whose command line is exactly `cmdline`.
fn count(cmdline: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
        })
        .count()
}

#[test]
fn a_fork_loop_stops_at_the_pids_limit_and_says_so() {
    if !can_use_cgroups() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    let marker = "sleep 31337";
    // dash gives up at the first fork that fails.
    let mut limited = Check::exits_zero(
        &["/bin/sh", "-c", &format!("for i in $(seq 2000); do {marker} & done; wait")],
        Duration::from_secs(60),
    );
    limited.limits.pids = 200;
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (most, done) = (most.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(count(marker), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let report = run(&built, limited);
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let table = report.table();
    assert_eq!(
        report.results[0].outcome,
        Outcome::Fail("fork failed: pids limit 200".into()),
        "{table}"
    );
    assert!(table.contains("fork failed: pids limit 200"), "{table}");
    let most = most.load(Ordering::Relaxed);
    assert!(most > 0 && most <= 200, "{most} sleeps ran at once under a limit of 200");
    assert_eq!(count(marker), 0, "the sleeps died with the check");
}

#[test]
fn a_string_growing_past_the_memory_limit_is_killed_and_reported() {
    if !can_use_cgroups() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    let report = run(&built, hungry());
    let table = report.table();
    assert_eq!(
        report.results[0].outcome,
        Outcome::Fail("killed: memory limit 256M reached".into()),
        "{table}"
    );
}

#[test]
fn tmp_is_as_small_as_asked() {
    if !can_use_cgroups() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    let mut filling = check("dd if=/dev/zero of=/tmp/big bs=1M count=200");
    filling.limits.tmp_size = 64 << 20;
    let report = run(&built, filling);
    let result = &report.results[0];
    assert!(matches!(result.outcome, Outcome::Fail(_)), "{}", report.table());
    assert!(result.output.contains("No space left on device"), "{}", report.table());
    // The default is 256M, not half of the host's memory.
    let report = run(&built, check("dd if=/dev/zero of=/tmp/big bs=1M count=300"));
    assert!(report.results[0].output.contains("No space left on device"), "{}", report.table());
}

#[test]
fn a_text_after_300_mb_of_output_is_found_and_little_is_kept() {
    if !can_use_cgroups() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    let mut loud = check("yes | head -c 300000000; echo THE-END");
    loud.expect = Expect::Exit { code: 0, contains: Some("THE-END".into()) };
    let report = run(&built, loud);
    assert_eq!(report.results[0].outcome, Outcome::Pass, "{}", report.table());
    // Output is read from a pipe and only its head and tail are kept, in
    // memory: nothing of it goes to disk.
    let kept = report.results[0].output.len();
    assert!(kept < 2 << 20, "{kept} bytes of output kept");
    assert!(report.results[0].output.ends_with("THE-END\n"));
    assert!(report.results[0].output.contains("bytes not kept"));
}

/// A run's cgroups are reused from one check to the next, yet each check
/// has its own limits and its own events: a memory or pids limit one check
/// hit is not reported for the next, and a lower limit set for one check is
/// not left for the next (each of these would fail otherwise).
#[test]
fn each_check_has_its_own_limits_and_events_though_cgroups_are_reused() {
    if !can_use_cgroups() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    // 2^27 bytes of string (with bash's copies, about 512M at its peak) is
    // beyond 256M but within the default 2G.
    let large = check("x=x; for i in $(seq 27); do x=$x$x; done; echo ${#x}");
    let mut forks = check("for i in $(seq 400); do sleep 5 & done; wait");
    forks.limits.pids = 200;
    let many = check("for i in $(seq 400); do sleep 0.2 & done; wait");
    let options = smoke::Options { jobs: 1, hostname: "limits".into(), reference: None };
    let report = smoke::run(&built.out, &[hungry(), large, forks, many], &options).unwrap();
    let table = report.table();
    let outcomes: Vec<&Outcome> = report.results.iter().map(|r| &r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            &Outcome::Fail("killed: memory limit 256M reached".into()),
            &Outcome::Pass,
            &Outcome::Fail("fork failed: pids limit 200".into()),
            &Outcome::Pass,
        ],
        "{table}"
    );
}
