//! The command line: `cargo xtask` and its subcommands; each `rootfs` subcommand's flags, and the one library call it makes, live in `flags/<command>.rs`.

mod build;
mod enter;
mod export;
mod query;
mod smoke;
mod target;

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
    /// Build a rootfs from a spec. With no subcommand: build the default
    /// spec, then smoke-test it.
    Rootfs(Box<Rootfs>),
    /// Install the Debian packages the tests need (when root), then run
    /// `cargo test --workspace`.
    Test(Test),
    /// Time resolution and builds against the classic recipe and its peers;
    /// results in target/bench/results.md.
    Bench(Bench),
}

#[derive(Args, Debug)]
pub struct Bench {
    /// Timed runs per measurement, after one warm-up.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Only the command lists whose name contains this (classic-9,
    /// coreutils-30, spread-100, all-N), or only one other benchmark
    /// (export, smoke, kernel, debian, foreign-smoke, multiarch-export, trees).
    #[arg(long, value_name = "NAME")]
    pub only: Option<String>,
    /// Leave out the classic recipe, lddtree, dracut-install and jk_cp.
    #[arg(long)]
    pub no_peers: bool,
}

#[derive(Args, Debug)]
pub struct Test {
    /// Passed on to `cargo test` (a test name filter, `--release`, ...).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Rootfs {
    #[command(subcommand)]
    pub command: Option<RootfsCommand>,
}

#[derive(Subcommand, Debug)]
pub enum RootfsCommand {
    /// Build the rootfs a spec describes into target/rootfs/<name>/.
    Build(build::Build),
    /// Print the files glibc's loader would open for each program, without running it.
    Deps(query::Deps),
    /// Say why a path is in a built rootfs, from its manifest.
    Why(query::Why),
    /// Run every command of the rootfs inside it, isolated, and the spec's checks.
    Smoke(smoke::Smoke),
    /// Open an interactive shell inside the rootfs, isolated.
    Shell(enter::Shell),
    /// Run one command inside the rootfs, isolated, and pass its exit status back.
    Run(enter::Run),
    /// Run the spec's checks (or one command) on the sysroot under a tracer,
    /// and say what they used that the tree lacks.
    Trace(enter::Trace),
    /// Say what the rootfs needs of the machine beneath it: CPU level,
    /// kernel, glibc symbol versions (building it first if needed).
    Portability(build::PortabilityArgs),
    /// Ship the rootfs as an OCI image, a docker archive, a runtime bundle,
    /// a tar or an initramfs, beside the tree (building it first if needed).
    Export(export::Export),
    /// Re-resolve the spec's `[sysroot.debian]` packages from the mirror's
    /// current indexes and rewrite the lock's package set, saying what changed.
    Update(query::Update),
    /// The init of `smoke --kernel`'s virtual machine (not a command).
    #[command(hide = true)]
    KernelGuest,
}

impl Xtask {
    pub fn run(self) -> Result<ExitCode> {
        match self.command {
            Command::Rootfs(rootfs) => match rootfs.command {
                Some(RootfsCommand::Build(build)) => build.run(),
                Some(RootfsCommand::Deps(deps)) => deps.run(),
                Some(RootfsCommand::Why(why)) => why.run(),
                Some(RootfsCommand::Smoke(smoke)) => smoke.run(),
                Some(RootfsCommand::Shell(shell)) => shell.run(),
                Some(RootfsCommand::Run(run)) => run.run(),
                Some(RootfsCommand::Trace(trace)) => trace.run(),
                Some(RootfsCommand::Portability(portability)) => portability.run(),
                Some(RootfsCommand::Export(export)) => export.run(),
                Some(RootfsCommand::Update(update)) => update.run(),
                Some(RootfsCommand::KernelGuest) => {
                    rootfs::run::kernel_smoke::guest::main().map(|()| ExitCode::SUCCESS)
                }
                None => smoke::default_spec(),
            },
            Command::Test(test) => crate::test::run(&test.args).map(|()| ExitCode::SUCCESS),
            Command::Bench(bench) => {
                let options = crate::bench::Options {
                    runs: bench.runs.max(1),
                    only: bench.only,
                    no_peers: bench.no_peers,
                };
                crate::bench::run(&options).map(|()| ExitCode::SUCCESS)
            }
        }
    }
}
