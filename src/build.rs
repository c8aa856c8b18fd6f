//! `rootfs build`: spec -> resolve -> plan -> install, skipped when the stamp says nothing changed.

pub mod debian;
pub mod digest_cache;
pub mod dpkg;
pub mod image_sysroot;
pub mod install;
pub mod license_cache;
pub mod lock;
pub mod manifest;
pub(crate) mod output;
pub mod owner_cache;
pub(crate) mod plan;
pub mod sbom;
pub mod sha1_cache;
pub(crate) mod side_file;
pub mod stamp;
pub(crate) mod unpacked;

mod beside;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use self::beside::Beside;
pub use self::output::Refusal;
use crate::resolve::portability::Portability;
use crate::resolve::{self, Resolver};
use crate::spec::{self, Spec};
use crate::vocab::{FileState, Sha256};
use digest_cache::Digests;
use install::{InstallOptions, LinkMode};
use manifest::Manifest;
use plan::Plan;
use stamp::{RecordedKey, Stamp, StampKey};

/// The timestamp given to every file when `SOURCE_DATE_EPOCH` is not set.
pub const DEFAULT_EPOCH: i64 = 0;

/// How to build.
#[derive(Clone, Debug)]
pub struct Options {
    /// The spec file.
    pub spec: PathBuf,
    /// The output folder; `None` for `<out_root>/<name>`.
    pub out: Option<PathBuf>,
    /// Where outputs go by default (`target/rootfs`).
    pub out_root: PathBuf,
    /// The host directory whose programs and libraries are copied.
    pub sysroot: PathBuf,
    pub link: LinkMode,
    /// Timestamp of every file (`SOURCE_DATE_EPOCH`).
    pub epoch: i64,
    /// Rebuild even when nothing changed.
    pub force: bool,
    pub progress: bool,
    /// Refuse to write anything when the inputs differ from the lock
    /// beside the spec (`--locked`).
    pub locked: bool,
    /// The digest of the image `sysroot` was unpacked from
    /// ([`image_sysroot::prepare`]), recorded in the lock.
    pub image: Option<String>,
    /// The package set a package sysroot was made from
    /// ([`image_sysroot::Prepared::packages`]), recorded in the lock.
    pub packages: Option<lock::PackageSet>,
    /// Where the lock is read and written; `None`: beside the spec
    /// ([`lock::path_for`]). A build script puts it under `OUT_DIR`.
    pub lock: Option<PathBuf>,
    /// The architecture of this tree when it is one of a
    /// multi-architecture spec's (`multiarch.rs`): the build reads
    /// that architecture's part of the lock ([`lock::Lock::part`]) and
    /// leaves writing the lock to `multiarch::build`.
    pub part: Option<String>,
}

impl Options {
    /// Options for `spec` with everything else at its default.
    pub fn new(spec: impl Into<PathBuf>, out_root: impl Into<PathBuf>) -> Options {
        Options {
            spec: spec.into(),
            out: None,
            out_root: out_root.into(),
            sysroot: PathBuf::from("/"),
            link: LinkMode::Copy,
            epoch: DEFAULT_EPOCH,
            force: false,
            progress: false,
            locked: false,
            image: None,
            packages: None,
            lock: None,
            part: None,
        }
    }
}

/// What a build did.
#[derive(Debug)]
pub struct Built {
    pub spec: Spec,
    pub out: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    /// Regular files and their total size.
    pub files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Nothing changed since the last build, so nothing was written.
    pub up_to_date: bool,
    /// Why the build ran (the first change seen), when it did.
    pub reason: Option<String>,
    /// What went wrong without making the tree wrong, for people.
    pub warnings: Vec<String>,
    /// What the build did to the lock; `None` when it was up to date.
    pub lock: Option<lock::Update>,
    /// For one architecture of a multi-architecture spec, its part of the
    /// lock, as computed, for `multiarch::build` to write; `None` when the
    /// build was up to date (the part on disk is current) or is not one.
    pub part_lock: Option<lock::Lock>,
}

impl Built {
    fn new(spec: Spec, beside: &Beside, manifest: Manifest, started: Instant) -> Built {
        let (files, bytes) = manifest.file_totals();
        Built {
            spec,
            out: beside.out.clone(),
            manifest_path: beside.manifest.clone(),
            manifest,
            files,
            bytes,
            elapsed: started.elapsed(),
            up_to_date: true,
            reason: None,
            warnings: Vec::new(),
            lock: None,
            part_lock: None,
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let size = indicatif::HumanBytes(self.bytes);
        if self.up_to_date {
            format!(
                "{} is up to date ({} files, {size}), checked in {:.3} s",
                self.out.display(),
                self.files,
                self.elapsed.as_secs_f64()
            )
        } else {
            let because = self.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            format!(
                "built {}: {} files, {size}, in {:.3} s{because}",
                self.out.display(),
                self.files,
                self.elapsed.as_secs_f64()
            )
        }
    }
}

/// The output folder of a spec.
pub fn out_dir(options: &Options, spec: &Spec) -> PathBuf {
    options.out.clone().unwrap_or_else(|| options.out_root.join(&spec.name))
}

/// Builds the rootfs a spec describes, or says it is up to date. Nothing is
/// written when the output path holds something this tool did not write
/// (an [`Refusal`]).
pub fn build(options: &Options) -> Result<Built> {
    let started = Instant::now();
    let spec = spec::load(&options.spec)?;
    let beside = Beside::of(&out_dir(options, &spec));
    let lock_path = options.lock.clone().unwrap_or_else(|| lock::path_for(&options.spec));
    output::Guard::new(&options.sysroot).check(&beside.out)?;
    let key = stamp_key(options, &spec)?;
    let specs = spec_digests(&spec);
    let reason = match freshness(options, &beside, &lock_path, &key, &specs) {
        Freshness::UpToDate(manifest) => return Ok(Built::new(spec, &beside, *manifest, started)),
        Freshness::Stale(reason) => reason,
    };
    // What is beside the tree is read while the spec is planned: planning
    // writes nothing, and its serial steps leave a core free. A refusal to
    // replace what is there still comes first.
    let (ahead, planned) =
        rayon::join(|| read_ahead(options, &beside, &lock_path), || plan_spec(options, &spec));
    let ReadAhead { previous_lock, known_digests, listed } = ahead?;
    let (resolver, plan) = planned?;
    let inputs = input_states(&plan, &beside.out, &resolver, listed.as_ref());
    let computed = compute_lock(options, &plan, &resolver, &known_digests, listed)?;
    // The lock is compared while the portability is read; `--locked` stops
    // at the lock, before anything is written, on any difference.
    let (locked, portability) = rayon::join(
        || check_lock(options, &lock_path, previous_lock, computed, &beside),
        || tree_portability(&plan, &resolver),
    );
    let Locked { computed, text, previous, update, digest, state } = locked?;
    check_cpu(&spec, &portability)?;
    let record = Record {
        portability,
        key,
        specs,
        inputs,
        digests_on_disk: computed.digests.is_empty(),
        owners_found: computed.owners_found,
        known_digests: known_digests.into_iter().chain(computed.digests).collect(),
        lock_digest: digest,
        lock_state: state,
        sbom: SbomSource {
            name: spec.name.clone(),
            owners: computed.owners,
            debs: options.packages.as_ref().map(sbom::debs_of).unwrap_or_default(),
        },
    };
    let plan_warnings = plan.warnings.clone();
    let (manifest, mut warnings) = install_and_commit(options, &beside, plan, resolver, record)?;
    warnings.splice(0..0, plan_warnings);
    write_lock(options, &beside, &lock_path, previous.as_ref(), (digest, &text))?;
    Ok(Built {
        up_to_date: false,
        reason: Some(reason),
        warnings,
        lock: Some(update),
        part_lock: options.part.is_some().then_some(computed.lock),
        ..Built::new(spec, &beside, manifest, started)
    })
}

/// What a build reads while the spec is planned: nothing of it depends on
/// the plan, and planning's serial steps leave a core free.
struct ReadAhead {
    /// The lock there is, parsed once the new one is known.
    previous_lock: Option<lock::Unparsed>,
    known_digests: Digests,
    /// The sysroot's dpkg database with every package's list; `None` when
    /// it could not be read now (it is read again, and its error given,
    /// when the lock is computed).
    listed: Option<dpkg::Listed>,
}

/// Claims the outputs' places ([`Beside::claim`]), then reads the lock
/// there is, the digest cache and the sysroot's dpkg database.
fn read_ahead(options: &Options, beside: &Beside, lock_path: &Path) -> Result<ReadAhead> {
    beside.claim(&beside::Written::default())?;
    let previous_lock = lock::read_unparsed(lock_path, options.part.as_deref())?;
    let sysroot = resolve::sysroot::Sysroot::new(&options.sysroot);
    Ok(ReadAhead {
        previous_lock,
        known_digests: digest_cache::read(&beside.digests),
        listed: dpkg::Database::read_listed(&sysroot, Some(&beside.owners)).ok().flatten(),
    })
}

/// Opens the sysroot and plans the spec in it.
fn plan_spec(options: &Options, spec: &Spec) -> Result<(Resolver, Plan)> {
    let resolver = open_sysroot(&options.sysroot, spec)?;
    let plan = plan::plan(spec, &resolver, system_files(options))
        .with_context(|| format!("planning `{}`", options.spec.display()))?;
    Ok((resolver, plan))
}

/// The lock of `plan`: its files pinned (a host lock), or the package set
/// and the host inputs (a package lock). The dpkg database read ahead
/// (`listed`) is dropped once used.
fn compute_lock(
    options: &Options,
    plan: &Plan,
    resolver: &Resolver,
    known_digests: &Digests,
    listed: Option<dpkg::Listed>,
) -> Result<lock::Computed> {
    lock::compute(
        plan,
        resolver.sysroot(),
        options.image.as_deref(),
        known_digests,
        options.packages.as_ref(),
        listed.as_ref(),
    )
    .with_context(|| format!("computing the lock of `{}`", options.spec.display()))
}

/// The sha256 of the lock the build leaves, and its state when the lock in
/// place stays: the stamp records it, so that a no-op build need not read
/// the lock (a lock written after the swap gets its state then).
fn lock_digest(
    options: &Options,
    previous: Option<&lock::OnDisk>,
    text: &str,
) -> (Sha256, Option<FileState>) {
    let digest = match (previous, options.locked) {
        (Some(previous), true) => previous.sha256,
        _ => Sha256::of(text.as_bytes()),
    };
    let state = previous.filter(|p| p.sha256 == digest).and_then(|p| p.state.clone());
    (digest, state)
}

/// The lock a build leaves, with what it was compared with.
struct Locked {
    computed: lock::Computed,
    /// The lock as written.
    text: String,
    /// The lock there was.
    previous: Option<lock::OnDisk>,
    update: lock::Update,
    /// The sha256 of the lock the build leaves, and its state when the
    /// lock in place stays ([`lock_digest`]).
    digest: Sha256,
    state: Option<FileState>,
}

/// The differences from the lock there was; with `--locked`, any of them
/// (or no lock at all) is a [`lock::Mismatch`]. The trees' listings are
/// dropped here: they only explain a changed tree, and are as long as it.
fn check_lock(
    options: &Options,
    path: &Path,
    previous: Option<lock::Unparsed>,
    mut now: lock::Computed,
    beside: &Beside,
) -> Result<Locked> {
    let text = now.lock.render()?;
    let previous = previous.map(|p| p.recognise(&now.lock, &text)).transpose()?;
    // The same bytes are the same lock: nothing to compare.
    let rendered = Sha256::of(text.as_bytes());
    let changed = previous.as_ref().filter(|p| p.sha256 != rendered);
    let mut changes = changed.map(|p| lock::diff(&p.lock, &now.lock)).unwrap_or_default();
    if let Some(changed) = changed {
        tree_detail(&mut changes, changed, &now, beside);
    }
    now.tree_listings = BTreeMap::new();
    if options.locked && (previous.is_none() || !changes.is_empty()) {
        return Err(lock::Mismatch { lock: path.to_path_buf(), changes }.into());
    }
    let update = lock::Update {
        path: path.to_path_buf(),
        created: previous.is_none(),
        changes,
        refreshed: false,
    };
    let (digest, state) = lock_digest(options, previous.as_ref(), &text);
    Ok(Locked { computed: now, text, previous, update, digest, state })
}

/// Each changed `[[trees]]` root, file by file: the lock keeps one digest
/// per tree, so the detail comes from the tree in place, when its stamp
/// says it was built from the lock there is (else there is nothing to
/// compare with, and the digests alone are said).
fn tree_detail(
    changes: &mut [lock::Change],
    previous: &lock::OnDisk,
    now: &lock::Computed,
    beside: &Beside,
) {
    let built_from_lock =
        Stamp::read(&beside.stamp).is_some_and(|s| s.lock == Some(previous.sha256));
    let manifest = built_from_lock.then(|| beside.current_manifest().ok()).flatten();
    let Some(manifest) = manifest else { return };
    for change in changes.iter_mut() {
        if let lock::Change::TreeDigest { root, detail, .. } = change
            && let Some(listing) = now.tree_listings.get(root)
        {
            *detail = lock::listing_changes(&lock::listing_in_manifest(&manifest, root), listing);
        }
    }
}

/// Whether the tree in place is what a build would write now.
enum Freshness {
    UpToDate(Box<Manifest>),
    /// The first reason it is not, for people.
    Stale(String),
}

fn freshness(
    options: &Options,
    beside: &Beside,
    lock_path: &Path,
    key: &StampKey,
    specs: &BTreeMap<PathBuf, Sha256>,
) -> Freshness {
    if options.force {
        return Freshness::Stale("--force".to_string());
    }
    let Some(stamp) = Stamp::read(&beside.stamp) else {
        return Freshness::Stale("no previous build".to_string());
    };
    if let Some(reason) = stamp.stale_reason(key, specs, &beside.out) {
        return Freshness::Stale(reason);
    }
    // The lock is read only when its state moved from the one recorded.
    let lock_unmoved = stamp.lock_state.is_some() && FileState::read(lock_path) == stamp.lock_state;
    let part = options.part.as_deref();
    if !lock_unmoved && let Some(reason) = lock::stale_reason(lock_path, stamp.lock, part) {
        return Freshness::Stale(reason);
    }
    if stamp.sbom.is_none() || FileState::read(&beside.sbom) != stamp.sbom {
        return Freshness::Stale("the SBOM changed".to_string());
    }
    match Manifest::read(&beside.manifest) {
        Ok(manifest) => Freshness::UpToDate(Box::new(manifest)),
        Err(_) => Freshness::Stale("the manifest is unreadable".to_string()),
    }
}

/// A package sysroot's tree takes its absolute `[[files]]` sources from
/// the packages too; any other reads them on the host, as always.
fn system_files(options: &Options) -> plan::SystemFiles {
    match options.packages {
        Some(_) => plan::SystemFiles::Sysroot,
        None => plan::SystemFiles::Host,
    }
}

fn open_sysroot(sysroot: &Path, spec: &Spec) -> Result<Resolver> {
    anyhow::ensure!(sysroot.is_dir(), "sysroot `{}` is not a directory", sysroot.display());
    let cpu = spec.cpu.as_ref().map(|c| c.value);
    let dlopen = spec.dlopen;
    Resolver::new(resolve::Options {
        sysroot: sysroot.to_path_buf(),
        dlopen,
        cpu,
        ..Default::default()
    })
    .with_context(|| format!("reading the loader configuration of `{}`", sysroot.display()))
}

/// The state of every input, taken before anything is copied: a file that
/// changes during the build then differs from its recorded state next
/// time. The output's own folder is written by this build: it is not an
/// input even when a command lives beside it. The sysroot's dpkg status
/// is one too: a package upgraded, removed or installed changes the lock
/// and the SBOM.
fn input_states(
    plan: &Plan,
    out: &Path,
    resolver: &Resolver,
    listed: Option<&dpkg::Listed>,
) -> Vec<(PathBuf, Option<FileState>)> {
    use rayon::prelude::*;
    let own = |p: &Path| p.starts_with(out) || Some(p) == out.parent();
    let status = resolver.sysroot().host(Path::new(dpkg::STATUS));
    let mut paths: Vec<&PathBuf> = plan.inputs.iter().filter(|p| !own(p)).collect();
    paths.push(&status);
    paths.par_sort_unstable();
    paths.dedup();
    // The status read ahead of planning has the state taken before it was.
    let state = |p: &PathBuf| match listed {
        Some(listed) if *p == status => listed.status_state.clone(),
        _ => FileState::read(p),
    };
    paths.into_par_iter().map(|p| (p.clone(), state(p))).collect()
}

/// What the files beside the tree are made of, besides the tree itself.
struct Record {
    portability: Portability,
    key: StampKey,
    specs: BTreeMap<PathBuf, Sha256>,
    inputs: Vec<(PathBuf, Option<FileState>)>,
    /// The digest cache with the digests the lock computed.
    known_digests: Digests,
    /// Whether the lock computed none: `known_digests` is then the cache
    /// as it was read.
    digests_on_disk: bool,
    /// The owners the lock found in the packages' lists, for the owner
    /// cache (`None`: remembered, nothing to write).
    owners_found: Option<dpkg::Found>,
    /// sha256 of the lock file the build leaves.
    lock_digest: Sha256,
    /// Its state, when the lock in place stays.
    lock_state: Option<FileState>,
    sbom: SbomSource,
}

/// What the SBOM is made from besides the tree: the licenses of the owning
/// packages are read while the tree is staged ([`sbom::Input::new`]).
struct SbomSource {
    name: String,
    owners: dpkg::Owners,
    debs: BTreeMap<String, sbom::Deb>,
}

/// Stages the tree, writes the files beside it as pending, swaps the tree
/// in, then commits the files beside it: at every point the manifest and
/// stamp in place describe the tree in place. Returns the new manifest.
/// The plan is dropped once staged: the files beside the tree are made
/// from the manifest, and a plan is as large as the tree's listing.
fn install_and_commit(
    options: &Options,
    beside: &Beside,
    plan: Plan,
    resolver: Resolver,
    mut record: Record,
) -> Result<(Manifest, Vec<String>)> {
    // The digests go to the installer and come back afterwards: a copy of
    // the map is one entry per file of the tree.
    let install_options = InstallOptions {
        epoch: options.epoch,
        link: options.link,
        progress: options.progress,
        known_digests: std::mem::take(&mut record.known_digests),
    };
    let record_digests_on_disk = record.digests_on_disk;
    let owners_found = record.owners_found.take();
    let source = std::mem::replace(&mut record.sbom, SbomSource::empty());
    let (staged, (sbom_input, licenses)) =
        stage_beside_licenses(options, beside, (plan, &install_options), (source, resolver));
    // Read once the plan is gone: the SBOM is the first to need it.
    let known_sha1s = sha1_cache::read(&beside.sha1s);
    let known_digests = install_options.known_digests;
    let mut staged = staged?;
    staged.manifest.portability = Some(record.portability.clone());
    sources_in_sysroot(&mut staged.manifest, options);
    let swapped = swap_in_with_pending(beside, &staged, record, sbom_input, &known_sha1s);
    let (previous, fresh_sha1s) = match swapped {
        Ok(swapped) => swapped,
        Err(e) => {
            let _ = install::remove(&staged.path);
            beside.discard_pending();
            return Err(e);
        }
    };
    beside.commit()?;
    let sha1s = (known_sha1s, fresh_sha1s);
    let digests = (known_digests, staged.digests, record_digests_on_disk);
    update_caches(beside, sha1s, digests, (licenses, owners_found), &staged.manifest)?;
    // The previous tree goes last: failing to remove it cannot leave the
    // new one without its manifest and stamp.
    let mut warnings = staged.warnings;
    if let Some(previous) = &previous
        && let Err(e) = install::remove(previous)
    {
        warnings.push(format!("the previous tree was kept at `{}`: {e:#}", previous.display()));
    }
    Ok((staged.manifest, warnings))
}

/// Stages the tree while the packages' licenses are read, and the resolver
/// dropped, on the core that staging leaves idle (hard links are quickly
/// made); returns the staged tree, the SBOM's input, and the license cache
/// as read with the copyright files translated now.
fn stage_beside_licenses(
    options: &Options,
    beside: &Beside,
    (plan, install_options): (Plan, &InstallOptions),
    (source, resolver): (SbomSource, Resolver),
) -> (Result<install::Staged>, (sbom::Input, (license_cache::Licenses, license_cache::Licenses))) {
    let out = &beside.out;
    rayon::join(
        || {
            let staged = install::stage(&plan, out, install_options)
                .with_context(|| format!("writing `{}`", out.display()));
            drop(plan);
            staged
        },
        || {
            let known = license_cache::read(&beside.licenses);
            let (input, fresh) = source.into_input(options.epoch, resolver, &known);
            (input, (known, fresh))
        },
    )
}

/// Writes the SHA1 cache (the `known` and `fresh` SHA1s of the contents
/// still in use), the digest cache (`known` and `fresh` digests of the
/// host files), the license cache (`known` and `fresh` translations of
/// copyright files) and the owner cache (the owners found now, if any), on
/// every core.
fn update_caches(
    beside: &Beside,
    (known_sha1s, fresh_sha1s): (sha1_cache::Sha1s, sha1_cache::Sha1s),
    (known, fresh, on_disk): (Digests, Digests, bool),
    ((known_licenses, fresh_licenses), owners): (
        (license_cache::Licenses, license_cache::Licenses),
        Option<dpkg::Found>,
    ),
    manifest: &Manifest,
) -> Result<()> {
    let live: HashSet<Sha256> = (known.values().chain(fresh.values()))
        .map(|(_, sha256)| *sha256)
        .chain(manifest.entries.iter().filter_map(|e| e.sha256))
        .collect();
    let ((sha1s, digests), licenses) = rayon::join(
        || {
            rayon::join(
                || sha1_cache::update(&beside.sha1s, known_sha1s, fresh_sha1s, &live),
                || digest_cache::update(&beside.digests, known, fresh, on_disk),
            )
        },
        || {
            let owners = owners
                .map_or(Ok(()), |(root, found)| owner_cache::update(&beside.owners, &root, found));
            license_cache::update(&beside.licenses, known_licenses, fresh_licenses).and(owners)
        },
    );
    sha1s.and(digests).and(licenses)
}

/// Writes the manifest, SBOM and stamp of the staged tree as pending, then
/// swaps the tree in; returns the previous tree's folder, to remove, and
/// the SBOM's fresh sha1 digests.
fn swap_in_with_pending(
    beside: &Beside,
    staged: &install::Staged,
    record: Record,
    sbom_input: sbom::Input,
    known_sha1s: &sha1_cache::Sha1s,
) -> Result<(Option<PathBuf>, sha1_cache::Sha1s)> {
    // The manifest with the state of every output, and the SBOM, on both
    // cores: neither reads the other, and the stamp needs both.
    let (manifest_side, sbom_side) = rayon::join(
        || -> Result<_> {
            let mut written = beside::Written::default();
            let state = beside.write_pending_manifest(&staged.manifest, &mut written)?;
            Ok((state, stamp::outputs(&staged.path, &staged.manifest), written))
        },
        || pending_sbom(beside, staged, sbom_input, known_sha1s),
    );
    let (manifest_state, outputs, mut written) = manifest_side?;
    let (sbom_state, sha1s, sbom_written) = sbom_side?;
    written.merge(sbom_written);
    let stamp = Stamp {
        key: RecordedKey::Fields(record.key),
        specs: record.specs,
        inputs: record.inputs,
        outputs,
        manifest: Some(manifest_state),
        lock: Some(record.lock_digest),
        lock_state: record.lock_state,
        sbom: Some(sbom_state),
    };
    beside.write_pending_stamp(&stamp, &mut written)?;
    drop(stamp);
    // The last look before replacing: the folder may have gained files
    // since the first one.
    beside.claim(&written)?;
    Ok((install::swap_in(&staged.path, &beside.out)?, sha1s))
}

/// Renders the SBOM of the staged tree and writes it as pending; returns
/// its state, the fresh sha1 digests, and the file as written.
fn pending_sbom(
    beside: &Beside,
    staged: &install::Staged,
    input: sbom::Input,
    known_sha1s: &sha1_cache::Sha1s,
) -> Result<(FileState, sha1_cache::Sha1s, beside::Written)> {
    let (sbom, sha1s) = sbom::render(&input, &staged.manifest, &staged.path, known_sha1s)?;
    // What each file beside the tree is made from is as long as the tree's
    // listing: none is kept once used.
    drop(input);
    let mut written = beside::Written::default();
    let state = beside.write_pending_sbom(|w| sbom.write(w), &mut written)?;
    Ok((state, sha1s, written))
}

impl SbomSource {
    fn empty() -> SbomSource {
        SbomSource { name: String::new(), owners: BTreeMap::new(), debs: BTreeMap::new() }
    }

    /// The SBOM's input, with the license of every owning package read
    /// through the resolver's sysroot (but for the copyright files `known`
    /// has in their present state, [`license_cache`]), and the copyright
    /// files read now; the resolver is not needed after.
    fn into_input(
        self,
        epoch: i64,
        resolver: Resolver,
        known: &license_cache::Licenses,
    ) -> (sbom::Input, license_cache::Licenses) {
        let (input, fresh) =
            sbom::Input::new(&self.name, epoch, self.owners, resolver.sysroot(), known);
        drop(resolver);
        (sbom::Input { debs: self.debs, ..input }, fresh)
    }
}

/// Writes the lock (`text`, whose sha256 is `digest`) when it differs from
/// the one there was, and records its state in the stamp; a tree of a
/// multi-architecture spec leaves the lock to `multiarch`.
fn write_lock(
    options: &Options,
    beside: &Beside,
    path: &Path,
    previous: Option<&lock::OnDisk>,
    (digest, text): (Sha256, &str),
) -> Result<()> {
    if options.part.is_none() && previous.is_none_or(|p| p.sha256 != digest) {
        let state = lock::write(path, text)?;
        record_lock_state(beside, state)?;
    }
    Ok(())
}

/// Adds the state of the lock just written to the stamp in place, which
/// the build committed before writing the lock (the lock is written only
/// once the tree is in place). Interrupted before this, the stamp has no
/// state, and the next build compares the lock's sha256 instead.
fn record_lock_state(beside: &Beside, state: FileState) -> Result<()> {
    let mut stamp = Stamp::read(&beside.stamp)
        .with_context(|| format!("failed to read `{}`", beside.stamp.display()))?;
    stamp.lock_state = Some(state);
    crate::fsutil::write_side_file_with(&beside.stamp, |w| stamp.write_json(w))
}

/// Writes each source inside an image or package sysroot as its path there
/// (`/usr/bin/bash`): such a sysroot is a cache folder whose place differs
/// from one machine (or checkout, or cache) to the next, while the manifest
/// must be the same wherever the same image or package set is built.
fn sources_in_sysroot(manifest: &mut Manifest, options: &Options) {
    if options.image.is_none() && options.packages.is_none() {
        return;
    }
    let sysroot = &options.sysroot;
    for entry in &mut manifest.entries {
        if let Some(inside) = entry.source.as_deref().and_then(|s| s.strip_prefix(sysroot).ok()) {
            entry.source = Some(Path::new("/").join(inside));
        }
    }
}

/// What the tree's ELF objects need of the machine, read through the
/// resolver so that files it already parsed are not read again.
fn tree_portability(plan: &Plan, resolver: &Resolver) -> Portability {
    use rayon::prelude::*;
    let files: Vec<(&PathBuf, &Path)> = plan
        .entries
        .iter()
        .filter_map(|(path, entry)| match &entry.kind {
            plan::EntryKind::File { host, .. } => Some((path, host.as_path())),
            _ => None,
        })
        .collect();
    let objects: Vec<(PathBuf, std::sync::Arc<crate::resolve::elf::Object>)> = files
        .par_iter()
        .filter_map(|(path, host)| Some(((*path).clone(), resolver.object_at_host(host)?)))
        .collect();
    crate::resolve::portability::report(&objects)
}

/// The objects that need more than the spec's `cpu` level: the loader
/// would refuse each of them on such a CPU ("CPU ISA level is lower than
/// required"), so the build fails before writing anything.
fn check_cpu(spec: &Spec, portability: &Portability) -> Result<()> {
    let Some(cap) = &spec.cpu else { return Ok(()) };
    let mut above = Vec::new();
    for (level, objects) in &portability.cpu_levels {
        if crate::resolve::elf::IsaLevel::parse(level).is_some_and(|l| l > cap.value) {
            above.extend(objects.iter().map(|o| format!("  {} needs {level}", o.display())));
        }
    }
    if above.is_empty() {
        return Ok(());
    }
    above.sort();
    let count = match above.len() {
        1 => "1 object needs".to_string(),
        n => format!("{n} objects need"),
    };
    anyhow::bail!(
        "{count} more than the spec's cpu = \"{}\" ({}):\n{}\nhelp: raise `cpu`, or take these files from a build for that level",
        cap.value.name(),
        cap.at,
        above.join("\n")
    )
}

fn spec_digests(spec: &Spec) -> BTreeMap<PathBuf, Sha256> {
    spec.sources.iter().map(|s| (canonical(&s.path), Sha256::of(s.text.as_bytes()))).collect()
}

/// The one spelling of a path the stamp records: `../dev.toml` from a
/// subfolder, `dev.toml` from its own folder and a path through a symlink
/// are the same spec, and must not look like a change.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Everything besides the inputs that decides the output: the tool's own
/// binary, and the options.
fn stamp_key(options: &Options, spec: &Spec) -> Result<StampKey> {
    let exe = std::env::current_exe().context("finding the running program")?;
    Ok(StampKey {
        version: env!("CARGO_PKG_VERSION").to_string(),
        exe: FileState::read(&exe),
        sysroot: canonical(&options.sysroot),
        link: format!("{:?}", options.link).to_lowercase(),
        epoch: options.epoch,
        spec: spec.name.clone(),
        // The hwcaps subdirectories searched depend on the CPU.
        cpu: crate::resolve::ldso::host_cpu(),
    })
}
