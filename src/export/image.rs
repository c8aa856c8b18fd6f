//! An image before it is written, shared by the OCI layout and the docker archive: its platform, process and layers, each layer with its cache key.

use std::collections::BTreeMap;

use anyhow::Result;

use super::Job;
use super::blobs::{self, LayerBlob};
use super::digest::Digested;
use super::layers::{self, Layer};
use super::platform::{self, Platform};
use super::process::Process;
use crate::resolve::portability::Portability;

pub struct ImagePlan {
    pub platform: Platform,
    pub process: Process,
    pub layers: Vec<Layer>,
    /// The cache key of each layer.
    pub keys: Vec<String>,
}

impl ImagePlan {
    pub fn new(job: &Job) -> Result<ImagePlan> {
        let spec = &job.built.spec;
        let process = Process::of_spec(spec, &job.built.manifest)?;
        let mut platform = platform::of_tree(&job.tree.root, &job.built.manifest.commands)?;
        let portability = job.built.manifest.portability.as_ref();
        if platform.architecture == "amd64" {
            platform.variant = portability.and_then(|p| platform::amd64_variant(p.cpu?));
        }
        let layers = layers::split(&job.tree, &job.built.manifest.commands, spec.image.layers())?;
        let keys = layers.iter().map(|l| blobs::key(&job.tree, &l.entries)).collect();
        Ok(ImagePlan { platform, process, layers, keys })
    }

    /// The image configuration, for layers with these digests.
    pub fn config(&self, job: &Job, diff_ids: &[&Digested]) -> Result<Vec<u8>> {
        let layers: Vec<(String, String)> = diff_ids
            .iter()
            .zip(&self.layers)
            .enumerate()
            .map(|(i, (d, layer))| {
                let comment =
                    format!("layer {} of {}: {}", i + 1, self.layers.len(), layer.comment);
                (d.oci(), comment)
            })
            .collect();
        let needs = job.built.manifest.portability.as_ref().map(needs_labels).unwrap_or_default();
        super::config::image_config(
            self.platform,
            &self.process,
            &job.built.spec.image,
            &needs,
            &layers,
            job.tree.epoch,
        )
    }

    /// The configuration for these layer blobs.
    pub fn config_for(&self, job: &Job, blobs: &[LayerBlob]) -> Result<Vec<u8>> {
        let diff_ids: Vec<&Digested> = blobs.iter().map(|b| &b.diff_id).collect();
        self.config(job, &diff_ids)
    }
}

/// What the tree needs of the machine, as image labels (the spec's own
/// `[image] labels` win over these): `rootfs.needs` is the one-line
/// summary, the others one fact each.
pub(super) fn needs_labels(portability: &Portability) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("rootfs.needs".to_string(), portability.summary());
    if let Some(level) = portability.cpu {
        labels.insert("rootfs.needs.cpu".to_string(), level.name().to_string());
    }
    if let Some(kernel) = &portability.kernel {
        labels.insert("rootfs.needs.linux".to_string(), kernel.version.clone());
    }
    if let Some(glibc) = &portability.glibc {
        labels.insert("rootfs.needs.glibc".to_string(), glibc.version.clone());
    }
    labels
}
