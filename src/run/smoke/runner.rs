//! One command line run inside a sandbox: its limits made, its output streamed, its timeout enforced, and everything it started killed and reaped before the result is read.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::capture::Capture;
use crate::run::sandbox::{Cgroups, Launch, LimitHit, Sandbox, Started, StepLog};
use crate::vocab::Limits;

/// Set when the tool is asked to stop (SIGINT, SIGTERM) during a run.
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// It exited, or was killed by a signal: `status` says which.
    Exited,
    /// Killed with its whole namespace at its timeout.
    TimedOut,
    /// Killed because the tool was interrupted.
    Interrupted,
    /// It could not be started; the text says why.
    NotStarted(String),
}

/// What one run did.
#[derive(Clone, Debug)]
pub struct Ran {
    pub argv: Vec<String>,
    pub end: End,
    /// Exit status; 128 + N for a signal.
    pub status: Option<i32>,
    pub signal: Option<i32>,
    pub output: Capture,
    /// Standard error on its own, when `Setup::split` asked for it
    /// (`output` is then standard output alone).
    pub errors: Option<Capture>,
    /// What a limit did to it.
    pub hit: Option<LimitHit>,
    pub elapsed: Duration,
}

/// What a run needs besides its command line.
pub(super) struct Setup<'a> {
    pub sandbox: &'a Arc<Sandbox>,
    pub cgroups: &'a Cgroups,
    pub env: &'a [(String, String)],
    pub limits: Limits,
    pub timeout: Duration,
    pub contains: Option<&'a str>,
    /// Keep standard error apart from standard output.
    pub split: bool,
    /// Record what the run uses with this tracer.
    pub tracer: Option<Arc<crate::run::trace::Filter>>,
    /// Run the program under this emulator.
    pub emulator: Option<Arc<crate::run::sandbox::binfmt::native::Entry>>,
    /// The worker's user and network namespaces, to join.
    pub slot: Option<Arc<crate::run::sandbox::NetSlot>>,
}

/// Runs `argv` and waits for it, its output read as it comes.
pub(super) fn run(setup: &Setup, argv: &[String]) -> Ran {
    let started = Instant::now();
    let mut ran = Ran {
        argv: argv.to_vec(),
        end: End::Exited,
        status: None,
        signal: None,
        output: Capture::new(setup.contains),
        errors: setup.split.then(|| Capture::new(None)),
        hit: None,
        elapsed: Duration::ZERO,
    };
    if let Err(e) = run_limited(setup, &mut ran) {
        ran.end = End::NotStarted(format!("cannot run inside the rootfs: {e:#}"));
    }
    ran.elapsed = started.elapsed();
    ran
}

fn run_limited(setup: &Setup, ran: &mut Ran) -> Result<()> {
    let limits = setup.cgroups.for_check(setup.limits)?;
    let mut launch = Launch::new(Some(&limits), setup.limits.tmp_size);
    if let Some(tracer) = &setup.tracer {
        launch = launch.traced(tracer.clone());
    }
    if let Some(entry) = &setup.emulator {
        launch = launch.emulated(entry.clone());
    }
    if let Some(slot) = &setup.slot {
        launch = launch.in_slot(slot.clone());
    }
    let result = spawn_and_wait(setup, ran, &launch);
    ran.hit = limits.finish();
    result
}

fn spawn_and_wait(setup: &Setup, ran: &mut Ran, launch: &Launch) -> Result<()> {
    let (reader, writer) = os_pipe::pipe().context("creating a pipe for the output")?;
    let (error_reader, error_writer) = match ran.errors {
        Some(_) => {
            let (reader, writer) = os_pipe::pipe().context("creating a pipe for the errors")?;
            (Some(reader), Some(writer))
        }
        None => (None, None),
    };
    let log = StepLog::new()?;
    let stderr = error_writer.as_ref().map_or(writer.as_fd(), |w| w.as_fd());
    let started = setup.sandbox.start(&ran.argv, setup.env, launch, &log, writer.as_fd(), stderr);
    // Our copies of the pipes' write ends: the readers see the end of the
    // output when the last process inside is gone.
    drop((writer, error_writer));
    let mut pid1 = started?;
    std::thread::scope(|scope| {
        let output = &mut ran.output;
        let reading = scope.spawn(move || read_all(reader, output));
        let errors = ran.errors.as_mut().zip(error_reader);
        let reading_errors =
            errors.map(|(errors, reader)| scope.spawn(move || read_all(reader, errors)));
        let waited = wait(&mut pid1, setup.timeout);
        let _ = reading.join();
        if let Some(reading) = reading_errors {
            let _ = reading.join();
        }
        match waited {
            Ok((end, status)) => {
                ran.end = end;
                ran.status = status.and_then(|s| s.code().or_else(|| s.signal().map(|n| 128 + n)));
                ran.signal = status.and_then(|s| s.signal());
                Ok(())
            }
            Err(e) => Err(e),
        }
    })
}

/// Reads a pipe to its end into `capture`.
fn read_all(mut reader: os_pipe::PipeReader, capture: &mut Capture) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => capture.push(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Waits for PID 1 until the deadline, checking for an interruption now
/// and then; at the deadline PID 1 is killed (its namespace dies with it)
/// and reaped, before the output is read.
fn wait(pid1: &mut Started, timeout: Duration) -> Result<(End, Option<std::process::ExitStatus>)> {
    let deadline = Instant::now() + timeout;
    loop {
        let slice = Instant::now() + Duration::from_millis(100);
        if let Some(status) = pid1.wait_deadline(slice.min(deadline)).context("waiting")? {
            return Ok((End::Exited, Some(status)));
        }
        let end = if INTERRUPTED.load(Ordering::Relaxed) {
            End::Interrupted
        } else if Instant::now() >= deadline {
            End::TimedOut
        } else {
            continue;
        };
        pid1.kill();
        let status = loop {
            match pid1.wait_deadline(Instant::now() + Duration::from_secs(1)) {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(_) => break None,
            }
        };
        return Ok((end, status));
    }
}
