//! Splitting a tree into image layers the way Nix's layered images do: the files most widely shared go first, each in its own layer, then the largest closures, then the rest in one layer, so that two images sharing libraries share those layers' blobs.
//!
//! The closures come from resolving each command inside the built tree
//! itself (the tree is a sysroot like any other), never from the host:
//! - a file's *popularity* is the number of commands whose closure holds
//!   it; ties are broken by the number of objects of the tree that load it,
//!   directly or not (Nix's popularity contest), so the loader comes before
//!   libc, and libc before the libraries built on it;
//! - *shared* files (held by two commands or more, or loaded by two objects
//!   or more) each make one layer, most popular first, with the symlinks
//!   on the way to them;
//! - then each command with what only it needs makes one layer, the largest
//!   first;
//! - the first `N - 1` of these become layers 1 to `N - 1`, and layer `N`
//!   holds everything else: the skeleton, the spec's files, and every
//!   directory.
//!
//! Each layer also holds the parent directories of its entries, so that it
//! unpacks on its own. A layer's content depends only on the files it holds,
//! not on the rest of the spec: two specs that share libc produce the same
//! first layers, byte for byte.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::tree::{Kind, Tree};
use crate::build::manifest::CommandEntry;
use crate::resolve::{self, Closure, Resolver};

/// One layer: entries of the tree, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Indices into the tree's entries, ascending (the tree's order).
    pub entries: Vec<usize>,
    /// What it holds, for the image's history.
    pub comment: String,
}

/// Splits `tree` into at most `count` layers (fewer when there are not
/// enough shared files and closures to fill them).
pub fn split(tree: &Tree, commands: &[CommandEntry], count: u32) -> Result<Vec<Layer>> {
    let all: Vec<usize> = (0..tree.entries.len()).collect();
    if count <= 1 {
        return Ok(vec![Layer { entries: all, comment: "the whole tree".to_string() }]);
    }
    let resolver =
        Resolver::new(resolve::Options { sysroot: tree.root.clone(), ..Default::default() })
            .with_context(|| {
                format!("reading the loader configuration of `{}`", tree.root.display())
            })?;
    let inputs: Vec<String> = commands.iter().map(|c| c.path.display().to_string()).collect();
    let closures = resolver.resolve_all(&inputs);
    let graph = Graph::of(&closures);
    let mut claimed = vec![false; tree.entries.len()];
    let mut layers = Vec::new();
    let hard_links = tree.hard_link_groups();
    for group in groups(tree, commands, &closures, &graph) {
        if layers.len() + 1 == count as usize {
            break;
        }
        let entries = claim(tree, &hard_links, &group.paths, &mut claimed);
        if !entries.is_empty() {
            layers.push(Layer { entries: with_parents(tree, entries), comment: group.comment });
        }
    }
    let rest: Vec<usize> =
        all.into_iter().filter(|&i| !claimed[i] || tree.entries[i].kind == Kind::Dir).collect();
    let comment = if layers.is_empty() { "the whole tree" } else { "everything else" };
    layers.push(Layer { entries: rest, comment: comment.to_string() });
    Ok(layers)
}

/// The loading graph of all commands, by real path.
struct Graph {
    /// Real path -> the real paths it loads directly.
    edges: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    /// Real path -> the symlinks crossed to reach it, in any closure.
    links: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

impl Graph {
    fn of(closures: &[Closure]) -> Graph {
        let mut graph = Graph { edges: BTreeMap::new(), links: BTreeMap::new() };
        for closure in closures {
            let mut real: BTreeMap<&Path, &Path> = BTreeMap::new();
            if let Some(located) = &closure.located {
                real.insert(&closure.path, &located.real);
                graph.add_links(&located.real, located.links.iter().map(|l| &l.path));
            }
            for file in &closure.files {
                real.insert(&file.path, &file.located.real);
                graph.add_links(&file.located.real, file.located.links.iter().map(|l| &l.path));
            }
            for node in &closure.nodes {
                let Some(from) = real.get(node.path.as_path()) else { continue };
                let targets = node.edges.iter().filter_map(|e| e.to).filter_map(|to| {
                    closure.nodes.get(to).and_then(|n| real.get(n.path.as_path()))
                });
                let set = graph.edges.entry(from.to_path_buf()).or_default();
                set.extend(targets.map(|t| t.to_path_buf()));
            }
        }
        graph
    }

    fn add_links<'a>(&mut self, real: &Path, links: impl Iterator<Item = &'a PathBuf>) {
        self.links.entry(real.to_path_buf()).or_default().extend(links.cloned());
    }

    /// For each object, how many other objects load it, directly or not.
    fn loaded_by(&self) -> BTreeMap<&Path, usize> {
        let mut counts: BTreeMap<&Path, usize> = BTreeMap::new();
        for start in self.edges.keys() {
            let mut seen: BTreeSet<&Path> = BTreeSet::new();
            let mut stack: Vec<&Path> = vec![start];
            while let Some(at) = stack.pop() {
                for next in self.edges.get(at).into_iter().flatten() {
                    if next != start && seen.insert(next) {
                        stack.push(next);
                    }
                }
            }
            for reached in seen {
                *counts.entry(reached).or_default() += 1;
            }
        }
        counts
    }
}

/// A candidate layer: root paths, and what they are.
struct Group {
    paths: Vec<PathBuf>,
    comment: String,
}

/// Every candidate layer, in the order layers are filled.
fn groups(
    tree: &Tree,
    commands: &[CommandEntry],
    closures: &[Closure],
    graph: &Graph,
) -> Vec<Group> {
    let closure_files: Vec<BTreeSet<&Path>> = closures
        .iter()
        .map(|c| {
            let own = c.located.iter().map(|l| l.real.as_path());
            own.chain(c.files.iter().map(|f| f.located.real.as_path())).collect()
        })
        .collect();
    let mut held_by: BTreeMap<&Path, usize> = BTreeMap::new();
    for files in &closure_files {
        for file in files {
            *held_by.entry(file).or_default() += 1;
        }
    }
    let loaded_by = graph.loaded_by();
    let size = |path: &Path| tree.find(path).map_or(0, |i| Tree::content_size(&tree.entries[i]));
    let mut shared: Vec<(&Path, usize, usize)> = held_by
        .iter()
        .map(|(&path, &held)| (path, held, loaded_by.get(path).copied().unwrap_or(0)))
        .filter(|&(_, held, loaded)| held >= 2 || loaded >= 2)
        .collect();
    shared.sort_by_key(|&(path, held, loaded)| {
        (Reverse(held), Reverse(loaded), Reverse(size(path)), path)
    });
    let with_links = |path: &Path| -> Vec<PathBuf> {
        let links = graph.links.get(path).into_iter().flatten().cloned();
        std::iter::once(path.to_path_buf()).chain(links).collect()
    };
    let mut groups: Vec<Group> = shared
        .iter()
        .map(|&(path, held, _)| Group {
            paths: with_links(path),
            comment: format!("{} (in the closure of {held} commands)", path.display()),
        })
        .collect();
    let is_shared: BTreeSet<&Path> = shared.iter().map(|&(p, _, _)| p).collect();
    let mut own: Vec<(u64, &str, Vec<PathBuf>)> = commands
        .iter()
        .zip(&closure_files)
        .map(|(command, files)| {
            let mine: Vec<&Path> =
                files.iter().copied().filter(|f| !is_shared.contains(f)).collect();
            let bytes = mine.iter().map(|f| size(f)).sum();
            let mut paths: Vec<PathBuf> = mine.iter().flat_map(|f| with_links(f)).collect();
            paths.push(command.path.clone());
            (bytes, command.name.as_str(), paths)
        })
        .collect();
    own.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    groups.extend(own.into_iter().map(|(_, name, paths)| Group {
        paths,
        comment: format!("command `{name}` and what only it loads"),
    }));
    groups
}

/// The entries at `paths` not claimed yet (directories never are, and a
/// file's other hard-linked names come with it); marks them claimed.
fn claim(tree: &Tree, links: &[Vec<usize>], paths: &[PathBuf], claimed: &mut [bool]) -> Vec<usize> {
    let mut out = Vec::new();
    for path in paths {
        let Some(i) = tree.find(path) else { continue };
        if claimed[i] || tree.entries[i].kind == Kind::Dir {
            continue;
        }
        let names = links.iter().find(|g| g.contains(&i)).cloned().unwrap_or_else(|| vec![i]);
        for name in names {
            if !claimed[name] {
                claimed[name] = true;
                out.push(name);
            }
        }
    }
    out
}

/// `entries` and all their parent directories, in the tree's order.
fn with_parents(tree: &Tree, entries: Vec<usize>) -> Vec<usize> {
    let mut all: BTreeSet<usize> = entries.iter().copied().collect();
    for &i in &entries {
        let mut at = tree.entries[i].path.parent();
        while let Some(dir) = at.filter(|d| *d != Path::new("/")) {
            if let Some(j) = tree.find(dir) {
                all.insert(j);
            }
            at = dir.parent();
        }
    }
    all.into_iter().collect()
}
