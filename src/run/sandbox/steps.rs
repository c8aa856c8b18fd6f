//! The steps of entering a rootfs, and the page of memory shared with the forked children where they record which step they are at and the host pid of the namespace's PID 1.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use anyhow::{Context, Result};

/// One step of entering, in the order they run. The shared page holds the
/// step reached as a number; a failure is reported with its words.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Starting,
    ParentDeathSignal,
    JoiningCgroups,
    SettingRlimits,
    JoiningNetwork,
    Unsharing,
    WritingUserMaps,
    ForkingPid1,
    MakingMountsPrivate,
    OpeningBinds,
    BindMountingRoot,
    MakingRootReadOnly,
    MountingLayer,
    MountingProc,
    RegisteringCpuEmulator,
    RegisteringEmulators,
    MountingSys,
    MountingDev,
    PopulatingDev,
    MountingTmp,
    MaskingHostDirs,
    PivotingRoot,
    MountingHome,
    MakingMountPoint,
    BindMounting,
    SealingRoot,
    SettingHostname,
    LockingMounts,
    SwitchingUser,
    ChangingDirectory,
    InstallingTracer,
    ForkingCommand,
    Executing,
}

impl Step {
    /// Every step, by number.
    const ALL: [Step; 33] = [
        Step::Starting,
        Step::ParentDeathSignal,
        Step::JoiningCgroups,
        Step::SettingRlimits,
        Step::JoiningNetwork,
        Step::Unsharing,
        Step::WritingUserMaps,
        Step::ForkingPid1,
        Step::MakingMountsPrivate,
        Step::OpeningBinds,
        Step::BindMountingRoot,
        Step::MakingRootReadOnly,
        Step::MountingLayer,
        Step::MountingProc,
        Step::RegisteringCpuEmulator,
        Step::RegisteringEmulators,
        Step::MountingSys,
        Step::MountingDev,
        Step::PopulatingDev,
        Step::MountingTmp,
        Step::MaskingHostDirs,
        Step::PivotingRoot,
        Step::MountingHome,
        Step::MakingMountPoint,
        Step::BindMounting,
        Step::SealingRoot,
        Step::SettingHostname,
        Step::LockingMounts,
        Step::SwitchingUser,
        Step::ChangingDirectory,
        Step::InstallingTracer,
        Step::ForkingCommand,
        Step::Executing,
    ];

    /// The step as words, for messages: "mounting /proc failed".
    pub fn words(self) -> &'static str {
        match self {
            Step::Starting => "starting",
            Step::ParentDeathSignal => "setting the parent-death signal",
            Step::JoiningCgroups => "joining the check's cgroups",
            Step::SettingRlimits => "setting resource limits",
            Step::JoiningNetwork => "joining the worker's user and network namespaces (setns)",
            Step::Unsharing => "unsharing namespaces (unshare)",
            Step::WritingUserMaps => "writing the user namespace's uid and gid maps",
            Step::ForkingPid1 => "forking PID 1 of the new PID namespace",
            Step::MakingMountsPrivate => "making mounts private",
            Step::OpeningBinds => "opening the host paths to bind (open_tree)",
            Step::BindMountingRoot => "bind-mounting the rootfs",
            Step::MakingRootReadOnly => "making the rootfs read-only",
            Step::MountingLayer => "mounting the writable layer (an overlay on a tmpfs)",
            Step::MountingProc => "mounting /proc",
            Step::RegisteringCpuEmulator => {
                "registering the CPU emulator in a binfmt_misc of the sandbox's own (Linux >= 6.7)"
            }
            Step::RegisteringEmulators => {
                "registering the emulators in the namespace's binfmt_misc"
            }
            Step::MountingSys => "mounting a read-only /sys",
            Step::MountingDev => "mounting a tmpfs on /dev",
            Step::PopulatingDev => "populating /dev",
            Step::MountingTmp => "mounting a tmpfs on /tmp",
            Step::MaskingHostDirs => "masking /run",
            Step::PivotingRoot => "pivot_root into the rootfs",
            Step::MountingHome => "mounting a tmpfs on the home directory",
            Step::MakingMountPoint => "making a bind's mount point",
            Step::BindMounting => "bind-mounting a host path",
            Step::SealingRoot => "making the rootfs read-only over its binds",
            Step::SettingHostname => "setting the hostname",
            Step::LockingMounts => "locking the mounts in a nested user namespace",
            Step::SwitchingUser => "switching to the user",
            Step::ChangingDirectory => "changing to the working directory",
            Step::InstallingTracer => "installing the tracer",
            Step::ForkingCommand => "forking the command off PID 1",
            Step::Executing => "executing the command",
        }
    }
}

/// A page of memory shared with the forked children: the step they are at
/// and, once forked, PID 1's pid in the host's PID namespace (0 before and
/// after it runs).
#[derive(Debug)]
pub struct StepLog {
    page: *mut u8,
}

// SAFETY: the page is only accessed through atomics.
unsafe impl Send for StepLog {}
// SAFETY: as above.
unsafe impl Sync for StepLog {}

const PAGE: usize = 4096;

impl StepLog {
    pub fn new() -> Result<StepLog> {
        // SAFETY: a fresh anonymous shared mapping, unmapped in Drop.
        let page = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                PAGE,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
            )
        }
        .context("failed to map a shared page")?;
        Ok(StepLog { page: page.cast() })
    }

    fn step_cell(&self) -> &AtomicU32 {
        // SAFETY: the page lives as long as self, is zeroed and aligned.
        unsafe { &*self.page.cast::<AtomicU32>() }
    }

    fn pid_cell(&self) -> &AtomicI32 {
        // SAFETY: as above; offset 4 is inside the page and aligned.
        unsafe { &*self.page.add(4).cast::<AtomicI32>() }
    }

    /// Records the step reached; async-signal-safe (one atomic store).
    pub fn set(&self, step: Step) {
        self.step_cell().store(step as u32, Ordering::SeqCst);
    }

    /// The step reached.
    pub fn step(&self) -> Step {
        let n = self.step_cell().load(Ordering::SeqCst) as usize;
        Step::ALL.get(n).copied().unwrap_or(Step::Starting)
    }

    /// Records PID 1's host pid (0 once it is reaped); async-signal-safe.
    pub fn set_pid1(&self, pid: i32) {
        self.pid_cell().store(pid, Ordering::SeqCst);
    }

    /// PID 1's host pid while it runs.
    pub fn pid1(&self) -> Option<rustix::process::Pid> {
        rustix::process::Pid::from_raw(self.pid_cell().load(Ordering::SeqCst))
    }
}

impl Drop for StepLog {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length.
        let _ = unsafe { rustix::mm::munmap(self.page.cast(), PAGE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_reads_back_as_itself() {
        let log = StepLog::new().unwrap();
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(*step as usize, i, "{step:?} is out of order in Step::ALL");
            log.set(*step);
            assert_eq!(log.step(), *step);
        }
        assert_eq!(log.pid1(), None);
        log.set_pid1(42);
        assert_eq!(log.pid1().map(|p| p.as_raw_nonzero().get()), Some(42));
    }
}
