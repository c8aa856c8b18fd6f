//! The verdict of one check: an exit status and a text for explicit checks, and for a command's default probe the same behaviour as the reference (the sysroot), with a short diff when they differ.

use std::sync::Arc;

use super::runner::{self, End, Ran, Setup};
use super::{Check, Expect, HostRun, Outcome, Outcomes, Sandboxes};
use crate::run::sandbox::Sandbox;

/// Removed or added lines in a row shown in a report's diff.
const DIFF_RUN: usize = 6;

pub(super) fn judge(sandboxes: &Sandboxes, check: &Check) -> Outcomes {
    match (&check.expect, &sandboxes.reference) {
        (Expect::Probe { fallback }, Some(reference)) => {
            probe_against(sandboxes, reference, check, fallback)
        }
        (Expect::Probe { fallback }, None) => probe_alone(sandboxes, check, fallback),
        (Expect::Exit { code, contains }, _) => {
            let ran = run_in_tree(sandboxes, check, contains.as_deref());
            let outcome = absolute(&ran, Some(*code), contains.as_deref());
            outcomes(check, ran, outcome, None)
        }
        (Expect::SameAsHost { exit, contains }, Some(reference)) => {
            let host = run_in(sandboxes, reference, check, &check.argv, None);
            let ran = run_in_tree(sandboxes, check, contains.as_deref());
            let outcome = match absolute(&ran, *exit, contains.as_deref()) {
                Outcome::Pass => against(&host, &ran, false),
                other => other,
            };
            let reordered = outcome == Outcome::Pass && reordered(&host, &ran, false);
            Outcomes { reordered, reference_runs: 1, ..outcomes(check, ran, outcome, Some(&host)) }
        }
        (Expect::Structure(test), _) => super::structure::judge(sandboxes, check, test),
        (Expect::SameAsHost { .. }, None) => {
            let mut outcomes = super::skipped(check);
            outcomes.outcome = Outcome::Error(
                "`same_as_host` needs a reference, and this run has none ([smoke] reference = \"none\", or the sysroot's programs cannot run here)"
                    .to_string(),
            );
            outcomes
        }
    }
}

/// The check's own command in its tree, its output searched for `contains`.
fn run_in_tree(sandboxes: &Sandboxes, check: &Check, contains: Option<&str>) -> Ran {
    run_in(sandboxes, sandboxes.tree_for(check), check, &check.argv, contains)
}

fn run_in(
    sandboxes: &Sandboxes,
    sandbox: &Arc<Sandbox>,
    check: &Check,
    argv: &[String],
    contains: Option<&str>,
) -> Ran {
    let env = sandboxes.env_for(check);
    let base = sandboxes.setup(check, sandbox, &env);
    let setup = Setup {
        contains,
        // The reference shows how the program behaves on this machine.
        emulator: base
            .emulator
            .clone()
            .filter(|_| !sandboxes.reference.as_ref().is_some_and(|r| Arc::ptr_eq(r, sandbox))),
        ..base
    };
    runner::run(&setup, argv)
}

/// `--version`, or `--help` exactly when the reference's `--version`
/// fails; the tree must behave as the reference does. The reference's side
/// is taken from an earlier run when one is remembered under the same key.
fn probe_against(
    sandboxes: &Sandboxes,
    reference: &Arc<Sandbox>,
    check: &Check,
    fallback: &[String],
) -> Outcomes {
    let remembered = sandboxes.remembered.as_ref();
    let key = remembered.map(|r| r.key(sandboxes, check, fallback));
    let recalled = remembered.zip(key.as_deref()).and_then(|(r, key)| r.recall(key));
    let mut runs = 0;
    let (host, known_varying) = match &recalled {
        Some(entry) => (entry.ran(), entry.varying),
        None => {
            let (host, n) = reference_side(sandboxes, reference, check, fallback);
            runs += n;
            (host, None)
        }
    };
    let ran = run_in(sandboxes, sandboxes.tree_for(check), check, &host.argv, None);
    let mut varying = known_varying;
    if output_differs(&host, &ran) && varying.is_none() {
        // An output that changes from run to run on the host itself (a
        // time, a pid) is compared with its numbers left out.
        let again = run_in(sandboxes, reference, check, &host.argv, None);
        runs += 1;
        varying = Some(again.end == host.end && again.output.text() != host.output.text());
    }
    if let (Some(remembered), Some(key)) = (remembered, key) {
        if runs > 0 {
            remembered.ran();
        }
        match recalled {
            Some(entry) if runs == 0 => remembered.keep_recalled(key, entry),
            _ => remembered.keep(key, &host, varying),
        }
    }
    let varying = varying.unwrap_or(false);
    let outcome = against(&host, &ran, varying);
    let reordered = outcome == Outcome::Pass && reordered(&host, &ran, varying);
    let outcomes = outcomes(check, ran, outcome, Some(&host));
    Outcomes { reordered, reference_runs: runs, ..outcomes }
}

/// The probe on the reference, and its fallback when the probe fails
/// there; with the number of runs it took.
fn reference_side(
    sandboxes: &Sandboxes,
    reference: &Arc<Sandbox>,
    check: &Check,
    fallback: &[String],
) -> (Ran, usize) {
    let host = run_in(sandboxes, reference, check, &check.argv, None);
    if host.end == End::Exited && host.status == Some(0) {
        return (host, 1);
    }
    (run_in(sandboxes, reference, check, fallback, None), 2)
}

fn output_differs(host: &Ran, ran: &Ran) -> bool {
    host.end == ran.end && host.status == ran.status && host.output.text() != ran.output.text()
}

/// Without a reference: `--version`, else `--help`, must exit 0.
fn probe_alone(sandboxes: &Sandboxes, check: &Check, fallback: &[String]) -> Outcomes {
    let ran = run_in(sandboxes, sandboxes.tree_for(check), check, &check.argv, None);
    let outcome = absolute(&ran, Some(0), None);
    if let Outcome::Fail(_) = outcome {
        let second = run_in(sandboxes, sandboxes.tree_for(check), check, fallback, None);
        if absolute(&second, Some(0), None) == Outcome::Pass {
            return outcomes(check, second, Outcome::Pass, None);
        }
    }
    outcomes(check, ran, outcome, None)
}

/// An exit status (when one is asked for) and a text in the output.
pub(super) fn absolute(ran: &Ran, exit: Option<i32>, contains: Option<&str>) -> Outcome {
    if let Some(outcome) = not_finished(ran) {
        return outcome;
    }
    let status = ran.status.unwrap_or(-1);
    if let Some(expected) = exit
        && status != expected
    {
        if let Some(hit) = &ran.hit {
            return Outcome::Fail(hit.to_string());
        }
        return Outcome::Fail(match ran.signal {
            Some(s) => format!("killed by signal {s}, expected exit {expected}"),
            None => format!("exit {status}, expected {expected}"),
        });
    }
    if let Some(text) = contains
        && !ran.output.found()
    {
        return Outcome::Fail(format!("output does not contain {text:?}"));
    }
    Outcome::Pass
}

/// The outcome of a run that did not end by itself.
fn not_finished(ran: &Ran) -> Option<Outcome> {
    match &ran.end {
        End::Exited => None,
        End::TimedOut => Some(Outcome::TimedOut),
        End::Interrupted => Some(Outcome::Error("interrupted".to_string())),
        End::NotStarted(why) => Some(Outcome::Error(why.clone())),
    }
}

/// The tree's run judged against the reference's: the same end, exit
/// status and output (with every number masked when `varying`, for an
/// output that differs between two runs on the host), or the same lines in
/// another order, which is what concurrent writers to one pipe give (groff
/// runs its helpers' `--version` at once); see [`reordered`]. A probe that
/// hangs on the host too behaves the same, whatever it printed before the
/// kill.
fn against(host: &Ran, ran: &Ran, varying: bool) -> Outcome {
    if let End::NotStarted(why) = &host.end {
        return Outcome::Error(format!("the reference run failed: {why}"));
    }
    if host.end == End::TimedOut && ran.end == End::TimedOut {
        return Outcome::Pass;
    }
    let same_end = host.end == ran.end;
    let same_status = host.status == ran.status;
    let (host_text, tree_text) = compared(host, ran, varying);
    if same_end && same_status && same_lines(&host_text, &tree_text) {
        return Outcome::Pass;
    }
    if let Some(outcome) = not_finished(ran) {
        return outcome;
    }
    let status = |r: &Ran| match (&r.end, r.status) {
        (End::TimedOut, _) => "a timeout".to_string(),
        (_, Some(s)) => format!("exit {s}"),
        _ => "no exit status".to_string(),
    };
    let mut why = if same_status {
        "output differs from the host".to_string()
    } else {
        format!("differs from the host: {} here, {} on the host", status(ran), status(host))
    };
    if let Some(hit) = &ran.hit {
        why = format!("{hit}; {why}");
    }
    Outcome::Fail(why)
}

/// The two outputs as they are compared: with their numbers masked when
/// `varying`.
fn compared(host: &Ran, ran: &Ran, varying: bool) -> (String, String) {
    let text = |r: &Ran| if varying { masked(&r.output.text()) } else { r.output.text() };
    (text(host), text(ran))
}

/// Whether two outputs have the same lines, each as many times, in any
/// order. The outputs must be whole: a line is not compared with a line
/// cut by the capture's limit, since the capture's text marks the cut.
fn same_lines(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    fn sorted(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines
    }
    a.len() == b.len() && sorted(a) == sorted(b)
}

/// Whether a passing run matched the reference only as the same lines in
/// another order: the report says `same lines, other order`.
fn reordered(host: &Ran, ran: &Ran, varying: bool) -> bool {
    let (host_text, tree_text) = compared(host, ran, varying);
    host_text != tree_text && same_lines(&host_text, &tree_text)
}

/// Every run of digits as one `#`.
fn masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

fn outcomes(check: &Check, ran: Ran, outcome: Outcome, host: Option<&Ran>) -> Outcomes {
    let output = ran.output.text();
    let diff = host
        .filter(|_| matches!(outcome, Outcome::Fail(_)))
        .map(|h| h.output.text())
        .filter(|h| *h != output)
        .map(|h| unified_diff(&h, &output));
    Outcomes {
        host: host.map(|h| HostRun { status: h.status, output: h.output.text() }),
        diff,
        ..Outcomes::of_run(check, ran, outcome, output)
    }
}

/// The reference's output against the tree's, as a short unified diff:
/// long runs of removed or added lines are cut, so that both sides show.
fn unified_diff(host: &str, tree: &str) -> String {
    let diff = similar::TextDiff::from_lines(host, tree);
    let text = diff.unified_diff().context_radius(1).header("host", "tree").to_string();
    let mut shown = String::new();
    let mut run: Option<(char, usize)> = None;
    let mut cut = 0;
    let flush = |shown: &mut String, run: Option<(char, usize)>, cut: &mut usize| {
        if *cut > 0 {
            let side = if run.is_some_and(|(c, _)| c == '+') { "added" } else { "removed" };
            shown.push_str(&format!("... ({} more {side} lines)\n", *cut));
            *cut = 0;
        }
    };
    for line in text.lines() {
        let kind = line.chars().next().filter(|c| {
            matches!(c, '+' | '-') && !line.starts_with("+++") && !line.starts_with("---")
        });
        match (kind, run) {
            (Some(c), Some((r, n))) if c == r => {
                run = Some((r, n + 1));
                if n + 1 > DIFF_RUN {
                    cut += 1;
                    continue;
                }
            }
            _ => {
                flush(&mut shown, run, &mut cut);
                run = kind.map(|c| (c, 1));
            }
        }
        shown.push_str(line);
        shown.push('\n');
    }
    flush(&mut shown, run, &mut cut);
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_whatever_their_length() {
        assert_eq!(masked("at 20:30:54.886 pid 12"), "at #:#:#.# pid #");
        assert_eq!(masked("no numbers"), "no numbers");
    }

    #[test]
    fn only_the_same_lines_as_many_times_are_the_same_in_another_order() {
        assert!(same_lines("GNU grops 1.22\nGNU troff 1.22\n", "GNU troff 1.22\nGNU grops 1.22\n"));
        assert!(same_lines("a\n", "a\n"));
        assert!(!same_lines("a\na\nb\n", "a\nb\nb\n"));
        assert!(!same_lines("a\nb\n", "b\na"));
        assert!(!same_lines("a\nb\n", "b\nc\n"));
    }
}
