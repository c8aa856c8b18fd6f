//! `rootfs export`: a built tree shipped as an OCI image layout, a docker archive, a runtime bundle, a tar or an initramfs, reproducibly, from the tree and its manifest alone.
//!
//! Every format reads the same `tree::Tree`: the manifest's entries,
//! checked against the tree on disk, with numeric owners. Nothing is read
//! from the host. The bytes written depend only on the tree, the spec's
//! `[image]` table, the epoch and the pinned compressors: two exports of the
//! same tree are identical, whatever the machine's number of cores.
//! Outputs are placed by `crate::build::output`'s rule (see `place`).

mod archive;
mod blobs;
mod bundle;
mod compress;
mod config;
pub(crate) mod cpio;
mod digest;
mod docker;
mod image;
mod layers;
mod oci;
mod owners;
mod place;
mod platform;
mod process;
mod tar;
mod tree;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

pub use self::compress::Compression;
pub use self::owners::Owners;
use crate::UsageError;
use crate::build::Built;

/// Where exports remember what the layers of the trees beside `out`
/// compress to (`.rootfs/layers.json`).
pub fn layer_cache_path(out: &Path) -> PathBuf {
    self::blobs::Cache::path_for(out)
}

/// What an export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// An OCI image layout folder (image-spec 1.1).
    Oci,
    /// A `docker save` archive.
    DockerArchive,
    /// An OCI runtime bundle folder: `config.json` and `rootfs/`.
    Bundle,
    /// The tree as one tar.
    Tar,
    /// A newc initramfs.
    Cpio,
}

impl Format {
    /// The compression used when none is asked for; `None` for the bundle,
    /// which is never compressed.
    pub fn default_compression(self) -> Option<Compression> {
        match self {
            Format::Oci | Format::Cpio => Some(Compression::Gzip),
            Format::DockerArchive | Format::Tar => Some(Compression::None),
            Format::Bundle => None,
        }
    }

    /// Where an export of the tree at `tree` goes by default: beside it,
    /// `<tree>.oci`, `<tree>.docker.tar`, `<tree>.bundle`, `<tree>.tar`,
    /// `<tree>.cpio.gz` (the suffix follows the compression).
    pub fn default_output(self, tree: &Path, compression: Compression) -> PathBuf {
        let suffix = match self {
            Format::Oci => ".oci".to_string(),
            Format::Bundle => ".bundle".to_string(),
            Format::DockerArchive => format!(".docker.tar{}", compression.extension()),
            Format::Tar => format!(".tar{}", compression.extension()),
            Format::Cpio => format!(".cpio{}", compression.extension()),
        };
        crate::fsutil::sibling(tree, &suffix)
    }

    /// How people call it.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Oci => "OCI image",
            Format::DockerArchive => "docker archive",
            Format::Bundle => "runtime bundle",
            Format::Tar => "tar",
            Format::Cpio => "initramfs",
        }
    }
}

impl Options {
    /// An export in `format` beside the tree, with the format's default
    /// compression, timestamps at the epoch 0, and the host as the sysroot.
    pub fn new(format: Format) -> Options {
        Options {
            format,
            output: None,
            compression: None,
            epoch: crate::build::DEFAULT_EPOCH,
            force: false,
            sysroot: PathBuf::from("/"),
        }
    }
}

/// How to export.
#[derive(Clone, Debug)]
pub struct Options {
    pub format: Format,
    /// `None`: [`Format::default_output`].
    pub output: Option<PathBuf>,
    /// `None`: [`Format::default_compression`].
    pub compression: Option<Compression>,
    /// The timestamp of every entry (`SOURCE_DATE_EPOCH`, as for the build).
    pub epoch: i64,
    /// Write everything again, reusing no layer.
    pub force: bool,
    /// The build's sysroot, which no output may be in or hold.
    pub sysroot: PathBuf,
}

/// What an export did.
#[derive(Clone, Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub format: Format,
    pub compression: Compression,
    /// The size of the file, or of the files in the folder.
    pub bytes: u64,
    /// The manifest digest of an OCI image; the image id (configuration
    /// digest) of a docker archive.
    pub digest: Option<String>,
    pub layers: Option<usize>,
    /// The images an OCI layout holds: one, or one per platform of a
    /// multi-architecture spec behind an image index.
    pub platforms: usize,
    /// The command the export chose for an image or bundle whose `[image]`
    /// names none, said in the summary.
    pub default_cmd: Option<String>,
    /// Nothing had to be written.
    pub up_to_date: bool,
    pub elapsed: Duration,
}

impl Exported {
    fn new(job: &Job, bytes: u64) -> Exported {
        Exported {
            path: job.output.clone(),
            format: job.format,
            compression: job.compression,
            bytes,
            digest: None,
            layers: None,
            platforms: 1,
            default_cmd: match job.format {
                Format::Oci | Format::DockerArchive | Format::Bundle => {
                    process::describe_default(&job.built.spec, &job.built.manifest)
                }
                Format::Tar | Format::Cpio => None,
            },
            up_to_date: false,
            elapsed: job.started.elapsed(),
        }
    }

    /// One line for people: the path, the size and, for images, the digest.
    pub fn summary(&self) -> String {
        let mut what = vec![self.format.describe().to_string()];
        if self.platforms > 1 {
            what.push(format!("{} platforms", self.platforms));
        }
        if let Some(layers) = self.layers {
            what.push(format!("{layers} layer{}", if layers == 1 { "" } else { "s" }));
        }
        match (self.format, self.compression) {
            (Format::Bundle, _) => {}
            (_, Compression::None) => what.push("uncompressed".to_string()),
            (_, compression) => what.push(compression.name().to_string()),
        }
        what.push(indicatif::HumanBytes(self.bytes).to_string());
        match (&self.digest, self.format) {
            (Some(digest), Format::Oci) if self.platforms > 1 => {
                what.push(format!("index {digest}"))
            }
            (Some(digest), Format::Oci) => what.push(format!("manifest {digest}")),
            (Some(digest), _) => what.push(format!("image {digest}")),
            (None, _) => {}
        }
        what.extend(self.default_cmd.clone());
        let seconds = self.elapsed.as_secs_f64();
        if self.up_to_date {
            format!(
                "{} is up to date ({}), checked in {seconds:.3} s",
                self.path.display(),
                what.join(", ")
            )
        } else {
            format!("exported {} ({}), in {seconds:.3} s", self.path.display(), what.join(", "))
        }
    }
}

/// One export under way: what each format's writer needs.
struct Job<'a> {
    built: &'a Built,
    tree: tree::Tree,
    format: Format,
    output: PathBuf,
    compression: Compression,
    force: bool,
    started: Instant,
}

/// Exports a built tree. Nothing is written when the output path holds
/// something this tool did not write (an [`crate::build::Refusal`]).
pub fn export(built: &Built, options: &Options) -> Result<Exported> {
    let started = Instant::now();
    let compression = compression_of(options)?;
    let output = options
        .output
        .clone()
        .unwrap_or_else(|| options.format.default_output(&built.out, compression));
    let job = job(built, options, compression, output, started)?;
    let mut exported = match options.format {
        Format::Oci => oci::write(&job),
        Format::DockerArchive => docker::write(&job),
        Format::Bundle => bundle::write(&job),
        Format::Tar => archive::write(&job),
        Format::Cpio => cpio::write(job),
    }?;
    exported.elapsed = started.elapsed();
    Ok(exported)
}

/// Exports the trees of a multi-architecture spec (`built`, one per
/// architecture, at `<out>/<arch>/`): as an OCI layout, one layout at
/// `<out>.oci` (or `--output`) whose `index.json` tags an image index with
/// one manifest per platform; in every other format, one export per tree
/// beside it (`<out>/<arch>.docker.tar`, `<out>/<arch>.bundle`, ...).
pub fn export_all(built: &[Built], options: &Options) -> Result<Vec<Exported>> {
    if built.len() == 1 {
        return Ok(vec![export(&built[0], options)?]);
    }
    if options.format != Format::Oci {
        if options.output.is_some() {
            let what = options.format.describe();
            return Err(UsageError(format!(
                "a multi-architecture spec writes one {what} per architecture, beside each tree: leave out --output"
            ))
            .into());
        }
        return built.iter().map(|one| export(one, options)).collect();
    }
    let started = Instant::now();
    let compression = compression_of(options)?;
    let output = match (&options.output, built[0].out.parent()) {
        (Some(output), _) => output.clone(),
        (None, Some(parent)) => options.format.default_output(parent, compression),
        (None, None) => anyhow::bail!("`{}` has no parent folder", built[0].out.display()),
    };
    let jobs = built
        .iter()
        .map(|one| job(one, options, compression, output.clone(), started))
        .collect::<Result<Vec<_>>>()?;
    let mut exported = oci::write_all(&jobs)?;
    exported.elapsed = started.elapsed();
    Ok(vec![exported])
}

/// The compression asked for, or the format's.
fn compression_of(options: &Options) -> Result<Compression> {
    match (options.format.default_compression(), options.compression) {
        (None, Some(_)) => {
            Err(UsageError("--compression does not apply to a runtime bundle".into()).into())
        }
        (None, None) => Ok(Compression::None),
        (Some(default), asked) => Ok(asked.unwrap_or(default)),
    }
}

/// One tree's export to `output`, claimed by `output`'s rule, with the
/// tree read and checked against its manifest.
fn job<'a>(
    built: &'a Built,
    options: &Options,
    compression: Compression,
    output: PathBuf,
    started: Instant,
) -> Result<Job<'a>> {
    place::claim(&options.sysroot, &built.out, &output)?;
    let owners = owners::Owners::of_spec(&built.spec, &built.out);
    let tree = tree::Tree::read(&built.out, &built.manifest, &owners, options.epoch)?;
    Ok(Job {
        built,
        tree,
        format: options.format,
        output,
        compression,
        force: options.force,
        started,
    })
}

/// The `config` object of the image an export of the tree writes (user,
/// environment, entrypoint, cmd, ports, volumes, working directory,
/// labels), as JSON: what a structure test's `metadataTest` reads of the
/// tree, the same as it reads of the exported image.
pub fn run_config(
    spec: &crate::spec::Spec,
    manifest: &crate::build::manifest::Manifest,
    tree: &Path,
) -> Result<serde_json::Value> {
    let process = process::Process::of_spec(spec, manifest)?;
    let platform = platform::of_tree(tree, &manifest.commands)?;
    let needs = manifest.portability.as_ref().map(image::needs_labels).unwrap_or_default();
    let bytes = config::image_config(platform, &process, &spec.image, &needs, &[], 0)?;
    let mut config: serde_json::Value = serde_json::from_slice(&bytes)?;
    Ok(config["config"].take())
}
