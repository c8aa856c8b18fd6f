//! Signals around a sandbox: the tool's own signal handlers never run in the processes it forks to enter a tree (the cause of an exit status 141 that smoke once reported for `tee --version`), under load as well as once.
//!
//! These enter the tree, which needs root or an unprivileged user
//! namespace; CI runs as root, so they run there.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rootfs::build::{Built, Options, build};
use rootfs::smoke::{self, Check, Outcome};

use crate::support::can_enter;

fn tree(dir: &Path) -> Built {
    let spec = dir.join("signals.toml");
    let text = "name = \"signals\"\ncommands = [\"tee\", \"head\", \"true\"]\n";
    std::fs::write(&spec, text).unwrap();
    build(&Options::new(&spec, dir)).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)))
}

fn options(jobs: usize) -> smoke::Options {
    smoke::Options { jobs, hostname: "signals".into(), reference: None }
}

/// The keeper is forked from the tool and never executes anything, so
/// without care it keeps every handler the tool installed (`signal(7)`:
/// dispositions are inherited across `fork`, reset only by `execve`). A
/// SIGCHLD handler that writes to a descriptor (as duct's waits do, through
/// `sigchld` and `signal-hook`) then runs in the keeper when PID 1 exits.
/// This one says so on the check's output, which the keeper holds.
#[test]
fn the_tools_signal_handlers_never_run_in_the_keeper() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    const MARK: &[u8] = b"a handler of the tool ran in a forked process\n";
    // SAFETY: getpid and write are async-signal-safe; MARK is static.
    let tool = unsafe { libc::getpid() };
    let id = unsafe {
        signal_hook::low_level::register(libc::SIGCHLD, move || {
            if libc::getpid() != tool {
                libc::write(2, MARK.as_ptr().cast(), MARK.len());
            }
        })
    }
    .unwrap();
    let checks = [Check::exits_zero(&["true"], Duration::from_secs(30))];
    let report = smoke::run(&built.out, &checks, &options(1));
    signal_hook::low_level::unregister(id);
    let report = report.unwrap();
    let result = &report.results[0];
    assert_eq!(result.outcome, Outcome::Pass, "{}", report.table());
    assert_eq!(result.output, "", "{}", report.table());
}

/// Hundreds of short checks, half of them printing more than the 1 MiB
/// that is kept, eight at a time, while other threads wait on children of
/// their own as a busy runner's threads do (each wait installs a SIGCHLD
/// handler writing to a fresh pipe, and removes it). Every check must exit
/// 0: before the keeper reset its signal handlers, a handler registered
/// between the fork's copy of the descriptor table and its copy of memory
/// wrote, in the keeper, to the keeper's own pipe whose reader had exited,
/// and the keeper died of SIGPIPE (status 141).
#[test]
fn hundreds_of_short_checks_under_load_all_exit_zero() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built = tree(tmp.path());
    let mut checks = Vec::new();
    for i in 0..300 {
        let argv: &[&str] = if i % 2 == 0 {
            &["tee", "--version"]
        } else {
            &["head", "-c", "3000000", "/dev/zero"]
        };
        checks.push(Check::exits_zero(argv, Duration::from_secs(60)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let sleeper = duct::cmd("sleep", ["60"]).unchecked().start().unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = sleeper.wait_timeout(Duration::ZERO);
                }
                sleeper.kill().unwrap();
            })
        })
        .collect();
    let report = smoke::run(&built.out, &checks, &options(8));
    stop.store(true, Ordering::Relaxed);
    for waiter in waiters {
        waiter.join().unwrap();
    }
    let report = report.unwrap();
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| format!("{}: {:?}, status {:?}", r.check.name, r.outcome, r.status))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed:\n{}",
        failed.len(),
        checks.len(),
        failed.join("\n")
    );
}
