//! `cargo xtask bench`: times our resolution and builds against the classic recipe, lddtree, dracut-install, jk_cp and the copy floor on command lists of growing size, our exports against a compressor pipe, our smoke runs against a plain `chroot` loop, a kernel smoke run against a bare boot, a foreign (arm64) smoke run against a plain qemu-user loop, and a two-architecture export against two single ones.
//!
//! Every timing is the median of several runs of a whole process (so start-up
//! costs count), measured with `wait4(2)`, which also gives the peak memory
//! (`ru_maxrss`). The command lists are chosen by fixed rules, so a rerun on
//! the same machine measures the same work. Results go to
//! `target/bench/results.md`, ready for BENCHMARKS.md.
//!
//! `bench/build.rs` measures builds, `bench/export.rs` exports,
//! `bench/smoke.rs` smoke runs, `bench/kernel.rs` kernel smoke runs, `bench/foreign.rs` the foreign smoke run and the multi-architecture export, `bench/trees.rs` builds of large `[[trees]]` at three sizes; `bench/timing.rs` is how each of them times
//! a process, `bench/report.rs` writes the build section of the results.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use crate::{packages, project_root};

mod build;
mod debian;
mod export;
mod foreign;
mod kernel;
mod report;
mod smoke;
mod timing;
mod trees;

/// Settings of one benchmark run.
pub struct Options {
    /// Timed runs per measurement (after one untimed warm-up).
    pub runs: usize,
    /// Only the lists whose name contains this, or only the benchmark of
    /// this name (`export`, `smoke`, `kernel`, `debian`, `foreign-smoke`,
    /// `multiarch-export`, `trees`).
    pub only: Option<String>,
    /// Skip the peers (classic recipe, lddtree, dracut-install, jk_cp).
    pub no_peers: bool,
}

impl Options {
    /// Whether the build benchmark measures the list `name`.
    fn measures_list(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|o| name.contains(o.as_str()))
    }

    /// Whether the benchmark `name` runs: with everything, or alone.
    fn runs_benchmark(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == name)
    }
}

/// One command list.
struct List {
    name: String,
    rule: String,
    programs: Vec<PathBuf>,
}

pub fn run(options: &Options) -> Result<()> {
    let sh = Shell::new().context("starting a shell")?;
    sh.change_dir(project_root());
    if !options.no_peers {
        packages::ensure(&sh, packages::FOR_BENCH)?;
    }
    let exe = release_binary(&sh)?;
    // The benchmarks that call the library in this process (unpacking,
    // resolving, kernel smoke runs) must time optimized code: a debug
    // `cargo xtask bench` hands over to the release binary it just built.
    if cfg!(debug_assertions) {
        let status = std::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .status()
            .with_context(|| format!("running `{}`", exe.display()))?;
        ensure!(status.success(), "the release benchmark run failed");
        return Ok(());
    }
    let work = project_root().join("target/bench");
    remove_leftovers(&work)?;
    let lists = lists(&sh)?;
    let mut report = String::new();
    let measured: Vec<&List> = lists.iter().filter(|l| options.measures_list(&l.name)).collect();
    if !measured.is_empty() {
        report.push_str(&build::run(&exe, &work, &measured, options)?);
    }
    let all = lists.last().context("no list of all executables")?;
    if options.runs_benchmark("trees") {
        report.push_str(&trees::run(&exe, &work, options.runs)?);
    }
    if options.runs_benchmark("export") {
        report.push_str(&export::run(&exe, &work, &all.programs, options.runs)?);
    }
    if options.runs_benchmark("smoke") {
        let spread = lists.iter().find(|l| l.name == "spread-100");
        let smoked: Vec<&List> = spread.into_iter().chain([all]).collect();
        report.push_str(&smoke::run(&exe, &work, &smoked, options.runs)?);
    }
    if options.runs_benchmark("kernel") {
        report.push_str(&kernel::run(&exe, &work, options.runs)?);
    }
    if options.runs_benchmark("debian") {
        report.push_str(&debian::run(&exe, &work, options.runs)?);
    }
    if options.runs_benchmark("foreign-smoke") || options.runs_benchmark("multiarch-export") {
        report.push_str(&foreign::run(&exe, &work, options.runs, options.only.as_deref())?);
    }
    let path = work.join("results.md");
    write_file(&path, &report)?;
    println!("{report}");
    eprintln!("written to {}", path.display());
    Ok(())
}

/// `target/release/xtask`, built now.
fn release_binary(sh: &Shell) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    cmd!(sh, "{cargo} build --release --package xtask")
        .run()
        .context("building the release binary")?;
    Ok(project_root().join("target/release/xtask"))
}

/// Creates `work`, emptied of the trees an interrupted run left aside.
fn remove_leftovers(work: &Path) -> Result<()> {
    std::fs::create_dir_all(work)
        .with_context(|| format!("failed to create `{}`", work.display()))?;
    let _ = std::fs::remove_dir_all(work.join("trash"));
    rustix::fs::sync();
    Ok(())
}

/// Writes a spec named `name` whose commands are `programs` (absolute
/// paths), followed by `tail`; returns its text.
fn write_spec(path: &Path, name: &str, programs: &[PathBuf], tail: &str) -> Result<String> {
    let mut text = format!("name = \"{name}\"\ncommands = [\n");
    for p in programs {
        let _ = writeln!(text, "  \"{}\",", p.display());
    }
    text.push_str("]\n");
    text.push_str(tail);
    write_file(path, &text)?;
    Ok(text)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("failed to write `{}`", path.display()))
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
            if let Ok(rootfs::resolve::elf::FileKind::Elf(object)) =
                rootfs::resolve::elf::read(&path)
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
