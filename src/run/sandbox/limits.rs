//! Per-check limits on processes and memory: a cgroup of its own for every check (cgroup v2 where it is mounted with the `pids` and `memory` controllers, else the v1 `pids` and `memory` hierarchies), rlimits where no cgroup can be made, and what a limit did to a check.
//!
//! Every cgroup this tool makes is a child of the tool's own cgroup in that
//! hierarchy (`/proc/self/cgroup`), so a check is never less limited than
//! the tool itself: `<own>/rootfs-<pid>-<run>/check-<n>`. The keeper joins its
//! check's cgroups first thing after the fork, by writing `0` to the
//! `cgroup.procs` files opened beforehand (`cgroups(7)`), so everything the
//! check starts is counted. The folders are removed when the check and the
//! run end.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

use crate::vocab::Limits;

/// Where limits are enforced.
#[derive(Debug)]
enum Backend {
    /// One cgroup v2 folder holding both controllers.
    V2 { run: PathBuf },
    /// The v1 `pids` and `memory` hierarchies.
    V1 { pids: PathBuf, memory: PathBuf },
    /// No cgroup can be made here; the reason, for the one line said.
    Rlimits { why: String },
}

/// The limits of one smoke run: the run's cgroup folders, or the reason
/// there are none.
#[derive(Debug)]
pub struct Cgroups {
    backend: Backend,
    next: AtomicU64,
}

/// A resource limit set in the keeper when no cgroup can be used.
#[derive(Clone, Copy, Debug)]
pub struct Rlimit {
    pub resource: rustix::process::Resource,
    pub value: u64,
}

/// The cgroups of one check, created before it starts.
#[derive(Debug)]
pub struct CheckLimits {
    limits: Limits,
    /// `cgroup.procs` of each of the check's cgroups, open for writing.
    procs: Vec<OwnedFd>,
    dirs: Vec<PathBuf>,
    rlimits: Vec<Rlimit>,
    v2: bool,
}

/// What a limit did to a check that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitHit {
    /// The kernel's OOM killer killed a process of the check.
    Memory { limit: u64 },
    /// A fork or clone failed because the check had `limit` processes.
    Pids { limit: u64 },
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitHit::Memory { limit } => {
                write!(f, "killed: memory limit {} reached", size_words(*limit))
            }
            LimitHit::Pids { limit } => write!(f, "fork failed: pids limit {limit}"),
        }
    }
}

/// A size as the spec would write it: `256M`, `2G`, or bytes.
pub fn size_words(bytes: u64) -> String {
    for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

impl Cgroups {
    /// Finds where this process's cgroups are and makes the run's folder
    /// there; falls back to rlimits, with the reason, when that fails.
    pub fn create() -> Cgroups {
        let backend = match make_run_dirs() {
            Ok(backend) => backend,
            Err(e) => Backend::Rlimits { why: format!("{e:#}") },
        };
        Cgroups { backend, next: AtomicU64::new(0) }
    }

    /// One line for people when the limits are only rlimits.
    pub fn note(&self) -> Option<String> {
        match &self.backend {
            Backend::Rlimits { why } => Some(format!(
                "note: no cgroup can be made here ({why}); smoke checks are limited with rlimits only: \
                 RLIMIT_NPROC for processes (it counts all of this user's processes) and RLIMIT_DATA for memory (per process)"
            )),
            _ => None,
        }
    }

    /// The cgroups of one check, with `limits` set.
    pub fn for_check(&self, limits: Limits) -> Result<CheckLimits> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("check-{n}");
        let mut check = CheckLimits {
            limits,
            procs: Vec::new(),
            dirs: Vec::new(),
            rlimits: Vec::new(),
            v2: false,
        };
        match &self.backend {
            Backend::V2 { run } => {
                let dir = make_dir(&run.join(&name))?;
                check.dirs.push(dir.clone());
                write(&dir.join("pids.max"), &limits.pids.to_string())?;
                write(&dir.join("memory.max"), &limits.memory.to_string())?;
                // Swap would let a check use more memory than its limit.
                let _ = write(&dir.join("memory.swap.max"), "0");
                check.procs.push(open_procs(&dir)?);
                check.v2 = true;
            }
            Backend::V1 { pids, memory } => {
                let pids_dir = make_dir(&pids.join(&name))?;
                check.dirs.push(pids_dir.clone());
                write(&pids_dir.join("pids.max"), &limits.pids.to_string())?;
                let memory_dir = make_dir(&memory.join(&name))?;
                check.dirs.push(memory_dir.clone());
                write(&memory_dir.join("memory.limit_in_bytes"), &limits.memory.to_string())?;
                // Only where swap accounting is on.
                let _ = write(
                    &memory_dir.join("memory.memsw.limit_in_bytes"),
                    &limits.memory.to_string(),
                );
                check.procs.push(open_procs(&pids_dir)?);
                check.procs.push(open_procs(&memory_dir)?);
            }
            Backend::Rlimits { .. } => {
                use rustix::process::Resource;
                check.rlimits = vec![
                    Rlimit { resource: Resource::Nproc, value: limits.pids },
                    Rlimit { resource: Resource::Data, value: limits.memory },
                ];
            }
        }
        Ok(check)
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        match &self.backend {
            Backend::V2 { run } => remove_dir(run),
            Backend::V1 { pids, memory } => {
                remove_dir(pids);
                remove_dir(memory);
            }
            Backend::Rlimits { .. } => {}
        }
    }
}

impl CheckLimits {
    /// The descriptors the keeper writes `0` to, joining the cgroups.
    pub fn join_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The rlimits the keeper sets (only when there is no cgroup).
    pub fn rlimits(&self) -> &[Rlimit] {
        &self.rlimits
    }

    /// What a limit did to the check, read from the cgroups' event counters
    /// once it ended.
    pub fn hit(&self) -> Option<LimitHit> {
        let count = |dir: &Path, file: &str, key: &str| -> u64 {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|text| {
                    text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        let (memory_file, memory_key) = if self.v2 {
            ("memory.events", "oom_kill ")
        } else {
            ("memory.oom_control", "oom_kill ")
        };
        if self.dirs.iter().any(|d| count(d, memory_file, memory_key) > 0) {
            return Some(LimitHit::Memory { limit: self.limits.memory });
        }
        if self.dirs.iter().any(|d| count(d, "pids.events", "max ") > 0) {
            return Some(LimitHit::Pids { limit: self.limits.pids });
        }
        None
    }

    /// Kills whatever is still in the check's cgroups (nothing, once its
    /// PID namespace is gone) and removes them.
    pub fn remove(self) {
        for dir in &self.dirs {
            remove_dir(dir);
        }
    }
}

/// Removes a cgroup folder, killing what is left in it first; retried
/// briefly, since a process killed a moment ago may not be gone yet.
fn remove_dir(dir: &Path) {
    for attempt in 0..100 {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) if attempt < 99 => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(_) => return,
        }
    }
}

fn make_dir(dir: &Path) -> Result<PathBuf> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(dir.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir.to_path_buf()),
        Err(e) => Err(e).with_context(|| format!("failed to create cgroup `{}`", dir.display())),
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("failed to write `{}`", path.display()))
}

fn open_procs(dir: &Path) -> Result<OwnedFd> {
    let path = dir.join("cgroup.procs");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    Ok(file.into())
}

/// The run's folders: `rootfs-<pid>-<run>` under this process's own cgroup.
fn make_run_dirs() -> Result<Backend> {
    let own = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    // Several runs may go on in one process (a library's callers, tests).
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run_name =
        format!("rootfs-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
    if let Some(base) = v2_with_controllers(&own, &mounts) {
        let run = make_dir(&base.join(&run_name))?;
        // The controllers must be enabled for the run's children.
        if let Err(e) = write(&run.join("cgroup.subtree_control"), "+pids +memory") {
            remove_dir(&run);
            return Err(e);
        }
        return Ok(Backend::V2 { run });
    }
    let pids = v1_dir(&own, &mounts, "pids").context("no cgroup v1 `pids` hierarchy is mounted")?;
    let memory =
        v1_dir(&own, &mounts, "memory").context("no cgroup v1 `memory` hierarchy is mounted")?;
    let pids_run = make_dir(&pids.join(&run_name))?;
    let memory_run = match make_dir(&memory.join(&run_name)) {
        Ok(dir) => dir,
        Err(e) => {
            remove_dir(&pids_run);
            return Err(e);
        }
    };
    Ok(Backend::V1 { pids: pids_run, memory: memory_run })
}

/// This process's cgroup v2 folder, when the unified hierarchy there offers
/// both controllers to its children.
fn v2_with_controllers(own: &str, mounts: &str) -> Option<PathBuf> {
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let (root, mount_point) = mount_of(mounts, |fstype, _| fstype == "cgroup2")?;
    let dir = join_cgroup(&mount_point, &root, path);
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
    let has = |c: &str| controllers.split_whitespace().any(|w| w == c);
    (has("pids") && has("memory")).then_some(dir)
}

/// This process's folder in the v1 hierarchy of `controller`.
fn v1_dir(own: &str, mounts: &str, controller: &str) -> Option<PathBuf> {
    let path = own.lines().find_map(|l| {
        let mut fields = l.splitn(3, ':');
        let (_, list, path) = (fields.next()?, fields.next()?, fields.next()?);
        list.split(',').any(|c| c == controller).then_some(path)
    })?;
    let (root, mount_point) = mount_of(mounts, |fstype, options| {
        fstype == "cgroup" && options.split(',').any(|o| o == controller)
    })?;
    Some(join_cgroup(&mount_point, &root, path))
}

/// The root and mount point of the first mount whose filesystem type and
/// super options `matches` accepts (`proc_pid_mountinfo(5)`).
fn mount_of(mounts: &str, matches: impl Fn(&str, &str) -> bool) -> Option<(String, PathBuf)> {
    mounts.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (fstype, _source, options) = (right.next()?, right.next()?, right.next()?);
        (fields.len() >= 5 && matches(fstype, options))
            .then(|| (unescape(fields[3]), PathBuf::from(unescape(fields[4]))))
    })
}

/// A cgroup path (relative to its hierarchy's root) as a host path, given
/// where that hierarchy (or the part of it at `root`) is mounted.
fn join_cgroup(mount_point: &Path, root: &str, path: &str) -> PathBuf {
    let relative = Path::new(path).strip_prefix(root).unwrap_or(Path::new(path));
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    mount_point.join(relative)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_folders_are_found_from_proc_self() {
        let own = "8:pids:/\n4:memory:/process_api/77d\n0::/\n";
        let mounts = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                      39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n";
        assert_eq!(v1_dir(own, mounts, "pids").unwrap(), Path::new("/sys/fs/cgroup/pids"));
        assert_eq!(
            v1_dir(own, mounts, "memory").unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/77d")
        );
        assert_eq!(v1_dir(own, mounts, "cpu"), None);
        assert_eq!(size_words(256 << 20), "256M");
        assert_eq!(size_words(2 << 30), "2G");
        assert_eq!(size_words(1000), "1000");
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
