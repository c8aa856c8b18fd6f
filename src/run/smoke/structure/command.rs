//! A `commandTests` entry judged: its setup commands, the command with standard output and error captured apart, its teardown, then each pattern and the exit status against what was seen.

use std::sync::Arc;

use super::super::runner::{self, End, Ran, Setup};
use super::super::{Check, Outcome, Outcomes, Sandboxes};
use super::seen;
use crate::spec::structure::{CommandTest, Pattern};

/// Runs `test` (whose command line, environment and access are `check`'s)
/// in the tree.
pub(in crate::run::smoke) fn judge(
    sandboxes: &Sandboxes,
    check: &Check,
    test: &Arc<CommandTest>,
) -> Outcomes {
    for setup in &test.setup {
        let ran = run(sandboxes, check, &setup.0, false);
        if let Some(why) = failed(&ran) {
            let why = format!("setup `{}` {why}", super::super::shell_words(&setup.0));
            return outcomes(check, ran, Outcome::Error(why));
        }
    }
    let ran = run(sandboxes, check, &check.argv, true);
    let mut failures = match &ran.end {
        End::Exited => verdicts(test, &ran),
        End::TimedOut => return outcomes(check, ran, Outcome::TimedOut),
        End::Interrupted => return outcomes(check, ran, Outcome::Error("interrupted".to_string())),
        End::NotStarted(why) => {
            let why = why.clone();
            return outcomes(check, ran, Outcome::Error(why));
        }
    };
    for teardown in &test.teardown {
        let done = run(sandboxes, check, &teardown.0, false);
        if let Some(why) = failed(&done) {
            failures.push(format!("teardown `{}` {why}", super::super::shell_words(&teardown.0)));
        }
    }
    let outcome =
        if failures.is_empty() { Outcome::Pass } else { Outcome::Fail(failures.join("; ")) };
    outcomes(check, ran, outcome)
}

/// Why a setup or teardown command did not succeed, if it did not.
fn failed(ran: &Ran) -> Option<String> {
    match (&ran.end, ran.status) {
        (End::Exited, Some(0)) => None,
        (End::Exited, status) => Some(format!("exited {}", status.unwrap_or(-1))),
        (End::TimedOut, _) => Some("timed out".to_string()),
        (End::Interrupted, _) => Some("was interrupted".to_string()),
        (End::NotStarted(why), _) => Some(why.clone()),
    }
}

fn run(sandboxes: &Sandboxes, check: &Check, argv: &[String], split: bool) -> Ran {
    let env = sandboxes.env_for(check);
    // On another CPU level, the tree's programs run under its emulator.
    let setup = Setup { split, ..sandboxes.setup(check, sandboxes.tree_for(check), &env) };
    runner::run(&setup, argv)
}

/// Every expectation of `test` that the run does not meet, each with what
/// was seen, in container-structure-test's order.
fn verdicts(test: &CommandTest, ran: &Ran) -> Vec<String> {
    let stdout = ran.output.text();
    let stderr = ran.errors.as_ref().map(|e| e.text()).unwrap_or_default();
    let mut failures = Vec::new();
    matches(&mut failures, "error", &test.expected_error, &test.excluded_error, &stderr);
    matches(&mut failures, "output", &test.expected_output, &test.excluded_output, &stdout);
    let status = ran.status.unwrap_or(-1);
    if status != test.exit_code {
        let how = match ran.signal {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exit {status}"),
        };
        failures.push(format!("{how}, expected exit {}", test.exit_code));
    }
    failures
}

/// Patterns that must and must not match `text` (standard output or
/// error), each matched anywhere in the whole text, as Go's
/// `Regexp.MatchString`.
pub(super) fn matches(
    failures: &mut Vec<String>,
    what: &str,
    expected: &[Pattern],
    excluded: &[Pattern],
    text: &str,
) {
    for pattern in expected {
        if !pattern.0.is_match(text) {
            failures.push(format!(
                "expected {what} matching `{}`, saw {}",
                pattern.as_str(),
                seen(text)
            ));
        }
    }
    for pattern in excluded {
        if let Some(found) = pattern.0.find(text) {
            failures.push(format!(
                "excluded {what} `{}` matched {} in {}",
                pattern.as_str(),
                seen(found.as_str()),
                seen(text)
            ));
        }
    }
}

/// The row: standard output, then standard error after a line that says so.
fn outcomes(check: &Check, ran: Ran, outcome: Outcome) -> Outcomes {
    let mut output = ran.output.text();
    if let Some(errors) = ran.errors.as_ref().map(|e| e.text()).filter(|e| !e.is_empty()) {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str("--- standard error ---\n");
        output.push_str(&errors);
    }
    Outcomes::of_run(check, ran, outcome, output)
}
