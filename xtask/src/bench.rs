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

mod export;

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
    min: Duration,
    max: Duration,
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
    let mut report = render(&rows, options.runs);
    // The export benchmark, on the all-N list: with the others, or alone
    // with `--only export`.
    if options.only.as_deref().is_none_or(|o| o == "export") {
        let all = lists.last().context("no list of all executables")?;
        report.push_str(&export::run(&exe, &work, &all.programs, options.runs)?);
    }
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

/// One thing timed: how to prepare a run and which process to time.
struct Contender<'a> {
    label: &'static str,
    ours: bool,
    runs: usize,
    prepare: Box<dyn FnMut() + 'a>,
    command: Box<dyn Fn() -> Command + 'a>,
    /// `deps` exits 1 when a host program misses a library.
    allow_failure: bool,
    /// Where its tree is, to check afterwards which programs load.
    tree: Option<PathBuf>,
    times: Vec<Duration>,
    max_rss_kib: u64,
    error: Option<String>,
}

fn contender<'a>(
    label: &'static str,
    ours: bool,
    runs: usize,
    prepare: Box<dyn FnMut() + 'a>,
    command: Box<dyn Fn() -> Command + 'a>,
) -> Contender<'a> {
    Contender {
        label,
        ours,
        runs,
        prepare,
        command,
        allow_failure: false,
        tree: None,
        times: Vec::new(),
        max_rss_kib: 0,
        error: None,
    }
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
    let build = |extra: &[&str]| -> Command {
        let mut c = Command::new(exe);
        c.args(["rootfs", "build"]).arg(&spec).arg("--out").arg(&out).args(extra);
        c
    };

    // One build first, untimed, for the list of files it copies: the floor
    // copies exactly those.
    let status = build(&[])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running the first build")?;
    ensure!(status.success(), "the first build of `{}` failed", list.name);
    let built = rootfs::manifest::Manifest::read(&manifest)?;
    let files: Vec<&rootfs::manifest::ManifestEntry> =
        built.entries.iter().filter(|e| e.kind == rootfs::manifest::EntryType::File).collect();
    let bytes: u64 = files.iter().filter_map(|e| e.size).sum();
    let sources: String = files
        .iter()
        .filter_map(|e| e.source.as_ref())
        .map(|s| format!("{}\n", s.display()))
        .collect();
    let copied = dir.join("copied.txt");
    std::fs::write(&copied, sources)
        .with_context(|| format!("failed to write `{}`", copied.display()))?;

    // Outputs of earlier runs are moved aside, not deleted, and the disk is
    // synced, before each timed run: on ext4, creating files within a minute
    // of deleting thousands makes the inode allocator skip the recently
    // freed ones, a cost that would be charged to whoever runs next, and
    // dirty pages of the previous run would be written back during this one.
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
        settle();
    };
    let clean = &clean;
    let runs = options.runs;
    // The slow peers get fewer runs on the big list.
    let slow_runs = if list.programs.len() > 200 { runs.min(3) } else { runs };
    let (out_ref, manifest_ref, stamp_ref, digests_ref) = (&out, &manifest, &stamp, &digests);
    let mut contenders = vec![
        Contender {
            allow_failure: true,
            ..contender(
                "resolution",
                true,
                runs,
                Box::new(|| {}),
                Box::new(|| deps_command(exe, &list.programs)),
            )
        },
        contender(
            "first build (nothing cached)",
            true,
            runs,
            Box::new(move || clean(&[out_ref, manifest_ref, stamp_ref, digests_ref])),
            Box::new(move || build(&[])),
        ),
        contender(
            "cold build",
            true,
            runs,
            Box::new(move || clean(&[out_ref, manifest_ref, stamp_ref])),
            Box::new(move || build(&[])),
        ),
        contender("no-op rebuild", true, runs, Box::new(|| {}), Box::new(move || build(&[]))),
    ];
    // One input changed: the spec gains a comment, so everything is planned
    // and written again (digests of unchanged host files are reused).
    let mut n = 0;
    let (spec_ref, text_ref) = (&spec, &text);
    contenders.push(contender(
        "one input changed",
        true,
        runs,
        Box::new(move || {
            n += 1;
            let _ = std::fs::write(spec_ref, format!("{text_ref}# change {n}\n"));
        }),
        Box::new(move || build(&[])),
    ));
    contenders.push(Contender {
        tree: Some(out.clone()),
        ..contender(
            "cold build --link hard",
            true,
            runs,
            Box::new(move || {
                let _ = std::fs::write(spec_ref, text_ref);
                clean(&[out_ref, manifest_ref, stamp_ref]);
            }),
            Box::new(move || build(&["--link", "hard"])),
        )
    });
    let bench_dir = project_root().join("bench");
    let mut peer =
        |label: &'static str, script: &str, input: &Path, runs: usize, makes_tree: bool| {
            let dest = dir.join(format!("peer-{}", script.trim_end_matches(".sh")));
            let script = bench_dir.join(script);
            let input = input.to_path_buf();
            let dest_for_prepare = dest.clone();
            let prepare: Box<dyn FnMut()> = if makes_tree {
                Box::new(move || clean(&[&dest_for_prepare]))
            } else {
                Box::new(|| {})
            };
            let dest_for_command = dest.clone();
            let command = Box::new(move || {
                let mut c = Command::new(&script);
                c.arg(&input).arg(&dest_for_command);
                c
            });
            contenders.push(Contender {
                tree: makes_tree.then_some(dest),
                ..contender(label, false, runs, prepare, command)
            });
        };
    peer("copy floor (cp -a)", "copy-floor.sh", &copied, runs, false);
    peer("hard-link floor (cp -al)", "hardlink-floor.sh", &copied, runs, false);
    if !options.no_peers {
        peer("resolution: ldd per program", "ldd-each.sh", &programs, slow_runs, false);
        peer("resolution: lddtree -l", "lddtree-list.sh", &programs, slow_runs, false);
        peer("classic recipe (ldd + cp)", "classic.sh", &programs, slow_runs, true);
        peer("lddtree --copy-to-tree", "lddtree.sh", &programs, slow_runs, true);
        peer("dracut-install", "dracut-install.sh", &programs, slow_runs, true);
        peer("jk_cp", "jk_cp.sh", &programs, slow_runs, true);
    }
    // The floors write trees too, to be moved aside like the others.
    for c in contenders.iter_mut().filter(|c| c.label.contains("floor")) {
        let dest = dir.join(if c.label.contains("hard") {
            "peer-hardlink-floor"
        } else {
            "peer-copy-floor"
        });
        let dest_for_prepare = dest.clone();
        c.prepare = Box::new(move || clean(&[&dest_for_prepare]));
    }

    // Round robin: run 1 of every contender, then run 2, and so on, so that
    // whatever drifts over the run (the page cache, the files moved aside)
    // weighs on all of them alike. Round 0 is the untimed warm-up.
    let rounds = contenders.iter().map(|c| c.runs).max().unwrap_or(0);
    for round in 0..=rounds {
        for c in contenders.iter_mut().filter(|c| round <= c.runs && c.error.is_none()) {
            (c.prepare)();
            match run_once(&mut (c.command)(), c.allow_failure) {
                Ok((elapsed, rss)) if round > 0 => {
                    c.times.push(elapsed);
                    c.max_rss_kib = c.max_rss_kib.max(rss);
                }
                Ok(_) => {}
                Err(e) => c.error = Some(e),
            }
        }
    }
    let broken: Vec<(&'static str, Option<usize>)> = contenders
        .iter()
        .filter_map(|c| {
            c.tree.as_ref().map(|t| {
                (if c.ours { "our build" } else { c.label }, broken_programs(t, &list.programs))
            })
        })
        .collect();
    let measured = |c: &Contender| -> Measured {
        if let Some(e) = &c.error {
            return Err(e.clone());
        }
        let mut times = c.times.clone();
        times.sort();
        Ok(Timing {
            median: times[times.len() / 2],
            min: times[0],
            max: times[times.len() - 1],
            max_rss_kib: c.max_rss_kib,
        })
    };
    let ours = contenders.iter().filter(|c| c.ours).map(|c| (c.label, measured(c))).collect();
    let peers = contenders.iter().filter(|c| !c.ours).map(|c| (c.label, measured(c))).collect();
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

fn deps_command(exe: &Path, programs: &[PathBuf]) -> Command {
    let mut c = Command::new(exe);
    c.args(["rootfs", "deps", "--json"]).args(programs);
    c
}

/// Waits for the disk to go quiet after a sync: on a virtual disk with a
/// rate limit (as on this machine), the writes of the previous run would
/// otherwise slow down the next one, whoever it is.
fn settle() {
    std::thread::sleep(Duration::from_secs(3));
}

/// Runs a command once and returns its wall time and peak RSS.
fn run_once(c: &mut Command, allow_failure: bool) -> std::result::Result<(Duration, u64), String> {
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let child = c.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let (status, rss, stderr) = wait_with_rusage(child).map_err(|e| format!("{e:#}"))?;
    let elapsed = started.elapsed();
    if !(status.success() || allow_failure && status.code() == Some(1)) {
        let last = stderr.lines().last().unwrap_or("").to_string();
        return Err(format!("failed ({status}): {last}"));
    }
    Ok((elapsed, rss))
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
        Ok(t) => format!(
            "{:.3} s | {:.3}–{:.3} s",
            t.median.as_secs_f64(),
            t.min.as_secs_f64(),
            t.max.as_secs_f64()
        ),
        Err(e) => format!("({e}) | "),
    };
    for row in rows {
        let _ = writeln!(
            out,
            "### {} ({} programs, {} files, {:.1} MiB)\n",
            row.list, row.programs, row.files, row.mib
        );
        let _ = writeln!(out, "| what | median | min–max | peak RSS |\n|---|---|---|---|");
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
