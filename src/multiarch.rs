//! A multi-architecture spec (`architectures = [...]` in `[sysroot.debian]`): one tree per architecture at `<out>/<arch>/`, each with its files beside it in `<out>/.rootfs/<arch>.*`, all built from one lock that holds a package set per architecture.
//!
//! Each tree is an ordinary build ([`crate::build::build`]) whose options
//! name its architecture (`part`): it reads its own part of the lock
//! ([`crate::build::lock::Lock::part`]) and compares it under `--locked` as a
//! single-architecture build compares its lock, and leaves the lock file
//! alone. [`build()`] then writes the one lock: the host inputs once, and
//! `[architectures.<arch>]` for each listed architecture.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::UsageError;
use crate::build::image_sysroot::SysrootSource;
use crate::build::lock::{self, Lock};
use crate::build::manifest::Manifest;
use crate::build::{self, Built};
use crate::run::smoke::{self, Report, structure};
use crate::spec::Spec;

/// Which trees of a multi-architecture spec a command works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Every listed architecture's (`build`, `smoke`, `export`).
    All,
    /// One: this machine's architecture when it is listed, else the first
    /// listed (`shell`, `run`, `trace`, `why`, `portability`).
    One,
}

/// The builds a command runs, one per tree, with what preparing their
/// sysroots said for people.
#[derive(Debug)]
pub struct Parts {
    pub builds: Vec<build::Options>,
    /// The spec's architectures; empty for a spec of one.
    pub listed: Vec<String>,
    pub notes: Vec<String>,
}

/// The builds of a spec from `base` (its options with no sysroot prepared
/// yet; `out` the spec's output folder when given) and the sysroot
/// `source`: for a package sysroot whose request lists architectures, one
/// per chosen architecture (`--sysroot debian:SUITE/ARCH` keeps ARCH,
/// which must be listed), each tree at `<out>/<arch>/` with `part` set and
/// its own package sysroot; else the one build. Each sysroot is prepared
/// under `<out_root>/.sysroots/`.
pub fn parts(base: &build::Options, source: &SysrootSource, choice: Choice) -> Result<Parts> {
    let mut parts = Parts { builds: Vec::new(), listed: Vec::new(), notes: Vec::new() };
    let (request, lock, locked) = match source {
        SysrootSource::Debian { request, lock, locked } if !request.architectures.is_empty() => {
            (request, lock, *locked)
        }
        _ => {
            parts.builds.push(prepared(base, source, &mut parts.notes)?);
            return Ok(parts);
        }
    };
    parts.listed = request.architectures.clone();
    let out = match &base.out {
        Some(out) => out.clone(),
        None => base.out_root.join(crate::spec::load(&base.spec)?.name),
    };
    for arch in chosen(&base.spec, &request.architecture, &parts.listed, choice)? {
        let request = crate::build::debian::DebianRequest {
            architecture: Some(arch.clone()),
            ..request.clone()
        };
        let one = SysrootSource::Debian { request, lock: lock.clone(), locked };
        let mut options = prepared(base, &one, &mut parts.notes)?;
        options.out = Some(part_out(&out, &arch));
        options.part = Some(arch);
        parts.builds.push(options);
    }
    Ok(parts)
}

/// The architectures `choice` takes of `listed`; `asked`, an architecture
/// the command line named, must be one of them.
fn chosen(
    spec: &Path,
    asked: &Option<String>,
    listed: &[String],
    choice: Choice,
) -> Result<Vec<String>> {
    match asked {
        Some(arch) if listed.contains(arch) => Ok(vec![arch.clone()]),
        Some(arch) => Err(UsageError(format!(
            "`{}` lists the architectures {}, not `{arch}`",
            spec.display(),
            listed.join(", ")
        ))
        .into()),
        None if choice == Choice::One => {
            let host = crate::resolve::arch::Arch::host().map(|a| a.debian.to_string());
            Ok(vec![host.filter(|h| listed.contains(h)).unwrap_or_else(|| listed[0].clone())])
        }
        None => Ok(listed.to_vec()),
    }
}

/// `base` with the sysroot of `source` prepared (an image or package set
/// unpacked once into `<out_root>/.sysroots/<digest>/`).
fn prepared(
    base: &build::Options,
    source: &SysrootSource,
    notes: &mut Vec<String>,
) -> Result<build::Options> {
    let prepared = crate::build::image_sysroot::prepare(source, &base.out_root.join(".sysroots"))
        .with_context(|| format!("preparing the sysroot `{source}`"))?;
    notes.extend(prepared.notes);
    Ok(build::Options {
        sysroot: prepared.dir,
        image: prepared.image,
        packages: prepared.packages,
        ..base.clone()
    })
}

/// Builds every tree of `parts`: through [`build()`] for a
/// multi-architecture spec (which writes its one lock), else each alone.
pub fn build_all(parts: &Parts) -> Result<Vec<Built>> {
    match parts.listed.is_empty() {
        true => parts.builds.iter().map(build::build).collect(),
        false => build(&parts.builds, &parts.listed),
    }
}

/// Builds one tree; one architecture's of a multi-architecture spec
/// through [`build()`], with the spec's list, so the one lock is kept.
pub fn build_one(options: &build::Options) -> Result<Built> {
    if options.part.is_none() {
        return build::build(options);
    }
    let spec = crate::spec::load(&options.spec)?;
    let listed = spec.debian.map(|d| d.value.architectures).unwrap_or_default();
    let mut all = build(std::slice::from_ref(options), &listed)?;
    Ok(all.remove(0))
}

/// One tree to smoke: its build, spec, folder and manifest.
pub struct Tree {
    pub options: build::Options,
    pub spec: Spec,
    pub out: PathBuf,
    pub manifest: Manifest,
}

impl Tree {
    /// The tree of `options` in place, as its manifest describes it,
    /// without building.
    pub fn in_place(options: build::Options) -> Result<Tree> {
        let spec = crate::spec::load(&options.spec)?;
        let out = build::out_dir(&options, &spec);
        let manifest = build::Beside::of(&out).current_manifest()?;
        Ok(Tree { options, spec, out, manifest })
    }

    /// The tree a build made.
    pub fn built(options: build::Options, built: Built) -> Tree {
        Tree { options, spec: built.spec, out: built.out, manifest: built.manifest }
    }
}

/// How to smoke every tree.
pub struct SmokeOptions {
    pub jobs: usize,
    /// Structure test files given on the command line (the spec's own are
    /// added per tree).
    pub structure_tests: Vec<Arc<structure::StructureTests>>,
    pub cpus: Vec<crate::resolve::elf::IsaLevel>,
    pub kernels: Vec<crate::spec::KernelSource>,
    /// The program booted as init under another kernel.
    pub agent: PathBuf,
}

/// What one tree's smoke run gave.
pub struct Smoked {
    /// The tree's architecture, for a multi-architecture spec.
    pub arch: Option<String>,
    pub out: PathBuf,
    pub spec_name: String,
    /// For people: how the reference runs, and the run's own notes.
    pub notes: Vec<String>,
    pub report: Report,
    /// The runs on other CPU levels and kernels.
    pub others: Vec<crate::run::elsewhere::Elsewhere>,
}

impl Smoked {
    /// Checks that failed, in every run.
    pub fn failed(&self) -> usize {
        self.report.failed() + self.others.iter().map(|o| o.report.failed()).sum::<usize>()
    }

    /// The JUnit suite name and file of this tree's report for `--junit
    /// PATH`: `PATH` itself, or `<stem>-<arch>.xml` beside it for one
    /// architecture of several.
    pub fn junit(&self, path: &Path) -> (String, PathBuf) {
        match &self.arch {
            Some(arch) => {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let name = format!("{stem}-{arch}.xml");
                (format!("rootfs.{}.{arch}", self.spec_name), path.with_file_name(name))
            }
            None => (format!("rootfs.{}", self.spec_name), path.to_path_buf()),
        }
    }
}

/// Smokes every tree (with its spec's checks, structure tests, CPU levels
/// and kernels), one after the other; one result per tree, in order.
/// `multi` says the trees are a multi-architecture spec's.
pub fn smoke(trees: &[Tree], multi: bool, options: &SmokeOptions) -> Result<Vec<Smoked>> {
    trees.iter().map(|tree| smoke_tree(tree, multi, options)).collect()
}

fn smoke_tree(tree: &Tree, multi: bool, options: &SmokeOptions) -> Result<Smoked> {
    let (spec, manifest, out) = (&tree.spec, &tree.manifest, tree.out.as_path());
    let checks = smoke::checks(spec, manifest);
    let (reference, note) = smoke::reference(spec, manifest, out, &tree.options.sysroot);
    let run = smoke::Options { jobs: options.jobs, hostname: spec.name.clone(), reference };
    let mut files: Vec<_> = spec.smoke.structure_tests.iter().map(|t| t.value.clone()).collect();
    files.extend(options.structure_tests.iter().cloned());
    let report = if files.is_empty() {
        smoke::run(out, &checks, &run)?
    } else {
        let subject = structure::Subject::of_tree(spec, manifest, out)?;
        structure::run(&checks, &files, &subject, &spec.smoke, &run)?
    };
    // The spec's CPU levels and kernels, then those the command line adds.
    let mut cpus: Vec<_> = spec.smoke.cpus.iter().map(|c| c.value).collect();
    for level in &options.cpus {
        if !cpus.contains(level) {
            cpus.push(*level);
        }
    }
    let mut kernels: Vec<_> = spec.smoke.kernels.iter().map(|k| k.value.clone()).collect();
    kernels.extend(options.kernels.iter().cloned());
    let others = crate::run::elsewhere::run(out, &checks, &run, &cpus, &kernels, &options.agent)?;
    let mut notes: Vec<String> = note.into_iter().collect();
    notes.extend(report.notes.iter().cloned());
    Ok(Smoked {
        arch: tree.options.part.clone().filter(|_| multi),
        out: out.to_path_buf(),
        spec_name: spec.name.clone(),
        notes,
        report,
        others,
    })
}

/// The output folder of one architecture's tree, under the spec's output
/// folder `out` (`target/rootfs/<name>`).
pub fn part_out(out: &Path, arch: &str) -> PathBuf {
    out.join(arch)
}

/// Builds every tree of `parts` (one [`build::Options`] per architecture,
/// each with `part` set, all of one spec and lock), then writes the lock:
/// every architecture of `listed` (the spec's list), from the builds or,
/// for one not built now, from the lock there is. With `--locked`, a lock
/// that would change is refused instead.
pub fn build(parts: &[build::Options], listed: &[String]) -> Result<Vec<Built>> {
    let Some(first) = parts.first() else {
        bail!("a multi-architecture build needs an architecture")
    };
    let lock_path = first.lock.clone().unwrap_or_else(|| lock::path_for(&first.spec));
    let mut built = Vec::new();
    for options in parts {
        let arch = options.part.as_deref().context("a part build names its architecture")?;
        let one = build::build(options)
            .with_context(|| format!("building the {arch} tree of `{}`", options.spec.display()))?;
        built.push(one);
    }
    // Every part made the same new lock: said once.
    for later in built.iter_mut().skip(1) {
        if later.lock.as_ref().is_some_and(|update| update.created) {
            later.lock = None;
        }
    }
    let on_disk = lock::read(&lock_path)?;
    let mut locks: Vec<(String, Lock)> = Vec::new();
    for arch in listed {
        let now = parts.iter().zip(&built).find(|(o, _)| o.part.as_deref() == Some(arch));
        let part = match now.and_then(|(_, b)| b.part_lock.clone()) {
            Some(lock) => Some(lock),
            None => on_disk.as_ref().map(|d| d.lock.part(arch)).filter(|l| l.debian.is_some()),
        };
        if let Some(part) = part {
            locks.push((arch.clone(), part));
        }
    }
    let Some(merged) = Lock::merge_parts(locks) else { return Ok(built) };
    write_lock(&lock_path, &merged, on_disk.as_ref(), first.locked)?;
    Ok(built)
}

/// Writes the merged lock when its text differs from the file's; under
/// `--locked` that is an error (the parts matched, so what differs is
/// the list of architectures).
fn write_lock(
    path: &Path,
    merged: &Lock,
    on_disk: Option<&lock::OnDisk>,
    locked: bool,
) -> Result<()> {
    let text = merged.render()?;
    if on_disk.is_some_and(|d| d.sha256 == crate::vocab::Sha256::of(text.as_bytes())) {
        return Ok(());
    }
    if locked {
        let was: Vec<&String> =
            on_disk.map(|d| d.lock.architectures.keys().collect()).unwrap_or_default();
        let now: Vec<&String> = merged.architectures.keys().collect();
        bail!(
            "the lock `{}` holds the architectures {was:?} and the spec lists {now:?}: run without `--locked` to rewrite it",
            path.display()
        );
    }
    lock::write(path, &text).map(|_| ())
}
