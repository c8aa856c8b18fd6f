//! A set of verified `.deb`s unpacked into a cached sysroot folder laid out as debootstrap lays out bookworm and later (merged `/usr`), every write confined to that folder, packages in parallel.
//!
//! The folder is `<cache_root>/deb-<hex>/`, where `<hex>` is the SHA256 of
//! the sorted package set (name, version, architecture and `.deb` digest of
//! each, and [`FORMAT`]); it is filled under a temporary name and renamed
//! when complete by the same code that keeps image sysroots
//! (`unpacked::cached`), so an unchanged set is reused without reading
//! a `.deb`.
//!
//! The order of the steps:
//! 1. the merged-`/usr` links, made before any package as debootstrap's
//!    `setup_merged_usr` makes them: `bin`, `sbin`, `lib` and the
//!    architecture's multilib directories ([`layout_links`]) become
//!    `usr/<dir>`, so a package's `./bin/bash` lands in `usr/bin/bash`;
//! 2. every package's control archive, for its `Replaces`;
//! 3. every package's data archive, in parallel (`rayon`). A path is
//!    written by one package only: two packages shipping one file is an
//!    error naming both, unless one `Replaces` the other (with a version
//!    constraint that allows the other's version, as dpkg's
//!    `does_replace` checks; one that leaves it out is named in the
//!    error), and then the
//!    replacing package's file is the one kept, whichever came first, as
//!    dpkg's `--unpack` keeps it (`deb-control(5)`, "Overwriting files and
//!    replacing packages" in Debian policy 7.6.1). Paths are compared after
//!    the merged-`/usr` links (`./bin/x` is `./usr/bin/x`), which dpkg of
//!    bookworm does not do; a conflict it would miss is caught here. The
//!    instances of one `Multi-Arch: same` package for two architectures
//!    share their common files, as dpkg lets them (the first one's bytes
//!    are kept; dpkg would also check they are equal);
//! 4. the dpkg database (`status.rs`) and the maintainer scripts' effects
//!    (`scripts.rs`);
//! 5. each directory's owner, mode and time, deepest first, once nothing
//!    more is written into it.
//!
//! Confinement: an entry's path must be relative without `..` (`deb(5)`
//! members are `./usr/...`); its directory is opened from the root's
//! descriptor with `openat2(2)` and `RESOLVE_BENEATH`
//! (`build/unpacked/layer.rs`'s `open_dir`, the one place that rule lives), so
//! the merged-`/usr` links and the packages' relative directory links are
//! followed, and a write through a link that is absolute or climbs out of
//! the root is refused. Debian policy 10.5 makes links inside one top-level
//! directory relative; no package of a real set writes through an absolute
//! one. The last component is created with `O_EXCL | O_NOFOLLOW`,
//! `symlinkat` or `linkat`; a hard link must name a file its own package
//! wrote before it in the archive (dpkg-deb builds them that way).
//!
//! Owner, mode (setuid included) and modification time are the archive's.
//! Running as another user than root, the owners are not set, and
//! [`Unpacked::notes`] says so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use super::deb::{self, Control};
use super::package::FetchedDeb;
use super::relation::{self, Relation};
use super::{scripts, status};
use crate::build::unpacked::layer::{Within, c_name, open_dir, relative_strict};
use crate::build::unpacked::{Prepared, cached};

/// Part of every cache key: changed whenever what an unpacked folder holds
/// changes, so that folders made by an older unpacker are not reused.
pub const FORMAT: &str = "rootfs debian sysroot 1";

/// A package sysroot ready for the resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// The directory to use as `/`: `<cache_root>/deb-<hex>`.
    pub dir: PathBuf,
    /// `deb-<hex>`, the folder's name: the digest of the package set
    /// (`deb-<hex>-unowned` when the files could not be given their owners).
    pub key: String,
    /// Whether the set was unpacked now (rather than found in the cache).
    pub unpacked: bool,
    /// The set's own architecture (see [`native_architecture`]).
    pub architecture: String,
    /// What the maintainer scripts would have done that was not
    /// reproduced, sorted: for the build to list.
    pub not_reproduced: Vec<scripts::NotReproduced>,
    /// What the user should know (files not given their owners).
    pub notes: Vec<String>,
}

impl Unpacked {
    /// The same sysroot as the image sysroots' record, for the build.
    pub fn prepared(&self) -> Prepared {
        Prepared {
            dir: self.dir.clone(),
            image: None,
            unpacked: self.unpacked,
            packages: None,
            notes: self.notes.clone(),
        }
    }
}

/// Whether files can be given the archive's owners: as root, in a user
/// namespace (`user_namespaces(7)`) that maps at least the 65,536 ids
/// packages use. Root of a namespace that maps only itself (a rootless
/// sandbox) would get `EINVAL` from `fchown(2)` for `root:staff`.
fn can_set_owners() -> bool {
    let mapped = |path: &str| -> u64 {
        let Ok(text) = std::fs::read_to_string(path) else { return 0 };
        text.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()).sum()
    };
    rustix::process::geteuid().is_root()
        && mapped("/proc/self/uid_map") >= 65_536
        && mapped("/proc/self/gid_map") >= 65_536
}

/// Unpacks `debs` into `<cache_root>/deb-<hex>/` unless that folder is
/// there already, and returns it.
pub fn prepare(debs: &[FetchedDeb], cache_root: &Path) -> Result<Unpacked> {
    let mut debs = debs.to_vec();
    debs.sort();
    if let Some(pair) = debs.windows(2).find(|w| same_package(&w[0], &w[1])) {
        bail!("the package set names `{}` twice", pair[0].id.name);
    }
    let architecture = native_architecture(&debs);
    let chown = can_set_owners();
    // A set unpacked without its owners (inside a user namespace that maps
    // few ids) is kept apart from one with them, so a later run as root
    // never reuses it and sees the wrong owners.
    let key = match chown {
        true => set_key(&debs),
        false => format!("{}-unowned", set_key(&debs)),
    };
    let prepared =
        cached(cache_root, &key, None, |root, _| fill(root, &debs, &architecture, chown))
            .with_context(|| {
                format!("unpacking the package set into `{}`", cache_root.join(&key).display())
            })?;
    let mut notes = Vec::new();
    if prepared.unpacked && !chown {
        notes.push(format!(
            "not running as root with the full range of ids: the files of `{}` keep their modes but not their owners",
            prepared.dir.display()
        ));
    }
    let not_reproduced = scripts::not_reproduced(&prepared.dir)?;
    Ok(Unpacked {
        dir: prepared.dir,
        key,
        unpacked: prepared.unpacked,
        architecture,
        not_reproduced,
        notes,
    })
}

fn same_package(a: &FetchedDeb, b: &FetchedDeb) -> bool {
    a.id.name == b.id.name && a.id.architecture == b.id.architecture
}

/// The architecture the set is for: that of `libc6` when it is in the set
/// (the C library decides which programs run), else the most common one
/// other than `all`, else `all`.
pub fn native_architecture(debs: &[FetchedDeb]) -> String {
    if let Some(libc) = debs.iter().find(|d| d.id.name == "libc6") {
        return libc.id.architecture.clone();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for deb in debs.iter().filter(|d| d.id.architecture != "all") {
        *counts.entry(deb.id.architecture.as_str()).or_default() += 1;
    }
    let most = counts.iter().max_by_key(|(arch, n)| (**n, std::cmp::Reverse(**arch)));
    most.map(|(arch, _)| arch.to_string()).unwrap_or_else(|| "all".to_string())
}

/// `deb-<hex>`: the SHA256 of [`FORMAT`] and the sorted set.
pub fn set_key(debs: &[FetchedDeb]) -> String {
    let mut lines: Vec<String> = debs
        .iter()
        .map(|d| format!("{} {} {} {}\n", d.id.name, d.id.version, d.id.architecture, d.sha256))
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    hasher.update(FORMAT.as_bytes());
    hasher.update(b"\n");
    for line in lines {
        hasher.update(line.as_bytes());
    }
    format!("deb-{}", crate::fsutil::hex_digest(hasher))
}

/// The top-level directories that are links into `/usr`, for an
/// architecture: debootstrap's `setup_merged_usr` (its `functions`, also
/// mmdebstrap's `hooks/merged-usr/setup00.sh`), `bin sbin lib` and the
/// multilib directories its `case $ARCH` adds.
pub fn layout_links(architecture: &str) -> Vec<&'static str> {
    let multilib: &[&str] = match architecture {
        "amd64" | "x32" => &["lib32", "lib64", "libx32"],
        "i386" => &["lib64", "libx32"],
        "mips" | "mipsel" => &["lib32", "lib64"],
        a if a.starts_with("mips64") || a.starts_with("mipsn32") => &["lib32", "lib64", "libo32"],
        "powerpc" | "ppc64el" | "sparc" => &["lib64"],
        "ppc64" | "sparc64" => &["lib32", "lib64"],
        "s390x" => &["lib32"],
        _ => &[],
    };
    let mut links = vec!["bin", "sbin", "lib"];
    links.extend_from_slice(multilib);
    links
}

/// The owner, mode and modification time of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

impl Meta {
    fn of(header: &tar::Header) -> Result<Meta> {
        Ok(Meta {
            mode: header.mode().context("reading the mode")? & 0o7777,
            uid: u32::try_from(header.uid().context("reading the owner")?)
                .context("an owner beyond 32 bits")?,
            gid: u32::try_from(header.gid().context("reading the group")?)
                .context("a group beyond 32 bits")?,
            mtime: i64::try_from(header.mtime().context("reading the time")?)
                .context("a time beyond 64 bits")?,
        })
    }
}

/// What is written at a path that is not a directory.
enum Content<'a> {
    File(&'a mut dyn Read),
    Symlink(PathBuf),
    HardLink(PathBuf),
}

/// A file whose package replaces the package that wrote it first: written
/// once every package is in, over the other's.
struct Deferred {
    rel: PathBuf,
    kind: DeferredKind,
    meta: Meta,
}

enum DeferredKind {
    File(Vec<u8>),
    Symlink(PathBuf),
    HardLink(PathBuf),
}

/// One package unpacked: its control and what it wrote.
pub(crate) struct Installed {
    pub control: Control,
    pub deb: FetchedDeb,
    /// Every path of its data archive in order, as dpkg lists it in
    /// `info/<package>.list` (`/.`, `/usr`, `/usr/bin/bash`), the
    /// non-directories another package replaced left out afterwards.
    pub list: Vec<String>,
    dirs: Vec<(PathBuf, Meta)>,
    /// The non-directories it wrote (merged-`/usr` spelling), for its hard
    /// links and its list.
    written: HashSet<PathBuf>,
    deferred: Vec<Deferred>,
}

/// Who writes each non-directory path (merged-`/usr` spelling).
struct Claims {
    owners: Mutex<HashMap<PathBuf, usize>>,
    /// For each package (by index), its `Replaces` relations.
    replaces: Vec<Vec<Relation>>,
    names: Vec<String>,
    versions: Vec<String>,
    /// `NAME:ARCH` of each package.
    qualified: Vec<String>,
    /// Whether each package is `Multi-Arch: same`.
    same: Vec<bool>,
    links: Vec<&'static str>,
}

/// Whether one package replaces another.
enum Replacement {
    Yes,
    /// A `Replaces` names it, but its version constraint leaves this
    /// version out.
    NotThisVersion(Relation),
    No,
}

/// What a package does with a path it ships.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    Write,
    /// Another package that replaces this one has it, or will.
    Skip,
    /// This package replaces the one that wrote it: written last.
    Defer,
    /// The same `Multi-Arch: same` package of another architecture wrote
    /// it: both list it, as dpkg shares such files between the instances
    /// of one package (`deb-control(5)`, `Multi-Arch`).
    Shared,
}

impl Claims {
    fn claim(&self, path: &Path, package: usize) -> Result<Claim> {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&other) = owners.get(path) else {
            owners.insert(path.to_path_buf(), package);
            return Ok(Claim::Write);
        };
        if other == package {
            return Ok(Claim::Write);
        }
        let name = &self.names[package];
        let other_name = &self.names[other];
        if name == other_name && self.same[package] && self.same[other] {
            return Ok(Claim::Shared);
        }
        let (ours, theirs) = (self.replaces(package, other), self.replaces(other, package));
        if let Replacement::Yes = ours {
            owners.insert(path.to_path_buf(), package);
            return Ok(Claim::Defer);
        }
        if let Replacement::Yes = theirs {
            return Ok(Claim::Skip);
        }
        // Two instances of one package are told apart by architecture.
        let (a, b) = if name == other_name {
            (&self.qualified[package], &self.qualified[other])
        } else {
            (name, other_name)
        };
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        // A versioned `Replaces` that leaves the other's version out, of
        // the package first by name: the same text whichever thread came
        // first.
        let mut near: Vec<(&String, String)> = [(package, other, ours), (other, package, theirs)]
            .into_iter()
            .filter_map(|(has, of, replacement)| match replacement {
                Replacement::NotThisVersion(relation) => Some((
                    &self.qualified[has],
                    format!(
                        "`{}` has `Replaces: {relation}`, which does not cover `{}` {}",
                        self.names[has], self.names[of], self.versions[of]
                    ),
                )),
                _ => None,
            })
            .collect();
        near.sort();
        let why = near.into_iter().next().map(|(_, why)| why);
        let why = why.unwrap_or_else(|| "neither `Replaces` the other".to_string());
        bail!("`/{}` is shipped by both `{a}` and `{b}`, and {why}", path.display())
    }

    /// Whether package `a` replaces package `b`: a `Replaces` relation of
    /// `a` names `b`, and its version constraint, if any, allows `b`'s
    /// version (dpkg's `does_replace`). Architecture qualifiers are not
    /// compared: a set is unpacked for one architecture and `all`.
    fn replaces(&self, a: usize, b: usize) -> Replacement {
        let named = self.replaces[a].iter().filter(|r| r.name == self.names[b]);
        let mut answer = Replacement::No;
        for relation in named {
            match &relation.constraint {
                Some(c) if !c.allows(&self.versions[b]) => {
                    answer = Replacement::NotThisVersion(relation.clone());
                }
                _ => return Replacement::Yes,
            }
        }
        answer
    }

    /// Whether `rel` is one of the merged-`/usr` links itself.
    fn is_layout_link(&self, rel: &Path) -> bool {
        self.links.iter().any(|l| Path::new(l) == rel)
    }

    /// The path as the merged-`/usr` links make it: `bin/x` is `usr/bin/x`.
    fn canonical(&self, rel: &Path) -> PathBuf {
        let mut components = rel.components();
        match components.next() {
            Some(first) if self.links.iter().any(|l| OsStr::new(l) == first.as_os_str()) => {
                Path::new("usr").join(first).join(components.as_path())
            }
            _ => rel.to_path_buf(),
        }
    }
}

/// A package's `Replaces` relations (`deb-control(5)`); one that cannot be
/// parsed is an error naming the package.
fn replaces_of(control: &Control) -> Result<Vec<Relation>> {
    let text = control.stanza.get("Replaces").unwrap_or("");
    let groups = relation::parse_field(text)
        .with_context(|| format!("package `{}`: bad `Replaces`", control.package()))?;
    Ok(groups.into_iter().flatten().collect())
}

/// Fills the root open at `root` with the set, in the module's steps.
fn fill(root: &OwnedFd, debs: &[FetchedDeb], architecture: &str, chown: bool) -> Result<()> {
    let links = layout_links(architecture);
    make_layout(root, &links)?;
    let controls: Vec<Control> = debs
        .par_iter()
        .map(|deb| deb::read(&deb.path, |_, _| Ok(())).map(|(control, ())| control))
        .collect::<Result<_>>()?;
    let claims = Claims {
        owners: Mutex::new(HashMap::new()),
        replaces: controls.iter().map(replaces_of).collect::<Result<_>>()?,
        names: debs.iter().map(|d| d.id.name.clone()).collect(),
        versions: debs.iter().map(|d| d.id.version.clone()).collect(),
        qualified: debs.iter().map(|d| format!("{}:{}", d.id.name, d.id.architecture)).collect(),
        same: controls.iter().map(|c| c.stanza.get("Multi-Arch") == Some("same")).collect(),
        links,
    };
    let mut installed = unpack_all(root, debs, &claims, chown)?;
    apply_deferred(root, &mut installed, chown)?;
    drop_replaced(&mut installed, &claims);
    status::write(root, &installed)?;
    // The folder's path, for the reads that go through `Sysroot`.
    let dir = std::fs::read_link(format!("/proc/self/fd/{}", root.as_raw_fd()))
        .context("finding the folder being filled")?;
    scripts::apply(root, &dir, &installed)?;
    set_dir_metadata(root, &installed, chown)
}

/// Every package's data archive, the largest `.deb`s first: each thread
/// takes the next one when it is free (`par_bridge` pulls in order), so a
/// large package does not start last and leave the other cores idle. The
/// first error in package order is the one reported, whatever the timing.
fn unpack_all(
    root: &OwnedFd,
    debs: &[FetchedDeb],
    claims: &Claims,
    chown: bool,
) -> Result<Vec<Installed>> {
    let size = |deb: &FetchedDeb| std::fs::metadata(&deb.path).map_or(0, |m| m.len());
    let mut order: Vec<(u64, usize)> = debs.iter().enumerate().map(|(i, d)| (size(d), i)).collect();
    order.sort_by(|a, b| b.cmp(a));
    let mut done: Vec<(usize, Result<Installed>)> = order
        .into_iter()
        .par_bridge()
        .map(|(_, index)| {
            let deb = &debs[index];
            let result = unpack_one(root, index, deb, claims, chown).with_context(|| {
                format!("unpacking `{}` from `{}`", deb.id.name, deb.path.display())
            });
            (index, result)
        })
        .collect();
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

/// The merged-`/usr` links and their targets, as debootstrap makes them:
/// `mkdir -p usr/DIR; ln -s usr/DIR DIR`.
fn make_layout(root: &OwnedFd, links: &[&str]) -> Result<()> {
    let usr = open_dir(root, Path::new("usr"), true, Within::Beneath)?.context("no usr")?;
    for link in links {
        match rustix::fs::mkdirat(&usr, *link, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("creating `usr/{link}`")),
        }
        rustix::fs::symlinkat(format!("usr/{link}"), root, *link)
            .with_context(|| format!("linking `{link}` to `usr/{link}`"))?;
    }
    Ok(())
}

/// Unpacks the data archive of one package.
fn unpack_one(
    root: &OwnedFd,
    index: usize,
    deb: &FetchedDeb,
    claims: &Claims,
    chown: bool,
) -> Result<Installed> {
    let (control, mut installed) = deb::read(&deb.path, |control, stream| {
        anyhow::ensure!(
            control.package() == deb.id.name,
            "the `.deb` holds `{}`, not `{}`",
            control.package(),
            deb.id.name
        );
        let mut installed = Installed {
            control: Control::default(),
            deb: deb.clone(),
            list: Vec::new(),
            dirs: Vec::new(),
            written: HashSet::new(),
            deferred: Vec::new(),
        };
        let mut archive = tar::Archive::new(stream);
        let mut parent = Parent::default();
        for entry in archive.entries().context("reading the archive")? {
            let mut entry = entry.context("reading the archive")?;
            let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let target = Target { root, index, claims, chown };
            unpack_entry(&target, &mut parent, &mut entry, &mut installed)
                .with_context(|| format!("unpacking `{shown}`"))?;
        }
        Ok(installed)
    })?;
    installed.control = control;
    Ok(installed)
}

/// Where one package's entries go: the root, the package's index, the
/// claims of all packages, and whether owners are set.
struct Target<'a> {
    root: &'a OwnedFd,
    index: usize,
    claims: &'a Claims,
    chown: bool,
}

/// The directory the previous entry went into, kept open: an archive lists
/// a directory's entries together, so most entries reuse it instead of
/// resolving their directory again. Directories are never removed or
/// replaced while packages unpack, so the descriptor stays right.
#[derive(Default)]
struct Parent {
    rel: PathBuf,
    fd: Option<OwnedFd>,
}

impl Parent {
    fn open(&mut self, root: &OwnedFd, rel: &Path) -> Result<&OwnedFd> {
        if self.fd.is_none() || self.rel != rel {
            self.fd = Some(open_dir(root, rel, true, Within::Beneath)?.context("no parent")?);
            self.rel = rel.to_path_buf();
        }
        self.fd.as_ref().context("no parent")
    }
}

/// One entry of a data archive, in the module's rules.
fn unpack_entry<R: Read>(
    target: &Target<'_>,
    parent_dir: &mut Parent,
    entry: &mut tar::Entry<R>,
    installed: &mut Installed,
) -> Result<()> {
    let Target { root, index, claims, chown } = *target;
    let rel = relative_strict(&entry.path().context("reading the path")?)?;
    let kind = entry.header().entry_type();
    let meta = Meta::of(entry.header())?;
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        // `./`, the root itself: listed as dpkg lists it, kept 0755.
        installed.list.push("/.".to_string());
        return Ok(());
    };
    let listed = format!("/{}", rel.display());
    if kind.is_dir() {
        let dir = parent_dir.open(root, parent)?;
        if ensure_dir(root, dir, &rel)? {
            installed.dirs.push((rel.clone(), meta));
        }
        installed.list.push(listed);
        return Ok(());
    }
    if claims.is_layout_link(&rel) {
        check_layout_link(entry, &rel)?;
        installed.list.push(listed);
        return Ok(());
    }
    let content = content_of(entry, installed, claims)?;
    let canonical = claims.canonical(&rel);
    match claims.claim(&canonical, index)? {
        Claim::Skip => return Ok(()),
        Claim::Shared => {
            installed.list.push(listed);
            return Ok(());
        }
        Claim::Defer => {
            let kind = deferred_kind(content)?;
            installed.deferred.push(Deferred { rel, kind, meta });
        }
        Claim::Write => {
            let dir = parent_dir.open(root, parent)?;
            place(root, dir, name, content, meta, chown)?;
        }
    }
    installed.written.insert(canonical);
    installed.list.push(listed);
    Ok(())
}

/// trixie's base-files ships the merged-/usr links itself (DEP 17; its
/// preinst refuses a `/bin` that is not exactly `usr/bin`): the same link is
/// already there and is never removed, so no package writing through it
/// meanwhile finds it missing. Anything else at that path would undo the
/// layout, and is refused.
fn check_layout_link<R: Read>(entry: &tar::Entry<R>, rel: &Path) -> Result<()> {
    let target = entry.link_name()?.map(|t| t.into_owned());
    let same = target.is_some_and(|t| t == Path::new("usr").join(rel));
    let symlink = entry.header().entry_type().is_symlink();
    anyhow::ensure!(symlink && same, "`/{}` is a merged-/usr link", rel.display());
    Ok(())
}

/// What a non-directory entry writes.
fn content_of<'a, R: Read>(
    entry: &'a mut tar::Entry<R>,
    installed: &Installed,
    claims: &Claims,
) -> Result<Content<'a>> {
    let kind = entry.header().entry_type();
    Ok(if kind.is_file() {
        Content::File(entry)
    } else if kind.is_symlink() {
        Content::Symlink(entry.link_name()?.context("a symlink without a target")?.into_owned())
    } else if kind.is_hard_link() {
        let target = entry.link_name()?.context("a hard link without a target")?;
        let target = relative_strict(&target)
            .with_context(|| format!("a hard link to `{}`", target.display()))?;
        anyhow::ensure!(
            installed.written.contains(&claims.canonical(&target)),
            "a hard link to `{}`, which this package does not ship before it",
            target.display()
        );
        Content::HardLink(target)
    } else {
        // Debian policy 10.6: packages must not include device files or
        // named pipes in their file tree.
        bail!("an entry of type {:?}: packages ship no devices or fifos", kind);
    })
}

/// A content kept to be written once every package is in.
fn deferred_kind(content: Content<'_>) -> Result<DeferredKind> {
    Ok(match content {
        Content::File(reader) => {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).context("reading the file")?;
            DeferredKind::File(bytes)
        }
        Content::Symlink(target) => DeferredKind::Symlink(target),
        Content::HardLink(target) => DeferredKind::HardLink(target),
    })
}

/// Makes `name` a directory in `dir` unless it is one, or a link to one
/// inside the root (the merged-`/usr` links: dpkg keeps a directory link
/// where a package ships a directory). Whether it is a real directory,
/// whose owner and mode are then the package's.
fn ensure_dir(root: &OwnedFd, dir: &OwnedFd, rel: &Path) -> Result<bool> {
    let name = rel.file_name().context("no name")?;
    let c = c_name(name)?;
    for _ in 0..2 {
        match rustix::fs::statat(dir, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => {
                return match FileType::from_raw_mode(stat.st_mode) {
                    FileType::Directory => Ok(true),
                    FileType::Symlink => {
                        // Resolved from the root, so a relative link that
                        // climbs above its own directory is followed too.
                        open_dir(root, rel, false, Within::Beneath)?
                            .context("a directory where a symlink to no directory is")?;
                        Ok(false)
                    }
                    _ => bail!("a directory where another package ships a file"),
                };
            }
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(dir, c.as_c_str(), Mode::from_raw_mode(0o755)) {
                    // Another package made it meanwhile: look again.
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e).context("creating the directory"),
                }
            }
            Err(e) => return Err(e).context("inspecting the path"),
        }
    }
    bail!("the directory vanished while it was made")
}

/// Writes one non-directory as `name` in `dir` (replacing what this
/// package, or a package it replaces, put there) with its owner, mode and
/// time.
fn place(
    root: &OwnedFd,
    dir: &OwnedFd,
    name: &OsStr,
    content: Content<'_>,
    meta: Meta,
    chown: bool,
) -> Result<()> {
    let c = c_name(name)?;
    let times = times(meta.mtime);
    match content {
        Content::File(reader) => write_file(dir, &c, reader, meta, chown)?,
        Content::Symlink(target) => {
            replacing(dir, &c, || {
                rustix::fs::symlinkat(target.as_os_str().as_bytes(), dir, c.as_c_str())
            })
            .context("creating the symlink")?;
            if chown {
                rustix::fs::chownat(
                    dir,
                    c.as_c_str(),
                    Some(uid(meta.uid)),
                    Some(gid(meta.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .context("setting the owner")?;
            }
            rustix::fs::utimensat(dir, c.as_c_str(), &times, AtFlags::SYMLINK_NOFOLLOW)
                .context("setting the time")?;
        }
        Content::HardLink(target) => {
            let (Some(parent), Some(target_name)) = (target.parent(), target.file_name()) else {
                bail!("a hard link to the root");
            };
            let from = open_dir(root, parent, false, Within::Beneath)?.with_context(|| {
                format!("the hard link target `{}` is missing", target.display())
            })?;
            let target_name = c_name(target_name)?;
            replacing(dir, &c, || {
                rustix::fs::linkat(
                    &from,
                    target_name.as_c_str(),
                    dir,
                    c.as_c_str(),
                    AtFlags::empty(),
                )
            })
            .with_context(|| format!("linking to `{}`", target.display()))?;
        }
    }
    Ok(())
}

/// Runs `create` (which makes `c` in `dir`); when something is there
/// already (this package's earlier entry, or the file of a package it
/// replaces), removes it and runs `create` again. Trying first saves a
/// `stat` on every entry, nearly all of which are new. A directory is never
/// removed.
fn replacing<T>(
    dir: &OwnedFd,
    c: &std::ffi::CStr,
    mut create: impl FnMut() -> rustix::io::Result<T>,
) -> Result<T> {
    match create() {
        Err(Errno::EXIST) => {}
        other => return Ok(other?),
    }
    let stat =
        rustix::fs::statat(dir, c, AtFlags::SYMLINK_NOFOLLOW).context("inspecting the path")?;
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        bail!("a file where another package ships a directory");
    }
    rustix::fs::unlinkat(dir, c, AtFlags::empty()).context("removing the replaced file")?;
    Ok(create()?)
}

/// What the unpacker writes itself (the dpkg database, what maintainer
/// scripts would have made), owned by root, dated `mtime`.
pub(crate) enum Generated<'a> {
    File { bytes: &'a [u8], mode: u32 },
    Symlink(&'a Path),
}

/// Writes `what` at `rel` (a path relative to the root), replacing a
/// non-directory there, through the same confined steps as a package's
/// entries.
pub(crate) fn write_generated(
    root: &OwnedFd,
    rel: &Path,
    what: Generated<'_>,
    mtime: i64,
) -> Result<()> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        bail!("`{}` names the root", rel.display());
    };
    let chown = rustix::process::geteuid().is_root();
    let dir = open_dir(root, parent, true, Within::Beneath)?.context("no parent")?;
    let mut meta = Meta { mode: 0o777, uid: 0, gid: 0, mtime };
    let mut reader;
    let content = match what {
        Generated::File { bytes, mode } => {
            meta.mode = mode;
            reader = bytes;
            Content::File(&mut reader)
        }
        Generated::Symlink(target) => Content::Symlink(target.to_path_buf()),
    };
    place(root, &dir, name, content, meta, chown)
        .with_context(|| format!("writing `{}`", rel.display()))
}

/// The newest time of a directory the set ships: the time of what the
/// unpacker writes itself, so that an unpacked set is the same on every
/// run.
pub(crate) fn epoch(installed: &[Installed]) -> i64 {
    installed.iter().flat_map(|p| p.dirs.iter().map(|(_, m)| m.mtime)).max().unwrap_or(0)
}

/// A new regular file `c` in `dir` with its owner, mode and time.
fn write_file(
    dir: &OwnedFd,
    c: &std::ffi::CStr,
    reader: &mut dyn Read,
    meta: Meta,
    chown: bool,
) -> Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = replacing(dir, c, || rustix::fs::openat(dir, c, flags, Mode::from_raw_mode(0o600)))
        .context("creating the file")?;
    // Through a buffer of up to 256 KiB, into which `io::copy` decodes
    // directly: `write(2)`s of that size rather than its own 8 KiB.
    let mut writer = std::io::BufWriter::with_capacity(COPY_BUFFER, std::fs::File::from(fd));
    std::io::copy(reader, &mut writer).context("writing the file")?;
    let file = writer.into_inner().map_err(|e| e.into_error()).context("writing the file")?;
    if chown {
        rustix::fs::fchown(&file, Some(uid(meta.uid)), Some(gid(meta.gid)))
            .context("setting the owner")?;
    }
    // After the owner: chown(2) clears the setuid and setgid bits.
    rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode)).context("setting the mode")?;
    rustix::fs::futimens(&file, &times(meta.mtime)).context("setting the time")
}

/// The buffer a file's bytes are written through.
const COPY_BUFFER: usize = 256 * 1024;

fn times(mtime: i64) -> Timestamps {
    let at = Timespec { tv_sec: mtime, tv_nsec: 0 };
    Timestamps { last_access: at, last_modification: at }
}

fn uid(raw: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(raw)
}

fn gid(raw: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(raw)
}

/// Writes the files of packages that replace another's, in package order,
/// over what the replaced package wrote.
fn apply_deferred(root: &OwnedFd, installed: &mut [Installed], chown: bool) -> Result<()> {
    for package in installed.iter_mut() {
        for deferred in std::mem::take(&mut package.deferred) {
            let (Some(parent), Some(name)) = (deferred.rel.parent(), deferred.rel.file_name())
            else {
                continue;
            };
            let dir = open_dir(root, parent, true, Within::Beneath)?.context("no parent")?;
            let mut reader;
            let content = match deferred.kind {
                DeferredKind::File(data) => {
                    reader = std::io::Cursor::new(data);
                    Content::File(&mut reader)
                }
                DeferredKind::Symlink(target) => Content::Symlink(target),
                DeferredKind::HardLink(target) => Content::HardLink(target),
            };
            place(root, &dir, name, content, deferred.meta, chown).with_context(|| {
                format!("unpacking `{}` of `{}`", deferred.rel.display(), package.deb.id.name)
            })?;
        }
    }
    Ok(())
}

/// Leaves out of each package's list the files another package replaced,
/// as dpkg takes them out of the replaced package's list.
fn drop_replaced(installed: &mut [Installed], claims: &Claims) {
    let owners = claims.owners.lock().unwrap_or_else(|e| e.into_inner());
    for (index, package) in installed.iter_mut().enumerate() {
        let written = &package.written;
        package.list.retain(|listed| {
            let rel = Path::new(listed.trim_start_matches('/'));
            let canonical = claims.canonical(rel);
            !written.contains(&canonical) || owners.get(&canonical) == Some(&index)
        });
    }
}

/// Gives every directory a package shipped its owner, mode and time, the
/// first package in order deciding, deepest first so that setting a time
/// is not undone by a write below it.
fn set_dir_metadata(root: &OwnedFd, installed: &[Installed], chown: bool) -> Result<()> {
    let mut dirs: BTreeMap<&Path, Meta> = BTreeMap::new();
    for package in installed {
        for (rel, meta) in &package.dirs {
            dirs.entry(rel.as_path()).or_insert(*meta);
        }
    }
    for (rel, meta) in dirs.iter().rev() {
        let context = || format!("setting the metadata of `{}`", rel.display());
        let Some(fd) = open_dir(root, rel, false, Within::Beneath)? else { continue };
        if chown {
            rustix::fs::fchown(&fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                .with_context(context)?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode)).with_context(context)?;
        rustix::fs::futimens(&fd, &times(meta.mtime)).with_context(context)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multilib_links_follow_debootstrap() {
        assert_eq!(layout_links("amd64"), ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]);
        assert_eq!(layout_links("arm64"), ["bin", "sbin", "lib"]);
        assert_eq!(layout_links("ppc64el"), ["bin", "sbin", "lib", "lib64"]);
        assert_eq!(layout_links("s390x"), ["bin", "sbin", "lib", "lib32"]);
    }

    #[test]
    fn replaces_keeps_versions_and_drops_nothing() {
        let mut control = Control::default();
        control.stanza.fields.push((
            "Replaces".into(),
            "bash-completion (<< 1:2.1-4.2~), libc-bin:amd64,\n  sh".into(),
        ));
        let relations: Vec<String> =
            replaces_of(&control).unwrap().iter().map(|r| r.to_string()).collect();
        assert_eq!(relations, ["bash-completion (<< 1:2.1-4.2~)", "libc-bin:amd64", "sh"]);
    }
}
