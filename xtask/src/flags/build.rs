//! `rootfs build` and `rootfs portability`: their flags and their one call each.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use rootfs::command::{BuildOptions, PortabilityOptions};

use super::target::Target;

#[derive(Args, Debug)]
pub struct Build {
    #[command(flatten)]
    pub target: Target,
    /// Rebuild even when nothing changed.
    #[arg(long)]
    pub force: bool,
}

impl Build {
    pub fn run(self) -> Result<ExitCode> {
        let options = BuildOptions { target: self.target.options(), force: self.force };
        rootfs::command::build(&options, &mut rootfs::Terminal)?;
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct PortabilityArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print the whole report as JSON, every object named.
    #[arg(long)]
    pub json: bool,
}

impl PortabilityArgs {
    pub fn run(self) -> Result<ExitCode> {
        let options = PortabilityOptions { target: self.target.options(), json: self.json };
        rootfs::command::portability(&options, &mut rootfs::Terminal)?;
        Ok(ExitCode::SUCCESS)
    }
}
