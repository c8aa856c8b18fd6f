//! `rootfs export`: every tree of the spec built, shipped in the format asked for, each export's summary said, and the exported OCI image put through structure test files when asked (with their JUnit report).

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Console;
use super::target::{self, Target};
use crate::UsageError;
use crate::build::Built;
use crate::export::{Compression, Exported, Format};
use crate::run::smoke::{Report, structure};

/// What `rootfs export` takes.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub target: Target,
    pub format: Format,
    /// `None`: beside the tree ([`Format::default_output`]).
    pub output: Option<PathBuf>,
    /// `None`: [`Format::default_compression`].
    pub compression: Option<Compression>,
    /// Rebuild the tree and write the export again, reusing no layer.
    pub force: bool,
    /// Structure test files run against the exported OCI image.
    pub structure_tests: Vec<PathBuf>,
    /// Also write the structure tests' results as JUnit XML here.
    pub junit: Option<PathBuf>,
}

/// What `rootfs export` wrote, and what the structure tests found.
pub struct ExportReport {
    pub exported: Vec<Exported>,
    /// The structure tests' results, when files were given.
    pub structure: Option<Report>,
}

impl ExportReport {
    /// Structure tests that failed.
    pub fn failed(&self) -> usize {
        self.structure.as_ref().map_or(0, Report::failed)
    }
}

/// Builds every tree, exports it, says each export's summary, then runs
/// the structure tests on the image and says their table.
pub fn export(options: &ExportOptions, console: &mut dyn Console) -> Result<ExportReport> {
    if !options.structure_tests.is_empty() && options.format != Format::Oci {
        return Err(UsageError(
            "--structure-test runs against an OCI image: use it with --format oci".into(),
        )
        .into());
    }
    let parts = target::built_parts(&options.target, options.force, console)?;
    for (_, one) in &parts {
        console.note(&one.summary());
    }
    let first = &parts[0].0;
    let export_options = crate::export::Options {
        format: options.format,
        output: options.output.clone(),
        compression: options.compression,
        epoch: first.epoch,
        force: options.force,
        sysroot: first.sysroot.clone(),
    };
    let built: Vec<Built> = parts.into_iter().map(|(_, b)| b).collect();
    let exported = crate::export::export_all(&built, &export_options)?;
    for one in &exported {
        console.line(&one.summary());
    }
    let structure = match options.structure_tests.is_empty() {
        true => None,
        false => Some(structure_tests(options, &built, &exported, console)?),
    };
    Ok(ExportReport { exported, structure })
}

/// The structure tests run on the one image exported, their table said
/// and their JUnit report written.
fn structure_tests(
    options: &ExportOptions,
    built: &[Built],
    exported: &[Exported],
    console: &mut dyn Console,
) -> Result<Report> {
    if built.len() > 1 {
        return Err(UsageError(
            "--structure-test reads one image: run it on a spec of one architecture".into(),
        )
        .into());
    }
    let (built, exported) = (&built[0], &exported[0]);
    let files = super::smoke::structure_files(&options.structure_tests)?;
    let report = structure::run_on_export(built, exported, &files, target::jobs(None))?;
    console.out(&report.table());
    if let Some(path) = &options.junit {
        let xml = report.junit(&format!("rootfs.{}.image", built.spec.name))?;
        crate::fsutil::write_file_atomically(path, xml.as_bytes())
            .with_context(|| format!("writing the JUnit report `{}`", path.display()))?;
    }
    Ok(report)
}
