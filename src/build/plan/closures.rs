//! The plan's share of what the loader opens: the FHS skeleton mirrored from the sysroot, each command and extra library with its closure, every miss collected, and the rootfs's own `ld.so.cache`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use rustc_hash::FxHashSet;

use super::{Command, EntryKind, Plan, SKELETON, Why, insert};
use crate::build::manifest::CommandKind;
use crate::resolve::elf::Ident;
use crate::resolve::ldcache::{self, LdCache};
use crate::resolve::sysroot::Located;
use crate::resolve::{Closure, InputKind, Missing, Reason, Resolver, Via};
use crate::spec::{Item, Spec};

/// What a build could not find: every miss, reported together.
#[derive(Debug, Default)]
pub struct Unresolved {
    /// One description per miss, in the spec's order; continuation lines
    /// are indented.
    pub misses: Vec<String>,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.misses.len();
        writeln!(
            f,
            "{n} {} the rootfs needs could not be found:",
            if n == 1 { "thing" } else { "things" }
        )?;
        for miss in &self.misses {
            writeln!(f, "  {}", miss.replace('\n', "\n    "))?;
        }
        write!(
            f,
            "help: install the missing files on the host (or in the sysroot), or remove them from the spec"
        )
    }
}

impl std::error::Error for Unresolved {}

impl Unresolved {
    fn library(&mut self, miss: &Missing, what: &str) {
        let chain: Vec<String> = miss
            .chain
            .iter()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.display().to_string())
            .collect();
        let mut text = if chain.is_empty() {
            format!("{what}: not found")
        } else {
            format!("{} for {what}: not found, needed by {}", miss.name, chain.join(" -> "))
        };
        if !miss.searched.is_empty() {
            let dirs: Vec<String> = miss.searched.iter().map(|p| p.display().to_string()).collect();
            text.push_str(&format!("\nsearched {}", dirs.join(", ")));
        }
        if let Some(note) = &miss.note {
            text.push_str(&format!("\n{note}"));
        }
        self.misses.push(text);
    }
}

/// The closures whose libraries go into the rootfs's loader cache.
pub(super) struct Loaded {
    pub closures: Vec<Closure>,
    /// The class and machine of the programs, for the extra libraries and
    /// for closures that carry none.
    ident: Ident,
}

/// The skeleton directories, mirroring the sysroot's layout: on a
/// merged-`/usr` sysroot `/bin` is the same symlink into `usr/` as there.
pub(super) fn add_skeleton(plan: &mut Plan, resolver: &Resolver) -> Result<()> {
    let sysroot = resolver.sysroot();
    for (path, mode) in SKELETON {
        let path = Path::new(path);
        match sysroot.locate(path) {
            Ok(located) if located.is_dir && !located.links.is_empty() => {
                for link in &located.links {
                    let host = sysroot.host(&link.path);
                    plan.inputs.insert(host.clone());
                    let kind = EntryKind::Symlink { target: link.target.clone(), host: Some(host) };
                    insert(plan, &link.path, kind, Why::Skeleton)?;
                }
                insert(plan, &located.real, EntryKind::Dir { mode: 0o755 }, Why::Skeleton)?;
            }
            // `/lib64` is x86-64's (and a few others') loader folder: a tree
            // whose sysroot has none (arm64, armhf, ...) gets none either.
            Err(_) if path == Path::new("/lib64") => {}
            _ => insert(plan, path, EntryKind::Dir { mode: *mode }, Why::Skeleton)?,
        }
    }
    Ok(())
}

/// Every command and extra library with its closure; all misses together
/// are one [`Unresolved`] error.
pub(super) fn add_commands_and_libraries(
    plan: &mut Plan,
    spec: &Spec,
    resolver: &Resolver,
) -> Result<Loaded> {
    let mut unresolved = Unresolved::default();
    let found = find_commands(spec, resolver, &mut unresolved);
    let inputs: Vec<String> = found.iter().map(|(_, p)| p.display().to_string()).collect();
    let mut closures = resolver.resolve_all(&inputs);
    let mut ident = None;
    let mut seen = Seen::default();
    for ((item, path), closure) in found.iter().zip(&closures) {
        ident = ident.or(closure.ident);
        if !item.value.contains('/') {
            plan.warnings.extend(resolver.path_note(&item.value));
        }
        add_command(plan, spec, resolver, (item, path), closure, &mut seen, &mut unresolved)?;
    }
    drop(seen);
    // Without an ELF command, the libraries are searched for the
    // sysroot's own architecture.
    let ident = ident
        .or_else(|| crate::resolve::arch::Arch::of_sysroot(resolver.sysroot()).map(|a| a.ident()))
        .or_else(|| crate::resolve::arch::Arch::host().map(|a| a.ident()))
        .unwrap_or(Ident {
            class: goblin::elf::header::ELFCLASS64,
            data: goblin::elf::header::ELFDATA2LSB,
            machine: goblin::elf::header::EM_X86_64,
        });
    let by_path = sonames_loaded_by_path(spec, resolver);
    for library in &spec.libraries {
        let added = add_library(plan, spec, resolver, library, ident, &by_path, &mut unresolved)?;
        closures.extend(added);
    }
    if !unresolved.misses.is_empty() {
        return Err(unresolved.into());
    }
    Ok(Loaded { closures, ident })
}

/// Each command's path on the sysroot's `PATH` (or as given); a command
/// that is not there is a miss.
fn find_commands<'a>(
    spec: &'a Spec,
    resolver: &Resolver,
    unresolved: &mut Unresolved,
) -> Vec<(&'a Item<String>, PathBuf)> {
    let mut found = Vec::new();
    for command in &spec.commands {
        let path = if command.value.starts_with('/') {
            Some(PathBuf::from(&command.value))
        } else {
            resolver.find_on_path(&command.value)
        };
        match path {
            Some(p) if resolver.sysroot().locate(&p).is_ok() => found.push((command, p)),
            Some(p) => unresolved.misses.push(format!(
                "command `{}` ({}): no such file `{}` in `{}`",
                command.value,
                command.at,
                p.display(),
                resolver.sysroot().root().display()
            )),
            None => unresolved.misses.push(format!(
                "command `{}` ({}): not found on PATH {}",
                command.value,
                command.at,
                crate::resolve::DEFAULT_PATH.join(":")
            )),
        }
    }
    found
}

fn add_command<'a>(
    plan: &mut Plan,
    spec: &Spec,
    resolver: &Resolver,
    (item, path): (&Item<String>, &Path),
    closure: &'a Closure,
    seen: &mut Seen<'a>,
    unresolved: &mut Unresolved,
) -> Result<()> {
    let name = &item.value;
    if let Some(error) = &closure.error {
        unresolved.misses.push(format!("command `{name}` ({}): {error}", item.at));
        return Ok(());
    }
    let why = Why::Command(name.clone());
    if let Some(located) = &closure.located {
        add_located(plan, resolver, located, &why, spec.keep_setuid)?;
    }
    add_closure(plan, resolver, closure, seen, spec.keep_setuid)?;
    for miss in &closure.missing {
        unresolved.library(miss, &format!("command `{name}`"));
    }
    for miss in &closure.version_misses {
        unresolved.misses.push(format!("command `{name}`: {miss}"));
    }
    let kind = match closure.kind {
        InputKind::Static => CommandKind::Static,
        InputKind::Script => CommandKind::Script,
        _ => CommandKind::Dynamic,
    };
    let opened = closure.files.iter().map(|o| o.path.clone());
    plan.closures.insert(name.clone(), std::iter::once(path.to_path_buf()).chain(opened).collect());
    plan.commands.push(Command { name: name.clone(), path: path.to_path_buf(), kind });
    Ok(())
}

/// The `DT_SONAME`s of the `libraries` given by path: a program that
/// `dlopen`s a library by its full path makes its soname known to the
/// loader, which then matches later requests for that name without a
/// search (`_dl_map_object` compares `l_soname`): the JDK's launcher opens
/// `lib/server/libjvm.so`, and `libjava.so` then finds `libjvm.so`.
fn sonames_loaded_by_path(spec: &Spec, resolver: &Resolver) -> BTreeSet<String> {
    spec.libraries
        .iter()
        .filter(|l| l.value.starts_with('/'))
        .filter_map(|l| resolver.sysroot().locate(Path::new(&l.value)).ok())
        .filter_map(|located| {
            match crate::resolve::elf::read(&resolver.sysroot().host(&located.real)) {
                Ok(crate::resolve::elf::FileKind::Elf(object)) => object.soname.clone(),
                _ => None,
            }
        })
        .collect()
}

/// A library the programs `dlopen`: by soname, searched as the loader
/// would for a program of class `ident`, or by path. A name no search finds
/// is satisfied by a library of `by_path` that has it as its soname.
fn add_library(
    plan: &mut Plan,
    spec: &Spec,
    resolver: &Resolver,
    library: &Item<String>,
    ident: Ident,
    by_path: &BTreeSet<String>,
    unresolved: &mut Unresolved,
) -> Result<Option<Closure>> {
    let why = Why::Spec { key: "libraries", at: short_location(&library.at) };
    let closure = if library.value.starts_with('/') {
        let closure = resolver.resolve(&library.value);
        if let Some(located) = &closure.located {
            add_located(plan, resolver, located, &why, spec.keep_setuid)?;
        }
        closure
    } else {
        resolver.resolve_library(&library.value, ident)
    };
    let what = format!("library `{}` ({})", library.value, library.at);
    if let Some(error) = &closure.error {
        unresolved.misses.push(format!("{what}: {error}"));
        return Ok(None);
    }
    for opened in closure.files.iter().filter(|o| matches!(o.reason, Reason::Requested { .. })) {
        add_located(plan, resolver, &opened.located, &why, spec.keep_setuid)?;
    }
    add_closure(plan, resolver, &closure, &mut Seen::default(), spec.keep_setuid)?;
    for miss in closure.missing.iter().filter(|m| !by_path.contains(&m.name)) {
        unresolved.library(miss, &what);
    }
    for miss in &closure.version_misses {
        unresolved.misses.push(format!("{what}: {miss}"));
    }
    Ok(Some(closure))
}

pub(super) fn short_location(at: &crate::spec::Location) -> String {
    format!("{}:{}", at.source.name.display(), at.line_column().0)
}

/// The files of closures added so far, by the path they were opened at,
/// with the reason each was added for. Closures overlap: libc is needed by
/// libm in the closure of every program that needs libm (8,581 reasons for
/// libc, 2,859 distinct, in a tree of every host program), and a path
/// opened for the same reason again (located the same way: the sysroot
/// does not change during a build) adds nothing the first time did not.
pub(super) type Seen<'a> = FxHashSet<(&'a Path, &'a Reason)>;

/// Adds every file of a closure with the symlinks that lead to it, but for
/// those `seen` already for the same reason.
pub(super) fn add_closure<'a>(
    plan: &mut Plan,
    resolver: &Resolver,
    closure: &'a Closure,
    seen: &mut Seen<'a>,
    keep_setuid: bool,
) -> Result<()> {
    for opened in &closure.files {
        if !seen.insert((&opened.path, &opened.reason)) {
            continue;
        }
        let why = Why::Loaded(opened.reason.clone());
        add_located(plan, resolver, &opened.located, &why, keep_setuid)?;
    }
    Ok(())
}

/// Adds a host file found in the sysroot: the symlinks crossed, then the
/// real file, each with its parents.
pub(super) fn add_located(
    plan: &mut Plan,
    resolver: &Resolver,
    located: &Located,
    why: &Why,
    keep_setuid: bool,
) -> Result<()> {
    let sysroot = resolver.sysroot();
    for link in &located.links {
        let host = sysroot.host(&link.path);
        plan.inputs.insert(host.clone());
        let kind = EntryKind::Symlink { target: link.target.clone(), host: Some(host) };
        insert(plan, &link.path, kind.clone(), why.clone())?;
        insert(plan, &link.path, kind, Why::OnTheWay(located.real.clone()))?;
    }
    let mut mode = located.mode;
    if !keep_setuid {
        mode &= !0o6000;
    }
    if !located.is_dir && gains_a_reason(plan, resolver, located, mode, why) {
        return Ok(());
    }
    let host = sysroot.host(&located.real);
    plan.inputs.insert(host.clone());
    let kind = if located.is_dir {
        EntryKind::Dir { mode }
    } else {
        EntryKind::File { host, mode, size: located.size }
    };
    insert(plan, &located.real, kind, why.clone())?;
    Ok(())
}

/// Whether the file `located` is planned already, as the same copy (the
/// same host file and `mode`), and now has `why` among its reasons too:
/// what [`insert`] would do, without making its host path again (libc is
/// added once per program). Its host path is an input already: every
/// copy's is.
fn gains_a_reason(
    plan: &mut Plan,
    resolver: &Resolver,
    located: &Located,
    mode: u32,
    why: &Why,
) -> bool {
    let Some(existing) = plan.entries.get_mut(&located.real) else { return false };
    let EntryKind::File { host, mode: planned, .. } = &existing.kind else { return false };
    let inside = located.real.strip_prefix("/").unwrap_or(&located.real);
    let same_host = host.strip_prefix(resolver.sysroot().root()).is_ok_and(|h| h == inside);
    if !same_host || *planned != mode {
        return false;
    }
    existing.why.push(why.clone());
    true
}

/// A loader cache, so the libraries found through the sysroot's cache are
/// found the same way inside the rootfs, wherever they live. Each entry
/// carries the flags of its own library's class and machine, so a spec
/// mixing 32-bit and 64-bit programs gets a cache both loaders use.
pub(super) fn add_loader_cache(
    plan: &mut Plan,
    resolver: &Resolver,
    loaded: &Loaded,
) -> Result<()> {
    let mut cache: BTreeMap<(String, i32), PathBuf> = BTreeMap::new();
    for closure in &loaded.closures {
        let flags = resolver.config(&closure.ident.unwrap_or(loaded.ident)).cache_flags;
        for opened in &closure.files {
            if let Reason::Needed { name, .. }
            | Reason::Requested { name }
            | Reason::Dlopen { name, .. } = &opened.reason
                && matches!(opened.via, Via::Cache | Via::Default)
            {
                cache.entry((name.clone(), flags)).or_insert_with(|| {
                    super::cpu_variants::baseline_for_cache(plan, resolver, &opened.path)
                });
            }
        }
    }
    if cache.is_empty() {
        return Ok(());
    }
    // One byte order for the file: the main program's (a tree mixes 32-bit
    // and 64-bit programs of one machine, never two byte orders).
    let big_endian = resolver.config(&loaded.ident).cache_big_endian;
    let cache = LdCache {
        big_endian: Some(big_endian),
        entries: cache
            .into_iter()
            .map(|((name, flags), path)| ldcache::Entry {
                flags,
                name,
                path,
                hwcap: 0,
                hwcaps_subdir: None,
            })
            .collect(),
    };
    let kind = EntryKind::Data { bytes: cache.to_bytes(), mode: 0o644 };
    insert(plan, Path::new("/etc/ld.so.cache"), kind, Why::LdCache).map_err(|e| {
        anyhow::Error::new(e)
            .context("/etc/ld.so.cache is written by the build; the spec cannot provide it")
    })
}
