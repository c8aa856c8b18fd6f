//! The sysroot's dpkg database: which Debian package (name, version, architecture) owns each file, matched across merged-`/usr` spellings through the sysroot's own symlinks.
//!
//! What is read, all inside the sysroot (`dpkg-query(1)` reads the same):
//! - `/var/lib/dpkg/status`: one paragraph per package with `Package`,
//!   `Status`, `Architecture` and `Version` (`deb-control(5)`); a package
//!   whose state is `not-installed` or `config-files` owns no file;
//! - `/var/lib/dpkg/info/NAME.list`, or `NAME:ARCH.list` for a
//!   `Multi-Arch: same` package: one owned path a line, as the package
//!   shipped it.
//!
//! On a merged-`/usr` system a package built before the merge lists
//! `/lib/x86_64-linux-gnu/libc.so.6` while the file is reached, and copied,
//! at `/usr/lib/x86_64-linux-gnu/libc.so.6`. Each listed path's parent
//! directory is therefore resolved inside the sysroot with [`Sysroot`]
//! (every symlink followed, none leaving the root) and the file's real path
//! is that directory joined with the listed name: the sysroot's own
//! symlinks decide, nothing is hard-coded. Only lines whose file name is
//! one of the names asked about are resolved, so a large database costs
//! little more than reading it.
//!
//! The license a package's `/usr/share/doc/NAME/copyright` states, when it
//! is machine-readable, is in `copyright.rs`.

pub(crate) mod copyright;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rayon::prelude::*;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use crate::build::owner_cache::{self, Answers};
use crate::resolve::sysroot::Sysroot;
use crate::vocab::FileState;

/// Where dpkg keeps the state of every package (a root path).
pub const STATUS: &str = "/var/lib/dpkg/status";
/// Where dpkg keeps the list of paths of each package (a root path).
pub const INFO: &str = "/var/lib/dpkg/info";

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// `amd64`, `i386`, `all`, ...
    pub arch: String,
}

/// The package owning each file (real root paths), one shared value per
/// package: a large tree has tens of thousands of files and a few hundred
/// packages.
pub type Owners = BTreeMap<PathBuf, Arc<Package>>;

/// The installed packages of a sysroot, sorted by name and architecture.
#[derive(Clone, Debug, Default)]
pub struct Database {
    pub packages: Vec<Package>,
}

impl Database {
    /// Reads `/var/lib/dpkg/status` of the sysroot; `None` when there is
    /// none (a sysroot that is not a Debian system).
    pub fn read(sysroot: &Sysroot) -> Result<Option<Database>> {
        let path = sysroot.host(Path::new(STATUS));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("failed to read `{}`", path.display()));
            }
        };
        Ok(Some(Database::parse(&text)))
    }

    /// The packages of a status file's text.
    pub fn parse(text: &str) -> Database {
        let mut packages: Vec<Package> = paragraphs(text)
            .filter(|fields| fields.get("Status").is_some_and(|s| owns_files(s)))
            .filter_map(|fields| {
                Some(Package {
                    name: fields.get("Package")?.to_string(),
                    version: fields.get("Version")?.to_string(),
                    arch: fields.get("Architecture").unwrap_or(&"all").to_string(),
                })
            })
            .collect();
        packages.sort();
        packages.dedup();
        Database { packages }
    }

    /// The package owning each of `wanted` (real root paths of regular
    /// files), matched as the module explains. A path that no package lists
    /// is left out; a path two packages list goes to the first in order.
    pub fn owners(&self, sysroot: &Sysroot, wanted: &BTreeSet<&Path>) -> Owners {
        let lists = read_lists(sysroot, &self.packages);
        scan(&self.packages, &lists, sysroot, wanted)
    }

    /// What a build reads of the database before it knows which paths it
    /// will ask about ([`Listed`]): the answers an earlier build kept in
    /// the owner cache at `cache` when they are for this sysroot and status
    /// file (`owner_cache.rs`), else every package's list; `None` when the
    /// sysroot has no status file.
    pub fn read_listed(sysroot: &Sysroot, cache: Option<&Path>) -> Result<Option<Listed>> {
        // Taken before the bytes are read: a change after that moves the
        // state away from the one a stamp records.
        let status_state = FileState::read(&sysroot.host(Path::new(STATUS)));
        let remembered =
            cache.and_then(|c| owner_cache::read(c, sysroot.root(), status_state.as_ref()));
        if remembered.is_some() {
            let none = (Vec::new(), Vec::new());
            return Ok(Some(Listed { read: none, remembered, status_state }));
        }
        let Some(database) = Database::read(sysroot)? else { return Ok(None) };
        let lists = read_lists(sysroot, &database.packages);
        Ok(Some(Listed { read: (database.packages, lists), remembered: None, status_state }))
    }
}

/// What a build reads of the dpkg database while it plans
/// ([`Database::read_listed`]): the owners an earlier build found, or the
/// installed packages with the bytes of each one's list of paths. Nothing
/// is indexed ahead: the names asked about are a few hundred, the lines
/// over a hundred thousand, so one pass over the lines looking each file
/// name up among the names asked about costs less than indexing every line.
#[derive(Clone, Debug, Default)]
pub struct Listed {
    /// The packages, and each one's list by the index of the package
    /// (`None` for a package with no list); both empty when `remembered`.
    read: (Vec<Package>, Vec<Option<Vec<u8>>>),
    /// The owner cache's answers, valid for this sysroot and status file.
    remembered: Option<Answers>,
    /// The state of the status file, taken before it was read.
    pub status_state: Option<FileState>,
}

impl Listed {
    /// [`Database::owners`], from the answers remembered when they hold
    /// every path of `wanted`, else from the lists (read now if they were
    /// not); with the answers to remember when the lists were read.
    pub fn owners(
        &self,
        sysroot: &Sysroot,
        wanted: &BTreeSet<&Path>,
    ) -> Result<(Owners, Option<Found>)> {
        if let Some(owners) = self.remembered.as_ref().and_then(|r| remembered(r, wanted)) {
            return Ok((owners, None));
        }
        let read_now;
        let (packages, lists) = match &self.remembered {
            None => (&self.read.0, &self.read.1),
            Some(_) => {
                let packages = Database::read(sysroot)?.map(|db| db.packages).unwrap_or_default();
                let lists = read_lists(sysroot, &packages);
                read_now = (packages, lists);
                (&read_now.0, &read_now.1)
            }
        };
        let owners = scan(packages, lists, sysroot, wanted);
        let remember = to_remember(sysroot, self.status_state.clone(), wanted, &owners);
        Ok((owners, Some(remember)))
    }
}

/// The owners of `wanted` among `packages`, whose lists are `lists`.
fn scan(
    packages: &[Package],
    lists: &[Option<Vec<u8>>],
    sysroot: &Sysroot,
    wanted: &BTreeSet<&Path>,
) -> Owners {
    let names: FxHashSet<&[u8]> =
        wanted.iter().filter_map(|p| p.file_name()).map(OsStr::as_encoded_bytes).collect();
    let mut found: Vec<(u32, PathBuf)> = (lists.par_iter().enumerate())
        .filter_map(|(package, list)| Some((package as u32, list.as_deref()?)))
        .flat_map_iter(|(package, list)| named_lines(list, &names).map(move |line| (package, line)))
        .map_init(HashMap::new, |dirs, (package, line)| {
            let real = real_path(sysroot, Path::new(OsStr::from_bytes(line)), dirs);
            real.filter(|r| wanted.contains(r.as_path())).map(|r| (package, r))
        })
        .flatten_iter()
        .collect();
    // A path two packages list goes to the first in order.
    found.par_sort_unstable();
    let shared: Vec<Arc<Package>> = packages.iter().cloned().map(Arc::new).collect();
    let mut owners = BTreeMap::new();
    for (package, path) in found {
        owners.entry(path).or_insert_with(|| Arc::clone(&shared[package as usize]));
    }
    owners
}

/// The owners of `wanted` as an earlier build found them, when it asked
/// about every one of them.
fn remembered(file: &Answers, wanted: &BTreeSet<&Path>) -> Option<Owners> {
    let shared: Vec<Arc<Package>> = file.packages.iter().cloned().map(Arc::new).collect();
    let mut owners = BTreeMap::new();
    for path in wanted {
        if let Some(package) = file.paths.get(*path)? {
            owners.insert(path.to_path_buf(), Arc::clone(shared.get(*package as usize)?));
        }
    }
    Some(owners)
}

/// Owners found in a sysroot's lists, to remember: the sysroot's root and
/// the answers (`owner_cache.rs`).
pub type Found = (PathBuf, Answers);

/// The answers for every path of `wanted`, to remember for the state
/// `status` of the status file.
fn to_remember(
    sysroot: &Sysroot,
    status: Option<FileState>,
    wanted: &BTreeSet<&Path>,
    owners: &Owners,
) -> Found {
    let packages: BTreeSet<&Package> = owners.values().map(|p| &**p).collect();
    let index: HashMap<&Package, u32> =
        packages.iter().enumerate().map(|(i, p)| (*p, i as u32)).collect();
    let paths = wanted
        .iter()
        .map(|path| (path.to_path_buf(), owners.get(*path).map(|p| index[&**p])))
        .collect();
    let packages = packages.into_iter().cloned().collect();
    (sysroot.root().to_path_buf(), Answers { status, packages, paths })
}

/// The lines of a package's list whose file name is one of `names`: the
/// bytes after the line's last slash, read without splitting the path into
/// components, but for a line ending in `/` or `/.` (whose file name is
/// further up).
fn named_lines<'a>(
    list: &'a [u8],
    names: &'a FxHashSet<&[u8]>,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    list.split(|b| *b == b'\n').filter(|line| !line.is_empty()).filter(move |line| {
        let last = match memchr::memrchr(b'/', line) {
            Some(slash) => &line[slash + 1..],
            None => line,
        };
        let name = match last {
            b"" | b"." => Path::new(OsStr::from_bytes(line))
                .file_name()
                .map_or(&b""[..], OsStr::as_encoded_bytes),
            _ => last,
        };
        names.contains(name)
    })
}

/// Every package's list of paths, in the packages' order, on every core.
fn read_lists(sysroot: &Sysroot, packages: &[Package]) -> Vec<Option<Vec<u8>>> {
    packages.par_iter().map(|package| list_of(sysroot, package)).collect()
}

/// The bytes of a package's list of paths, under either of its names.
fn list_of(sysroot: &Sysroot, package: &Package) -> Option<Vec<u8>> {
    let info = sysroot.host(Path::new(INFO));
    [format!("{}:{}.list", package.name, package.arch), format!("{}.list", package.name)]
        .iter()
        .find_map(|name| std::fs::read(info.join(name)).ok())
}

/// Where a listed path really is: its parent directory resolved inside the
/// sysroot (memoised per directory, and in the sysroot's cache of
/// directories), joined with its name.
fn real_path(
    sysroot: &Sysroot,
    listed: &Path,
    dirs: &mut HashMap<PathBuf, Option<PathBuf>>,
) -> Option<PathBuf> {
    let (parent, name) = (listed.parent()?, listed.file_name()?);
    let dir = dirs.entry(parent.to_path_buf()).or_insert_with(|| sysroot.real_dir(parent));
    dir.as_ref().map(|d| d.join(name))
}

/// Whether a package in this `Status` (`want flag state`) has its files on
/// disk.
fn owns_files(status: &str) -> bool {
    !matches!(status.split_whitespace().last(), Some("not-installed" | "config-files") | None)
}

/// The paragraphs of a control file (`deb822(5)`), each as its fields'
/// first lines; continuation lines are left out.
pub(crate) fn paragraphs(text: &str) -> impl Iterator<Item = HashMap<&str, &str>> {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .filter(|l| !l.starts_with([' ', '\t', '#']))
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect::<HashMap<&str, &str>>()
        })
        .filter(|fields| !fields.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn listed_paths_match_their_merged_usr_spelling() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        std::fs::write(root.join("usr/lib/x86_64-linux-gnu/libc.so.6"), b"elf").unwrap();
        std::fs::write(root.join("usr/lib/x86_64-linux-gnu/libz.so.1"), b"elf").unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u7\nDescription: x\n continued: no\n\n\
             Package: zlib1g\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1:1.2.13\n",
        )
        .unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/info/libc6:amd64.list"),
            "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n",
        )
        .unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/info/zlib1g:amd64.list"),
            "/lib/x86_64-linux-gnu/libz.so.1\n",
        )
        .unwrap();
        let sysroot = Sysroot::new(root);
        let db = Database::read(&sysroot).unwrap().unwrap();
        assert_eq!(db.packages.len(), 1, "config-files only: no files");
        let wanted: BTreeSet<&Path> =
            ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libz.so.1"]
                .into_iter()
                .map(Path::new)
                .collect();
        let owners = db.owners(&sysroot, &wanted);
        let libc = &owners[Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")];
        assert_eq!(
            (libc.name.as_str(), libc.version.as_str(), libc.arch.as_str()),
            ("libc6", "2.36-9+deb12u7", "amd64")
        );
        assert_eq!(owners.len(), 1);
    }
}
