//! `rootfs deps`: the files glibc's loader would open for each program, resolved in a sysroot without running anything, said as text or JSON.

use anyhow::Result;

use super::Console;
use crate::resolve::deps::Report;

/// What `rootfs deps` takes.
#[derive(Clone, Debug)]
pub struct DepsOptions {
    /// The sysroot and the `LD_LIBRARY_PATH` stand-in.
    pub resolve: crate::resolve::Options,
    /// Programs, scripts or shared objects (paths inside the sysroot), or
    /// command names found on the default `PATH`.
    pub paths: Vec<String>,
    /// One JSON object instead of text.
    pub json: bool,
}

/// Resolves every path and says what each needs, and what is missing.
pub fn deps(options: &DepsOptions, console: &mut dyn Console) -> Result<Report> {
    let report = crate::resolve::deps::run(&options.resolve, &options.paths, options.json)?;
    console.out(&report.stdout);
    console.err(&report.stderr);
    Ok(report)
}
