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
//!   `search.rs` holds that order;
//! - in each directory the hwcaps subdirectories come first;
//! - a candidate of the wrong ELF class or machine is skipped; one with a
//!   broken header stops the load, as `open_verify` does;
//! - then the libraries each loaded object declares in its `.note.dlopen`
//!   notes (the FDO "ELF dlopen metadata"), down to [`Options::dlopen`], are
//!   loaded as `dlopen(3)` from that object would load them, each with its
//!   own closure (see `dlopen.rs`).
//!
//! A library that cannot be found is data: it is collected with the chain of
//! objects that needed it and the directories searched.
//!
//! Each file is read and parsed once per [`Resolver`], however many programs
//! need it, and programs are resolved in parallel.
//!
//! The result types are in `closure.rs`, the search order in `search.rs`,
//! dynamic string tokens in `dst.rs`, the declared `dlopen` libraries in
//! `dlopen.rs`, and the output of `deps` in `text.rs`.

pub mod arch;
pub mod deps;
pub mod elf;
pub(crate) mod ldcache;
pub(crate) mod ldconf;
pub(crate) mod ldso;
pub mod portability;
pub mod rootpath;
pub mod sysroot;

mod closure;
mod dlopen;
mod dst;
mod search;
mod text;
mod versions;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use anyhow::Result;
use rayon::prelude::*;

pub use self::closure::{
    Closure, Edge, InputError, InputKind, Missing, Node, Opened, Reason, Skip, SkippedDlopen,
    VersionMiss, Via,
};
pub use self::dlopen::{DlopenLevel, UnknownDlopenLevel};
pub use self::dst::{expand_dst, expand_path_list};
pub use self::ldso::LoaderConfig;
use self::search::{Found, Search};
pub use self::text::{render_json, render_tree};
use elf::{FileKind, Ident, Object, Shebang};
use ldso::CacheSource;
use sysroot::{Located, Sysroot};

/// `PATH` used to find the program of `#!/usr/bin/env NAME` and commands
/// named without a slash: the default `PATH` of a login shell on Debian.
pub const DEFAULT_PATH: &[&str] =
    &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// [`DEFAULT_PATH`] as the value of a `PATH` variable, for the environment
/// of commands run in the rootfs and for messages.
pub fn default_path_var() -> String {
    DEFAULT_PATH.join(":")
}

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
    /// Which libraries declared in `.note.dlopen` notes are loaded: those
    /// of this priority and above.
    pub dlopen: DlopenLevel,
    /// Resolve as on a CPU of at most this x86-64 level (the spec's `cpu`),
    /// rather than as on this machine's CPU.
    pub cpu: Option<elf::IsaLevel>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sysroot: PathBuf::from("/"),
            library_path: Vec::new(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            dlopen: DlopenLevel::default(),
            cpu: None,
        }
    }
}

/// A cache filled at most once per key, even when threads race for it.
type Memo<K, V> = RwLock<HashMap<K, Arc<OnceLock<Arc<V>>>>>;

/// A probed path: where it is and what it holds, or why it cannot be
/// looked up.
type Probe = Result<(Located, Arc<FileKind>), Arc<io::Error>>;

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

/// What `_dl_map_object` finds for a name.
enum Mapped {
    /// An object already loaded answers to the name (index into `maps`).
    Loaded(usize),
    /// A file found by the search, not loaded under this name yet.
    New(Found),
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
            .or_insert_with(|| {
                Arc::new(LoaderConfig::for_target(&self.sysroot, ident, self.options.cpu))
            })
            .clone()
    }

    /// Resolves many inputs in parallel; results come in input order.
    pub fn resolve_all<S: AsRef<str> + Sync>(&self, inputs: &[S]) -> Vec<Closure> {
        inputs.par_iter().map(|i| self.resolve(i.as_ref())).collect()
    }

    /// The closure of one input: a path to a program, script or shared
    /// object, or the name of a command, found on [`DEFAULT_PATH`].
    pub fn resolve(&self, input: &str) -> Closure {
        let path = match self.input_path(input) {
            Ok(path) => path,
            Err(e) => {
                let mut closure = Closure::new(input, input.into(), input.into());
                closure.error = Some(e);
                return closure;
            }
        };
        let mut closure = Closure::new(input, path.clone(), path.clone());
        if !input.contains('/') {
            closure.warnings.extend(self.path_note(input));
        }
        match self.probe(&path).as_ref() {
            Err(source) => {
                closure.error = Some(InputError::Lookup { path, source: source.clone() });
            }
            Ok((located, kind)) => {
                closure.located = Some(located.clone());
                closure.kind = input_kind(kind);
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
        let mut closure = Closure::new(name, PathBuf::new(), PathBuf::from(name));
        closure.ident = Some(ident);
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

    /// Finds a program on [`DEFAULT_PATH`], as `execvp(3)` does.
    pub fn find_on_path(&self, name: &str) -> Option<PathBuf> {
        self.all_on_path(name).next()
    }

    /// Every program named `name` on [`DEFAULT_PATH`], in its order.
    fn all_on_path<'a>(&'a self, name: &'a str) -> impl Iterator<Item = PathBuf> + 'a {
        use std::os::unix::fs::PermissionsExt;
        DEFAULT_PATH.iter().map(move |dir| Path::new(dir).join(name)).filter(|candidate| {
            self.sysroot.locate(candidate).is_ok_and(|l| {
                !l.is_dir
                    && std::fs::metadata(self.sysroot.host(&l.real))
                        .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
            })
        })
    }

    /// A one-line note when the program `name` is found in `/usr/local`
    /// while the distribution's folders have one too: a locally built
    /// program often expects files of its own prefix (git's templates in
    /// `/usr/local/share`), and the user may have meant the other.
    pub fn path_note(&self, name: &str) -> Option<String> {
        let mut found = self.all_on_path(name);
        let first = found.next().filter(|p| p.starts_with("/usr/local"))?;
        let other = found.find(|p| !p.starts_with("/usr/local"))?;
        Some(format!(
            "`{name}` is `{}`, first on PATH; `{}` is there too (write its path in `commands` to take that one)",
            first.display(),
            other.display()
        ))
    }

    /// Resolves the libraries a program or script loads, as `execve(2)` and
    /// the loader would, adding them to `closure` below node `node`.
    fn exec(
        &self,
        closure: &mut Closure,
        node: usize,
        path: &Path,
        depth: usize,
    ) -> Result<(), InputError> {
        let (located, kind) = self
            .probe(path)
            .as_ref()
            .clone()
            .map_err(|source| InputError::Lookup { path: path.to_path_buf(), source })?;
        match kind.as_ref() {
            FileKind::Other(why) | FileKind::Unreadable(why) => {
                Err(InputError::NotAProgram { path: path.to_path_buf(), why: why.clone() })
            }
            FileKind::Elf(object) if object.malformed.is_some() => Err(InputError::Malformed {
                path: path.to_path_buf(),
                why: object.malformed.clone().unwrap_or_default(),
            }),
            FileKind::Elf(object) => {
                if object.dynamic || object.interp.is_some() {
                    self.load(closure, node, path, &located, object.clone());
                }
                Ok(())
            }
            FileKind::Script(shebang) => self.exec_script(closure, node, path, shebang, depth),
        }
    }

    /// `binfmt_script`: the interpreter runs instead, with its own closure;
    /// `/usr/bin/env NAME` then runs NAME found on `PATH`.
    fn exec_script(
        &self,
        closure: &mut Closure,
        node: usize,
        path: &Path,
        shebang: &Shebang,
        depth: usize,
    ) -> Result<(), InputError> {
        if depth >= MAX_SCRIPT_DEPTH {
            return Err(InputError::TooManyInterpreters { path: path.to_path_buf() });
        }
        let interp = PathBuf::from(&shebang.interpreter);
        let interp = if interp.is_absolute() { interp } else { Path::new("/").join(interp) };
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
        let Some(name) = shebang.arg.as_deref().and_then(env_program).filter(|_| is_env(&interp))
        else {
            return Ok(());
        };
        match self.find_on_path(name) {
            Some(found) => {
                let reason = Reason::Env { of: path.to_path_buf() };
                if let Some(grandchild) = self.open_program(closure, child, "env", &found, reason) {
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
        Ok(())
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
        let node = closure.add_node(from, label, path);
        closure.push_opened(path, located, reason, Via::Kernel);
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
        versions::check(&mut process);
    }

    /// Loads the `DT_NEEDED` entries breadth-first, as objects are loaded;
    /// then, object by object in load order, the libraries each declares it
    /// may `dlopen`, each followed by the `DT_NEEDED` closure it brings.
    fn run_queue(&self, process: &mut Process) {
        let mut needed = 0;
        let mut declared = 0;
        loop {
            while needed < process.maps.len() {
                let names = process.maps[needed].object.needed.clone();
                for name in &names {
                    self.map_object(process, needed, name);
                }
                needed += 1;
            }
            if declared == process.maps.len() {
                break;
            }
            self.dlopen_declared(process, declared);
            declared += 1;
        }
    }

    fn map_interpreter(&self, process: &mut Process, interp: &str) {
        let path = PathBuf::from(interp);
        let main_node = process.maps[0].node;
        let of = process.maps[0].path.clone();
        let missing = |note: &str| Missing {
            name: interp.to_string(),
            chain: vec![of.clone()],
            searched: Vec::new(),
            note: Some(note.to_string()),
        };
        let probe = self.probe(&path);
        let Ok((located, kind)) = probe.as_ref() else {
            let miss = missing("the program interpreter (PT_INTERP) does not exist");
            process.closure.missing.push(miss);
            return;
        };
        let FileKind::Elf(object) = kind.as_ref() else {
            let miss = missing("the program interpreter is not an ELF file");
            process.closure.missing.push(miss);
            return;
        };
        let node = process.closure.add_node(main_node, "interpreter", &path);
        let reason = Reason::Interpreter { of: of.clone() };
        process.closure.push_opened(&path, located.clone(), reason, Via::Kernel);
        let mut names = vec![interp.to_string()];
        names.extend(object.soname.clone());
        // The kernel mapped the interpreter; it is never queued for
        // dependencies of its own (glibc's ld.so has none).
        process.maps.push(Map {
            names,
            path: path.clone(),
            origin: path.parent().map(Path::to_path_buf),
            object: Arc::new(Object { needed: Vec::new(), ..(**object).clone() }),
            loader: None,
            id: (located.dev, located.ino),
            node,
        });
    }

    /// `_dl_map_object` for a `DT_NEEDED` entry `name` of the object `loader`.
    fn map_object(&self, process: &mut Process, loader: usize, name: &str) {
        let Some(name) = expand_name(process, loader, name) else {
            let note = Some("$ORIGIN cannot be expanded".to_string());
            self.record_missing(process, loader, name, Vec::new(), note);
            return;
        };
        let mut search = Search::default();
        let from = process.maps[loader].node;
        match self.find(process, loader, &name, &mut search) {
            Some(mapped) => {
                let by = process.maps[loader].path.clone();
                let reason = if by.as_os_str().is_empty() {
                    Reason::Requested { name: name.clone() }
                } else {
                    Reason::Needed { by, name: name.clone() }
                };
                self.attach(process, loader, &name, &name, mapped, reason);
            }
            None => {
                let (searched, note) = search.into_report();
                self.record_missing(process, loader, &name, searched, note);
                process.closure.add_edge(from, &name, None);
            }
        }
    }

    /// What `_dl_map_object` finds for `name` (already expanded): an object
    /// loaded that answers to it, a path when the name has a slash, or the
    /// result of the search.
    fn find(
        &self,
        process: &Process,
        loader: usize,
        name: &str,
        search: &mut Search,
    ) -> Option<Mapped> {
        if let Some(i) = process.maps.iter().position(|m| {
            m.names.iter().any(|n| n == name) || m.object.soname.as_deref() == Some(name)
        }) {
            return Some(Mapped::Loaded(i));
        }
        let found = if name.contains('/') {
            let path = PathBuf::from(name);
            let path = if path.is_absolute() { path } else { Path::new("/").join(path) };
            self.try_path(process.ident, &path, Via::Path, search)
        } else {
            self.search(process, loader, name, search)
        };
        found.map(Mapped::New)
    }

    /// Loads what [`find`](Self::find) found for `name` as a dependency of
    /// `loader`, with its node in the tree, reached by a request `label`.
    fn attach(
        &self,
        process: &mut Process,
        loader: usize,
        name: &str,
        label: &str,
        mapped: Mapped,
        reason: Reason,
    ) {
        let from = process.maps[loader].node;
        let found = match mapped {
            Mapped::Loaded(i) => {
                if !process.maps[i].names.iter().any(|n| n == name) {
                    process.maps[i].names.push(name.to_string());
                }
                process.closure.add_edge(from, label, Some(process.maps[i].node));
                return;
            }
            Mapped::New(found) => found,
        };
        let id = (found.located.dev, found.located.ino);
        process.closure.push_opened(&found.path, found.located, reason, found.via);
        // The same file under another name is the same object
        // (`_dl_map_object_from_fd` compares device and inode).
        if let Some(i) = process.maps.iter().position(|m| m.id == id) {
            process.maps[i].names.push(name.to_string());
            process.closure.add_edge(from, label, Some(process.maps[i].node));
            return;
        }
        let node = process.closure.add_node(from, label, &found.path);
        process.maps.push(Map {
            names: vec![name.to_string()],
            origin: found.path.parent().map(Path::to_path_buf),
            path: found.path,
            object: found.object,
            loader: Some(loader),
            id,
            node,
        });
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

    /// The root path of an input. A name without a slash is a command, found
    /// on `PATH` as `execvp(3)` (and `which`) would find it, like the
    /// commands of a spec; another relative path is taken from the working
    /// directory, or from `/` inside a sysroot.
    fn input_path(&self, input: &str) -> Result<PathBuf, InputError> {
        let path = Path::new(input);
        if !input.contains('/') {
            self.find_on_path(input)
                .ok_or_else(|| InputError::NotOnPath { name: input.to_string() })
        } else if path.is_absolute() {
            Ok(path.to_path_buf())
        } else if self.sysroot.is_host() {
            Ok(self.options.cwd.join(path))
        } else {
            Ok(Path::new("/").join(path))
        }
    }

    /// Looks a root path up once, and parses the file behind it once.
    /// The ELF object at a host path, parsed once per file whether the
    /// resolver met it through a search or is asked here; `None` for
    /// anything that is not a readable ELF file.
    pub fn object_at_host(&self, host: &Path) -> Option<Arc<Object>> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(host).ok().filter(std::fs::Metadata::is_file)?;
        let cell = {
            let mut parsed = self.parsed.write().expect("parse cache poisoned");
            parsed.entry((meta.dev(), meta.ino())).or_default().clone()
        };
        let kind = cell.get_or_init(|| {
            self.reads.fetch_add(1, Ordering::Relaxed);
            Arc::new(elf::read(host).unwrap_or_else(|e| FileKind::Unreadable(format!("{e:#}"))))
        });
        match kind.as_ref() {
            FileKind::Elf(object) => Some(object.clone()),
            _ => None,
        }
    }

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
        let located = self.sysroot.locate(path).map_err(Arc::new)?;
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

/// A requested name with its dynamic string tokens expanded from the
/// object `loader`; `None` when `$ORIGIN` is needed but unknown.
fn expand_name(process: &Process, loader: usize, name: &str) -> Option<String> {
    if !name.contains('$') {
        return Some(name.to_string());
    }
    expand_dst(name, process.maps[loader].origin.as_deref(), &process.config)
}

/// What an input is, from what its file holds.
fn input_kind(kind: &FileKind) -> InputKind {
    match kind {
        FileKind::Elf(object) if object.is_static() => InputKind::Static,
        FileKind::Elf(object) if !object.dynamic && object.interp.is_none() => {
            InputKind::NotDynamic
        }
        FileKind::Script(_) => InputKind::Script,
        _ => InputKind::Dynamic,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_arguments_are_skipped_to_the_program() {
        assert_eq!(env_program("python3"), Some("python3"));
        assert_eq!(env_program("-S python3 -u"), Some("python3"));
        assert_eq!(env_program("-i PYTHONPATH=/x perl -w"), Some("perl"));
        assert_eq!(env_program("-u FOO"), None);
    }

    #[test]
    fn the_path_variable_lists_the_default_path() {
        assert_eq!(
            default_path_var(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        );
    }
}
