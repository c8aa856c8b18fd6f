//! The package sysroot benchmark: unpacking the python3 bookworm spec's packages from a warm cache against a serial `dpkg-deb -x` loop over the same `.deb`s, a no-op rebuild of that spec in a network namespace with no route, and resolving `python3 git vim` from parsed indexes.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rootfs::build::debian::{self, cache::Cache, fetch::Http, package::FetchedDeb};

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
        lock: Some(rootfs::build::lock::path_for(&spec)),
        locked: true,
        ..Default::default()
    };
    let base = spec.parent().context("the spec has no folder")?;
    // Warms the download cache: the timed runs read only cached `.deb`s.
    let (_, debs) = debian::package_set::locked_or_resolved(&request, base, &options)?;
    let load_before = load()?;
    let (ours, floor) = unpacking(&dir, &debs, runs)?;
    let figures = Figures {
        ours,
        floor,
        in_memory: in_tmpfs(&debs, runs)?,
        noop: noop_rebuild(exe, &spec, &dir, runs)?,
        resolve: resolving(table, base, runs)?,
    };
    let header = format!(
        "`{SPEC}`'s {} packages ({} MB of `.deb`s, already in the download cache), and `python3 git vim` resolved \
         against bookworm's `main` index, as `cargo xtask bench --only debian` runs them (the release binary; \
         medians of {runs} runs after one warm-up), load average {load_before} before and {} after.\n",
        debs.len(),
        deb_bytes(&debs)? / 1_000_000,
        load()?
    );
    Ok(figures.section(&header))
}

/// What the benchmark measured.
struct Figures {
    ours: Timing,
    floor: Timing,
    in_memory: Option<(Timing, Timing)>,
    noop: Duration,
    resolve: Duration,
}

impl Figures {
    /// The results' section of BENCHMARKS.md, under `header`.
    fn section(&self, header: &str) -> String {
        let Figures { ours, floor, in_memory, noop, resolve } = self;
        let (noop, resolve) = (*noop, *resolve);
        let mut out = String::from("\n## Package sysroots\n\n");
        let _ = writeln!(out, "{header}");
        let _ = writeln!(out, "| measurement | median | target |\n|---|---|---|");
        let _ = writeln!(
            out,
            "| floor: `dpkg-deb -x` of each `.deb`, one after another | {} (CPU {}) | |",
            secs(floor.wall),
            secs(floor.cpu)
        );
        let _ = writeln!(
            out,
            "| unpacking the set (`debian::unpack::prepare`: in parallel, merged-`/usr` links, dpkg database, scripts' effects) | {} ({:.2}x the floor; CPU {}, {:.2}x the floor's) | at most 0.5x |",
            secs(ours.wall),
            ours.wall.as_secs_f64() / floor.wall.as_secs_f64(),
            secs(ours.cpu),
            ours.cpu.as_secs_f64() / floor.cpu.as_secs_f64()
        );
        if let Some((ours, floor)) = in_memory {
            let _ = writeln!(
                out,
                "| the same two in a tmpfs (`/dev/shm`: no disk allocator): floor / ours | {} (CPU {}) / {} (CPU {}): {:.2}x, CPU {:.2}x | |",
                secs(floor.wall),
                secs(floor.cpu),
                secs(ours.wall),
                secs(ours.cpu),
                ours.wall.as_secs_f64() / floor.wall.as_secs_f64(),
                ours.cpu.as_secs_f64() / floor.cpu.as_secs_f64()
            );
        }
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
        out
    }
}

/// One side's median wall time and median CPU time (user + system, of
/// this process's threads for ours, of the reaped children for the floor).
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

/// Ours and the floor, each into a fresh folder, the side that goes first
/// alternating by round: an ext4 without a journal skips inodes freed in
/// the last minute when it allocates (`recently_deleted` in
/// `fs/ext4/ialloc.c`), so whichever side runs right after the previous
/// round's trees are removed pays the most for each file it creates.
fn unpacking(dir: &Path, debs: &[FetchedDeb], runs: usize) -> Result<(Timing, Timing)> {
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    for round in 0..=runs {
        let into = dir.join(format!("ours-{round}"));
        let into_floor = dir.join(format!("floor-{round}"));
        let (a, b) = if round % 2 == 0 {
            let a = timed(cpu_self, || debian::unpack::prepare(debs, &into).map(drop))?;
            (a, timed(cpu_children, || dpkg_deb_loop(debs, &into_floor))?)
        } else {
            let b = timed(cpu_children, || dpkg_deb_loop(debs, &into_floor))?;
            (timed(cpu_self, || debian::unpack::prepare(debs, &into).map(drop))?, b)
        };
        if round > 0 {
            ours.push(a);
            floor.push(b);
        }
        rootfs::fsutil::remove_tree(&into)?;
        rootfs::fsutil::remove_tree(&into_floor)?;
    }
    Ok((medians(&ours), medians(&floor)))
}

/// The same measurement in a folder of `/dev/shm` when it is a tmpfs, so
/// that the figures leave out the disk's own allocator; `None` without one.
fn in_tmpfs(debs: &[FetchedDeb], runs: usize) -> Result<Option<(Timing, Timing)>> {
    let shm = Path::new("/dev/shm");
    let Ok(stat) = rustix::fs::statfs(shm) else { return Ok(None) };
    if stat.f_type != libc::TMPFS_MAGIC {
        return Ok(None);
    }
    let dir = shm.join(format!("rootfs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let result = unpacking(&dir, debs, runs);
    rootfs::fsutil::remove_tree(&dir)?;
    result.map(Some)
}

/// `dpkg-deb -x` of each `.deb` into `into`, one after another.
fn dpkg_deb_loop(debs: &[FetchedDeb], into: &Path) -> Result<()> {
    std::fs::create_dir_all(into)
        .with_context(|| format!("failed to create `{}`", into.display()))?;
    for deb in debs {
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb.path)
            .arg(into)
            .status()
            .context("running dpkg-deb")?;
        ensure!(status.success(), "dpkg-deb -x `{}` failed", deb.path.display());
    }
    Ok(())
}

/// The wall and CPU time `work` takes, the CPU read by `cpu` before and after.
fn timed(cpu: fn() -> Duration, work: impl FnOnce() -> Result<()>) -> Result<Timing> {
    let (cpu_before, started) = (cpu(), Instant::now());
    work()?;
    Ok(Timing { wall: started.elapsed(), cpu: cpu().saturating_sub(cpu_before) })
}

/// User and system time of every thread of this process (`getrusage(2)`).
fn cpu_self() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// User and system time of the reaped children and their reaped
/// descendants (`dpkg-deb` and the `tar` it runs).
fn cpu_children() -> Duration {
    rusage(libc::RUSAGE_CHILDREN)
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`; `who` is one of the
    // two values `getrusage(2)` accepts here.
    let status = unsafe { libc::getrusage(who, &mut usage) };
    if status != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::new(t.tv_sec as u64, 0) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn medians(timings: &[Timing]) -> Timing {
    let mut wall: Vec<Duration> = timings.iter().map(|t| t.wall).collect();
    let mut cpu: Vec<Duration> = timings.iter().map(|t| t.cpu).collect();
    Timing { wall: median(&mut wall), cpu: median(&mut cpu) }
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
