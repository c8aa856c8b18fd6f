//! The command line: every subcommand and flag of `cargo xtask`, and which library call each one makes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rootfs::UsageError;
use rootfs::build::image_sysroot::SysrootSource;
use rootfs::run::smoke::structure;

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
    /// Run the spec's checks (or one command) on the sysroot under a tracer,
    /// and say what they used that the tree lacks.
    Trace(Trace),
    /// Say what the rootfs needs of the machine beneath it: CPU level,
    /// kernel, glibc symbol versions (building it first if needed).
    Portability(PortabilityArgs),
    /// Ship the rootfs as an OCI image, a docker archive, a runtime bundle,
    /// a tar or an initramfs, beside the tree (building it first if needed).
    Export(Export),
    /// Re-resolve the spec's `[sysroot.debian]` packages from the mirror's
    /// current indexes and rewrite the lock's package set, saying what changed.
    Update(Update),
    /// The init of `smoke --kernel`'s virtual machine (not a command).
    #[command(hide = true)]
    KernelGuest,
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
    fn run(self) -> Result<ExitCode> {
        let spec = self.spec.unwrap_or_else(|| project_root().join(rootfs::spec::DEFAULT_SPEC));
        let loaded = rootfs::spec::load(&spec)?;
        let Some(request) = loaded.debian.as_ref().map(|item| {
            rootfs::build::debian::merge_request(
                Some(&item.value),
                None,
                &[],
                &loaded.debian_packages,
            )
        }) else {
            return Err(UsageError(format!(
                "`{}` has no `[sysroot.debian]`: there is no package set to update",
                spec.display()
            ))
            .into());
        };
        let options = rootfs::build::debian::Options { progress: true, ..Default::default() };
        let lock = rootfs::build::lock::path_for(&spec);
        let update = rootfs::build::debian::package_set::update(
            &request,
            &loaded.name,
            &lock,
            &options,
            self.locked,
        )?;
        match update.summary(true) {
            Some(text) => eprintln!("{text}"),
            None if update.refreshed => eprintln!(
                "the lock `{}` names the same packages; rewritten with the fields this version records",
                update.path.display()
            ),
            None => eprintln!("the lock `{}` is up to date", update.path.display()),
        }
        Ok(ExitCode::SUCCESS)
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

#[derive(Args, Debug)]
pub struct PortabilityArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print the whole report as JSON, every object named.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct Export {
    #[command(flatten)]
    pub target: Target,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Where to write it [default: beside the tree: target/rootfs/<name>.oci/,
    /// <name>.docker.tar, <name>.bundle/, <name>.tar, <name>.cpio.gz].
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// How layers and archives are compressed [default: gzip for oci and
    /// cpio, none for docker-archive and tar; a bundle is never compressed].
    #[arg(long, value_enum)]
    pub compression: Option<ExportCompression>,
    /// Rebuild the tree and write the export again, reusing no layer.
    #[arg(long)]
    pub force: bool,
    /// Then run this container-structure-test file against the exported
    /// OCI image, unpacked, as `smoke --structure-test` runs it against the
    /// tree; may be repeated.
    #[arg(long, value_name = "FILE")]
    pub structure_test: Vec<PathBuf>,
    /// Also write the structure tests' results as JUnit XML to this file.
    #[arg(long, value_name = "FILE", requires = "structure_test")]
    pub junit: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// An OCI image layout (image-spec 1.1), for skopeo, podman, umoci.
    Oci,
    /// A `docker save` archive, for `docker load` and `podman load`.
    DockerArchive,
    /// An OCI runtime bundle (config.json and rootfs/), for `runc run`.
    Bundle,
    /// The tree as one tar, for `docker import`, `machinectl import-tar`.
    Tar,
    /// A newc initramfs; the spec must provide /init.
    Cpio,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportCompression {
    Gzip,
    Zstd,
    None,
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

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Network {
    None,
    Host,
}

impl Network {
    fn spec(self) -> rootfs::vocab::Network {
        match self {
            Network::None => rootfs::vocab::Network::None,
            Network::Host => rootfs::vocab::Network::Host,
        }
    }
}

impl Devenv {
    /// Runs `argv` in the built tree, attached to this terminal, with what
    /// these flags and the spec's `[shell]` ask for.
    fn enter(&self, built: &rootfs::build::Built, argv: &[String], term: &str) -> Result<i32> {
        let devenv = rootfs::run::devenv::prepare(&built.spec, &built.out, &self.request()?, term)?;
        rootfs::run::smoke::run_attached(
            &built.out,
            &built.spec.name,
            &devenv.access,
            argv,
            &devenv.env,
        )
    }

    /// These flags as the library takes them, each value parsed.
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

    /// Builds the tree when missing or stale, after checking what these
    /// flags and the spec's `[shell]` ask for: a mistake there costs no
    /// build.
    fn checked_build(&self, target: &Target) -> Result<rootfs::build::Built> {
        let options = target.build_options()?;
        let spec = rootfs::spec::load(&options.spec)?;
        rootfs::run::devenv::check(&spec, &self.request()?)?;
        target.built(&options)
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
    /// Take programs and libraries from this directory instead of `/`, from
    /// an image: oci:DIR[:TAG] (an OCI image layout) or tar:FILE, or from
    /// Debian packages: debian:SUITE[/ARCH] [default: the spec's
    /// `[sysroot.debian]` if it has one, else /].
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<SysrootSource>,
    /// The Debian packages of a package sysroot, comma-separated (replaces
    /// the spec's `packages`).
    #[arg(long, value_name = "PKGS", value_delimiter = ',')]
    pub packages: Vec<String>,
    /// How files get into the tree.
    #[arg(long, value_enum, default_value_t = Link::Copy)]
    pub link: Link,
    /// Refuse to build when the inputs differ from the lock beside the spec
    /// (exit status 1, one line per difference, nothing written).
    #[arg(long)]
    pub locked: bool,
    /// List every change to the lock, not only the first ten.
    #[arg(long)]
    pub verbose: bool,
}

impl Target {
    fn default_spec() -> Target {
        Target {
            spec: None,
            out: None,
            sysroot: None,
            packages: Vec::new(),
            link: Link::Copy,
            locked: false,
            verbose: false,
        }
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
                Some(RootfsCommand::Trace(trace)) => trace.run(),
                Some(RootfsCommand::Portability(portability)) => portability.run(),
                Some(RootfsCommand::Export(export)) => export.run(),
                Some(RootfsCommand::Update(update)) => update.run(),
                Some(RootfsCommand::KernelGuest) => {
                    rootfs::run::kernel_smoke::guest::main().map(|()| ExitCode::SUCCESS)
                }
                None => Smoke {
                    target: Target::default_spec(),
                    junit: None,
                    jobs: None,
                    no_build: false,
                    structure_test: Vec::new(),
                    cpus: Vec::new(),
                    kernels: Vec::new(),
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

fn warn(built: &rootfs::build::Built, verbose: bool) {
    for warning in &built.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(text) = built.lock.as_ref().and_then(|update| update.summary(verbose)) {
        eprintln!("{text}");
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
    /// The build of the spec; for a multi-architecture spec, the tree of
    /// this machine's architecture when it is listed, else the first's
    /// (what `shell`, `run`, `trace`, `why` and `portability` open).
    fn build_options(&self) -> Result<rootfs::build::Options> {
        let mut parts = self.parts(rootfs::multiarch::Choice::One)?;
        Ok(parts.builds.swap_remove(0))
    }

    /// Every build the spec makes (one per architecture of a
    /// multi-architecture spec), with `choice`'s trees.
    fn parts(&self, choice: rootfs::multiarch::Choice) -> Result<rootfs::multiarch::Parts> {
        let spec =
            self.spec.clone().unwrap_or_else(|| project_root().join(rootfs::spec::DEFAULT_SPEC));
        let source = self.sysroot_source(&spec)?;
        let parts = rootfs::multiarch::parts(&self.base_options(spec)?, &source, choice)?;
        for note in &parts.notes {
            eprintln!("{note}");
        }
        Ok(parts)
    }

    /// The build of `spec` as the flags ask, before its sysroot is prepared.
    fn base_options(&self, spec: PathBuf) -> Result<rootfs::build::Options> {
        let mut options = rootfs::build::Options::new(spec, out_root());
        options.out = self.out.clone();
        options.locked = self.locked;
        options.link = match self.link {
            Link::Copy => rootfs::build::install::LinkMode::Copy,
            Link::Hard => rootfs::build::install::LinkMode::Hard,
        };
        options.epoch = epoch()?;
        options.progress = true;
        Ok(options)
    }
}

impl Target {
    /// `--sysroot`, or the spec's `[sysroot.debian]`, or `/`; a package
    /// sysroot takes the spec's table with the flags' suite, architecture
    /// and `--packages` over it.
    fn sysroot_source(&self, spec: &std::path::Path) -> Result<SysrootSource> {
        // The spec's table, and the packages its files say provide them.
        let from_spec =
            || -> Result<(Option<rootfs::build::debian::DebianRequest>, Vec<String>)> {
                let loaded = rootfs::spec::load(spec)?;
                Ok((loaded.debian.map(|item| item.value), loaded.debian_packages))
            };
        let debian = |request| SysrootSource::Debian {
            request,
            lock: Some(rootfs::build::lock::path_for(spec)),
            locked: self.locked,
        };
        let merge = rootfs::build::debian::merge_request;
        let source = match &self.sysroot {
            Some(SysrootSource::Debian { request: flag, .. }) => {
                let (table, provided) = from_spec()?;
                debian(merge(table.as_ref(), Some(flag), &self.packages, &provided))
            }
            Some(other) => other.clone(),
            None => match from_spec()? {
                (Some(table), provided) => {
                    debian(merge(Some(&table), None, &self.packages, &provided))
                }
                (None, _) => SysrootSource::Dir(PathBuf::from("/")),
            },
        };
        if !self.packages.is_empty() && !matches!(source, SysrootSource::Debian { .. }) {
            return Err(UsageError(
                "`--packages` needs a package sysroot: `--sysroot debian:SUITE[/ARCH]` or a spec with `[sysroot.debian]`".into(),
            )
            .into());
        }
        Ok(source)
    }
}

impl Build {
    fn run(self) -> Result<ExitCode> {
        for (_, built) in self.target.built_parts(self.force)? {
            println!("{}", built.summary());
            if let Some(portability) = &built.manifest.portability {
                println!("{}", portability.summary());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One tree to smoke or export: its build options and its build.
type Part = (rootfs::build::Options, rootfs::build::Built);

impl Target {
    /// Every tree of the spec built ([`rootfs::multiarch::build_all`]).
    fn built_parts(&self, force: bool) -> Result<Vec<Part>> {
        let mut parts = self.parts(rootfs::multiarch::Choice::All)?;
        for options in &mut parts.builds {
            options.force = force;
        }
        let built = rootfs::multiarch::build_all(&parts)?;
        for one in &built {
            warn(one, self.verbose);
        }
        Ok(parts.builds.into_iter().zip(built).collect())
    }

    /// Builds one tree ([`rootfs::multiarch::build_one`]).
    fn built(&self, options: &rootfs::build::Options) -> Result<rootfs::build::Built> {
        let built = rootfs::multiarch::build_one(options)?;
        warn(&built, self.verbose);
        eprintln!("{}", built.summary());
        Ok(built)
    }
}

impl PortabilityArgs {
    fn run(self) -> Result<ExitCode> {
        let built = self.target.built(&self.target.build_options()?)?;
        let portability = built.manifest.portability.unwrap_or_default();
        if self.json {
            print!("{}", portability.to_json()?);
        } else {
            println!("{}", portability.summary());
            print!("{}", portability.render(10));
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Smoke {
    fn run(self) -> Result<ExitCode> {
        use rootfs::multiarch::{Choice, Tree};
        let parts = self.target.parts(Choice::All)?;
        // A check's bind whose host path is missing costs no build.
        if let Some(options) = parts.builds.first() {
            let loaded = rootfs::spec::load(&options.spec)?;
            rootfs::run::devenv::check_bind_sources(
                loaded.smoke.checks.iter().flat_map(|c| &c.value.binds),
            )?;
        }
        let multi = !parts.listed.is_empty();
        let trees: Vec<Tree> = if self.no_build {
            parts.builds.into_iter().map(Tree::in_place).collect::<Result<_>>()?
        } else {
            let built = self.target.built_parts(false)?;
            for (_, one) in &built {
                eprintln!("{}", one.summary());
            }
            built.into_iter().map(|(o, b)| Tree::built(o, b)).collect()
        };
        let (cpus, kernels) = self.elsewhere()?;
        let options = rootfs::multiarch::SmokeOptions {
            jobs: self
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            structure_tests: structure_files(None, &self.structure_test)?,
            cpus,
            kernels,
            agent: rootfs::run::kernel_smoke::this_program()?,
        };
        let mut failed = 0;
        for smoked in rootfs::multiarch::smoke(&trees, multi, &options)? {
            self.print(&smoked)?;
            failed += smoked.failed();
        }
        Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }

    /// One tree's tables (and its JUnit report, when asked).
    fn print(&self, smoked: &rootfs::multiarch::Smoked) -> Result<()> {
        if let Some(arch) = &smoked.arch {
            println!("{arch} ({}):", smoked.out.display());
        }
        for note in &smoked.notes {
            eprintln!("{note}");
        }
        print!("{}", smoked.report.table());
        if let Some(path) = &self.junit {
            let (suite, path) = smoked.junit(path);
            let xml = smoked.report.junit(&suite)?;
            rootfs::fsutil::write_file_atomically(&path, xml.as_bytes())
                .with_context(|| format!("writing the JUnit report `{}`", path.display()))?;
        }
        for other in &smoked.others {
            println!("\non {}:", other.name);
            for note in &other.report.notes {
                eprintln!("{note}");
            }
            print!("{}", other.report.table());
        }
        if !smoked.others.is_empty() {
            print!("\n{}", rootfs::run::elsewhere::matrix(&smoked.report, &smoked.others));
        }
        Ok(())
    }

    /// The CPU levels and kernels the flags add to the spec's.
    fn elsewhere(
        &self,
    ) -> Result<(Vec<rootfs::resolve::elf::IsaLevel>, Vec<rootfs::spec::KernelSource>)> {
        let mut cpus = Vec::new();
        for name in &self.cpus {
            let level = rootfs::resolve::elf::IsaLevel::parse(name).ok_or_else(|| {
                UsageError(format!(
                    "invalid CPU level `{name}`: use x86-64-v1, x86-64-v2 or x86-64-v3"
                ))
            })?;
            cpus.push(level);
        }
        let mut kernels = Vec::new();
        let here = std::env::current_dir().context("reading the current directory")?;
        for text in &self.kernels {
            let kernel = rootfs::spec::KernelSource::parse(text, &here)
                .map_err(|why| UsageError(format!("{why}: {}", rootfs::spec::KERNEL_HELP)))?;
            kernels.push(kernel);
        }
        Ok((cpus, kernels))
    }
}

/// The spec's structure test files, if asked, then those given with
/// `--structure-test`.
fn structure_files(
    spec: Option<&rootfs::spec::Spec>,
    given: &[PathBuf],
) -> Result<Vec<std::sync::Arc<structure::StructureTests>>> {
    let from_spec = spec.into_iter().flat_map(|s| &s.smoke.structure_tests);
    let mut files: Vec<_> = from_spec.map(|t| t.value.clone()).collect();
    for path in given {
        files.push(std::sync::Arc::new(structure::load(path)?));
    }
    Ok(files)
}

impl Shell {
    fn run(self) -> Result<ExitCode> {
        let built = self.devenv.checked_build(&self.target)?;
        let choice =
            rootfs::run::devenv::shell_to_open(&built.spec, &built.out, &self.devenv.request()?)?;
        eprintln!("{}", choice.describe());
        let shell = choice.path.display().to_string();
        let host_term = std::env::var("TERM").ok();
        let (term, note) = rootfs::run::terminfo::term_for(&built.manifest, host_term.as_deref());
        if let Some(note) = note {
            eprintln!("{note}");
        }
        let code = self.devenv.enter(&built, &[shell], &term)?;
        Ok(ExitCode::from(code.clamp(0, 255) as u8))
    }
}

impl Run {
    fn run(self) -> Result<ExitCode> {
        let built = self.devenv.checked_build(&self.target)?;
        let host_term = std::env::var("TERM").ok();
        let (term, _) = rootfs::run::terminfo::term_for(&built.manifest, host_term.as_deref());
        let code = self.devenv.enter(&built, &self.command, &term)?;
        Ok(ExitCode::from(code.clamp(0, 255) as u8))
    }
}

impl Trace {
    fn run(self) -> Result<ExitCode> {
        let build_options = self.target.build_options()?;
        let built = self.target.built(&build_options)?;
        let options = rootfs::run::findings::Options {
            sysroot: build_options.sysroot.clone(),
            command: self.command,
            request: rootfs::run::devenv::Flags {
                binds: self.opens.binds,
                workdir: self.opens.workdir,
                env: self.opens.env,
                network: self.opens.network.map(Network::spec),
                ..Default::default()
            }
            .parse()?,
            jobs: self
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            write: self.write,
            keep_going: self.keep_going,
        };
        let report = rootfs::run::findings::trace(&built, &options)?;
        print!("{}", report.stdout);
        eprint!("{}", report.stderr);
        Ok(ExitCode::from(report.exit))
    }
}

impl Export {
    fn run(self) -> Result<ExitCode> {
        if !self.structure_test.is_empty() && self.format != ExportFormat::Oci {
            return Err(UsageError(
                "--structure-test runs against an OCI image: use it with --format oci".into(),
            )
            .into());
        }
        let parts = self.target.built_parts(self.force)?;
        for (_, one) in &parts {
            eprintln!("{}", one.summary());
        }
        let target = &parts[0].0;
        let options = rootfs::export::Options {
            format: match self.format {
                ExportFormat::Oci => rootfs::export::Format::Oci,
                ExportFormat::DockerArchive => rootfs::export::Format::DockerArchive,
                ExportFormat::Bundle => rootfs::export::Format::Bundle,
                ExportFormat::Tar => rootfs::export::Format::Tar,
                ExportFormat::Cpio => rootfs::export::Format::Cpio,
            },
            output: self.output,
            compression: self.compression.map(|c| match c {
                ExportCompression::Gzip => rootfs::export::Compression::Gzip,
                ExportCompression::Zstd => rootfs::export::Compression::Zstd,
                ExportCompression::None => rootfs::export::Compression::None,
            }),
            epoch: target.epoch,
            force: self.force,
            sysroot: target.sysroot.clone(),
        };
        let built: Vec<rootfs::build::Built> = parts.into_iter().map(|(_, b)| b).collect();
        let all = rootfs::export::export_all(&built, &options)?;
        for exported in &all {
            println!("{}", exported.summary());
        }
        if self.structure_test.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if built.len() > 1 {
            return Err(UsageError(
                "--structure-test reads one image: run it on a spec of one architecture".into(),
            )
            .into());
        }
        let (built, exported) = (&built[0], &all[0]);
        let files = structure_files(None, &self.structure_test)?;
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let report = structure::run_on_export(built, exported, &files, jobs)?;
        print!("{}", report.table());
        if let Some(path) = &self.junit {
            let xml = report.junit(&format!("rootfs.{}.image", built.spec.name))?;
            rootfs::fsutil::write_file_atomically(path, xml.as_bytes())
                .with_context(|| format!("writing the JUnit report `{}`", path.display()))?;
        }
        Ok(if report.failed() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

impl Deps {
    fn run(self) -> Result<ExitCode> {
        let options = rootfs::resolve::Options {
            sysroot: self.sysroot,
            library_path: self.library_path,
            ..Default::default()
        };
        let report = rootfs::resolve::deps::run(&options, &self.paths, self.json)?;
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
