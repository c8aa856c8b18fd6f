//! The checks of a spec run on the sysroot under a tracer: what each check's process tree used, for `rootfs trace`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use super::runner::{self, End, Ran, Setup};
use super::{Check, Expect, Options, Outcome, Sandboxes};
use crate::run::sandbox::RootKind;
use crate::run::trace::Trace;

/// One check run on the sysroot under a tracer.
#[derive(Debug)]
pub struct Traced {
    pub check: Check,
    /// The runs made: a probe's `--version`, and `--help` when that failed.
    pub runs: Vec<Ran>,
    /// What they used, together; an error when tracing failed.
    pub trace: Result<Trace>,
    /// Whether the check did what it asks for on the sysroot: a probe
    /// always does (the sysroot is what probes are judged against), unless
    /// it could not start.
    pub outcome: Outcome,
}

/// Runs every check on the sysroot at `sysroot` as the smoke test's
/// reference would (a probe's `--help` only when its `--version` fails),
/// each under its own tracer, through the same driver as the smoke test:
/// each check with its binds, network, working directory, environment and
/// limits, and Ctrl-C killing what runs.
/// Returns the traced checks and, when limits are rlimits only, a note
/// saying so.
pub fn trace_checks(
    sysroot: &Path,
    checks: &[Check],
    options: &Options,
) -> Result<(Vec<Traced>, Option<String>)> {
    let options = Options { reference: None, ..options.clone() };
    let sandboxes = super::enter_all(sysroot, RootKind::Reference, checks, &options)?;
    let traced = super::drive(&sandboxes, checks, options.jobs, "trace", trace_one)?;
    Ok((traced, sandboxes.cgroups.note()))
}

fn trace_one(sandboxes: &Sandboxes, check: &Check) -> Traced {
    let mut traced = Traced {
        check: check.clone(),
        runs: Vec::new(),
        trace: Ok(Trace::default()),
        outcome: Outcome::Pass,
    };
    let argvs: Vec<&[String]> = match &check.expect {
        Expect::Probe { fallback } => vec![&check.argv, fallback],
        _ => vec![&check.argv],
    };
    for argv in argvs {
        let (ran, found) = match run_traced(sandboxes, check, argv) {
            Ok(done) => done,
            Err(e) => {
                traced.outcome = Outcome::Error(format!("cannot trace: {e:#}"));
                traced.trace = Err(e);
                return traced;
            }
        };
        let succeeded = ran.end == End::Exited && ran.status == Some(0);
        traced.runs.push(ran);
        match (found, &mut traced.trace) {
            (Ok(found), Ok(trace)) => {
                trace.events.extend(found.events);
                trace.notifications += found.notifications;
            }
            (Err(e), _) => {
                traced.trace = Err(e);
                return traced;
            }
            (Ok(_), Err(_)) => {}
        }
        // A probe's `--help` runs only when its `--version` failed.
        if succeeded {
            break;
        }
    }
    if let Ok(trace) = &mut traced.trace {
        trace.events.sort();
        trace.events.dedup();
    }
    if let Some(last) = traced.runs.last() {
        traced.outcome = outcome(check, last);
    }
    traced
}

/// What the check's last run shows against what the check asks for.
fn outcome(check: &Check, ran: &Ran) -> Outcome {
    match &check.expect {
        Expect::Probe { .. } => match &ran.end {
            End::NotStarted(why) => Outcome::Error(why.clone()),
            _ => Outcome::Pass,
        },
        Expect::Exit { code, contains } => {
            super::compare::absolute(ran, Some(*code), contains.as_deref())
        }
        Expect::SameAsHost { exit, contains } => {
            super::compare::absolute(ran, *exit, contains.as_deref())
        }
        Expect::Structure(test) => super::compare::absolute(ran, Some(test.exit_code), None),
    }
}

/// One run under a fresh tracer: what it did, and what it used.
fn run_traced(
    sandboxes: &Sandboxes,
    check: &Check,
    argv: &[String],
) -> Result<(Ran, Result<Trace>)> {
    let (filter, supervisor) = crate::run::trace::start()?;
    let env = sandboxes.env_for(check);
    let contains = match &check.expect {
        Expect::Probe { .. } | Expect::Structure(_) => None,
        Expect::Exit { contains, .. } | Expect::SameAsHost { contains, .. } => contains.as_deref(),
    };
    let setup = Setup {
        contains,
        tracer: Some(Arc::new(filter)),
        emulator: None,
        ..sandboxes.setup(check, sandboxes.tree_for(check), &env)
    };
    let ran = runner::run(&setup, argv);
    // Nothing of the run is left by now: the listener has no process any
    // more, or the command never started.
    let found = match ran.end {
        End::NotStarted(_) => supervisor.stop(),
        _ => supervisor.finish(),
    };
    Ok((ran, found))
}
