//! The smoke benchmark: `rootfs smoke` of a tree of many programs, first with every probe run on the sysroot and in the tree, then again with the sysroot's side remembered, against a plain loop of `chroot TREE PROG --version`, one process after the other (`bench/chroot-loop.sh`).
//!
//! Programs that hang under plain `chroot` are left out of both, by a fixed
//! rule decided once before timing, so that neither contender's figure is
//! a sum of timeouts. After timing, one more run through the library (the
//! same checks, the same reference, the same number of jobs) counts the
//! probes that fell back to `--help` and how the checks ended.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::timing::{Contender, Measured, Side, round_robin, sync_and_settle};
use super::{List, write_file, write_spec};
use crate::project_root;

/// A program whose plain `chroot TREE PROG --version` does not finish in
/// this time is left out of the comparison.
const HANG_LIMIT: Duration = Duration::from_secs(3);

/// The time limit of each run, in both contenders.
const TIMEOUT_SECONDS: u32 = 10;

/// What one list's smoke benchmark found.
struct Row {
    list: String,
    /// The programs smoked.
    smoked: usize,
    /// The programs left out, because they hang under plain `chroot`.
    skipped: Vec<PathBuf>,
    /// Our command line, as run (relative to the project root).
    command: String,
    jobs: usize,
    contenders: Vec<(&'static str, Measured)>,
    probes: Probes,
    /// The load average (1, 5, 15 minutes) before and after the timed runs.
    load: (String, String),
}

/// How the checks of one untimed run through the library went.
#[derive(Default)]
struct Probes {
    passed: usize,
    failed: usize,
    timed_out: usize,
    /// Probes run with `--help`, because the sysroot's `--version` failed.
    fallbacks: usize,
    /// Probes whose outputs differed, so that the sysroot's run was
    /// repeated to see whether its output varies.
    repeated: usize,
    /// Runs inside a sandbox in all, counting both sides.
    sandbox_runs: usize,
    /// The sum of the checks' own times, and the run's wall time.
    busy: Duration,
    elapsed: Duration,
}

/// Times each list; returns the smoke section of the results, in Markdown.
pub fn run(exe: &Path, work: &Path, lists: &[&List], runs: usize) -> Result<String> {
    let mut rows = Vec::new();
    for list in lists {
        eprintln!("== smoke: {} ({} programs)", list.name, list.programs.len());
        rows.push(measure(exe, work, list, runs)?);
    }
    Ok(render(&rows, runs))
}

fn measure(exe: &Path, work: &Path, list: &List, runs: usize) -> Result<Row> {
    let files = Files::new(work, list)?;
    build(exe, &files, &list.programs, &[])?;
    let skipped = hanging(&files.tree, &list.programs);
    let smoked: Vec<PathBuf> =
        list.programs.iter().filter(|p| !skipped.contains(p)).cloned().collect();
    // The spec that is timed: the same commands, the hanging ones skipped.
    build(exe, &files, &list.programs, &skipped)?;
    let lines: String = smoked.iter().map(|p| format!("{}\n", p.display())).collect();
    write_file(&files.programs, &lines)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let before = load_average();
    let mut contenders = contenders(exe, &files, runs);
    round_robin(&mut contenders);
    let after = load_average();
    let probes = probes(&files, jobs).context("counting the probes")?;
    Ok(Row {
        list: list.name.clone(),
        smoked: smoked.len(),
        skipped,
        command: files.command_line(),
        jobs,
        contenders: contenders.iter().map(|c| (c.label, c.measured())).collect(),
        probes,
        load: (before, after),
    })
}

/// The files of one list's smoke benchmark, in `target/bench/smoke-<list>/`.
struct Files {
    /// The spec's name.
    name: String,
    spec: PathBuf,
    tree: PathBuf,
    /// The programs smoked, one a line, for the loop.
    programs: PathBuf,
}

impl Files {
    fn new(work: &Path, list: &List) -> Result<Files> {
        let name = format!("smoke-{}", list.name);
        let dir = work.join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        Ok(Files {
            name,
            spec: dir.join("spec.toml"),
            tree: dir.join("tree"),
            programs: dir.join("programs.txt"),
        })
    }

    /// `rootfs smoke SPEC --out TREE`, with the default number of jobs.
    fn smoke(&self, exe: &Path) -> Command {
        let mut c = Command::new(exe);
        c.args(["rootfs", "smoke"]).arg(&self.spec).arg("--out").arg(&self.tree);
        c
    }

    fn command_line(&self) -> String {
        let relative = |p: &Path| p.strip_prefix(project_root()).unwrap_or(p).display().to_string();
        format!(
            "target/release/xtask rootfs smoke {} --out {}",
            relative(&self.spec),
            relative(&self.tree)
        )
    }
}

/// Writes the spec (`[smoke]` with the timeout and `skip`) and builds its
/// tree, untimed.
fn build(exe: &Path, files: &Files, programs: &[PathBuf], skip: &[PathBuf]) -> Result<()> {
    let mut smoke = format!("\n[smoke]\ntimeout = {TIMEOUT_SECONDS}\nskip = [\n");
    for p in skip {
        let _ = writeln!(smoke, "  \"{}\",", p.display());
    }
    smoke.push_str("]\n");
    write_spec(&files.spec, &files.name, programs, &smoke)?;
    let mut c = Command::new(exe);
    c.args(["rootfs", "build"]).arg(&files.spec).arg("--out").arg(&files.tree);
    let status = c.stdout(Stdio::null()).status().context("building the tree to smoke")?;
    ensure!(status.success(), "the build of `{}` failed", files.spec.display());
    // The build's writes are not left to slow the first timed run.
    sync_and_settle();
    Ok(())
}

/// The programs whose `chroot TREE PROG --version </dev/null` does not
/// finish within [`HANG_LIMIT`], run one at a time (so that the rule does
/// not depend on the machine's load); empty when not root. The tree is
/// bind-mounted read-only first, in a mount namespace of each run's own,
/// as `bench/chroot-loop.sh` does: a plain chroot lets programs write into
/// it.
fn hanging(tree: &Path, programs: &[PathBuf]) -> Vec<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        return Vec::new();
    }
    let script = format!(
        "mount --bind -o ro \"$1\" \"$1\" && exec timeout --kill-after=1 {} chroot \"$1\" \"$2\" --version",
        HANG_LIMIT.as_secs()
    );
    programs
        .iter()
        .filter(|program| {
            let started = Instant::now();
            let _ = Command::new("unshare")
                .args(["--mount", "--propagation", "private", "--", "sh", "-c", &script, "sh"])
                .arg(tree)
                .arg(program)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            started.elapsed() >= HANG_LIMIT
        })
        .cloned()
        .collect()
}

/// Ours on a first run (the remembered reference runs removed before
/// each), the loop the issue names, the same loop without `timeout` (one
/// process fewer per program), and ours again with the reference runs the
/// run before remembered; each after a sync and a pause.
fn contenders<'a>(exe: &'a Path, files: &'a Files, runs: usize) -> Vec<Contender<'a>> {
    let script = project_root().join("bench/chroot-loop.sh");
    let chroot_loop = move |seconds: u32| {
        let script = script.clone();
        move || {
            let mut c = Command::new(&script);
            c.arg(&files.tree).arg(&files.programs).arg(seconds.to_string());
            c
        }
    };
    let forget = move || {
        let _ = std::fs::remove_file(rootfs::run::smoke::remembered::path_for(&files.tree));
        sync_and_settle();
    };
    vec![
        Contender::new("rootfs smoke, first run", Side::Ours, runs, move || files.smoke(exe))
            .allow_exit_1()
            .prepare(forget),
        Contender::new(
            "floor: chroot loop, timeout 10",
            Side::Theirs,
            runs,
            chroot_loop(TIMEOUT_SECONDS),
        )
        .prepare(sync_and_settle),
        Contender::new("chroot loop without timeout", Side::Theirs, runs, chroot_loop(0))
            .prepare(sync_and_settle),
        Contender::new("rootfs smoke, rerun (reference remembered)", Side::Ours, runs, move || {
            files.smoke(exe)
        })
        .allow_exit_1()
        .prepare(sync_and_settle),
    ]
}

/// One first run of the same checks through the library (nothing
/// remembered), untimed, to see what each probe ran.
fn probes(files: &Files, jobs: usize) -> Result<Probes> {
    let _ = std::fs::remove_file(rootfs::run::smoke::remembered::path_for(&files.tree));
    let spec = rootfs::spec::load(&files.spec)?;
    let manifest =
        rootfs::build::manifest::Manifest::read(&rootfs::build::manifest::path_for(&files.tree))?;
    let checks = rootfs::run::smoke::checks(&spec, &manifest);
    let (reference, _) =
        rootfs::run::smoke::reference(&spec, &manifest, &files.tree, Path::new("/"));
    let options = rootfs::run::smoke::Options { jobs, hostname: spec.name.clone(), reference };
    let report = rootfs::run::smoke::run(&files.tree, &checks, &options)?;
    let mut probes = Probes { elapsed: report.elapsed, ..Probes::default() };
    for r in &report.results {
        match r.outcome {
            rootfs::run::smoke::Outcome::Pass => probes.passed += 1,
            rootfs::run::smoke::Outcome::TimedOut => probes.timed_out += 1,
            _ => probes.failed += 1,
        }
        let fell_back = r.ran.last().is_some_and(|a| a == "--help");
        // The probe, its fallback when it ran, and a repeat.
        let repeated = r.reference_runs > 1 + usize::from(fell_back);
        probes.fallbacks += usize::from(fell_back);
        probes.repeated += usize::from(repeated);
        probes.sandbox_runs += 1 + r.reference_runs;
        probes.busy += r.elapsed;
    }
    Ok(probes)
}

/// `/proc/loadavg`'s first three fields.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn render(rows: &[Row], runs: usize) -> String {
    let mut out = String::new();
    for row in rows {
        let _ = writeln!(
            out,
            "### smoke: {} ({} programs smoked, {} skipped)\n",
            row.list,
            row.smoked,
            row.skipped.len()
        );
        let _ = writeln!(
            out,
            "Medians of {runs} runs (after one warm-up), wall time of the whole process; peak RSS in MiB.\n"
        );
        super::report::timing_table(&mut out, row.contenders.iter());
        findings(&mut out, row);
    }
    out
}

fn findings(out: &mut String, row: &Row) {
    let median = |i: usize| {
        row.contenders.get(i).and_then(|(_, m)| m.as_ref().ok()).map(|t| t.median.as_secs_f64())
    };
    let verdict = |ratio: f64, target: f64| if ratio <= target { "met" } else { "not met" };
    if let (Some(ours), Some(floor), Some(bare)) = (median(0), median(1), median(2)) {
        let _ = writeln!(
            out,
            "- rootfs smoke, first run / chroot loop: {:.2}x (target at most 1.8x: {}); against the loop without timeout: {:.2}x",
            ours / floor,
            verdict(ours / floor, 1.8),
            ours / bare
        );
    }
    if let (Some(rerun), Some(floor)) = (median(3), median(1)) {
        let _ = writeln!(
            out,
            "- rootfs smoke, rerun / chroot loop: {:.2}x (target at most 1.15x: {})",
            rerun / floor,
            verdict(rerun / floor, 1.15)
        );
    }
    let _ = writeln!(out, "- ours: `{}` ({} jobs)", row.command, row.jobs);
    let skipped: Vec<String> = row.skipped.iter().map(|p| p.display().to_string()).collect();
    let _ = writeln!(
        out,
        "- skipped (plain `chroot TREE PROG --version` did not finish in {} s): {}",
        HANG_LIMIT.as_secs(),
        if skipped.is_empty() { "none".to_string() } else { skipped.join(", ") }
    );
    let p = &row.probes;
    let _ = writeln!(
        out,
        "- one more first run through the library: {} passed, {} failed, {} timed out; {} of {} probes fell back to `--help`, {} repeated the sysroot's run for a varying output; {} sandbox runs in all; {:.3} s of check time over {:.3} s",
        p.passed,
        p.failed,
        p.timed_out,
        p.fallbacks,
        row.smoked,
        p.repeated,
        p.sandbox_runs,
        p.busy.as_secs_f64(),
        p.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- load average before and after the timed runs: {} / {}\n",
        row.load.0, row.load.1
    );
}
