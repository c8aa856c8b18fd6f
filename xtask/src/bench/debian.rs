//! The package sysroot benchmark: unpacking the python3 bookworm spec's packages from a warm cache against a serial `dpkg-deb -x` loop over the same `.deb`s, a no-op rebuild of that spec in a network namespace with no route, and resolving `python3 git vim` from parsed indexes.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rootfs::debian::{self, cache::Cache, fetch::Http, package::FetchedDeb};

use crate::project_root;

/// The spec whose packages are unpacked and rebuilt.
const SPEC: &str = "rootfs-spec/bookworm/python3.toml";

/// Runs the three measurements, `runs` times each after one warm-up, and
/// returns the results' section.
pub fn run(exe: &Path, work: &Path, runs: usize) -> Result<String> {
    let dir = work.join("debian");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let spec = project_root().join(SPEC);
    let loaded = rootfs::spec::load(&spec)?;
    let table = loaded
        .debian
        .as_ref()
        .map(|item| &item.value)
        .context("the spec has no [sysroot.debian]")?;
    let request = debian::merge_request(Some(table), None, &[], &loaded.debian_packages);
    let options = debian::Options {
        lock: Some(rootfs::lock::path_for(&spec)),
        locked: true,
        ..Default::default()
    };
    let base = spec.parent().context("the spec has no folder")?;
    // Warms the download cache: the timed runs read only cached `.deb`s.
    let (_, debs) = debian::package_set::locked_or_resolved(&request, base, &options)?;
    let load_before = load()?;
    let (ours, floor) = unpacking(&dir, &debs, runs)?;
    let noop = noop_rebuild(exe, &spec, &dir, runs)?;
    let resolve = resolving(table, base, runs)?;
    let mut out = String::from("\n## Package sysroots\n\n");
    let _ = writeln!(
        out,
        "`{SPEC}`'s {} packages ({} MB of `.deb`s, already in the download cache), and `python3 git vim` resolved \
         against bookworm's `main` index, as `cargo xtask bench --only debian` runs them (the release binary; \
         medians of {runs} runs after one warm-up), load average {load_before} before and {} after.\n",
        debs.len(),
        deb_bytes(&debs)? / 1_000_000,
        load()?
    );
    let _ = writeln!(out, "| measurement | median | target |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| floor: `dpkg-deb -x` of each `.deb`, one after another | {} | |",
        secs(floor)
    );
    let _ = writeln!(
        out,
        "| unpacking the set (`debian::unpack::prepare`: in parallel, merged-`/usr` links, dpkg database, scripts' effects) | {} ({:.2}x the floor) | at most 0.5x |",
        secs(ours),
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| no-op `rootfs build {SPEC} --locked` in `unshare --net` (no route) | {} | under 100 ms |",
        millis(noop)
    );
    let _ = writeln!(
        out,
        "| resolving `python3 git vim` and their closure from the parsed index (`debian::resolve_from`) | {} | under 200 ms |",
        millis(resolve)
    );
    Ok(out)
}

/// Ours and the floor, alternated, each into a fresh folder.
fn unpacking(dir: &Path, debs: &[FetchedDeb], runs: usize) -> Result<(Duration, Duration)> {
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for round in 0..=runs {
        let into = dir.join(format!("ours-{round}"));
        let started = Instant::now();
        debian::unpack::prepare(debs, &into)?;
        let elapsed = started.elapsed();
        let into_floor = dir.join(format!("floor-{round}"));
        std::fs::create_dir_all(&into_floor)
            .with_context(|| format!("failed to create `{}`", into_floor.display()))?;
        let started = Instant::now();
        for deb in debs {
            let status = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb.path)
                .arg(&into_floor)
                .status()
                .context("running dpkg-deb")?;
            ensure!(status.success(), "dpkg-deb -x `{}` failed", deb.path.display());
        }
        let elapsed_floor = started.elapsed();
        if round > 0 {
            ours.push(elapsed);
            floor.push(elapsed_floor);
        }
        rootfs::fsutil::remove_tree(&into)?;
        rootfs::fsutil::remove_tree(&into_floor)?;
    }
    Ok((median(&mut ours), median(&mut floor)))
}

/// A build of an unchanged spec whose tree is in place, in a network
/// namespace with no route: it must need no mirror.
fn noop_rebuild(exe: &Path, spec: &Path, dir: &Path, runs: usize) -> Result<Duration> {
    let out = dir.join("tree");
    let build = || {
        let mut c = Command::new("unshare");
        c.args(["--net", "--"]).arg(exe).args(["rootfs", "build"]).arg(spec);
        c.arg("--out").arg(&out).arg("--locked").stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    // The first build makes the tree (offline too: the cache holds all).
    let status = build().status().context("running unshare")?;
    ensure!(status.success(), "the first offline build of `{}` failed", spec.display());
    let mut times = Vec::new();
    for _ in 0..=runs {
        let started = Instant::now();
        let status = build().status().context("running unshare")?;
        ensure!(status.success(), "an offline no-op build of `{}` failed", spec.display());
        times.push(started.elapsed());
    }
    times.remove(0);
    Ok(median(&mut times))
}

/// The closure of `python3 git vim` from indexes already fetched and parsed.
fn resolving(table: &debian::DebianRequest, base: &Path, runs: usize) -> Result<Duration> {
    let asked: Vec<String> = ["python3", "git", "vim"].map(String::from).to_vec();
    let request = debian::merge_request(Some(table), None, &asked, &[]);
    let source = debian::sysroot::archive_source(&request, base, &debian::Options::default())?;
    let cache = Cache::open(&debian::cache::default_dir()?)?;
    let indexes = debian::fetch::fetch_indexes(&source, &cache, &Http::new())?;
    let mut times = Vec::new();
    for _ in 0..=runs {
        let started = Instant::now();
        let resolution = debian::sysroot::resolve_from(&source, &indexes, &asked)?;
        times.push(started.elapsed());
        ensure!(
            resolution.packages.len() > 50,
            "only {} packages resolved",
            resolution.packages.len()
        );
    }
    times.remove(0);
    Ok(median(&mut times))
}

fn deb_bytes(debs: &[FetchedDeb]) -> Result<u64> {
    debs.iter()
        .map(|d| {
            Ok(std::fs::metadata(&d.path)
                .with_context(|| format!("failed to stat `{}`", d.path.display()))?
                .len())
        })
        .sum()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// The 1, 5 and 15 minute load averages.
fn load() -> Result<String> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    Ok(text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}
