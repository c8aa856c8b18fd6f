//! The package sysroot's driver: from a `[sysroot.debian]` request to verified `.deb`s in the cache (resolve, then fetch), and the `prepare` step a build calls.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::cache::{self, Cache};
use super::fetch::{self, Http, SuiteIndex, Wanted};
use super::package::FetchedDeb;
use super::select::{self, Universe};
use super::source::{self, AptSources, ArchiveSource, DebianRequest};
use crate::vocab::Sha256;

/// Settings that are not part of the spec.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The cache folder; default: [`cache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// The apt sources that give default mirrors; default: this machine's,
    /// with `$ROOTFS_DEBIAN_MIRROR` ([`source::MIRROR_VAR`]) over them.
    pub apt: Option<AptSources>,
    /// Draw a progress bar (still only on a terminal).
    pub progress: bool,
    /// The lock file whose package set a build uses when it was made for
    /// the same request.
    pub lock: Option<PathBuf>,
    /// Refuse to resolve anew: the lock's set must fit the request.
    pub locked: bool,
}

impl Options {
    fn cache(&self) -> Result<Cache> {
        let dir = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => cache::default_dir()?,
        };
        Cache::open(&dir)
    }
}

/// What a suite's indexes were when a package set was resolved from them:
/// what a lock records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteState {
    pub mirror: String,
    pub suite: String,
    /// The SHA256 of the `InRelease`.
    pub inrelease_sha256: Sha256,
    /// Its `Date:`.
    pub date: String,
    /// Its distribution, as a purl's `distro` names it (`debian-12`).
    pub distro: Option<String>,
}

/// A resolved package set: the `.deb`s to fetch, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub source: ArchiveSource,
    /// The packages asked for.
    pub requested: Vec<String>,
    pub suites: Vec<SuiteState>,
    pub packages: Vec<Wanted>,
}

/// The request a build uses: the spec's `[sysroot.debian]` (if any), with
/// the suite and architecture of `--sysroot debian:SUITE[/ARCH]` over it
/// and `--packages` (when given) instead of its packages, then the spec's
/// `debian_packages` (`provided`: what its presets copy) added, repeats
/// dropped.
pub fn merge_request(
    spec: Option<&DebianRequest>,
    flag: Option<&DebianRequest>,
    packages: &[String],
    provided: &[String],
) -> DebianRequest {
    let mut request = spec.cloned().unwrap_or_default();
    if let Some(flag) = flag {
        request.suite = flag.suite.clone();
        if flag.architecture.is_some() {
            request.architecture = flag.architecture.clone();
        }
    }
    if !packages.is_empty() {
        request.packages = packages.to_vec();
    }
    for name in provided {
        if !request.packages.contains(name) {
            request.packages.push(name.clone());
        }
    }
    request
}

/// Fills in `request`'s defaults (`base` is the spec's folder, for a
/// relative keyring).
pub fn archive_source(
    request: &DebianRequest,
    base: &Path,
    options: &Options,
) -> Result<ArchiveSource> {
    let apt = match &options.apt {
        Some(apt) => apt.clone(),
        None => AptSources::from_host()?,
    };
    let mut request = request.clone();
    if request.mirror.is_none() && options.apt.is_none() {
        request.mirror = source::mirror_from_env();
    }
    source::resolve(&request, &apt, base)
}

/// Fetches and verifies the indexes, and selects the named packages and
/// their closure.
pub fn resolve(request: &DebianRequest, base: &Path, options: &Options) -> Result<Resolution> {
    if request.packages.is_empty() {
        bail!("a Debian sysroot needs `packages`");
    }
    let source = archive_source(request, base, options)?;
    let cache = options.cache()?;
    let indexes = fetch::fetch_indexes(&source, &cache, &Http::new())?;
    resolve_from(&source, &indexes, &request.packages)
}

/// Selects from already fetched indexes.
pub fn resolve_from(
    source: &ArchiveSource,
    indexes: &[SuiteIndex],
    asked: &[String],
) -> Result<Resolution> {
    let all = indexes.iter().flat_map(|index| &index.packages);
    let universe = Universe::new(all, &source.architecture);
    let suite_names: Vec<&str> = source.suites.iter().map(|s| s.suite.as_str()).collect();
    let selected = select::select(&universe, asked).with_context(|| {
        format!("resolving packages from {} ({})", suite_names.join(", "), source.architecture)
    })?;
    let packages = selected.into_iter().map(|p| Wanted::listed(p, source)).collect();
    let suites = indexes
        .iter()
        .map(|index| SuiteState {
            mirror: index.source.mirror.clone(),
            suite: index.source.suite.clone(),
            inrelease_sha256: index.inrelease_sha256,
            date: index.date.clone(),
            distro: index.distro.clone(),
        })
        .collect();
    Ok(Resolution { source: source.clone(), requested: asked.to_vec(), suites, packages })
}

/// Makes sure every package of `packages` is in the cache (downloading
/// only the missing ones; none at all when all are there) and returns
/// them as verified `.deb`s, in the same order.
pub fn fetch(packages: &[Wanted], options: &Options) -> Result<Vec<FetchedDeb>> {
    let cache = options.cache()?;
    fetch::fetch_debs(packages, &cache, &Http::new(), options.progress)
}

/// Resolves `request` and fetches its packages: from a spec's
/// `[sysroot.debian]` to verified `.deb`s.
pub fn fetch_request(
    request: &DebianRequest,
    base: &Path,
    options: &Options,
) -> Result<(Resolution, Vec<FetchedDeb>)> {
    let resolution = resolve(request, base, options)?;
    let debs = fetch(&resolution.packages, options)?;
    Ok((resolution, debs))
}

/// A package sysroot ready for the resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageSysroot {
    /// The folder to use as `/`.
    pub dir: PathBuf,
    /// The package set it was made from, for the lock.
    pub set: crate::build::lock::PackageSet,
    /// Whether it was unpacked now (rather than found in the cache).
    pub unpacked: bool,
    /// What the packages' maintainer scripts do that was not reproduced.
    pub not_reproduced: Vec<super::scripts::NotReproduced>,
}

/// The sysroot a build uses for `--sysroot debian:...` or a spec's
/// `[sysroot.debian]`: the lock's package set (or a new resolution) with
/// its `.deb`s verified in the cache.
/// [`prepare`] as `--sysroot debian:...` and a spec's `[sysroot.debian]`
/// use it: with a progress bar, the lock at `lock`, and what the scripts
/// would do that is not reproduced as notes, listed in full when the set
/// is unpacked and counted when it is reused.
pub fn prepared(
    request: &DebianRequest,
    lock: Option<PathBuf>,
    locked: bool,
    cache_root: &Path,
) -> Result<crate::build::unpacked::Prepared> {
    let options = Options { progress: true, lock, locked, ..Default::default() };
    let sysroot = prepare(request, Path::new("."), &options, cache_root)?;
    let notes = match sysroot.not_reproduced.len() {
        0 => Vec::new(),
        n if !sysroot.unpacked => vec![format!(
            "note: {n} maintainer-script effects of these packages are not reproduced (listed when the sysroot was unpacked)"
        )],
        _ => sysroot
            .not_reproduced
            .iter()
            .map(|n| format!("note: not reproduced from the maintainer scripts: {n}"))
            .collect(),
    };
    Ok(crate::build::unpacked::Prepared {
        dir: sysroot.dir,
        image: None,
        unpacked: sysroot.unpacked,
        packages: Some(sysroot.set),
        notes,
    })
}

/// The folder is `<cache_root>/deb-<digest of the set>/`, unpacked once
/// (see [`super::unpack::prepare`]).
pub fn prepare(
    request: &DebianRequest,
    base: &Path,
    options: &Options,
    cache_root: &Path,
) -> Result<PackageSysroot> {
    let (set, debs) = super::package_set::locked_or_resolved(request, base, options)?;
    let unpacked = super::unpack::prepare(&debs, cache_root)
        .with_context(|| format!("unpacking {} packages of {}", debs.len(), request.suite))?;
    Ok(PackageSysroot {
        dir: unpacked.dir,
        set,
        unpacked: unpacked.unpacked,
        not_reproduced: unpacked.not_reproduced,
    })
}
