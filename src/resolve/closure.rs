//! What a resolution produces: the files opened with the reason and search step of each, the misses, and the tree shown by `deps`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::versions::VersionMiss;
use crate::resolve::elf::{DlopenEntry, DlopenPriority, Ident};
use crate::resolve::sysroot::Located;

/// Why a file is in a closure.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The program interpreter (`PT_INTERP`) of `of`.
    Interpreter { of: PathBuf },
    /// Found for a `DT_NEEDED` entry (or an extra library) `name` of `by`.
    Needed { by: PathBuf, name: String },
    /// The `#!` interpreter of the script `of`.
    Script { of: PathBuf },
    /// The program that `#!/usr/bin/env` in `of` runs.
    Env { of: PathBuf },
    /// Asked for by name, as a library a program will `dlopen`.
    Requested { name: String },
    /// Declared in a `.note.dlopen` note of `by` (one of the entry's
    /// sonames, `name`, the first found), and loaded as `dlopen(3)` from
    /// `by` would load it.
    Dlopen { by: PathBuf, name: String, feature: Option<String>, priority: DlopenPriority },
}

/// Which step of the search found a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    /// Opened by the kernel: a program, a `#!` interpreter, `PT_INTERP`.
    Kernel,
    /// A `DT_NEEDED` name with a slash, opened as a path.
    Path,
    Rpath,
    LibraryPath,
    Runpath,
    /// `/etc/ld.so.cache`, or `/etc/ld.so.conf` when there is no cache.
    Cache,
    /// The trusted default directories.
    Default,
}

/// One file the kernel or the loader opens.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The root path as opened: the loader's `l_name`, which may go through
    /// symlinks and contain `..`.
    pub path: PathBuf,
    pub located: Located,
    pub reason: Reason,
    pub via: Via,
}

/// A name that could not be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub name: String,
    /// The objects from the input down to the one that needed `name`.
    pub chain: Vec<PathBuf>,
    /// The directories searched, in order (`ld.so.cache` stands for the cache).
    pub searched: Vec<PathBuf>,
    /// Why a file that exists was not used, when one was seen.
    pub note: Option<String>,
}

/// What the input turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A dynamically linked program or shared object.
    Dynamic,
    /// A static or static-pie executable: the loader is not involved.
    Static,
    /// A `#!` script.
    Script,
    /// An ELF object with no `PT_DYNAMIC` and no `PT_INTERP` that is not an executable.
    NotDynamic,
}

/// A library declared in a `.note.dlopen` note that is not in the closure,
/// and is not a miss either: it is optional, or below the level asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedDlopen {
    /// The object whose note declares it.
    pub by: PathBuf,
    pub entry: DlopenEntry,
    pub why: Skip,
}

/// Why a declared library was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Its priority is below the level of the options.
    BelowLevel { level: super::DlopenLevel },
    /// Recommended or suggested, and none of its sonames was found.
    NotFound {
        /// The directories searched for every soname, in order.
        searched: Vec<PathBuf>,
        /// Why a file that exists was not used, when one was seen.
        note: Option<String>,
    },
}

/// Why an input cannot be resolved at all. Its text names the path and the
/// cause, for people; the variant is for code that branches.
#[derive(Clone, Debug)]
pub enum InputError {
    /// The path cannot be looked up in the sysroot: it does not exist, or
    /// a symlink on the way loops.
    Lookup { path: PathBuf, source: Arc<std::io::Error> },
    /// Neither ELF nor a `#!` script, or it cannot be read.
    NotAProgram { path: PathBuf, why: String },
    /// An ELF file whose headers cannot be read.
    Malformed { path: PathBuf, why: String },
    /// More nested `#!` interpreters than `execve(2)` follows.
    TooManyInterpreters { path: PathBuf },
    /// A command named without a slash that no directory of `PATH` holds.
    NotOnPath { name: String },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Lookup { path, source } => write!(f, "`{}`: {source}", path.display()),
            InputError::NotAProgram { path, why } => {
                write!(f, "`{}` is not a program or shared object: {why}", path.display())
            }
            InputError::Malformed { path, why } => {
                write!(f, "`{}` is a malformed ELF file: {why}", path.display())
            }
            InputError::TooManyInterpreters { path } => {
                write!(f, "`{}`: too many levels of `#!` interpreters", path.display())
            }
            InputError::NotOnPath { name } => {
                write!(f, "`{name}` not found on PATH {}", super::default_path_var())
            }
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InputError::Lookup { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// A node of the dependency tree, for display.
#[derive(Clone, Debug)]
pub struct Node {
    pub path: PathBuf,
    pub edges: Vec<Edge>,
    /// The node whose request created this one; it is shown expanded there.
    pub parent: Option<usize>,
}

/// A request from one node: a `DT_NEEDED` name, `interpreter`, `#!`, `env`,
/// or `dlopen NAME` for a library declared in a `.note.dlopen` note.
#[derive(Clone, Debug)]
pub struct Edge {
    pub label: String,
    /// The node that answered, or `None` when nothing did.
    pub to: Option<usize>,
}

/// The result for one input.
#[derive(Clone, Debug)]
pub struct Closure {
    /// The input exactly as given.
    pub input: String,
    /// The input as a root path, and where it really is.
    pub path: PathBuf,
    pub located: Option<Located>,
    pub kind: InputKind,
    /// Every file opened for the input (not the input itself), in load order,
    /// each path once.
    pub files: Vec<Opened>,
    pub missing: Vec<Missing>,
    /// Symbol versions needed of a loaded library that it does not
    /// define: the loader refuses to start the program.
    pub version_misses: Vec<VersionMiss>,
    /// Why the input itself cannot be resolved (it does not exist, it is not
    /// a program).
    pub error: Option<InputError>,
    /// `nodes[0]` is the input.
    pub nodes: Vec<Node>,
    /// Class and machine of the dynamically linked program, if it is one.
    pub ident: Option<Ident>,
    /// Libraries declared in `.note.dlopen` notes that were left out, and why.
    pub skipped_dlopen: Vec<SkippedDlopen>,
    /// Problems worth a word that do not stop anything: a `.note.dlopen`
    /// note that cannot be read, with the object it is in.
    pub warnings: Vec<String>,
}

impl Closure {
    /// An empty result for `input`, whose tree has only its root, shown as `root`.
    pub(super) fn new(input: &str, path: PathBuf, root: PathBuf) -> Closure {
        Closure {
            input: input.to_string(),
            path,
            located: None,
            kind: InputKind::Dynamic,
            files: Vec::new(),
            missing: Vec::new(),
            version_misses: Vec::new(),
            error: None,
            nodes: vec![Node { path: root, edges: Vec::new(), parent: None }],
            ident: None,
            skipped_dlopen: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The sorted, de-duplicated root paths of every file opened.
    pub fn file_paths(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = self.files.iter().map(|f| f.path.as_path()).collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// The sorted, de-duplicated names not found.
    pub fn missing_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.missing.iter().map(|m| m.name.as_str()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether everything was found.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.version_misses.is_empty() && self.error.is_none()
    }

    /// Records a file opened, once per path.
    pub(super) fn push_opened(&mut self, path: &Path, located: Located, reason: Reason, via: Via) {
        if !self.files.iter().any(|f| f.path == path) {
            self.files.push(Opened { path: path.to_path_buf(), located, reason, via });
        }
    }

    /// Adds a node for `path` below `from`, reached by a request `label`.
    pub(super) fn add_node(&mut self, from: usize, label: &str, path: &Path) -> usize {
        let node = self.nodes.len();
        self.nodes.push(Node { path: path.to_path_buf(), edges: Vec::new(), parent: Some(from) });
        self.add_edge(from, label, Some(node));
        node
    }

    /// Adds a request from `from`, answered by `to` (or by nothing).
    pub(super) fn add_edge(&mut self, from: usize, label: &str, to: Option<usize>) {
        self.nodes[from].edges.push(Edge { label: label.to_string(), to });
    }
}
