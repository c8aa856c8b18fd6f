//! Smoke tests: every command of a built rootfs, and the spec's checks, run inside it in fresh namespaces, in parallel, each with its timeout and limits; a command's default probe is judged against the same probe run on the sysroot.

mod capture;
mod compare;
pub mod remembered;
mod report;
mod runner;
pub mod structure;
mod traced;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;

pub use self::report::Report;
pub use self::runner::{End, Ran};
pub use self::traced::{Traced, trace_checks};
use crate::build::manifest::Manifest;
use crate::run::sandbox::{self, Access, Cgroups, RootKind, Sandbox};
pub use crate::run::sandbox::{DEV_NODES, cannot_enter_reason};
use crate::spec::{Item, Spec};
use crate::vocab::{Limits, Network};

/// What decides whether a check passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A command's default probe, `--version`: with a reference, it passes
    /// when the tree behaves as the reference does (exit status and output),
    /// with `fallback` (`--help`) run instead exactly when the reference's
    /// `--version` fails; without one, when `--version` or else the fallback
    /// exits 0.
    Probe { fallback: Vec<String> },
    /// An exit status, and a text the output must contain.
    Exit { code: i32, contains: Option<String> },
    /// The same exit status and output as on the reference, and what is
    /// asked besides.
    SameAsHost { exit: Option<i32>, contains: Option<String> },
    /// A container-structure-test command test ([`structure`]).
    Structure(Arc<crate::spec::structure::CommandTest>),
}

/// One thing to run inside the rootfs and what it must show.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// How the report names it: the command's name, or the check's command line.
    pub name: String,
    pub argv: Vec<String>,
    pub expect: Expect,
    pub timeout: Duration,
    pub limits: Limits,
    /// What of the host it may use, and where it starts.
    pub opens: Opens,
    /// Variables set over the smoke environment ([`environment`]), sorted.
    pub env: Vec<(String, String)>,
}

/// What of the host a check uses besides the tree, and where it starts:
/// each distinct value is a sandbox of its own. By default, nothing, in
/// `/`, as root.
#[derive(Clone, Debug, PartialEq)]
pub enum Opens {
    /// A `[[smoke.checks]]` entry's `binds`, `network` and `workdir`,
    /// resolved in whichever root the check runs in (the tree under
    /// `smoke`, the sysroot under `trace`).
    Spec { binds: Vec<Item<crate::spec::Bind>>, network: Network, workdir: Option<Item<PathBuf>> },
    /// Access already resolved for the one root the check runs in: what
    /// `run` would open (`[shell]` with the flags over it), for `trace --
    /// CMD`.
    Resolved(Access),
}

impl Default for Opens {
    fn default() -> Opens {
        Opens::Spec { binds: Vec::new(), network: Network::None, workdir: None }
    }
}

impl Check {
    /// A check that `argv` exits 0, with the default limits.
    pub fn exits_zero(argv: &[&str], timeout: Duration) -> Check {
        Check {
            name: argv.join(" "),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            expect: Expect::Exit { code: 0, contains: None },
            timeout,
            limits: Limits::default(),
            opens: Opens::default(),
            env: Vec::new(),
        }
    }
}

impl Check {
    /// The paths inside `root` where the check's binds are mounted: what it
    /// uses there is the host's, not the root's.
    pub fn bound(&self, root: &Path) -> Vec<PathBuf> {
        match &self.opens {
            Opens::Spec { binds, .. } => binds
                .iter()
                .filter_map(|b| sandbox::resolve_item(root, b).ok())
                .map(|b| b.target)
                .collect(),
            Opens::Resolved(access) => access.binds.iter().map(|b| b.target.clone()).collect(),
        }
    }
}

/// How a check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// It ran but did not show what was expected; the text says what.
    Fail(String),
    /// Killed, with its whole namespace, at its timeout.
    TimedOut,
    /// It could not be started inside the rootfs; the text says why.
    Error(String),
}

/// What one check did.
#[derive(Clone, Debug)]
pub struct Outcomes {
    pub check: Check,
    pub outcome: Outcome,
    /// It passed with the reference's output lines in another order (as
    /// concurrent writers give), not the same text.
    pub reordered: bool,
    /// The command line that ran last in the tree (the fallback, if it was
    /// tried).
    pub ran: Vec<String>,
    /// Exit status in the tree; 128 + N for a signal.
    pub status: Option<i32>,
    /// Standard output and error, interleaved: its head and tail.
    pub output: String,
    /// The same probe on the reference, when there is one.
    pub host: Option<HostRun>,
    /// Runs on the reference this check made: none when its reference side
    /// was remembered from an earlier run ([`remembered`]).
    pub reference_runs: usize,
    /// A short unified diff of the reference's output against the tree's,
    /// when they differ.
    pub diff: Option<String>,
    pub elapsed: Duration,
}

/// The reference's run of a check.
#[derive(Clone, Debug)]
pub struct HostRun {
    pub status: Option<i32>,
    pub output: String,
}

/// How to run the checks.
#[derive(Clone, Debug)]
pub struct Options {
    /// Checks run at once.
    pub jobs: usize,
    /// The hostname inside (the spec's name by default).
    pub hostname: String,
    /// The sysroot the tree was built from, to judge probes against; `None`
    /// judges them by their exit status alone.
    pub reference: Option<PathBuf>,
}

/// The checks a spec asks for: each command not skipped, run with its
/// arguments from `[smoke.args]` (default: the probe, `--version` then
/// `--help`), then every `[[smoke.checks]]` entry.
pub fn checks(spec: &Spec, manifest: &Manifest) -> Vec<Check> {
    let timeout = Duration::from_secs_f64(spec.smoke.timeout);
    let limits = spec.smoke.limits;
    let mut checks = Vec::new();
    for command in &manifest.commands {
        if spec.smoke.skip.iter().any(|s| s.value == command.name) {
            continue;
        }
        let path = command.path.display().to_string();
        let (argv, expect) = match spec.smoke.args.get(&command.name) {
            Some(args) => (
                std::iter::once(path).chain(args.value.iter().cloned()).collect(),
                Expect::Exit { code: 0, contains: None },
            ),
            None => (
                vec![path.clone(), "--version".to_string()],
                Expect::Probe { fallback: vec![path, "--help".to_string()] },
            ),
        };
        let name = command.name.clone();
        let opens = Opens::default();
        checks.push(Check { name, argv, expect, timeout, limits, opens, env: Vec::new() });
    }
    for (i, item) in spec.smoke.checks.iter().enumerate() {
        let check = &item.value;
        let expect = if check.same_as_host {
            Expect::SameAsHost { exit: check.exit, contains: check.contains.clone() }
        } else {
            Expect::Exit { code: check.exit.unwrap_or(0), contains: check.contains.clone() }
        };
        checks.push(Check {
            // One line, however the script was written.
            name: format!("check {}: {}", i + 1, shell_words(&check.run).replace('\n', "\\n")),
            argv: check.run.clone(),
            expect,
            timeout: check.timeout.map_or(timeout, Duration::from_secs_f64),
            limits: check.limits.apply(limits),
            opens: Opens::Spec {
                binds: check.binds.clone(),
                network: check.network,
                workdir: check.workdir.clone(),
            },
            env: check.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
    }
    checks
}

/// The reference a spec's probes are judged against: the sysroot, unless
/// the spec says `reference = "none"`. A tree of another architecture is
/// run, and so is its reference, under that architecture's emulator (with
/// a note saying so); without the emulator [`run`] skips its checks.
pub fn reference(
    spec: &Spec,
    manifest: &Manifest,
    tree: &Path,
    sysroot: &Path,
) -> (Option<PathBuf>, Option<String>) {
    if spec.smoke.reference == crate::spec::Reference::None {
        return (None, None);
    }
    let foreign = manifest.commands.iter().find_map(|c| {
        let host = tree.join(c.path.strip_prefix("/").unwrap_or(&c.path));
        match crate::resolve::elf::read(&host) {
            Ok(crate::resolve::elf::FileKind::Elf(object)) => object
                .ident
                .and_then(|ident| crate::resolve::arch::Arch::of_ident(&ident))
                .filter(|arch| !arch.runs_natively())
                .map(|arch| (c, arch)),
            _ => None,
        }
    });
    let Some((command, arch)) = foreign else { return (Some(sysroot.to_path_buf()), None) };
    match sandbox::binfmt::emulator(arch) {
        Ok(emulator) => (
            Some(sysroot.to_path_buf()),
            Some(format!(
                "note: `{}` is built for {}: the checks and their reference run under `{}`",
                command.name,
                arch.debian,
                emulator.path.display()
            )),
        ),
        Err(_) => (None, None),
    }
}

/// The sandboxes of one run: the root the checks run in, with each
/// check's [`Opens`], the reference, and the limits.
struct Sandboxes {
    tree: Arc<Sandbox>,
    /// The root for checks that open something of the host, by what.
    opened: Vec<(Opens, Arc<Sandbox>)>,
    reference: Option<Arc<Sandbox>>,
    cgroups: Cgroups,
    env: Vec<(String, String)>,
    /// Programs in the tree (not the reference) run under this emulator.
    emulator: Option<Arc<sandbox::binfmt::native::Entry>>,
    /// The reference's side of probes of earlier runs of this tree.
    remembered: Option<remembered::Remembered>,
    /// A user and network namespace for each worker, entered by its checks
    /// in turn ([`sandbox::NetSlot`]); none when they cannot be made.
    slots: Vec<Arc<sandbox::NetSlot>>,
}

impl Sandboxes {
    /// The root as `check` enters it.
    fn tree_for(&self, check: &Check) -> &Arc<Sandbox> {
        let opened = self.opened.iter().find(|(opens, _)| *opens == check.opens);
        opened.map_or(&self.tree, |(_, sandbox)| sandbox)
    }

    /// The namespaces of the worker running on this thread.
    fn slot(&self) -> Option<Arc<sandbox::NetSlot>> {
        rayon::current_thread_index().and_then(|i| self.slots.get(i)).cloned()
    }

    /// A run of `check` in `sandbox` with `env`: this worker's namespaces,
    /// the check's limits and timeout, the emulator of another CPU level;
    /// no text looked for, output interleaved, no tracer.
    fn setup<'a>(
        &'a self,
        check: &Check,
        sandbox: &'a Arc<Sandbox>,
        env: &'a [(String, String)],
    ) -> runner::Setup<'a> {
        runner::Setup {
            slot: self.slot(),
            sandbox,
            cgroups: &self.cgroups,
            env,
            limits: check.limits,
            timeout: check.timeout,
            contains: None,
            split: false,
            tracer: None,
            emulator: self.emulator.clone(),
        }
    }

    /// The whole environment of `check`: the smoke environment with the
    /// check's own variables over it, sorted.
    fn env_for(&self, check: &Check) -> Vec<(String, String)> {
        let mut env: std::collections::BTreeMap<String, String> =
            self.env.iter().cloned().collect();
        env.extend(check.env.iter().cloned());
        env.into_iter().collect()
    }
}

/// Runs `checks` inside the rootfs at `root`, `options.jobs` at a time.
/// Results come in the order of `checks`. The report's notes say when
/// limits are rlimits only. Interrupted (SIGINT, SIGTERM), it kills and
/// reaps the running checks, runs no more, and returns an error.
pub fn run(root: &Path, checks: &[Check], options: &Options) -> Result<Report> {
    run_emulated(root, checks, options, None)
}

/// The tree's programs run under an emulator: its `binfmt_misc` entry,
/// and the variables it reads from the environment.
pub(crate) struct Emulation {
    pub entry: Arc<sandbox::binfmt::native::Entry>,
    pub env: Vec<(String, String)>,
}

/// [`run`], with the tree's programs run under `emulation` (the variables
/// it reads added to every check's environment), the reference's natively.
pub(crate) fn run_emulated(
    root: &Path,
    checks: &[Check],
    options: &Options,
    emulation: Option<Emulation>,
) -> Result<Report> {
    let started = Instant::now();
    if let Some(line) = sandbox::binfmt::missing_emulator(root) {
        return Ok(Report { results: Vec::new(), elapsed: started.elapsed(), notes: vec![line] });
    }
    let mut sandboxes = enter_all(root, RootKind::Tree, checks, options)?;
    if let Some(emulation) = emulation {
        sandboxes.emulator = Some(emulation.entry);
        sandboxes.env.extend(emulation.env);
        sandboxes.env.sort();
    }
    sandboxes.remembered = remember(root, checks, options)?;
    let results = drive(&sandboxes, checks, options.jobs, "smoke", run_check)?;
    let mut notes: Vec<String> = sandboxes.cgroups.note().into_iter().collect();
    if let Some(remembered) = sandboxes.remembered.take() {
        notes.push(remembered.note());
        remembered.save()?;
    }
    Ok(Report { results, elapsed: started.elapsed(), notes })
}

/// The remembered reference runs of the tree at `root`, when its probes
/// have a reference and it is a tree this tool built (its manifest beside
/// it describes it).
fn remember(
    root: &Path,
    checks: &[Check],
    options: &Options,
) -> Result<Option<remembered::Remembered>> {
    let Some(reference) = &options.reference else { return Ok(None) };
    if !checks.iter().any(|c| matches!(c.expect, Expect::Probe { .. })) {
        return Ok(None);
    }
    let manifest = crate::build::Beside::of(root).current_manifest();
    let Ok(manifest) = manifest else { return Ok(None) };
    let remembered = remembered::Remembered::open(root, &manifest, reference, &options.hostname)?;
    Ok(Some(remembered))
}

/// The one check driver of `smoke` and `trace`: `each` for every check,
/// `jobs` at a time, results in the order of `checks`, with SIGINT and
/// SIGTERM turned into killing the running checks and starting no more (an
/// error then).
fn drive<T: Send>(
    sandboxes: &Sandboxes,
    checks: &[Check],
    jobs: usize,
    what: &str,
    each: impl Fn(&Sandboxes, &Check) -> T + Sync,
) -> Result<Vec<T>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .thread_name({
            let what = what.to_string();
            move |i| format!("{what}-{i}")
        })
        .build()
        .with_context(|| format!("starting the {what} threads"))?;
    let _signals = Interruptible::new()?;
    let results =
        pool.install(|| checks.par_iter().map(|check| each(sandboxes, check)).collect::<Vec<_>>());
    if runner::INTERRUPTED.load(Ordering::Relaxed) {
        anyhow::bail!("interrupted: the running checks were killed, the others not started");
    }
    Ok(results)
}

/// Enters `root` as `kind` once for the checks that open nothing and once
/// for each distinct [`Opens`], and the reference when there is one.
fn enter_all(
    root: &Path,
    kind: RootKind,
    checks: &[Check],
    options: &Options,
) -> Result<Sandboxes> {
    if let Some(reason) = cannot_enter_reason() {
        anyhow::bail!(reason);
    }
    let enter = |root: &Path, kind, access: &Access| -> Result<Arc<Sandbox>> {
        let options = sandbox::Options {
            root: root.to_path_buf(),
            kind,
            hostname: options.hostname.clone(),
            interactive: false,
        };
        let sandbox = Arc::new(Sandbox::with_access(&options, access)?);
        sandbox.preflight()?;
        Ok(sandbox)
    };
    let tree = enter(root, kind, &Access::default())?;
    let mut opened: Vec<(Opens, Arc<Sandbox>)> = Vec::new();
    for check in checks {
        if check.opens == Opens::default() || opened.iter().any(|(o, _)| *o == check.opens) {
            continue;
        }
        opened.push((check.opens.clone(), enter(root, kind, &access(root, &check.opens)?)?));
    }
    let reference = options
        .reference
        .as_deref()
        .map(|r| enter(r, RootKind::Reference, &Access::default()))
        .transpose()?;
    let env = environment(None);
    let cgroups = Cgroups::create();
    // A worker whose namespaces cannot be made makes them for each run.
    let slots = (0..options.jobs.max(1))
        .map(|_| sandbox::NetSlot::create().map(Arc::new))
        .collect::<Result<Vec<_>>>()
        .unwrap_or_default();
    let remembered = None;
    Ok(Sandboxes { tree, opened, reference, cgroups, env, emulator: None, remembered, slots })
}

/// What a check's [`Opens`] ask of the sandbox of `root`: the binds
/// resolved in it, the network, the working directory (a directory of
/// the root or of a bind); root inside, as every check of a spec.
fn access(root: &Path, opens: &Opens) -> Result<Access> {
    let (binds, network, workdir) = match opens {
        Opens::Spec { binds, network, workdir } => (binds, *network, workdir),
        Opens::Resolved(access) => return Ok(access.clone()),
    };
    let binds = binds.iter().map(|b| sandbox::resolve_item(root, b));
    let binds: Vec<sandbox::Bind> = binds.collect::<Result<_, _>>()?;
    let workdir = match workdir {
        Some(item) if !sandbox::is_dir_inside(root, &item.value, &binds) => {
            return Err(crate::spec::SpecError::at(
                &item.at,
                format!(
                    "the working directory `{}` is not a directory in the tree",
                    item.value.display()
                ),
            )
            .help("give a directory of the tree or of one of the check's `binds`")
            .into());
        }
        Some(item) => Some(item.value.clone()),
        None => None,
    };
    Ok(Access { binds, network, workdir, ..Access::default() })
}

/// SIGINT and SIGTERM set the interrupted flag while a run is going on,
/// instead of killing the tool with its cgroups left behind.
struct Interruptible {
    ids: Vec<signal_hook::SigId>,
}

impl Interruptible {
    fn new() -> Result<Interruptible> {
        runner::INTERRUPTED.store(false, Ordering::Relaxed);
        let mut ids = Vec::new();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // SAFETY: the handler only stores to an atomic.
            let id = unsafe {
                signal_hook::low_level::register(signal, || {
                    runner::INTERRUPTED.store(true, Ordering::Relaxed)
                })
            }
            .context("installing a signal handler")?;
            ids.push(id);
        }
        Ok(Interruptible { ids })
    }
}

impl Drop for Interruptible {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

fn run_check(sandboxes: &Sandboxes, check: &Check) -> Outcomes {
    let started = Instant::now();
    let mut outcomes = if runner::INTERRUPTED.load(Ordering::Relaxed) {
        skipped(check)
    } else {
        compare::judge(sandboxes, check)
    };
    outcomes.elapsed = started.elapsed();
    outcomes
}

fn skipped(check: &Check) -> Outcomes {
    Outcomes::not_run(check, "not run: interrupted")
}

impl Outcomes {
    /// `check`'s row with `outcome`, before anything ran: no status, no
    /// output, no reference.
    pub(crate) fn bare(check: Check, outcome: Outcome) -> Outcomes {
        Outcomes {
            ran: check.argv.clone(),
            check,
            outcome,
            reordered: false,
            status: None,
            output: String::new(),
            host: None,
            reference_runs: 0,
            diff: None,
            elapsed: Duration::ZERO,
        }
    }

    /// A check that was not started, with the reason as its error.
    pub fn not_run(check: &Check, why: &str) -> Outcomes {
        Outcomes::bare(check.clone(), Outcome::Error(why.to_string()))
    }

    /// The row of `check`'s run in the tree, its output as shown.
    pub(crate) fn of_run(check: &Check, ran: Ran, outcome: Outcome, output: String) -> Outcomes {
        Outcomes {
            ran: ran.argv,
            status: ran.status,
            output,
            elapsed: ran.elapsed,
            ..Outcomes::bare(check.clone(), outcome)
        }
    }
}

/// The minimal environment of every command inside.
pub fn environment(term: Option<&str>) -> Vec<(String, String)> {
    vec![
        ("HOME".to_string(), "/root".to_string()),
        ("PATH".to_string(), crate::resolve::default_path_var()),
        ("TERM".to_string(), term.unwrap_or("xterm").to_string()),
    ]
}

/// Runs one command inside the rootfs attached to this terminal, with
/// `access` (binds, network, user, a writable layer, the working
/// directory) and `env` as the whole environment, and returns its exit
/// status (128 + N for a signal). Ctrl-C goes to the command, not to this
/// process; SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to this process are
/// forwarded to it.
pub fn run_attached(
    root: &Path,
    hostname: &str,
    access: &Access,
    argv: &[String],
    env: &[(String, String)],
) -> Result<i32> {
    if let Some(reason) = cannot_enter_reason() {
        anyhow::bail!(reason);
    }
    let options = sandbox::Options {
        root: root.to_path_buf(),
        kind: RootKind::Tree,
        hostname: hostname.to_string(),
        interactive: true,
    };
    let sandbox = Arc::new(Sandbox::with_access(&options, access)?);
    sandbox.preflight()?;
    let foreground = sandbox::terminal_is_ours();
    let launch = sandbox::Launch::new(None, Limits::default().tmp_size).in_foreground(foreground);
    let (expression, log) = sandbox.command(argv, env, Arc::new(launch))?;
    // The command runs as PID 2 under an init (`run/sandbox/init.rs`): the
    // terminal's signals go to it directly, and those sent to this process
    // reach it through PID 1.
    let forwarding = sandbox::forward_to_pid1(log.clone())?;
    let result = expression.unchecked().run();
    drop(forwarding);
    if foreground {
        sandbox::take_terminal_back();
    }
    let output = result.map_err(|e| match (log.step(), e.raw_os_error()) {
        // The exec itself failed: the command is not there, or cannot be
        // run, which a shell reports with 127 and 126.
        (sandbox::Step::Executing, Some(libc::ENOENT)) => {
            NotStarted { command: argv[0].clone(), kind: NotStartedKind::Missing }.into()
        }
        (sandbox::Step::Executing, Some(libc::EACCES)) => {
            NotStarted { command: argv[0].clone(), kind: NotStartedKind::NotExecutable }.into()
        }
        _ => anyhow::anyhow!(
            "cannot run `{}` inside the rootfs: {e} (while {})",
            argv[0],
            log.step().words()
        ),
    })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(output.status.code().or_else(|| output.status.signal().map(|s| 128 + s)).unwrap_or(1))
}

/// Why a command given to `run` could not be started in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStartedKind {
    /// Nothing of that name (on `PATH` inside, for a bare name): exit 127.
    Missing,
    /// Found, but not executable: exit 126.
    NotExecutable,
}

/// A command `run` (or `shell`) could not start inside the tree, with the
/// exit status a shell gives for the same mistake.
#[derive(Debug)]
pub struct NotStarted {
    pub command: String,
    pub kind: NotStartedKind,
}

impl NotStarted {
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            NotStartedKind::Missing => 127,
            NotStartedKind::NotExecutable => 126,
        }
    }
}

impl std::fmt::Display for NotStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let command = &self.command;
        match self.kind {
            NotStartedKind::Missing => write!(
                f,
                "`{command}` is not in the tree\nhelp: add \"{command}\" to `commands` in the spec, then run again (the tree is rebuilt first)"
            ),
            NotStartedKind::NotExecutable => {
                write!(f, "`{command}` is in the tree but cannot be executed (permission denied)")
            }
        }
    }
}

impl std::error::Error for NotStarted {}

/// A command line as a shell would need it typed, for messages.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What [`smoke_tree`] found.
#[derive(Debug)]
pub struct Smoked {
    pub report: Report,
    /// Why probes are judged by their exit status alone, when they are.
    pub notes: Vec<String>,
}

/// A built tree's own smoke test in one call, as `rootfs smoke` runs it:
/// the spec's checks and structure tests, as many at once as the machine has cores, each probe
/// judged against `sysroot`, the folder the tree was built from (`/` for a
/// host build).
pub fn smoke_tree(built: &crate::build::Built, sysroot: &Path) -> Result<Smoked> {
    let checks = checks(&built.spec, &built.manifest);
    let (reference, note) = reference(&built.spec, &built.manifest, &built.out, sysroot);
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let options = Options { jobs, hostname: built.spec.name.clone(), reference };
    let files: Vec<_> = built.spec.smoke.structure_tests.iter().map(|t| t.value.clone()).collect();
    let report = if files.is_empty() {
        run(&built.out, &checks, &options)?
    } else {
        let subject = structure::Subject::of_tree(&built.spec, &built.manifest, &built.out)?;
        structure::run(&checks, &files, &subject, &built.spec.smoke, &options)?
    };
    let notes = note.into_iter().chain(report.notes.iter().cloned()).collect();
    Ok(Smoked { report, notes })
}
