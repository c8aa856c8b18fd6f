//! `rootfs smoke` (and `rootfs` alone, which smokes the default spec): its flags and its one call.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use rootfs::command::SmokeOptions;

use super::target::Target;

#[derive(Args, Debug)]
pub struct Smoke {
    #[command(flatten)]
    pub target: Target,
    /// Also write the results as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Checks run at once [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Smoke the tree as it stands, without building or rebuilding it first
    /// (a tree changed or built elsewhere).
    #[arg(long)]
    pub no_build: bool,
    /// Also run this container-structure-test file (schema 2.0.0 or
    /// 1.0.0) against the tree; may be repeated.
    #[arg(long, value_name = "FILE")]
    pub structure_test: Vec<PathBuf>,
    /// Run every check again on this x86-64 CPU level (x86-64-v1, -v2,
    /// -v3) under qemu-x86_64-static; may be repeated, adds to the spec's
    /// `[smoke] cpus`.
    #[arg(long = "cpu", value_name = "LEVEL")]
    pub cpus: Vec<String>,
    /// Run every check again under this kernel, a file or `debian:SUITE`,
    /// booted in qemu-system-x86_64; may be repeated, adds to the spec's
    /// `[smoke] kernels`.
    #[arg(long = "kernel", value_name = "PATH")]
    pub kernels: Vec<String>,
}

impl Smoke {
    pub fn run(self) -> Result<ExitCode> {
        let options = SmokeOptions {
            target: self.target.options(),
            junit: self.junit,
            jobs: self.jobs,
            no_build: self.no_build,
            structure_tests: self.structure_test,
            cpus: self.cpus,
            kernels: self.kernels,
        };
        smoke(&options)
    }
}

/// `rootfs` with no subcommand: the default spec built and smoked.
pub fn default_spec() -> Result<ExitCode> {
    smoke(&SmokeOptions::new(super::target::defaults()))
}

fn smoke(options: &SmokeOptions) -> Result<ExitCode> {
    let report = rootfs::command::smoke(options, &mut rootfs::Terminal)?;
    Ok(if report.failed() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
