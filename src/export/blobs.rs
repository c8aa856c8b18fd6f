//! Layer blobs: a layer's tar written through its compressor while both digests are taken, and `.rootfs/layers.json` beside the trees, which remembers what each layer's entries compress to, so that an unchanged layer is never compressed twice.
//!
//! A layer's bytes are a function of its entries (names, types, modes,
//! owners, the epoch, and the content digests the manifest records) and of
//! the compressor ([`Compression::identity`]); the cache key is a digest of
//! exactly these, so a cached digest is the digest the layer would get if
//! it were written again.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::compress::{Compression, Encoder};
use super::digest::{Digested, Hashing};
use super::tar;
use super::tree::{Kind, Tree};
use crate::build::output;
use crate::build::side_file::{self, SideFile};

/// Bumped when the tar writer's output changes.
const FORMAT: u32 = 1;

/// The digests of one layer: of its tar (the `diff_id`) and of its blob
/// (the tar compressed; the same when it is not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    pub diff_id: Digested,
    pub blob: Digested,
}

/// The cache key of a layer made of `entries`.
pub fn key(tree: &Tree, entries: &[usize]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("rootfs layer {FORMAT} epoch {}\n", tree.epoch));
    for &i in entries {
        let entry = &tree.entries[i];
        hasher.update(entry.path.as_os_str().as_bytes());
        let what = match &entry.kind {
            Kind::Dir => "dir".to_string(),
            Kind::File { size, sha256 } => format!("file {size} {sha256}"),
            Kind::HardLink { to } => format!("link {}", tree.entries[*to].path.display()),
            Kind::Symlink { target } => format!("symlink {}", target.display()),
            Kind::CharDevice { major, minor } => format!("char {major} {minor}"),
        };
        hasher.update(format!("\0{what}\0{:o} {} {}\n", entry.mode, entry.uid, entry.gid));
    }
    crate::fsutil::hex_digest(hasher)
}

/// Writes the layer's tar, compressed, into `out`; returns both digests
/// and the writer.
pub fn write_layer<W: Write>(
    tree: &Tree,
    entries: &[usize],
    compression: Compression,
    out: W,
) -> Result<(LayerBlob, W)> {
    let blob = Hashing::new(out);
    let mut diff = Hashing::new(Encoder::new(compression, blob)?);
    tar::write(tree, entries, tar::LAYER, &mut diff)?;
    let (encoder, diff_id) = diff.finish();
    let (out, blob) = encoder.finish()?.finish();
    Ok((LayerBlob { diff_id, blob }, out))
}

/// `.rootfs/layers.json`: layer key -> digests, per compressor.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cache {
    layers: BTreeMap<String, Cached>,
}

impl SideFile for Cache {
    const NAME: &'static str = "layers.json";
    const WHAT: &'static str = "a layer cache";
    const PRETTY: bool = true;
    const FORMAT: Option<u32> = Some(FORMAT);
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cached {
    diff_id: Option<Digested>,
    /// By [`Compression::identity`].
    blobs: BTreeMap<String, Digested>,
}

impl Cache {
    /// Beside the tree at `out`, shared by the trees of that folder.
    pub fn path_for(out: &Path) -> PathBuf {
        side_file::path_for::<Cache>(out)
    }

    /// The cache at `path`; empty when there is none or it is unreadable.
    pub fn read(path: &Path) -> Cache {
        side_file::read(path)
    }

    /// What the layer with `key` compresses to, if it was written before.
    pub fn get(&self, key: &str, compression: Compression) -> Option<LayerBlob> {
        let cached = self.layers.get(key)?;
        let diff_id = cached.diff_id.clone()?;
        let blob = match compression {
            Compression::None => diff_id.clone(),
            _ => cached.blobs.get(&compression.identity())?.clone(),
        };
        Some(LayerBlob { diff_id, blob })
    }

    /// The `diff_id` of the layer with `key`, whatever it was compressed with.
    pub fn diff_id(&self, key: &str) -> Option<Digested> {
        self.layers.get(key)?.diff_id.clone()
    }

    pub fn put(&mut self, key: &str, compression: Compression, blob: &LayerBlob) {
        let cached = self.layers.entry(key.to_string()).or_default();
        cached.diff_id = Some(blob.diff_id.clone());
        if compression != Compression::None {
            cached.blobs.insert(compression.identity(), blob.blob.clone());
        }
    }

    /// Writes the cache, unless something that is not a layer cache of this
    /// tool is at `path` (then it is left alone: the cache only saves time).
    pub fn write(&self, path: &Path) -> Result<()> {
        if output::check_side_file::<Cache>(path).is_err() {
            return Ok(());
        }
        side_file::write(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer cache as it was written before `side_file` wrote it: the
    /// format number a field of its own.
    #[derive(Serialize)]
    struct Before<'a> {
        format: u32,
        layers: &'a BTreeMap<String, Cached>,
    }

    #[test]
    fn the_layer_cache_keeps_its_bytes_and_reads_what_it_wrote_before() {
        let digested = |c: &str, size| Digested { sha256: c.repeat(64), size };
        let mut cache = Cache::default();
        let gzip = LayerBlob { diff_id: digested("a", 10), blob: digested("b", 4) };
        cache.put("k1", Compression::Gzip, &gzip);
        cache.put(
            "k2",
            Compression::None,
            &LayerBlob { diff_id: digested("c", 7), blob: digested("c", 7) },
        );
        let before =
            serde_json::to_vec_pretty(&Before { format: FORMAT, layers: &cache.layers }).unwrap();
        assert_eq!(side_file::to_bytes(&cache).unwrap(), before);

        let dir = tempfile::tempdir().unwrap();
        let path = Cache::path_for(&dir.path().join("tree"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &before).unwrap();
        let read = Cache::read(&path);
        assert_eq!(read.get("k1", Compression::Gzip), Some(gzip));
        assert_eq!(read.diff_id("k2"), Some(digested("c", 7)));
        let older =
            serde_json::to_vec_pretty(&Before { format: FORMAT - 1, layers: &cache.layers })
                .unwrap();
        std::fs::write(&path, older).unwrap();
        assert_eq!(Cache::read(&path).diff_id("k1"), None, "a cache of another format is empty");
    }
}
