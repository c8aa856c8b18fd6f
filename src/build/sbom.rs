//! The SBOM beside a built rootfs (`.rootfs/<name>.spdx.json` beside it): SPDX 2.3 JSON from the manifest and the sysroot's dpkg database (an OCI export carries it as an artifact of the image: `export/oci.rs`).
//!
//! The document:
//! - one package for the rootfs itself, which the document `DESCRIBES`
//!   and which `CONTAINS` each Debian package below;
//! - one package per Debian package owning at least one file of the tree:
//!   its name, `versionInfo` from the dpkg database, a purl
//!   `pkg:deb/debian/NAME@VERSION?arch=ARCH` (the version percent-encoded
//!   as the purl specification asks, so `+` is `%2B`), and the license its
//!   machine-readable copyright file declares (`build/dpkg/copyright.rs`), else
//!   `NOASSERTION`; it `CONTAINS` each of its files. From a package
//!   sysroot, the lock's package set adds what the `.deb` was: the purl's
//!   `&distro=debian-12` (from its suite's `InRelease`), the `.deb`'s
//!   file name and its SHA256 as the package's checksum. (The dpkg
//!   database there is the one `build/debian/status.rs` wrote from the packages'
//!   control files, so versions and licenses are the packages' own.)
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

use crate::build::dpkg::Package;
use crate::build::dpkg::copyright::{self, Declared};
use crate::build::license_cache::Licenses;
use crate::build::manifest::Manifest;
use crate::build::sha1_cache::Sha1s;
use crate::fsutil;
use crate::resolve::sysroot::Sysroot;
use crate::vocab::EntryType;
use crate::vocab::Sha256;

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
    // Only the fields looked at are kept; serde skips the rest (tens of
    // thousands of files and relationships) without building them.
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "spdxVersion")]
        version: Value,
        #[serde(rename = "creationInfo")]
        creation: Creation,
    }
    #[derive(serde::Deserialize)]
    struct Creation {
        creators: Vec<Value>,
    }
    let Ok(shape) = serde_json::from_slice::<Shape>(bytes) else { return false };
    shape.version == "SPDX-2.3"
        && shape
            .creation
            .creators
            .iter()
            .any(|c| c.as_str().is_some_and(|c| c.starts_with("Tool: rootfs-")))
}

/// A writer that only hashes what it is given.
struct DigestWriter(sha2::Sha256);

impl std::io::Write for DigestWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the SBOM needs besides the manifest and the tree.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// The spec's name.
    pub name: String,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: i64,
    /// The Debian package owning each tree path.
    pub owners: crate::build::dpkg::Owners,
    /// The declared license of each package, by name.
    pub licenses: BTreeMap<String, Declared>,
    /// The `.deb` each package of a package sysroot came from, by name.
    pub debs: BTreeMap<String, Deb>,
}

/// A package sysroot's package as the lock pins it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deb {
    pub version: String,
    pub architecture: String,
    /// The `.deb`'s file name (the last part of its `Filename`).
    pub file_name: String,
    pub sha256: Sha256,
    /// purl's `distro`, from the `InRelease` of the suite that served it.
    pub distro: Option<String>,
}

/// The `.deb`s of a lock's package set, by package name.
pub fn debs_of(set: &crate::build::lock::PackageSet) -> BTreeMap<String, Deb> {
    let distro = |suite: &str| set.releases.get(suite).and_then(|r| r.distro.clone());
    set.packages
        .iter()
        .map(|(name, p)| {
            let file_name = p.filename.rsplit('/').next().unwrap_or(&p.filename).to_string();
            let deb = Deb {
                version: p.version.clone(),
                architecture: p.architecture.clone(),
                file_name,
                sha256: p.sha256,
                distro: distro(&p.suite),
            };
            (name.clone(), deb)
        })
        .collect()
}

impl Input {
    /// Reads the declared license of every owning package from the
    /// sysroot, but for the copyright files `known` has in their present
    /// state; returns the input and the files read now
    /// (`copyright::declared_all`).
    pub fn new(
        name: &str,
        epoch: i64,
        owners: crate::build::dpkg::Owners,
        sysroot: &Sysroot,
        known: &Licenses,
    ) -> (Input, Licenses) {
        let names: BTreeSet<&str> = owners.values().map(|p| p.name.as_str()).collect();
        let (licenses, fresh) = copyright::declared_all(sysroot, &names, known);
        (Input { name: name.to_string(), epoch, owners, licenses, debs: BTreeMap::new() }, fresh)
    }
}

/// The SBOM of the tree at `tree` (which `manifest` describes), ready to
/// be written ([`Rendered::write`]), and the SHA1 of each file content
/// `known` did not have (by sha256: `build/sha1_cache.rs`).
pub fn render(
    input: &Input,
    manifest: &Manifest,
    tree: &Path,
    known: &Sha1s,
) -> Result<(Rendered, Sha1s)> {
    let (mut document, fresh) = document(input, manifest, tree, known)?;
    // The compact form is hashed as it is written, never held: for a tree
    // of 60,000 files it is tens of megabytes.
    let mut hasher =
        std::io::BufWriter::with_capacity(1 << 16, DigestWriter(sha2::Sha256::default()));
    serde_json::to_writer(&mut hasher, &document)?;
    let hasher = hasher.into_inner().map_err(|e| e.into_error())?;
    let digest = fsutil::hex_digest(hasher.0);
    document.namespace = format!("https://rootfs.invalid/spdx/{}-{digest}", input.name);
    Ok((Rendered(document), fresh))
}

/// An SBOM rendered in memory as its typed document, not yet as bytes.
pub struct Rendered(Document);

impl Rendered {
    /// The bytes written to disk: pretty JSON and a newline.
    pub fn write(&self, w: &mut dyn std::io::Write) -> Result<()> {
        serde_json::to_writer_pretty(&mut *w, &self.0).context("writing the SBOM as JSON")?;
        w.write_all(b"\n").context("writing the SBOM as JSON")
    }
}

/// One regular file of the tree.
struct TreeFile {
    path: PathBuf,
    sha1: String,
    sha256: Sha256,
}

/// Every regular file of the tree with its digests, and the SHA1s `known`
/// did not have.
fn tree_files(manifest: &Manifest, tree: &Path, known: &Sha1s) -> Result<(Vec<TreeFile>, Sha1s)> {
    let files: Vec<(TreeFile, bool)> = manifest
        .entries
        .par_iter()
        .filter(|e| e.kind == EntryType::File)
        .map(|e| {
            let host = tree.join(e.path.strip_prefix("/").unwrap_or(&e.path));
            let sha256 = match &e.sha256 {
                Some(digest) => *digest,
                None => Sha256::of_file(&host)
                    .with_context(|| format!("failed to read `{}`", host.display()))?,
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
    let fresh: Sha1s =
        files.iter().filter(|(_, fresh)| *fresh).map(|(f, _)| (f.sha256, f.sha1.clone())).collect();
    Ok((files.into_iter().map(|(f, _)| f).collect(), fresh))
}

/// The document, typed where it is long (a file and a relationship per
/// file of the tree) so that no `Value` is built per file. Each struct's
/// fields are in the order `serde_json::Value` writes keys (sorted, bytes
/// compared), which is the order the SBOM has always had.
#[derive(serde::Serialize)]
struct Document {
    #[serde(rename = "SPDXID")]
    id: &'static str,
    #[serde(rename = "creationInfo")]
    creation: Value,
    #[serde(rename = "dataLicense")]
    data_license: &'static str,
    #[serde(rename = "documentNamespace")]
    namespace: String,
    files: Vec<FileRecord>,
    #[serde(rename = "hasExtractedLicensingInfos")]
    references: Vec<Value>,
    name: String,
    packages: Vec<Value>,
    relationships: Vec<Relationship>,
    #[serde(rename = "spdxVersion")]
    version: &'static str,
}

#[derive(serde::Serialize)]
struct FileRecord {
    #[serde(rename = "SPDXID")]
    id: String,
    checksums: [Checksum; 2],
    #[serde(rename = "fileName")]
    name: String,
}

#[derive(serde::Serialize)]
struct Checksum {
    algorithm: &'static str,
    #[serde(rename = "checksumValue")]
    value: String,
}

#[derive(serde::Serialize)]
struct Relationship {
    #[serde(rename = "relatedSpdxElement")]
    to: String,
    #[serde(rename = "relationshipType")]
    kind: &'static str,
    #[serde(rename = "spdxElementId")]
    from: String,
}

fn document(
    input: &Input,
    manifest: &Manifest,
    tree: &Path,
    known: &Sha1s,
) -> Result<(Document, Sha1s)> {
    let (files, fresh) = tree_files(manifest, tree, known)?;
    let (packages, relationships, references) = packages(input, &files);
    let files: Vec<FileRecord> = files
        .into_iter()
        .map(|f| FileRecord {
            id: file_id(&f.path),
            checksums: [
                Checksum { algorithm: "SHA1", value: f.sha1 },
                Checksum { algorithm: "SHA256", value: f.sha256.to_string() },
            ],
            name: format!(".{}", f.path.display()),
        })
        .collect();
    let document = Document {
        id: "SPDXRef-DOCUMENT",
        creation: json!({ "created": fsutil::rfc3339(input.epoch), "creators": [creator()] }),
        data_license: "CC0-1.0",
        namespace: String::new(),
        files,
        references,
        name: format!("rootfs-{}", input.name),
        packages,
        relationships,
        version: "SPDX-2.3",
    };
    Ok((document, fresh))
}

/// The rootfs package and one package per Debian package owning a file,
/// the relationships between them and to the files, and the license
/// references their expressions use.
fn packages(input: &Input, files: &[TreeFile]) -> (Vec<Value>, Vec<Relationship>, Vec<Value>) {
    let mut by_package: BTreeMap<&Package, Vec<&TreeFile>> = BTreeMap::new();
    for file in files {
        if let Some(package) = input.owners.get(&file.path) {
            by_package.entry(&**package).or_default().push(file);
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
        let deb = input
            .debs
            .get(&package.name)
            .filter(|d| d.version == package.version && d.architecture == package.arch);
        packages.push(deb_package(package, owned, &declared, deb));
    }
    (packages, relationships, references.into_values().collect())
}

fn deb_package(
    package: &Package,
    owned: &[&TreeFile],
    declared: &Declared,
    deb: Option<&Deb>,
) -> Value {
    // SPDX 2.3, 7.9: the SHA1 of the sorted SHA1s of the package's files.
    let mut sha1s: Vec<&str> = owned.iter().map(|f| f.sha1.as_str()).collect();
    sha1s.sort_unstable();
    let code = format!("{:x}", Sha1::digest(sha1s.concat().as_bytes()));
    let distro = deb.and_then(|d| d.distro.as_deref());
    let mut value = json!({
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
            "referenceLocator": purl(package, distro),
        }],
    });
    if let Some(deb) = deb {
        // SPDX 2.3, 7.4 and 7.10: the file the package was distributed as.
        value["packageFileName"] = json!(deb.file_name);
        value["checksums"] =
            json!([{ "algorithm": "SHA256", "checksumValue": deb.sha256.to_string() }]);
    }
    value
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH`, then `&distro=DISTRO` when
/// known (qualifiers sorted by key, as the purl specification asks), with
/// the version percent-encoded (the specification keeps only letters,
/// digits and `.-_~` as they are).
pub fn purl(package: &Package, distro: Option<&str>) -> String {
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
    let distro = distro.map(|d| format!("&distro={d}")).unwrap_or_default();
    format!("pkg:deb/debian/{}@{version}?arch={}{distro}", package.name, package.arch)
}

fn relationship(from: &str, kind: &'static str, to: &str) -> Relationship {
    Relationship { to: to.to_string(), kind, from: from.to_string() }
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
    use crate::build::manifest::ManifestEntry;

    #[test]
    fn purls_and_ids_are_spelled_as_purl_and_spdx_want() {
        let package = Package {
            name: "libc6".into(),
            version: "1:2.36-9+deb12u7".into(),
            arch: "amd64".into(),
        };
        assert_eq!(purl(&package, None), "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u7?arch=amd64");
        assert_eq!(
            purl(&package, Some("debian-12")),
            "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12"
        );
        let plus = Package { name: "libstdc++6".into(), ..package };
        assert_eq!(package_id(&plus), "SPDXRef-Package-libstdcPP6.amd64");
    }

    /// A tree of one file owned by `bash`, and an input whose package set
    /// names `bash` at `version`.
    fn document_for(version: &str) -> Value {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("usr/bin")).unwrap();
        std::fs::write(tree.path().join("usr/bin/bash"), b"#!bash").unwrap();
        let entry = ManifestEntry {
            path: PathBuf::from("/usr/bin/bash"),
            kind: EntryType::File,
            mode: "0755".parse().unwrap(),
            size: Some(6),
            sha256: None,
            target: None,
            source: None,
            why: Vec::new(),
        };
        let manifest = Manifest {
            format: crate::build::manifest::FORMAT,
            name: "t".into(),
            commands: Vec::new(),
            entries: vec![entry],
            portability: None,
        };
        let bash =
            Package { name: "bash".into(), version: "5.2.15-2+b7".into(), arch: "amd64".into() };
        let deb = Deb {
            version: version.into(),
            architecture: "amd64".into(),
            file_name: "bash_5.2.15-2+b7_amd64.deb".into(),
            sha256: "ab".repeat(32).parse().unwrap(),
            distro: Some("debian-12".into()),
        };
        let input = Input {
            name: "t".into(),
            owners: BTreeMap::from([(PathBuf::from("/usr/bin/bash"), std::sync::Arc::new(bash))]),
            debs: BTreeMap::from([("bash".to_string(), deb)]),
            ..Default::default()
        };
        let (rendered, _) = render(&input, &manifest, tree.path(), &Sha1s::new()).unwrap();
        let mut bytes = Vec::new();
        rendered.write(&mut bytes).unwrap();
        let document: Value = serde_json::from_slice(&bytes).unwrap();
        document["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "bash")
            .unwrap()
            .clone()
    }

    #[test]
    fn a_package_sysroots_packages_carry_their_distro_and_deb_digest() {
        let bash = document_for("5.2.15-2+b7");
        assert_eq!(
            bash["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64&distro=debian-12"
        );
        assert_eq!(bash["packageFileName"], "bash_5.2.15-2+b7_amd64.deb");
        assert_eq!(
            bash["checksums"],
            json!([{ "algorithm": "SHA256", "checksumValue": "ab".repeat(32) }])
        );
        // A set that pins another version says nothing about this package.
        let other = document_for("5.2.15-2+b8");
        assert_eq!(
            other["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64"
        );
        assert!(other.get("checksums").is_none() && other.get("packageFileName").is_none());
    }

    #[test]
    fn debs_of_a_set_take_the_distro_of_the_suite_that_served_each() {
        use crate::build::lock::{LockedPackage, LockedRelease, PackageSet};
        let release = |distro: &str| LockedRelease {
            sha256: crate::vocab::Sha256::of(b"InRelease"),
            date: String::new(),
            distro: Some(distro.into()),
        };
        let set = PackageSet {
            releases: BTreeMap::from([
                ("bookworm".to_string(), release("debian-12")),
                ("bookworm-backports".to_string(), release("debian-bookworm")),
            ]),
            packages: BTreeMap::from([(
                "git".to_string(),
                LockedPackage {
                    version: "1:2.43.0-1~bpo12+1".into(),
                    architecture: "amd64".into(),
                    suite: "bookworm-backports".into(),
                    filename: "pool/main/g/git/git_2.43.0-1~bpo12+1_amd64.deb".into(),
                    sha256: "cd".repeat(32).parse().unwrap(),
                    size: 1,
                },
            )]),
            ..Default::default()
        };
        let debs = debs_of(&set);
        assert_eq!(debs["git"].distro.as_deref(), Some("debian-bookworm"));
        assert_eq!(debs["git"].file_name, "git_2.43.0-1~bpo12+1_amd64.deb");
    }
}
