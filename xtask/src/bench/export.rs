//! `cargo xtask bench`, exports: the tree of every dynamically linked host program exported as an OCI image, against the floor of the same compressor in a pipe (`tar --sort=name | pigz -n -p2 | sha256sum`, or `zstd -T0 -3`), and an unchanged re-export.
//!
//! The floor reads the tree, compresses it and hashes the result, which an
//! export must do too; an export also hashes the uncompressed layer (its
//! `diff_id`), writes the blob and the small files, and checks the tree is
//! up to date first. Contenders run round-robin (run 1 of each, then run
//! 2, ...) after a sync and a pause, as the other benchmarks do, so that
//! what drifts over the run weighs on both alike.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use super::timing::{Timing, Trash, run_once, sync_and_settle};

/// One thing timed.
struct Contender {
    label: &'static str,
    /// Moves the previous output and the layer cache aside, when it writes.
    fresh: bool,
    command: Command,
    times: Vec<Duration>,
}

/// Runs the export benchmark on `programs`; returns its section of the
/// results, in Markdown.
pub fn run(exe: &Path, work: &Path, programs: &[PathBuf], runs: usize) -> Result<String> {
    let dir = work.join("export");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let spec = dir.join("spec.toml");
    super::write_spec(&spec, "export-all", programs, "")?;
    let tree = dir.join("tree");
    let export = |compression: &str, output: &Path| {
        let mut c = Command::new(exe);
        c.args(["rootfs", "export"]).arg(&spec).arg("--out").arg(&tree);
        c.args(["--format", "oci", "--compression", compression, "--output"]).arg(output);
        c
    };
    let floor = |compressor: &str| floor(&tree, compressor);
    // The tree, once, untimed; its size for the table.
    let status = export("gzip", &dir.join("warm.oci"))
        .stdout(Stdio::null())
        .status()
        .context("building the tree")?;
    ensure!(status.success(), "the first export failed");
    let manifest =
        rootfs::build::manifest::Manifest::read(&rootfs::build::manifest::path_for(&tree))?;
    let (files, bytes) = manifest.file_totals();

    let contender = |label, fresh, command| Contender { label, fresh, command, times: Vec::new() };
    let mut contenders = vec![
        contender("floor: tar \\| pigz -n -p2 \\| sha256sum", false, floor("pigz -n -p2")),
        contender(
            "export --compression gzip (nothing cached)",
            true,
            export("gzip", &dir.join("gzip.oci")),
        ),
        contender("floor: tar \\| zstd -T0 -3 \\| sha256sum", false, floor("zstd -q -T0 -3")),
        contender(
            "export --compression zstd (nothing cached)",
            true,
            export("zstd", &dir.join("zstd.oci")),
        ),
    ];
    let trash_dir = work.join("trash/export");
    let outputs =
        [dir.join("gzip.oci"), dir.join("zstd.oci"), rootfs::export::layer_cache_path(&tree)];
    time_rounds(&mut contenders, &Trash::new(trash_dir.clone()), &outputs, runs)?;
    // An unchanged re-export: the layout and the cache are in place.
    let kept = dir.join("kept.oci");
    time(&mut export("gzip", &kept)).context("the first export to keep")?;
    let mut unchanged = contender("unchanged re-export (gzip)", false, export("gzip", &kept));
    for _ in 0..=runs {
        let elapsed = time(&mut unchanged.command)?;
        unchanged.times.push(elapsed);
    }
    unchanged.times.remove(0);
    let _ = std::fs::remove_dir_all(&trash_dir);
    Ok(render(&contenders, &unchanged, programs.len(), files, bytes, runs))
}

/// The floor: the tree in tar, compressed by `compressor`, hashed.
fn floor(tree: &Path, compressor: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!(
            "set -o pipefail; tar --sort=name -C \"$0\" -cf - . | {compressor} | sha256sum"
        ))
        .arg(tree);
    c
}

/// Times every contender `runs` times after one warm-up round, in turn;
/// one that writes starts with its outputs moved aside.
fn time_rounds(
    contenders: &mut [Contender],
    trash: &Trash,
    outputs: &[PathBuf; 3],
    runs: usize,
) -> Result<()> {
    for round in 0..=runs {
        for c in contenders.iter_mut() {
            if c.fresh {
                let [gzip, zstd, layers] = outputs;
                trash.clear(&[gzip, zstd, layers]);
            } else {
                sync_and_settle();
            }
            let elapsed = time(&mut c.command).with_context(|| c.label.to_string())?;
            if round > 0 {
                c.times.push(elapsed);
            }
        }
    }
    Ok(())
}

/// The wall time of one run of `command`, which must succeed.
fn time(command: &mut Command) -> Result<Duration> {
    Ok(run_once(command, false)?.wall)
}

/// Median, min and max, in seconds.
fn stats(times: &[Duration]) -> (f64, f64, f64) {
    Timing::of(times).map_or((0.0, 0.0, 0.0), |t| {
        (t.median.as_secs_f64(), t.min.as_secs_f64(), t.max.as_secs_f64())
    })
}

fn render(
    contenders: &[Contender],
    unchanged: &Contender,
    programs: usize,
    files: usize,
    bytes: u64,
    runs: usize,
) -> String {
    let mut out = String::new();
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let _ =
        writeln!(out, "### export: OCI image of all-{programs} ({files} files, {mib:.1} MiB)\n");
    let _ = writeln!(
        out,
        "Medians of {runs} runs (after one warm-up), wall time of the whole process.\n"
    );
    let _ = writeln!(out, "| what | median | min–max |\n|---|---|---|");
    for c in contenders.iter().chain([unchanged]) {
        let (median, min, max) = stats(&c.times);
        let _ = writeln!(out, "| {} | {median:.3} s | {min:.3}–{max:.3} s |", c.label);
    }
    let median = |i: usize| stats(&contenders[i].times).0;
    let _ = writeln!(out);
    let _ =
        writeln!(out, "- gzip export / floor: {:.2}x (target at most 1.1x)", median(1) / median(0));
    let _ =
        writeln!(out, "- zstd export / floor: {:.2}x (target at most 1.1x)", median(3) / median(2));
    let _ = writeln!(
        out,
        "- unchanged re-export: {:.0} ms (target under 100 ms)\n",
        stats(&unchanged.times).0 * 1000.0
    );
    out
}
