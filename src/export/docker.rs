//! The `docker save` archive that `docker load` and `podman load` read: one tar holding each layer as `<diff_id>/layer.tar`, the image configuration as `<digest>.json`, and `manifest.json` naming them with the image's tag.

use std::io::{BufWriter, Write};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::blobs::Cache;
use super::compress::{Compression, Encoder};
use super::digest::{Digested, Hashing};
use super::image::ImagePlan;
use super::tar::{self, Header};
use super::{Exported, Job, place};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// The repository name of the image: the spec's name, lowercased, as
/// Docker's reference grammar allows (`[a-z0-9]+` joined by `.`, `_`, `__`
/// or dashes).
pub fn repository(name: &str) -> Result<String> {
    let lower = name.to_ascii_lowercase();
    let mut runs: Vec<(bool, String)> = Vec::new();
    for c in lower.chars() {
        let alnum = c.is_ascii_alphanumeric();
        match runs.last_mut() {
            Some((kind, run)) if *kind == alnum => run.push(c),
            _ => runs.push((alnum, c.to_string())),
        }
    }
    let separator = |run: &str| matches!(run, "." | "_" | "__") || run.chars().all(|c| c == '-');
    let valid = runs.first().is_some_and(|r| r.0)
        && runs.last().is_some_and(|r| r.0)
        && runs.iter().all(|(alnum, run)| *alnum || separator(run));
    if !valid {
        bail!(
            "the spec's name `{name}` is not a valid image repository name: lowercase letters and digits, joined by `.`, `_`, `__` or dashes"
        );
    }
    Ok(lower)
}

/// Writes the docker archive of the job's tree.
pub fn write(job: &Job) -> Result<Exported> {
    let plan = ImagePlan::new(job)?;
    let repo = repository(&job.built.spec.name)?;
    let cache_path = Cache::path_for(&job.built.out);
    let mut cache = if job.force { Cache::default() } else { Cache::read(&cache_path) };
    // Each layer is named by its diff_id, which its header needs before its
    // content: known from the cache, or computed by a first pass.
    let mut diff_ids = Vec::new();
    for (layer, key) in plan.layers.iter().zip(&plan.keys) {
        let diff_id = match cache.diff_id(key) {
            Some(d) => d,
            None => {
                let mut sink = Hashing::new(std::io::sink());
                tar::write(&job.tree, &layer.entries, tar::LAYER, &mut sink)?;
                let (_, digest) = sink.finish();
                digest
            }
        };
        diff_ids.push(diff_id);
    }
    let file = place::new_file(&job.output)?;
    let out = Hashing::new(BufWriter::with_capacity(1 << 20, file));
    let mut archive = Encoder::new(job.compression, out)?;
    let config = write_members(job, &plan, &repo, &diff_ids, &mut archive)
        .with_context(|| format!("writing `{}`", job.output.display()))?;
    let (out, digest) = archive.finish()?.finish();
    let file =
        out.into_inner().map_err(|e| e.into_error()).context("writing the docker archive")?;
    for (key, diff_id) in plan.keys.iter().zip(&diff_ids) {
        let blob = super::blobs::LayerBlob { diff_id: diff_id.clone(), blob: diff_id.clone() };
        cache.put(key, Compression::None, &blob);
    }
    place::commit_file(file, &job.output, &digest)?;
    cache.write(&cache_path)?;
    Ok(Exported {
        digest: Some(Digested::of(&config).oci()),
        layers: Some(plan.layers.len()),
        ..Exported::new(job, digest.size)
    })
}

/// The archive's members: the layers, the configuration, `manifest.json`.
/// Returns the configuration.
fn write_members(
    job: &Job,
    plan: &ImagePlan,
    repo: &str,
    diff_ids: &[Digested],
    out: &mut impl Write,
) -> Result<Vec<u8>> {
    let epoch = job.tree.epoch;
    let mut layer_names = Vec::new();
    for (layer, diff_id) in plan.layers.iter().zip(diff_ids) {
        let dir = format!("{}/", diff_id.sha256);
        let name = format!("{}layer.tar", dir);
        out.write_all(&tar::header_bytes(&Header::dir(dir.as_bytes(), epoch)))?;
        let size = tar::size(&job.tree, &layer.entries, tar::LAYER)?;
        out.write_all(&tar::header_bytes(&Header::file(name.as_bytes(), size, epoch)))?;
        let mut hashing = Hashing::new(&mut *out);
        tar::write(&job.tree, &layer.entries, tar::LAYER, &mut hashing)?;
        let (_, written) = hashing.finish();
        if written != *diff_id {
            bail!(
                "a layer's content changed while it was written: run the export again with --force"
            );
        }
        out.write_all(&[0u8; 512][..tar::padding(size)])?;
        layer_names.push(name);
    }
    let ids: Vec<&Digested> = diff_ids.iter().collect();
    let config = plan.config(job, &ids)?;
    let config_name = format!("{}.json", Digested::of(&config).sha256);
    member(out, &config_name, &config, epoch)?;
    let manifest = vec![ManifestEntry {
        config: config_name,
        repo_tags: vec![format!("{repo}:{}", job.built.spec.image.tag())],
        layers: layer_names,
    }];
    let manifest = serde_json::to_vec(&manifest).context("writing manifest.json")?;
    member(out, "manifest.json", &manifest, epoch)?;
    out.write_all(&tar::END)?;
    Ok(config)
}

fn member(out: &mut impl Write, name: &str, bytes: &[u8], epoch: i64) -> Result<()> {
    out.write_all(&tar::header_bytes(&Header::file(name.as_bytes(), bytes.len() as u64, epoch)))?;
    out.write_all(bytes)?;
    out.write_all(&[0u8; 512][..tar::padding(bytes.len() as u64)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::repository;

    #[test]
    fn repository_names_follow_dockers_grammar() {
        assert_eq!(repository("Default").unwrap(), "default");
        assert_eq!(repository("ci-shell").unwrap(), "ci-shell");
        assert_eq!(repository("a.b_c").unwrap(), "a.b_c");
        assert!(repository("-x").is_err());
        assert!(repository("x-").is_err());
        assert!(repository("a..b").is_err());
    }
}
