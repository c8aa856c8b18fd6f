//! The flags every command on a tree shares (`Target`), the network flag of `shell`, `run` and `trace`, and their conversion into the library's options.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rootfs::build::image_sysroot::SysrootSource;

use crate::{out_root, project_root};

/// Where a spec's rootfs is: shared by every command that works on a tree.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The spec file [default: rootfs-spec/default.toml].
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// The output folder [default: target/rootfs/<name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Take programs and libraries from this directory instead of `/`, from
    /// an image: oci:DIR[:TAG] (an OCI image layout) or tar:FILE, or from
    /// Debian packages: debian:SUITE[/ARCH] [default: the spec's
    /// `[sysroot.debian]` if it has one, else /].
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<SysrootSource>,
    /// The Debian packages of a package sysroot, comma-separated (replaces
    /// the spec's `packages`).
    #[arg(long, value_name = "PKGS", value_delimiter = ',')]
    pub packages: Vec<String>,
    /// How files get into the tree.
    #[arg(long, value_enum, default_value_t = Link::Copy)]
    pub link: Link,
    /// Refuse to build when the inputs differ from the lock beside the spec
    /// (exit status 1, one line per difference, nothing written).
    #[arg(long)]
    pub locked: bool,
    /// List every change to the lock, not only the first ten.
    #[arg(long)]
    pub verbose: bool,
}

/// The project's defaults: `rootfs-spec/default.toml`, built under
/// `target/rootfs`.
pub fn defaults() -> rootfs::Target {
    rootfs::Target::new(project_root().join(rootfs::spec::DEFAULT_SPEC), out_root())
}

impl Target {
    /// These flags as the library takes them.
    pub fn options(&self) -> rootfs::Target {
        rootfs::Target {
            spec: self.spec.clone(),
            out: self.out.clone(),
            sysroot: self.sysroot.clone(),
            packages: self.packages.clone(),
            link: match self.link {
                Link::Copy => rootfs::build::install::LinkMode::Copy,
                Link::Hard => rootfs::build::install::LinkMode::Hard,
            },
            locked: self.locked,
            verbose: self.verbose,
            ..defaults()
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Link {
    /// Copy every file (reflinks where the filesystem supports them).
    Copy,
    /// Hard-link host files instead: fast, but a write in the tree writes the host file.
    Hard,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Network {
    None,
    Host,
}

impl Network {
    pub fn spec(self) -> rootfs::vocab::Network {
        match self {
            Network::None => rootfs::vocab::Network::None,
            Network::Host => rootfs::vocab::Network::Host,
        }
    }
}
