//! The tree as one reproducible tar (optionally compressed), as `docker import`, `machinectl import-tar` and `systemd-nspawn` take it: the root folder first, then every path as `./path`.

use std::io::{BufWriter, Write};

use anyhow::{Context, Result};

use super::compress::Encoder;
use super::digest::Hashing;
use super::tar;
use super::{Exported, Job, place};

/// Writes the job's tree as one tar archive.
pub fn write(job: &Job) -> Result<Exported> {
    let all: Vec<usize> = (0..job.tree.entries.len()).collect();
    let digest = write_file(job, |out| tar::write(&job.tree, &all, tar::ARCHIVE, out))?;
    Ok(Exported::new(job, digest))
}

/// Writes one output file through the job's compressor, beside its place,
/// and renames it into place; returns its size.
pub fn write_file(job: &Job, body: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<u64> {
    let file = place::new_file(&job.output)?;
    let out = Hashing::new(BufWriter::with_capacity(1 << 20, file));
    let mut encoder = Encoder::new(job.compression, out)?;
    body(&mut encoder).with_context(|| format!("writing `{}`", job.output.display()))?;
    let (out, digest) = encoder.finish()?.finish();
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("failed to write `{}`", job.output.display()))?;
    place::commit_file(file, &job.output, &digest)?;
    Ok(digest.size)
}
