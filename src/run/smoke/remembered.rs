//! The reference's side of each probe, kept beside the tree (`.rootfs/<name>.reference.json`) under a key of everything that decides it, so that a rerun runs only the tree's side.
//!
//! A key is the sha256 of what the reference run depends on: this tool's
//! binary (its file state), the reference root (its path, its folder's
//! state, its dpkg database's state, the emulators of its foreign
//! programs), the state of every sysroot file the tree was made of (so a
//! changed library or program makes every key new), the program's content
//! digest, the command line and its fallback, the whole environment, the
//! hostname, what the check opens, its limits and its timeout. An entry is
//! only ever found under the key it was made with, so it cannot go stale:
//! a change to any of these is a miss, and the reference runs again.
//!
//! Only a run that ended by itself with its whole output kept is
//! remembered (not a timeout, an interruption or a failure to start).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::capture::Capture;
use super::runner::{End, Ran};
use super::{Check, Sandboxes};
use crate::build::manifest::Manifest;
use crate::vocab::{FileState, Sha256};

/// The layout of the file; another one is not read.
const FORMAT: u32 = 1;

/// Where the reference runs of the tree at `out` are kept.
pub fn path_for(out: &Path) -> PathBuf {
    crate::fsutil::side_file(out, ".reference.json")
}

/// The file: every remembered probe by its key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    format: u32,
    entries: BTreeMap<String, Entry>,
}

/// What a probe did on the reference, as far as its verdict uses it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Entry {
    /// The key of the run's whole state ([`Remembered::base`]) it was made
    /// under: entries of another state are dropped when the file is written.
    base: String,
    /// The command line that ran: the probe, or its fallback.
    pub argv: Vec<String>,
    pub status: Option<i32>,
    pub output: String,
    /// Whether a second run printed something else; `None` until a tree's
    /// output differed and it was asked.
    pub varying: Option<bool>,
}

impl Entry {
    /// The reference's run as the verdict reads it.
    pub fn ran(&self) -> Ran {
        let mut output = Capture::new(None);
        output.push(self.output.as_bytes());
        Ran {
            argv: self.argv.clone(),
            end: End::Exited,
            status: self.status,
            signal: None,
            output,
            errors: None,
            hit: None,
            elapsed: std::time::Duration::ZERO,
        }
    }
}

/// Whether `bytes` are a reference cache of this tool.
pub fn recognise(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Stored>(bytes).is_ok()
}

/// The remembered runs of one smoke run: those read, those used or made
/// now, and how many probes ran on the reference or were recalled.
pub(super) struct Remembered {
    path: PathBuf,
    /// The sha256 of the state every probe of this run shares.
    base: String,
    /// Each command's content digest, by its path in the tree.
    programs: HashMap<PathBuf, Sha256>,
    known: BTreeMap<String, Entry>,
    now: Mutex<BTreeMap<String, Entry>>,
    recalled: AtomicUsize,
    ran: AtomicUsize,
}

impl Remembered {
    /// The cache of the tree at `out`, described by `manifest`, whose
    /// probes are judged against `reference`. An unreadable file, or one of
    /// another layout, is empty; one that is not this tool's is refused
    /// (it will not be replaced).
    pub fn open(out: &Path, manifest: &Manifest, reference: &Path, hostname: &str) -> Result<Self> {
        let path = path_for(out);
        crate::build::output::check_file(&path, "a reference cache of smoke runs", recognise)?;
        let known = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
            .filter(|stored| stored.format == FORMAT)
            .map(|stored| stored.entries)
            .unwrap_or_default();
        let digests = crate::build::digest_cache::read(&crate::build::digest_cache::path_for(out));
        let sources = Sources { manifest, reference, digests: &digests };
        Ok(Remembered {
            base: base(&sources, hostname)?,
            programs: sources.programs(),
            path,
            known,
            now: Mutex::new(BTreeMap::new()),
            recalled: AtomicUsize::new(0),
            ran: AtomicUsize::new(0),
        })
    }

    /// The key of `check` (with `fallback`) in `sandboxes`.
    pub fn key(&self, sandboxes: &Sandboxes, check: &Check, fallback: &[String]) -> String {
        let program = check.argv.first().and_then(|a| self.programs.get(Path::new(a)));
        let key = serde_json::json!({
            "base": self.base,
            "program": program,
            "argv": check.argv,
            "fallback": fallback,
            "env": sandboxes.env_for(check),
            "opens": format!("{:?}", check.opens),
            "limits": format!("{:?}", check.limits),
            "timeout_ms": check.timeout.as_millis() as u64,
        });
        crate::fsutil::sha256_hex(key.to_string().as_bytes())
    }

    /// The entry under `key`, counted as recalled when there is one.
    pub fn recall(&self, key: &str) -> Option<Entry> {
        let now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let found = now.get(key).or_else(|| self.known.get(key)).cloned();
        if found.is_some() {
            self.recalled.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Counts a probe whose reference side ran.
    pub fn ran(&self) {
        self.ran.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps `host` (with whether its output varies, when known) under
    /// `key`, when it ended by itself with its whole output.
    pub fn keep(&self, key: String, host: &Ran, varying: Option<bool>) {
        if host.end != End::Exited || !host.output.is_whole() {
            return;
        }
        let entry = Entry {
            base: self.base.clone(),
            argv: host.argv.clone(),
            status: host.status,
            output: host.output.text(),
            varying,
        };
        self.now.lock().unwrap_or_else(|e| e.into_inner()).insert(key, entry);
    }

    /// Keeps an entry recalled now as it is.
    pub fn keep_recalled(&self, key: String, entry: Entry) {
        self.now.lock().unwrap_or_else(|e| e.into_inner()).insert(key, entry);
    }

    /// The line of the report saying where the reference's side came from.
    pub fn note(&self) -> String {
        format!(
            "reference: {} probes ran on the sysroot, {} were taken from `{}`",
            self.ran.load(Ordering::Relaxed),
            self.recalled.load(Ordering::Relaxed),
            self.path.display()
        )
    }

    /// Writes the entries of this state (read or made now) back, sorted,
    /// atomically; entries of another state can never be found again.
    pub fn save(self) -> Result<()> {
        let mut entries: BTreeMap<String, Entry> =
            self.known.into_iter().filter(|(_, e)| e.base == self.base).collect();
        entries.extend(self.now.into_inner().unwrap_or_else(|e| e.into_inner()));
        let stored = Stored { format: FORMAT, entries };
        let bytes = serde_json::to_vec(&stored).context("serialising the reference cache")?;
        crate::build::output::check_file(&self.path, "a reference cache of smoke runs", recognise)?;
        crate::fsutil::write_side_file(&self.path, &bytes)
    }
}

/// The sysroot files a tree was made of, as they are now.
struct Sources<'a> {
    manifest: &'a Manifest,
    reference: &'a Path,
    digests: &'a crate::build::digest_cache::Digests,
}

impl Sources<'_> {
    /// Where the source of an entry is now: a host path under the
    /// reference as it is, a path inside an image or package sysroot (a
    /// cache folder elsewhere on each machine) under the reference.
    fn host_path(&self, source: &Path) -> PathBuf {
        if source.starts_with(self.reference) {
            return source.to_path_buf();
        }
        let inside = self.reference.join(source.strip_prefix("/").unwrap_or(source));
        if std::fs::symlink_metadata(&inside).is_ok() { inside } else { source.to_path_buf() }
    }

    /// Every entry's source with its state now, in the manifest's order.
    fn states(&self) -> Vec<(&Path, Option<FileState>)> {
        let entries = self.manifest.entries.iter();
        let sourced = entries.filter_map(|e| e.source.as_deref().map(|s| (e.path.as_path(), s)));
        sourced.map(|(path, source)| (path, FileState::read(&self.host_path(source)))).collect()
    }

    /// The content digest of each command, by its path in the tree: from
    /// the digest cache while the file's state is the one it recorded,
    /// else read now.
    fn programs(&self) -> HashMap<PathBuf, Sha256> {
        let mut programs = HashMap::new();
        for command in &self.manifest.commands {
            let Some(source) = self.manifest.lookup(&command.path).and_then(|e| e.source.clone())
            else {
                continue;
            };
            let host = self.host_path(&source);
            let cached = self
                .digests
                .get(&host)
                .filter(|(state, _)| FileState::read(&host).as_ref() == Some(state))
                .map(|(_, digest)| *digest);
            if let Some(digest) = cached.or_else(|| Sha256::of_file(&host).ok()) {
                programs.insert(command.path.clone(), digest);
            }
        }
        programs
    }
}

/// The key of what every probe of a run shares: the tool, the reference
/// root, its sources' states and the hostname.
fn base(sources: &Sources, hostname: &str) -> Result<String> {
    let tool = std::env::current_exe().context("finding this tool's binary")?;
    let reference = sources.reference;
    let emulators: Vec<(PathBuf, Option<FileState>)> =
        crate::run::sandbox::binfmt::foreign_arches(reference)
            .into_iter()
            .filter_map(|arch| crate::run::sandbox::binfmt::emulator(arch).ok())
            .map(|e| (e.path.clone(), FileState::read(&e.path)))
            .collect();
    let key = serde_json::json!({
        "format": FORMAT,
        "tool": FileState::read(&tool),
        "reference": reference.canonicalize().unwrap_or_else(|_| reference.to_path_buf()),
        "root": FileState::read(reference),
        "dpkg": FileState::read(&reference.join("var/lib/dpkg/status")),
        "emulators": emulators,
        "hostname": hostname,
        "sources": sources.states(),
    });
    Ok(crate::fsutil::sha256_hex(key.to_string().as_bytes()))
}
