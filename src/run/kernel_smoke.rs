//! Smoke checks run again under other kernels: the tree booted as an initramfs in `qemu-system-x86_64` (TCG), whose init is this tool's own program running the same checks with the same limits and timeouts inside the guest (cgroup v2 only), the results sent back framed on a serial port of their own.
//!
//! The flow: the kernel image (a file, or fetched from Debian,
//! `kernel.rs`) -> the job (`wire.rs`) and the initramfs (`initramfs.rs`)
//! -> qemu, bounded by a deadline -> the guest's init (`guest.rs`) -> the
//! framed results read back from the port's file.

pub mod guest;
mod initramfs;
mod kernel;
mod wire;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use self::wire::{GuestReport, Job, WireCheck};
use crate::run::smoke::{Check, Opens, Options, Report};
use crate::spec::KernelSource;

/// The arguments the kernel passes to the init (everything after `--` on
/// its command line): the program given as the agent must run
/// [`guest::main`] when started with them.
pub const GUEST_ARGS: [&str; 2] = ["rootfs", "kernel-guest"];

/// The emulator.
pub const QEMU: &str = "qemu-system-x86_64";

/// Memory of the guest, MiB: the initramfs (tree and init) lives in it.
const GUEST_MEMORY_MIB: u64 = 1024;

/// Time for the kernel to boot and the init to start, on top of the
/// checks' own timeouts.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(180);

/// What one kernel did with the checks.
#[derive(Debug)]
pub struct KernelRun {
    pub kernel: KernelSource,
    /// `uname -r` in the guest.
    pub release: String,
    pub report: Report,
}

impl KernelRun {
    /// How a report names this run.
    pub fn describe(&self) -> String {
        format!("Linux {} ({})", self.release, self.kernel.describe())
    }
}

/// Boots the tree at `tree` under `kernel` with `agent` (a program that
/// runs [`guest::main`] when given [`GUEST_ARGS`]) as its init, and runs
/// `checks` there, `options.jobs` at a time. A check that opens host
/// paths or the host's network cannot run in the guest and is an error
/// saying so; probes are judged by their exit status, as the sysroot is
/// not in the guest.
pub fn run(
    tree: &Path,
    checks: &[Check],
    options: &Options,
    kernel: &KernelSource,
    agent: &Path,
) -> Result<KernelRun> {
    let started = Instant::now();
    let image = kernel::image(kernel)?;
    let runnable: Vec<&Check> = checks.iter().filter(|c| runs_in_guest(c)).collect();
    let job = Job {
        hostname: options.hostname.clone(),
        jobs: options.jobs,
        checks: runnable.iter().map(|c| WireCheck::of(c)).collect(),
    };
    let (work, cpio) = write_initramfs(tree, &job, agent)?;
    let deadline = BOOT_ALLOWANCE + checks.iter().map(|c| c.timeout * 2).sum::<Duration>();
    let boot =
        Boot { image: &image, initramfs: &cpio, work: work.path(), cpus: options.jobs.clamp(1, 2) };
    let (report, console) = boot.run(deadline)?;
    match report {
        GuestReport::Failed(why) => {
            bail!(
                "the guest's init could not run the checks: {why}\nthe kernel's console ends:\n{}",
                tail(&console)
            )
        }
        GuestReport::Ran { release, notes, results, .. } => {
            anyhow::ensure!(
                results.len() == runnable.len(),
                "the guest sent {} results for {} checks",
                results.len(),
                runnable.len()
            );
            let mut sent = results.into_iter();
            let results = checks
                .iter()
                .map(|check| match runs_in_guest(check) {
                    true => sent.next().expect("counted above").outcomes(check),
                    false => not_run(check),
                })
                .collect();
            let mut notes = notes;
            notes.push("note: under a kernel, probes are judged by their exit status: the sysroot is not in the guest".to_string());
            let report = Report { results, elapsed: started.elapsed(), notes };
            Ok(KernelRun { kernel: kernel.clone(), release, report })
        }
    }
}

/// Whether a check can be sent to the guest: one that opens nothing of
/// the host, and not a structure test (whose setup, teardown and output
/// streams the guest's init does not carry).
fn runs_in_guest(check: &Check) -> bool {
    check.opens == Opens::default()
        && !matches!(check.expect, crate::run::smoke::Expect::Structure(_))
}

fn not_run(check: &Check) -> crate::run::smoke::Outcomes {
    let why = match check.expect {
        crate::run::smoke::Expect::Structure(_) => {
            "not run under a kernel: structure tests run on the host's kernel only"
        }
        _ => {
            "not run under a kernel: it opens host paths, the host's network or a working directory"
        }
    };
    crate::run::smoke::Outcomes::not_run(check, why)
}

/// The initramfs of `job`, in a work folder of its own.
fn write_initramfs(tree: &Path, job: &Job, agent: &Path) -> Result<(tempfile::TempDir, PathBuf)> {
    let work = tempfile::Builder::new()
        .prefix("rootfs-kernel-")
        .tempdir()
        .context("making a work folder")?;
    let cpio = work.path().join("initramfs.cpio");
    let job_bytes = serde_json::to_vec(job).context("writing the job")?;
    initramfs::write(&cpio, agent, &job_bytes, tree)?;
    Ok((work, cpio))
}

/// The time of a bare boot of the initramfs [`run`] boots, written
/// beforehand: the guest's init starts, runs no check and powers off
/// (what a kernel smoke run is measured against).
pub fn bare_boot(tree: &Path, kernel: &KernelSource, agent: &Path) -> Result<Duration> {
    let image = kernel::image(kernel)?;
    let job = Job { hostname: "bare".to_string(), jobs: 1, checks: Vec::new() };
    let (work, cpio) = write_initramfs(tree, &job, agent)?;
    let boot = Boot { image: &image, initramfs: &cpio, work: work.path(), cpus: 2 };
    let started = Instant::now();
    match boot.run(BOOT_ALLOWANCE)? {
        (GuestReport::Ran { .. }, _) => Ok(started.elapsed()),
        (GuestReport::Failed(why), _) => bail!("the bare boot's init failed: {why}"),
    }
}

/// One boot of the virtual machine.
struct Boot<'a> {
    image: &'a Path,
    initramfs: &'a Path,
    work: &'a Path,
    cpus: usize,
}

impl Boot<'_> {
    /// The command line: no default devices, the console on the first
    /// serial port and the results on the second, each to a file.
    fn command(&self) -> Vec<std::ffi::OsString> {
        let append = format!(
            "console=ttyS0 rdinit={} panic=-1 -- {}",
            initramfs::INIT,
            GUEST_ARGS.join(" ")
        );
        let mut argv: Vec<std::ffi::OsString> = [
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(Into::into)
        .collect();
        argv.extend(["-smp".into(), self.cpus.to_string().into()]);
        argv.extend(["-m".into(), GUEST_MEMORY_MIB.to_string().into()]);
        for file in ["console", "results"] {
            let mut spec = std::ffi::OsString::from("file:");
            spec.push(self.work.join(file));
            argv.extend(["-serial".into(), spec]);
        }
        argv.extend(["-kernel".into(), self.image.into(), "-initrd".into(), self.initramfs.into()]);
        argv.extend(["-append".into(), append.into()]);
        argv
    }

    /// Boots, waits for the guest to power off (killing it at `deadline`),
    /// and reads the results and the console.
    fn run(&self, deadline: Duration) -> Result<(GuestReport, String)> {
        let handle = duct::cmd(QEMU, self.command())
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .start()
            .with_context(|| format!("starting `{QEMU}` (Debian's `qemu-system-x86`)"))?;
        let waited =
            handle.wait_timeout(deadline).with_context(|| format!("waiting for `{QEMU}`"))?;
        let console_path = self.work.join("console");
        let console =
            String::from_utf8_lossy(&std::fs::read(&console_path).unwrap_or_default()).into_owned();
        let Some(output) = waited else {
            let _ = handle.kill();
            bail!(
                "the guest did not power off within {} s\nthe kernel's console ends:\n{}",
                deadline.as_secs(),
                tail(&console)
            );
        };
        if !output.status.success() {
            bail!(
                "`{QEMU}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stdout).trim()
            );
        }
        let results_path = self.work.join("results");
        let bytes = std::fs::read(&results_path)
            .with_context(|| format!("reading `{}`", results_path.display()))?;
        let report = wire::unframe(&bytes)
            .with_context(|| format!("the kernel's console ends:\n{}", tail(&console)))?;
        Ok((report, console))
    }
}

/// The last lines of the console, for errors.
fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The program that runs as the guest's init: this one.
pub fn this_program() -> Result<PathBuf> {
    std::env::current_exe().context("finding this program, the guest's init")
}
