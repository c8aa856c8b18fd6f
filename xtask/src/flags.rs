//! The command line: every subcommand and flag of `cargo xtask`, and which library call each one makes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "Project tasks: build and test minimal root filesystems")]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a rootfs from a spec; with no subcommand, build the default spec
    /// and smoke-test it.
    Rootfs(Rootfs),
}

#[derive(Args, Debug)]
pub struct Rootfs {
    #[command(subcommand)]
    pub command: Option<RootfsCommand>,
}

#[derive(Subcommand, Debug)]
pub enum RootfsCommand {
    /// Print the files glibc's loader would open for each program, without running it.
    Deps(Deps),
}

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

impl Xtask {
    pub fn run(self) -> Result<ExitCode> {
        match self.command {
            Command::Rootfs(rootfs) => match rootfs.command {
                Some(RootfsCommand::Deps(deps)) => deps.run(),
                None => anyhow::bail!("not yet: use `cargo xtask rootfs deps`"),
            },
        }
    }
}

impl Deps {
    fn run(self) -> Result<ExitCode> {
        let options = rootfs::resolve::Options {
            sysroot: self.sysroot,
            library_path: self.library_path,
            ..Default::default()
        };
        let report = rootfs::deps::run(&options, &self.paths, self.json)?;
        print!("{}", report.stdout);
        eprint!("{}", report.stderr);
        Ok(ExitCode::from(report.exit))
    }
}
