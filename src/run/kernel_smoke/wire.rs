//! What crosses into and out of the virtual machine: the job the guest's init reads from the initramfs, and its results, sent back in a frame (a marker line with the length and SHA256 of the payload) that nothing else written to the port can be mistaken for.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::run::smoke::{Check, Expect, Opens, Outcome, Outcomes};
use crate::vocab::Limits;

/// Where the job is in the initramfs.
pub const JOB_PATH: &str = "/rootfs-guest/job.json";

/// The line that opens a frame, followed by the payload's length and
/// SHA256 in hex; the payload follows the line.
const MARKER: &str = "\u{1e}ROOTFS-RESULTS ";

/// The checks to run in the guest, and how.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub hostname: String,
    pub jobs: usize,
    pub checks: Vec<WireCheck>,
}

/// A [`Check`] without what only the host has (binds, a reference).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireCheck {
    pub name: String,
    pub argv: Vec<String>,
    pub expect: WireExpect,
    pub timeout_ms: u64,
    pub limits: (u64, u64, u64),
    pub env: Vec<(String, String)>,
}

/// How the guest judges a check: there is no reference inside, so a
/// probe passes as with `reference = "none"`.
#[derive(Debug, Serialize, Deserialize)]
pub enum WireExpect {
    Probe { fallback: Vec<String> },
    Exit { code: i32, contains: Option<String> },
}

impl WireCheck {
    /// The check as the guest sends it; `same_as_host` keeps its exit
    /// status and text (0 by default), its comparison with the host is
    /// the host run's.
    pub fn of(check: &Check) -> WireCheck {
        let expect = match &check.expect {
            Expect::Probe { fallback } => WireExpect::Probe { fallback: fallback.clone() },
            Expect::Exit { code, contains } => {
                WireExpect::Exit { code: *code, contains: contains.clone() }
            }
            Expect::SameAsHost { exit, contains } => {
                WireExpect::Exit { code: exit.unwrap_or(0), contains: contains.clone() }
            }
            // Never sent: `kernel_smoke::run` keeps structure tests on the host.
            Expect::Structure(_) => unreachable!("a structure test sent to the guest"),
        };
        let Limits { pids, memory, tmp_size } = check.limits;
        WireCheck {
            name: check.name.clone(),
            argv: check.argv.clone(),
            expect,
            timeout_ms: check.timeout.as_millis() as u64,
            limits: (pids, memory, tmp_size),
            env: check.env.clone(),
        }
    }

    /// The check the guest runs.
    pub fn check(&self) -> Check {
        let expect = match &self.expect {
            WireExpect::Probe { fallback } => Expect::Probe { fallback: fallback.clone() },
            WireExpect::Exit { code, contains } => {
                Expect::Exit { code: *code, contains: contains.clone() }
            }
        };
        let (pids, memory, tmp_size) = self.limits;
        Check {
            name: self.name.clone(),
            argv: self.argv.clone(),
            expect,
            timeout: Duration::from_millis(self.timeout_ms),
            limits: Limits { pids, memory, tmp_size },
            opens: Opens::default(),
            env: self.env.clone(),
        }
    }
}

/// What the guest sends back.
#[derive(Debug, Serialize, Deserialize)]
pub enum GuestReport {
    Ran {
        /// `uname -r` of the guest.
        release: String,
        notes: Vec<String>,
        results: Vec<WireResult>,
        elapsed_ms: u64,
    },
    /// The init could not run the checks at all.
    Failed(String),
}

/// One check's [`Outcomes`], in the order of the job.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireResult {
    pub outcome: WireOutcome,
    pub reordered: bool,
    pub ran: Vec<String>,
    pub status: Option<i32>,
    pub output: String,
    pub elapsed_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum WireOutcome {
    Pass,
    Fail(String),
    TimedOut,
    Error(String),
}

impl WireResult {
    pub fn of(outcomes: &Outcomes) -> WireResult {
        let outcome = match &outcomes.outcome {
            Outcome::Pass => WireOutcome::Pass,
            Outcome::Fail(why) => WireOutcome::Fail(why.clone()),
            Outcome::TimedOut => WireOutcome::TimedOut,
            Outcome::Error(why) => WireOutcome::Error(why.clone()),
        };
        WireResult {
            outcome,
            reordered: outcomes.reordered,
            ran: outcomes.ran.clone(),
            status: outcomes.status,
            output: outcomes.output.clone(),
            elapsed_ms: outcomes.elapsed.as_millis() as u64,
        }
    }

    /// The result as the host reports it, for the host's `check`.
    pub fn outcomes(self, check: &Check) -> Outcomes {
        let outcome = match self.outcome {
            WireOutcome::Pass => Outcome::Pass,
            WireOutcome::Fail(why) => Outcome::Fail(why),
            WireOutcome::TimedOut => Outcome::TimedOut,
            WireOutcome::Error(why) => Outcome::Error(why),
        };
        Outcomes {
            check: check.clone(),
            outcome,
            reordered: self.reordered,
            ran: self.ran,
            status: self.status,
            output: self.output,
            host: None,
            reference_runs: 0,
            diff: None,
            elapsed: Duration::from_millis(self.elapsed_ms),
        }
    }
}

/// `report` as a frame.
pub fn frame(report: &GuestReport) -> Vec<u8> {
    let payload = serde_json::to_vec(report).expect("plain data serialises");
    let digest = crate::fsutil::sha256_hex(&payload);
    let mut out = format!("\n{MARKER}{} {digest}\n", payload.len()).into_bytes();
    out.extend_from_slice(&payload);
    out.push(b'\n');
    out
}

/// The last whole frame in `bytes` whose digest matches; what came
/// before or between frames is ignored.
pub fn unframe(bytes: &[u8]) -> Result<GuestReport> {
    let marker = MARKER.as_bytes();
    let mut found = None;
    let mut at = 0;
    while let Some(i) = memchr::memmem::find(&bytes[at..], marker) {
        let start = at + i + marker.len();
        at = start;
        let Some(end) = memchr::memchr(b'\n', &bytes[start..]).map(|e| start + e) else { break };
        let line = String::from_utf8_lossy(&bytes[start..end]);
        let Some((len, digest)) = line.split_once(' ') else { continue };
        let Ok(len) = len.parse::<usize>() else { continue };
        let Some(payload) = bytes.get(end + 1..end + 1 + len) else { continue };
        if crate::fsutil::sha256_hex(payload) == digest.trim() {
            found = Some(payload);
        }
    }
    let Some(payload) = found else {
        bail!("the guest sent no results ({} bytes on its port, no whole frame)", bytes.len())
    };
    serde_json::from_slice(payload).context("reading the guest's results")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_survives_noise_around_it_and_a_damaged_one_is_refused() {
        let report = GuestReport::Failed("no cgroup2".to_string());
        let mut bytes = b"[    1.2] kernel noise\n".to_vec();
        bytes.extend(frame(&report));
        bytes.extend_from_slice(b"more noise");
        match unframe(&bytes).unwrap() {
            GuestReport::Failed(why) => assert_eq!(why, "no cgroup2"),
            other => panic!("{other:?}"),
        }
        let mut damaged = frame(&report);
        let last = damaged.len() - 3;
        damaged[last] ^= 1;
        let err = unframe(&damaged).unwrap_err();
        assert!(err.to_string().contains("no whole frame"), "{err}");
    }
}
