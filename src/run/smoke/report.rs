//! The smoke report: a table for people, with a closing `N passed, M failed`, and JUnit XML for CI systems.

use std::fmt::Write;
use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::{Outcome, Outcomes};

/// Lines of output shown for a failed check.
const SHOWN_LINES: usize = 8;

/// The results of a smoke run, in check order.
#[derive(Clone, Debug)]
pub struct Report {
    pub results: Vec<Outcomes>,
    pub elapsed: Duration,
    /// What people should know about how the checks ran (limits that are
    /// rlimits only), one line each.
    pub notes: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.outcome == Outcome::Pass).count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// The table and the closing line.
    pub fn table(&self) -> String {
        let width = self
            .results
            .iter()
            .map(|r| r.check.name.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 48);
        let mut out = format!("{:<width$}  {:<7}  {:>7}  details\n", "check", "result", "time");
        for r in &self.results {
            let name: String = if r.check.name.chars().count() > width {
                r.check.name.chars().take(width - 1).chain(std::iter::once('…')).collect()
            } else {
                r.check.name.clone()
            };
            let (result, detail) = match &r.outcome {
                Outcome::Pass if r.reordered => ("pass", "same lines, other order".to_string()),
                Outcome::Pass => ("pass", String::new()),
                Outcome::Fail(why) => ("FAIL", why.clone()),
                Outcome::TimedOut => {
                    ("TIMEOUT", format!("killed after {:.1} s", r.check.timeout.as_secs_f64()))
                }
                Outcome::Error(why) => ("ERROR", why.clone()),
            };
            let _ = writeln!(
                out,
                "{name:<width$}  {result:<7}  {:>6.2}s  {detail}",
                r.elapsed.as_secs_f64()
            );
            if r.outcome != Outcome::Pass {
                details(&mut out, r);
            }
        }
        let _ = writeln!(out, "{} passed, {} failed", self.passed(), self.failed());
        out
    }

    /// JUnit XML, one test case per check.
    pub fn junit(&self, suite_name: &str) -> anyhow::Result<String> {
        let mut suite = TestSuite::new(suite_name);
        suite.set_time(self.elapsed);
        for r in &self.results {
            let status = match &r.outcome {
                Outcome::Pass => TestCaseStatus::success(),
                other => {
                    let (kind, message) = match other {
                        Outcome::Fail(why) => (NonSuccessKind::Failure, why.clone()),
                        Outcome::TimedOut => (
                            NonSuccessKind::Failure,
                            format!("timed out after {:.1} s", r.check.timeout.as_secs_f64()),
                        ),
                        Outcome::Error(why) => (NonSuccessKind::Error, why.clone()),
                        Outcome::Pass => unreachable!("handled above"),
                    };
                    let mut status = TestCaseStatus::non_success(kind);
                    status.set_message(message);
                    status
                }
            };
            let mut case = TestCase::new(r.check.name.clone(), status);
            case.set_classname(suite_name);
            case.set_time(r.elapsed);
            case.set_system_out(r.output.clone());
            suite.add_test_case(case);
        }
        let mut report = quick_junit::Report::new("rootfs smoke");
        report.set_time(self.elapsed);
        report.add_test_suite(suite);
        use anyhow::Context;
        report.to_string().context("writing the JUnit report")
    }
}

/// The command line (if one ran), then the diff against the host or the
/// output.
fn details(out: &mut String, r: &Outcomes) {
    // A structure test of files or metadata runs nothing.
    if !r.ran.is_empty() {
        let _ = writeln!(out, "    $ {}", super::shell_words(&r.ran));
    }
    if let Some(diff) = &r.diff {
        for line in diff.lines() {
            let _ = writeln!(out, "    | {line}");
        }
        return;
    }
    let lines: Vec<&str> = r.output.lines().collect();
    for line in lines.iter().take(SHOWN_LINES) {
        let _ = writeln!(out, "    | {line}");
    }
    if lines.len() > SHOWN_LINES {
        let _ = writeln!(out, "    | ... ({} more lines)", lines.len() - SHOWN_LINES);
    }
}
