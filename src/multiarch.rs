//! A multi-architecture spec (`architectures = [...]` in `[sysroot.debian]`): one tree per architecture at `<out>/<arch>/`, each with its files beside it in `<out>/.rootfs/<arch>.*`, all built from one lock that holds a package set per architecture.
//!
//! Each tree is an ordinary build ([`crate::build::build`]) whose options
//! name its architecture (`part`): it reads its own part of the lock
//! ([`crate::lock::Lock::part`]) and compares it under `--locked` as a
//! single-architecture build compares its lock, and leaves the lock file
//! alone. [`build`] then writes the one lock: the host inputs once, and
//! `[architectures.<arch>]` for each listed architecture.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::build::{self, Built};
use crate::lock::{self, Lock};

/// The output folder of one architecture's tree, under the spec's output
/// folder `out` (`target/rootfs/<name>`).
pub fn part_out(out: &Path, arch: &str) -> PathBuf {
    out.join(arch)
}

/// Builds every tree of `parts` (one [`build::Options`] per architecture,
/// each with `part` set, all of one spec and lock), then writes the lock:
/// every architecture of `listed` (the spec's list), from the builds or,
/// for one not built now, from the lock there is. With `--locked`, a lock
/// that would change is refused instead.
pub fn build(parts: &[build::Options], listed: &[String]) -> Result<Vec<Built>> {
    let Some(first) = parts.first() else {
        bail!("a multi-architecture build needs an architecture")
    };
    let lock_path = first.lock.clone().unwrap_or_else(|| lock::path_for(&first.spec));
    let mut built = Vec::new();
    for options in parts {
        let arch = options.part.as_deref().context("a part build names its architecture")?;
        let one = build::build(options)
            .with_context(|| format!("building the {arch} tree of `{}`", options.spec.display()))?;
        built.push(one);
    }
    // Every part made the same new lock: said once.
    for later in built.iter_mut().skip(1) {
        if later.lock.as_ref().is_some_and(|update| update.created) {
            later.lock = None;
        }
    }
    let on_disk = lock::read(&lock_path)?;
    let mut locks: Vec<(String, Lock)> = Vec::new();
    for arch in listed {
        let now = parts.iter().zip(&built).find(|(o, _)| o.part.as_deref() == Some(arch));
        let part = match now.and_then(|(_, b)| b.part_lock.clone()) {
            Some(lock) => Some(lock),
            None => on_disk.as_ref().map(|d| d.lock.part(arch)).filter(|l| l.debian.is_some()),
        };
        if let Some(part) = part {
            locks.push((arch.clone(), part));
        }
    }
    let Some(merged) = Lock::merge_parts(locks) else { return Ok(built) };
    write_lock(&lock_path, &merged, on_disk.as_ref(), first.locked)?;
    Ok(built)
}

/// Writes the merged lock when its text differs from the file's; under
/// `--locked` that is an error (the parts matched, so what differs is
/// the list of architectures).
fn write_lock(
    path: &Path,
    merged: &Lock,
    on_disk: Option<&lock::OnDisk>,
    locked: bool,
) -> Result<()> {
    let text = merged.render()?;
    if on_disk.is_some_and(|d| d.sha256 == crate::fsutil::sha256_hex(text.as_bytes())) {
        return Ok(());
    }
    if locked {
        let was: Vec<&String> =
            on_disk.map(|d| d.lock.architectures.keys().collect()).unwrap_or_default();
        let now: Vec<&String> = merged.architectures.keys().collect();
        bail!(
            "the lock `{}` holds the architectures {was:?} and the spec lists {now:?}: run without `--locked` to rewrite it",
            path.display()
        );
    }
    lock::write(path, &text)
}
