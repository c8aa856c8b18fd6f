//! The exported image as structure tests see it: an OCI image layout unpacked (by the image sysroot's own code), with its configuration, the owners its layers record and the SBOM attached to it.

use std::path::Path;

use anyhow::Result;

use super::{ImageConfig, Owners, Subject};
use crate::UsageError;
use crate::build::image_sysroot::{self, SysrootSource};
use crate::export::{Exported, Format};

impl Subject {
    /// What `export` wrote, read back: an OCI image unpacked under `cache`
    /// (a folder named by its manifest digest, reused while the image is
    /// unchanged), with the SBOM attached to it.
    pub fn of_export(exported: &Exported, cache: &Path) -> Result<Subject> {
        match exported.format {
            Format::Oci => {
                let source = SysrootSource::Oci { layout: exported.path.clone(), tag: None };
                let prepared = image_sysroot::prepare(&source, cache)?;
                let (config, owners) = image_sysroot::config_and_owners(&exported.path)?;
                Ok(Subject {
                    root: prepared.dir,
                    config: ImageConfig::of_oci(&config),
                    owners: Owners::Listed(owners),
                    sbom: image_sysroot::attached_sbom(&exported.path)?,
                })
            }
            // A bundle's `rootfs/` holds the users' files with their owners,
            // which the sandbox (root only in its own user namespace) may not
            // enter; it is run by a runtime, and its tree by `smoke`.
            other => Err(UsageError(format!(
                "structure tests run against an OCI image (--format oci), not a {}; run them on the tree with `smoke --structure-test`",
                other.describe()
            ))
            .into()),
        }
    }
}
