//! The plan: every path of the rootfs, what it is, where it comes from and why it is there, computed without writing anything.
//!
//! Paths in the plan are root paths whose parent directories are real
//! directories of the plan: a symlink is an entry of its own, never a step
//! inside another entry's path. Spec paths are resolved through the plan's
//! symlinks the way the kernel resolves them inside a chroot, so that
//! `dest = "/bin/x"` on a merged-`/usr` layout lands in `/usr/bin/x`.

mod accounts;
mod closures;
mod cpu_variants;
mod spec_entries;
mod trees;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use rustc_hash::FxHashSet;

pub use self::trees::excluded;
use crate::build::manifest::CommandKind;
use crate::resolve::rootpath::{self, Node, Walk, WalkError};
use crate::resolve::{Reason, Resolver};
use crate::spec::Spec;
use crate::vocab::EntryType;

/// The directories of the classic FHS skeleton, with the modes a real system
/// gives them; `/lib64` only where the sysroot has it.
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
    /// Part of a spec's `[[trees]]` entry copied from `src`, at `file:line`.
    Tree { src: PathBuf, at: String },
    /// Written from the spec's users and groups.
    Accounts,
    /// The loader's cache, written so that libraries outside the default
    /// directories are found.
    LdCache,
    /// Another CPU level's build (`glibc-hwcaps/<level>/`, or the baseline)
    /// of a library the loader found at `of`.
    CpuVariant { of: PathBuf },
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
            Why::Tree { src, at } => write!(f, "tree {} (trees entry at {at})", src.display()),
            Why::Accounts => f.write_str("users and groups of the spec"),
            Why::LdCache => f.write_str("loader cache for the libraries of the rootfs"),
            Why::CpuVariant { of } => write!(f, "another CPU level's build of {}", of.display()),
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

impl EntryKind {
    /// What the entry is on disk.
    pub fn entry_type(&self) -> EntryType {
        match self {
            EntryKind::Dir { .. } => EntryType::Dir,
            EntryKind::File { .. } | EntryKind::Data { .. } => EntryType::File,
            EntryKind::Symlink { .. } => EntryType::Symlink,
        }
    }
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
    pub kind: CommandKind,
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
    /// symlinks, directories searched. A hash set: libc alone is added
    /// once per program, and the build sorts them once.
    pub inputs: HashSet<PathBuf>,
    /// What is worth telling people without failing the build (a module of
    /// a tree that needs a library the sysroot lacks).
    pub warnings: Vec<String>,
    /// Each command's closure, by the spec's name for it: its program (the
    /// root path found on `PATH`), then every file opened for it, as the
    /// loader names them, in load order. The lock records these.
    pub closures: BTreeMap<String, Vec<PathBuf>>,
    /// Each `[[trees]]` entry's folder in the tree, with every path it put
    /// there. The lock records a digest of each listing.
    pub trees: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

impl Plan {
    /// A plan of nothing yet, named `name`.
    pub fn empty(name: &str) -> Plan {
        Plan {
            name: name.to_string(),
            entries: HashMap::new(),
            commands: Vec::new(),
            inputs: HashSet::new(),
            warnings: Vec::new(),
            closures: BTreeMap::new(),
            trees: BTreeMap::new(),
        }
    }

    /// The entries sorted by path: a directory before what it holds.
    pub fn sorted(&self) -> Vec<(&PathBuf, &Entry)> {
        let mut sorted: Vec<(&PathBuf, &Entry)> = self.entries.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        sorted
    }
}

/// Why a path cannot be placed in the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The path is already planned as something else.
    Conflict { path: PathBuf, existing: String, wanted: String },
    /// A parent of the path is planned as something other than a directory.
    NotADirectory { path: PathBuf, parent: PathBuf, existing: String },
    /// A file of the plan is used as a directory on the way to the path.
    FileInPath { path: PathBuf, file: PathBuf },
    /// More than [`rootpath::MAX_SYMLINKS`] symlinks on the way.
    SymlinkLoop { path: PathBuf },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Conflict { path, existing, wanted } => write!(
                f,
                "`{}` is already {existing}, so it cannot also be {wanted}",
                path.display()
            ),
            PlanError::NotADirectory { path, parent, existing } => write!(
                f,
                "`{}` needs `{}` to be a directory, but it is {existing}",
                path.display(),
                parent.display()
            ),
            PlanError::FileInPath { file, .. } => {
                write!(f, "`{}` is a file in the rootfs, not a directory", file.display())
            }
            PlanError::SymlinkLoop { path } => {
                write!(f, "too many levels of symlinks resolving `{}`", path.display())
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// The plan for a spec: resolves every command and library inside the
/// resolver's sysroot and lays out the tree.
pub fn plan(spec: &Spec, resolver: &Resolver, system_files: SystemFiles) -> Result<Plan> {
    let mut plan = Plan::empty(&spec.name);
    closures::add_skeleton(&mut plan, resolver)?;
    let mut loaded = closures::add_commands_and_libraries(&mut plan, spec, resolver)?;
    loaded.closures.extend(trees::add(&mut plan, spec, resolver)?);
    let variants = cpu_variants::add(&mut plan, resolver, &loaded.closures, spec)?;
    loaded.closures.extend(variants);
    spec_entries::add(&mut plan, spec, resolver, system_files)?;
    accounts::add(&mut plan, spec)?;
    closures::add_loader_cache(&mut plan, resolver, &loaded)?;
    // Thousands of small allocations (a reason and a path per file of
    // every closure): freed on another core while planning goes on.
    rayon::spawn(move || drop(loaded));
    plan.inputs.extend(resolver.consulted_dirs().iter().map(|d| resolver.sysroot().host(d)));
    finish(&mut plan)?;
    warn_hidden(&mut plan);
    Ok(plan)
}

/// Folders that `smoke`, `trace`, `shell` and `run` cover with a fresh
/// filesystem of their own: what the tree holds under them is there but
/// unseen by every command inside.
const COVERED: &[&str] = &["/tmp", "/proc", "/dev", "/sys"];

/// One warning per covered folder with entries under it (a command whose
/// host path is under `/tmp`, say), naming the first and how many.
fn warn_hidden(plan: &mut Plan) {
    for folder in COVERED {
        // The entries are a hash map: sorted, the first named is the same
        // every run (the shallowest folder of the first subtree).
        let mut under: Vec<&PathBuf> = plan
            .entries
            .keys()
            .filter(|p| p.starts_with(folder) && *p != Path::new(folder))
            .collect();
        under.sort();
        if let Some(first) = under.first() {
            let more = match under.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            plan.warnings.push(format!(
                "`{}`{more} lie under {folder}, which the sandbox covers with its own filesystem: \
                 commands inside do not see them; put them elsewhere (a `[[files]]` dest, or a program \
                 outside {folder})",
                first.display()
            ));
        }
    }
}

/// Where a `[[files]]` entry's absolute `src` is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SystemFiles {
    /// On the host, as for a directory or image sysroot (the sysroot `/`
    /// is the host itself).
    #[default]
    Host,
    /// In the sysroot, through its own symlinks: a package sysroot's tree
    /// takes nothing from the host but what a relative `src` names.
    Sysroot,
}

/// Sorts every entry's reasons, and checks that every path is text: the
/// manifest is JSON.
fn finish(plan: &mut Plan) -> Result<()> {
    use rayon::prelude::*;
    plan.entries.par_iter_mut().for_each(|(_, entry)| sort_reasons(&mut entry.why));
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
    Ok(())
}

/// Sorts an entry's reasons and drops the duplicates. Libc has a reason
/// per object that needs it, once per program whose closure holds that
/// object (8,581 reasons, 2,859 distinct, in a tree of every host program):
/// the duplicates go first, through a hash set, then the rest is sorted in
/// the derived order, the loader's reasons compared by their paths' bytes
/// where that is the same order ([`cmp_loaded`]) rather than by splitting
/// both paths into components at every comparison.
fn sort_reasons(whys: &mut Vec<Why>) {
    if whys.len() > 16 {
        let taken = std::mem::take(whys);
        let mut seen: FxHashSet<&Why> =
            FxHashSet::with_capacity_and_hasher(taken.len(), Default::default());
        let first: Vec<bool> = taken.iter().map(|why| seen.insert(why)).collect();
        drop(seen);
        *whys =
            taken.into_iter().zip(first).filter_map(|(why, first)| first.then_some(why)).collect();
    }
    let by_bytes = whys.iter().filter_map(loaded_key).all(|(_, path, _)| is_plain(path));
    if by_bytes {
        whys.sort_unstable_by(|a, b| match (loaded_key(a), loaded_key(b)) {
            (Some(a), Some(b)) => cmp_loaded(a, b),
            _ => a.cmp(b),
        });
    } else {
        whys.sort_unstable();
    }
    whys.dedup();
}

/// The derived order of two of the loader's reasons ([`loaded_key`]) whose
/// paths are plain ([`is_plain`]): there, comparing components is
/// comparing bytes with `/` below every other byte (a component that is a
/// prefix of another ends at a `/`, or at the path's end, where the longer
/// one goes on).
fn cmp_loaded(
    (rank_a, a, name_a): (u8, &Path, &str),
    (rank_b, b, name_b): (u8, &Path, &str),
) -> std::cmp::Ordering {
    let (a, b) = (a.as_os_str().as_encoded_bytes(), b.as_os_str().as_encoded_bytes());
    let weight = |byte: u8| if byte == b'/' { 0 } else { u16::from(byte) + 1 };
    let paths = match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => weight(a[i]).cmp(&weight(b[i])),
        None => a.len().cmp(&b.len()),
    };
    rank_a.cmp(&rank_b).then(paths).then_with(|| name_a.cmp(name_b))
}

/// Whether a path's components are exactly the pieces between its
/// slashes, each a name: absolute, no empty piece (`//`, a trailing `/`),
/// no `.` or `..` (`..` orders below every name, by its kind).
fn is_plain(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    bytes.len() > 1
        && bytes[0] == b'/'
        && bytes[1..].split(|b| *b == b'/').all(|piece| !matches!(piece, b"" | b"." | b".."))
}

/// A reason of the loader as what its derived order compares: the rank of
/// its kind in [`Reason`], its path, and its name (empty for a kind
/// without one); `None` for every other reason.
fn loaded_key(why: &Why) -> Option<(u8, &Path, &str)> {
    match why {
        Why::Loaded(Reason::Interpreter { of }) => Some((0, of, "")),
        Why::Loaded(Reason::Needed { by, name }) => Some((1, by, name)),
        Why::Loaded(Reason::Script { of }) => Some((2, of, "")),
        Why::Loaded(Reason::Env { of }) => Some((3, of, "")),
        _ => None,
    }
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
/// inside a chroot (`rootpath`): absolute targets restart at the rootfs
/// root and `..` stops there; a missing directory will be created. The last
/// component is followed only when `follow_last`.
pub fn resolve_in_plan(plan: &Plan, path: &Path, follow_last: bool) -> Result<PathBuf, PlanError> {
    let lookup = |p: &Path| {
        Ok(match plan.entries.get(p).map(|e| &e.kind) {
            None => Node::Missing,
            Some(EntryKind::Dir { .. }) => Node::Dir,
            Some(EntryKind::File { .. } | EntryKind::Data { .. }) => Node::File,
            Some(EntryKind::Symlink { target, .. }) => Node::Symlink(target.clone()),
        })
    };
    let how = Walk { follow_last, missing_ok: true };
    match rootpath::walk(path, how, lookup) {
        Ok(walked) => Ok(walked.real),
        Err(WalkError::Loop(_)) => Err(PlanError::SymlinkLoop { path: path.to_path_buf() }),
        Err(e) => {
            Err(PlanError::FileInPath { path: path.to_path_buf(), file: e.path().to_path_buf() })
        }
    }
}

/// Inserts an entry and the directories above it; an entry that is already
/// there must be the same thing, and then only gains a reason.
pub(crate) fn insert(
    plan: &mut Plan,
    path: &Path,
    kind: EntryKind,
    why: Why,
) -> Result<(), PlanError> {
    let Some(existing) = plan.entries.get_mut(path) else {
        add_parents(plan, path)?;
        plan.entries.insert(path.to_path_buf(), Entry { kind, why: vec![why] });
        return Ok(());
    };
    let same = match (&existing.kind, &kind) {
        // A directory created as a parent takes the mode asked for.
        (EntryKind::Dir { .. }, EntryKind::Dir { .. }) => {
            if existing.why.len() == 1 && existing.why.contains(&Why::Parent) {
                existing.kind = kind.clone();
                existing.why.clear();
            }
            true
        }
        (EntryKind::File { host: a, mode: ma, .. }, EntryKind::File { host: b, mode: mb, .. }) => {
            a == b && ma == mb
        }
        (EntryKind::Symlink { target: a, .. }, EntryKind::Symlink { target: b, .. }) => a == b,
        (a, b) => a == b,
    };
    if !same {
        return Err(PlanError::Conflict {
            path: path.to_path_buf(),
            existing: describe_entry(existing),
            wanted: describe(&kind),
        });
    }
    existing.why.push(why);
    Ok(())
}

/// The parents of an entry are always entries: walks up only to the
/// nearest one that exists, then adds the missing ones.
fn add_parents(plan: &mut Plan, path: &Path) -> Result<(), PlanError> {
    let mut missing = Vec::new();
    for ancestor in path.ancestors().skip(1) {
        if ancestor == Path::new("/") {
            break;
        }
        match plan.entries.get(ancestor) {
            Some(Entry { kind: EntryKind::Dir { .. }, .. }) => break,
            Some(other) => {
                return Err(PlanError::NotADirectory {
                    path: path.to_path_buf(),
                    parent: ancestor.to_path_buf(),
                    existing: describe_entry(other),
                });
            }
            None => missing.push(ancestor),
        }
    }
    for ancestor in missing.into_iter().rev() {
        let parent = Entry { kind: EntryKind::Dir { mode: 0o755 }, why: vec![Why::Parent] };
        plan.entries.insert(ancestor.to_path_buf(), parent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long lists of the loader's reasons, with paths whose bytes and
    /// components order differently (`/a-b` and `/a/b`), duplicates and
    /// every kind `loaded_key` ranks, sort as the derived order does.
    #[test]
    fn long_lists_of_reasons_sort_in_the_derived_order() {
        // `+` and `-` are below `/` as bytes, above it as components.
        let plain = ["/a/b", "/a-b", "/a/b/c", "/ab", "/a", "/a/b-c", "/a+b", "/a/+", "/+/x"];
        let odd = ["/a/b/../c", "/a//b", "/a/b/", "/a/./b"];
        for paths in [&plain[..], &[&plain[..], &odd[..]].concat()] {
            let mut whys = long_list(paths);
            let mut expected = whys.clone();
            expected.sort_unstable();
            expected.dedup();
            sort_reasons(&mut whys);
            assert_eq!(whys, expected);
            assert!(whys.len() > 30, "only the duplicates go: {} left", whys.len());
        }
        assert!(plain.iter().all(|p| is_plain(Path::new(p))));
        assert!(!odd.iter().any(|p| is_plain(Path::new(p))));
    }

    /// 200 reasons of every kind `loaded_key` ranks and two it does not,
    /// over `paths`, with duplicates.
    fn long_list(paths: &[&str]) -> Vec<Why> {
        let mut whys = vec![Why::Parent, Why::Command("x".to_string()), Why::Parent];
        for i in 0..200 {
            let path = PathBuf::from(paths[i % paths.len()]);
            let name = format!("lib{}.so", i % 3);
            whys.push(Why::Loaded(match (i / paths.len()) % 4 {
                0 => Reason::Interpreter { of: path },
                1 => Reason::Needed { by: path, name },
                2 => Reason::Script { of: path },
                _ => Reason::Env { of: path },
            }));
        }
        whys
    }
}
