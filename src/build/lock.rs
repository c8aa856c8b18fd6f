//! The lock file `<spec-stem>.lock` beside the top spec: every input a build read, recorded so that the same tree can be asked for on another machine, and its differences from the inputs of now.
//!
//! A lock has one of two forms, chosen by the sysroot.
//!
//! **A host lock** (a directory or image sysroot) pins files, because
//! nothing else says what the host holds. All sorted, in TOML:
//! - `name`, and `image`: the digest of the image the sysroot was unpacked
//!   from, when it was one (`--sysroot oci:DIR` or `tar:FILE`);
//! - `[commands.NAME]`: the program found on `PATH`, then `opens`, the files
//!   the kernel and the loader open for it, in the order they are loaded;
//! - `[files."PATH"]`: every file copied from the sysroot outside the
//!   `[[trees]]`, by its path in the sysroot (which is its path in the
//!   tree), with sha256, size, mode,
//!   and the Debian package, version and architecture that own it when the
//!   sysroot's dpkg database says so (`build/dpkg.rs`);
//! - `[links."PATH"]`: every symlink of the sysroot the tree mirrors;
//! - `[spec_files."PATH"]`: every host file a `[[files]]` entry copies, by
//!   its path in the tree;
//! - `[trees."PATH"]`: each `[[trees]]` root (its folder in the tree) with
//!   a digest of its listing: paths, types, modes, content digests. Its
//!   files are pinned by that digest alone, so the lock stays reviewable;
//!   when it changes, the file-by-file detail comes from the tree in place
//!   (built from the lock), in the error.
//!
//! **A package lock** (a package sysroot, `[sysroot.debian]` or `--sysroot
//! debian:...`) pins packages, not files: the tree follows from the
//! package set, the spec (committed beside the lock) and this tool's
//! version, so listing each file again would only restate the packages. It
//! holds `name` and:
//! - `[debian]`: what was asked (suites, architecture, components, and the
//!   packages of `packages` and `debian_packages`, sorted),
//!   `[debian.releases.SUITE]` the SHA256 and `Date` of each suite's
//!   `InRelease` the set was resolved from, and `[debian.packages.NAME]`
//!   each package's version, architecture, suite, `Filename`, `SHA256` and
//!   size. No mirror is recorded: each machine fetches the same files from
//!   its own;
//! - the host inputs, each marked `input = "host"`: `[spec_files."PATH"]`
//!   for a `[[files]]` entry whose `src` is a host file (a relative `src`;
//!   an absolute one is a file of the packages), and `[trees."PATH"]` for a
//!   tree read from a host folder.
//!
//! Nothing is recorded per file of the sysroot: no `[commands]`, `[files]`
//! or `[links]`, and no `[trees]` of the packages' folders.
//!
//! **What `--locked` compares** is the whole lock of now against the one on
//! disk, so it refuses any difference of what the form records: for a
//! package lock, the request (suites, architecture, components), each
//! package asked for (added or removed, by name), each suite's `InRelease`,
//! each package's version and `.deb` digest, and each host input's digest
//! and mode. The package set is checked before anything is fetched
//! (`build/debian/package_set.rs`), and each locked `.deb` is the one whose
//! SHA256 the lock pins (a download is checked against it; the cache keeps
//! a file under its SHA256 only once verified). What a
//! package lock does not compare is what follows from those pins: a change
//! of the spec that asks for no other package (a command of a package
//! already in the set) changes the tree with the same lock (the spec is
//! reviewed with the lock, as `Cargo.toml` with `Cargo.lock`), and so may another
//! version of this tool (which reproduces more of the maintainer scripts,
//! say); a build says so through the stamp, never through the lock.
//!
//! Neither form records a host path, the machine's name, the output
//! folder or a time: two copies of one sysroot at two places give the same
//! bytes. Digests come from the digest cache while a file's state is the
//! one recorded there, so only changed files are read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::build::digest_cache::Digests;
use crate::build::dpkg::{Database, Listed, Package};
use crate::build::output::{self, Found};
use crate::build::plan::{EntryKind, Plan};
use crate::fsutil;
use crate::resolve::sysroot::Sysroot;
use crate::vocab::{FileState, Mode, Sha256};

/// Bumped when the format changes incompatibly.
pub const FORMAT: u32 = 1;

const HEADER: &str = "# The inputs of this spec's rootfs, written by `cargo xtask rootfs build`.\n\
# Commit it: `build --locked` refuses to build when the inputs differ from it.\n";

/// Where the lock of the spec file `spec` lives: beside it, `default.toml`
/// giving `default.lock`.
pub fn path_for(spec: &Path) -> PathBuf {
    spec.with_extension("lock")
}

/// The whole lock file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub format: u32,
    /// The spec's name.
    pub name: String,
    /// The digest of the image the sysroot was unpacked from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub commands: BTreeMap<String, Command>,
    #[serde(default)]
    pub files: BTreeMap<PathBuf, File>,
    #[serde(default)]
    pub links: BTreeMap<PathBuf, Link>,
    #[serde(default)]
    pub spec_files: BTreeMap<PathBuf, File>,
    /// `[[trees]]` roots, by their path in the tree.
    #[serde(default)]
    pub trees: BTreeMap<PathBuf, Tree>,
    /// The package set of a package sysroot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<PackageSet>,
    /// A multi-architecture spec's package sets, by Debian architecture
    /// (`[architectures.arm64]`), in place of `debian`: each tree's build
    /// reads its own as the lock's `debian` ([`Lock::part`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub architectures: BTreeMap<String, PackageSet>,
}

/// `[debian]`: a package sysroot's resolved package set, what it was
/// resolved for, and from which signed indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSet {
    pub architecture: String,
    /// The main suite first, then the extra suites.
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// The packages the spec named, sorted.
    pub requested: Vec<String>,
    /// By suite name.
    #[serde(default)]
    pub releases: BTreeMap<String, LockedRelease>,
    /// By package name.
    #[serde(default)]
    pub packages: BTreeMap<String, LockedPackage>,
}

/// The `InRelease` a suite's packages were resolved from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedRelease {
    pub sha256: Sha256,
    pub date: String,
    /// The distribution as a purl's `distro` names it (`debian-12`), from
    /// the `InRelease`'s `Origin` and `Version` (see
    /// `Release::distro` in `build/debian/release.rs`): the SBOM's purls carry
    /// it. Absent in locks written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
}

/// One package of the set, as its index entry named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    pub version: String,
    pub architecture: String,
    /// The suite whose index listed it.
    pub suite: String,
    pub filename: String,
    pub sha256: Sha256,
    pub size: u64,
}

/// A command's closure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Its path in the sysroot, as found on `PATH` or as given.
    pub program: PathBuf,
    /// The files opened for it, as the loader names them, in load order.
    pub opens: Vec<PathBuf>,
}

/// A file read from the sysroot or named by the spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub sha256: Sha256,
    pub size: u64,
    /// Permission bits of the file read, written as `"0755"`.
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// `"host"` in a package lock: the one kind of input that does not
    /// follow from the package set (a relative `[[files]]` `src`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub target: PathBuf,
}

/// A `[[trees]]` listing: each path relative to the tree's root, sorted,
/// with its line (type, mode, and content digest or link target).
pub type Listing = BTreeMap<PathBuf, String>;

/// One line of a tree's listing: the one format the lock's digest and the
/// per-file detail of a changed tree are both made from.
fn listing_line(rel: &Path, kind: &str, mode: &str, what: &str) -> String {
    let rel = rel.display();
    if what.is_empty() {
        format!("{rel}\t{kind}\t{mode}")
    } else {
        format!("{rel}\t{kind}\t{mode}\t{what}")
    }
}

/// The listing of each `[[trees]]` root, as the plan would write it.
fn tree_listings(plan: &Plan, facts: &Facts) -> BTreeMap<PathBuf, Listing> {
    let mut trees = BTreeMap::new();
    for (root, paths) in &plan.trees {
        let mut listing = Listing::new();
        for path in paths {
            let Some(entry) = plan.entries.get(path) else { continue };
            let rel = path.strip_prefix(root).unwrap_or(path);
            let line = match &entry.kind {
                EntryKind::Dir { mode } => {
                    listing_line(rel, "dir", &Mode::of_st_mode(*mode).to_string(), "")
                }
                EntryKind::File { host, mode, .. } => {
                    let sha256 =
                        facts.get(host.as_path()).map(|(_, d)| d.to_string()).unwrap_or_default();
                    listing_line(rel, "file", &Mode::of_st_mode(*mode).to_string(), &sha256)
                }
                EntryKind::Data { bytes, mode } => {
                    let sha256 = Sha256::of(bytes).to_string();
                    listing_line(rel, "file", &Mode::of_st_mode(*mode).to_string(), &sha256)
                }
                EntryKind::Symlink { target, .. } => {
                    listing_line(rel, "symlink", "", &target.display().to_string())
                }
            };
            listing.insert(rel.to_path_buf(), line);
        }
        trees.insert(root.clone(), listing);
    }
    trees
}

/// The digest that pins a tree: sha256 of its lines, in order, each ended
/// by a newline.
fn listing_digest(listing: &Listing) -> Sha256 {
    let mut text = String::new();
    for line in listing.values() {
        text.push_str(line);
        text.push('\n');
    }
    Sha256::of(text.as_bytes())
}

/// The listing of the tree under `root` as a manifest describes it: what
/// a build wrote there, to compare with what it would write now.
pub fn listing_in_manifest(manifest: &crate::build::manifest::Manifest, root: &Path) -> Listing {
    use crate::vocab::EntryType;
    let mut listing = Listing::new();
    for entry in &manifest.entries {
        // The root folder itself is not part of a tree's listing.
        let Some(rel) = entry.path.strip_prefix(root).ok().filter(|r| !r.as_os_str().is_empty())
        else {
            continue;
        };
        let line = match entry.kind {
            EntryType::Dir => listing_line(rel, "dir", &entry.mode.to_string(), ""),
            EntryType::File => {
                let sha256 = entry.sha256.map(|d| d.to_string()).unwrap_or_default();
                listing_line(rel, "file", &entry.mode.to_string(), &sha256)
            }
            EntryType::Symlink => {
                let target = entry.target.as_deref().unwrap_or(Path::new(""));
                listing_line(rel, "symlink", "", &target.display().to_string())
            }
        };
        listing.insert(rel.to_path_buf(), line);
    }
    listing
}

/// What differs between two listings of one tree, a line per path: `new`,
/// `gone`, or `changed` with the two lines' last fields.
pub fn listing_changes(was: &Listing, now: &Listing) -> Vec<String> {
    let paths: BTreeSet<&PathBuf> = was.keys().chain(now.keys()).collect();
    let last = |line: &str| line.rsplit('\t').next().unwrap_or("").to_string();
    paths
        .into_iter()
        .filter_map(|path| match (was.get(path), now.get(path)) {
            (None, Some(_)) => Some(format!("new: {}", path.display())),
            (Some(_), None) => Some(format!("gone: {}", path.display())),
            (Some(a), Some(b)) if a != b => Some(format!(
                "changed: {} (was {}, now {})",
                path.display(),
                short(&last(a)),
                short(&last(b))
            )),
            _ => None,
        })
        .collect()
}

/// A `[[trees]]` root: the sha256 of its sorted listing (paths, types,
/// modes, digests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub digest: Sha256,
    /// `"host"` in a package lock: a tree read from a host folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// How a lock marks, in a package lock, what is read from the host.
pub const HOST_INPUT: &str = "host";

/// What a package lock writes: its tables only when they hold something
/// (a host lock keeps every table, as it always has).
#[derive(Serialize)]
struct PackageLockText<'a> {
    format: u32,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: &'a Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    spec_files: &'a BTreeMap<PathBuf, File>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    trees: &'a BTreeMap<PathBuf, Tree>,
    debian: &'a PackageSet,
}

/// What a multi-architecture package lock writes: the host inputs once,
/// then one package set per architecture.
#[derive(Serialize)]
struct MultiLockText<'a> {
    format: u32,
    name: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    spec_files: &'a BTreeMap<PathBuf, File>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    trees: &'a BTreeMap<PathBuf, Tree>,
    architectures: &'a BTreeMap<String, PackageSet>,
}

impl Lock {
    /// The lock one architecture's tree of a multi-architecture spec is
    /// built against: this lock with that architecture's package set as
    /// its `debian` (none when the lock has none for it).
    pub fn part(&self, arch: &str) -> Lock {
        Lock {
            debian: self.architectures.get(arch).cloned(),
            architectures: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// The one lock of a multi-architecture spec, from each tree's
    /// ([`Lock::part`] undone): the host inputs of the first (they are
    /// read from the same host for every tree), every package set.
    pub fn merge_parts(parts: Vec<(String, Lock)>) -> Option<Lock> {
        let mut sets = BTreeMap::new();
        let mut first = None;
        for (arch, mut lock) in parts {
            if let Some(set) = lock.debian.take() {
                sets.insert(arch, set);
            }
            first.get_or_insert(lock);
        }
        first.map(|lock| Lock { architectures: sets, ..lock })
    }

    /// The text written to disk.
    pub fn render(&self) -> Result<String> {
        if !self.architectures.is_empty() {
            let body = toml::to_string_pretty(&MultiLockText {
                format: self.format,
                name: &self.name,
                spec_files: &self.spec_files,
                trees: &self.trees,
                architectures: &self.architectures,
            })
            .context("writing the lock as TOML")?;
            return Ok(format!("{HEADER}{body}"));
        }
        let body = match &self.debian {
            Some(debian) if self.pins_packages() => toml::to_string_pretty(&PackageLockText {
                format: self.format,
                name: &self.name,
                image: &self.image,
                spec_files: &self.spec_files,
                trees: &self.trees,
                debian,
            }),
            _ => toml::to_string_pretty(self),
        }
        .context("writing the lock as TOML")?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Whether this is a package lock: a package set, and nothing per
    /// file of the sysroot.
    pub fn pins_packages(&self) -> bool {
        self.debian.is_some()
            && self.commands.is_empty()
            && self.files.is_empty()
            && self.links.is_empty()
    }

    pub fn parse(bytes: &[u8]) -> Result<Lock> {
        let text = std::str::from_utf8(bytes).context("the lock is not UTF-8")?;
        let lock: Lock = toml::from_str(text)?;
        anyhow::ensure!(lock.format == FORMAT, "lock format {} is not {FORMAT}", lock.format);
        Ok(lock)
    }
}

/// Whether `bytes` are a lock file of this tool.
pub fn recognise(bytes: &[u8]) -> bool {
    Lock::parse(bytes).is_ok()
}

/// A lock as found on disk.
#[derive(Clone, Debug)]
pub struct OnDisk {
    pub lock: Lock,
    /// sha256 of the file's bytes.
    pub sha256: Sha256,
    /// The file's state, taken before its bytes were read: a change after
    /// that moves the state away from the one a stamp records.
    pub state: Option<crate::vocab::FileState>,
}

/// The lock at `path`: `None` when there is none; an [`Refusal`](crate::build::Refusal) when the
/// file there is not a lock of this tool (the lock lives in the user's
/// repository, so nothing else is ever replaced).
pub fn read(path: &Path) -> Result<Option<OnDisk>> {
    read_part(path, None)
}

/// A lock file's bytes as read, not yet parsed: a build reads them while
/// it plans, and parses them only when they differ from the lock it
/// computed ([`Unparsed::recognise`]), since the lock of every host
/// program is 400 KB of TOML, and most builds leave it as it was.
#[derive(Debug)]
pub struct Unparsed {
    path: PathBuf,
    bytes: Vec<u8>,
    /// The file's state, taken before its bytes were read.
    state: Option<crate::vocab::FileState>,
    /// The architecture whose part is wanted ([`read_part`]).
    part: Option<String>,
}

/// The bytes of the lock at `path`: `None` when there is none; a
/// [`Refusal`](crate::build::Refusal) when something other than a file is
/// there (the bytes themselves are recognised later). `part`: as for
/// [`read_part`].
pub fn read_unparsed(path: &Path, part: Option<&str>) -> Result<Option<Unparsed>> {
    // The state is taken before the bytes are read (see `OnDisk::state`);
    // the bytes that recognise the lock are the ones parsed and hashed.
    let state = crate::vocab::FileState::read(path);
    let mut read = None;
    let found = output::check_file(path, "a lock file", |bytes| {
        read = Some(bytes.to_vec());
        true
    })?;
    Ok(match (found, read) {
        (Found::Ours, Some(bytes)) => {
            let part = part.map(str::to_string);
            Some(Unparsed { path: path.to_path_buf(), bytes, state, part })
        }
        _ => None,
    })
}

impl Unparsed {
    /// The lock these bytes hold: `computed` itself when they are its text
    /// `rendered` (the same bytes are the same lock), else parsed. A part
    /// of a multi-architecture lock is always parsed.
    pub fn recognise(self, computed: &Lock, rendered: &str) -> Result<OnDisk> {
        if self.part.is_some() || self.bytes != rendered.as_bytes() {
            return self.parse();
        }
        let sha256 = Sha256::of(&self.bytes);
        Ok(OnDisk { lock: computed.clone(), sha256, state: self.state })
    }

    /// The lock these bytes hold; a refusal saying where and why they do
    /// not parse (a lock is edited and merged by people).
    pub fn parse(self) -> Result<OnDisk> {
        match (Lock::parse(&self.bytes), self.part) {
            (Ok(lock), None) => {
                Ok(OnDisk { lock, sha256: Sha256::of(&self.bytes), state: self.state })
            }
            (Ok(whole), Some(arch)) => {
                let lock = whole.part(&arch);
                let sha256 = Sha256::of(lock.render()?.as_bytes());
                // The file's state: unchanged, so is every part of it.
                Ok(OnDisk { lock, sha256, state: self.state })
            }
            (Err(why), _) => {
                let mut refusal = output::not_ours(&self.path, "a lock file");
                let why = format!("{why:#}");
                refusal.why = format!(
                    "{}; fix it, or remove it and build again to write a new one:\n{}",
                    refusal.why,
                    why.trim_end()
                );
                Err(refusal.into())
            }
        }
    }
}

/// The lock at `path` as the tree of `part` (an architecture of a
/// multi-architecture spec) sees it ([`Lock::part`]), its `sha256` that of
/// that part rendered; without `part`, [`read`].
pub fn read_part(path: &Path, part: Option<&str>) -> Result<Option<OnDisk>> {
    read_unparsed(path, part)?.map(Unparsed::parse).transpose()
}

/// Why a build the stamp calls fresh must still run for its lock: the lock
/// is missing, or is not the one the build left (`recorded`, its sha256;
/// for one architecture of a multi-architecture spec, `part`, the sha256
/// of its part).
pub fn stale_reason(path: &Path, recorded: Option<Sha256>, part: Option<&str>) -> Option<String> {
    let now = match part {
        None => std::fs::read(path).ok().map(|b| Sha256::of(&b)),
        Some(_) => read_part(path, part).ok().flatten().map(|on_disk| on_disk.sha256),
    };
    match (now, recorded) {
        (Some(now), Some(recorded)) if now == recorded => None,
        (None, _) => Some(format!("`{}` is missing", path.display())),
        _ => Some(format!("`{}` changed", path.display())),
    }
}

/// Writes the lock atomically, after checking again that the path holds
/// nothing but a lock of this tool; returns the state of the file written.
pub fn write(path: &Path, text: &str) -> Result<crate::vocab::FileState> {
    output::check_file(path, "a lock file", recognise)?;
    // Meant to be committed and read by everyone, as a spec is: the
    // helper gives it the user's usual mode.
    fsutil::write_file_atomically(path, text.as_bytes())?;
    crate::vocab::FileState::read(path)
        .with_context(|| format!("failed to inspect `{}`", path.display()))
}

/// A lock computed from a plan, with what was learnt on the way.
#[derive(Debug)]
pub struct Computed {
    pub lock: Lock,
    /// The listing of each `[[trees]]` root, whose digest the lock keeps.
    pub tree_listings: BTreeMap<PathBuf, Listing>,
    /// Digests computed now (host path -> state, sha256), for the installer
    /// and the digest cache.
    pub digests: Digests,
    /// The package owning each copied sysroot file (root paths).
    pub owners: crate::build::dpkg::Owners,
    /// The owners found now by reading the packages' lists, for the owner
    /// cache; `None` when they were remembered, or not looked for.
    pub owners_found: Option<crate::build::dpkg::Found>,
}

/// What a plan copies and mirrors, by path in the tree: sysroot files and
/// `[[files]]` sources with their host paths, and the sysroot's symlinks.
/// Borrowed from the plan: a large tree's paths are tens of megabytes.
struct Sources<'p> {
    sysroot_files: BTreeMap<&'p Path, &'p Path>,
    spec_files: BTreeMap<&'p Path, &'p Path>,
    links: BTreeMap<&'p Path, &'p Path>,
}

fn sources<'p>(plan: &'p Plan, sysroot: &Sysroot) -> Sources<'p> {
    let mut found = Sources {
        sysroot_files: BTreeMap::new(),
        spec_files: BTreeMap::new(),
        links: BTreeMap::new(),
    };
    for (path, entry) in &plan.entries {
        match &entry.kind {
            EntryKind::File { host, .. } if *host == sysroot.host(path) => {
                found.sysroot_files.insert(path, host);
            }
            EntryKind::File { host, .. } => {
                found.spec_files.insert(path, host);
            }
            EntryKind::Symlink { target, host: Some(_) } => {
                found.links.insert(path, target);
            }
            _ => {}
        }
    }
    found
}

/// The lock of a plan: hashes every file copied (from `known` while its
/// state is unchanged), and asks the sysroot's dpkg database who owns it.
/// With `packages` (a package sysroot's set) the lock pins that set and
/// the host inputs only; the digests and owners are still computed, for
/// the installer and the SBOM.
pub fn compute(
    plan: &Plan,
    sysroot: &Sysroot,
    image: Option<&str>,
    known: &Digests,
    packages: Option<&PackageSet>,
    listed: Option<&Listed>,
) -> Result<Computed> {
    let Sources { mut sysroot_files, spec_files, mut links } = sources(plan, sysroot);
    let hosts: BTreeSet<&Path> =
        sysroot_files.values().chain(spec_files.values()).copied().collect();
    let (digests, facts) = hash_all(hosts, known)?;
    let wanted: BTreeSet<&Path> = sysroot_files.keys().copied().collect();
    // The SBOM needs the owner of every file, those of trees too.
    let (owners, owners_found) = owners_of(sysroot, &wanted, listed)?;
    let file = |host: &Path, owner: Option<&std::sync::Arc<Package>>| {
        locked_file(&facts[host], owner.map(|p| &**p))
    };
    // What `[[trees]]` put in the tree is pinned by one digest per tree,
    // not listed file by file: a tree of Python's library alone is
    // thousands of entries, and the lock is meant to be read in review.
    let in_tree: BTreeSet<&Path> = plan.trees.values().flatten().map(PathBuf::as_path).collect();
    sysroot_files.retain(|path, _| !in_tree.contains(path));
    links.retain(|path, _| !in_tree.contains(path));
    let tree_listings = tree_listings(plan, &facts);
    let lock = Lock {
        format: FORMAT,
        name: plan.name.clone(),
        image: image.map(str::to_string),
        commands: commands_of(plan),
        files: sysroot_files
            .iter()
            .map(|(p, h)| (p.to_path_buf(), file(h, owners.get(*p))))
            .collect(),
        links: links
            .iter()
            .map(|(p, target)| (p.to_path_buf(), Link { target: target.to_path_buf() }))
            .collect(),
        spec_files: spec_files.iter().map(|(p, h)| (p.to_path_buf(), file(h, None))).collect(),
        trees: tree_listings
            .iter()
            .map(|(root, listing)| {
                (root.clone(), Tree { digest: listing_digest(listing), input: None })
            })
            .collect(),
        debian: None,
        architectures: BTreeMap::new(),
    };
    let lock = match packages {
        Some(set) => pin_packages(lock, set, plan, sysroot),
        None => lock,
    };
    Ok(Computed { lock, tree_listings, digests, owners, owners_found })
}

/// The package owning each of `wanted`, from the dpkg database read in
/// advance (`listed`), or read now; with the answers to remember when the
/// lists were read in advance ([`Listed::owners`]).
fn owners_of(
    sysroot: &Sysroot,
    wanted: &BTreeSet<&Path>,
    listed: Option<&Listed>,
) -> Result<(crate::build::dpkg::Owners, Option<crate::build::dpkg::Found>)> {
    if let Some(listed) = listed {
        return listed.owners(sysroot, wanted);
    }
    let owners = match Database::read(sysroot)? {
        Some(db) => db.owners(sysroot, wanted),
        None => BTreeMap::new(),
    };
    Ok((owners, None))
}

/// The lock's line for a file: its state and sha256, and its owner.
fn locked_file((state, sha256): &(FileState, Sha256), owner: Option<&Package>) -> File {
    File {
        sha256: *sha256,
        size: state.size,
        mode: Mode::of_st_mode(state.mode),
        package: owner.map(|p| p.name.clone()),
        version: owner.map(|p| p.version.clone()),
        arch: owner.map(|p| p.arch.clone()),
        input: None,
    }
}

/// A package lock: the package set and the host inputs, nothing per file
/// of the sysroot (see the module's documentation).
fn pin_packages(full: Lock, set: &PackageSet, plan: &Plan, sysroot: &Sysroot) -> Lock {
    let from_host = |host: &Path| !host.starts_with(sysroot.root());
    let host_trees: BTreeSet<&PathBuf> = plan
        .trees
        .iter()
        .filter(|(_, paths)| {
            paths.iter().any(|path| {
                matches!(plan.entries.get(path).map(|e| &e.kind),
                    Some(EntryKind::File { host, .. }) if from_host(host))
            })
        })
        .map(|(root, _)| root)
        .collect();
    let spec_hosts = sources(plan, sysroot).spec_files;
    let marked = |input: Option<String>| input.or_else(|| Some(HOST_INPUT.to_string()));
    Lock {
        format: FORMAT,
        name: full.name,
        image: full.image,
        spec_files: full
            .spec_files
            .into_iter()
            .filter(|(path, _)| spec_hosts.get(path.as_path()).is_some_and(|h| from_host(h)))
            .map(|(path, file)| (path, File { input: marked(file.input), ..file }))
            .collect(),
        trees: full
            .trees
            .into_iter()
            .filter(|(root, _)| host_trees.contains(root))
            .map(|(root, tree)| (root, Tree { input: marked(tree.input), ..tree }))
            .collect(),
        debian: Some(set.clone()),
        ..Lock::default()
    }
}

/// Each command's program and the files opened for it.
fn commands_of(plan: &Plan) -> BTreeMap<String, Command> {
    plan.closures
        .iter()
        .map(|(name, files)| {
            let (program, opens) = files.split_first().map_or_else(
                || (PathBuf::new(), Vec::new()),
                |(p, rest)| (p.clone(), rest.to_vec()),
            );
            (name.clone(), Command { program, opens })
        })
        .collect()
}

/// Each host file's state and sha256, by its path in the plan.
type Facts<'p> = BTreeMap<&'p Path, (FileState, Sha256)>;

/// The state and sha256 of every host file (from `known` while its state
/// is unchanged), and those computed now, for the digest cache.
fn hash_all<'p>(hosts: BTreeSet<&'p Path>, known: &Digests) -> Result<(Digests, Facts<'p>)> {
    let hashed: Vec<(&Path, FileState, Sha256, bool)> =
        hosts.into_par_iter().map(|host| hash(host, known)).collect::<Result<_>>()?;
    let mut digests = Digests::new();
    let mut facts = BTreeMap::new();
    for (host, state, sha256, fresh) in hashed {
        if fresh {
            digests.insert(host.to_path_buf(), (state.clone(), sha256));
        }
        facts.insert(host, (state, sha256));
    }
    Ok((digests, facts))
}

/// One host file's state and sha256, and whether the digest was computed
/// now (rather than taken from `known`).
fn hash<'p>(host: &'p Path, known: &Digests) -> Result<(&'p Path, FileState, Sha256, bool)> {
    let state =
        FileState::read(host).with_context(|| format!("failed to inspect `{}`", host.display()))?;
    if let Some((_, sha256)) = known.get(host).filter(|(s, _)| *s == state) {
        return Ok((host, state, *sha256, false));
    }
    let sha256 =
        Sha256::of_file(host).with_context(|| format!("failed to read `{}`", host.display()))?;
    Ok((host, state, sha256, true))
}

/// One difference between two package sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageChange {
    /// Other suites, architecture or components are asked for.
    Request { was: String, now: String },
    /// Packages asked for (the spec's `packages` and `debian_packages`)
    /// that the locked set was not resolved for, or no longer asked for.
    Asked { added: Vec<String>, removed: Vec<String> },
    /// A package added, removed or changed (`None`: not in the set).
    Package { name: String, was: Option<String>, now: Option<String> },
    /// A suite's `InRelease` is not the one the set was resolved from.
    Release { suite: String, was: Option<String>, now: Option<String> },
}

impl PackageChange {
    fn kind(&self) -> ChangeKind {
        match self {
            PackageChange::Package { was: None, .. } => ChangeKind::New,
            PackageChange::Package { now: None, .. } => ChangeKind::Gone,
            PackageChange::Asked { removed, .. } if removed.is_empty() => ChangeKind::New,
            PackageChange::Asked { added, .. } if added.is_empty() => ChangeKind::Gone,
            _ => ChangeKind::Changed,
        }
    }
}

impl fmt::Display for PackageChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageChange::Request { was, now } => {
                write!(f, "package sysroot changed: locked {was}, now {now}")
            }
            PackageChange::Asked { added, removed } => {
                write!(f, "packages asked for changed:")?;
                for name in added {
                    write!(f, " + {name}")?;
                }
                for name in removed {
                    write!(f, " - {name}")?;
                }
                Ok(())
            }
            PackageChange::Package { name, was: None, now: Some(now) } => {
                write!(f, "package added: {name} {now}")
            }
            PackageChange::Package { name, was: Some(was), now: None } => {
                write!(f, "package removed: {name} {was}")
            }
            PackageChange::Package { name, was, now } => {
                write!(f, "package changed: {name} {} -> {}", or_none(was), or_none(now))
            }
            PackageChange::Release { suite, was, now } => {
                write!(f, "suite {suite}: InRelease locked {}, now {}", or_none(was), or_none(now))
            }
        }
    }
}

/// Which recorded thing a [`Change`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file of the sysroot, by its path there.
    File(PathBuf),
    /// A host file named by a `[[files]]` entry, by its path in the tree.
    SpecFile(PathBuf),
    /// A symlink of the sysroot.
    Link(PathBuf),
    /// A `[[trees]]` root.
    Tree(PathBuf),
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::File(p) => write!(f, "{}", p.display()),
            Input::SpecFile(p) => write!(f, "{} (a [[files]] entry)", p.display()),
            Input::Link(p) => write!(f, "symlink {}", p.display()),
            Input::Tree(p) => write!(f, "tree {}", p.display()),
        }
    }
}

/// One difference between a lock and the inputs of now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The spec's name is not the one locked.
    Name {
        was: String,
        now: String,
    },
    /// The sysroot image (or its absence) is not the one locked.
    Image {
        was: Option<String>,
        now: Option<String>,
    },
    Sha256 {
        input: Input,
        was: String,
        now: String,
    },
    Mode {
        input: Input,
        was: String,
        now: String,
    },
    /// In the lock, and not read any more.
    Gone {
        input: Input,
    },
    /// Read now, and not in the lock.
    New {
        input: Input,
    },
    /// Another package (or none) owns the file.
    Owner {
        input: Input,
        was: Option<String>,
        now: Option<String>,
    },
    /// The versions of a package that own locked files.
    Version {
        package: String,
        was: String,
        now: String,
    },
    LinkTarget {
        path: PathBuf,
        was: PathBuf,
        now: PathBuf,
    },
    TreeDigest {
        root: PathBuf,
        was: String,
        now: String,
        /// What changed in it, file by file, when a build of the locked
        /// tree is there to compare with (see [`listing_changes`]).
        detail: Vec<String>,
    },
    CommandNew {
        name: String,
    },
    /// A difference in a package sysroot's set.
    Package(PackageChange),
    CommandGone {
        name: String,
    },
    /// The program, or the files opened for it, or their order.
    Closure {
        command: String,
        added: Vec<PathBuf>,
        removed: Vec<PathBuf>,
    },
}

/// What a [`Change`] does to the lock, for the counts of a summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// An entry that was not locked.
    New,
    /// A locked entry with another value.
    Changed,
    /// A locked entry no longer there.
    Gone,
}

impl ChangeKind {
    fn word(self) -> &'static str {
        match self {
            ChangeKind::New => "new",
            ChangeKind::Changed => "changed",
            ChangeKind::Gone => "gone",
        }
    }
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::New { .. } | Change::CommandNew { .. } => ChangeKind::New,
            Change::Gone { .. } | Change::CommandGone { .. } => ChangeKind::Gone,
            Change::Name { .. }
            | Change::Image { .. }
            | Change::Sha256 { .. }
            | Change::Mode { .. }
            | Change::Owner { .. }
            | Change::Version { .. }
            | Change::LinkTarget { .. }
            | Change::TreeDigest { .. }
            | Change::Closure { .. } => ChangeKind::Changed,
            Change::Package(change) => change.kind(),
        }
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

fn or_none(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("none")
}

fn paths(list: &[PathBuf]) -> String {
    list.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// A changed tree: its digests, then what changed in it, at most
/// [`SUMMARY_LINES`] lines.
fn write_tree_change(
    f: &mut fmt::Formatter<'_>,
    root: &Path,
    (was, now): (&str, &str),
    detail: &[String],
) -> fmt::Result {
    write!(f, "changed tree: {} (locked {}, now {})", root.display(), short(was), short(now))?;
    for line in detail.iter().take(SUMMARY_LINES) {
        write!(f, "\n      {line}")?;
    }
    if detail.len() > SUMMARY_LINES {
        write!(f, "\n      ... {} more", detail.len() - SUMMARY_LINES)?;
    }
    Ok(())
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Name { was, now } => write!(f, "name changed: locked {was}, now {now}"),
            Change::Image { was, now } => {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "a directory".into());
                write!(f, "sysroot image changed: locked {}, now {}", show(was), show(now))
            }
            Change::Sha256 { input, was, now } => {
                write!(f, "changed sha256: {input} (locked {}, now {})", short(was), short(now))
            }
            Change::Mode { input, was, now } => {
                write!(f, "changed mode: {input} (locked {was}, now {now})")
            }
            Change::Gone { input: input @ Input::Link(_) } => write!(f, "symlink gone: {input}"),
            Change::Gone { input: input @ Input::Tree(_) } => write!(f, "tree gone: {input}"),
            Change::Gone { input } => write!(f, "file gone: {input}"),
            Change::New { input } => write!(f, "new dependency: {input}"),
            Change::Owner { input, was, now } => write!(
                f,
                "changed package: {input} (locked {}, now {})",
                or_none(was),
                or_none(now)
            ),
            Change::Version { package, was, now } => {
                write!(f, "package version changed: {package} {was} -> {now}")
            }
            Change::LinkTarget { path, was, now } => write!(
                f,
                "changed symlink: {} (locked -> {}, now -> {})",
                path.display(),
                was.display(),
                now.display()
            ),
            Change::TreeDigest { root, was, now, detail } => {
                write_tree_change(f, root, (was, now), detail)
            }
            Change::CommandNew { name } => write!(f, "new command: {name}"),
            Change::Package(change) => write!(f, "{change}"),
            Change::CommandGone { name } => write!(f, "command gone: {name}"),
            Change::Closure { command, added, removed } => {
                write!(f, "changed closure of {command}:")?;
                if !added.is_empty() {
                    write!(f, " + {}", paths(added))?;
                }
                if !removed.is_empty() {
                    write!(f, " - {}", paths(removed))?;
                }
                if added.is_empty() && removed.is_empty() {
                    write!(f, " the same files in another order")?;
                }
                Ok(())
            }
        }
    }
}

/// Every difference between the lock `was` and the lock of now, in a
/// stable order: name, image, commands, files, spec files, links, trees,
/// package versions.
pub fn diff(was: &Lock, now: &Lock) -> Vec<Change> {
    let mut changes = Vec::new();
    if was.name != now.name {
        changes.push(Change::Name { was: was.name.clone(), now: now.name.clone() });
    }
    if was.image != now.image {
        changes.push(Change::Image { was: was.image.clone(), now: now.image.clone() });
    }
    diff_commands(&was.commands, &now.commands, &mut changes);
    diff_files(&was.files, &now.files, Input::File, &mut changes);
    diff_files(&was.spec_files, &now.spec_files, Input::SpecFile, &mut changes);
    diff_maps(&was.links, &now.links, Input::Link, &mut changes, |path, a, b| Change::LinkTarget {
        path: path.clone(),
        was: a.target.clone(),
        now: b.target.clone(),
    });
    diff_maps(&was.trees, &now.trees, Input::Tree, &mut changes, |root, a, b| Change::TreeDigest {
        root: root.clone(),
        was: a.digest.to_string(),
        now: b.digest.to_string(),
        detail: Vec::new(),
    });
    diff_versions(was, now, &mut changes);
    diff_packages(was.debian.as_ref(), now.debian.as_ref(), &mut changes);
    changes
}

/// The differences between two package sets: what was asked, each
/// suite's `InRelease`, each package (by name; a changed version, or the
/// same version with other bytes).
pub fn diff_packages(
    was: Option<&PackageSet>,
    now: Option<&PackageSet>,
    changes: &mut Vec<Change>,
) {
    let empty = PackageSet::default();
    if was.is_none() && now.is_none() {
        return;
    }
    let (was, now) = (was.unwrap_or(&empty), now.unwrap_or(&empty));
    diff_request(was, now, changes);
    let suites: BTreeSet<&String> = was.releases.keys().chain(now.releases.keys()).collect();
    for suite in suites {
        let show = |set: &PackageSet| {
            set.releases
                .get(suite)
                .map(|r| format!("{} ({})", short(&r.sha256.to_string()), r.date))
        };
        if show(was) != show(now) {
            changes.push(Change::Package(PackageChange::Release {
                suite: suite.clone(),
                was: show(was),
                now: show(now),
            }));
        }
    }
    let names: BTreeSet<&String> = was.packages.keys().chain(now.packages.keys()).collect();
    for name in names {
        let (a, b) = (was.packages.get(name), now.packages.get(name));
        if a == b {
            continue;
        }
        let show = |p: Option<&LockedPackage>| {
            p.map(|p| match (a, b) {
                (Some(a), Some(b)) if a.version == b.version => {
                    format!("{} (sha256 {})", p.version, short(&p.sha256.to_string()))
                }
                _ => p.version.clone(),
            })
        };
        changes.push(Change::Package(PackageChange::Package {
            name: name.clone(),
            was: show(a),
            now: show(b),
        }));
    }
}

/// What was asked: suites, architecture and components as one line, and
/// the packages asked for by name.
fn diff_request(was: &PackageSet, now: &PackageSet, changes: &mut Vec<Change>) {
    let empty = PackageSet::default();
    let request = |set: &PackageSet| {
        if set == &empty {
            return "none".to_string();
        }
        format!("{} {} [{}]", set.suites.join(","), set.architecture, set.components.join(","))
    };
    if request(was) != request(now) {
        changes
            .push(Change::Package(PackageChange::Request { was: request(was), now: request(now) }));
    }
    let not_in = |a: &PackageSet, b: &PackageSet| -> Vec<String> {
        a.requested.iter().filter(|name| !b.requested.contains(name)).cloned().collect()
    };
    let (added, removed) = (not_in(now, was), not_in(was, now));
    if !added.is_empty() || !removed.is_empty() {
        changes.push(Change::Package(PackageChange::Asked { added, removed }));
    }
}

fn diff_commands(
    was: &BTreeMap<String, Command>,
    now: &BTreeMap<String, Command>,
    changes: &mut Vec<Change>,
) {
    for name in was.keys().filter(|n| !now.contains_key(*n)) {
        changes.push(Change::CommandGone { name: name.clone() });
    }
    for (name, command) in now {
        let Some(old) = was.get(name) else {
            changes.push(Change::CommandNew { name: name.clone() });
            continue;
        };
        if old == command {
            continue;
        }
        let all = |c: &Command| -> Vec<PathBuf> {
            std::iter::once(c.program.clone()).chain(c.opens.iter().cloned()).collect()
        };
        let (old_all, new_all) = (all(old), all(command));
        let added = new_all.iter().filter(|p| !old_all.contains(p)).cloned().collect();
        let removed = old_all.iter().filter(|p| !new_all.contains(p)).cloned().collect();
        changes.push(Change::Closure { command: name.clone(), added, removed });
    }
}

/// New and gone keys, and `changed` for a key in both with another value.
fn diff_maps<V: PartialEq>(
    was: &BTreeMap<PathBuf, V>,
    now: &BTreeMap<PathBuf, V>,
    input: fn(PathBuf) -> Input,
    changes: &mut Vec<Change>,
    changed: impl Fn(&PathBuf, &V, &V) -> Change,
) {
    let keys: BTreeSet<&PathBuf> = was.keys().chain(now.keys()).collect();
    for key in keys {
        match (was.get(key), now.get(key)) {
            (Some(_), None) => changes.push(Change::Gone { input: input(key.clone()) }),
            (None, Some(_)) => changes.push(Change::New { input: input(key.clone()) }),
            (Some(a), Some(b)) if a != b => changes.push(changed(key, a, b)),
            _ => {}
        }
    }
}

fn diff_files(
    was: &BTreeMap<PathBuf, File>,
    now: &BTreeMap<PathBuf, File>,
    input: fn(PathBuf) -> Input,
    changes: &mut Vec<Change>,
) {
    let mut found = Vec::new();
    diff_maps(was, now, input, &mut found, |path, a, b| {
        // One change per file: the content first, then the mode, then
        // the owner (a version alone is reported per package).
        let input = input(path.clone());
        if a.sha256 != b.sha256 || a.size != b.size {
            Change::Sha256 { input, was: a.sha256.to_string(), now: b.sha256.to_string() }
        } else if a.mode != b.mode {
            Change::Mode { input, was: a.mode.to_string(), now: b.mode.to_string() }
        } else {
            Change::Owner { input, was: a.package.clone(), now: b.package.clone() }
        }
    });
    // A file whose only difference is its package's version is reported
    // once, as the package's version change.
    found.retain(|c| !matches!(c, Change::Owner { was, now, .. } if was == now));
    changes.extend(found);
}

/// Each package whose set of versions among the locked files changed.
fn diff_versions(was: &Lock, now: &Lock, changes: &mut Vec<Change>) {
    let versions = |lock: &Lock| {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in lock.files.values() {
            if let (Some(package), Some(version)) = (&file.package, &file.version) {
                map.entry(package.clone()).or_default().insert(version.clone());
            }
        }
        map
    };
    let (old, new) = (versions(was), versions(now));
    for (package, versions) in &new {
        if let Some(before) = old.get(package)
            && before != versions
        {
            let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
            changes.push(Change::Version {
                package: package.clone(),
                was: join(before),
                now: join(versions),
            });
        }
    }
}

/// `build --locked` found inputs that differ from the lock: nothing was
/// written. One line per difference.
#[derive(Debug)]
pub struct Mismatch {
    pub lock: PathBuf,
    /// Empty when there is no lock at all.
    pub changes: Vec<Change>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return write!(
                f,
                "--locked: there is no lock `{}` yet; build once without --locked to write it",
                self.lock.display()
            );
        }
        let n = self.changes.len();
        writeln!(
            f,
            "--locked: the inputs differ from `{}` in {n} {}, so nothing was written:",
            self.lock.display(),
            if n == 1 { "way" } else { "ways" }
        )?;
        for change in &self.changes {
            writeln!(f, "  {change}")?;
        }
        write!(f, "help: build without --locked to update the lock, then review and commit it")
    }
}

impl std::error::Error for Mismatch {}

/// What a build did to the lock, for people.
#[derive(Clone, Debug)]
pub struct Update {
    pub path: PathBuf,
    /// There was no lock before.
    pub created: bool,
    /// The differences from the lock there was.
    pub changes: Vec<Change>,
    /// Rewritten with no change named: fields a lock written by an older
    /// version lacked (a release's `distro`) were added.
    pub refreshed: bool,
}

/// How many changes a build lists before it says how many more there are:
/// one package upgrade can change hundreds of entries.
pub const SUMMARY_LINES: usize = 10;

impl Update {
    /// One line with the counts by kind, then one per change (the first
    /// [`SUMMARY_LINES`] unless `verbose`, then how many more); `None` when
    /// the lock did not change.
    pub fn summary(&self, verbose: bool) -> Option<String> {
        if self.created {
            return Some(format!("wrote the lock `{}`", self.path.display()));
        }
        if self.changes.is_empty() {
            return None;
        }
        let count = |kind: ChangeKind| self.changes.iter().filter(|c| c.kind() == kind).count();
        let kinds: Vec<String> = [ChangeKind::New, ChangeKind::Changed, ChangeKind::Gone]
            .into_iter()
            .map(|kind| (count(kind), kind.word()))
            .filter(|(n, _)| *n > 0)
            .map(|(n, word)| format!("{n} {word}"))
            .collect();
        let total = self.changes.len();
        let mut text = format!(
            "updated the lock `{}` ({total} {}: {}):",
            self.path.display(),
            if total == 1 { "change" } else { "changes" },
            kinds.join(", ")
        );
        let shown = if verbose { total } else { total.min(SUMMARY_LINES) };
        for change in &self.changes[..shown] {
            text.push_str(&format!("\n  {change}"));
        }
        if shown < total {
            text.push_str(&format!("\n  ... {} more, see `--verbose`", total - shown));
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package set for `arch` of bookworm's main, asking for `requested`.
    fn package_set(arch: &str, requested: &[&str]) -> PackageSet {
        PackageSet {
            architecture: arch.into(),
            suites: vec!["bookworm".into()],
            components: vec!["main".into()],
            requested: requested.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn file(sha: &str, version: &str) -> File {
        File {
            sha256: sha.repeat(64).parse().unwrap(),
            size: 1,
            mode: "0644".parse().unwrap(),
            package: Some("libc6".into()),
            version: Some(version.into()),
            arch: Some("amd64".into()),
            input: None,
        }
    }

    #[test]
    fn a_long_update_is_counted_by_kind_and_cut_at_ten_lines() {
        let mut changes: Vec<Change> = (0..260)
            .map(|i| Change::New { input: Input::File(format!("/usr/lib/f{i:03}").into()) })
            .collect();
        changes.extend((0..4).map(|i| Change::Sha256 {
            input: Input::File(format!("/usr/lib/c{i}").into()),
            was: "a".repeat(64),
            now: "b".repeat(64),
        }));
        let update = Update { path: "x.lock".into(), created: false, changes, refreshed: false };
        let short = update.summary(false).unwrap();
        let lines: Vec<&str> = short.lines().collect();
        assert_eq!(lines[0], "updated the lock `x.lock` (264 changes: 260 new, 4 changed):");
        assert_eq!(lines[1], "  new dependency: /usr/lib/f000");
        assert_eq!(lines.len(), 1 + SUMMARY_LINES + 1, "{short}");
        assert_eq!(lines[11], "  ... 254 more, see `--verbose`");
        let long = update.summary(true).unwrap();
        assert_eq!(long.lines().count(), 265);
        assert!(
            long.ends_with("changed sha256: /usr/lib/c3 (locked aaaaaaaaaaaa, now bbbbbbbbbbbb)")
        );
        let one = Update { changes: update.changes[..1].to_vec(), ..update };
        assert_eq!(
            one.summary(false).unwrap(),
            "updated the lock `x.lock` (1 change: 1 new):\n  new dependency: /usr/lib/f000"
        );
    }

    #[test]
    fn differences_are_named_one_per_line() {
        let mut was = Lock { format: FORMAT, name: "x".into(), ..Lock::default() };
        was.files.insert("/lib/a".into(), file("a", "1"));
        was.files.insert("/lib/gone".into(), file("a", "1"));
        let mut now = was.clone();
        now.files.remove(Path::new("/lib/gone"));
        now.files.insert("/lib/a".into(), file("b", "2"));
        now.files.insert("/lib/new".into(), file("c", "2"));
        let shown: Vec<String> = diff(&was, &now).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            [
                "changed sha256: /lib/a (locked aaaaaaaaaaaa, now bbbbbbbbbbbb)",
                "file gone: /lib/gone",
                "new dependency: /lib/new",
                "package version changed: libc6 1 -> 2",
            ]
        );
        assert!(diff(&was, &was).is_empty());
    }

    #[test]
    fn package_set_differences_are_named() {
        let package = |version: &str, sha: &str| LockedPackage {
            version: version.into(),
            architecture: "amd64".into(),
            suite: "bookworm".into(),
            filename: format!("pool/main/b/bash/bash_{version}_amd64.deb"),
            sha256: sha.repeat(64).parse().unwrap(),
            size: 1,
        };
        let mut was = package_set("amd64", &["bash"]);
        was.releases.insert(
            "bookworm".into(),
            LockedRelease {
                sha256: "a".repeat(64).parse().unwrap(),
                date: "d1".into(),
                distro: None,
            },
        );
        was.packages.insert("bash".into(), package("5.2-1", "a"));
        was.packages.insert("gone".into(), package("1", "a"));
        was.packages.insert("same".into(), package("1", "a"));
        let mut now = was.clone();
        now.releases.insert(
            "bookworm".into(),
            LockedRelease {
                sha256: "b".repeat(64).parse().unwrap(),
                date: "d2".into(),
                distro: None,
            },
        );
        now.packages.insert("bash".into(), package("5.2-2", "b"));
        now.packages.remove("gone");
        now.packages.insert("new".into(), package("2", "c"));
        now.packages.insert("same".into(), package("1", "d"));
        let mut changes = Vec::new();
        diff_packages(Some(&was), Some(&now), &mut changes);
        let shown: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            [
                "suite bookworm: InRelease locked aaaaaaaaaaaa (d1), now bbbbbbbbbbbb (d2)",
                "package changed: bash 5.2-1 -> 5.2-2",
                "package removed: gone 1",
                "package added: new 2",
                "package changed: same 1 (sha256 aaaaaaaaaaaa) -> 1 (sha256 dddddddddddd)",
            ]
        );
        let lock = Lock { format: FORMAT, name: "x".into(), debian: Some(now), ..Lock::default() };
        let text = lock.render().unwrap();
        assert!(text.contains("[debian.packages.bash]"), "{text}");
        assert_eq!(Lock::parse(text.as_bytes()).unwrap(), lock);
    }

    #[test]
    fn packages_asked_for_are_named_and_a_package_lock_writes_only_what_it_pins() {
        let set = |requested: &[&str]| package_set("amd64", requested);
        let mut changes = Vec::new();
        diff_packages(Some(&set(&["bash", "vim"])), Some(&set(&["bash", "less"])), &mut changes);
        let shown: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(shown, ["packages asked for changed: + less - vim"]);
        assert_eq!(changes[0].kind(), ChangeKind::Changed);
        changes.clear();
        diff_packages(Some(&set(&["bash"])), Some(&set(&["bash", "less"])), &mut changes);
        assert_eq!(changes[0].kind(), ChangeKind::New);

        let mut lock = Lock {
            format: FORMAT,
            name: "x".into(),
            debian: Some(set(&["bash"])),
            ..Lock::default()
        };
        let text = lock.render().unwrap();
        assert!(lock.pins_packages());
        for table in ["[commands]", "[files]", "[links]", "[spec_files]", "[trees]"] {
            assert!(!text.contains(table), "{table} in\n{text}");
        }
        let host = File { input: Some(HOST_INPUT.into()), package: None, ..file("a", "1") };
        lock.spec_files.insert("/etc/motd".into(), host);
        let text = lock.render().unwrap();
        assert!(text.contains("[spec_files.\"/etc/motd\"]") && text.contains("input = \"host\""));
        assert_eq!(Lock::parse(text.as_bytes()).unwrap(), lock);
        // A host lock keeps every table, as it always has.
        let host_lock = Lock { debian: None, ..lock };
        assert!(host_lock.render().unwrap().contains("[commands]"));
    }

    #[test]
    fn a_multi_architecture_lock_holds_a_set_per_architecture_and_reads_back_as_parts() {
        let set = |arch: &str| package_set(arch, &["bash"]);
        let part = |arch: &str| Lock {
            format: FORMAT,
            name: "x".into(),
            debian: Some(set(arch)),
            ..Lock::default()
        };
        let parts =
            vec![("amd64".to_string(), part("amd64")), ("arm64".to_string(), part("arm64"))];
        let merged = Lock::merge_parts(parts).unwrap();
        assert_eq!(merged.debian, None);
        let text = merged.render().unwrap();
        assert!(
            text.contains("[architectures.amd64]") && text.contains("[architectures.arm64]"),
            "{text}"
        );
        assert!(!text.contains("[debian]"), "{text}");
        let read = Lock::parse(text.as_bytes()).unwrap();
        assert_eq!(read, merged);
        assert_eq!(read.part("arm64"), part("arm64"));
        assert_eq!(read.part("s390x").debian, None, "no set for an architecture not listed");
    }

    #[test]
    fn the_lock_is_sorted_toml_that_reads_back() {
        let mut lock = Lock { format: FORMAT, name: "x".into(), ..Lock::default() };
        lock.files.insert("/usr/lib/b".into(), file("b", "1"));
        lock.files.insert("/usr/lib/a".into(), file("a", "1"));
        lock.commands.insert(
            "bash".into(),
            Command { program: "/usr/bin/bash".into(), opens: vec!["/lib/a".into()] },
        );
        let text = lock.render().unwrap();
        assert!(text.starts_with("# "), "{text}");
        assert!(text.find("\"/usr/lib/a\"").unwrap() < text.find("\"/usr/lib/b\"").unwrap());
        assert_eq!(Lock::parse(text.as_bytes()).unwrap(), lock);
        assert!(!recognise(b"format = 2\nname = \"x\"\n"));
    }
}
