//! Building a tree from a crate's `build.rs`: everything under `OUT_DIR`, and cargo told every input the build read, so `cargo build` reruns the build script exactly when one of them changes.
//!
//! ```no_run
//! // build.rs
//! fn main() -> anyhow::Result<()> {
//!     let mut options = rootfs::build_script::Options::new("rootfs.toml");
//!     options.export = Some(rootfs::export::Format::Cpio);
//!     let outputs = rootfs::build_script::run(&options)?;
//!     outputs.emit();
//!     Ok(())
//! }
//! ```
//!
//! The binary then embeds the initramfs with
//! `include_bytes!(concat!(env!("OUT_DIR"), "/rootfs/NAME.cpio.gz"))`.
//!
//! What cargo is told (`cargo:rerun-if-changed=`): the spec and its
//! includes, and every host file and directory the build's stamp records
//! as an input (programs, libraries, symlinks, `[[files]]` sources, the
//! directories the loader searched, the loader's cache). Cargo scans a
//! directory named this way for any newer file in it, so a library that
//! appears in a searched directory reruns the build, as it changes the
//! stamp. Inputs that did not exist are left out: cargo reruns a build
//! script on every build while a path it was told about is missing, and
//! such a path, once created, changes its directory. `SOURCE_DATE_EPOCH`
//! is watched with `cargo:rerun-if-env-changed=`.
//!
//! It never writes outside `OUT_DIR` (the tree, the files beside it and
//! the lock all go to `OUT_DIR/rootfs/`), needs no privilege (nothing is
//! entered), and never prompts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::build::stamp::Stamp;
use crate::build::{self, Beside, Built};
use crate::export::{self, Format};

/// What to build from a build script.
#[derive(Clone, Debug)]
pub struct Options {
    /// The spec, relative to the crate (`CARGO_MANIFEST_DIR`) or absolute.
    pub spec: PathBuf,
    /// Also export the tree in this format, beside it under `OUT_DIR`.
    pub export: Option<Format>,
    /// The export's compression; `None`: the format's default.
    pub compression: Option<export::Compression>,
    /// Where everything goes; `None`: the `OUT_DIR` cargo gives the build
    /// script.
    pub out_dir: Option<PathBuf>,
}

impl Options {
    /// Build `spec` into `OUT_DIR`, with no export.
    pub fn new(spec: impl Into<PathBuf>) -> Options {
        Options { spec: spec.into(), export: None, compression: None, out_dir: None }
    }
}

/// What a build script made, and what it must tell cargo.
#[derive(Debug)]
pub struct Outputs {
    pub built: Built,
    /// The export, when one was asked for.
    pub exported: Option<export::Exported>,
    /// The lines for cargo (`cargo:rerun-if-changed=...`,
    /// `cargo:rerun-if-env-changed=...`, `cargo:warning=...`), sorted within
    /// each kind.
    pub directives: Vec<String>,
}

impl Outputs {
    /// Prints the directives on standard output, where cargo reads them.
    pub fn emit(&self) {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        for line in &self.directives {
            let _ = writeln!(stdout, "{line}");
        }
    }
}

/// The variable that sets every timestamp of the tree.
const EPOCH_VAR: &str = "SOURCE_DATE_EPOCH";

/// Builds (and exports) the spec under `OUT_DIR`, and lists what cargo must
/// watch. A build whose inputs did not change is a no-op, as from the
/// command line.
pub fn run(options: &Options) -> Result<Outputs> {
    let out_dir = match &options.out_dir {
        Some(dir) => dir.clone(),
        None => std::env::var_os("OUT_DIR")
            .map(PathBuf::from)
            .context("OUT_DIR is not set: rootfs::build_script::run is for build scripts")?,
    };
    let spec = match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) if options.spec.is_relative() => Path::new(&dir).join(&options.spec),
        _ => options.spec.clone(),
    };
    let out_root = out_dir.join("rootfs");
    let mut build_options = build::Options::new(&spec, &out_root);
    build_options.epoch = epoch()?;
    let stem = spec.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    build_options.lock = Some(out_root.join(format!("{stem}.lock")));
    let built = build::build(&build_options)
        .with_context(|| format!("building `{}` for the build script", spec.display()))?;
    let exported = match options.export {
        Some(format) => {
            let mut export_options = export::Options::new(format);
            export_options.compression = options.compression;
            export_options.epoch = build_options.epoch;
            Some(export::export(&built, &export_options).with_context(|| {
                format!("exporting `{}` as {}", built.out.display(), format.describe())
            })?)
        }
        None => None,
    };
    let directives = directives(&built)?;
    Ok(Outputs { built, exported, directives })
}

fn epoch() -> Result<i64> {
    match std::env::var(EPOCH_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .with_context(|| format!("{EPOCH_VAR} must be a number of seconds, got `{text}`")),
        Err(_) => Ok(build::DEFAULT_EPOCH),
    }
}

/// The directives for a build: every spec file and existing input from the
/// stamp, the epoch variable, and the build's warnings.
fn directives(built: &Built) -> Result<Vec<String>> {
    let beside = Beside::of(&built.out);
    let stamp = Stamp::read(&beside.stamp)
        .with_context(|| format!("reading the stamp `{}`", beside.stamp.display()))?;
    let mut watched: Vec<&Path> = stamp.specs.keys().map(PathBuf::as_path).collect();
    watched
        .extend(stamp.inputs.iter().filter(|(_, state)| state.is_some()).map(|(p, _)| p.as_path()));
    watched.sort();
    watched.dedup();
    let mut lines = vec![format!("cargo:rerun-if-env-changed={EPOCH_VAR}")];
    for path in watched {
        // Cargo reads one path per line: a path holding a newline cannot
        // be named, and is left to the stamp.
        let text = path.display().to_string();
        if !text.contains('\n') {
            lines.push(format!("cargo:rerun-if-changed={text}"));
        }
    }
    for warning in &built.warnings {
        lines.push(format!("cargo:warning={}", warning.replace('\n', " ")));
    }
    Ok(lines)
}
