//! What every command on a tree shares: the spec (or the caller's default), the output folders, the sysroot source merged with the spec's `[sysroot.debian]`, `--packages` checked, the epoch from `SOURCE_DATE_EPOCH`, and the trees of a multi-architecture spec built with their warnings said.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Console;
use crate::UsageError;
use crate::build::image_sysroot::SysrootSource;
use crate::build::install::LinkMode;
use crate::build::{self, Built};
use crate::multiarch::{self, Choice, Parts};

/// Where a spec's tree is and how it is built: the options every command
/// that works on a tree takes.
#[derive(Clone, Debug)]
pub struct Target {
    /// The spec file; `None` for `default_spec`.
    pub spec: Option<PathBuf>,
    /// The spec used when none is given (`rootfs-spec/default.toml` of the
    /// project, for the command line).
    pub default_spec: PathBuf,
    /// Where trees go by default (`<out_root>/<name>`) and where prepared
    /// sysroots are kept (`<out_root>/.sysroots/`).
    pub out_root: PathBuf,
    /// The output folder, instead of `<out_root>/<name>`.
    pub out: Option<PathBuf>,
    /// `--sysroot`; `None`: the spec's `[sysroot.debian]`, else `/`.
    pub sysroot: Option<SysrootSource>,
    /// `--packages`: the packages of a package sysroot, over the spec's.
    pub packages: Vec<String>,
    pub link: LinkMode,
    /// Refuse to build when the inputs differ from the lock.
    pub locked: bool,
    /// Say every change to the lock, not only the first ten.
    pub verbose: bool,
}

impl Target {
    /// The default spec, built into `out_root` with every other default.
    pub fn new(default_spec: impl Into<PathBuf>, out_root: impl Into<PathBuf>) -> Target {
        Target {
            spec: None,
            default_spec: default_spec.into(),
            out_root: out_root.into(),
            out: None,
            sysroot: None,
            packages: Vec::new(),
            link: LinkMode::Copy,
            locked: false,
            verbose: false,
        }
    }

    /// The spec file the command works on.
    pub fn spec_path(&self) -> PathBuf {
        self.spec.clone().unwrap_or_else(|| self.default_spec.clone())
    }
}

/// One tree to smoke or export: its build options and its build.
pub(super) type Part = (build::Options, Built);

/// The build of the spec; for a multi-architecture spec, the tree of this
/// machine's architecture when it is listed, else the first's (what
/// `shell`, `run`, `trace`, `why` and `portability` open).
pub(super) fn build_options(target: &Target, console: &mut dyn Console) -> Result<build::Options> {
    let mut parts = parts(target, Choice::One, console)?;
    Ok(parts.builds.swap_remove(0))
}

/// Every build the spec makes (one per architecture of a
/// multi-architecture spec), with `choice`'s trees; what preparing their
/// sysroots said is said first.
pub(super) fn parts(target: &Target, choice: Choice, console: &mut dyn Console) -> Result<Parts> {
    let spec = target.spec_path();
    let source = sysroot_source(target, &spec)?;
    let parts = multiarch::parts(&base_options(target, spec)?, &source, choice)?;
    for note in &parts.notes {
        console.note(note);
    }
    Ok(parts)
}

/// The build of `spec` as `target` asks, before its sysroot is prepared.
fn base_options(target: &Target, spec: PathBuf) -> Result<build::Options> {
    let mut options = build::Options::new(spec, &target.out_root);
    options.out = target.out.clone();
    options.locked = target.locked;
    options.link = target.link;
    options.epoch = epoch()?;
    options.progress = true;
    Ok(options)
}

/// `--sysroot`, or the spec's `[sysroot.debian]`, or `/`; a package
/// sysroot takes the spec's table with the flags' suite, architecture and
/// `--packages` over it.
fn sysroot_source(target: &Target, spec: &Path) -> Result<SysrootSource> {
    // The spec's table, and the packages its files say provide them.
    let from_spec = || -> Result<(Option<build::debian::DebianRequest>, Vec<String>)> {
        let loaded = crate::spec::load(spec)?;
        Ok((loaded.debian.map(|item| item.value), loaded.debian_packages))
    };
    let debian = |request| SysrootSource::Debian {
        request,
        lock: Some(build::lock::path_for(spec)),
        locked: target.locked,
    };
    let merge = build::debian::merge_request;
    let source = match &target.sysroot {
        Some(SysrootSource::Debian { request: flag, .. }) => {
            let (table, provided) = from_spec()?;
            debian(merge(table.as_ref(), Some(flag), &target.packages, &provided))
        }
        Some(other) => other.clone(),
        None => match from_spec()? {
            (Some(table), provided) => {
                debian(merge(Some(&table), None, &target.packages, &provided))
            }
            (None, _) => SysrootSource::Dir(PathBuf::from("/")),
        },
    };
    if !target.packages.is_empty() && !matches!(source, SysrootSource::Debian { .. }) {
        return Err(UsageError(
            "`--packages` needs a package sysroot: `--sysroot debian:SUITE[/ARCH]` or a spec with `[sysroot.debian]`".into(),
        )
        .into());
    }
    Ok(source)
}

/// Every tree of the spec built ([`multiarch::build_all`]), each one's
/// warnings and lock changes said.
pub(super) fn built_parts(
    target: &Target,
    force: bool,
    console: &mut dyn Console,
) -> Result<Vec<Part>> {
    let parts = parts(target, Choice::All, console)?;
    build_parts(target, parts, force, console)
}

/// Builds the trees of `parts`, made by [`parts`] with [`Choice::All`]
/// (for a caller that looked at them first: the sysroot is prepared once).
pub(super) fn build_parts(
    target: &Target,
    mut parts: Parts,
    force: bool,
    console: &mut dyn Console,
) -> Result<Vec<Part>> {
    for options in &mut parts.builds {
        options.force = force;
    }
    let built = multiarch::build_all(&parts)?;
    for one in &built {
        warn(one, target.verbose, console);
    }
    Ok(parts.builds.into_iter().zip(built).collect())
}

/// Builds one tree ([`multiarch::build_one`]) and says its warnings and
/// summary.
pub(super) fn built(
    target: &Target,
    options: &build::Options,
    console: &mut dyn Console,
) -> Result<Built> {
    let built = multiarch::build_one(options)?;
    warn(&built, target.verbose, console);
    console.note(&built.summary());
    Ok(built)
}

/// A build's warnings, then what changed in its lock.
fn warn(built: &Built, verbose: bool, console: &mut dyn Console) {
    for warning in &built.warnings {
        console.note(&format!("warning: {warning}"));
    }
    if let Some(text) = built.lock.as_ref().and_then(|update| update.summary(verbose)) {
        console.note(&text);
    }
}

/// The timestamp of every file: `SOURCE_DATE_EPOCH` when set.
fn epoch() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text.trim().parse().map_err(|_| {
            UsageError(format!("SOURCE_DATE_EPOCH must be a number of seconds, got `{text}`"))
                .into()
        }),
        Err(_) => Ok(build::DEFAULT_EPOCH),
    }
}

/// Checks run at once: `asked`, else the number of cores.
pub(super) fn jobs(asked: Option<usize>) -> usize {
    asked.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
