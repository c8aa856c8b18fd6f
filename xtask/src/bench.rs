//! `cargo xtask bench`: times our resolution and builds against the classic recipe, lddtree, dracut-install, jk_cp and the copy floor, on command lists of growing size.
//!
//! Every timing is the median of several runs of a whole process (so start-up
//! costs count), measured with `wait4(2)`, which also gives the peak memory
//! (`ru_maxrss`). The command lists are chosen by fixed rules, so a rerun on
//! the same machine measures the same work. Results go to
//! `target/bench/results.md`, ready for BENCHMARKS.md.

use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use xshell::{Shell, cmd};

use crate::{packages, project_root};

/// Settings of one benchmark run.
pub struct Options {
    /// Timed runs per measurement (after one untimed warm-up).
    pub runs: usize,
    /// Only the lists whose name contains this.
    pub only: Option<String>,
    /// Skip the peers (classic recipe, lddtree, dracut-install, jk_cp).
    pub no_peers: bool,
}

/// One command list.
struct List {
    name: String,
    rule: String,
    programs: Vec<PathBuf>,
}

/// Median wall time and peak memory of some runs.
#[derive(Clone, Copy)]
struct Timing {
    median: Duration,
    max_rss_kib: u64,
}

/// The outcome of one measurement: a timing, or why it could not be taken.
type Measured = std::result::Result<Timing, String>;

struct Row {
    list: String,
    programs: usize,
    files: usize,
    mib: f64,
    ours: Vec<(&'static str, Measured)>,
    peers: Vec<(&'static str, Measured)>,
    /// Programs that fail to load inside each tool's tree (`None`: not
    /// checked, which needs root for chroot).
    broken: Vec<(&'static str, Option<usize>)>,
}

pub fn run(options: &Options) -> Result<()> {
    let sh = Shell::new().context("starting a shell")?;
    let root = project_root();
    sh.change_dir(&root);
    if !options.no_peers {
        packages::ensure(&sh, packages::FOR_BENCH)?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    cmd!(sh, "{cargo} build --release --package xtask")
        .run()
        .context("building the release binary")?;
    let exe = root.join("target/release/xtask");
    let work = root.join("target/bench");
    std::fs::create_dir_all(&work)
        .with_context(|| format!("failed to create `{}`", work.display()))?;

    // Trees left by an interrupted run.
    let _ = std::fs::remove_dir_all(work.join("trash"));
    rustix::fs::sync();
    let lists = lists(&sh)?;
    let mut rows = Vec::new();
    for list in
        lists.iter().filter(|l| options.only.as_ref().is_none_or(|o| l.name.contains(o.as_str())))
    {
        eprintln!("== {} ({} programs: {})", list.name, list.programs.len(), list.rule);
        rows.push(measure(&sh, &exe, &work, list, options)?);
    }
    // Deleting the trees moved aside is left to the end, so that it cannot
    // slow any measurement down.
    let trash = work.join("trash");
    std::fs::remove_dir_all(&trash)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .with_context(|| format!("failed to remove `{}`", trash.display()))?;
    let report = render(&rows, options.runs);
    let path = work.join("results.md");
    std::fs::write(&path, &report)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    println!("{report}");
    eprintln!("written to {}", path.display());
    Ok(())
}

/// The command lists, by fixed rules.
fn lists(sh: &Shell) -> Result<Vec<List>> {
    let all = dynamic_executables(&[Path::new("/usr/bin"), Path::new("/usr/sbin")])?;
    ensure!(all.len() >= 100, "only {} dynamically linked executables found", all.len());
    let default = rootfs::spec::load(&project_root().join(rootfs::spec::DEFAULT_SPEC))?;
    let classic: Vec<PathBuf> = default
        .commands
        .iter()
        .map(|c| which(&c.value).with_context(|| format!("`{}` is not on PATH", c.value)))
        .collect::<Result<_>>()?;
    let coreutils_files =
        cmd!(sh, "dpkg -L coreutils").quiet().read().context("listing coreutils")?;
    let mut coreutils: Vec<PathBuf> = coreutils_files
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.parent() == Some(Path::new("/usr/bin")) && all.contains(p))
        .collect();
    coreutils.sort();
    coreutils.truncate(30);
    let step = all.len() / 100;
    let hundred: Vec<PathBuf> = all.iter().step_by(step).take(100).cloned().collect();
    Ok(vec![
        List { name: "classic-9".into(), rule: "the commands of rootfs-spec/default.toml".into(), programs: classic },
        List {
            name: "coreutils-30".into(),
            rule: "the first 30, sorted, of coreutils' dynamically linked programs in /usr/bin".into(),
            programs: coreutils,
        },
        List {
            name: "spread-100".into(),
            rule: format!("every {step}th of the sorted dynamically linked executables of /usr/bin and /usr/sbin"),
            programs: hundred,
        },
        List {
            name: format!("all-{}", all.len()),
            rule: "every dynamically linked executable of /usr/bin and /usr/sbin (regular files with PT_INTERP)".into(),
            programs: all,
        },
    ])
}

fn which(name: &str) -> Option<PathBuf> {
    rootfs::resolve::DEFAULT_PATH.iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Regular files (symlinks not followed) with a `PT_INTERP`, sorted.
fn dynamic_executables(dirs: &[&Path]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("failed to list `{}`", dir.display()))?;
        for entry in entries {
            let path = entry.with_context(|| format!("failed to list `{}`", dir.display()))?.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if !meta.is_file() {
                continue;
            }
            if let Ok(rootfs::elf::FileKind::Elf(object)) = rootfs::elf::read(&path)
                && object.interp.is_some()
                && object.malformed.is_none()
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn measure(sh: &Shell, exe: &Path, work: &Path, list: &List, options: &Options) -> Result<Row> {
    let dir = work.join(&list.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let spec = dir.join("spec.toml");
    let mut text = format!("name = \"{}\"\ncommands = [\n", list.name);
    for p in &list.programs {
        let _ = writeln!(text, "  \"{}\",", p.display());
    }
    text.push_str("]\n");
    std::fs::write(&spec, &text)
        .with_context(|| format!("failed to write `{}`", spec.display()))?;
    let programs = dir.join("programs.txt");
    let lines: String = list.programs.iter().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(&programs, lines)
        .with_context(|| format!("failed to write `{}`", programs.display()))?;
    let out = dir.join("tree");
    let manifest = rootfs::manifest::path_for(&out);
    let stamp = rootfs::stamp::path_for(&out);
    let digests = rootfs::digest_cache::path_for(&out);
    // Outputs of earlier runs are moved aside, not deleted, and the disk is
    // synced, before each timed run: on ext4, creating files right after
    // deleting thousands makes the inode allocator skip the recently freed
    // ones at a cost that would be charged to whoever runs next, and dirty
    // pages of the previous run would be written back during this one.
    let trash = work.join("trash").join(&list.name);
    let counter = std::cell::Cell::new(0u32);
    let clean = |paths: &[&Path]| {
        let _ = std::fs::create_dir_all(&trash);
        for p in paths {
            if std::fs::symlink_metadata(p).is_ok() {
                counter.set(counter.get() + 1);
                let _ = std::fs::rename(p, trash.join(counter.get().to_string()));
            }
        }
        rustix::fs::sync();
    };
    let runs = options.runs;
    let build = |extra: &[&str]| -> Command {
        let mut c = Command::new(exe);
        c.args(["rootfs", "build"]).arg(&spec).arg("--out").arg(&out).args(extra);
        c
    };

    let mut ours: Vec<(&'static str, Measured)> = Vec::new();
    ours.push(("resolution", time(runs, || {}, || deps_command(exe, &list.programs), true)));
    ours.push((
        "first build (nothing cached)",
        time(runs, || clean(&[&out, &manifest, &stamp, &digests]), || build(&[]), false),
    ));
    ours.push((
        "cold build",
        time(runs, || clean(&[&out, &manifest, &stamp]), || build(&[]), false),
    ));
    ours.push(("no-op rebuild", time(runs, || {}, || build(&[]), false)));
    // One input changed: the spec gains a comment, so everything is planned
    // and written again (digests of unchanged host files are reused).
    let mut n = 0;
    ours.push((
        "one input changed",
        time(
            runs,
            || {
                n += 1;
                let _ = std::fs::write(&spec, format!("{text}# change {n}\n"));
            },
            || build(&[]),
            false,
        ),
    ));
    let built = rootfs::manifest::Manifest::read(&manifest)?;
    let files: Vec<&rootfs::manifest::ManifestEntry> =
        built.entries.iter().filter(|e| e.kind == "file").collect();
    let bytes: u64 = files.iter().filter_map(|e| e.size).sum();
    ours.push((
        "cold build --link hard",
        time(runs, || clean(&[&out, &manifest, &stamp]), || build(&["--link", "hard"]), false),
    ));
    let _ = std::fs::write(&spec, &text);

    // The floor: copying exactly the files our build copies, in one `cp`.
    let sources: String = files
        .iter()
        .filter_map(|e| e.source.as_ref())
        .map(|s| format!("{}\n", s.display()))
        .collect();
    let copied = dir.join("copied.txt");
    std::fs::write(&copied, sources)
        .with_context(|| format!("failed to write `{}`", copied.display()))?;
    let bench_dir = project_root().join("bench");
    let dest = dir.join("peer");
    let script = |name: &str, list: &Path| -> Command {
        let mut c = Command::new(bench_dir.join(name));
        c.arg(list).arg(&dest);
        c
    };
    let mut broken = vec![("our build", broken_programs(&out, &list.programs))];
    let mut peers: Vec<(&'static str, Measured)> = Vec::new();
    peers.push((
        "copy floor (cp -a)",
        time(runs, || clean(&[&dest]), || script("copy-floor.sh", &copied), false),
    ));
    peers.push((
        "hard-link floor (cp -al)",
        time(runs, || clean(&[&dest]), || script("hardlink-floor.sh", &copied), false),
    ));
    if !options.no_peers {
        // Resolution alone, the way the classic recipe and lddtree do it.
        for (label, name) in [
            ("resolution: ldd per program", "ldd-each.sh"),
            ("resolution: lddtree -l", "lddtree-list.sh"),
        ] {
            let peer_runs = if list.programs.len() > 200 { runs.min(3) } else { runs };
            peers.push((label, time(peer_runs, || {}, || script(name, &programs), false)));
        }
        for (label, name) in [
            ("classic recipe (ldd + cp)", "classic.sh"),
            ("lddtree --copy-to-tree", "lddtree.sh"),
            ("dracut-install", "dracut-install.sh"),
            ("jk_cp", "jk_cp.sh"),
        ] {
            // The slow peers get fewer runs on the big list.
            let peer_runs = if list.programs.len() > 200 { runs.min(3) } else { runs };
            peers.push((
                label,
                time(peer_runs, || clean(&[&dest]), || script(name, &programs), false),
            ));
            broken.push((label, broken_programs(&dest, &list.programs)));
        }
    }
    clean(&[&dest]);
    let _ = sh;
    Ok(Row {
        list: list.name.clone(),
        programs: list.programs.len(),
        files: files.len(),
        mib: bytes as f64 / (1024.0 * 1024.0),
        ours,
        peers,
        broken,
    })
}

/// How many programs fail to load inside `tree`, asked of the tree's own
/// loader in trace mode under `chroot(2)` (nothing of the program runs):
/// a non-zero exit or a library "not found".
fn broken_programs(tree: &Path, programs: &[PathBuf]) -> Option<usize> {
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() || !tree.is_dir() {
        return None;
    }
    let mut broken = 0;
    for program in programs {
        let root = tree.to_path_buf();
        let mut c = Command::new("/lib64/ld-linux-x86-64.so.2");
        c.arg("--list").arg(program).env_clear().stderr(std::process::Stdio::null());
        // SAFETY: chroot and chdir are async-signal-safe system calls.
        unsafe {
            c.pre_exec(move || {
                rustix::process::chroot(&root)?;
                rustix::process::chdir("/")?;
                Ok(())
            });
        }
        let ok = c.output().is_ok_and(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("not found")
        });
        broken += usize::from(!ok);
    }
    Some(broken)
}

fn deps_command(exe: &Path, programs: &[PathBuf]) -> Command {
    let mut c = Command::new(exe);
    c.args(["rootfs", "deps", "--json"]).args(programs);
    c
}

/// Runs `command` once untimed, then `runs` times, each after `prepare`;
/// the median wall time and the largest peak RSS. A non-zero exit is
/// accepted only when `allow_failure` (`deps` exits 1 when a host program
/// misses a library).
fn time(
    runs: usize,
    mut prepare: impl FnMut(),
    command: impl Fn() -> Command,
    allow_failure: bool,
) -> Measured {
    let mut times = Vec::new();
    let mut max_rss_kib = 0;
    for i in 0..=runs {
        prepare();
        let mut c = command();
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        let started = Instant::now();
        let child = c.spawn().map_err(|e| format!("cannot start: {e}"))?;
        let (status, rss, stderr) = wait_with_rusage(child).map_err(|e| format!("{e:#}"))?;
        let elapsed = started.elapsed();
        if !(status.success() || allow_failure && status.code() == Some(1)) {
            let last = stderr.lines().last().unwrap_or("").to_string();
            return Err(format!("failed ({status}): {last}"));
        }
        if i > 0 {
            times.push(elapsed);
            max_rss_kib = max_rss_kib.max(rss);
        }
    }
    times.sort();
    Ok(Timing { median: times[times.len() / 2], max_rss_kib })
}

/// Waits for a child with `wait4(2)` to get its resource usage.
fn wait_with_rusage(
    mut child: std::process::Child,
) -> Result<(std::process::ExitStatus, u64, String)> {
    use std::io::Read;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our child, not yet reaped.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    if pid < 0 {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    Ok((std::process::ExitStatus::from_raw(status), usage.ru_maxrss as u64, stderr))
}

fn render(rows: &[Row], runs: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Medians of {runs} runs (after one warm-up), wall time of the whole process; peak RSS in MiB.\n"
    );
    let fmt = |m: &Measured| match m {
        Ok(t) => format!("{:.3} s", t.median.as_secs_f64()),
        Err(e) => format!("({e})"),
    };
    for row in rows {
        let _ = writeln!(
            out,
            "### {} ({} programs, {} files, {:.1} MiB)\n",
            row.list, row.programs, row.files, row.mib
        );
        let _ = writeln!(out, "| what | median | peak RSS |\n|---|---|---|");
        for (label, m) in row.ours.iter().chain(&row.peers) {
            let rss = m
                .as_ref()
                .map(|t| format!("{:.0}", t.max_rss_kib as f64 / 1024.0))
                .unwrap_or_default();
            let _ = writeln!(out, "| {label} | {} | {rss} |", fmt(m));
        }
        let get = |list: &[(&'static str, Measured)], name: &str| {
            list.iter()
                .find(|(l, _)| *l == name)
                .and_then(|(_, m)| m.as_ref().ok())
                .map(|t| t.median.as_secs_f64())
        };
        let _ = writeln!(out);
        for (label, count) in &row.broken {
            if let Some(count) = count {
                let _ = writeln!(
                    out,
                    "- {label}: {count} of {} programs fail to load inside the tree",
                    row.programs
                );
            }
        }
        if let Some(ours) = get(&row.ours, "resolution") {
            for peer in ["resolution: ldd per program", "resolution: lddtree -l"] {
                if let Some(t) = get(&row.peers, peer) {
                    let _ = writeln!(
                        out,
                        "- {} / our resolution: {:.0}x",
                        peer.trim_start_matches("resolution: "),
                        t / ours
                    );
                }
            }
        }
        let cold = get(&row.ours, "cold build");
        let floor = get(&row.peers, "copy floor (cp -a)");
        let fastest_peer = row
            .peers
            .iter()
            .filter(|(l, _)| !l.contains("floor") && !l.starts_with("resolution"))
            .filter_map(|(l, m)| m.as_ref().ok().map(|t| (*l, t.median.as_secs_f64())))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let _ = writeln!(out);
        if let (Some(cold), Some(floor)) = (cold, floor) {
            let _ = writeln!(out, "- cold build / copy floor: {:.2}x", cold / floor);
        }
        if let (Some(cold), Some((peer, t))) = (cold, fastest_peer) {
            let _ = writeln!(out, "- fastest peer ({peer}) / cold build: {:.1}x", t / cold);
        }
        let _ = writeln!(out);
    }
    out
}
