//! Every CPU's build of a library kept: where the loader found a library in a directory that also holds `glibc-hwcaps/<level>/` builds of it, or found one of those builds, the tree gets the baseline and every variant the sysroot has, not only the one this machine's CPU selects.
//!
//! glibc 2.33 and later search `glibc-hwcaps/x86-64-v4`, `-v3`, `-v2`
//! (and `power10`, `z16`, ... on other targets) inside every directory
//! of the search path before the directory itself, keeping only the
//! levels the running CPU supports (`_dl_important_hwcaps` in
//! `elf/dl-hwcaps.c`). A tree that kept only the variant this CPU picks
//! fails on an older CPU with "cannot open shared object file"; keeping
//! them all lets every CPU find its best build, as on the sysroot. Each
//! variant's own dependencies come too. Legacy hwcaps subdirectories
//! (`haswell/`, `tls/`, ...), which glibc 2.37 removed, are not widened.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::closures::{Seen, add_closure, add_located};
use super::{Plan, Why};
use crate::resolve::{Closure, Resolver, Via};
use crate::spec::Spec;

/// The directory holding the variants' subdirectories.
const HWCAPS: &str = "glibc-hwcaps";

/// The search directory a library was found in: `D` for both `D/name`
/// and `D/glibc-hwcaps/LEVEL/name`.
fn search_dir(path: &Path) -> Option<&Path> {
    let dir = path.parent()?;
    match dir.parent() {
        Some(hwcaps) if hwcaps.file_name().is_some_and(|n| n == HWCAPS) => hwcaps.parent(),
        _ => Some(dir),
    }
}

/// Adds the other CPU variants of every searched library of `closures`,
/// and returns the closures of those it added.
pub(super) fn add(
    plan: &mut Plan,
    resolver: &Resolver,
    closures: &[Closure],
    spec: &Spec,
) -> Result<Vec<Closure>> {
    let keep_setuid = spec.keep_setuid;
    // A level above the spec's `cpu` is never searched there.
    let allowed = |path: &Path| match (&spec.cpu, hwcaps_level(path)) {
        (Some(cap), Some(level)) => cap.value.allows_hwcaps(level),
        _ => true,
    };
    // Each candidate once, with the first library it is a variant of.
    let mut found = std::collections::BTreeMap::new();
    // Each library's variants looked up once: most closures share libc and
    // its neighbours, and each lookup costs a few `lstat(2)`s.
    let mut listed: HashMap<(&Path, &OsStr), Vec<PathBuf>> = HashMap::new();
    for closure in closures {
        for opened in &closure.files {
            let searched = matches!(
                opened.via,
                Via::Rpath | Via::Runpath | Via::LibraryPath | Via::Cache | Via::Default
            );
            if !searched {
                continue;
            }
            let (Some(dir), Some(name)) = (search_dir(&opened.path), opened.path.file_name())
            else {
                continue;
            };
            let candidates = match listed.entry((dir, name)) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => new.insert(variants(resolver, dir, name)?),
            };
            for candidate in candidates.iter() {
                if *candidate != opened.path && allowed(candidate) {
                    found.entry(candidate.clone()).or_insert((opened.path.clone(), closure.ident));
                }
            }
        }
    }
    let mut added = Vec::new();
    for (candidate, (of, ident)) in found {
        let Ok(located) = resolver.sysroot().locate(&candidate) else { continue };
        let host = resolver.sysroot().host(&located.real);
        // A variant of another class or machine is not one the loader
        // would take for this program.
        let same_kind = resolver.object_at_host(&host).is_some_and(|o| o.ident == ident);
        if located.is_dir || !same_kind {
            continue;
        }
        let why = Why::CpuVariant { of };
        add_located(plan, resolver, &located, &why, keep_setuid)?;
        let closure = resolver.resolve(candidate.to_str().context("a path that is not UTF-8")?);
        add_closure(plan, resolver, &closure, &mut Seen::default(), keep_setuid)?;
        added.push(closure);
    }
    Ok(added)
}

/// `LEVEL` of a path `D/glibc-hwcaps/LEVEL/name`.
fn hwcaps_level(path: &Path) -> Option<&str> {
    let dir = path.parent()?;
    let hwcaps = dir.parent()?;
    (hwcaps.file_name()? == HWCAPS).then(|| dir.file_name()?.to_str())?
}

/// `dir/name` and every `dir/glibc-hwcaps/*/name` that exists in the
/// sysroot, sorted.
fn variants(resolver: &Resolver, dir: &Path, name: &OsStr) -> Result<Vec<PathBuf>> {
    let mut out = vec![dir.join(name)];
    let hwcaps = dir.join(HWCAPS);
    let Ok(located) = resolver.sysroot().locate(&hwcaps) else { return Ok(out) };
    if !located.is_dir {
        return Ok(out);
    }
    let host = resolver.sysroot().host(&located.real);
    let entries =
        std::fs::read_dir(&host).with_context(|| format!("failed to list `{}`", host.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list `{}`", host.display()))?;
        out.push(hwcaps.join(entry.file_name()).join(name));
    }
    out.retain(|p| resolver.sysroot().locate(p).is_ok_and(|l| !l.is_dir));
    out.sort();
    Ok(out)
}

/// Whether a library was found as a CPU variant (for the loader's cache,
/// which then names the baseline build: see [`baseline_for_cache`]).
fn is_variant(path: &Path) -> bool {
    search_dir(path).is_some_and(|dir| Some(dir) != path.parent())
}

/// The build a plain `ld.so.cache` entry should name for a library found
/// at `path`: the baseline `D/name` when `path` is a CPU variant and the
/// baseline exists in the plan, so that the tree's cache holds for every
/// CPU (the cache we write has no hwcaps extension; glibc then still
/// searches each directory's `glibc-hwcaps/` for libraries found by path
/// search, but a cache hit names one file for all CPUs).
pub(super) fn baseline_for_cache(plan: &Plan, resolver: &Resolver, path: &Path) -> PathBuf {
    if is_variant(path)
        && let (Some(dir), Some(name)) = (search_dir(path), path.file_name())
    {
        let baseline = dir.join(name);
        let planned = resolver.sysroot().locate(&baseline);
        if planned.is_ok_and(|l| plan.entries.contains_key(&l.real)) {
            return baseline;
        }
    }
    path.to_path_buf()
}
