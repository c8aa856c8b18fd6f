//! The spec's `[[trees]]`: directories copied recursively with their modes, their symlinks kept (and what they point to outside the tree brought in), and every ELF program or library inside resolved with its own dependencies.
//!
//! A library of a runtime tree may need a soname that no search path finds
//! and still load, because its program loaded that soname first by full
//! path (the JDK's `libjava.so` needs `libjvm.so`, which the `java` launcher
//! opens from `lib/server/`): glibc then matches the request by soname
//! (`_dl_map_object` compares `l_soname`). So a name no search finds is
//! satisfied when an object of the same tree has that `DT_SONAME`, and only
//! the rest are misses. Those are reported as warnings, not errors: a tree
//! is a runtime's whole directory, and a module of it that needs a library
//! the sysroot does not have cannot load on the sysroot either.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::closures::{Seen, add_closure, add_located, short_location};
use super::{EntryKind, Plan, Why, insert};
use crate::resolve::elf::FileKind;
use crate::resolve::{Closure, Resolver};
use crate::spec::{Item, Spec, SpecError, Tree, TreeSource};

/// Adds every tree; returns the closures of their ELF objects, for the
/// loader cache.
pub(super) fn add(plan: &mut Plan, spec: &Spec, resolver: &Resolver) -> Result<Vec<Closure>> {
    let mut closures = Vec::new();
    for tree in &spec.trees {
        closures.extend(add_tree(plan, spec, resolver, tree)?);
    }
    Ok(closures)
}

/// What walking one tree found.
#[derive(Default)]
struct Walked {
    /// Root paths (in the sysroot) of the ELF objects, to resolve.
    elves: Vec<PathBuf>,
    /// Soname -> the object of the tree that has it.
    sonames: BTreeMap<String, PathBuf>,
    /// Symlinks of the tree whose target lies outside it (root paths).
    outside: BTreeSet<PathBuf>,
    /// Every path placed in the rootfs.
    placed: BTreeSet<PathBuf>,
}

fn add_tree(
    plan: &mut Plan,
    spec: &Spec,
    resolver: &Resolver,
    item: &Item<Tree>,
) -> Result<Vec<Closure>> {
    let tree = &item.value;
    if tree.optional && !source_exists(resolver, &tree.source) {
        return Ok(Vec::new());
    }
    let (host_root, root_path) = locate_source(resolver, item)?;
    let why = Why::Tree { src: host_root.clone(), at: short_location(&item.at) };
    let dest = super::resolve_in_plan(plan, &tree.dest, true)
        .map_err(|e| SpecError::at(&item.at, e.to_string()))?;
    let mode = std::fs::metadata(&host_root)
        .with_context(|| format!("failed to stat `{}`", host_root.display()))?
        .mode()
        & 0o7777;
    insert(plan, &dest, EntryKind::Dir { mode }, why.clone())
        .map_err(|e| SpecError::at(&item.at, e.to_string()))?;
    plan.inputs.insert(host_root.clone());
    let mut walked = Walked::default();
    let walk_of = Walk {
        spec,
        item,
        host_root: &host_root,
        root_path: root_path.as_deref(),
        dest: &dest,
        why: &why,
    };
    walk(plan, &walk_of, &mut walked)?;
    plan.trees.entry(dest.clone()).or_default().extend(walked.placed.iter().cloned());
    for target in &walked.outside {
        // Best effort: a dangling link stays a dangling link, as on the host.
        if let Ok(located) = resolver.sysroot().locate(target) {
            add_located(plan, resolver, &located, &why, spec.keep_setuid)?;
        }
    }
    let inputs: Vec<String> = walked.elves.iter().map(|p| p.display().to_string()).collect();
    let closures = resolver.resolve_all(&inputs);
    let mut seen = Seen::default();
    for closure in &closures {
        add_closure(plan, resolver, closure, &mut seen, spec.keep_setuid)?;
        warn_misses(plan, item, closure, &walked);
    }
    drop(seen);
    Ok(closures)
}

/// A library an object of the tree needs that neither the sysroot nor the
/// tree has (by soname), and a symbol version no object defines: warnings.
fn warn_misses(plan: &mut Plan, item: &Item<Tree>, closure: &Closure, walked: &Walked) {
    let tree = format!("tree `{}` ({})", item.value.dest.display(), short_location(&item.at));
    for miss in &closure.missing {
        if !walked.sonames.contains_key(&miss.name) {
            let searched: Vec<String> =
                miss.searched.iter().map(|p| p.display().to_string()).collect();
            plan.warnings.push(format!(
                "{tree}: {} needs {}, which is not found on the sysroot either (searched {})",
                closure.input,
                miss.name,
                searched.join(", ")
            ));
        }
    }
    for miss in &closure.version_misses {
        plan.warnings.push(format!("{tree}: {miss}"));
    }
}

/// Whether an optional tree's `src` is there to copy: only a missing one
/// is skipped (one that is no directory, or a loop, is still the error
/// `locate_source` gives).
fn source_exists(resolver: &Resolver, source: &TreeSource) -> bool {
    let found = match source {
        TreeSource::Sysroot(path) => resolver.sysroot().locate(path).map(|_| ()),
        TreeSource::Host(path) => std::fs::symlink_metadata(path).map(|_| ()),
    };
    !matches!(found, Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// The tree's folder on the host, and its root path when it is in the
/// sysroot (where its ELF objects are resolved).
fn locate_source(resolver: &Resolver, item: &Item<Tree>) -> Result<(PathBuf, Option<PathBuf>)> {
    let not_a_dir = |what: String| {
        SpecError::at(&item.value.src_at, what)
            .help("`src` names a directory: absolute in the sysroot, or relative to the spec")
    };
    match &item.value.source {
        TreeSource::Sysroot(path) => {
            let located = resolver.sysroot().locate(path).map_err(|e| {
                let sysroot = resolver.sysroot().root().display();
                not_a_dir(match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        format!(
                            "tree `{}` does not exist in the sysroot `{sysroot}`",
                            path.display()
                        )
                    }
                    _ => format!("tree `{}` in the sysroot `{sysroot}`: {e}", path.display()),
                })
            })?;
            if !located.is_dir {
                return Err(
                    not_a_dir(format!("tree `{}` is not a directory", path.display())).into()
                );
            }
            Ok((resolver.sysroot().host(&located.real), Some(located.real)))
        }
        TreeSource::Host(path) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| not_a_dir(format!("tree `{}`: {e}", path.display())))?;
            if !meta.is_dir() {
                return Err(
                    not_a_dir(format!("tree `{}` is not a directory", path.display())).into()
                );
            }
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            // Its programs and libraries can be resolved as the sysroot's
            // only when the sysroot is this host.
            let root = resolver.sysroot().is_host().then(|| real.clone());
            Ok((real, root))
        }
    }
}

/// One tree being walked: where it is on the host and in the sysroot, and
/// where it goes in the rootfs.
struct Walk<'a> {
    spec: &'a Spec,
    item: &'a Item<Tree>,
    host_root: &'a Path,
    /// Its root path, when it is in the sysroot.
    root_path: Option<&'a Path>,
    dest: &'a Path,
    why: &'a Why,
}

/// Walks the tree in sorted order, adding each entry under `dest`.
fn walk(plan: &mut Plan, tree: &Walk, walked: &mut Walked) -> Result<()> {
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = tree.host_root.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("failed to list `{}`", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("failed to list `{}`", dir.display()))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let child = rel.join(&name);
            if excluded(&tree.item.value.exclude, &child) {
                continue;
            }
            if let Some(subdir) = add_entry(plan, tree, &child, walked)? {
                subdirs.push(subdir);
            }
        }
        // Depth-first in name order: pushed in reverse so the first pops first.
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

/// Adds one entry of the tree; returns it when it is a directory to walk.
fn add_entry(
    plan: &mut Plan,
    tree: &Walk,
    rel: &Path,
    walked: &mut Walked,
) -> Result<Option<PathBuf>> {
    let host = tree.host_root.join(rel);
    let meta = std::fs::symlink_metadata(&host)
        .with_context(|| format!("failed to inspect `{}`", host.display()))?;
    let at = tree.dest.join(rel);
    walked.placed.insert(at.clone());
    plan.inputs.insert(host.clone());
    let mut mode = meta.mode() & 0o7777;
    if !tree.spec.keep_setuid {
        mode &= !0o6000;
    }
    let (kind, subdir) = if meta.is_dir() {
        (EntryKind::Dir { mode }, Some(rel.to_path_buf()))
    } else if meta.file_type().is_symlink() {
        (symlink(tree, rel, host, walked)?, None)
    } else if meta.is_file() {
        note_elf(tree, rel, &host, walked);
        (EntryKind::File { host, mode, size: meta.size() }, None)
    } else {
        plan.warnings.push(format!(
            "tree `{}`: `{}` is not a file, folder or symlink; left out",
            tree.item.value.dest.display(),
            host.display()
        ));
        return Ok(None);
    };
    insert(plan, &at, kind, tree.why.clone())
        .map_err(|e| anyhow::Error::new(SpecError::at(&tree.item.at, e.to_string())))?;
    Ok(subdir)
}

/// A symlink of the tree, kept as it is; a target outside the tree (in the
/// sysroot) is noted, to be brought in.
fn symlink(tree: &Walk, rel: &Path, host: PathBuf, walked: &mut Walked) -> Result<EntryKind> {
    let target = std::fs::read_link(&host)
        .with_context(|| format!("failed to read the symlink `{}`", host.display()))?;
    if let Some(root) = tree.root_path {
        let resolved = if target.is_absolute() {
            target.clone()
        } else {
            root.join(rel).parent().unwrap_or(root).join(&target)
        };
        if !crate::resolve::rootpath::lexical(&resolved).starts_with(root) {
            walked.outside.insert(resolved);
        }
    }
    Ok(EntryKind::Symlink { target, host: Some(host) })
}

/// An ELF object of a tree in the sysroot, to resolve, and its soname.
fn note_elf(tree: &Walk, rel: &Path, host: &Path, walked: &mut Walked) {
    if let Some(root) = tree.root_path
        && is_elf(host)
        && let Ok(FileKind::Elf(object)) = crate::resolve::elf::read(host)
        && object.ident.is_some()
    {
        let path = root.join(rel);
        if let Some(soname) = &object.soname {
            walked.sonames.entry(soname.clone()).or_insert_with(|| path.clone());
        }
        walked.elves.push(path);
    }
}

/// Whether a path of the tree (relative to its root) is left out: a glob
/// matches it, or matches it as a folder (`test/**` leaves out `test`).
pub fn excluded(patterns: &[glob::Pattern], rel: &Path) -> bool {
    let options = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
    // The path itself, or a folder holding it (the walk never enters an
    // excluded folder; a path from elsewhere is judged the same way).
    rel.ancestors().filter(|a| !a.as_os_str().is_empty()).any(|at| {
        let text = at.to_string_lossy();
        patterns.iter().any(|p| {
            p.matches_with(&text, options)
                || p.as_str().strip_suffix("/**").is_some_and(|dir| {
                    glob::Pattern::new(dir).is_ok_and(|d| d.matches_with(&text, options))
                })
        })
    })
}

/// The first four bytes are ELF's magic: the cheap test before parsing.
fn is_elf(host: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(host).and_then(|mut f| f.read_exact(&mut magic)).is_ok()
        && &magic == b"\x7fELF"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_match_at_any_depth_and_whole_folders() {
        let p = |s: &str| glob::Pattern::new(s).unwrap();
        let patterns = [p("**/__pycache__"), p("test/**")];
        assert!(excluded(&patterns, Path::new("__pycache__")));
        assert!(excluded(&patterns, Path::new("a/b/__pycache__")));
        assert!(excluded(&patterns, Path::new("test")));
        assert!(excluded(&patterns, Path::new("test/x.py")));
        assert!(!excluded(&patterns, Path::new("a/test/x.py")));
        assert!(!excluded(&patterns, Path::new("json/__init__.py")));
        assert!(excluded(&patterns, Path::new("json/__pycache__/decoder.cpython-311.pyc")));
    }
}
