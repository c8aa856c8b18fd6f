//! The SBOM beside a built rootfs (`.rootfs/<name>.spdx.json` beside it): SPDX 2.3 JSON from the manifest and the sysroot's dpkg database (an OCI export carries it as an artifact of the image: `export/oci.rs`).
//!
//! The document:
//! - one package for the rootfs itself, which the document `DESCRIBES`
//!   and which `CONTAINS` each Debian package below;
//! - one package per Debian package owning at least one file of the tree:
//!   its name, `versionInfo` from the dpkg database, a purl
//!   `pkg:deb/debian/NAME@VERSION?arch=ARCH` (the version percent-encoded
//!   as the purl specification asks, so `+` is `%2B`), and the license its
//!   machine-readable copyright file declares (`dpkg/copyright.rs`), else
//!   `NOASSERTION`; it `CONTAINS` each of its files;
//! - one file per regular file of the tree, `fileName` its tree path
//!   (`./usr/bin/bash`: SPDX names files relative to the package root),
//!   with SHA1 (which SPDX requires) and SHA256 checksums. Files no package
//!   owns (the spec's own, `/etc/passwd`, the written `ld.so.cache`) are
//!   listed with no package.
//!
//! It is deterministic: every list sorted, JSON keys sorted, `created` from
//! `SOURCE_DATE_EPOCH` (or 0), and a `documentNamespace` made from a digest
//! of the rest of the document, not a random one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::dpkg::Package;
use crate::dpkg::copyright::{self, Declared};
use crate::fsutil;
use crate::manifest::{EntryType, Manifest};
use crate::sha1_cache::Sha1s;
use crate::sysroot::Sysroot;

/// The media type of an SPDX JSON document, used as the artifact type.
pub const MEDIA_TYPE: &str = "application/spdx+json";

/// Where the SBOM of the rootfs at `out` lives.
pub fn path_for(out: &Path) -> PathBuf {
    fsutil::side_file(out, ".spdx.json")
}

fn creator() -> String {
    format!("Tool: rootfs-{}", env!("CARGO_PKG_VERSION"))
}

/// Whether `bytes` are an SBOM this tool wrote.
pub fn recognise(bytes: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else { return false };
    value["spdxVersion"] == "SPDX-2.3"
        && value["creationInfo"]["creators"].as_array().is_some_and(|c| {
            c.iter().any(|c| c.as_str().is_some_and(|c| c.starts_with("Tool: rootfs-")))
        })
}

/// What the SBOM needs besides the manifest and the tree.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// The spec's name.
    pub name: String,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: i64,
    /// The Debian package owning each tree path.
    pub owners: BTreeMap<PathBuf, Package>,
    /// The declared license of each package, by name.
    pub licenses: BTreeMap<String, Declared>,
}

impl Input {
    /// Reads the declared license of every owning package from the sysroot.
    pub fn new(
        name: &str,
        epoch: i64,
        owners: BTreeMap<PathBuf, Package>,
        sysroot: &Sysroot,
    ) -> Input {
        let names: BTreeSet<&str> = owners.values().map(|p| p.name.as_str()).collect();
        let licenses =
            names.into_iter().map(|n| (n.to_string(), copyright::declared(sysroot, n))).collect();
        Input { name: name.to_string(), epoch, owners, licenses }
    }
}

/// The SBOM of the tree at `tree` (which `manifest` describes), as the
/// bytes written to disk, and the SHA1 of each file content `known` did
/// not have (by sha256: `sha1_cache.rs`).
pub fn render(
    input: &Input,
    manifest: &Manifest,
    tree: &Path,
    known: &Sha1s,
) -> Result<(Vec<u8>, Sha1s)> {
    let (mut document, fresh) = document(input, manifest, tree, known)?;
    let digest = fsutil::sha256_hex(&serde_json::to_vec(&document)?);
    document["documentNamespace"] =
        json!(format!("https://rootfs.invalid/spdx/{}-{digest}", input.name));
    let mut bytes = serde_json::to_vec_pretty(&document).context("writing the SBOM as JSON")?;
    bytes.push(b'\n');
    Ok((bytes, fresh))
}

/// One regular file of the tree.
struct TreeFile {
    path: PathBuf,
    sha1: String,
    sha256: String,
}

fn document(
    input: &Input,
    manifest: &Manifest,
    tree: &Path,
    known: &Sha1s,
) -> Result<(Value, Sha1s)> {
    let files: Vec<(TreeFile, bool)> = manifest
        .entries
        .par_iter()
        .filter(|e| e.kind == EntryType::File)
        .map(|e| {
            let host = tree.join(e.path.strip_prefix("/").unwrap_or(&e.path));
            let sha256 = match &e.sha256 {
                Some(digest) => digest.clone(),
                None => fsutil::sha256_file(&host)?,
            };
            let (sha1, fresh) = match known.get(&sha256) {
                Some(sha1) => (sha1.clone(), false),
                None => (
                    sha1_file(&host)
                        .with_context(|| format!("failed to read `{}`", host.display()))?,
                    true,
                ),
            };
            Ok((TreeFile { path: e.path.clone(), sha1, sha256 }, fresh))
        })
        .collect::<Result<_>>()?;
    let fresh: Sha1s = files
        .iter()
        .filter(|(_, fresh)| *fresh)
        .map(|(f, _)| (f.sha256.clone(), f.sha1.clone()))
        .collect();
    let files: Vec<TreeFile> = files.into_iter().map(|(f, _)| f).collect();
    let mut by_package: BTreeMap<&Package, Vec<&TreeFile>> = BTreeMap::new();
    for file in &files {
        if let Some(package) = input.owners.get(&file.path) {
            by_package.entry(package).or_default().push(file);
        }
    }
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Rootfs")];
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Rootfs",
        "name": input.name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "comment": "A root filesystem built by `cargo xtask rootfs build`.",
    })];
    let mut references = BTreeMap::new();
    for (package, owned) in &by_package {
        let id = package_id(package);
        relationships.push(relationship("SPDXRef-Rootfs", "CONTAINS", &id));
        for file in owned {
            relationships.push(relationship(&id, "CONTAINS", &file_id(&file.path)));
        }
        let declared = input.licenses.get(&package.name).cloned().unwrap_or_default();
        for (license, (name, text)) in &declared.references {
            references.entry(license.clone()).or_insert_with(
                || json!({ "licenseId": license, "name": name, "extractedText": text }),
            );
        }
        packages.push(deb_package(package, owned, &declared));
    }
    let files: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({
                "SPDXID": file_id(&f.path),
                "fileName": format!(".{}", f.path.display()),
                "checksums": [
                    { "algorithm": "SHA1", "checksumValue": f.sha1 },
                    { "algorithm": "SHA256", "checksumValue": f.sha256 },
                ],
            })
        })
        .collect();
    let document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("rootfs-{}", input.name),
        "documentNamespace": "",
        "creationInfo": { "created": fsutil::rfc3339(input.epoch), "creators": [creator()] },
        "packages": packages,
        "files": files,
        "relationships": relationships,
        "hasExtractedLicensingInfos": references.into_values().collect::<Vec<_>>(),
    });
    Ok((document, fresh))
}

fn deb_package(package: &Package, owned: &[&TreeFile], declared: &Declared) -> Value {
    // SPDX 2.3, 7.9: the SHA1 of the sorted SHA1s of the package's files.
    let mut sha1s: Vec<&str> = owned.iter().map(|f| f.sha1.as_str()).collect();
    sha1s.sort_unstable();
    let code = format!("{:x}", Sha1::digest(sha1s.concat().as_bytes()));
    json!({
        "SPDXID": package_id(package),
        "name": package.name,
        "versionInfo": package.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": true,
        "packageVerificationCode": { "packageVerificationCodeValue": code },
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": declared.expression.as_deref().unwrap_or("NOASSERTION"),
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl(package),
        }],
    })
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH`, with the version
/// percent-encoded (the purl specification keeps only letters, digits and
/// `.-_~` as they are).
pub fn purl(package: &Package) -> String {
    let version: String = package
        .version
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("pkg:deb/debian/{}@{version}?arch={}", package.name, package.arch)
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
}

/// `SPDXRef-Package-NAME.ARCH`: Debian names are lowercase letters, digits
/// and `+-.`, architectures have no `.`; `+` becomes `P`, which no Debian
/// name holds, so two packages never share an id.
fn package_id(package: &Package) -> String {
    format!("SPDXRef-Package-{}.{}", package.name.replace('+', "P"), package.arch)
}

/// `SPDXRef-File-` and the tree path's letters, then a digest of the path
/// so that paths differing only in other characters stay apart.
fn file_id(path: &Path) -> String {
    let text = path.to_string_lossy();
    let readable: String = text
        .trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' })
        .collect();
    format!("SPDXRef-File-{readable}-{}", &fsutil::sha256_hex(text.as_bytes())[..8])
}

fn sha1_file(path: &Path) -> std::io::Result<String> {
    fsutil::digest_file::<Sha1>(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_and_ids_are_spelled_as_purl_and_spdx_want() {
        let package = Package {
            name: "libc6".into(),
            version: "1:2.36-9+deb12u7".into(),
            arch: "amd64".into(),
        };
        assert_eq!(purl(&package), "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u7?arch=amd64");
        let plus = Package { name: "libstdc++6".into(), ..package };
        assert_eq!(package_id(&plus), "SPDXRef-Package-libstdcPP6.amd64");
    }
}
