//! The command line: every subcommand and flag of `cargo xtask`, and which library call each one makes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rootfs::UsageError;

use crate::{out_root, project_root};

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
    Rootfs(Rootfs),
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
    /// coreutils-30, spread-100, all-N).
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
    Build(Build),
    /// Print the files glibc's loader would open for each program, without running it.
    Deps(Deps),
    /// Say why a path is in a built rootfs, from its manifest.
    Why(Why),
    /// Run every command of the rootfs inside it, isolated, and the spec's checks.
    Smoke(Smoke),
    /// Open an interactive shell inside the rootfs, isolated.
    Shell(Shell),
    /// Run one command inside the rootfs, isolated, and pass its exit status back.
    Run(Run),
}

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
}

#[derive(Args, Debug)]
pub struct Shell {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub devenv: Devenv,
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
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Network {
    None,
    Host,
}

impl Devenv {
    /// Runs `argv` in the built tree, attached to this terminal, with what
    /// these flags and the spec's `[shell]` ask for.
    fn enter(&self, built: &rootfs::build::Built, argv: &[String], term: &str) -> Result<i32> {
        let request = rootfs::devenv::Request {
            binds: self.binds.clone(),
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            env_pass: self.env_pass.clone(),
            network: self.network.map(|n| match n {
                Network::None => rootfs::spec::Network::None,
                Network::Host => rootfs::spec::Network::Host,
            }),
            user: self.user.clone(),
            writable: self.writable,
        };
        let devenv = rootfs::devenv::prepare(&built.spec, &built.out, &request, term)?;
        rootfs::smoke::run_attached(&built.out, &built.spec.name, &devenv.access, argv, &devenv.env)
    }
}

/// Where a spec's rootfs is: shared by every command that works on a tree.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The spec file [default: rootfs-spec/default.toml].
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// The output folder [default: target/rootfs/<name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Take programs and libraries from this directory instead of `/`.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub sysroot: PathBuf,
    /// How files get into the tree.
    #[arg(long, value_enum, default_value_t = Link::Copy)]
    pub link: Link,
}

impl Target {
    fn default_spec() -> Target {
        Target { spec: None, out: None, sysroot: PathBuf::from("/"), link: Link::Copy }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Link {
    /// Copy every file (reflinks where the filesystem supports them).
    Copy,
    /// Hard-link host files instead: fast, but a write in the tree writes the host file.
    Hard,
}

#[derive(Args, Debug)]
pub struct Build {
    #[command(flatten)]
    pub target: Target,
    /// Rebuild even when nothing changed.
    #[arg(long)]
    pub force: bool,
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
                None => Smoke {
                    target: Target::default_spec(),
                    junit: None,
                    jobs: None,
                    no_build: false,
                }
                .run(),
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

fn warn(built: &rootfs::build::Built) {
    for warning in &built.warnings {
        eprintln!("warning: {warning}");
    }
}

/// The timestamp of every file: `SOURCE_DATE_EPOCH` when set.
fn epoch() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text.trim().parse().map_err(|_| {
            UsageError(format!("SOURCE_DATE_EPOCH must be a number of seconds, got `{text}`"))
                .into()
        }),
        Err(_) => Ok(rootfs::build::DEFAULT_EPOCH),
    }
}

impl Target {
    fn build_options(&self) -> Result<rootfs::build::Options> {
        let spec =
            self.spec.clone().unwrap_or_else(|| project_root().join(rootfs::spec::DEFAULT_SPEC));
        let mut options = rootfs::build::Options::new(spec, out_root());
        options.out = self.out.clone();
        options.sysroot = self.sysroot.clone();
        options.link = match self.link {
            Link::Copy => rootfs::install::LinkMode::Copy,
            Link::Hard => rootfs::install::LinkMode::Hard,
        };
        options.epoch = epoch()?;
        options.progress = true;
        Ok(options)
    }
}

impl Build {
    fn run(self) -> Result<ExitCode> {
        let mut options = self.target.build_options()?;
        options.force = self.force;
        let built = rootfs::build::build(&options)?;
        warn(&built);
        println!("{}", built.summary());
        Ok(ExitCode::SUCCESS)
    }
}

impl Target {
    /// Builds the tree first when it is missing or stale (a no-op otherwise).
    fn ensure_built(&self) -> Result<rootfs::build::Built> {
        let built = rootfs::build::build(&self.build_options()?)?;
        warn(&built);
        eprintln!("{}", built.summary());
        Ok(built)
    }
}

impl Smoke {
    fn run(self) -> Result<ExitCode> {
        let (spec, out, manifest) = if self.no_build {
            let options = self.target.build_options()?;
            let spec = rootfs::spec::load(&options.spec)?;
            let out = rootfs::build::out_dir(&options, &spec);
            let manifest = rootfs::build::Beside::of(&out).current_manifest()?;
            (spec, out, manifest)
        } else {
            let built = self.target.ensure_built()?;
            (built.spec, built.out, built.manifest)
        };
        let checks = rootfs::smoke::checks(&spec, &manifest);
        let (reference, note) =
            rootfs::smoke::reference(&spec, &manifest, &out, &self.target.sysroot);
        if let Some(note) = note {
            eprintln!("{note}");
        }
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let options = rootfs::smoke::Options { jobs, hostname: spec.name.clone(), reference };
        let report = rootfs::smoke::run(&out, &checks, &options)?;
        print!("{}", report.table());
        if let Some(path) = &self.junit {
            let xml = report.junit(&format!("rootfs.{}", spec.name))?;
            rootfs::fsutil::write_file_atomically(path, xml.as_bytes())
                .with_context(|| format!("writing the JUnit report `{}`", path.display()))?;
        }
        Ok(if report.failed() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

impl Shell {
    fn run(self) -> Result<ExitCode> {
        let built = self.target.ensure_built()?;
        let shell = rootfs::smoke::shell_of(&built.manifest);
        let host_term = std::env::var("TERM").ok();
        let (term, note) = rootfs::terminfo::term_for(&built.manifest, host_term.as_deref());
        if let Some(note) = note {
            eprintln!("{note}");
        }
        let code = self.devenv.enter(&built, &[shell], &term)?;
        Ok(ExitCode::from(code.clamp(0, 255) as u8))
    }
}

impl Run {
    fn run(self) -> Result<ExitCode> {
        let built = self.target.ensure_built()?;
        let host_term = std::env::var("TERM").ok();
        let (term, _) = rootfs::terminfo::term_for(&built.manifest, host_term.as_deref());
        let code = self.devenv.enter(&built, &self.command, &term)?;
        Ok(ExitCode::from(code.clamp(0, 255) as u8))
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

impl Why {
    fn run(self) -> Result<ExitCode> {
        let target = Target { spec: self.spec, out: self.out, ..Target::default_spec() };
        let options = target.build_options()?;
        let spec = rootfs::spec::load(&options.spec)?;
        let out = rootfs::build::out_dir(&options, &spec);
        let manifest = rootfs::build::Beside::of(&out).current_manifest()?;
        match manifest.why(&self.path) {
            Some(text) => {
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            None => {
                Err(UsageError(format!("`{}` is not in {}", self.path.display(), out.display()))
                    .into())
            }
        }
    }
}
