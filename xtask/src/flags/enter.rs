//! `rootfs shell`, `rootfs run` and `rootfs trace`: the flags of what they open, and one call each.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use rootfs::command::{EnterOptions, TraceOptions};

use super::target::{Network, Target};

#[derive(Args, Debug)]
pub struct Shell {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub devenv: Devenv,
}

impl Shell {
    pub fn run(self) -> Result<ExitCode> {
        enter(&self.target, &self.devenv, Vec::new())
    }
}

#[derive(Args, Debug)]
pub struct Run {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub devenv: Devenv,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl Run {
    pub fn run(self) -> Result<ExitCode> {
        enter(&self.target, &self.devenv, self.command)
    }
}

/// Runs `command` (or the shell, when empty) in the tree; its exit status
/// becomes ours.
fn enter(target: &Target, devenv: &Devenv, command: Vec<String>) -> Result<ExitCode> {
    let options = EnterOptions {
        target: target.options(),
        request: devenv.request()?,
        command,
        host_term: std::env::var("TERM").ok(),
    };
    let entered = rootfs::command::enter(&options, &mut rootfs::Terminal)?;
    Ok(ExitCode::from(entered.code.clamp(0, 255) as u8))
}

/// What `shell` and `run` open for work, over the spec's `[shell]` table.
#[derive(Args, Debug)]
pub struct Devenv {
    /// Bind-mount a host file or directory at PATH inside (default: the
    /// same path), read-write unless `:ro`; may be repeated. `--bind .` also
    /// makes the current directory the working directory.
    #[arg(long = "bind", value_name = "HOST[:PATH][:ro]")]
    pub binds: Vec<String>,
    /// The working directory inside.
    #[arg(long, value_name = "PATH")]
    pub workdir: Option<String>,
    /// Set a variable of the command's environment; may be repeated.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Pass this variable of your environment on, when it is set; may be
    /// repeated.
    #[arg(long = "env-pass", value_name = "KEY")]
    pub env_pass: Vec<String>,
    /// `none`: only a loopback of its own [default]; `host`: this
    /// machine's network.
    #[arg(long, value_enum, value_name = "NETWORK")]
    pub network: Option<Network>,
    /// Run as this user inside: a name of the spec's [[users]], `root`, or
    /// UID[:GID] [default: your own uid and gid].
    #[arg(long, value_name = "NAME|UID[:GID]")]
    pub user: Option<String>,
    /// Let writes anywhere in the tree go to a layer discarded at exit.
    #[arg(long)]
    pub writable: bool,
    /// The most the writable layer holds, in bytes or with a K, M or G
    /// suffix; a write past it fails with "No space left on device"
    /// [default: the spec's [shell] writable_size, else 256M].
    #[arg(long, value_name = "SIZE", value_parser = rootfs::spec::writable_size_flag)]
    pub writable_size: Option<u64>,
}

impl Devenv {
    /// These flags as the library takes them: the one place a
    /// `devenv::Request` is made.
    fn request(&self) -> Result<rootfs::run::devenv::Request> {
        rootfs::run::devenv::Flags {
            binds: self.binds.clone(),
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            env_pass: self.env_pass.clone(),
            network: self.network.map(Network::spec),
            user: self.user.clone(),
            writable: self.writable,
            writable_size: self.writable_size,
        }
        .parse()
    }
}

#[derive(Args, Debug)]
pub struct Trace {
    #[command(flatten)]
    pub target: Target,
    /// Write what the tree lacks as a spec fragment to include.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Checks traced at once [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Write the fragment even when a check fails on the sysroot.
    #[arg(long)]
    pub keep_going: bool,
    #[command(flatten)]
    pub opens: TraceOpens,
    /// Trace this command instead of the spec's checks, after `--`: it runs
    /// as `run` would run it (the spec's `[shell]` with `--bind`,
    /// `--workdir`, `--env` and `--network` over it), on the sysroot.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl Trace {
    pub fn run(self) -> Result<ExitCode> {
        let opens = Devenv {
            binds: self.opens.binds,
            workdir: self.opens.workdir,
            env: self.opens.env,
            env_pass: Vec::new(),
            network: self.opens.network,
            user: None,
            writable: false,
            writable_size: None,
        };
        let options = TraceOptions {
            target: self.target.options(),
            command: self.command,
            request: opens.request()?,
            jobs: self.jobs,
            write: self.write,
            keep_going: self.keep_going,
        };
        let report = rootfs::command::trace(&options, &mut rootfs::Terminal)?;
        Ok(ExitCode::from(report.exit))
    }
}

/// What `trace -- CMD` opens for the command, as `run` takes it.
#[derive(Args, Debug)]
pub struct TraceOpens {
    /// Bind-mount a host file or directory at PATH inside (default: the
    /// same path), read-write unless `:ro`; may be repeated. Only with a
    /// command.
    #[arg(long = "bind", value_name = "HOST[:PATH][:ro]", requires = "command")]
    pub binds: Vec<String>,
    /// The working directory inside. Only with a command.
    #[arg(long, value_name = "PATH", requires = "command")]
    pub workdir: Option<String>,
    /// Set a variable of the command's environment; may be repeated. Only
    /// with a command.
    #[arg(long = "env", value_name = "KEY=VALUE", requires = "command")]
    pub env: Vec<String>,
    /// `none`: only a loopback of its own; `host`: this machine's network.
    /// Only with a command.
    #[arg(long, value_enum, value_name = "NETWORK", requires = "command")]
    pub network: Option<Network>,
}
