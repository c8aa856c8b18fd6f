//! Digests of what an export writes, taken while it is written: a writer that hashes and counts, and the `sha256:<hex>` form of OCI descriptors.

use std::io::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The sha256 and size of some bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digested {
    /// Lowercase hex, without the `sha256:` prefix.
    pub sha256: String,
    pub size: u64,
}

impl Digested {
    pub fn of(bytes: &[u8]) -> Digested {
        Digested { sha256: crate::fsutil::sha256_hex(bytes), size: bytes.len() as u64 }
    }

    /// `sha256:<hex>`, as descriptors and `diff_ids` write it.
    pub fn oci(&self) -> String {
        format!("sha256:{}", self.sha256)
    }
}

/// Passes bytes on to `W`, hashing and counting them.
pub struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Hashing<W> {
        Hashing { inner, hasher: Sha256::new(), size: 0 }
    }

    /// The writer and the digest of everything written through it.
    pub fn finish(self) -> (W, Digested) {
        let digest = Digested { sha256: crate::fsutil::hex_digest(self.hasher), size: self.size };
        (self.inner, digest)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
