//! One check's results across machines: the smoke run again on each CPU level (`cpu_smoke`) and under each kernel (`kernel_smoke`), and the table with a column per run.

use std::fmt::Write;
use std::path::Path;

use anyhow::Result;

use crate::resolve::elf::IsaLevel;
use crate::run::smoke::{Check, Options, Outcome, Report};
use crate::spec::KernelSource;

/// One run besides the host's, named for the report.
#[derive(Debug)]
pub struct Elsewhere {
    /// `x86-64-v1 (qemu-x86_64-static -cpu qemu64)`, `Linux 6.1.0-18-amd64 (debian:bookworm)`.
    pub name: String,
    /// The short column heading: `x86-64-v1`, `debian:bookworm`.
    pub column: String,
    pub report: Report,
}

/// Runs `checks` again on each of `cpus` and under each of `kernels`
/// (booted with `agent` as init), in that order.
pub fn run(
    tree: &Path,
    checks: &[Check],
    options: &Options,
    cpus: &[IsaLevel],
    kernels: &[KernelSource],
    agent: &Path,
) -> Result<Vec<Elsewhere>> {
    let mut runs = Vec::new();
    for level in cpus {
        let emulator = crate::run::cpu_smoke::Emulator::prepare(
            *level,
            &crate::run::cpu_smoke::loader_of(tree),
        )?;
        let report = crate::run::cpu_smoke::run(tree, checks, options, &emulator)?;
        runs.push(Elsewhere {
            name: emulator.describe(),
            column: level.name().to_string(),
            report,
        });
    }
    for kernel in kernels {
        let ran = crate::run::kernel_smoke::run(tree, checks, options, kernel, agent)?;
        runs.push(Elsewhere {
            name: ran.describe(),
            column: kernel.describe(),
            report: ran.report,
        });
    }
    Ok(runs)
}

/// Each check's result on the host and in every other run, one column
/// each.
pub fn matrix(host: &Report, others: &[Elsewhere]) -> String {
    let width =
        host.results.iter().map(|r| r.check.name.chars().count()).max().unwrap_or(5).clamp(5, 48);
    let mut columns = vec!["host".to_string()];
    columns.extend(others.iter().map(|o| o.column.clone()));
    let mut out = format!("{:<width$}", "check");
    for column in &columns {
        let _ = write!(out, "  {column:<w$}", w = column.len().max(9));
    }
    let mut out = out.trim_end().to_string();
    out.push('\n');
    for (i, result) in host.results.iter().enumerate() {
        let name: String = result.check.name.chars().take(width).collect();
        let mut line = format!("{name:<width$}");
        let cells = std::iter::once(host).chain(others.iter().map(|o| &o.report));
        for (report, column) in cells.zip(&columns) {
            let word = report.results.get(i).map_or("-", |r| word(&r.outcome));
            let _ = write!(line, "  {word:<w$}", w = column.len().max(9));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::Fail(_) => "FAIL",
        Outcome::TimedOut => "TIMEOUT",
        Outcome::Error(_) => "ERROR",
    }
}
