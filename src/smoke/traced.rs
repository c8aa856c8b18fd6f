//! The checks of a spec run on the sysroot under a tracer: what each check's process tree used, for `rootfs trace`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use rayon::prelude::*;

use super::runner::{self, End, Ran, Setup};
use super::{Check, Expect, Options, Sandboxes};
use crate::trace::Trace;

/// One check run on the sysroot under a tracer.
#[derive(Debug)]
pub struct Traced {
    pub check: Check,
    /// The runs made: a probe's `--version`, and `--help` when that failed.
    pub runs: Vec<Ran>,
    /// What they used, together; an error when tracing failed.
    pub trace: Result<Trace>,
}

/// Runs every check on the sysroot at `sysroot` as the smoke test's
/// reference would (a probe's `--help` only when its `--version` fails),
/// each under its own tracer.
pub fn trace_checks(sysroot: &Path, checks: &[Check], options: &Options) -> Result<Vec<Traced>> {
    let mut options = options.clone();
    options.reference = Some(sysroot.to_path_buf());
    let sandboxes = super::enter_all(sysroot, &[], &options)?;
    if let Some(note) = sandboxes.cgroups.note() {
        eprintln!("{note}");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|i| format!("trace-{i}"))
        .build()?;
    let reference = sandboxes.reference.clone().expect("a reference was asked for");
    Ok(pool.install(|| {
        checks.par_iter().map(|check| trace_one(&sandboxes, &reference, check)).collect()
    }))
}

fn trace_one(
    sandboxes: &Sandboxes,
    reference: &Arc<crate::sandbox::Sandbox>,
    check: &Check,
) -> Traced {
    let mut traced = Traced { check: check.clone(), runs: Vec::new(), trace: Ok(Trace::default()) };
    let argvs: Vec<&[String]> = match &check.expect {
        Expect::Probe { fallback } => vec![&check.argv, fallback],
        _ => vec![&check.argv],
    };
    for argv in argvs {
        let (ran, found) = match run_traced(sandboxes, reference, check, argv) {
            Ok(done) => done,
            Err(e) => {
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
    traced
}

/// One run under a fresh tracer: what it did, and what it used.
fn run_traced(
    sandboxes: &Sandboxes,
    reference: &Arc<crate::sandbox::Sandbox>,
    check: &Check,
    argv: &[String],
) -> Result<(Ran, Result<Trace>)> {
    let (filter, supervisor) = crate::trace::start()?;
    let setup = Setup {
        sandbox: reference,
        cgroups: &sandboxes.cgroups,
        env: &sandboxes.env,
        limits: check.limits,
        timeout: check.timeout,
        contains: None,
        tracer: Some(Arc::new(filter)),
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
