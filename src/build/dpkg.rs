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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rayon::prelude::*;

use crate::resolve::sysroot::Sysroot;
use crate::vocab::FileState;

/// Where dpkg keeps the state of every package (a root path).
pub const STATUS: &str = "/var/lib/dpkg/status";
/// Where dpkg keeps the list of paths of each package (a root path).
pub const INFO: &str = "/var/lib/dpkg/info";

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
        Listed::new(self.packages.clone(), lists, None).owners(sysroot, wanted)
    }

    /// The database with every package's list read ([`Listed`]); `None`
    /// when the sysroot has no status file.
    pub fn read_listed(sysroot: &Sysroot) -> Result<Option<Listed>> {
        // Taken before the bytes are read: a change after that moves the
        // state away from the one a stamp records.
        let status_state = FileState::read(&sysroot.host(Path::new(STATUS)));
        let Some(database) = Database::read(sysroot)? else { return Ok(None) };
        let lists = read_lists(sysroot, &database.packages);
        Ok(Some(Listed::new(database.packages, lists, status_state)))
    }
}

/// The installed packages with the text of each one's list of paths, and
/// every listed line by the hash of its file name ([`Database::read_listed`]):
/// a build reads and sorts them while it plans, on the core planning leaves
/// idle, before it knows which paths it will ask about; then each name
/// asked about is a binary search, not a pass over 127,000 lines.
#[derive(Clone, Debug, Default)]
pub struct Listed {
    packages: Vec<Package>,
    /// By the index of the package; `None` for a package with no list.
    lists: Vec<Option<String>>,
    /// Every line, sorted: its file name's hash, its package's index, and
    /// where it is in that package's list.
    by_name: Vec<Line>,
    /// The state of the status file, taken before it was read.
    pub status_state: Option<FileState>,
}

/// One line of a package's list ([`Listed::by_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    name_hash: u64,
    package: u32,
    start: u32,
    len: u32,
}

impl Listed {
    fn new(packages: Vec<Package>, lists: Vec<Option<String>>, status: Option<FileState>) -> Self {
        let mut by_name: Vec<Line> = lists
            .par_iter()
            .enumerate()
            .flat_map_iter(|(package, text)| lines_of(package, text.as_deref().unwrap_or("")))
            .collect();
        by_name.par_sort_unstable();
        Listed { packages, lists, by_name, status_state: status }
    }

    /// [`Database::owners`], from the lists already read.
    pub fn owners(&self, sysroot: &Sysroot, wanted: &BTreeSet<&Path>) -> Owners {
        let names: BTreeSet<&OsStr> = wanted.iter().filter_map(|p| p.file_name()).collect();
        let mut found: Vec<(u32, PathBuf)> = names
            .into_par_iter()
            .flat_map_iter(|name| {
                let mut dirs = HashMap::new();
                let mut paths = Vec::new();
                for line in self.lines_named(name) {
                    let listed = Path::new(self.text_of(line));
                    if listed.file_name() != Some(name) {
                        continue;
                    }
                    let real = real_path(sysroot, listed, &mut dirs);
                    paths.extend(
                        real.filter(|r| wanted.contains(r.as_path())).map(|r| (line.package, r)),
                    );
                }
                paths
            })
            .collect();
        // A path two packages list goes to the first in order.
        found.par_sort_unstable();
        let shared: Vec<Arc<Package>> = self.packages.iter().cloned().map(Arc::new).collect();
        let mut owners = BTreeMap::new();
        for (package, path) in found {
            owners.entry(path).or_insert_with(|| Arc::clone(&shared[package as usize]));
        }
        owners
    }

    /// The lines whose file name hashes as `name` does.
    fn lines_named(&self, name: &OsStr) -> &[Line] {
        let hash = name_hash(name.as_encoded_bytes());
        let from = self.by_name.partition_point(|l| l.name_hash < hash);
        let to = self.by_name.partition_point(|l| l.name_hash <= hash);
        &self.by_name[from..to]
    }

    fn text_of(&self, line: &Line) -> &str {
        let text = self.lists[line.package as usize].as_deref().unwrap_or("");
        &text[line.start as usize..(line.start + line.len) as usize]
    }
}

/// The lines of package `package`'s list `text`, each by the hash of its
/// file name: the text after its last slash, read without splitting the
/// path into components, but for a line ending in `/` or `/.` (whose file
/// name is further up).
fn lines_of(package: usize, text: &str) -> impl Iterator<Item = Line> + '_ {
    let base = text.as_ptr() as usize;
    text.lines().filter(|line| !line.is_empty()).map(move |line| {
        let last = line.rsplit('/').next().unwrap_or(line);
        let name = match last {
            "" | "." => Path::new(line).file_name().map(OsStr::as_encoded_bytes).unwrap_or(b""),
            _ => last.as_bytes(),
        };
        Line {
            name_hash: name_hash(name),
            package: package as u32,
            start: (line.as_ptr() as usize - base) as u32,
            len: line.len() as u32,
        }
    })
}

/// A hash of a file name that is the same in every run (the lines are
/// sorted by it).
fn name_hash(name: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish()
}

/// Every package's list of paths, in the packages' order, on every core.
fn read_lists(sysroot: &Sysroot, packages: &[Package]) -> Vec<Option<String>> {
    packages.par_iter().map(|package| list_of(sysroot, package)).collect()
}

/// The text of a package's list of paths, under either of its names.
fn list_of(sysroot: &Sysroot, package: &Package) -> Option<String> {
    let info = sysroot.host(Path::new(INFO));
    [format!("{}:{}.list", package.name, package.arch), format!("{}.list", package.name)]
        .iter()
        .find_map(|name| std::fs::read_to_string(info.join(name)).ok())
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
