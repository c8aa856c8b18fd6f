//! Smoke tests: every command of a built rootfs, and the spec's checks, run inside it in fresh namespaces, in parallel, each with a timeout.

mod enter;
mod report;

use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;

pub use self::enter::{DEV_NODES, Enter, cannot_enter_reason};
pub use self::report::Report;
use crate::manifest::Manifest;
use crate::spec::Spec;

/// `PATH` inside the rootfs.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// At most this much of a check's output is kept for the report.
const OUTPUT_LIMIT: u64 = 64 * 1024;

/// One thing to run inside the rootfs and what it must show.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// How the report names it: the command's name, or the check's command line.
    pub name: String,
    pub argv: Vec<String>,
    /// Tried when `argv` fails: a command run with the default `--version`
    /// falls back to `--help`.
    pub fallback: Option<Vec<String>>,
    pub exit: i32,
    pub contains: Option<String>,
    pub timeout: Duration,
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
    /// The command line that ran last (the fallback, if it was tried).
    pub ran: Vec<String>,
    /// Exit status; 128 + N for a signal.
    pub status: Option<i32>,
    /// Standard output and error, interleaved, cut at 64 KiB.
    pub output: String,
    pub elapsed: Duration,
}

/// How to run the checks.
#[derive(Clone, Debug)]
pub struct Options {
    /// Checks run at once.
    pub jobs: usize,
    /// The hostname inside (the spec's name by default).
    pub hostname: String,
}

/// The checks a spec asks for: each command not skipped, run with its
/// arguments from `[smoke.args]` (default `--version`, falling back to
/// `--help`), then every `[[smoke.checks]]` entry.
pub fn checks(spec: &Spec, manifest: &Manifest) -> Vec<Check> {
    let timeout = Duration::from_secs_f64(spec.smoke.timeout);
    let mut checks = Vec::new();
    for command in &manifest.commands {
        if spec.smoke.skip.iter().any(|s| s.value == command.name) {
            continue;
        }
        let path = command.path.display().to_string();
        let (argv, fallback) = match spec.smoke.args.get(&command.name) {
            Some(args) => (std::iter::once(path).chain(args.value.iter().cloned()).collect(), None),
            None => (
                vec![path.clone(), "--version".to_string()],
                Some(vec![path, "--help".to_string()]),
            ),
        };
        checks.push(Check {
            name: command.name.clone(),
            argv,
            fallback,
            exit: 0,
            contains: None,
            timeout,
        });
    }
    for (i, item) in spec.smoke.checks.iter().enumerate() {
        let check = &item.value;
        checks.push(Check {
            name: format!("check {}: {}", i + 1, shell_words(&check.run)),
            argv: check.run.clone(),
            fallback: None,
            exit: check.exit,
            contains: check.contains.clone(),
            timeout: check.timeout.map_or(timeout, Duration::from_secs_f64),
        });
    }
    checks
}

/// Runs `checks` inside the rootfs at `root`, `options.jobs` at a time.
/// Results come in the order of `checks`.
pub fn run(root: &Path, checks: &[Check], options: &Options) -> Result<Report> {
    if let Some(reason) = cannot_enter_reason() {
        anyhow::bail!(reason);
    }
    let enter = Arc::new(Enter::new(root, &options.hostname, false)?);
    enter.preflight()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|i| format!("smoke-{i}"))
        .build()
        .context("starting the smoke-test threads")?;
    let started = Instant::now();
    let results = pool
        .install(|| checks.par_iter().map(|check| run_check(&enter, check)).collect::<Vec<_>>());
    Ok(Report { results, elapsed: started.elapsed() })
}

/// The minimal environment of every command inside.
pub fn environment(term: Option<&str>) -> Vec<(String, String)> {
    vec![
        ("HOME".to_string(), "/root".to_string()),
        ("PATH".to_string(), PATH.to_string()),
        ("TERM".to_string(), term.unwrap_or("xterm").to_string()),
    ]
}

fn run_check(enter: &Arc<Enter>, check: &Check) -> Outcomes {
    let started = Instant::now();
    let mut result = run_argv(enter, check, &check.argv);
    if let (Some(fallback), Outcome::Fail(_)) = (&check.fallback, &result.outcome) {
        let second = run_argv(enter, check, fallback);
        if second.outcome == Outcome::Pass {
            result = second;
        }
    }
    result.elapsed = started.elapsed();
    result
}

fn run_argv(enter: &Arc<Enter>, check: &Check, argv: &[String]) -> Outcomes {
    let started = Instant::now();
    let mut outcomes = Outcomes {
        check: check.clone(),
        outcome: Outcome::Pass,
        ran: argv.to_vec(),
        status: None,
        output: String::new(),
        elapsed: Duration::ZERO,
    };
    let spawned = (|| -> Result<_> {
        // Output goes to an unnamed temporary file, not a pipe in memory, so
        // a command that prints without end cannot exhaust our memory.
        let sink = tempfile::tempfile().context("creating a file for the output")?;
        let (expression, log) = enter.command(argv, &environment(None))?;
        let handle = expression
            .stdin_null()
            .stderr_to_stdout()
            .stdout_file(sink.try_clone().context("duplicating the output file")?)
            .unchecked()
            .start()
            .map_err(|e| anyhow::anyhow!("{e} (while {})", log.step()))?;
        Ok((handle, sink))
    })();
    let (handle, mut sink) = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            outcomes.outcome = Outcome::Error(format!("cannot run inside the rootfs: {e:#}"));
            outcomes.elapsed = started.elapsed();
            return outcomes;
        }
    };
    let waited = handle.wait_timeout(check.timeout);
    let status = match waited {
        Ok(Some(output)) => Some(output.status),
        Ok(None) => {
            // Killing the keeper kills PID 1 and with it the whole namespace.
            let _ = handle.kill();
            outcomes.outcome = Outcome::TimedOut;
            None
        }
        Err(e) => {
            outcomes.outcome = Outcome::Error(format!("waiting for it failed: {e}"));
            None
        }
    };
    outcomes.elapsed = started.elapsed();
    let mut bytes = Vec::new();
    if sink.rewind().is_ok() {
        let _ = (&mut sink).take(OUTPUT_LIMIT).read_to_end(&mut bytes);
    }
    outcomes.output = String::from_utf8_lossy(&bytes).into_owned();
    if let Some(status) = status {
        use std::os::unix::process::ExitStatusExt;
        let code = status.code().or_else(|| status.signal().map(|s| 128 + s));
        outcomes.status = code;
        let expected = check.exit;
        if code != Some(expected) {
            outcomes.outcome = Outcome::Fail(match status.signal() {
                Some(s) => format!("killed by signal {s}, expected exit {expected}"),
                None => format!("exit {}, expected {expected}", code.unwrap_or(-1)),
            });
        } else if let Some(text) = &check.contains
            && !outcomes.output.contains(text.as_str())
        {
            outcomes.outcome = Outcome::Fail(format!("output does not contain {text:?}"));
        }
    }
    outcomes
}

/// Runs one command inside the rootfs attached to this terminal, and
/// returns its exit status (128 + N for a signal). Ctrl-C goes to the
/// command, not to this process.
pub fn run_interactive(root: &Path, hostname: &str, argv: &[String]) -> Result<i32> {
    if let Some(reason) = cannot_enter_reason() {
        anyhow::bail!(reason);
    }
    let enter = Arc::new(Enter::new(root, hostname, true)?);
    enter.preflight()?;
    let term = std::env::var("TERM").ok();
    let (expression, log) = enter.command(argv, &environment(term.as_deref()))?;
    // SAFETY: setting a signal disposition; restored below.
    let previous = unsafe {
        (libc::signal(libc::SIGINT, libc::SIG_IGN), libc::signal(libc::SIGQUIT, libc::SIG_IGN))
    };
    let result = expression.unchecked().run();
    // SAFETY: as above.
    unsafe {
        libc::signal(libc::SIGINT, previous.0);
        libc::signal(libc::SIGQUIT, previous.1);
    }
    let output = result.map_err(|e| {
        anyhow::anyhow!("cannot run `{}` inside the rootfs: {e} (while {})", argv[0], log.step())
    })?;
    use std::os::unix::process::ExitStatusExt;
    Ok(output.status.code().or_else(|| output.status.signal().map(|s| 128 + s)).unwrap_or(1))
}

/// The shell to open in a rootfs: the first of its commands that is a
/// shell, else `/bin/sh`.
pub fn shell_of(manifest: &Manifest) -> String {
    const SHELLS: &[&str] = &["bash", "sh", "dash", "ash", "zsh", "busybox"];
    manifest
        .commands
        .iter()
        .find(|c| c.path.file_name().and_then(|n| n.to_str()).is_some_and(|n| SHELLS.contains(&n)))
        .map(|c| {
            if c.path.ends_with("busybox") {
                "/bin/sh".to_string()
            } else {
                c.path.display().to_string()
            }
        })
        .unwrap_or_else(|| "/bin/sh".to_string())
}

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
