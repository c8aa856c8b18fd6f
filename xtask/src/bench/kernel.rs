//! The kernel smoke benchmark: `rootfs smoke --kernel` of the default spec's tree (the library's `kernel_smoke::run`, initramfs written, booted, checks run, results read) against a bare boot of the same initramfs whose init runs no check, alternated, under this machine's newest `/boot/vmlinuz-*`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::project_root;

/// Runs both `runs` times, alternating, and returns the results' section.
pub fn run(exe: &Path, work: &Path, runs: usize) -> Result<String> {
    let spec = project_root().join(rootfs::spec::DEFAULT_SPEC);
    let built = rootfs::build::build(&rootfs::build::Options::new(&spec, work.join("kernel")))?;
    let kernel = rootfs::spec::KernelSource::Path(newest_kernel()?);
    let checks = rootfs::run::smoke::checks(&built.spec, &built.manifest);
    let options =
        rootfs::run::smoke::Options { jobs: 2, hostname: built.spec.name.clone(), reference: None };
    let load_before = load()?;
    let (mut bare, mut smoke) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        bare.push(rootfs::run::kernel_smoke::bare_boot(&built.out, &kernel, exe)?);
        let started = Instant::now();
        let ran = rootfs::run::kernel_smoke::run(&built.out, &checks, &options, &kernel, exe)?;
        smoke.push(started.elapsed());
        anyhow::ensure!(
            ran.report.failed() == 0,
            "the kernel smoke run failed:\n{}",
            ran.report.table()
        );
    }
    let (bare, smoke) = (median(&mut bare), median(&mut smoke));
    let mut out = String::from("\n## Kernel smoke\n\n");
    let _ = writeln!(
        out,
        "`rootfs smoke --kernel {}` of `{}` ({} checks, 2 jobs, `qemu-system-x86_64 -accel tcg -cpu max -smp 2`), through the library as `cargo xtask bench --only kernel` runs it, against a bare boot of the same initramfs whose init runs no check; medians of {runs} alternated runs, load average {load_before} before and {} after.\n",
        kernel.describe(),
        rootfs::spec::DEFAULT_SPEC,
        checks.len(),
        load()?
    );
    let _ = writeln!(out, "| run | median |\n|---|---|");
    let _ = writeln!(out, "| bare boot | {:.2} s |", bare.as_secs_f64());
    let _ = writeln!(out, "| kernel smoke run | {:.2} s |", smoke.as_secs_f64());
    let _ = writeln!(
        out,
        "\nratio: {:.2}x (target: at most 1.2x)",
        smoke.as_secs_f64() / bare.as_secs_f64()
    );
    Ok(out)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The 1, 5 and 15 minute load averages.
fn load() -> Result<String> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    Ok(text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// `linux-image-amd64`'s newest kernel in `/boot`.
fn newest_kernel() -> Result<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .context("reading /boot")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .collect();
    kernels.sort();
    kernels.pop().context("no /boot/vmlinuz-*: install linux-image-amd64")
}
