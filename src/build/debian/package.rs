//! One binary package as the archive names it, and as a verified `.deb` in the cache: the record the fetcher hands to the unpacker.

use std::path::PathBuf;

use crate::vocab::Sha256;
use serde::{Deserialize, Serialize};

/// A binary package as an index names it: what a lock pins and an SBOM
/// reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PackageId {
    /// `Package:`, e.g. `bash`.
    pub name: String,
    /// `Version:`, e.g. `5.2.15-2+b7`, compared as dpkg compares versions.
    pub version: String,
    /// `Architecture:`, e.g. `amd64` or `all`.
    pub architecture: String,
}

/// A `.deb` whose bytes were checked against its index's `SHA256` before
/// it was kept: nothing unverified ever reaches the unpacker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FetchedDeb {
    pub id: PackageId,
    /// `Filename:`, the path in the archive's pool.
    pub filename: String,
    /// The SHA256 of the file.
    pub sha256: Sha256,
    /// Where the verified file is in the cache.
    pub path: PathBuf,
}
