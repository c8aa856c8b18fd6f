//! `rootfs smoke`: every tree of the spec built (or taken as it stands), its checks and structure tests run on it and judged against the sysroot, again on other CPU levels and kernels, each tree's tables said and its JUnit report written.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::Console;
use super::target::{self, Target};
use crate::UsageError;
use crate::multiarch::{self, Choice, Smoked, Tree};
use crate::resolve::elf::IsaLevel;
use crate::run::smoke::structure::{self, StructureTests};
use crate::spec::KernelSource;

/// What `rootfs smoke` takes.
#[derive(Clone, Debug)]
pub struct SmokeOptions {
    pub target: Target,
    /// Also write the results as JUnit XML here (one file per architecture
    /// beside it for a multi-architecture spec).
    pub junit: Option<PathBuf>,
    /// Checks run at once; `None`: the number of cores.
    pub jobs: Option<usize>,
    /// Smoke the tree as it stands, without building it first.
    pub no_build: bool,
    /// Structure test files run on top of the spec's.
    pub structure_tests: Vec<PathBuf>,
    /// `--cpu`: x86-64 levels as the user wrote them, added to the spec's
    /// `[smoke] cpus`; checked once the trees are ready, as the command
    /// line has always done.
    pub cpus: Vec<String>,
    /// `--kernel`: a file or `debian:SUITE`, added to the spec's
    /// `[smoke] kernels`; a relative path is taken from the current
    /// directory.
    pub kernels: Vec<String>,
}

impl SmokeOptions {
    /// Smoke `target` with every default.
    pub fn new(target: Target) -> SmokeOptions {
        SmokeOptions {
            target,
            junit: None,
            jobs: None,
            no_build: false,
            structure_tests: Vec::new(),
            cpus: Vec::new(),
            kernels: Vec::new(),
        }
    }
}

/// What `rootfs smoke` found: one result per tree.
pub struct SmokeReport {
    pub smoked: Vec<Smoked>,
}

impl SmokeReport {
    /// Checks that failed, on every tree and in every run.
    pub fn failed(&self) -> usize {
        self.smoked.iter().map(Smoked::failed).sum()
    }
}

/// Smokes every tree of the spec, then says each tree's tables.
pub fn smoke(options: &SmokeOptions, console: &mut dyn Console) -> Result<SmokeReport> {
    let parts = target::parts(&options.target, Choice::All, console)?;
    // A check's bind whose host path is missing costs no build.
    if let Some(first) = parts.builds.first() {
        let loaded = crate::spec::load(&first.spec)?;
        crate::run::devenv::check_bind_sources(
            loaded.smoke.checks.iter().flat_map(|c| &c.value.binds),
        )?;
    }
    let multi = !parts.listed.is_empty();
    let trees: Vec<Tree> = if options.no_build {
        parts.builds.into_iter().map(Tree::in_place).collect::<Result<_>>()?
    } else {
        let built = target::build_parts(&options.target, parts, false, console)?;
        for (_, one) in &built {
            console.note(&one.summary());
        }
        built.into_iter().map(|(o, b)| Tree::built(o, b)).collect()
    };
    let (cpus, kernels) = elsewhere(options)?;
    let run = multiarch::SmokeOptions {
        jobs: target::jobs(options.jobs),
        structure_tests: structure_files(&options.structure_tests)?,
        cpus,
        kernels,
        agent: crate::run::kernel_smoke::this_program()?,
    };
    let smoked = multiarch::smoke(&trees, multi, &run)?;
    for one in &smoked {
        say(one, options.junit.as_ref(), console)?;
    }
    Ok(SmokeReport { smoked })
}

/// One tree's tables (and its JUnit report, when asked).
fn say(smoked: &Smoked, junit: Option<&PathBuf>, console: &mut dyn Console) -> Result<()> {
    if let Some(arch) = &smoked.arch {
        console.line(&format!("{arch} ({}):", smoked.out.display()));
    }
    for note in &smoked.notes {
        console.note(note);
    }
    console.out(&smoked.report.table());
    if let Some(path) = junit {
        let (suite, path) = smoked.junit(path);
        let xml = smoked.report.junit(&suite)?;
        crate::fsutil::write_file_atomically(&path, xml.as_bytes())
            .with_context(|| format!("writing the JUnit report `{}`", path.display()))?;
    }
    for other in &smoked.others {
        console.line(&format!("\non {}:", other.name));
        for note in &other.report.notes {
            console.note(note);
        }
        console.out(&other.report.table());
    }
    if !smoked.others.is_empty() {
        console
            .out(&format!("\n{}", crate::run::elsewhere::matrix(&smoked.report, &smoked.others)));
    }
    Ok(())
}

/// The CPU levels and kernels the options add to the spec's.
fn elsewhere(options: &SmokeOptions) -> Result<(Vec<IsaLevel>, Vec<KernelSource>)> {
    let mut cpus = Vec::new();
    for name in &options.cpus {
        let level = IsaLevel::parse(name).ok_or_else(|| {
            UsageError(format!("invalid CPU level `{name}`: use x86-64-v1, x86-64-v2 or x86-64-v3"))
        })?;
        cpus.push(level);
    }
    let mut kernels = Vec::new();
    let here = std::env::current_dir().context("reading the current directory")?;
    for text in &options.kernels {
        let kernel = KernelSource::parse(text, &here)
            .map_err(|why| UsageError(format!("{why}: {}", crate::spec::KERNEL_HELP)))?;
        kernels.push(kernel);
    }
    Ok((cpus, kernels))
}

/// The structure test files `given`, each read and checked.
pub(super) fn structure_files(given: &[PathBuf]) -> Result<Vec<Arc<StructureTests>>> {
    given.iter().map(|path| Ok(Arc::new(structure::load(path)?))).collect()
}
