//! `rootfs build`: spec -> resolve -> plan -> install, skipped when the stamp says nothing changed.

mod beside;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use self::beside::Beside;
use crate::digest_cache;
use crate::install::{self, InstallOptions, LinkMode};
use crate::manifest::Manifest;
use crate::output;
use crate::plan::{self, Plan};
use crate::resolve::{self, Resolver};
use crate::spec::{self, Spec};
use crate::stamp::{FileState, Stamp};

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
/// (an [`output::Refusal`]).
pub fn build(options: &Options) -> Result<Built> {
    let started = Instant::now();
    let spec = spec::load(&options.spec)?;
    let beside = Beside::of(&out_dir(options, &spec));
    output::Guard::new(&options.sysroot).check(&beside.out)?;
    let key = stamp_key(options, &spec)?;
    let specs = spec_digests(&spec);
    let reason = match freshness(options, &beside, &key, &specs) {
        Freshness::UpToDate(manifest) => return Ok(Built::new(spec, &beside, manifest, started)),
        Freshness::Stale(reason) => reason,
    };
    beside.claim()?;
    let resolver = open_sysroot(&options.sysroot, spec.dlopen)?;
    let plan = plan::plan(&spec, &resolver)
        .with_context(|| format!("planning `{}`", options.spec.display()))?;
    let inputs = input_states(&plan, &beside.out);
    let (manifest, mut warnings) = install_and_commit(options, &beside, &plan, key, specs, inputs)?;
    warnings.splice(0..0, plan.warnings.iter().cloned());
    let mut built = Built::new(spec, &beside, manifest, started);
    built.up_to_date = false;
    built.reason = Some(reason);
    built.warnings = warnings;
    Ok(built)
}

/// Whether the tree in place is what a build would write now.
enum Freshness {
    UpToDate(Manifest),
    /// The first reason it is not, for people.
    Stale(String),
}

fn freshness(
    options: &Options,
    beside: &Beside,
    key: &str,
    specs: &BTreeMap<PathBuf, String>,
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
    match Manifest::read(&beside.manifest) {
        Ok(manifest) => Freshness::UpToDate(manifest),
        Err(_) => Freshness::Stale("the manifest is unreadable".to_string()),
    }
}

fn open_sysroot(sysroot: &Path, dlopen: resolve::DlopenLevel) -> Result<Resolver> {
    anyhow::ensure!(sysroot.is_dir(), "sysroot `{}` is not a directory", sysroot.display());
    Resolver::new(resolve::Options { sysroot: sysroot.to_path_buf(), dlopen, ..Default::default() })
        .with_context(|| format!("reading the loader configuration of `{}`", sysroot.display()))
}

/// The state of every input, taken before anything is copied: a file that
/// changes during the build then differs from its recorded state next
/// time. The output's own folder is written by this build: it is not an
/// input even when a command lives beside it.
fn input_states(plan: &Plan, out: &Path) -> BTreeMap<PathBuf, Option<FileState>> {
    let own = |p: &Path| p.starts_with(out) || Some(p) == out.parent();
    plan.inputs.iter().filter(|p| !own(p)).map(|p| (p.clone(), FileState::read(p))).collect()
}

/// Stages the tree, writes the files beside it as pending, swaps the tree
/// in, then commits the files beside it: at every point the manifest and
/// stamp in place describe the tree in place. Returns the new manifest.
fn install_and_commit(
    options: &Options,
    beside: &Beside,
    plan: &Plan,
    key: String,
    specs: BTreeMap<PathBuf, String>,
    inputs: BTreeMap<PathBuf, Option<FileState>>,
) -> Result<(Manifest, Vec<String>)> {
    let known_digests = digest_cache::read(&beside.digests);
    let install_options = InstallOptions {
        epoch: options.epoch,
        link: options.link,
        progress: options.progress,
        known_digests: known_digests.clone(),
    };
    let out = &beside.out;
    let staged = install::stage(plan, out, &install_options)
        .with_context(|| format!("writing `{}`", out.display()))?;
    let swapped = (|| -> Result<Option<PathBuf>> {
        let manifest_state = beside.write_pending_manifest(&staged.manifest)?;
        let stamp = Stamp {
            key,
            specs,
            inputs,
            outputs: crate::stamp::outputs(&staged.path, &staged.manifest),
            manifest: Some(manifest_state),
        };
        beside.write_pending_stamp(&stamp)?;
        // The last look before replacing: the folder may have gained files
        // since the first one.
        beside.claim()?;
        install::swap_in(&staged.path, out)
    })();
    let previous = match swapped {
        Ok(previous) => previous,
        Err(e) => {
            let _ = install::remove(&staged.path);
            beside.discard_pending();
            return Err(e);
        }
    };
    beside.commit()?;
    digest_cache::update(&beside.digests, known_digests, staged.digests)?;
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

fn spec_digests(spec: &Spec) -> BTreeMap<PathBuf, String> {
    spec.sources
        .iter()
        .map(|s| (absolute(&s.path), crate::fsutil::sha256_hex(s.text.as_bytes())))
        .collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Everything besides the inputs that decides the output: the tool's own
/// binary, and the options.
fn stamp_key(options: &Options, spec: &Spec) -> Result<String> {
    let exe = std::env::current_exe().context("finding the running program")?;
    let exe_state = FileState::read(&exe)
        .map(|s| format!("{}:{}:{}", s.size, s.mtime_ns, s.ino))
        .unwrap_or_default();
    Ok(format!(
        "rootfs {} exe={exe_state} sysroot={} link={:?} epoch={} spec={} cpu={}",
        env!("CARGO_PKG_VERSION"),
        absolute(&options.sysroot).display(),
        options.link,
        options.epoch,
        spec.name,
        // The hwcaps subdirectories searched depend on the CPU.
        crate::ldso::host_cpu()
    ))
}
