//! The OCI image layout (image-spec 1.1): `oci-layout`, `index.json` naming the tag, and `blobs/sha256/` with the layers, the configuration and the manifest, and the build's SBOM as an artifact whose `subject` is the image (an image manifest with `artifactType: application/spdx+json`, the empty config and the document as its one layer, which tools following an image's referrers find); a layer whose content did not change is linked from the previous export instead of compressed again, and an export with nothing to change writes nothing.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::blobs::{self, Cache, LayerBlob};
use super::compress::Compression;
use super::digest::Digested;
use super::image::ImagePlan;
use super::platform::Platform;
use super::{Exported, Job, place};

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The media type of a layer compressed this way.
fn layer_media_type(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'static str>,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<PlatformField>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct PlatformField {
    architecture: &'static str,
    os: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'static str>,
}

impl Descriptor {
    fn of(media_type: &'static str, digest: &Digested) -> Descriptor {
        Descriptor {
            media_type,
            artifact_type: None,
            digest: digest.oci(),
            size: digest.size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'static str>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

/// The empty configuration of an artifact (image-spec 1.1, "Guidelines for
/// artifact usage").
const EMPTY_CONFIG: &[u8] = b"{}";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// The SBOM as an artifact of the image: a manifest whose `subject` is the
/// image manifest, found by `oras discover`-style tools through the index.
struct Artifact {
    manifest: Vec<u8>,
    sbom: Vec<u8>,
}

impl Artifact {
    fn new(sbom: Vec<u8>, image_manifest: &[u8]) -> Result<Artifact> {
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST,
            artifact_type: Some(crate::build::sbom::MEDIA_TYPE),
            config: Descriptor::of(EMPTY, &Digested::of(EMPTY_CONFIG)),
            layers: vec![Descriptor::of(crate::build::sbom::MEDIA_TYPE, &Digested::of(&sbom))],
            subject: Some(Descriptor::of(MANIFEST, &Digested::of(image_manifest))),
            annotations: BTreeMap::new(),
        };
        let manifest =
            serde_json::to_vec(&manifest).context("writing the SBOM's manifest as JSON")?;
        Ok(Artifact { manifest, sbom })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// One platform's image, for layers with known blobs: its configuration,
/// manifest, platform, and the build's SBOM as an artifact of it.
struct Image {
    config: Vec<u8>,
    manifest: Vec<u8>,
    platform: Platform,
    artifact: Option<Artifact>,
}

impl Image {
    fn new(job: &Job, plan: &ImagePlan, blobs: &[LayerBlob]) -> Result<Image> {
        let config = plan.config_for(job, blobs)?;
        let media_type = layer_media_type(job.compression);
        let spec = &job.built.spec;
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST,
            artifact_type: None,
            config: Descriptor::of(CONFIG, &Digested::of(&config)),
            layers: blobs.iter().map(|b| Descriptor::of(media_type, &b.blob)).collect(),
            subject: None,
            annotations: BTreeMap::from([
                ("org.opencontainers.image.created", crate::fsutil::rfc3339(job.tree.epoch)),
                ("org.opencontainers.image.title", spec.name.clone()),
            ]),
        };
        let manifest =
            serde_json::to_vec(&manifest).context("writing the image manifest as JSON")?;
        // The SBOM of the build, when it has one, goes along.
        let sbom = std::fs::read(crate::build::sbom::path_for(&job.built.out)).ok();
        let artifact = sbom.map(|bytes| Artifact::new(bytes, &manifest)).transpose()?;
        Ok(Image { config, manifest, platform: plan.platform, artifact })
    }

    /// The manifest's descriptor, with its platform.
    fn entry(&self) -> Descriptor {
        let mut entry = Descriptor::of(MANIFEST, &Digested::of(&self.manifest));
        entry.platform = Some(PlatformField {
            architecture: self.platform.architecture,
            os: self.platform.os,
            variant: self.platform.variant,
        });
        entry
    }

    /// The SBOM artifact's descriptor.
    fn artifact_entry(&self) -> Option<Descriptor> {
        self.artifact.as_ref().map(|artifact| {
            let mut descriptor = Descriptor::of(MANIFEST, &Digested::of(&artifact.manifest));
            descriptor.artifact_type = Some(crate::build::sbom::MEDIA_TYPE);
            descriptor
        })
    }
}

/// The small files of a layout: its images, and for more than one the
/// image index (a blob) that `index.json` tags in place of a manifest.
struct Layout {
    images: Vec<Image>,
    /// The image index of a multi-platform layout: one manifest per
    /// platform, which clients choose from by `platform`.
    platforms: Option<Vec<u8>>,
    index: Vec<u8>,
}

impl Layout {
    /// `index.json`: the tag on the one image's manifest or on the image
    /// index of several, then each image's SBOM artifact (kept out of the
    /// image index, whose entries clients match by platform).
    fn new(images: Vec<Image>, tag: &str) -> Result<Layout> {
        let platforms = match images.len() {
            1 => None,
            _ => {
                let manifests = images.iter().map(Image::entry).collect();
                let index = Index { schema_version: 2, media_type: INDEX, manifests };
                Some(serde_json::to_vec(&index).context("writing the image index as JSON")?)
            }
        };
        let mut tagged = match &platforms {
            Some(bytes) => Descriptor::of(INDEX, &Digested::of(bytes)),
            None => images[0].entry(),
        };
        tagged.annotations.insert("org.opencontainers.image.ref.name", tag.to_string());
        let mut manifests = vec![tagged];
        manifests.extend(images.iter().filter_map(Image::artifact_entry));
        let index = Index { schema_version: 2, media_type: INDEX, manifests };
        let index = serde_json::to_vec(&index).context("writing the layout's index as JSON")?;
        Ok(Layout { images, platforms, index })
    }

    /// What `index.json` tags: the manifest, or the image index.
    fn tagged(&self) -> &[u8] {
        self.platforms.as_deref().unwrap_or(&self.images[0].manifest)
    }

    /// The small blobs of the layout, with their bytes: each image's
    /// configuration, manifest and SBOM artifact, and the image index.
    fn small_blobs(&self) -> Vec<&[u8]> {
        let mut all: Vec<&[u8]> = Vec::new();
        for image in &self.images {
            all.extend([&image.config[..], &image.manifest[..]]);
            if let Some(artifact) = &image.artifact {
                all.extend([EMPTY_CONFIG, &artifact.sbom[..], &artifact.manifest[..]]);
            }
        }
        all.extend(self.platforms.as_deref());
        all
    }

    /// Every blob of the layout, each once: its digest.
    fn blobs<'a>(&'a self, layers: &'a [LayerBlob]) -> Vec<Digested> {
        let mut all: Vec<Digested> = layers.iter().map(|b| b.blob.clone()).collect();
        all.extend(self.small_blobs().into_iter().map(Digested::of));
        all.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        all.dedup_by(|a, b| a.sha256 == b.sha256);
        all
    }
}

/// Writes the OCI image layout of the job's tree.
pub fn write(job: &Job) -> Result<Exported> {
    write_all(std::slice::from_ref(job))
}

/// Writes one OCI image layout of the jobs' trees (one per platform, all
/// to the same output, compression and tag): one image, or an image index
/// of several whose shared blobs are compressed and stored once.
pub fn write_all(jobs: &[Job]) -> Result<Exported> {
    let first = jobs.first().context("an OCI layout needs an image")?;
    let plans = jobs.iter().map(ImagePlan::new).collect::<Result<Vec<_>>>()?;
    let cache_path = Cache::path_for(&first.built.out);
    let mut cache = if first.force { Cache::default() } else { Cache::read(&cache_path) };
    let known: Option<Vec<Vec<LayerBlob>>> = plans
        .iter()
        .map(|plan| plan.keys.iter().map(|k| cache.get(k, first.compression)).collect())
        .collect();
    if let Some(blobs) = known.as_ref().filter(|_| !first.force) {
        let layout = layout_of(jobs, &plans, blobs)?;
        let layers: Vec<LayerBlob> = blobs.iter().flatten().cloned().collect();
        if is_current(&first.output, &layout, &layers) {
            return Ok(exported(first, &plans, &layout, &layers, true));
        }
    }
    let staging = place::staging_dir(&first.output)?;
    let written = write_layout(jobs, &plans, &mut cache, &staging);
    let (layout, layers) = match written {
        Ok(done) => done,
        Err(e) => {
            place::discard(&staging);
            return Err(e);
        }
    };
    place::commit_dir(&staging, &first.output)?;
    cache.write(&cache_path)?;
    Ok(exported(first, &plans, &layout, &layers, false))
}

/// The layout of the jobs' images, for these layer blobs (per job).
fn layout_of(jobs: &[Job], plans: &[ImagePlan], blobs: &[Vec<LayerBlob>]) -> Result<Layout> {
    let mut images = Vec::new();
    for ((job, plan), blobs) in jobs.iter().zip(plans).zip(blobs) {
        images.push(Image::new(job, plan, blobs)?);
    }
    Layout::new(images, jobs[0].built.spec.image.tag())
}

/// Fills the staging folder: every layer blob (reused, or compressed once
/// however many images hold it), the small blobs, `index.json` and
/// `oci-layout`.
fn write_layout(
    jobs: &[Job],
    plans: &[ImagePlan],
    cache: &mut Cache,
    staging: &Path,
) -> Result<(Layout, Vec<LayerBlob>)> {
    let dir = staging.join("blobs/sha256");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let mut done: BTreeMap<&str, LayerBlob> = BTreeMap::new();
    let mut per_job = Vec::new();
    for (job, plan) in jobs.iter().zip(plans) {
        let mut blobs = Vec::new();
        for (layer, key) in plan.layers.iter().zip(&plan.keys) {
            if let Some(blob) = done.get(key.as_str()) {
                blobs.push(blob.clone());
                continue;
            }
            let reused = cache.get(key, job.compression).filter(|_| !job.force).filter(|blob| {
                reuse(&job.output.join("blobs/sha256").join(&blob.blob.sha256), blob, &dir)
            });
            let blob = match reused {
                Some(blob) => blob,
                None => {
                    let blob = compress_layer(job, &layer.entries, &dir)?;
                    cache.put(key, job.compression, &blob);
                    blob
                }
            };
            done.insert(key, blob.clone());
            blobs.push(blob);
        }
        per_job.push(blobs);
    }
    let layout = layout_of(jobs, plans, &per_job)?;
    for bytes in layout.small_blobs() {
        let path = dir.join(Digested::of(bytes).sha256);
        std::fs::write(&path, bytes)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    for (name, bytes) in [("index.json", &layout.index[..]), ("oci-layout", LAYOUT)] {
        let path = staging.join(name);
        std::fs::write(&path, bytes)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    Ok((layout, per_job.into_iter().flatten().collect()))
}

/// Links a blob of the previous export into the staging folder: a file
/// named by its digest, with the size recorded for that digest.
fn reuse(previous: &Path, blob: &LayerBlob, dir: &Path) -> bool {
    let fits =
        std::fs::symlink_metadata(previous).is_ok_and(|m| m.is_file() && m.len() == blob.blob.size);
    let target = dir.join(&blob.blob.sha256);
    fits && (std::fs::hard_link(previous, &target).is_ok()
        || std::fs::copy(previous, &target).is_ok())
}

/// Compresses one layer into `dir`, under its digest.
fn compress_layer(job: &Job, entries: &[usize], dir: &Path) -> Result<LayerBlob> {
    let partial = dir.join(".layer.partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("failed to create `{}`", partial.display()))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let (blob, out) = blobs::write_layer(&job.tree, entries, job.compression, out)
        .with_context(|| format!("writing a layer of `{}`", job.output.display()))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut f| f.flush())
        .with_context(|| format!("failed to write `{}`", partial.display()))?;
    let path = dir.join(&blob.blob.sha256);
    std::fs::rename(&partial, &path)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(blob)
}

/// Whether the layout at `output` already holds exactly these files: then
/// there is nothing to write. Blobs are named by their digests; a blob is
/// taken to be what its name says when its size is the one recorded.
fn is_current(output: &Path, layout: &Layout, layers: &[LayerBlob]) -> bool {
    let read = |name: &str| std::fs::read(output.join(name)).ok();
    if read("index.json").as_deref() != Some(&layout.index[..])
        || read("oci-layout").as_deref() != Some(LAYOUT)
    {
        return false;
    }
    let expected: BTreeMap<String, u64> =
        layout.blobs(layers).into_iter().map(|d| (d.sha256, d.size)).collect();
    let top: Vec<String> = names(output);
    let Ok(found) = std::fs::read_dir(output.join("blobs/sha256")) else { return false };
    let mut seen = 0;
    for entry in found.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let size = entry.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        if expected.get(&name).copied() != size {
            return false;
        }
        seen += 1;
    }
    seen == expected.len()
        && top == ["blobs", "index.json", "oci-layout"]
        && names(&output.join("blobs")) == ["sha256"]
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn exported(
    job: &Job,
    plans: &[ImagePlan],
    layout: &Layout,
    layers: &[LayerBlob],
    up_to_date: bool,
) -> Exported {
    let bytes = layout.blobs(layers).iter().map(|d| d.size).sum::<u64>()
        + (layout.index.len() + LAYOUT.len()) as u64;
    Exported {
        digest: Some(Digested::of(layout.tagged()).oci()),
        layers: Some(plans.iter().map(|p| p.layers.len()).sum()),
        platforms: plans.len(),
        up_to_date,
        ..Exported::new(job, bytes)
    }
}
