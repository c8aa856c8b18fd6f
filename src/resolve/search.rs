//! The loader's search for a library: the steps of `ld.so(8)`'s order as data, walked by one loop, and `open_verify`'s checks on each candidate.
//!
//! glibc 2.36's `_dl_map_object` (`elf/dl-load.c`) searches a name without
//! a slash in this order, stopping at the first file it accepts:
//! 1. `DT_RPATH` of the loading object, then of its loader, and so on up to
//!    the main program (skipped when the loading object has `DT_RUNPATH`);
//! 2. `LD_LIBRARY_PATH` (here only what the caller passes);
//! 3. `DT_RUNPATH` of the loading object alone;
//! 4. `ld.so.cache` (`_dl_load_cache_lookup`), unless `DF_1_NODEFLIB`;
//! 5. the trusted directories (`SYSTEM_DIRS`), unless `DF_1_NODEFLIB`.
//!
//! Each directory of steps 1, 2, 3 and 5 is tried with its hwcaps
//! subdirectories first (`open_path`). A candidate that exists but cannot be
//! used either is passed over (another class or machine) or stops the
//! search (`open_verify` calls `lose`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dst::expand_path_list;
use super::{Map, Process, Resolver, Via};
use crate::resolve::elf::{self, FileKind, Ident, Object};
use crate::resolve::ldso::CacheSource;
use crate::resolve::sysroot::Located;

/// The steps of the search for a name without a slash, in `ld.so(8)`'s order.
const ORDER: [Via; 5] = [Via::Rpath, Via::LibraryPath, Via::Runpath, Via::Cache, Via::Default];

/// `open_verify` accepts only these `EI_OSABI` values: System V and GNU.
const OSABI_OK: [u8; 2] = [goblin::elf::header::ELFOSABI_SYSV, goblin::elf::header::ELFOSABI_GNU];

/// Where one step of the search looks.
enum Place {
    /// A directory, tried with the hwcaps subdirectories first (`open_path`).
    Dir(PathBuf),
    /// A directory `ldconfig` would have indexed, for a sysroot without a
    /// cache: what the cache would hold is the file of that name there.
    Indexed(PathBuf),
    /// The cache's answer, when it has one the step may use.
    Cached(Option<PathBuf>),
}

impl Place {
    /// What the miss report lists as searched.
    fn searched(&self) -> PathBuf {
        match self {
            Place::Dir(dir) | Place::Indexed(dir) => dir.clone(),
            Place::Cached(_) => PathBuf::from("ld.so.cache"),
        }
    }

    /// The paths tried, in order.
    fn candidates(&self, name: &str, subdirs: &[String]) -> Vec<PathBuf> {
        match self {
            Place::Dir(dir) => subdirs
                .iter()
                .map(|sub| if sub.is_empty() { dir.join(name) } else { dir.join(sub).join(name) })
                .collect(),
            Place::Indexed(dir) => vec![dir.join(name)],
            Place::Cached(path) => path.iter().cloned().collect(),
        }
    }
}

/// A file the loader accepts.
pub(super) struct Found {
    /// The root path as opened.
    pub path: PathBuf,
    pub located: Located,
    pub object: Arc<Object>,
    /// The step that found it.
    pub via: Via,
}

/// What one search has seen so far, for the report of a miss.
#[derive(Default)]
pub(super) struct Search {
    pub searched: Vec<PathBuf>,
    /// A candidate skipped for its ELF class or machine, for the message.
    pub other_class: Option<String>,
    /// A candidate that stops the loader (`open_verify` calls `lose`).
    pub fatal: Option<String>,
}

impl Search {
    /// Adds what a later search (for another name) saw to what this one
    /// saw; a directory searched again is listed once.
    pub fn absorb(&mut self, later: Search) {
        for dir in later.searched {
            if !self.searched.contains(&dir) {
                self.searched.push(dir);
            }
        }
        self.other_class = self.other_class.take().or(later.other_class);
        self.fatal = self.fatal.take().or(later.fatal);
    }

    /// The directories searched, and why nothing was found when a file that
    /// exists was seen.
    pub fn into_report(self) -> (Vec<PathBuf>, Option<String>) {
        (self.searched, self.fatal.or(self.other_class))
    }
}

impl Resolver {
    /// The search for a name without a slash needed by `process.maps[loader]`.
    pub(super) fn search(
        &self,
        process: &Process,
        loader: usize,
        name: &str,
        search: &mut Search,
    ) -> Option<Found> {
        for step in ORDER {
            for place in self.places(step, process, loader, name) {
                search.searched.push(place.searched());
                for candidate in place.candidates(name, &process.config.subdirs) {
                    if let Some(found) = self.try_path(process.ident, &candidate, step, search) {
                        return Some(found);
                    }
                    if search.fatal.is_some() {
                        return None;
                    }
                }
            }
        }
        None
    }

    /// Where one step of the search looks for `name`, needed by `loader`.
    fn places(&self, step: Via, process: &Process, loader: usize, name: &str) -> Vec<Place> {
        let config = &process.config;
        let maps = &process.maps;
        let loading = &maps[loader].object;
        let dirs_of = |list: &str, map: &Map| expand_path_list(list, map.origin.as_deref(), config);
        // DF_1_NODEFLIB of the loading object skips the cache and the
        // trusted directories.
        let nodeflib = loading.nodeflib;
        let dirs = match step {
            Via::Rpath if loading.runpath.is_none() => {
                let mut lists = Vec::new();
                let mut visited_main = false;
                let mut at = Some(loader);
                while let Some(i) = at {
                    if let Some(rpath) = &maps[i].object.rpath {
                        lists.extend(dirs_of(rpath, &maps[i]));
                        visited_main |= i == 0;
                    }
                    at = maps[i].loader;
                }
                // "If dynamically linked, try the DT_RPATH of the executable
                // itself", when the chain did not reach it.
                if !visited_main && let Some(rpath) = &maps[0].object.rpath {
                    lists.extend(dirs_of(rpath, &maps[0]));
                }
                lists
            }
            // LD_LIBRARY_PATH separates with `;` as well as `:`, and takes
            // `$ORIGIN` from the main program (`_dl_init_paths`).
            Via::LibraryPath => self
                .options
                .library_path
                .iter()
                .flat_map(|list| list.split(';'))
                .flat_map(|list| dirs_of(list, &maps[0]))
                .collect(),
            Via::Runpath => {
                loading.runpath.iter().flat_map(|r| dirs_of(r, &maps[loader])).collect()
            }
            Via::Cache => return self.cache_places(config, name, nodeflib),
            Via::Default if !nodeflib => config.default_dirs.clone(),
            _ => Vec::new(),
        };
        dirs.into_iter().map(Place::Dir).collect()
    }

    /// The cache step: the cached path of `name`, or, without a cache, the
    /// directories `ld.so.conf` lists.
    fn cache_places(
        &self,
        config: &crate::resolve::ldso::LoaderConfig,
        name: &str,
        nodeflib: bool,
    ) -> Vec<Place> {
        let in_default = |path: &Path| config.default_dirs.iter().any(|d| path.starts_with(d));
        match &self.cache {
            // A cache of the other byte order is ignored whole
            // (`cache_file_new_matches_endian` in `elf/dl-cache.c`).
            CacheSource::Cache(cache) if cache.big_endian != Some(!config.cache_big_endian) => {
                let path =
                    cache.lookup(name, |f| config.accepts_cache_flags(f), &config.glibc_hwcaps);
                // glibc compares the cached path with each trusted directory
                // as a prefix, so their subdirectories count as trusted.
                vec![Place::Cached(
                    path.filter(|p| !(nodeflib && in_default(p))).map(Path::to_path_buf),
                )]
            }
            CacheSource::Cache(_) => vec![Place::Cached(None)],
            CacheSource::Conf(dirs) => dirs
                .iter()
                .filter(|d| !(nodeflib && config.default_dirs.contains(d)))
                .map(|d| Place::Indexed(d.clone()))
                .collect(),
        }
    }

    /// `open_verify`: whether the loader would accept the file at `path` for
    /// a program of class and machine `ident`.
    pub(super) fn try_path(
        &self,
        ident: Ident,
        path: &Path,
        via: Via,
        search: &mut Search,
    ) -> Option<Found> {
        let probe = self.probe(path);
        let (located, kind) = probe.as_ref().as_ref().ok()?;
        let object = match kind.as_ref() {
            FileKind::Elf(object) => object,
            FileKind::Script(_) => {
                let len =
                    std::fs::metadata(self.sysroot.host(&located.real)).map_or(0, |m| m.len());
                search.fatal = Some(stops(path, &elf::not_elf(len)));
                return None;
            }
            FileKind::Other(why) => {
                search.fatal = Some(stops(path, why));
                return None;
            }
            // A file that cannot be opened (EACCES) is passed over by the
            // loader's search, like a missing one.
            FileKind::Unreadable(_) => return None,
        };
        // An ELF file too short for its identity is passed over.
        let theirs = object.ident?;
        match verify(object, theirs, ident, path) {
            Ok(()) => Some(Found {
                path: path.to_path_buf(),
                located: located.clone(),
                object: object.clone(),
                via,
            }),
            Err(Rejection::Skip(why)) => {
                search.other_class = Some(why);
                None
            }
            Err(Rejection::Stop(why)) => {
                search.fatal = Some(why);
                None
            }
        }
    }
}

/// Why `open_verify` does not accept an ELF candidate.
enum Rejection {
    /// Passed over: the search goes on (another class or machine).
    Skip(String),
    /// The load fails here (`lose`): the search stops.
    Stop(String),
}

/// The checks of `open_verify` and `_dl_map_object_from_fd` in glibc's
/// `elf/dl-load.c`, in their order.
fn verify(object: &Object, theirs: Ident, ident: Ident, path: &Path) -> Result<(), Rejection> {
    let other = || {
        Rejection::Skip(format!(
            "skipped `{}`: {}, not {}",
            path.display(),
            theirs.describe(),
            ident.describe()
        ))
    };
    if theirs.class != ident.class {
        return Err(other());
    }
    if theirs.data != ident.data {
        return Err(Rejection::Stop(format!(
            "`{}`: ELF data encoding differs from the program's",
            path.display()
        )));
    }
    if theirs.machine != ident.machine {
        return Err(other());
    }
    if let Some(why) = &object.malformed {
        return Err(Rejection::Stop(stops(path, why)));
    }
    if !OSABI_OK.contains(&object.osabi) {
        return Err(Rejection::Stop(format!(
            "`{}`: ELF OS ABI {} is not System V or GNU",
            path.display(),
            object.osabi
        )));
    }
    match unloadable(object) {
        Some(why) => Err(Rejection::Stop(stops(path, why))),
        None => Ok(()),
    }
}

fn stops(path: &Path, why: &str) -> String {
    format!("`{}`: {why} (the loader stops here)", path.display())
}

/// Why the loader refuses to load an object as a library, if it does.
fn unloadable(object: &Object) -> Option<&'static str> {
    use goblin::elf::header::{ET_DYN, ET_EXEC};
    match object.e_type {
        ET_DYN if object.pie => Some("cannot dynamically load position-independent executable"),
        ET_DYN => None,
        ET_EXEC => Some("cannot dynamically load executable"),
        _ => Some("only ET_DYN and ET_EXEC can be loaded"),
    }
}
