//! Smoke under other kernels: a tree booted as an initramfs under Debian 12's and trixie's kernels (fetched from the apt sources' mirror) runs its checks inside with cgroup v2 only, where the memory and pids limits, a timeout and a plain pass each report as on the host.

use std::path::Path;
use std::time::Duration;

use rootfs::build::{Options, build};
use rootfs::run::kernel_smoke;
use rootfs::run::smoke::{self, Check, Outcome};
use rootfs::spec::KernelSource;

use crate::support::xtask_binary;

fn check(script: &str, timeout: f64) -> Check {
    Check::exits_zero(&["/bin/sh", "-c", script], Duration::from_secs_f64(timeout))
}

/// The checks every kernel must report alike: a pass that proves the
/// check's cgroup is a cgroup v2 one (one `0::` line, no v1 hierarchy),
/// the memory and pids limits hit, and a timeout.
fn checks() -> Vec<Check> {
    let v2_only = check(
        "test \"$(wc -l < /proc/self/cgroup)\" = 1 && cat /proc/self/cgroup && uname -r",
        60.0,
    );
    let mut hungry = check("x=x; for i in $(seq 30); do x=$x$x; done; echo ${#x}", 60.0);
    hungry.limits.memory = 64 << 20;
    let mut forking = check("for i in $(seq 200); do sleep 30 & done; wait", 60.0);
    forking.limits.pids = 50;
    let spinning = check("while :; do :; done", 2.0);
    vec![v2_only, hungry, forking, spinning]
}

#[test]
fn bookworm_and_trixie_kernels_run_the_checks_with_cgroup_v2_limits_and_timeouts() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("kernels.toml");
    std::fs::write(
        &spec,
        "name = \"kernels\"\ncommands = [\"sh\", \"cat\", \"wc\", \"seq\", \"sleep\", \"uname\"]\n",
    )
    .unwrap();
    let built = build(&Options::new(&spec, tmp.path()))
        .unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
    let checks = checks();
    let options = smoke::Options { jobs: 2, hostname: "kernels".into(), reference: None };
    for (suite, release) in [("bookworm", "6.1."), ("trixie", "6.12.")] {
        let kernel = KernelSource::Debian { suite: suite.to_string() };
        let ran = kernel_smoke::run(&built.out, &checks, &options, &kernel, &xtask_binary())
            .unwrap_or_else(|e| panic!("{suite}: {e:#}"));
        let table = ran.report.table();
        assert!(ran.release.starts_with(release), "{suite}: {}\n{table}", ran.release);
        assert!(ran.describe().contains(&format!("(debian:{suite})")), "{}", ran.describe());
        let outcomes: Vec<&Outcome> = ran.report.results.iter().map(|r| &r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                &Outcome::Pass,
                &Outcome::Fail("killed: memory limit 64M reached".into()),
                &Outcome::Fail("fork failed: pids limit 50".into()),
                &Outcome::TimedOut,
            ],
            "{suite}:\n{table}"
        );
        let first = &ran.report.results[0].output;
        assert!(first.starts_with("0::/rootfs-1-0/check-"), "{suite}: {first}");
        assert!(first.contains(&ran.release), "{suite}: {first}");
        assert!(
            !ran.report.notes.iter().any(|n| n.contains("rlimits")),
            "{suite}: {:?}",
            ran.report.notes
        );
    }
}

#[test]
fn a_kernel_is_a_path_or_a_debian_suite() {
    let base = Path::new("/specs");
    assert_eq!(
        KernelSource::parse("debian:trixie", base).unwrap(),
        KernelSource::Debian { suite: "trixie".into() }
    );
    assert_eq!(
        KernelSource::parse("k/vmlinuz", base).unwrap(),
        KernelSource::Path("/specs/k/vmlinuz".into())
    );
    assert!(KernelSource::parse("debian:", base).is_err());
}
