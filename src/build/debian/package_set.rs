//! The package set a lock pins: made from a resolution, matched against what a spec asks, turned back into the `.deb`s to fetch without reading any index, and rewritten by `rootfs update`.
//!
//! As with `Cargo.lock`: a build whose lock holds a package set for the
//! same request uses the locked versions, fetching only the `.deb`s the
//! cache lacks (no index, and no request at all when all are cached); a
//! request that changed re-resolves, unless `--locked`, which refuses any
//! change. `update` always re-resolves and says what changed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::fetch::Wanted;
use super::package::{FetchedDeb, PackageId};
use super::source::{ArchiveSource, DebianRequest};
use super::sysroot::{self, Options, Resolution};
use crate::build::lock::{self, LockedPackage, LockedRelease, PackageSet};

/// The lock's record of `resolution`.
pub fn package_set(resolution: &Resolution) -> PackageSet {
    let source = &resolution.source;
    let suite_names: Vec<String> = source.suites.iter().map(|s| s.suite.clone()).collect();
    PackageSet {
        architecture: source.architecture.clone(),
        suites: suite_names,
        components: source.suites.first().map(|s| s.components.clone()).unwrap_or_default(),
        requested: sorted(&resolution.requested),
        releases: resolution
            .suites
            .iter()
            .map(|s| {
                (
                    s.suite.clone(),
                    LockedRelease {
                        sha256: s.inrelease_sha256,
                        date: s.date.clone(),
                        distro: s.distro.clone(),
                    },
                )
            })
            .collect(),
        packages: resolution
            .packages
            .iter()
            .map(|w| {
                (
                    w.id.name.clone(),
                    LockedPackage {
                        version: w.id.version.clone(),
                        architecture: w.id.architecture.clone(),
                        suite: w.suite.clone(),
                        filename: w.filename.clone(),
                        sha256: w.sha256,
                        size: w.size.unwrap_or_default(),
                    },
                )
            })
            .collect(),
    }
}

fn sorted(list: &[String]) -> Vec<String> {
    let mut list = list.to_vec();
    list.sort();
    list.dedup();
    list
}

/// Whether `set` was resolved for what `source` and `packages` ask now.
pub fn matches(set: &PackageSet, source: &ArchiveSource, packages: &[String]) -> bool {
    let suites: Vec<&str> = source.suites.iter().map(|s| s.suite.as_str()).collect();
    set.architecture == source.architecture
        && set.suites == suites
        && source.suites.first().is_some_and(|s| s.components == set.components)
        && set.requested == sorted(packages)
}

/// The `.deb`s of a locked set, each from this machine's mirror for the
/// suite that listed it.
pub fn wanted(set: &PackageSet, source: &ArchiveSource) -> Result<Vec<Wanted>> {
    set.packages
        .iter()
        .map(|(name, p)| {
            let Some(suite) = source.suites.iter().find(|s| s.suite == p.suite) else {
                bail!("the locked package `{name}` {} comes from the suite `{}`, which the spec no longer names", p.version, p.suite);
            };
            Ok(Wanted {
                id: PackageId { name: name.clone(), version: p.version.clone(), architecture: p.architecture.clone() },
                mirror: suite.mirror.clone(),
                suite: p.suite.clone(),
                filename: p.filename.clone(),
                sha256: p.sha256,
                size: Some(p.size),
            })
        })
        .collect()
}

/// The package set for `request` and its verified `.deb`s: the lock's set
/// (`options.lock`) when it was made for the same request, fetched without
/// reading any index; otherwise a new resolution, which `options.locked`
/// refuses.
pub fn locked_or_resolved(
    request: &DebianRequest,
    base: &Path,
    options: &Options,
) -> Result<(PackageSet, Vec<FetchedDeb>)> {
    let source = sysroot::archive_source(request, base, options)?;
    let previous = match &options.lock {
        Some(path) => {
            lock::read_part(path, request.part())?.and_then(|on_disk| on_disk.lock.debian)
        }
        None => None,
    };
    if let Some(set) = previous.as_ref().filter(|set| matches(set, &source, &request.packages)) {
        let debs = sysroot::fetch(&wanted(set, &source)?, options)?;
        return Ok((set.clone(), debs));
    }
    if options.locked {
        let path = options.lock.clone().unwrap_or_else(|| PathBuf::from("the lock"));
        let mut changes = Vec::new();
        let asked = PackageSet {
            architecture: source.architecture.clone(),
            suites: source.suites.iter().map(|s| s.suite.clone()).collect(),
            components: source.suites.first().map(|s| s.components.clone()).unwrap_or_default(),
            requested: sorted(&request.packages),
            ..Default::default()
        };
        let was = previous.map(|set| PackageSet {
            releases: Default::default(),
            packages: Default::default(),
            ..set
        });
        lock::diff_packages(was.as_ref(), Some(&asked), &mut changes);
        return Err(lock::Mismatch { lock: path, changes }.into());
    }
    let (resolution, debs) = sysroot::fetch_request(request, base, options)?;
    Ok((package_set(&resolution), debs))
}

/// `rootfs update [SPEC]`: re-resolves a spec's `[sysroot.debian]`
/// (`request`; `name` is the spec's name, for a new lock) from the
/// mirror's current indexes and rewrites the package set of the lock at
/// `lock_path` (the rest of the lock is kept), saying what changed. With
/// `locked`, any change is refused and nothing is written.
pub fn update(
    request: &DebianRequest,
    name: &str,
    lock_path: &Path,
    options: &Options,
    locked: bool,
) -> Result<lock::Update> {
    let base = crate::fsutil::parent_dir(lock_path);
    let lock_path = lock_path.to_path_buf();
    let previous = lock::read(&lock_path)?;
    let mut lock = match &previous {
        Some(on_disk) => on_disk.lock.clone(),
        None => lock::Lock { format: lock::FORMAT, name: name.to_string(), ..Default::default() },
    };
    let mut changes = Vec::new();
    // A lock written before a field was recorded (a release's `distro`)
    // differs in nothing a change names, and gains the field.
    let mut refreshed = false;
    // A multi-architecture spec's package sets, one per architecture.
    let parts: Vec<Option<&String>> = match request.architectures.is_empty() {
        true => vec![None],
        false => request.architectures.iter().map(Some).collect(),
    };
    lock.architectures.retain(|arch, _| request.architectures.contains(arch));
    for part in parts {
        let was = previous.as_ref().and_then(|p| match part {
            None => p.lock.debian.as_ref(),
            Some(arch) => p.lock.architectures.get(arch),
        });
        let now = resolve_part(request, part, base, options, &lock_path)?;
        lock::diff_packages(was, Some(&now), &mut changes);
        refreshed |= previous.is_some() && was != Some(&now);
        match part {
            None => lock.debian = Some(now),
            Some(arch) => {
                lock.debian = None;
                lock.architectures.insert(arch.clone(), now);
            }
        }
    }
    if locked && (previous.is_none() || !changes.is_empty()) {
        return Err(lock::Mismatch { lock: lock_path, changes }.into());
    }
    let rewrite = !changes.is_empty() || previous.is_none() || (refreshed && !locked);
    if rewrite {
        lock::write(&lock_path, &lock.render()?)?;
    }
    Ok(lock::Update {
        path: lock_path,
        created: previous.is_none(),
        refreshed: rewrite && changes.is_empty() && previous.is_some(),
        changes,
    })
}

/// The package set `request` resolves to now, for the architecture `part`
/// of a multi-architecture spec, or for its own.
fn resolve_part(
    request: &DebianRequest,
    part: Option<&String>,
    base: &Path,
    options: &Options,
    lock_path: &Path,
) -> Result<PackageSet> {
    let mut one = request.clone();
    if let Some(arch) = part {
        one.architecture = Some(arch.clone());
    }
    let resolution = sysroot::resolve(&one, base, options)
        .with_context(|| format!("resolving the packages for `{}`", lock_path.display()))?;
    Ok(package_set(&resolution))
}
