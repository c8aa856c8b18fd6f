//! What a traced run of a spec's checks used on the sysroot that the built tree lacks, grouped as the spec entries that would add it (commands, libraries, dirs, files, symlinks, trees), each with the checks that needed it.
//!
//! Only paths that existed when they were used count. Paths under `/proc`,
//! `/sys`, `/dev`, `/tmp` and `/run` are the sandbox's own, not the tree's,
//! and those under `/root` and `/home` are the sysroot's users' own files
//! (a `.gitconfig`), which a tree should not get by accident: they are
//! noted, never proposed. A path a spec tree leaves out on purpose (its
//! `exclude`) is not proposed either, nor what lies under one of the
//! check's binds (the host's own files, bound in), nor a path gone by the
//! time the run ended (a temporary name a program made and removed).

mod accounts;
mod command;
mod fragment;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use self::accounts::{Account, AccountKind};
pub use self::command::{Options, Report, trace};
pub use self::fragment::{HEADER, render};
use crate::build::manifest::Manifest;
use crate::resolve::elf::FileKind;
use crate::resolve::sysroot::Sysroot;
use crate::run::smoke::Traced;
use crate::run::trace::{Access, Event, FileType};
use crate::spec::Spec;

/// The spec entry a finding would become.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// A program some check executed: `commands`.
    Commands,
    /// An ELF shared object some check opened (`dlopen`): `libraries`.
    Libraries,
    /// A directory some check looked at: `dirs`.
    Dirs,
    /// A regular file: `[[files]]`.
    Files,
    /// A symlink used on the way to something else, or read itself:
    /// `[[symlinks]]`.
    Symlinks,
    /// A directory some check listed, or searched for names and read
    /// from: `[[trees]]`.
    Trees,
    /// A file that describes the machine, not the software (`resolv.conf`):
    /// bound from the host by `shell` and `run`, never copied.
    ShellBinds,
}

impl Group {
    pub const ALL: [Group; 7] = [
        Group::Commands,
        Group::Libraries,
        Group::Dirs,
        Group::Files,
        Group::Symlinks,
        Group::Trees,
        Group::ShellBinds,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Group::Commands => "commands",
            Group::Libraries => "libraries",
            Group::Dirs => "dirs",
            Group::Files => "files",
            Group::Symlinks => "symlinks",
            Group::Trees => "trees",
            Group::ShellBinds => "[shell] binds",
        }
    }
}

/// One thing the tree lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub group: Group,
    /// A root path of the sysroot.
    pub path: PathBuf,
    /// A symlink's target text.
    pub target: Option<PathBuf>,
    /// The names of the checks that used it, sorted.
    pub needed_by: BTreeSet<String>,
}

/// Everything one trace found.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// By group, then path.
    pub missing: BTreeMap<(Group, PathBuf), Finding>,
    /// Accounts of the sysroot that checks looked up and the tree lacks.
    pub accounts: BTreeMap<(AccountKind, String), Account>,
    /// Paths of the sandbox's own mounts that checks used, with the checks.
    pub noted: BTreeMap<PathBuf, BTreeSet<String>>,
    /// Checks that could not be traced, and why.
    pub errors: Vec<String>,
}

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.accounts.is_empty()
    }

    /// The noted paths by top folder, with the checks that used them: what
    /// a check writes in `/tmp` has random names, and a report or fragment
    /// must not change when nothing else did.
    pub fn noted_folders(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut by_folder: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (path, checks) in &self.noted {
            let folder = path.components().take(2).collect::<PathBuf>();
            by_folder
                .entry(folder.display().to_string())
                .or_default()
                .extend(checks.iter().cloned());
        }
        by_folder
    }
}

/// The findings for people: each group with its paths and the checks that
/// needed them, the noted paths, the errors, and a closing count that says
/// how many checks failed on the sysroot.
pub fn report(findings: &Findings, checks: usize, failed: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    report_paths(&mut out, findings);
    report_accounts(&mut out, findings);
    if !findings.noted.is_empty() {
        let folders: Vec<String> = findings.noted_folders().into_keys().collect();
        let _ = writeln!(
            out,
            "noted, never proposed ({} paths): under {}",
            findings.noted.len(),
            folders.join(", ")
        );
    }
    for error in &findings.errors {
        let _ = writeln!(out, "error: {error}");
    }
    let accounts = match findings.accounts.len() {
        0 => String::new(),
        1 => " and 1 account".to_string(),
        n => format!(" and {n} accounts"),
    };
    let failed = match failed {
        0 => String::new(),
        n => format!(", {n} failed on the sysroot"),
    };
    let _ = writeln!(
        out,
        "{checks} checks traced{failed}: the tree lacks {} {}{accounts}",
        findings.missing.len(),
        if findings.missing.len() == 1 { "path" } else { "paths" }
    );
    out
}

/// Each group with its paths and the checks that needed them.
fn report_paths(out: &mut String, findings: &Findings) {
    use std::fmt::Write;
    for group in Group::ALL {
        let items: Vec<&Finding> = findings.missing.values().filter(|f| f.group == group).collect();
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{} ({}):", group.key(), items.len());
        for item in items {
            let target =
                item.target.as_ref().map(|t| format!(" -> {}", t.display())).unwrap_or_default();
            let needed = needed_by(&item.needed_by);
            let _ = writeln!(out, "  {}{target}\n      {needed}", item.path.display());
        }
    }
}

/// The users, then the groups, each as its line of the sysroot's file.
fn report_accounts(out: &mut String, findings: &Findings) {
    use std::fmt::Write;
    for kind in [AccountKind::User, AccountKind::Group] {
        let items: Vec<&Account> = findings.accounts.values().filter(|a| a.kind == kind).collect();
        if items.is_empty() {
            continue;
        }
        let (table, file) = (kind.table(), kind.file());
        let _ = writeln!(out, "{table} ({}), from the sysroot's {file}:", items.len());
        for item in items {
            let needed: Vec<&str> = item.needed_by.iter().map(String::as_str).collect();
            let _ =
                writeln!(out, "  {}\n      needed by {}", item.fields.join(":"), needed.join("; "));
        }
    }
}

/// Folders of the sandbox itself, and of the sysroot's users: never
/// proposed.
const SANDBOX_DIRS: &[&str] = &["/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/home"];

/// Files that describe the machine rather than the software: the name
/// servers, the host names, the LDAP server. A tree that copied them would
/// carry this machine's network to every other; `shell` and `run` bind
/// them instead.
const MACHINE_FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/mailname",
    "/etc/machine-id",
    "/etc/ldap/ldap.conf",
    "/etc/ldap.conf",
];

/// The most a check's name takes in a comment or a report line.
const SHORT_NAME: usize = 60;

/// A check's name on one short line: a script's first line, cut.
pub fn short_name(name: &str) -> String {
    let first = name.split("\\n").next().unwrap_or(name);
    let cut = first.chars().count() > SHORT_NAME || first.len() < name.len();
    if !cut {
        return first.to_string();
    }
    let kept: String = first.chars().take(SHORT_NAME - 1).collect();
    format!("{}…", kept.trim_end())
}

/// `needed by A; B`, each name short, at most three of them.
fn needed_by(checks: &BTreeSet<String>) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<String> = checks.iter().take(SHOWN).map(|c| short_name(c)).collect();
    if checks.len() > SHOWN {
        names.push(format!("{} more", checks.len() - SHOWN));
    }
    format!("needed by {}", names.join("; "))
}

/// Compares what the checks used on the sysroot with the tree's manifest.
pub fn find(
    traced: &[Traced],
    manifest: &Manifest,
    spec: &Spec,
    sysroot: &Sysroot,
    fragment: Option<&Path>,
) -> Findings {
    let tree = TreeView::new(manifest, spec, fragment);
    let known = accounts::Known::new(spec, sysroot, |at| tree.is_fragment(at));
    let mut findings = Findings::default();
    for one in traced {
        let name = &one.check.name;
        let bound = one.check.bound(sysroot.root());
        let trace = match &one.trace {
            Ok(trace) => trace,
            Err(e) => {
                findings.errors.push(format!("{name}: {e:#}"));
                continue;
            }
        };
        accounts::find(&mut findings.accounts, &known, trace, name, sysroot);
        // A program that lists a folder and then looks at each entry walks
        // the folder; it does not ask for those files. What it opens or runs
        // still counts.
        let listed: BTreeSet<PathBuf> = trace
            .events
            .iter()
            .filter(|e| e.access == Access::List)
            .map(|e| crate::resolve::rootpath::lexical(&e.path))
            .collect();
        let opened: BTreeSet<PathBuf> = trace
            .events
            .iter()
            .filter(|e| !matches!(e.access, Access::Stat | Access::Readlink))
            .map(|e| crate::resolve::rootpath::lexical(&e.path))
            .collect();
        let searched = searched_dirs(&trace.events);
        for event in trace.events.iter().filter(|e| e.exists()) {
            let path = crate::resolve::rootpath::lexical(&event.path);
            let walked = matches!(event.access, Access::Stat | Access::Readlink)
                && path.parent().is_some_and(|p| listed.contains(p))
                && !opened.contains(&path);
            // Under a bind, or on the way to one (whose folders the
            // sandbox makes when the tree lacks them).
            let by_bind = bound.iter().any(|b| path.starts_with(b) || b.starts_with(&path));
            if !walked && !by_bind {
                classify(&mut findings, event, name, &tree, spec, sysroot, &searched);
            }
        }
    }
    prune(&mut findings);
    findings
}

/// The directories a check searched for a name and found it in: where it
/// looked up `D/NAME` and missed, then found `E/NAME` (a compiler's
/// include and library directories, an interpreter's module path), `E`.
/// The directories every program searches anyway (`PATH`, the loader's,
/// `/etc`) are left out: they are the system's, not one tool's.
fn searched_dirs(events: &[Event]) -> BTreeSet<PathBuf> {
    let mut missed: BTreeMap<&std::ffi::OsStr, Vec<PathBuf>> = BTreeMap::new();
    for event in events.iter().filter(|e| !e.exists() && e.path.is_absolute()) {
        if let Some(name) = event.path.file_name() {
            missed.entry(name).or_default().push(crate::resolve::rootpath::lexical(&event.path));
        }
    }
    let mut dirs = BTreeSet::new();
    for event in events.iter().filter(|e| e.exists() && e.file_type() == Some(FileType::Regular)) {
        let Some(name) = event.path.file_name() else { continue };
        let found = crate::resolve::rootpath::lexical(&event.path);
        for miss in missed.get(name).into_iter().flatten() {
            if let Some(dir) = search_root(&found, miss) {
                dirs.insert(dir);
            }
        }
    }
    dirs.retain(|d| !is_system_dir(d));
    dirs
}

/// The directory `found` was found in when `missed` was the same relative
/// name looked up elsewhere: `found` without the components the two share
/// at their end.
fn search_root(found: &Path, missed: &Path) -> Option<PathBuf> {
    let a: Vec<_> = found.components().collect();
    let b: Vec<_> = missed.components().collect();
    let shared = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count();
    (shared < a.len() && shared < b.len()).then(|| a[..a.len() - shared].iter().collect())
}

/// `/`, a top folder, a `PATH` folder, a folder of the loader's libraries
/// (`/lib`, `/usr/lib64`, `/usr/lib/x86_64-linux-gnu`) or of `/etc`.
fn is_system_dir(dir: &Path) -> bool {
    let parts: Vec<String> =
        dir.components().skip(1).map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let lib = |p: &str| p.starts_with("lib");
    let tuple = |p: &str| p.contains("-linux-");
    let on_path = crate::resolve::DEFAULT_PATH.iter().any(|p| Path::new(p) == dir);
    on_path
        || parts.len() < 2
        || parts[0] == "etc"
        || (lib(&parts[0]) && (parts.len() == 1 || (parts.len() == 2 && tuple(&parts[1]))))
        || (parts[0] == "usr"
            && lib(&parts[1])
            && (parts.len() == 2 || (parts.len() == 3 && tuple(&parts[2]))))
}

fn classify(
    findings: &mut Findings,
    event: &Event,
    check: &str,
    tree: &TreeView,
    spec: &Spec,
    sysroot: &Sysroot,
    searched: &BTreeSet<PathBuf>,
) {
    let path = crate::resolve::rootpath::lexical(&event.path);
    if !event.path.is_absolute() {
        return;
    }
    if SANDBOX_DIRS.iter().any(|d| path.starts_with(d)) {
        findings.noted.entry(path).or_default().insert(check.to_string());
        return;
    }
    if excluded_by_spec(spec, &path) {
        return;
    }
    let link_itself = event.file_type() == Some(FileType::Symlink);
    let in_tree = path == Path::new("/") || tree.has(&path, link_itself);
    if in_tree {
        return;
    }
    let mut add = |group: Group, path: &Path, target: Option<PathBuf>| {
        let finding = findings.missing.entry((group, path.to_path_buf())).or_insert_with(|| {
            Finding { group, path: path.to_path_buf(), target, needed_by: BTreeSet::new() }
        });
        finding.needed_by.insert(check.to_string());
    };
    if link_itself {
        if let Ok(target) = std::fs::read_link(sysroot.host(&path)) {
            add(Group::Symlinks, &path, Some(target));
        }
        return;
    }
    // Gone by now: a temporary name the program made and removed.
    let Ok(located) = sysroot.locate(&path) else { return };
    let (group, at) = group_of(event.access, &path, &located, sysroot, searched);
    if group == Group::ShellBinds && tree.shell_bound.contains(&at) {
        return;
    }
    // Commands and libraries bring the symlinks on their way themselves; a
    // bind is made at the path as given.
    if matches!(group, Group::Dirs | Group::Files | Group::Trees) {
        for link in &located.links {
            if !tree.has(&link.path, true) {
                add(Group::Symlinks, &link.path, Some(link.target.clone()));
            }
        }
    }
    add(group, &at, None);
}

/// The spec entry that would bring `path`, found at `located`, and the path
/// it names.
fn group_of(
    access: Access,
    path: &Path,
    located: &crate::resolve::sysroot::Located,
    sysroot: &Sysroot,
    searched: &BTreeSet<PathBuf>,
) -> (Group, PathBuf) {
    let search_root = || searched.iter().filter(|d| path.starts_with(d)).max();
    match access {
        Access::Exec => (Group::Commands, path.to_path_buf()),
        Access::List => (Group::Trees, located.real.clone()),
        _ if located.is_dir => (Group::Dirs, located.real.clone()),
        _ if MACHINE_FILES.iter().any(|f| path == Path::new(f)) => {
            (Group::ShellBinds, path.to_path_buf())
        }
        _ if is_library(&sysroot.host(&located.real)) => (Group::Libraries, path.to_path_buf()),
        _ => match search_root() {
            Some(dir) => (Group::Trees, dir.clone()),
            None => (Group::Files, located.real.clone()),
        },
    }
}

/// The built tree as the trace judges it: what it holds, except what only
/// the fragment being written puts there. That fragment is rewritten as a
/// whole, so what it provides and the checks still use is proposed again,
/// and a rerun on an unchanged host writes the same bytes.
struct TreeView<'a> {
    manifest: &'a Manifest,
    /// How the manifest names the fragment's entries: `entry at NAME:`.
    fragment: Option<String>,
    /// Commands the fragment lists.
    fragment_commands: BTreeSet<String>,
    /// The fragment as a source of the spec, when the spec includes it.
    fragment_source: Option<std::sync::Arc<crate::spec::Source>>,
    /// Paths inside that the spec's `[shell]` binds, except the fragment's
    /// own binds.
    shell_bound: BTreeSet<PathBuf>,
}

impl<'a> TreeView<'a> {
    fn new(manifest: &'a Manifest, spec: &Spec, fragment: Option<&Path>) -> TreeView<'a> {
        let canonical = fragment.and_then(|f| std::fs::canonicalize(f).ok());
        let source = spec
            .sources
            .iter()
            .find(|s| canonical.is_some() && std::fs::canonicalize(&s.path).ok() == canonical);
        let fragment_commands = spec
            .commands
            .iter()
            .filter(|c| source.is_some_and(|s| std::sync::Arc::ptr_eq(&c.at.source, s)))
            .map(|c| c.value.clone())
            .collect();
        let shell_bound = spec
            .shell
            .binds
            .iter()
            .filter(|b| !source.is_some_and(|s| std::sync::Arc::ptr_eq(&b.at.source, s)))
            .map(|b| b.value.dest.clone().unwrap_or_else(|| b.value.source.clone()))
            .collect();
        let fragment = source.map(|s| format!("entry at {}:", s.name.display()));
        TreeView {
            manifest,
            fragment,
            fragment_commands,
            fragment_source: source.cloned(),
            shell_bound,
        }
    }

    /// Whether a spec value was written in the fragment.
    fn is_fragment(&self, at: &crate::spec::Location) -> bool {
        self.fragment_source.as_ref().is_some_and(|s| std::sync::Arc::ptr_eq(&at.source, s))
    }

    /// Whether the tree has `path` (the symlink itself when `link_itself`)
    /// from something else than the fragment.
    fn has(&self, path: &Path, link_itself: bool) -> bool {
        let entry =
            if link_itself { self.manifest.lookup_link(path) } else { self.manifest.lookup(path) };
        entry.is_some_and(|e| !self.only_from_fragment(&e.why))
    }

    /// Whether every reason for an entry is the fragment's (a parent folder
    /// or a symlink on the way to something counts for nobody).
    fn only_from_fragment(&self, why: &[String]) -> bool {
        let Some(fragment) = &self.fragment else { return false };
        let neutral = |w: &str| w == "parent directory" || w.starts_with("symlink on the way to ");
        let from_fragment = |w: &str| {
            w.contains(fragment.as_str())
                || w.strip_prefix("command `")
                    .and_then(|rest| rest.strip_suffix('`'))
                    .is_some_and(|name| self.fragment_commands.contains(name))
        };
        let counted: Vec<&String> = why.iter().filter(|w| !neutral(w)).collect();
        !counted.is_empty() && counted.iter().all(|w| from_fragment(w))
    }
}

/// A shared object, not a program: what a `dlopen` opens.
fn is_library(host: &Path) -> bool {
    matches!(
        crate::resolve::elf::read(host),
        Ok(FileKind::Elf(object)) if object.dynamic && object.interp.is_none() && !object.pie
            && object.e_type == goblin::elf::header::ET_DYN
    )
}

/// Whether a spec tree covers `path` and leaves it out on purpose.
fn excluded_by_spec(spec: &Spec, path: &Path) -> bool {
    spec.trees.iter().any(|tree| {
        path.strip_prefix(&tree.value.dest)
            .is_ok_and(|rel| crate::build::plan::excluded(&tree.value.exclude, rel))
    })
}

/// What a proposed tree already brings is not proposed again, and a folder
/// is proposed only when nothing proposed creates it.
fn prune(findings: &mut Findings) {
    let trees: Vec<PathBuf> = findings
        .missing
        .keys()
        .filter(|(g, _)| *g == Group::Trees)
        .map(|(_, p)| p.clone())
        .collect();
    let under_tree = |group: Group, path: &Path| {
        trees.iter().any(|t| path.starts_with(t) && !(group == Group::Trees && path == t))
    };
    let others: Vec<PathBuf> = findings
        .missing
        .keys()
        .filter(|(g, _)| *g != Group::Dirs)
        .map(|(_, p)| p.clone())
        .collect();
    let commands: BTreeSet<PathBuf> = findings
        .missing
        .keys()
        .filter(|(g, _)| *g == Group::Commands)
        .map(|(_, p)| p.clone())
        .collect();
    findings.missing.retain(|(group, path), _| {
        if under_tree(*group, path) {
            return false;
        }
        // A program looked at before it ran is its command's to bring.
        if *group == Group::Files && commands.contains(path) {
            return false;
        }
        *group != Group::Dirs || !others.iter().any(|o| o.starts_with(path) && o != path)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_searched_in_several_folders_makes_the_one_it_was_found_in_a_search_folder() {
        let root = |f: &str, m: &str| search_root(Path::new(f), Path::new(m));
        assert_eq!(
            root("/usr/include/x86_64-linux-gnu/bits/types.h", "/usr/local/include/bits/types.h"),
            Some(PathBuf::from("/usr/include/x86_64-linux-gnu"))
        );
        assert_eq!(root("/usr/include/stdio.h", "/usr/include/stdio.h"), None);
        assert!(is_system_dir(Path::new("/usr/bin")));
        assert!(is_system_dir(Path::new("/usr/lib/x86_64-linux-gnu")));
        assert!(is_system_dir(Path::new("/lib64")));
        assert!(is_system_dir(Path::new("/etc/ssl")));
        assert!(!is_system_dir(Path::new("/usr/include")));
        assert!(!is_system_dir(Path::new("/usr/lib/gcc/x86_64-linux-gnu/12")));
        assert!(!is_system_dir(Path::new("/usr/lib/python3.11")));
    }

    #[test]
    fn a_check_is_named_in_one_short_line() {
        assert_eq!(short_name("bash"), "bash");
        assert_eq!(short_name("check 2: sh -c 'set -e\\ncc main.c'"), "check 2: sh -c 'set -e…");
        let long = format!("check 1: {}", "x".repeat(80));
        assert_eq!(short_name(&long).chars().count(), SHORT_NAME);
    }
}
