//! The image configuration (OCI image-spec 1.1 `config.json`, which `docker load` reads as well): platform, process, `rootfs.diff_ids` and `history`, as serde structs whose maps are `BTreeMap`s, so the JSON and its digest are the same on every run.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use super::platform::Platform;
use super::process::Process;
use crate::spec::image::Image;

/// The tool named in each history entry.
pub const CREATED_BY: &str = "cargo xtask rootfs export";

#[derive(Serialize)]
pub struct ImageConfig {
    pub created: String,
    pub architecture: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'static str>,
    pub os: &'static str,
    pub config: RunConfig,
    pub rootfs: RootFs,
    pub history: Vec<History>,
}

/// An empty JSON object, the value of each `ExposedPorts` and `Volumes` key.
#[derive(Serialize)]
pub struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    pub env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

#[derive(Serialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub diff_ids: Vec<String>,
}

#[derive(Serialize)]
pub struct History {
    pub created: String,
    pub created_by: &'static str,
    pub comment: String,
}

/// The configuration of an image whose layers have these `diff_ids` and
/// history comments, as compact JSON.
pub fn image_config(
    platform: Platform,
    process: &Process,
    image: &Image,
    extra_labels: &BTreeMap<String, String>,
    layers: &[(String, String)],
    epoch: i64,
) -> Result<Vec<u8>> {
    let created = crate::fsutil::rfc3339(epoch);
    let config = ImageConfig {
        created: created.clone(),
        architecture: platform.architecture,
        variant: platform.variant,
        os: platform.os,
        config: RunConfig {
            user: process.user_field(),
            exposed_ports: image
                .exposed_ports
                .iter()
                .map(|p| (p.value.clone(), Empty {}))
                .collect(),
            env: process.env.clone(),
            entrypoint: process.entrypoint.clone(),
            cmd: process.cmd.clone(),
            volumes: image
                .volumes
                .iter()
                .map(|v| (v.value.display().to_string(), Empty {}))
                .collect(),
            working_dir: process.workdir.as_ref().map(|w| w.display().to_string()),
            labels: extra_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(image.labels.iter().map(|(k, v)| (k.clone(), v.value.clone())))
                .collect(),
            stop_signal: image.stop_signal.as_ref().map(|s| s.value.clone()),
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers.iter().map(|(d, _)| d.clone()).collect(),
        },
        history: layers
            .iter()
            .map(|(_, comment)| History {
                created: created.clone(),
                created_by: CREATED_BY,
                comment: comment.clone(),
            })
            .collect(),
    };
    serde_json::to_vec(&config).context("writing the image configuration as JSON")
}
