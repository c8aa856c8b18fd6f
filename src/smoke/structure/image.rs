//! The exported image as structure tests see it: an OCI image layout unpacked (by the image sysroot's own code) with its configuration and the owners its layers record, or a runtime bundle's `rootfs/` with the process of its `config.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{ImageConfig, Owners, Subject};
use crate::UsageError;
use crate::export::{Exported, Format};
use crate::image_sysroot::{self, SysrootSource};

impl Subject {
    /// What `export` wrote, read back; an OCI image is unpacked under
    /// `cache` (a folder named by its manifest digest, reused while the
    /// image is unchanged). A bundle carries no SBOM: `sbom`, the tree's,
    /// stands for it.
    pub fn of_export(exported: &Exported, cache: &Path, sbom: Option<PathBuf>) -> Result<Subject> {
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
            Format::Bundle => {
                let path = exported.path.join("config.json");
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("reading the bundle's `{}`", path.display()))?;
                let config: serde_json::Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("parsing the bundle's `{}`", path.display()))?;
                Ok(Subject {
                    root: exported.path.join("rootfs"),
                    config: bundle_config(&config["process"]),
                    owners: Owners::OnDisk,
                    sbom,
                })
            }
            other => Err(UsageError(format!(
                "structure tests run against an image: --format oci or bundle, not {}",
                other.describe()
            ))
            .into()),
        }
    }
}

/// What a runtime bundle's process says of the image: its environment,
/// command line (as `cmd`), working directory and user; a bundle has no
/// ports, volumes or labels.
fn bundle_config(process: &serde_json::Value) -> ImageConfig {
    let user = &process["user"];
    let oci = serde_json::json!({
        "Env": process["env"],
        "Cmd": process["args"],
        "WorkingDir": process["cwd"],
        "User": format!("{}:{}", user["uid"].as_u64().unwrap_or(0), user["gid"].as_u64().unwrap_or(0)),
    });
    ImageConfig::of_oci(&oci)
}
