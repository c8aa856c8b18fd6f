//! The plan: every path of the rootfs, what it is, where it comes from and why it is there, computed without writing anything.
//!
//! Paths in the plan are root paths whose parent directories are real
//! directories of the plan: a symlink is an entry of its own, never a step
//! inside another entry's path. Spec paths are resolved through the plan's
//! symlinks the way the kernel resolves them inside a chroot, so that
//! `dest = "/bin/x"` on a merged-`/usr` layout lands in `/usr/bin/x`.

mod accounts;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::elf::Ident;
use crate::ldcache::{self, LdCache};
use crate::resolve::{Closure, InputKind, Missing, Reason, Resolver, Via};
use crate::spec::{FileSource, Location, Spec, SpecError};
use crate::sysroot::Located;

/// The directories of the classic FHS skeleton, with the modes a real system
/// gives them.
pub const SKELETON: &[(&str, u32)] = &[
    ("/bin", 0o755),
    ("/boot", 0o755),
    ("/dev", 0o755),
    ("/etc", 0o755),
    ("/home", 0o755),
    ("/lib", 0o755),
    ("/lib64", 0o755),
    ("/media", 0o755),
    ("/mnt", 0o755),
    ("/opt", 0o755),
    ("/proc", 0o555),
    ("/root", 0o700),
    ("/run", 0o755),
    ("/sbin", 0o755),
    ("/srv", 0o755),
    ("/sys", 0o555),
    ("/tmp", 0o1777),
    ("/usr", 0o755),
    ("/var", 0o755),
];

/// The kernel gives up after this many symlinks (`path_resolution(7)`).
const MAX_SYMLINKS: usize = 40;

/// Why a path is in the rootfs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Why {
    /// Part of the FHS skeleton.
    Skeleton,
    /// A directory holding other entries.
    Parent,
    /// A command of the spec, by the name the spec gives.
    Command(String),
    /// A file the loader or kernel opens for something else.
    Loaded(Reason),
    /// A symlink crossed on the way to this path.
    OnTheWay(PathBuf),
    /// An entry of the spec (`dirs`, `files`, `symlinks`, `libraries`), at
    /// `file:line`.
    Spec { key: &'static str, at: String },
    /// Written from the spec's users and groups.
    Accounts,
    /// The loader's cache, written so that libraries outside the default
    /// directories are found.
    LdCache,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Skeleton => f.write_str("FHS skeleton"),
            Why::Parent => f.write_str("parent directory"),
            Why::Command(name) => write!(f, "command `{name}`"),
            Why::Loaded(Reason::Interpreter { of }) => {
                write!(f, "program interpreter of {}", of.display())
            }
            Why::Loaded(Reason::Needed { by, name }) => {
                write!(f, "needed by {} as {name}", by.display())
            }
            Why::Loaded(Reason::Script { of }) => write!(f, "#! interpreter of {}", of.display()),
            Why::Loaded(Reason::Env { of }) => {
                write!(f, "run by #!/usr/bin/env in {}", of.display())
            }
            Why::Loaded(Reason::Requested { name }) => {
                write!(f, "library {name} asked for by the spec")
            }
            Why::Loaded(Reason::Dlopen { by, name, priority, .. }) => {
                write!(f, "dlopen {name} declared ({priority}) in .note.dlopen of {}", by.display())
            }
            Why::OnTheWay(to) => write!(f, "symlink on the way to {}", to.display()),
            Why::Spec { key, at } => write!(f, "{key} entry at {at}"),
            Why::Accounts => f.write_str("users and groups of the spec"),
            Why::LdCache => f.write_str("loader cache for the libraries of the rootfs"),
        }
    }
}

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir {
        mode: u32,
    },
    /// A copy of a host file.
    File {
        host: PathBuf,
        mode: u32,
        size: u64,
    },
    /// Bytes the tool writes.
    Data {
        bytes: Vec<u8>,
        mode: u32,
    },
    /// `host` is the host symlink it mirrors, if any.
    Symlink {
        target: PathBuf,
        host: Option<PathBuf>,
    },
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: EntryKind,
    /// Sorted and without duplicates once the plan is made.
    pub why: Vec<Why>,
}

/// A command of the rootfs, as the smoke tests will run it.
#[derive(Clone, Debug)]
pub struct Command {
    /// The spec's name for it (`bash`, `/usr/bin/ls`).
    pub name: String,
    /// Where it is in the rootfs (the path found on `PATH`).
    pub path: PathBuf,
    pub kind: InputKind,
}

/// Everything the build will write, and everything it read to decide.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    /// Every path of the tree but `/`; [`Plan::sorted`] gives them in
    /// order. A hash map, because planning looks paths up thousands of
    /// times and comparing paths component by component is slow.
    pub entries: HashMap<PathBuf, Entry>,
    pub commands: Vec<Command>,
    /// Host paths whose state the plan depends on: copied files, mirrored
    /// symlinks, directories searched.
    pub inputs: BTreeSet<PathBuf>,
}

impl Plan {
    /// The entries sorted by path: a directory before what it holds.
    pub fn sorted(&self) -> Vec<(&PathBuf, &Entry)> {
        let mut sorted: Vec<(&PathBuf, &Entry)> = self.entries.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        sorted
    }

    /// Number of regular files (copied or written) and their total size.
    pub fn file_totals(&self) -> (usize, u64) {
        self.entries.values().fold((0, 0), |(n, bytes), e| match &e.kind {
            EntryKind::File { size, .. } => (n + 1, bytes + size),
            EntryKind::Data { bytes: b, .. } => (n + 1, bytes + b.len() as u64),
            _ => (n, bytes),
        })
    }
}

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
    fn is_empty(&self) -> bool {
        self.misses.is_empty()
    }

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

/// The plan for a spec: resolves every command and library inside the
/// resolver's sysroot and lays out the tree.
pub fn plan(spec: &Spec, resolver: &Resolver) -> Result<Plan> {
    let mut plan = Plan {
        name: spec.name.clone(),
        entries: HashMap::new(),
        commands: Vec::new(),
        inputs: BTreeSet::new(),
    };
    let mut unresolved = Unresolved::default();
    let sysroot = resolver.sysroot();

    for (path, mode) in SKELETON {
        add_skeleton(&mut plan, resolver, Path::new(path), *mode)?;
    }

    // Commands, in parallel; results keep the spec's order.
    let found: Vec<(usize, PathBuf)> = spec
        .commands
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let path = if c.value.starts_with('/') {
                Some(PathBuf::from(&c.value))
            } else {
                resolver.find_on_path(&c.value)
            };
            match path {
                Some(p) if resolver.sysroot().locate(&p).is_ok() => Some((i, p)),
                Some(p) => {
                    let root = resolver.sysroot().root().display();
                    unresolved.misses.push(format!(
                        "command `{}` ({}): no such file `{}` in `{root}`",
                        c.value,
                        c.at,
                        p.display()
                    ));
                    None
                }
                None => {
                    let path = crate::resolve::DEFAULT_PATH.join(":");
                    unresolved.misses.push(format!(
                        "command `{}` ({}): not found on PATH {path}",
                        c.value, c.at
                    ));
                    None
                }
            }
        })
        .collect();
    let inputs: Vec<String> = found.iter().map(|(_, p)| p.display().to_string()).collect();
    let closures = resolver.resolve_all(&inputs);
    let mut ident: Option<Ident> = None;
    for ((i, path), closure) in found.iter().zip(&closures) {
        let name = &spec.commands[*i].value;
        if let Some(error) = &closure.error {
            unresolved.misses.push(format!("command `{name}` ({}): {error}", spec.commands[*i].at));
            continue;
        }
        ident = ident.or(closure.ident);
        let why = Why::Command(name.clone());
        if let Some(located) = &closure.located {
            add_located(&mut plan, resolver, path, located, &why, spec.keep_setuid)?;
        }
        add_closure(&mut plan, resolver, closure, spec.keep_setuid)?;
        for miss in &closure.missing {
            unresolved.library(miss, &format!("command `{name}`"));
        }
        plan.commands.push(Command {
            name: name.clone(),
            path: path.clone(),
            kind: closure.kind.clone(),
        });
    }

    // Libraries the programs dlopen.
    let ident = ident.unwrap_or(Ident { class: 2, data: 1, machine: 62 });
    let mut library_closures = Vec::new();
    for library in &spec.libraries {
        let why = Why::Spec { key: "libraries", at: short_location(&library.at) };
        let closure = if library.value.starts_with('/') {
            let closure = resolver.resolve(&library.value);
            if let Some(located) = &closure.located {
                add_located(
                    &mut plan,
                    resolver,
                    Path::new(&library.value),
                    located,
                    &why,
                    spec.keep_setuid,
                )?;
            }
            closure
        } else {
            resolver.resolve_library(&library.value, ident)
        };
        let what = format!("library `{}` ({})", library.value, library.at);
        if let Some(error) = &closure.error {
            unresolved.misses.push(format!("{what}: {error}"));
            continue;
        }
        for opened in closure.files.iter().filter(|o| matches!(o.reason, Reason::Requested { .. }))
        {
            add_located(
                &mut plan,
                resolver,
                &opened.path,
                &opened.located,
                &why,
                spec.keep_setuid,
            )?;
        }
        add_closure(&mut plan, resolver, &closure, spec.keep_setuid)?;
        for miss in &closure.missing {
            unresolved.library(miss, &what);
        }
        library_closures.push(closure);
    }

    if !unresolved.is_empty() {
        return Err(unresolved.into());
    }

    add_spec_entries(&mut plan, spec)?;
    accounts::add(&mut plan, spec)?;

    // A loader cache, so the libraries found through the host's cache are
    // found the same way inside the rootfs, wherever they live.
    let mut cache = BTreeMap::new();
    for closure in closures.iter().chain(&library_closures) {
        collect_cache_entries(closure, &mut cache);
    }
    if !cache.is_empty() {
        let config = resolver.config(&ident);
        let cache = LdCache {
            entries: cache
                .into_iter()
                .map(|(name, path)| ldcache::Entry {
                    flags: config.cache_flags,
                    name,
                    path,
                    hwcap: 0,
                    hwcaps_subdir: None,
                })
                .collect(),
        };
        let at = PathBuf::from("/etc/ld.so.cache");
        insert(
            &mut plan,
            &at,
            EntryKind::Data { bytes: cache.to_bytes(), mode: 0o644 },
            Why::LdCache,
        )
        .map_err(|e| {
            anyhow::anyhow!("{e}")
                .context("/etc/ld.so.cache is written by the build; the spec cannot provide it")
        })?;
    }

    plan.inputs.extend(resolver.consulted_dirs().iter().map(|d| sysroot.host(d)));
    for entry in plan.entries.values_mut() {
        entry.why.sort_unstable();
        entry.why.dedup();
    }
    // The manifest is JSON: every path in it must be text.
    for (path, entry) in &plan.entries {
        let others = match &entry.kind {
            EntryKind::File { host, .. } => vec![host.as_path()],
            EntryKind::Symlink { target, host } => {
                std::iter::once(target.as_path()).chain(host.as_deref()).collect()
            }
            _ => Vec::new(),
        };
        if let Some(bad) =
            std::iter::once(path.as_path()).chain(others).find(|p| p.to_str().is_none())
        {
            anyhow::bail!(
                "`{}` is not valid UTF-8: the manifest (JSON) cannot record it",
                bad.display()
            );
        }
    }
    Ok(plan)
}

fn short_location(at: &crate::spec::Location) -> String {
    format!("{}:{}", at.source.name.display(), at.line_column().0)
}

/// Names found the way ldconfig would have indexed them (cache, default
/// directories), with where they were found.
fn collect_cache_entries(closure: &Closure, cache: &mut BTreeMap<String, PathBuf>) {
    for opened in &closure.files {
        if let Reason::Needed { name, .. }
        | Reason::Requested { name }
        | Reason::Dlopen { name, .. } = &opened.reason
            && matches!(opened.via, Via::Cache | Via::Default)
        {
            cache.entry(name.clone()).or_insert_with(|| opened.path.clone());
        }
    }
}

/// Adds every file of a closure with the symlinks that lead to it.
fn add_closure(
    plan: &mut Plan,
    resolver: &Resolver,
    closure: &Closure,
    keep_setuid: bool,
) -> Result<()> {
    for opened in &closure.files {
        let why = Why::Loaded(opened.reason.clone());
        add_located(plan, resolver, &opened.path, &opened.located, &why, keep_setuid)?;
    }
    Ok(())
}

/// Adds a host file found at `path`: the symlinks crossed, then the real
/// file, each with its parents.
fn add_located(
    plan: &mut Plan,
    resolver: &Resolver,
    path: &Path,
    located: &Located,
    why: &Why,
    keep_setuid: bool,
) -> Result<()> {
    let sysroot = resolver.sysroot();
    for link in &located.links {
        let host = sysroot.host(&link.path);
        plan.inputs.insert(host.clone());
        let kind = EntryKind::Symlink { target: link.target.clone(), host: Some(host) };
        insert(plan, &link.path, kind.clone(), why.clone()).map_err(anyhow::Error::msg)?;
        insert(plan, &link.path, kind, Why::OnTheWay(located.real.clone()))
            .map_err(anyhow::Error::msg)?;
    }
    let host = sysroot.host(&located.real);
    let meta =
        std::fs::metadata(&host).with_context(|| format!("failed to stat `{}`", host.display()))?;
    let mut mode = meta.mode() & 0o7777;
    if !keep_setuid {
        mode &= !0o6000;
    }
    plan.inputs.insert(host.clone());
    let kind = if located.is_dir {
        EntryKind::Dir { mode }
    } else {
        EntryKind::File { host, mode, size: meta.size() }
    };
    let _ = path;
    insert(plan, &located.real, kind, why.clone()).map_err(anyhow::Error::msg)
}

/// A skeleton directory, mirroring the host's layout: on a merged-`/usr`
/// sysroot `/bin` is the same symlink into `usr/` as on the host.
fn add_skeleton(plan: &mut Plan, resolver: &Resolver, path: &Path, mode: u32) -> Result<()> {
    let sysroot = resolver.sysroot();
    match sysroot.locate(path) {
        Ok(located) if located.is_dir && !located.links.is_empty() => {
            for link in &located.links {
                let host = sysroot.host(&link.path);
                plan.inputs.insert(host.clone());
                let kind = EntryKind::Symlink { target: link.target.clone(), host: Some(host) };
                insert(plan, &link.path, kind, Why::Skeleton).map_err(anyhow::Error::msg)?;
            }
            insert(plan, &located.real, EntryKind::Dir { mode: 0o755 }, Why::Skeleton)
                .map_err(anyhow::Error::msg)
        }
        _ => insert(plan, path, EntryKind::Dir { mode }, Why::Skeleton).map_err(anyhow::Error::msg),
    }
}

/// The spec's own symlinks, directories and files, resolved through the
/// plan's symlinks.
fn add_spec_entries(plan: &mut Plan, spec: &Spec) -> Result<()> {
    // Symlinks first, so that directories and files can be placed through
    // them, as they would be written through them on a running system.
    for link in &spec.symlinks {
        let at = &link.at;
        let real = place(plan, &link.value.path, false, at, "a symlink")?;
        let why = Why::Spec { key: "symlinks", at: short_location(at) };
        let kind = EntryKind::Symlink { target: link.value.target.clone(), host: None };
        insert(plan, &real, kind, why).map_err(|e| conflict(at, &link.value.path, &real, e))?;
    }
    for dir in &spec.dirs {
        let at = &dir.at;
        let real = place(plan, &dir.value.path, true, at, "a directory")?;
        let why = Why::Spec { key: "dirs", at: short_location(at) };
        match plan.entries.get_mut(&real) {
            Some(Entry { kind: EntryKind::Dir { mode }, why: whys }) => {
                if let Some(m) = dir.value.mode {
                    *mode = m;
                }
                whys.push(why);
            }
            _ => {
                let kind = EntryKind::Dir { mode: dir.value.mode.unwrap_or(0o755) };
                insert(plan, &real, kind, why)
                    .map_err(|e| conflict(at, &dir.value.path, &real, e))?;
            }
        }
    }
    for file in &spec.files {
        let at = &file.at;
        let real = place(plan, &file.value.dest, false, at, "a file")?;
        let why = Why::Spec { key: "files", at: short_location(at) };
        let kind = match &file.value.source {
            FileSource::Host(host) => {
                let src_at = file.value.src_at.as_ref().unwrap_or(at);
                let meta = std::fs::metadata(host).map_err(|e| {
                    SpecError::at(src_at, format!("cannot read `{}`: {e}", host.display()))
                        .help("`src` is a host path, absolute or relative to the spec file")
                })?;
                if !meta.is_file() {
                    return Err(SpecError::at(src_at, format!("`{}` is not a regular file", host.display()))
                        .help("`src` must name one file; list each file of a directory as its own [[files]] entry")
                        .into());
                }
                // The real path, so that the same host file given under
                // another name (`/bin/cat`, `/usr/bin/cat`) is the same copy.
                // The path as given is an input too: pointing a symlink
                // there elsewhere changes what is copied.
                plan.inputs.insert(host.clone());
                let host = std::fs::canonicalize(host).unwrap_or_else(|_| host.clone());
                plan.inputs.insert(host.clone());
                let host_mode = meta.mode() & 0o7777;
                let kept = if spec.keep_setuid { host_mode } else { host_mode & !0o6000 };
                EntryKind::File { host, mode: file.value.mode.unwrap_or(kept), size: meta.size() }
            }
            FileSource::Content(text) => EntryKind::Data {
                bytes: text.as_bytes().to_vec(),
                mode: file.value.mode.unwrap_or(0o644),
            },
        };
        insert(plan, &real, kind, why).map_err(|e| conflict(at, &file.value.dest, &real, e))?;
    }
    Ok(())
}

/// Where a spec path lands in the rootfs, refusing the paths the build
/// writes itself.
fn place(
    plan: &Plan,
    path: &Path,
    follow_last: bool,
    at: &Location,
    what: &str,
) -> Result<PathBuf> {
    let real = resolve_in_plan(plan, path, follow_last).map_err(|e| {
        SpecError::at(at, e).help(
            "every parent of the path must be a directory (or a symlink to one) in the rootfs",
        )
    })?;
    if real.starts_with("/etc/ld.so.cache") {
        return Err(SpecError::at(at, "`/etc/ld.so.cache` is written by the build")
            .help("remove this entry: the build writes a loader cache for exactly the libraries it copies")
            .into());
    }
    let accounts = real.starts_with("/etc/passwd") || real.starts_with("/etc/group");
    if accounts && (what != "a file" || real.parent() != Some(Path::new("/etc"))) {
        return Err(SpecError::at(at, format!("`{}` is written by the build from [[users]] and [[groups]]; {what} cannot be there", real.display()))
            .help(format!("provide `{}` as a [[files]] entry instead, or remove this entry", real.display()))
            .into());
    }
    Ok(real)
}

/// A conflict with what is already planned, said from the spec's side.
fn conflict(at: &Location, path: &Path, real: &Path, message: String) -> anyhow::Error {
    let message = if path == real {
        message
    } else {
        format!("`{}` is `{}` in the rootfs: {message}", path.display(), real.display())
    };
    SpecError::at(at, message).help("choose another path, or remove one of the two entries").into()
}

/// What an entry is and why it is there, for conflict messages: "a copy
/// of `/usr/bin/cat` (mode 0755; command `cat`)".
fn describe_entry(entry: &Entry) -> String {
    let why = entry.why.iter().find(|w| **w != Why::Parent).map(|w| w.to_string());
    let text = describe(&entry.kind);
    match (why, text.strip_suffix(')')) {
        (Some(why), Some(open)) => format!("{open}; {why})"),
        (Some(why), None) => format!("{text} ({why})"),
        (None, _) => text,
    }
}

fn describe(kind: &EntryKind) -> String {
    match kind {
        EntryKind::Dir { .. } => "a directory".to_string(),
        EntryKind::File { host, mode, .. } => {
            format!("a copy of `{}` (mode {mode:04o})", host.display())
        }
        EntryKind::Data { bytes, .. } => {
            format!("a file written by the build ({} bytes)", bytes.len())
        }
        EntryKind::Symlink { target, .. } => format!("a symlink to `{}`", target.display()),
    }
}

/// Resolves a root path through the plan's symlinks as the kernel would
/// inside a chroot: absolute targets restart at the rootfs root and `..`
/// stops there. The last component is followed only when `follow_last`.
pub fn resolve_in_plan(plan: &Plan, path: &Path, follow_last: bool) -> Result<PathBuf, String> {
    /// One step still to take, owned because symlink targets add steps.
    enum Step {
        Root,
        Up,
        Name(std::ffi::OsString),
    }
    fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
        path.components().filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => Some(Step::Root),
            Component::CurDir => None,
            Component::ParentDir => Some(Step::Up),
            Component::Normal(name) => Some(Step::Name(name.to_os_string())),
        })
    }
    let mut pending: Vec<Step> = steps(path).rev().collect();
    let mut current = PathBuf::from("/");
    let mut followed = 0;
    while let Some(step) = pending.pop() {
        match step {
            Step::Root => current = PathBuf::from("/"),
            Step::Up => {
                current.pop();
            }
            Step::Name(name) => {
                let next = current.join(&name);
                let is_last = pending.is_empty();
                match plan.entries.get(&next).map(|e| &e.kind) {
                    Some(EntryKind::Symlink { target, .. }) if !is_last || follow_last => {
                        followed += 1;
                        if followed > MAX_SYMLINKS {
                            return Err(format!(
                                "too many levels of symlinks resolving `{}`",
                                path.display()
                            ));
                        }
                        pending.extend(steps(target).rev());
                    }
                    Some(EntryKind::File { .. } | EntryKind::Data { .. }) if !is_last => {
                        return Err(format!(
                            "`{}` is a file in the rootfs, not a directory",
                            next.display()
                        ));
                    }
                    _ => current = next,
                }
            }
        }
    }
    Ok(current)
}

/// Inserts an entry and the directories above it; an entry that is already
/// there must be the same thing, and then only gains a reason.
pub(crate) fn insert(
    plan: &mut Plan,
    path: &Path,
    kind: EntryKind,
    why: Why,
) -> Result<(), String> {
    match plan.entries.get_mut(path) {
        None => {
            // The parents of an entry are always entries: walk up only to
            // the nearest one that exists, then add the missing ones.
            let mut missing = Vec::new();
            for ancestor in path.ancestors().skip(1) {
                if ancestor == Path::new("/") {
                    break;
                }
                match plan.entries.get(ancestor) {
                    Some(Entry { kind: EntryKind::Dir { .. }, .. }) => break,
                    Some(other) => {
                        return Err(format!(
                            "`{}` needs `{}` to be a directory, but it is {}",
                            path.display(),
                            ancestor.display(),
                            describe_entry(other)
                        ));
                    }
                    None => missing.push(ancestor),
                }
            }
            for ancestor in missing.into_iter().rev() {
                let parent = Entry { kind: EntryKind::Dir { mode: 0o755 }, why: vec![Why::Parent] };
                plan.entries.insert(ancestor.to_path_buf(), parent);
            }
            plan.entries.insert(path.to_path_buf(), Entry { kind, why: vec![why] });
            Ok(())
        }
        Some(existing) => {
            let same = match (&existing.kind, &kind) {
                // A directory created as a parent takes the mode asked for.
                (EntryKind::Dir { .. }, EntryKind::Dir { .. }) => {
                    if existing.why.len() == 1 && existing.why.contains(&Why::Parent) {
                        existing.kind = kind.clone();
                        existing.why.clear();
                    }
                    true
                }
                (
                    EntryKind::File { host: a, mode: ma, .. },
                    EntryKind::File { host: b, mode: mb, .. },
                ) => a == b && ma == mb,
                (EntryKind::Symlink { target: a, .. }, EntryKind::Symlink { target: b, .. }) => {
                    a == b
                }
                (a, b) => a == b,
            };
            if !same {
                return Err(format!(
                    "`{}` is already {}, so it cannot also be {}",
                    path.display(),
                    describe_entry(existing),
                    describe(&kind)
                ));
            }
            existing.why.push(why);
            Ok(())
        }
    }
}
