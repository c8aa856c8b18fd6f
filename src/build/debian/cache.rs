//! The content-addressed download cache shared by every spec: each verified file (an `InRelease`, a `Packages` index, a `.deb`) stored once under its SHA256, never an unverified byte.
//!
//! The folder is `$ROOTFS_CACHE_DIR`, else `$XDG_CACHE_HOME/rootfs`, else
//! `$HOME/.cache/rootfs` (the XDG base directory spec), with the files in
//! `debian/sha256/<hex>`. A download is written under a temporary name in
//! that same folder, hashed as it is written, and renamed to its digest
//! only when the digest (and size) match what the signed index says.
//! rename(2) is atomic within a file system, so builds that share the
//! cache at once see either no file or a whole verified one, and two that
//! fetch the same file both rename identical bytes into place. A mismatch
//! drops the temporary file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::Digest;

use crate::vocab::Sha256;

/// The environment variable that overrides the cache folder.
pub const CACHE_DIR_VAR: &str = "ROOTFS_CACHE_DIR";

/// The cache folder this machine's user has: see the module docs.
pub fn default_dir() -> Result<PathBuf> {
    let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = from_env(CACHE_DIR_VAR) {
        return Ok(dir);
    }
    if let Some(dir) = from_env("XDG_CACHE_HOME") {
        return Ok(dir.join("rootfs"));
    }
    match from_env("HOME") {
        Some(home) => Ok(home.join(".cache/rootfs")),
        None => bail!("no cache folder: set `{CACHE_DIR_VAR}`, `XDG_CACHE_HOME` or `HOME`"),
    }
}

/// How a download in progress is named; no digest starts with `.`.
const TEMP_PREFIX: &str = ".download-";

/// The digest a file must have to be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub sha256: Sha256,
    /// The size, when the index gives it.
    pub size: Option<u64>,
}

/// The `debian/sha256` folder of a cache.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Opens (creating it if needed) the cache in `root`, removing
    /// temporary files that a killed download left more than a day ago (a
    /// younger one may be another build's download in progress).
    pub fn open(root: &Path) -> Result<Cache> {
        let dir = root.join("debian/sha256");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create the cache folder `{}`", dir.display()))?;
        let entries = std::fs::read_dir(&dir)
            .with_context(|| format!("failed to list `{}`", dir.display()))?;
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        for entry in entries.flatten() {
            let stale = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < day_ago);
            if stale {
                // Another build may remove it first: either way it is gone.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Cache { dir })
    }

    /// Where the file with digest `sha256` is (or would be).
    pub fn path(&self, sha256: &Sha256) -> PathBuf {
        self.dir.join(sha256.to_string())
    }

    /// Whether the file is in the cache, with the expected size if known.
    /// Its bytes are not hashed again: only verified files are ever renamed
    /// into place, and re-hashing every `.deb` would make a no-op build
    /// read hundreds of megabytes.
    pub fn has(&self, expected: &Expected) -> bool {
        match std::fs::metadata(self.path(&expected.sha256)) {
            Ok(meta) => meta.is_file() && expected.size.is_none_or(|size| size == meta.len()),
            Err(_) => false,
        }
    }

    /// Copies `reader` (the body of `url`) into the cache if its digest and
    /// size are `expected`; otherwise keeps nothing and names both digests.
    pub fn store(&self, reader: impl Read, expected: &Expected, url: &str) -> Result<PathBuf> {
        let (temp, sha256, size) = self.write_temp(reader, url)?;
        let size_ok = expected.size.is_none_or(|want| want == size);
        if sha256 != expected.sha256 || !size_ok {
            // `temp` is dropped here, which deletes it.
            bail!(
                "`{url}` does not match its index: expected SHA256 {}{}, got SHA256 {sha256} ({size} bytes)",
                expected.sha256,
                expected.size.map(|s| format!(" ({s} bytes)")).unwrap_or_default(),
            );
        }
        self.keep(temp, &sha256)
    }

    /// Stores bytes already verified some other way (an `InRelease`, by
    /// its signature) under their digest.
    pub fn store_verified(&self, bytes: &[u8], what: &str) -> Result<(Sha256, PathBuf)> {
        let (temp, sha256, _) = self.write_temp(bytes, what)?;
        let path = self.keep(temp, &sha256)?;
        Ok((sha256, path))
    }

    fn write_temp(
        &self,
        mut reader: impl Read,
        url: &str,
    ) -> Result<(tempfile::NamedTempFile, Sha256, u64)> {
        let mut temp =
            tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(&self.dir).with_context(
                || format!("failed to create a temporary file in `{}`", self.dir.display()),
            )?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("failed to download `{url}`")),
            };
            hasher.update(&buffer[..n]);
            size += n as u64;
            temp.write_all(&buffer[..n])
                .with_context(|| format!("failed to write `{}`", temp.path().display()))?;
        }
        Ok((temp, Sha256::finish(hasher), size))
    }

    fn keep(&self, temp: tempfile::NamedTempFile, sha256: &Sha256) -> Result<PathBuf> {
        let path = self.path(sha256);
        temp.as_file()
            .sync_all()
            .with_context(|| format!("failed to sync `{}`", temp.path().display()))?;
        temp.persist(&path)
            .with_context(|| format!("failed to rename a download to `{}`", path.display()))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_verified_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let good = Expected { sha256: Sha256::of(b"hello"), size: Some(5) };
        let path = cache.store(&b"hello"[..], &good, "u").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert!(cache.has(&good));
        let bad = Expected { sha256: Sha256::of(b"other"), size: None };
        let err = cache.store(&b"hello"[..], &bad, "u").unwrap_err().to_string();
        assert!(
            err.contains(&bad.sha256.to_string()) && err.contains(&good.sha256.to_string()),
            "{err}"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("debian/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(good.sha256.to_string())]);
        // A download killed two days ago is swept; one in progress is not.
        let sha_dir = dir.path().join("debian/sha256");
        let old = std::fs::File::create(sha_dir.join(".download-old")).unwrap();
        let two_days = std::time::Duration::from_secs(2 * 86_400);
        old.set_modified(std::time::SystemTime::now() - two_days).unwrap();
        std::fs::write(sha_dir.join(".download-new"), b"").unwrap();
        Cache::open(dir.path()).unwrap();
        assert!(!sha_dir.join(".download-old").exists());
        assert!(sha_dir.join(".download-new").exists());
    }
}
