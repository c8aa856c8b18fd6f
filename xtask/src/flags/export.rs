//! `rootfs export`: its flags, the format and compression names mapped to the library's, and its one call.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use rootfs::command::ExportOptions;
use rootfs::export::{Compression, Format};

use super::target::Target;

#[derive(Args, Debug)]
pub struct Export {
    #[command(flatten)]
    pub target: Target,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Where to write it [default: beside the tree: target/rootfs/<name>.oci/,
    /// <name>.docker.tar, <name>.bundle/, <name>.tar, <name>.cpio.gz].
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// How layers and archives are compressed [default: gzip for oci and
    /// cpio, none for docker-archive and tar; a bundle is never compressed].
    #[arg(long, value_enum)]
    pub compression: Option<ExportCompression>,
    /// Rebuild the tree and write the export again, reusing no layer.
    #[arg(long)]
    pub force: bool,
    /// Then run this container-structure-test file against the exported
    /// OCI image, unpacked, as `smoke --structure-test` runs it against the
    /// tree; may be repeated.
    #[arg(long, value_name = "FILE")]
    pub structure_test: Vec<PathBuf>,
    /// Also write the structure tests' results as JUnit XML to this file.
    #[arg(long, value_name = "FILE", requires = "structure_test")]
    pub junit: Option<PathBuf>,
}

impl Export {
    pub fn run(self) -> Result<ExitCode> {
        let options = ExportOptions {
            target: self.target.options(),
            format: match self.format {
                ExportFormat::Oci => Format::Oci,
                ExportFormat::DockerArchive => Format::DockerArchive,
                ExportFormat::Bundle => Format::Bundle,
                ExportFormat::Tar => Format::Tar,
                ExportFormat::Cpio => Format::Cpio,
            },
            output: self.output,
            compression: self.compression.map(|c| match c {
                ExportCompression::Gzip => Compression::Gzip,
                ExportCompression::Zstd => Compression::Zstd,
                ExportCompression::None => Compression::None,
            }),
            force: self.force,
            structure_tests: self.structure_test,
            junit: self.junit,
        };
        let report = rootfs::command::export(&options, &mut rootfs::Terminal)?;
        Ok(if report.failed() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// An OCI image layout (image-spec 1.1), for skopeo, podman, umoci.
    Oci,
    /// A `docker save` archive, for `docker load` and `podman load`.
    DockerArchive,
    /// An OCI runtime bundle (config.json and rootfs/), for `runc run`.
    Bundle,
    /// The tree as one tar, for `docker import`, `machinectl import-tar`.
    Tar,
    /// A newc initramfs; the spec must provide /init.
    Cpio,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportCompression {
    Gzip,
    Zstd,
    None,
}
