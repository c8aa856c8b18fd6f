//! `rootfs trace`: the tree built when missing or stale, then its checks (or one command, opened as `run` opens it) traced on the sysroot, what they used that the tree lacks said, and the fragment written when asked.

use std::path::PathBuf;

use anyhow::Result;

use super::Console;
use super::target::{self, Target};
use crate::run::devenv::Request;
use crate::run::findings::{self, Report};

/// What `rootfs trace` takes.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    pub target: Target,
    /// Trace this command instead of the spec's checks.
    pub command: Vec<String>,
    /// For `command`: what it opens, as `run` takes it (binds, working
    /// directory, environment, network).
    pub request: Request,
    /// Checks traced at once; `None`: the number of cores.
    pub jobs: Option<usize>,
    /// Write what the tree lacks as a spec fragment here.
    pub write: Option<PathBuf>,
    /// Write the fragment even when a check fails on the sysroot.
    pub keep_going: bool,
}

/// Traces the checks (or the command) and says what the tree lacks; the
/// report's text is said on the console too.
pub fn trace(options: &TraceOptions, console: &mut dyn Console) -> Result<Report> {
    let build_options = target::build_options(&options.target, console)?;
    let built = target::built(&options.target, &build_options, console)?;
    let run = findings::Options {
        sysroot: build_options.sysroot.clone(),
        command: options.command.clone(),
        request: options.request.clone(),
        jobs: target::jobs(options.jobs),
        write: options.write.clone(),
        keep_going: options.keep_going,
    };
    let report = findings::trace(&built, &run)?;
    console.out(&report.stdout);
    console.err(&report.stderr);
    Ok(report)
}
