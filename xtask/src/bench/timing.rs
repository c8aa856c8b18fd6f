//! How the benchmarks time things: a contender (how to prepare a run, which process to time), one run timed from spawn to `wait4(2)` with its peak RSS, contenders run round-robin after a warm-up, and their medians.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Whose tool a contender runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Ours,
    /// A peer's tool, or a floor: what doing the same work by other means
    /// costs.
    Theirs,
}

/// One thing timed: how to prepare a run and which process to time.
pub struct Contender<'a> {
    pub label: &'static str,
    pub side: Side,
    /// Timed runs, after the warm-up.
    runs: usize,
    prepare: Box<dyn FnMut() + 'a>,
    command: Box<dyn Fn() -> Command + 'a>,
    /// Whether exit status 1 counts as a run (`deps` exits 1 when a host
    /// program misses a library; `smoke` when a check fails).
    allow_exit_1: bool,
    /// The tree it writes, to check afterwards which programs load in it.
    pub tree: Option<PathBuf>,
    times: Vec<Duration>,
    /// User plus system time of each run.
    cpu_times: Vec<Duration>,
    max_rss_kib: u64,
    error: Option<RunError>,
}

impl<'a> Contender<'a> {
    pub fn new(
        label: &'static str,
        side: Side,
        runs: usize,
        command: impl Fn() -> Command + 'a,
    ) -> Contender<'a> {
        Contender {
            label,
            side,
            runs,
            prepare: Box::new(|| {}),
            command: Box::new(command),
            allow_exit_1: false,
            tree: None,
            times: Vec::new(),
            cpu_times: Vec::new(),
            max_rss_kib: 0,
            error: None,
        }
    }

    /// Runs `prepare`, untimed, before each run.
    pub fn prepare(mut self, prepare: impl FnMut() + 'a) -> Contender<'a> {
        self.prepare = Box::new(prepare);
        self
    }

    /// Counts a run that exits 1 as a run.
    pub fn allow_exit_1(mut self) -> Contender<'a> {
        self.allow_exit_1 = true;
        self
    }

    /// Records the tree each run writes.
    pub fn tree(mut self, tree: &Path) -> Contender<'a> {
        self.tree = Some(tree.to_path_buf());
        self
    }

    /// The median and spread of its runs, or why they stopped.
    pub fn measured(&self) -> Measured {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut timing = Timing::of(&self.times).ok_or(RunError::NoRuns)?;
        timing.max_rss_kib = self.max_rss_kib;
        timing.cpu = Timing::of(&self.cpu_times).map_or(Duration::ZERO, |t| t.median);
        Ok(timing)
    }
}

/// Median wall time and peak memory of some runs.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    pub max_rss_kib: u64,
    /// The median of user plus system time: unlike wall time, it holds on
    /// a machine busy with other work.
    pub cpu: Duration,
}

impl Timing {
    /// The median, min and max of `times` (no memory figure); `None` when
    /// there are none.
    pub fn of(times: &[Duration]) -> Option<Timing> {
        let mut sorted = times.to_vec();
        sorted.sort();
        Some(Timing {
            median: *sorted.get(sorted.len() / 2)?,
            min: *sorted.first()?,
            max: *sorted.last()?,
            max_rss_kib: 0,
            cpu: Duration::ZERO,
        })
    }
}

/// The outcome of one measurement: a timing, or why it could not be taken.
pub type Measured = Result<Timing, RunError>;

/// Why a timed run did not count.
#[derive(Clone, Debug)]
pub enum RunError {
    /// The process could not be started.
    Start(String),
    /// Waiting for it failed.
    Wait(String),
    /// It exited with a status that does not count, and printed this last
    /// line on standard error.
    Failed { status: ExitStatus, last_line: String },
    /// No run was timed (no run asked for).
    NoRuns,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Start(e) => write!(f, "cannot start: {e}"),
            RunError::Wait(e) => write!(f, "wait4 failed: {e}"),
            RunError::Failed { status, last_line } => write!(f, "failed ({status}): {last_line}"),
            RunError::NoRuns => write!(f, "no timed run"),
        }
    }
}

impl std::error::Error for RunError {}

/// Round robin: run 1 of every contender, then run 2, and so on, so that
/// whatever drifts over the run (the page cache, the files moved aside, the
/// machine's other load) weighs on all of them alike. Round 0 is the
/// untimed warm-up. A contender whose run fails runs no more; its error is
/// its measurement.
pub fn round_robin(contenders: &mut [Contender]) {
    let rounds = contenders.iter().map(|c| c.runs).max().unwrap_or(0);
    for round in 0..=rounds {
        for c in contenders.iter_mut().filter(|c| round <= c.runs && c.error.is_none()) {
            (c.prepare)();
            match run_once(&mut (c.command)(), c.allow_exit_1) {
                Ok(run) if round > 0 => {
                    c.times.push(run.wall);
                    c.cpu_times.push(run.cpu);
                    c.max_rss_kib = c.max_rss_kib.max(run.max_rss_kib);
                }
                Ok(_) => {}
                Err(e) => c.error = Some(e),
            }
        }
    }
}

/// What one run of a process took.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// From spawn to reaping.
    pub wall: Duration,
    /// User plus system time.
    pub cpu: Duration,
    pub max_rss_kib: u64,
}

/// Runs a command once, its standard output discarded, and returns its
/// wall time (from spawn to reaping), CPU time and peak RSS in KiB.
pub fn run_once(c: &mut Command, allow_exit_1: bool) -> Result<Run, RunError> {
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let child = c.spawn().map_err(|e| RunError::Start(e.to_string()))?;
    let (status, usage, stderr) = wait_with_rusage(child)?;
    let wall = started.elapsed();
    if !(status.success() || allow_exit_1 && status.code() == Some(1)) {
        let last_line = stderr.lines().last().unwrap_or("").to_string();
        return Err(RunError::Failed { status, last_line });
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = time(usage.ru_utime) + time(usage.ru_stime);
    Ok(Run { wall, cpu, max_rss_kib: usage.ru_maxrss as u64 })
}

/// Waits for a child with `wait4(2)` to get its resource usage; returns its
/// status, its resource usage (peak RSS in KiB, CPU times) and its
/// standard error.
fn wait_with_rusage(
    mut child: std::process::Child,
) -> Result<(ExitStatus, libc::rusage, String), RunError> {
    use std::io::Read;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our child, not yet reaped.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    if pid < 0 {
        return Err(RunError::Wait(std::io::Error::last_os_error().to_string()));
    }
    Ok((ExitStatus::from_raw(status), usage, stderr))
}

/// Syncs the disk and waits for it to go quiet: on a virtual disk with a
/// rate limit (as on this machine), the writes of the previous run (or of
/// an untimed build) would otherwise slow down the next one, whoever it is.
pub fn sync_and_settle() {
    rustix::fs::sync();
    std::thread::sleep(Duration::from_secs(3));
}

/// Where outputs of earlier runs are moved before a timed run, to be
/// deleted only when the benchmark is over.
///
/// Outputs are moved aside, not deleted, and the disk is synced: on ext4,
/// creating files within a minute of deleting thousands makes the inode
/// allocator skip the recently freed ones, a cost that would be charged to
/// whoever runs next, and dirty pages of the previous run would be written
/// back during this one.
pub struct Trash {
    dir: PathBuf,
    moved: std::cell::Cell<u32>,
}

impl Trash {
    pub fn new(dir: PathBuf) -> Trash {
        Trash { dir, moved: std::cell::Cell::new(0) }
    }

    /// Moves whichever of `paths` exist aside, then syncs and settles.
    pub fn clear(&self, paths: &[&Path]) {
        let _ = std::fs::create_dir_all(&self.dir);
        for p in paths {
            if std::fs::symlink_metadata(p).is_ok() {
                self.moved.set(self.moved.get() + 1);
                let _ = std::fs::rename(p, self.dir.join(self.moved.get().to_string()));
            }
        }
        sync_and_settle();
    }
}
