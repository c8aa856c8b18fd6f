//! The commands that read without building: `rootfs deps`, `rootfs why` and `rootfs update` (which rewrites only the lock): their flags and their one call each.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use rootfs::command::{DepsOptions, UpdateOptions, WhyOptions};

use super::target::defaults;

#[derive(Args, Debug)]
pub struct Deps {
    /// Resolve inside this directory as if it were `/`.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub sysroot: PathBuf,
    /// Search these directories where the loader searches LD_LIBRARY_PATH
    /// (colon-separated; may be repeated). The environment is never read.
    #[arg(long = "library-path", value_name = "DIRS")]
    pub library_path: Vec<String>,
    /// Print one JSON object: input -> {"files": [...], "missing": [...]}.
    #[arg(long)]
    pub json: bool,
    /// Programs, scripts or shared objects (paths inside the sysroot).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
}

impl Deps {
    pub fn run(self) -> Result<ExitCode> {
        let resolve = rootfs::resolve::Options {
            sysroot: self.sysroot,
            library_path: self.library_path,
            ..Default::default()
        };
        let options = DepsOptions { resolve, paths: self.paths, json: self.json };
        let report = rootfs::command::deps(&options, &mut rootfs::Terminal)?;
        Ok(ExitCode::from(report.exit))
    }
}

#[derive(Args, Debug)]
pub struct Why {
    /// A path inside the rootfs, such as /usr/lib/x86_64-linux-gnu/libc.so.6.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The spec whose rootfs to ask [default: rootfs-spec/default.toml].
    #[arg(long, value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// The output folder [default: target/rootfs/<name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl Why {
    pub fn run(self) -> Result<ExitCode> {
        let target = rootfs::Target { spec: self.spec, out: self.out, ..defaults() };
        let options = WhyOptions { target, path: self.path };
        rootfs::command::why(&options, &mut rootfs::Terminal)?;
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Update {
    /// The spec file [default: rootfs-spec/default.toml].
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Refuse any change to the lock (exit status 1, nothing written).
    #[arg(long)]
    pub locked: bool,
}

impl Update {
    pub fn run(self) -> Result<ExitCode> {
        let options = UpdateOptions {
            spec: self.spec,
            default_spec: defaults().default_spec,
            locked: self.locked,
        };
        rootfs::command::update(&options, &mut rootfs::Terminal)?;
        Ok(ExitCode::SUCCESS)
    }
}
