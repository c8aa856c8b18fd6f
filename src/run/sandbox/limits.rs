//! Per-check limits on processes and memory: cgroups that a check joins (cgroup v2 where it is mounted with the `pids` and `memory` controllers, else the v1 `pids` and `memory` hierarchies), rlimits where no cgroup can be made, and what a limit did to a check.
//!
//! Every cgroup this tool makes is a child of the tool's own cgroup in that
//! hierarchy (`/proc/self/cgroup`), so a check is never less limited than
//! the tool itself: `<own>/rootfs-<pid>-<run>/check-<n>`. The keeper joins its
//! check's cgroups first thing after the fork, by writing `0` to the
//! `cgroup.procs` files opened beforehand (`cgroups(7)`), so everything the
//! check starts is counted.
//!
//! Making and removing a cgroup costs the kernel more than a short check
//! does (an empty memory cgroup lingers until its pages are freed), so the
//! folders are a pool: one set per check running at once, made when first
//! needed, reused one check after another with the check's limits written
//! when they differ, and removed when the run ends. A check's own events
//! are the growth of the folder's counters during it (OOM kills, failed
//! forks). A folder is only reused empty: one still holding a process, or
//! charged with more than half its memory limit (page cache read by earlier
//! checks), is removed and a fresh one made.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
    /// Check folders no check is in, ready for the next one.
    free: Mutex<Vec<Slot>>,
}

/// A resource limit set in the keeper when no cgroup can be used.
#[derive(Clone, Copy, Debug)]
pub struct Rlimit {
    pub resource: rustix::process::Resource,
    pub value: u64,
}

/// One check's folders (one per hierarchy), used by one check at a time.
#[derive(Debug)]
struct Slot {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each folder, open for writing.
    procs: Vec<OwnedFd>,
    /// The limits written last.
    set: Option<Limits>,
    /// The counters when the current check began.
    seen: Events,
}

/// What the kernel counted in a check's folders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Events {
    oom_kills: u64,
    failed_forks: u64,
}

/// The cgroups of one check, ready before it starts and given back with
/// [`CheckLimits::finish`].
#[derive(Debug)]
pub struct CheckLimits<'a> {
    cgroups: &'a Cgroups,
    limits: Limits,
    slot: Option<Slot>,
    rlimits: Vec<Rlimit>,
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
        Cgroups { backend, next: AtomicU64::new(0), free: Mutex::new(Vec::new()) }
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

    /// The cgroups of one check, with `limits` set: a free folder of the
    /// pool, or a new one.
    pub fn for_check(&self, limits: Limits) -> Result<CheckLimits<'_>> {
        let mut check = CheckLimits { cgroups: self, limits, slot: None, rlimits: Vec::new() };
        if let Backend::Rlimits { .. } = &self.backend {
            use rustix::process::Resource;
            check.rlimits = vec![
                Rlimit { resource: Resource::Nproc, value: limits.pids },
                Rlimit { resource: Resource::Data, value: limits.memory },
            ];
            return Ok(check);
        }
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(mut slot) = reused {
            // A folder removed under us (by hand) is replaced, not reported.
            match self.set_limits(&mut slot, limits) {
                Ok(()) => {
                    check.slot = Some(slot);
                    return Ok(check);
                }
                Err(_) => remove_slot(slot),
            }
        }
        let mut slot = self.new_slot()?;
        if let Err(e) = self.set_limits(&mut slot, limits) {
            remove_slot(slot);
            return Err(e);
        }
        check.slot = Some(slot);
        Ok(check)
    }

    /// A check's folders made anew, empty and unlimited.
    fn new_slot(&self) -> Result<Slot> {
        let name = format!("check-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let mut slot =
            Slot { dirs: Vec::new(), procs: Vec::new(), set: None, seen: Events::default() };
        let parents: Vec<&PathBuf> = match &self.backend {
            Backend::V2 { run } => vec![run],
            Backend::V1 { pids, memory } => vec![pids, memory],
            Backend::Rlimits { .. } => Vec::new(),
        };
        for parent in parents {
            let made = make_dir(&parent.join(&name)).and_then(|dir| {
                let procs = open_procs(&dir);
                slot.dirs.push(dir);
                slot.procs.push(procs?);
                Ok(())
            });
            if let Err(e) = made {
                remove_slot(slot);
                return Err(e);
            }
        }
        Ok(slot)
    }

    /// Writes `limits` into the slot's folders, unless they hold them
    /// already. Memory with swap is never below memory alone (cgroup v1
    /// refuses it), so of the two the one that grows is written first.
    fn set_limits(&self, slot: &mut Slot, limits: Limits) -> Result<()> {
        let (pids, memory) = (limits.pids.to_string(), limits.memory.to_string());
        let was = slot.set.take();
        let growing = was.is_none_or(|w| limits.memory > w.memory);
        let pids_changed = was.is_none_or(|w| w.pids != limits.pids);
        let memory_changed = was.is_none_or(|w| w.memory != limits.memory);
        match &self.backend {
            Backend::V2 { .. } => {
                let dir = &slot.dirs[0];
                if pids_changed {
                    write(&dir.join("pids.max"), &pids)?;
                }
                if memory_changed {
                    write(&dir.join("memory.max"), &memory)?;
                }
                if was.is_none() {
                    // Swap would let a check use more memory than its limit.
                    let _ = write(&dir.join("memory.swap.max"), "0");
                }
            }
            Backend::V1 { .. } => {
                let (pids_dir, memory_dir) = (&slot.dirs[0], &slot.dirs[1]);
                if pids_changed {
                    write(&pids_dir.join("pids.max"), &pids)?;
                }
                if memory_changed {
                    // Only where swap accounting is on.
                    let with_swap =
                        || write(&memory_dir.join("memory.memsw.limit_in_bytes"), &memory);
                    if growing && was.is_some() {
                        let _ = with_swap();
                    }
                    write(&memory_dir.join("memory.limit_in_bytes"), &memory)?;
                    if !growing || was.is_none() {
                        let _ = with_swap();
                    }
                }
            }
            Backend::Rlimits { .. } => {}
        }
        slot.set = Some(limits);
        Ok(())
    }

    /// Takes a slot back after its check: kept for the next check when it
    /// is empty and lightly charged, else removed.
    fn give_back(&self, slot: Slot) {
        let v2 = self.is_v2();
        let memory_dir = if v2 { slot.dirs.first() } else { slot.dirs.get(1) };
        let charged = memory_dir
            .and_then(|dir| {
                let file = if v2 { "memory.current" } else { "memory.usage_in_bytes" };
                std::fs::read_to_string(dir.join(file)).ok()?.trim().parse::<u64>().ok()
            })
            .unwrap_or(u64::MAX);
        let limit = slot.set.map_or(0, |l| l.memory);
        let empty = slot.dirs.iter().all(|dir| {
            std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|t| t.trim().is_empty())
        });
        if empty && charged <= limit / 2 {
            self.free.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
        } else {
            remove_slot(slot);
        }
    }

    fn is_v2(&self) -> bool {
        matches!(self.backend, Backend::V2 { .. })
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for slot in self.free.get_mut().unwrap_or_else(|e| e.into_inner()).drain(..) {
            remove_slot(slot);
        }
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

impl CheckLimits<'_> {
    /// The descriptors the keeper writes `0` to, joining the cgroups.
    pub fn join_fds(&self) -> Vec<RawFd> {
        self.slot.iter().flat_map(|s| s.procs.iter().map(AsRawFd::as_raw_fd)).collect()
    }

    /// The rlimits the keeper sets (only when there is no cgroup).
    pub fn rlimits(&self) -> &[Rlimit] {
        &self.rlimits
    }

    /// What a limit did to the check, which has ended: the growth of its
    /// folders' event counters since it began. The folders go back to the
    /// pool (or are removed) either way.
    pub fn finish(mut self) -> Option<LimitHit> {
        let mut slot = self.slot.take()?;
        let now = events(&slot.dirs, self.cgroups.is_v2(), slot.seen);
        let hit = if now.oom_kills > slot.seen.oom_kills {
            Some(LimitHit::Memory { limit: self.limits.memory })
        } else if now.failed_forks > slot.seen.failed_forks {
            Some(LimitHit::Pids { limit: self.limits.pids })
        } else {
            None
        };
        slot.seen = now;
        self.cgroups.give_back(slot);
        hit
    }
}

impl Drop for CheckLimits<'_> {
    /// A check given up without [`CheckLimits::finish`]: its counters were
    /// not read, so its folders are not reused.
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            remove_slot(slot);
        }
    }
}

/// The event counters of a check's folders; where one cannot be read, the
/// count before.
fn events(dirs: &[PathBuf], v2: bool, before: Events) -> Events {
    let count = |file: &str, key: &str| -> Option<u64> {
        let mut total = None;
        for dir in dirs {
            if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
                let n = text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok());
                total = Some(total.unwrap_or(0) + n.unwrap_or(0));
            }
        }
        total
    };
    let memory_file = if v2 { "memory.events" } else { "memory.oom_control" };
    Events {
        oom_kills: count(memory_file, "oom_kill ").unwrap_or(before.oom_kills),
        failed_forks: count("pids.events", "max ").unwrap_or(before.failed_forks),
    }
}

/// Removes a check's folders.
fn remove_slot(slot: Slot) {
    drop(slot.procs);
    for dir in &slot.dirs {
        remove_dir(dir);
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
        remove_stale(&base);
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
    remove_stale(&pids);
    remove_stale(&memory);
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

/// Removes the empty folders of runs whose process is gone (a tool killed
/// before it could remove them): `rootfs-<pid>-<run>` with no `/proc/<pid>`.
/// Nothing is killed; a folder still holding a process stays.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix("rootfs-")?.split_once('-'));
        let Some((pid, _)) = pid.filter(|(pid, run)| is_number(pid) && is_number(run)) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        let run = entry.path();
        for check in std::fs::read_dir(&run).into_iter().flatten().flatten() {
            if check.file_name().to_str().is_some_and(|n| n.starts_with("check-")) {
                let _ = std::fs::remove_dir(check.path());
            }
        }
        let _ = std::fs::remove_dir(&run);
    }
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
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

    #[test]
    fn only_the_folders_of_runs_whose_process_is_gone_are_removed() {
        let base = tempfile::tempdir().unwrap();
        // Above any pid_max (at most 2^22).
        let gone = base.path().join("rootfs-999999999-3");
        let ours = base.path().join(format!("rootfs-{}-0", std::process::id()));
        let other = base.path().join("rootfs-999999999-x");
        let busy = base.path().join("rootfs-999999998-0");
        for dir in
            [gone.join("check-0"), gone.join("check-12"), ours.join("check-0"), other.clone()]
        {
            std::fs::create_dir_all(dir).unwrap();
        }
        // A folder with something else in it is not emptied.
        std::fs::create_dir_all(busy.join("kept")).unwrap();
        remove_stale(base.path());
        assert!(!gone.exists());
        assert!(ours.join("check-0").exists() && other.exists() && busy.join("kept").exists());
    }
}
