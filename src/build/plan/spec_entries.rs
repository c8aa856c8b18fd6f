//! The spec's own symlinks, directories and files, placed through the plan's symlinks as they would be written on a running system.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::closures::short_location;
use super::{Entry, EntryKind, Plan, PlanError, SystemFiles, Why, insert, resolve_in_plan};
use crate::resolve::Resolver;
use crate::spec::{Dir, File, FileSource, Item, Location, Spec, SpecError, Symlink};
use crate::vocab::EntryType;

/// Symlinks first, so that directories and files can be placed through
/// them.
pub(super) fn add(
    plan: &mut Plan,
    spec: &Spec,
    resolver: &Resolver,
    system_files: SystemFiles,
) -> Result<()> {
    for link in &spec.symlinks {
        add_symlink(plan, link)?;
    }
    for dir in &spec.dirs {
        add_dir(plan, dir)?;
    }
    for file in &spec.files {
        add_file(plan, spec, file, resolver, system_files)?;
    }
    Ok(())
}

fn add_symlink(plan: &mut Plan, link: &Item<Symlink>) -> Result<()> {
    let at = &link.at;
    let real = place(plan, &link.value.path, false, at, EntryType::Symlink)?;
    let why = Why::Spec { key: "symlinks", at: short_location(at) };
    let kind = EntryKind::Symlink { target: link.value.target.clone(), host: None };
    insert(plan, &real, kind, why).map_err(|e| conflict(at, &link.value.path, &real, e))
}

fn add_dir(plan: &mut Plan, dir: &Item<Dir>) -> Result<()> {
    let at = &dir.at;
    let real = place(plan, &dir.value.path, true, at, EntryType::Dir)?;
    let why = Why::Spec { key: "dirs", at: short_location(at) };
    match plan.entries.get_mut(&real) {
        Some(Entry { kind: EntryKind::Dir { mode }, why: whys }) => {
            if let Some(m) = dir.value.mode {
                *mode = m;
            }
            whys.push(why);
            Ok(())
        }
        _ => {
            let kind = EntryKind::Dir { mode: dir.value.mode.unwrap_or(0o755) };
            insert(plan, &real, kind, why).map_err(|e| conflict(at, &dir.value.path, &real, e))
        }
    }
}

fn add_file(
    plan: &mut Plan,
    spec: &Spec,
    file: &Item<File>,
    resolver: &Resolver,
    system_files: SystemFiles,
) -> Result<()> {
    let at = &file.at;
    let real = place(plan, &file.value.dest, false, at, EntryType::File)?;
    let why = Why::Spec { key: "files", at: short_location(at) };
    let src_at = file.value.src_at.as_ref().unwrap_or(at);
    let kind = match &file.value.source {
        FileSource::Host(host) => host_file(plan, host, src_at, file.value.mode, spec)?,
        FileSource::System(path) if system_files == SystemFiles::Host => {
            host_file(plan, path, src_at, file.value.mode, spec)?
        }
        FileSource::System(path) => {
            let host = in_sysroot(resolver, path, src_at)?;
            host_file(plan, &host, src_at, file.value.mode, spec)?
        }
        FileSource::Content(text) => EntryKind::Data {
            bytes: text.as_bytes().to_vec(),
            mode: file.value.mode.unwrap_or(0o644),
        },
    };
    insert(plan, &real, kind, why).map_err(|e| conflict(at, &file.value.dest, &real, e))
}

/// The host path of a file of the sysroot, found through the sysroot's own
/// symlinks (an absolute link leads inside it, never to the host).
fn in_sysroot(resolver: &Resolver, path: &Path, src_at: &Location) -> Result<PathBuf> {
    let sysroot = resolver.sysroot();
    let located = sysroot.locate(path).map_err(|e| {
        SpecError::at(
            src_at,
            format!("cannot read `{}` in the sysroot `{}`: {e}", path.display(), sysroot.root().display()),
        )
        .help("with a package sysroot an absolute `src` is a file of the packages: add the package that ships it to `debian_packages`, or give a path relative to the spec for a host file")
    })?;
    Ok(sysroot.host(&located.real))
}

/// A copy of a host file named by `src`.
fn host_file(
    plan: &mut Plan,
    host: &Path,
    src_at: &Location,
    mode: Option<u32>,
    spec: &Spec,
) -> Result<EntryKind> {
    let meta = std::fs::metadata(host).map_err(|e| {
        SpecError::at(src_at, format!("cannot read `{}`: {e}", host.display()))
            .help("`src` is a host path, absolute or relative to the spec file")
    })?;
    if !meta.is_file() {
        return Err(SpecError::at(src_at, format!("`{}` is not a regular file", host.display()))
            .help("`src` must name one file; list each file of a directory as its own [[files]] entry")
            .into());
    }
    // The real path, so that the same host file given under another name
    // (`/bin/cat`, `/usr/bin/cat`) is the same copy. The path as given is an
    // input too: pointing a symlink there elsewhere changes what is copied.
    plan.inputs.insert(host.to_path_buf());
    let host = std::fs::canonicalize(host).unwrap_or_else(|_| host.to_path_buf());
    plan.inputs.insert(host.clone());
    let host_mode = meta.mode() & 0o7777;
    let kept = if spec.keep_setuid { host_mode } else { host_mode & !0o6000 };
    Ok(EntryKind::File { host, mode: mode.unwrap_or(kept), size: meta.size() })
}

/// Where a spec path lands in the rootfs, refusing the paths the build
/// writes itself.
fn place(
    plan: &Plan,
    path: &Path,
    follow_last: bool,
    at: &Location,
    what: EntryType,
) -> Result<PathBuf> {
    let real = resolve_in_plan(plan, path, follow_last).map_err(|e| {
        SpecError::at(at, e.to_string()).help(
            "every parent of the path must be a directory (or a symlink to one) in the rootfs",
        )
    })?;
    if real.starts_with("/etc/ld.so.cache") {
        return Err(SpecError::at(at, "`/etc/ld.so.cache` is written by the build")
            .help("remove this entry: the build writes a loader cache for exactly the libraries it copies")
            .into());
    }
    let accounts = real.starts_with("/etc/passwd") || real.starts_with("/etc/group");
    if accounts && (what != EntryType::File || real.parent() != Some(Path::new("/etc"))) {
        let what = match what {
            EntryType::Dir => "a directory",
            EntryType::File => "a file",
            EntryType::Symlink => "a symlink",
        };
        return Err(SpecError::at(at, format!("`{}` is written by the build from [[users]] and [[groups]]; {what} cannot be there", real.display()))
            .help(format!("provide `{}` as a [[files]] entry instead, or remove this entry", real.display()))
            .into());
    }
    Ok(real)
}

/// A conflict with what is already planned, said from the spec's side.
fn conflict(at: &Location, path: &Path, real: &Path, error: PlanError) -> anyhow::Error {
    let message = if path == real {
        error.to_string()
    } else {
        format!("`{}` is `{}` in the rootfs: {error}", path.display(), real.display())
    };
    SpecError::at(at, message).help("choose another path, or remove one of the two entries").into()
}
