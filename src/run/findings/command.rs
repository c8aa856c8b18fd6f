//! `rootfs trace` as one call: the checks to trace (the spec's, or one command opened as `run` would open it), run on the sysroot by the smoke test's driver under a tracer, the checks that failed there, the findings, and the fragment written only when nothing failed (or `keep_going`).

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::build::Built;
use crate::run::smoke::{self, Check, Opens, Outcome, Traced};

/// Lines of a failed check's output shown, from its end.
const TAIL_LINES: usize = 12;

/// What to trace, and what to do with what it finds.
#[derive(Clone, Debug)]
pub struct Options {
    /// The sysroot the tree was built from: where the checks run.
    pub sysroot: PathBuf,
    /// Trace this command line instead of the spec's checks.
    pub command: Vec<String>,
    /// For `command`: what it opens, as `run` takes it (`--bind`,
    /// `--workdir`, `--env`, `--network`, over the spec's `[shell]`).
    pub request: crate::run::devenv::Request,
    /// Checks traced at once.
    pub jobs: usize,
    /// Where to write the fragment.
    pub write: Option<PathBuf>,
    /// Write the fragment even when a check failed on the sysroot.
    pub keep_going: bool,
}

/// What `rootfs trace` prints, and its exit status.
#[derive(Clone, Debug)]
pub struct Report {
    /// The traced command's own output (for `command`), the failed checks
    /// with their output's tail, the findings and a closing count.
    pub stdout: String,
    /// Notes: the fragment written, or why not.
    pub stderr: String,
    /// 0 when nothing failed and nothing is missing (or the fragment was
    /// written), 1 otherwise.
    pub exit: u8,
}

/// Traces `built`'s checks (or `options.command`) on the sysroot and says
/// what the tree lacks; writes the fragment when asked and no check failed
/// (or `keep_going`).
pub fn trace(built: &Built, options: &Options) -> Result<Report> {
    let checks = checks(built, options)?;
    let smoke_options =
        smoke::Options { jobs: options.jobs, hostname: built.spec.name.clone(), reference: None };
    let (traced, limits_note) = smoke::trace_checks(&options.sysroot, &checks, &smoke_options)?;
    let sysroot = crate::resolve::sysroot::Sysroot::new(&options.sysroot);
    let findings =
        super::find(&traced, &built.manifest, &built.spec, &sysroot, options.write.as_deref());
    let mut stdout = String::new();
    if !options.command.is_empty() {
        command_output(&mut stdout, &traced);
    }
    // The command's output is shown whole already.
    let failed = failures(&mut stdout, &traced, options.command.is_empty());
    stdout.push_str(&super::report(&findings, traced.len(), failed));
    let mut stderr = limits_note.map(|note| format!("{note}\n")).unwrap_or_default();
    let mut exit = u8::from(failed > 0 || !findings.is_empty() || !findings.errors.is_empty());
    if let Some(path) = &options.write {
        if failed > 0 && !options.keep_going {
            let _ = writeln!(
                stderr,
                "not writing {}: {failed} of the traced checks failed on the sysroot, so it would miss what they did not reach (--keep-going writes it anyway)",
                path.display()
            );
            return Ok(Report { stdout, stderr, exit: 1 });
        }
        write_fragment(built, &findings, path)?;
        let _ = writeln!(stderr, "wrote {}", path.display());
        exit = u8::from(failed > 0);
    }
    Ok(Report { stdout, stderr, exit })
}

/// The spec's checks, or the one command with what `run` would open for
/// it (binds, working directory, environment, network and user, from the
/// spec's `[shell]` with the request over it), resolved in the sysroot.
fn checks(built: &Built, options: &Options) -> Result<Vec<Check>> {
    if options.command.is_empty() {
        return Ok(smoke::checks(&built.spec, &built.manifest));
    }
    let timeout = Duration::from_secs_f64(built.spec.smoke.timeout);
    let argv: Vec<&str> = options.command.iter().map(String::as_str).collect();
    let mut check = Check::exits_zero(&argv, timeout);
    check.name = smoke::shell_words(&options.command);
    let term = smoke::environment(None).into_iter().find(|(k, _)| k == "TERM").map(|(_, v)| v);
    let devenv = crate::run::devenv::prepare(
        &built.spec,
        &options.sysroot,
        &options.request,
        term.as_deref().unwrap_or("xterm"),
    )?;
    check.opens = Opens::Resolved(devenv.access);
    check.env = devenv.env;
    Ok(vec![check])
}

/// The traced command's own output, then how it ended, as `run` shows it.
fn command_output(out: &mut String, traced: &[Traced]) {
    for one in traced {
        let Some(ran) = one.runs.last() else { continue };
        out.push_str(&ran.output.text());
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let _ = writeln!(out, "`{}` {}", one.check.name, ended(ran));
    }
}

/// How a run ended, in words.
fn ended(ran: &smoke::Ran) -> String {
    match (&ran.end, ran.signal, ran.status) {
        (smoke::End::TimedOut, _, _) => "was killed at its timeout".to_string(),
        (smoke::End::Interrupted, _, _) => "was interrupted".to_string(),
        (smoke::End::NotStarted(why), _, _) => format!("did not start: {why}"),
        (smoke::End::Exited, Some(signal), _) => format!("was killed by signal {signal}"),
        (smoke::End::Exited, None, Some(status)) => format!("exited with status {status}"),
        (smoke::End::Exited, None, None) => "ended with no exit status".to_string(),
    }
}

/// Each check that failed on the sysroot, with its command line and the
/// tail of its output (when `tails`); how many failed.
fn failures(out: &mut String, traced: &[Traced], tails: bool) -> usize {
    let mut failed = 0;
    for one in traced {
        let why = match &one.outcome {
            Outcome::Pass => continue,
            Outcome::Fail(why) | Outcome::Error(why) => why.clone(),
            Outcome::TimedOut => {
                format!("killed after {:.1} s", one.check.timeout.as_secs_f64())
            }
        };
        failed += 1;
        let _ = writeln!(out, "FAIL on the sysroot: {}: {why}", super::short_name(&one.check.name));
        let Some(ran) = one.runs.last().filter(|_| tails) else { continue };
        let _ = writeln!(out, "    $ {}", smoke::shell_words(&ran.argv));
        let text = ran.output.text();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > TAIL_LINES {
            let _ = writeln!(out, "    | ... ({} lines before)", lines.len() - TAIL_LINES);
        }
        for line in &lines[lines.len().saturating_sub(TAIL_LINES)..] {
            let _ = writeln!(out, "    | {line}");
        }
    }
    failed
}

/// The fragment at `path`, replacing only a fragment of this tool.
fn write_fragment(built: &Built, findings: &super::Findings, path: &std::path::Path) -> Result<()> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let text = super::render(findings, &built.spec.name, &file_name);
    crate::build::output::check_file(path, "a fragment written by `rootfs trace`", |b| {
        b.starts_with(super::HEADER.as_bytes())
    })?;
    crate::fsutil::write_file_atomically(path, text.as_bytes())
        .with_context(|| format!("writing the fragment `{}`", path.display()))
}
