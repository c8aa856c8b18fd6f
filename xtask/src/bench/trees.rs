//! The large-tree benchmark: builds made of `[[trees]]` at three sizes (Python's library; with `/usr/include`; with `/usr/share` too), each timed cold and as a no-op, with CPU time and peak memory per entry, so that how the cost grows with size shows.
//!
//! The cold builds hard-link (`--link hard`): copying 900 MB five times
//! would measure the disk, and the copy's own cost is measured against
//! `cp -a` by the build benchmark; what grows here is the tool's cost per
//! entry (planning, hashing from the digest cache, the manifest, the SBOM,
//! the stamp), which the hard links leave alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

use super::timing::{Contender, Measured, Side, Trash, round_robin};
use super::write_file;

/// One size: its name and the folders it copies.
struct Size {
    name: &'static str,
    folders: Vec<PathBuf>,
}

/// What one size measured.
struct Row {
    name: &'static str,
    entries: usize,
    mib: f64,
    cold: Measured,
    noop: Measured,
}

/// Measures each size in turn; returns the section of the results, in
/// Markdown.
pub fn run(exe: &Path, work: &Path, runs: usize) -> Result<String> {
    let mut rows = Vec::new();
    for size in sizes()? {
        eprintln!("== trees: {} ({})", size.name, folder_list(&size.folders));
        rows.push(measure(exe, work, &size, runs)?);
    }
    Ok(render(&rows, runs))
}

/// The three sizes, each holding the one before: Python's standard library
/// (the newest `/usr/lib/python3.N`), then `/usr/include`, then `/usr/share`.
fn sizes() -> Result<Vec<Size>> {
    let mut pythons: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib")
        .context("failed to list `/usr/lib`")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let minor = name.strip_prefix("python3.")?.parse().ok()?;
            e.path().join("os.py").is_file().then(|| (minor, e.path()))
        })
        .collect();
    pythons.sort();
    let (_, python) = pythons.pop().context("no Python standard library in /usr/lib/python3.N")?;
    let include = PathBuf::from("/usr/include");
    let share = PathBuf::from("/usr/share");
    Ok(vec![
        Size { name: "python", folders: vec![python.clone()] },
        Size { name: "python-include", folders: vec![python.clone(), include.clone()] },
        Size { name: "python-include-share", folders: vec![python, include, share] },
    ])
}

fn folder_list(folders: &[PathBuf]) -> String {
    folders.iter().map(|f| format!("`{}`", f.display())).collect::<Vec<_>>().join(", ")
}

fn measure(exe: &Path, work: &Path, size: &Size, runs: usize) -> Result<Row> {
    let dir = work.join(format!("trees-{}", size.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let spec = dir.join("spec.toml");
    let mut text = format!("name = \"{}\"\n", size.name);
    for folder in &size.folders {
        let _ = write!(text, "[[trees]]\nsrc = \"{}\"\n", folder.display());
    }
    write_file(&spec, &text)?;
    let out = dir.join("tree");
    let build = || {
        let mut c = Command::new(exe);
        c.args(["rootfs", "build"]).arg(&spec).arg("--out").arg(&out).args(["--link", "hard"]);
        c
    };
    // The first build, untimed, fills the digest and SHA1 caches.
    let status = build().stdout(Stdio::null()).stderr(Stdio::null()).status();
    ensure!(
        status.context("running the first build")?.success(),
        "the first build of `{}` failed",
        spec.display()
    );
    let manifest =
        rootfs::build::manifest::Manifest::read(&rootfs::build::manifest::path_for(&out))?;
    let (_, bytes) = manifest.file_totals();
    let trash = Trash::new(work.join("trash").join(format!("trees-{}", size.name)));
    let beside = [
        out.clone(),
        rootfs::build::manifest::path_for(&out),
        rootfs::build::sbom::path_for(&out),
        rootfs::build::stamp::path_for(&out),
    ];
    let mut contenders = vec![
        Contender::new("cold build --link hard", Side::Ours, runs, build)
            .prepare(|| trash.clear(&beside.iter().map(PathBuf::as_path).collect::<Vec<_>>())),
        Contender::new("no-op rebuild", Side::Ours, runs, build),
    ];
    round_robin(&mut contenders);
    Ok(Row {
        name: size.name,
        entries: manifest.entries.len(),
        mib: bytes as f64 / (1024.0 * 1024.0),
        cold: contenders[0].measured(),
        noop: contenders[1].measured(),
    })
}

/// The table: per size, wall and CPU time and peak memory of each build,
/// and each per entry.
fn render(rows: &[Row], runs: usize) -> String {
    let mut out = format!(
        "## Large trees\n\nBuilds of `[[trees]]` only, `--link hard`, medians of {runs} runs after a warm-up; CPU is user + system time, which holds on a busy machine where wall time does not.\n\n"
    );
    out.push_str("| size | entries | MiB | what | wall | CPU | CPU per entry | peak RSS | RSS per entry |\n|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        for (what, measured) in [("cold build", &row.cold), ("no-op", &row.noop)] {
            let cells = match measured {
                Ok(t) => {
                    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / row.entries as f64;
                    format!(
                        "{:.3} s | {:.3} s | {:.1} µs | {} MiB | {:.2} KiB",
                        t.median.as_secs_f64(),
                        t.cpu.as_secs_f64(),
                        per(t.cpu),
                        t.max_rss_kib / 1024,
                        t.max_rss_kib as f64 / row.entries as f64
                    )
                }
                Err(e) => format!("{e} | | | |"),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {what} | {cells} |",
                row.name, row.entries, row.mib
            );
        }
    }
    out.push('\n');
    out
}
