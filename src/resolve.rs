//! The dependency closure of a program as glibc's dynamic loader computes it, without running anything.
//!
//! This follows `ld.so(8)` and glibc 2.36's `elf/dl-load.c` (`_dl_map_object`)
//! and `elf/dl-deps.c` (`_dl_map_object_deps`):
//! - the kernel maps `PT_INTERP`; a `#!` script runs its interpreter instead
//!   (`execve(2)`), and `/usr/bin/env NAME` runs NAME found on `PATH`;
//! - `DT_NEEDED` entries are loaded breadth-first; a name that an object
//!   already loaded answers to (its request name, path or `DT_SONAME`) is not
//!   searched again, and a file already loaded under another name (same device
//!   and inode) is not loaded twice;
//! - a name without a slash is searched in `DT_RPATH` of the loading object
//!   and of every object up its chain of loaders (only when the loading object
//!   has no `DT_RUNPATH`), then `LD_LIBRARY_PATH` (only when the caller passes
//!   one), then the loading object's own `DT_RUNPATH`, then `ld.so.cache`, then
//!   the trusted directories (the last two skipped under `DF_1_NODEFLIB`);
//! - in each directory the hwcaps subdirectories come first;
//! - a candidate of the wrong ELF class or machine is skipped; one with a
//!   broken header stops the load, as `open_verify` does.
//!
//! A library that cannot be found is data: it is collected with the chain of
//! objects that needed it and the directories searched.
//!
//! Each file is read and parsed once per [`Resolver`], however many programs
//! need it, and programs are resolved in parallel.

mod text;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use anyhow::Result;
use rayon::prelude::*;

pub use self::text::{render_json, render_tree};
use crate::elf::{self, FileKind, Ident, Object};
use crate::ldso::{CacheSource, LoaderConfig};
use crate::sysroot::{Located, Sysroot};

/// `PATH` used to find the program of `#!/usr/bin/env NAME` and commands
/// named without a slash: the default `PATH` of a login shell on Debian.
pub const DEFAULT_PATH: &[&str] =
    &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// `execve(2)` follows at most this many nested `#!` interpreters
/// (`BINPRM_MAX_RECURSION` in the kernel's `fs/exec.c`).
const MAX_SCRIPT_DEPTH: usize = 4;

/// How a resolution is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// The host directory that plays `/`.
    pub sysroot: PathBuf,
    /// Directories searched where the loader searches `LD_LIBRARY_PATH`.
    /// Never taken from the environment.
    pub library_path: Vec<String>,
    /// Where a relative input is taken from, when the sysroot is `/`.
    pub cwd: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sysroot: PathBuf::from("/"),
            library_path: Vec::new(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }
}

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

/// A node of the dependency tree, for display.
#[derive(Clone, Debug)]
pub struct Node {
    pub path: PathBuf,
    pub edges: Vec<Edge>,
    /// The node whose request created this one; it is shown expanded there.
    pub parent: Option<usize>,
}

/// A request from one node: a `DT_NEEDED` name, `interpreter`, `#!` or `env`.
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
    /// Why the input itself cannot be resolved (it does not exist, it is not
    /// a program).
    pub error: Option<String>,
    /// `nodes[0]` is the input.
    pub nodes: Vec<Node>,
    /// Class and machine of the dynamically linked program, if it is one.
    pub ident: Option<Ident>,
}

impl Closure {
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
        self.missing.is_empty() && self.error.is_none()
    }
}

/// A cache filled at most once per key, even when threads race for it.
type Memo<K, V> = RwLock<HashMap<K, Arc<OnceLock<Arc<V>>>>>;

/// A probed path: where it is and what it holds, or why it is not usable.
type Probe = Result<(Located, Arc<FileKind>), String>;

/// Resolves programs inside one sysroot, remembering every file it has read.
pub struct Resolver {
    sysroot: Sysroot,
    options: Options,
    cache: CacheSource,
    notes: Vec<String>,
    /// The loader configuration read (root paths).
    config_files: Vec<PathBuf>,
    configs: Mutex<HashMap<Ident, Arc<LoaderConfig>>>,
    /// Root path as probed -> result; one lookup per path.
    probes: Memo<PathBuf, Probe>,
    /// (device, inode) -> parsed file; one parse per file.
    parsed: Memo<(u64, u64), FileKind>,
    /// How many times a file was opened and parsed.
    reads: AtomicUsize,
}

/// Counters that show the resolver's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Distinct paths looked up.
    pub probes: usize,
    /// Distinct files (device and inode) seen.
    pub files: usize,
    /// Files opened and parsed: equal to `files` when nothing was read twice.
    pub reads: usize,
}

/// One loaded object during a simulation: glibc's `struct link_map`.
struct Map {
    /// Names it answers to (`l_libname`, plus `l_name`).
    names: Vec<String>,
    path: PathBuf,
    /// `$ORIGIN`: the directory the object was found in, as a string
    /// operation on the path (no symlink resolution), except for the main
    /// program, whose origin is the directory of its real path.
    origin: Option<PathBuf>,
    object: Arc<Object>,
    loader: Option<usize>,
    id: (u64, u64),
    node: usize,
}

/// The state of one simulated process.
struct Process<'a> {
    config: Arc<LoaderConfig>,
    ident: Ident,
    maps: Vec<Map>,
    closure: &'a mut Closure,
}

impl Resolver {
    pub fn new(options: Options) -> Result<Resolver> {
        let sysroot = Sysroot::new(&options.sysroot);
        let loaded = CacheSource::load(&sysroot)?;
        Ok(Resolver {
            sysroot,
            options,
            cache: loaded.source,
            notes: loaded.note.into_iter().collect(),
            config_files: loaded.files,
            configs: Mutex::new(HashMap::new()),
            probes: RwLock::new(HashMap::new()),
            parsed: RwLock::new(HashMap::new()),
            reads: AtomicUsize::new(0),
        })
    }

    /// Every directory (a root path) in which the resolver looked for a
    /// file, whether or not it exists, and the loader configuration it read:
    /// a file appearing or changing there could change the answer.
    pub fn consulted_dirs(&self) -> Vec<PathBuf> {
        let probes = self.probes.read().expect("probe cache poisoned");
        let mut dirs: Vec<PathBuf> =
            probes.keys().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
        dirs.extend(DEFAULT_PATH.iter().map(PathBuf::from));
        dirs.extend(self.config_files.iter().cloned());
        dirs.sort();
        dirs.dedup();
        dirs
    }

    pub fn stats(&self) -> Stats {
        Stats {
            probes: self.probes.read().expect("probe cache poisoned").len(),
            files: self.parsed.read().expect("parse cache poisoned").len(),
            reads: self.reads.load(Ordering::Relaxed),
        }
    }

    pub fn sysroot(&self) -> &Sysroot {
        &self.sysroot
    }

    /// Things worth telling the user that are not errors (an unusable cache).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The loader configuration for programs of this class and machine.
    pub fn config(&self, ident: &Ident) -> Arc<LoaderConfig> {
        let mut configs = self.configs.lock().expect("config cache poisoned");
        configs
            .entry(*ident)
            .or_insert_with(|| Arc::new(LoaderConfig::for_target(&self.sysroot, ident)))
            .clone()
    }

    /// Resolves many inputs in parallel; results come in input order.
    pub fn resolve_all<S: AsRef<str> + Sync>(&self, inputs: &[S]) -> Vec<Closure> {
        inputs.par_iter().map(|i| self.resolve(i.as_ref())).collect()
    }

    /// The closure of one input: a path to a program, script or shared object.
    pub fn resolve(&self, input: &str) -> Closure {
        let path = self.input_path(input);
        let mut closure = Closure {
            input: input.to_string(),
            path: path.clone(),
            located: None,
            kind: InputKind::Dynamic,
            files: Vec::new(),
            missing: Vec::new(),
            error: None,
            nodes: vec![Node { path: path.clone(), edges: Vec::new(), parent: None }],
            ident: None,
        };
        match self.probe(&path).as_ref() {
            Err(e) => closure.error = Some(e.clone()),
            Ok((located, kind)) => {
                closure.located = Some(located.clone());
                match kind.as_ref() {
                    FileKind::Elf(object) if object.is_static() => closure.kind = InputKind::Static,
                    FileKind::Elf(object) if !object.dynamic && object.interp.is_none() => {
                        closure.kind = InputKind::NotDynamic
                    }
                    FileKind::Script(_) => closure.kind = InputKind::Script,
                    _ => {}
                }
                if let Err(e) = self.exec(&mut closure, 0, &path, 0) {
                    closure.error = Some(e);
                }
            }
        }
        closure
    }

    /// The closure of a library asked for by soname, searched as a
    /// `DT_NEEDED` entry of a program without RPATH or RUNPATH of class and
    /// machine `ident` would be (which is also how `dlopen(3)` searches from
    /// such a program). The library itself is among `files`.
    pub fn resolve_library(&self, name: &str, ident: Ident) -> Closure {
        let mut closure = Closure {
            input: name.to_string(),
            path: PathBuf::new(),
            located: None,
            kind: InputKind::Dynamic,
            files: Vec::new(),
            missing: Vec::new(),
            error: None,
            nodes: vec![Node { path: PathBuf::from(name), edges: Vec::new(), parent: None }],
            ident: Some(ident),
        };
        let requester =
            Object { ident: Some(ident), needed: vec![name.to_string()], ..Object::default() };
        let mut process =
            Process { config: self.config(&ident), ident, maps: Vec::new(), closure: &mut closure };
        process.maps.push(Map {
            names: Vec::new(),
            path: PathBuf::new(),
            origin: None,
            object: Arc::new(requester),
            loader: None,
            id: (0, 0),
            node: 0,
        });
        self.run_queue(&mut process);
        closure
    }

    /// Resolves the libraries a program or script loads, as `execve(2)` and
    /// the loader would, adding them to `closure` below node `node`.
    fn exec(
        &self,
        closure: &mut Closure,
        node: usize,
        path: &Path,
        depth: usize,
    ) -> Result<(), String> {
        let (located, kind) = self.probe(path).as_ref().clone()?;
        match kind.as_ref() {
            FileKind::Other(why) | FileKind::Unreadable(why) => {
                Err(format!("`{}` is not a program or shared object: {why}", path.display()))
            }
            FileKind::Elf(object) if object.malformed.is_some() => Err(format!(
                "`{}` is a malformed ELF file: {}",
                path.display(),
                object.malformed.as_deref().unwrap_or_default()
            )),
            FileKind::Elf(object) => {
                if object.dynamic || object.interp.is_some() {
                    self.load(closure, node, path, &located, Arc::new(object.clone()));
                }
                Ok(())
            }
            FileKind::Script(shebang) => {
                if depth >= MAX_SCRIPT_DEPTH {
                    return Err(format!(
                        "`{}`: too many levels of `#!` interpreters",
                        path.display()
                    ));
                }
                let interp = PathBuf::from(&shebang.interpreter);
                let interp =
                    if interp.is_absolute() { interp } else { Path::new("/").join(interp) };
                let reason = Reason::Script { of: path.to_path_buf() };
                let Some(child) = self.open_program(closure, node, "#!", &interp, reason) else {
                    closure.missing.push(Missing {
                        name: shebang.interpreter.clone(),
                        chain: vec![path.to_path_buf()],
                        searched: Vec::new(),
                        note: Some("the `#!` interpreter does not exist".to_string()),
                    });
                    return Ok(());
                };
                self.exec(closure, child, &interp, depth + 1)?;
                if is_env(&interp)
                    && let Some(name) = shebang.arg.as_deref().and_then(env_program)
                {
                    match self.find_on_path(name) {
                        Some(found) => {
                            let reason = Reason::Env { of: path.to_path_buf() };
                            if let Some(grandchild) =
                                self.open_program(closure, child, "env", &found, reason)
                            {
                                self.exec(closure, grandchild, &found, depth + 1)?;
                            }
                        }
                        None => closure.missing.push(Missing {
                            name: name.to_string(),
                            chain: vec![path.to_path_buf(), interp.clone()],
                            searched: DEFAULT_PATH.iter().map(PathBuf::from).collect(),
                            note: Some("`env` finds no such program on PATH".to_string()),
                        }),
                    }
                }
                Ok(())
            }
        }
    }

    /// Records a program file opened by the kernel and gives it a node.
    fn open_program(
        &self,
        closure: &mut Closure,
        from: usize,
        label: &str,
        path: &Path,
        reason: Reason,
    ) -> Option<usize> {
        let (located, _) = self.probe(path).as_ref().clone().ok()?;
        let node = closure.nodes.len();
        closure.nodes.push(Node {
            path: path.to_path_buf(),
            edges: Vec::new(),
            parent: Some(from),
        });
        closure.nodes[from].edges.push(Edge { label: label.to_string(), to: Some(node) });
        push_opened(closure, path, located, reason, Via::Kernel);
        Some(node)
    }

    /// Simulates the loader for one dynamically linked program or shared object.
    fn load(
        &self,
        closure: &mut Closure,
        node: usize,
        path: &Path,
        located: &Located,
        object: Arc<Object>,
    ) {
        let Some(ident) = object.ident else { return };
        closure.ident.get_or_insert(ident);
        let config = self.config(&ident);
        let mut process = Process { config, ident, maps: Vec::new(), closure };
        // The main program's $ORIGIN is the directory of its real path, as the
        // kernel reports it through /proc/self/exe (`_dl_get_origin`).
        let origin = located.real.parent().map(Path::to_path_buf);
        let id = (located.dev, located.ino);
        process.maps.push(Map {
            names: Vec::new(),
            path: path.to_path_buf(),
            origin,
            object: object.clone(),
            loader: None,
            id,
            node,
        });
        if let Some(interp) = &object.interp {
            self.map_interpreter(&mut process, interp);
        }
        self.run_queue(&mut process);
    }

    /// Loads the `DT_NEEDED` entries breadth-first, as objects are loaded.
    fn run_queue(&self, process: &mut Process) {
        let mut next = 0;
        while next < process.maps.len() {
            let needed = process.maps[next].object.needed.clone();
            for name in &needed {
                self.map_object(process, next, name);
            }
            next += 1;
        }
    }

    fn map_interpreter(&self, process: &mut Process, interp: &str) {
        let path = PathBuf::from(interp);
        let main_node = process.maps[0].node;
        let of = process.maps[0].path.clone();
        match self.probe(&path).as_ref() {
            Ok((located, kind)) => {
                let FileKind::Elf(object) = kind.as_ref() else {
                    process.closure.missing.push(Missing {
                        name: interp.to_string(),
                        chain: vec![of],
                        searched: Vec::new(),
                        note: Some("the program interpreter is not an ELF file".to_string()),
                    });
                    return;
                };
                let node = process.closure.nodes.len();
                process.closure.nodes.push(Node {
                    path: path.clone(),
                    edges: Vec::new(),
                    parent: Some(main_node),
                });
                process.closure.nodes[main_node]
                    .edges
                    .push(Edge { label: "interpreter".into(), to: Some(node) });
                push_opened(
                    process.closure,
                    &path,
                    located.clone(),
                    Reason::Interpreter { of },
                    Via::Kernel,
                );
                let mut names = vec![interp.to_string()];
                names.extend(object.soname.clone());
                // The kernel mapped the interpreter; it is never queued for
                // dependencies of its own (glibc's ld.so has none).
                process.maps.push(Map {
                    names,
                    path: path.clone(),
                    origin: path.parent().map(Path::to_path_buf),
                    object: Arc::new(Object { needed: Vec::new(), ..object.clone() }),
                    loader: None,
                    id: (located.dev, located.ino),
                    node,
                });
            }
            Err(_) => process.closure.missing.push(Missing {
                name: interp.to_string(),
                chain: vec![of],
                searched: Vec::new(),
                note: Some("the program interpreter (PT_INTERP) does not exist".to_string()),
            }),
        }
    }

    /// `_dl_map_object`: finds `name` for the object `loader`.
    fn map_object(&self, process: &mut Process, loader: usize, name: &str) {
        let from_node = process.maps[loader].node;
        let name = if name.contains('$') {
            match expand_dst(name, process.maps[loader].origin.as_deref(), &process.config) {
                Some(expanded) => expanded,
                None => {
                    self.record_missing(
                        process,
                        loader,
                        name,
                        Vec::new(),
                        Some("$ORIGIN cannot be expanded".into()),
                    );
                    return;
                }
            }
        } else {
            name.to_string()
        };
        if let Some(i) = process
            .maps
            .iter()
            .position(|m| m.names.contains(&name) || m.object.soname.as_deref() == Some(&name))
        {
            if !process.maps[i].names.contains(&name) {
                process.maps[i].names.push(name.clone());
            }
            let to = process.maps[i].node;
            process.closure.nodes[from_node].edges.push(Edge { label: name, to: Some(to) });
            return;
        }
        let mut search =
            Search { searched: Vec::new(), other_class: None, fatal: None, via: Via::Path };
        let found = if name.contains('/') {
            let path = PathBuf::from(&name);
            let path = if path.is_absolute() { path } else { Path::new("/").join(path) };
            search.try_path(self, &process.ident, &path)
        } else {
            self.search(process, loader, &name, &mut search)
        };
        let Some((path, located, object)) = found else {
            let note = search.fatal.or(search.other_class);
            self.record_missing(process, loader, &name, search.searched, note);
            process.closure.nodes[from_node].edges.push(Edge { label: name, to: None });
            return;
        };
        let by = process.maps[loader].path.clone();
        let reason = if by.as_os_str().is_empty() {
            Reason::Requested { name: name.clone() }
        } else {
            Reason::Needed { by, name: name.clone() }
        };
        let id = (located.dev, located.ino);
        push_opened(process.closure, &path, located, reason, search.via);
        // The same file under another name is the same object
        // (`_dl_map_object_from_fd` compares device and inode).
        if let Some(i) = process.maps.iter().position(|m| m.id == id) {
            process.maps[i].names.push(name.clone());
            let to = process.maps[i].node;
            process.closure.nodes[from_node].edges.push(Edge { label: name, to: Some(to) });
            return;
        }
        let node = process.closure.nodes.len();
        process.closure.nodes.push(Node {
            path: path.clone(),
            edges: Vec::new(),
            parent: Some(from_node),
        });
        process.closure.nodes[from_node].edges.push(Edge { label: name.clone(), to: Some(node) });
        process.maps.push(Map {
            names: vec![name],
            origin: path.parent().map(Path::to_path_buf),
            path,
            object,
            loader: Some(loader),
            id,
            node,
        });
    }

    /// The search for a name without a slash, in `ld.so(8)` order.
    fn search(
        &self,
        process: &Process,
        loader: usize,
        name: &str,
        search: &mut Search,
    ) -> Option<(PathBuf, Located, Arc<Object>)> {
        let config = &process.config;
        let maps = &process.maps;
        let ident = &process.ident;
        let loader_map = &maps[loader];
        let dirs_of = |list: &str, map: &Map| expand_path_list(list, map.origin.as_deref(), config);
        if loader_map.object.runpath.is_none() {
            search.via = Via::Rpath;
            let mut visited_main = false;
            let mut at = Some(loader);
            while let Some(i) = at {
                if let Some(rpath) = &maps[i].object.rpath {
                    if let Some(found) =
                        search.try_dirs(self, ident, config, &dirs_of(rpath, &maps[i]), name)
                    {
                        return Some(found);
                    }
                    visited_main |= i == 0;
                }
                at = maps[i].loader;
            }
            if !visited_main
                && let Some(rpath) = &maps[0].object.rpath
                && let Some(found) =
                    search.try_dirs(self, ident, config, &dirs_of(rpath, &maps[0]), name)
            {
                return Some(found);
            }
        }
        if !self.options.library_path.is_empty() {
            search.via = Via::LibraryPath;
            let dirs: Vec<PathBuf> = self
                .options
                .library_path
                .iter()
                .flat_map(|list| list.split(';'))
                // LD_LIBRARY_PATH separates with `;` as well as `:`.
                .flat_map(|list| expand_path_list(list, maps[0].origin.as_deref(), config))
                .collect();
            if let Some(found) = search.try_dirs(self, ident, config, &dirs, name) {
                return Some(found);
            }
        }
        search.via = Via::Runpath;
        if let Some(runpath) = &loader_map.object.runpath
            && let Some(found) =
                search.try_dirs(self, ident, config, &dirs_of(runpath, loader_map), name)
        {
            return Some(found);
        }
        let nodeflib = loader_map.object.nodeflib;
        search.via = Via::Cache;
        match &self.cache {
            CacheSource::Cache(cache) => {
                search.searched.push(PathBuf::from("ld.so.cache"));
                if let Some(path) = cache.lookup(name, config.cache_flags, &config.glibc_hwcaps) {
                    // glibc compares the cached path with each trusted
                    // directory as a prefix, so their subdirectories count.
                    let in_default = config.default_dirs.iter().any(|d| path.starts_with(d));
                    if !(nodeflib && in_default)
                        && let Some(found) = search.try_path(self, ident, path)
                    {
                        return Some(found);
                    }
                    if search.fatal.is_some() {
                        return None;
                    }
                }
            }
            CacheSource::Conf(dirs) => {
                // What ldconfig would have cached: the first file of this
                // name in the listed directories.
                let dirs: Vec<PathBuf> = dirs
                    .iter()
                    .filter(|d| !(nodeflib && config.default_dirs.contains(d)))
                    .cloned()
                    .collect();
                for dir in &dirs {
                    search.searched.push(dir.clone());
                    if let Some(found) = search.try_path(self, ident, &dir.join(name)) {
                        return Some(found);
                    }
                    if search.fatal.is_some() {
                        return None;
                    }
                }
            }
        }
        if !nodeflib {
            search.via = Via::Default;
            return search.try_dirs(self, ident, config, &config.default_dirs, name);
        }
        None
    }

    fn record_missing(
        &self,
        process: &mut Process,
        loader: usize,
        name: &str,
        searched: Vec<PathBuf>,
        note: Option<String>,
    ) {
        let mut chain = Vec::new();
        let mut at = Some(loader);
        while let Some(i) = at {
            chain.push(process.maps[i].path.clone());
            at = process.maps[i].loader;
        }
        chain.reverse();
        process.closure.missing.push(Missing { name: name.to_string(), chain, searched, note });
    }

    /// Finds a program on [`DEFAULT_PATH`], as `execvp(3)` does.
    pub fn find_on_path(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        DEFAULT_PATH.iter().map(|dir| Path::new(dir).join(name)).find(|candidate| {
            self.sysroot.locate(candidate).is_ok_and(|l| {
                !l.is_dir
                    && std::fs::metadata(self.sysroot.host(&l.real))
                        .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
            })
        })
    }

    fn input_path(&self, input: &str) -> PathBuf {
        let path = Path::new(input);
        if path.is_absolute() {
            path.to_path_buf()
        } else if self.sysroot.is_host() {
            self.options.cwd.join(path)
        } else {
            Path::new("/").join(path)
        }
    }

    /// Looks a root path up once, and parses the file behind it once.
    fn probe(&self, path: &Path) -> Arc<Probe> {
        let cell = {
            let probes = self.probes.read().expect("probe cache poisoned");
            probes.get(path).cloned()
        };
        let cell = cell.unwrap_or_else(|| {
            let mut probes = self.probes.write().expect("probe cache poisoned");
            probes.entry(path.to_path_buf()).or_default().clone()
        });
        cell.get_or_init(|| Arc::new(self.probe_uncached(path))).clone()
    }

    fn probe_uncached(&self, path: &Path) -> Probe {
        let located =
            self.sysroot.locate(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
        if located.is_dir {
            // The loader can open a directory, then fails to read it.
            return Ok((
                located,
                Arc::new(FileKind::Other("cannot read file data: Is a directory".to_string())),
            ));
        }
        let cell = {
            let mut parsed = self.parsed.write().expect("parse cache poisoned");
            parsed.entry((located.dev, located.ino)).or_default().clone()
        };
        let host = self.sysroot.host(&located.real);
        let kind = cell
            .get_or_init(|| {
                self.reads.fetch_add(1, Ordering::Relaxed);
                Arc::new(
                    elf::read(&host).unwrap_or_else(|e| FileKind::Unreadable(format!("{e:#}"))),
                )
            })
            .clone();
        Ok((located, kind))
    }
}

/// What one search has seen so far.
struct Search {
    /// The step being searched, which found the file when one is found.
    via: Via,
    searched: Vec<PathBuf>,
    /// A candidate skipped for its ELF class, for the message.
    other_class: Option<String>,
    /// A candidate that stops the loader (`open_verify` calls `lose`).
    fatal: Option<String>,
}

impl Search {
    fn try_dirs(
        &mut self,
        resolver: &Resolver,
        ident: &Ident,
        config: &LoaderConfig,
        dirs: &[PathBuf],
        name: &str,
    ) -> Option<(PathBuf, Located, Arc<Object>)> {
        for dir in dirs {
            self.searched.push(dir.clone());
            for sub in &config.subdirs {
                let candidate =
                    if sub.is_empty() { dir.join(name) } else { dir.join(sub).join(name) };
                if let Some(found) = self.try_path(resolver, ident, &candidate) {
                    return Some(found);
                }
                if self.fatal.is_some() {
                    return None;
                }
            }
        }
        None
    }

    /// `open_verify`: whether the loader would accept this candidate.
    fn try_path(
        &mut self,
        resolver: &Resolver,
        ident: &Ident,
        path: &Path,
    ) -> Option<(PathBuf, Located, Arc<Object>)> {
        let probe = resolver.probe(path);
        let (located, kind) = probe.as_ref().as_ref().ok()?;
        match kind.as_ref() {
            FileKind::Elf(object) => {
                let theirs = object.ident?;
                if theirs.class != ident.class {
                    self.other_class = Some(format!(
                        "skipped `{}`: {}, not {}",
                        path.display(),
                        theirs.describe(),
                        ident.describe()
                    ));
                    None
                } else if theirs.data != ident.data {
                    self.fatal = Some(format!(
                        "`{}`: ELF data encoding differs from the program's",
                        path.display()
                    ));
                    None
                } else if theirs.machine != ident.machine {
                    self.other_class = Some(format!(
                        "skipped `{}`: {}, not {}",
                        path.display(),
                        theirs.describe(),
                        ident.describe()
                    ));
                    None
                } else if let Some(why) = &object.malformed {
                    self.fatal =
                        Some(format!("`{}`: {why} (the loader stops here)", path.display()));
                    None
                } else if !matches!(object.osabi, 0 | 3) {
                    self.fatal = Some(format!(
                        "`{}`: ELF OS ABI {} is not System V or GNU",
                        path.display(),
                        object.osabi
                    ));
                    None
                } else if let Some(why) = unloadable(object) {
                    // `open_verify` and `_dl_map_object_from_fd` in glibc's
                    // elf/dl-load.c.
                    self.fatal =
                        Some(format!("`{}`: {why} (the loader stops here)", path.display()));
                    None
                } else {
                    Some((path.to_path_buf(), located.clone(), Arc::new(object.clone())))
                }
            }
            FileKind::Script(_) => {
                let len =
                    std::fs::metadata(resolver.sysroot.host(&located.real)).map_or(0, |m| m.len());
                self.fatal = Some(format!(
                    "`{}`: {} (the loader stops here)",
                    path.display(),
                    elf::not_elf(len)
                ));
                None
            }
            FileKind::Other(why) => {
                self.fatal = Some(format!("`{}`: {why} (the loader stops here)", path.display()));
                None
            }
            // A file that cannot be opened (EACCES) is passed over by the
            // loader's search, like a missing one.
            FileKind::Unreadable(_) => None,
        }
    }
}

/// Why the loader refuses to load an object as a library, if it does.
fn unloadable(object: &Object) -> Option<&'static str> {
    const ET_EXEC: u16 = 2;
    const ET_DYN: u16 = 3;
    match object.e_type {
        ET_DYN if object.pie => Some("cannot dynamically load position-independent executable"),
        ET_DYN => None,
        ET_EXEC => Some("cannot dynamically load executable"),
        _ => Some("only ET_DYN and ET_EXEC can be loaded"),
    }
}

fn push_opened(closure: &mut Closure, path: &Path, located: Located, reason: Reason, via: Via) {
    if !closure.files.iter().any(|f| f.path == path) {
        closure.files.push(Opened { path: path.to_path_buf(), located, reason, via });
    }
}

fn is_env(interp: &Path) -> bool {
    interp.file_name().is_some_and(|n| n == "env")
}

/// The program `env` runs, from the single argument the kernel passes it:
/// options (`-S` splits the rest), `NAME=value` assignments, then the name.
fn env_program(arg: &str) -> Option<&str> {
    let mut words = arg.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "-S"
            | "--split-string"
            | "-i"
            | "--ignore-environment"
            | "-"
            | "-0"
            | "--null"
            | "-v"
            | "--debug" => {}
            "-u" | "--unset" | "-C" | "--chdir" => {
                words.next();
            }
            w if w.starts_with('-') => {}
            w if w.contains('=') => {}
            w => return Some(w),
        }
    }
    None
}

/// Splits an `RPATH`/`RUNPATH`/`LD_LIBRARY_PATH` list into directories, as
/// `fillin_rpath` in `elf/dl-load.c` does: dynamic string tokens expanded, an
/// element whose `$ORIGIN` is unknown dropped, trailing slashes removed.
/// Empty and relative elements name the process's working directory, which a
/// static resolution cannot know; they are dropped.
pub fn expand_path_list(list: &str, origin: Option<&Path>, config: &LoaderConfig) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for element in list.split(':') {
        let Some(expanded) = expand_dst(element, origin, config) else {
            continue;
        };
        let trimmed = expanded.trim_end_matches('/');
        let dir = if trimmed.is_empty() && expanded.starts_with('/') { "/" } else { trimmed };
        if !dir.starts_with('/') {
            continue;
        }
        let dir = PathBuf::from(dir);
        if !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

/// Expands `$ORIGIN`, `$LIB`, `$PLATFORM` (also in `${...}` form), as
/// `_dl_dst_substitute` does. `None` when `$ORIGIN` is needed but unknown.
pub fn expand_dst(text: &str, origin: Option<&Path>, config: &LoaderConfig) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let mut matched = None;
        for name in ["ORIGIN", "PLATFORM", "LIB"] {
            if let Some(tail) = after
                .strip_prefix('{')
                .and_then(|t| t.strip_prefix(name))
                .and_then(|t| t.strip_prefix('}'))
            {
                matched = Some((name, tail));
                break;
            }
            if let Some(tail) = after.strip_prefix(name)
                && !tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            {
                matched = Some((name, tail));
                break;
            }
        }
        match matched {
            Some((name, tail)) => {
                match name {
                    "ORIGIN" => out.push_str(origin?.to_str()?),
                    "PLATFORM" => out.push_str(&config.platform),
                    _ => out.push_str(&config.lib),
                }
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoaderConfig {
        LoaderConfig {
            default_dirs: vec!["/lib".into()],
            lib: "lib/x86_64-linux-gnu".into(),
            platform: "haswell".into(),
            glibc_hwcaps: Vec::new(),
            subdirs: vec![String::new()],
            cache_flags: 0x303,
        }
    }

    #[test]
    fn dynamic_string_tokens_expand_like_the_loader() {
        let c = config();
        let o = Some(Path::new("/opt/app/bin"));
        assert_eq!(expand_dst("$ORIGIN/../lib", o, &c).unwrap(), "/opt/app/bin/../lib");
        assert_eq!(
            expand_dst("${ORIGIN}/x:/$LIB/$PLATFORM", o, &c).unwrap(),
            "/opt/app/bin/x:/lib/x86_64-linux-gnu/haswell"
        );
        assert_eq!(expand_dst("$ORIGINAL/$LIBS", o, &c).unwrap(), "$ORIGINAL/$LIBS");
        assert_eq!(expand_dst("$ORIGIN", None, &c), None);
        assert_eq!(
            expand_path_list("$ORIGIN/a/::relative:/b/", o, &c),
            [PathBuf::from("/opt/app/bin/a"), PathBuf::from("/b")]
        );
    }

    #[test]
    fn env_arguments_are_skipped_to_the_program() {
        assert_eq!(env_program("python3"), Some("python3"));
        assert_eq!(env_program("-S python3 -u"), Some("python3"));
        assert_eq!(env_program("-i PYTHONPATH=/x perl -w"), Some("perl"));
        assert_eq!(env_program("-u FOO"), None);
    }
}
