//! The init of the virtual machine: it makes the initramfs a root that `pivot_root` accepts, mounts `/proc`, `/sys`, `/dev` and cgroup2 (only v2), runs the job's checks in the tree at `/tree` through the same smoke code as the host, sends the results framed on the second serial port, and powers off.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use rustix::mount::MountFlags;

use super::wire::{self, GuestReport, Job, WireResult};

/// The tree, inside the initramfs.
pub const TREE: &str = "/tree";

/// The port the results go to: `ttyS1`, the second 8250 port (built into
/// Debian's kernels, where `virtio_console` is a module). The kernel's
/// console is on `ttyS0`, so its messages never reach this one.
const PORT: &str = "/dev/ttyS1";

/// Runs the job and powers the machine off; returns only when it is not
/// PID 1 (run by mistake outside a virtual machine).
pub fn main() -> Result<()> {
    anyhow::ensure!(
        std::process::id() == 1,
        "`rootfs kernel-guest` is the init of `smoke --kernel`'s virtual machine, not a command"
    );
    let report = match run() {
        Ok(report) => report,
        Err(e) => GuestReport::Failed(format!("{e:#}")),
    };
    if let Err(e) = send(&report) {
        eprintln!("rootfs guest: cannot send the results: {e:#}");
    }
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
    Ok(())
}

fn run() -> Result<GuestReport> {
    let started = std::time::Instant::now();
    become_pivotable()?;
    mount_kernel_filesystems()?;
    let job: Job = serde_json::from_slice(
        &std::fs::read(wire::JOB_PATH).with_context(|| format!("reading `{}`", wire::JOB_PATH))?,
    )
    .context("reading the job")?;
    let checks: Vec<_> = job.checks.iter().map(|c| c.check()).collect();
    let options = crate::run::smoke::Options {
        jobs: job.jobs.max(1),
        hostname: job.hostname,
        reference: None,
    };
    let report = crate::run::smoke::run(Path::new(TREE), &checks, &options)?;
    Ok(GuestReport::Ran {
        release: rustix::system::uname().release().to_string_lossy().into_owned(),
        notes: report.notes.clone(),
        results: report.results.iter().map(WireResult::of).collect(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The initramfs is the root mount itself, which `pivot_root(2)` refuses
/// to move ("the rootfs cannot be pivoted"): a bind of it moved over `/`
/// and entered with `chroot` is a mount with a parent, which every
/// sandbox's `pivot_root` then accepts (what `switch_root(8)` does).
fn become_pivotable() -> Result<()> {
    let dir = "/rootfs-guest/root";
    std::fs::create_dir_all(dir).with_context(|| format!("making `{dir}`"))?;
    rustix::mount::mount_bind("/", dir).context("binding the initramfs")?;
    rustix::process::chdir(dir).context("entering the bind")?;
    rustix::mount::mount_move(".", "/").context("moving the bind over `/`")?;
    rustix::process::chroot(".").context("chroot into the bind")?;
    rustix::process::chdir("/").context("chdir /")?;
    Ok(())
}

/// `/proc`, `/sys`, `/dev` (with the serial ports), `/tmp`, and cgroup2
/// alone on `/sys/fs/cgroup` with `pids` and `memory` given to children.
fn mount_kernel_filesystems() -> Result<()> {
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    let mounts: [(&str, &str, &str, MountFlags); 5] = [
        ("proc", "/proc", "proc", flags),
        ("sysfs", "/sys", "sysfs", flags),
        ("devtmpfs", "/dev", "devtmpfs", MountFlags::NOSUID | MountFlags::NOEXEC),
        ("tmpfs", "/tmp", "tmpfs", MountFlags::NOSUID | MountFlags::NODEV),
        ("cgroup2", "/sys/fs/cgroup", "cgroup2", flags),
    ];
    for (source, target, fstype, flags) in mounts {
        std::fs::create_dir_all(target).with_context(|| format!("making `{target}`"))?;
        rustix::mount::mount(source, target, fstype, flags, None)
            .with_context(|| format!("mounting {fstype} on `{target}`"))?;
    }
    let control = "/sys/fs/cgroup/cgroup.subtree_control";
    std::fs::write(control, "+pids +memory")
        .with_context(|| format!("enabling pids and memory in `{control}`"))?;
    Ok(())
}

/// Writes the framed report to [`PORT`], in raw mode so that no byte is
/// translated, and waits until it has left.
fn send(report: &GuestReport) -> Result<()> {
    let mut port = std::fs::OpenOptions::new()
        .write(true)
        .open(PORT)
        .with_context(|| format!("opening `{PORT}`"))?;
    let mut termios = rustix::termios::tcgetattr(&port)
        .with_context(|| format!("reading the mode of `{PORT}`"))?;
    termios.make_raw();
    rustix::termios::tcsetattr(&port, rustix::termios::OptionalActions::Now, &termios)
        .with_context(|| format!("setting `{PORT}` raw"))?;
    port.write_all(&wire::frame(report)).with_context(|| format!("writing to `{PORT}`"))?;
    rustix::termios::tcdrain(&port).with_context(|| format!("draining `{PORT}`"))?;
    Ok(())
}
