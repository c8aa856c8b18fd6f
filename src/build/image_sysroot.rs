//! A sysroot taken from an image, `--sysroot oci:DIR[:TAG]` (an OCI image layout) or `--sysroot tar:FILE` (a root filesystem archive), or from Debian packages (`debian:SUITE[/ARCH]`, see `build/debian.rs`): unpacked once into a cache folder named by the image's digest, then used exactly as a directory sysroot.
//!
//! The cache is `<cache_root>/sha256-<hex>/` (the build passes
//! `target/rootfs/.sysroots`), where `<hex>` is the digest of the image
//! manifest, or of the archive file. A folder there is complete: it is
//! filled under a temporary name beside it and renamed when every layer is
//! in, so an interrupted unpack leaves nothing that a later build reuses.
//! While the image is unchanged its folder is reused without reading a
//! layer; the resolver then reads its `ld.so.cache` and loader
//! configuration as it would a directory's.
//!
//! An image layout's blobs are checked against their digests before they
//! are used, and a digest is only ever a `sha256:` and 64 hex digits, so no
//! name read from the layout can point outside its `blobs/sha256/`. How a
//! layer is applied, and why no entry can write outside the cache folder,
//! is in `build/unpacked/layer.rs`.

pub use crate::build::unpacked::Prepared;
use crate::build::unpacked::{cached, layer};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub use self::layer::relative;
use crate::fsutil;

/// Where the programs and libraries of a build come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SysrootSource {
    /// A host directory seen as `/`.
    Dir(PathBuf),
    /// An OCI image layout, with the tag (`org.opencontainers.image.ref.name`)
    /// of the image; without one, the layout's only image.
    Oci { layout: PathBuf, tag: Option<String> },
    /// A tar archive (plain, gzip or zstd) of a root filesystem.
    Tar(PathBuf),
    /// Debian packages, `debian:SUITE[/ARCH]`: the suite and architecture
    /// from the flag, the packages from `--packages` or the spec's
    /// `[sysroot.debian]`, which also gives the mirror and keyring.
    Debian {
        request: crate::build::debian::DebianRequest,
        /// The lock whose package set to use (the spec's, for a build).
        lock: Option<PathBuf>,
        /// `--locked`: refuse a package set other than the lock's.
        locked: bool,
    },
}

/// A `--sysroot` value that names nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSysroot(pub String);

impl fmt::Display for BadSysroot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` names no sysroot: use DIR, oci:DIR[:TAG], tar:FILE or debian:SUITE[/ARCH]",
            self.0
        )
    }
}

impl std::error::Error for BadSysroot {}

impl FromStr for SysrootSource {
    type Err = BadSysroot;

    /// `oci:DIR:TAG` splits at the last `:` when what follows holds no
    /// `/`, so `oci:/images/a:b/c` is a layout without a tag.
    fn from_str(text: &str) -> Result<SysrootSource, BadSysroot> {
        let bad = || BadSysroot(text.to_string());
        if let Some(rest) = text.strip_prefix("oci:") {
            let (layout, tag) = match rest.rsplit_once(':') {
                Some((dir, tag)) if !dir.is_empty() && !tag.is_empty() && !tag.contains('/') => {
                    (dir, Some(tag.to_string()))
                }
                _ => (rest, None),
            };
            if layout.is_empty() {
                return Err(bad());
            }
            return Ok(SysrootSource::Oci { layout: PathBuf::from(layout), tag });
        }
        if let Some(file) = text.strip_prefix("tar:") {
            return if file.is_empty() { Err(bad()) } else { Ok(SysrootSource::Tar(file.into())) };
        }
        if let Some(rest) = text.strip_prefix("debian:") {
            let (suite, architecture) = match rest.split_once('/') {
                Some((suite, arch)) => (suite, Some(arch)),
                None => (rest, None),
            };
            let word = |w: &str| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            };
            if !word(suite) || architecture.is_some_and(|a| !word(a)) {
                return Err(bad());
            }
            let request = crate::build::debian::DebianRequest {
                suite: suite.to_string(),
                architecture: architecture.map(str::to_string),
                ..Default::default()
            };
            return Ok(SysrootSource::Debian { request, lock: None, locked: false });
        }
        if text.is_empty() {
            return Err(bad());
        }
        Ok(SysrootSource::Dir(PathBuf::from(text)))
    }
}

impl fmt::Display for SysrootSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysrootSource::Dir(dir) => write!(f, "{}", dir.display()),
            SysrootSource::Oci { layout, tag: Some(tag) } => {
                write!(f, "oci:{}:{tag}", layout.display())
            }
            SysrootSource::Oci { layout, tag: None } => write!(f, "oci:{}", layout.display()),
            SysrootSource::Tar(file) => write!(f, "tar:{}", file.display()),
            SysrootSource::Debian { request, .. } => match &request.architecture {
                Some(arch) => write!(f, "debian:{}/{arch}", request.suite),
                None => write!(f, "debian:{}", request.suite),
            },
        }
    }
}

/// The directory a source stands for, unpacking an image into
/// `cache_root` unless it is there already.
pub fn prepare(source: &SysrootSource, cache_root: &Path) -> Result<Prepared> {
    match source {
        SysrootSource::Dir(dir) => Ok(Prepared {
            dir: dir.clone(),
            image: None,
            unpacked: false,
            packages: None,
            notes: Vec::new(),
        }),
        SysrootSource::Oci { layout, tag } => {
            let image = select(layout, tag.as_deref())
                .with_context(|| format!("reading the image layout `{}`", layout.display()))?;
            cached(
                cache_root,
                &image.digest.replace(':', "-"),
                Some(image.digest.clone()),
                |root, dirs| {
                    for digest in &image.layers {
                        let blob = blob_path(layout, digest)?;
                        let file = std::fs::File::open(&blob)
                            .with_context(|| format!("failed to open `{}`", blob.display()))?;
                        layer::apply(root, file, dirs)
                            .with_context(|| format!("applying layer {digest} of `{source}`"))?;
                    }
                    Ok(())
                },
            )
        }
        SysrootSource::Tar(file) => {
            let hex = fsutil::sha256_file(file)
                .with_context(|| format!("failed to read `{}`", file.display()))?;
            cached(
                cache_root,
                &format!("sha256-{hex}"),
                Some(format!("sha256:{hex}")),
                |root, dirs| {
                    let reader = std::fs::File::open(file)
                        .with_context(|| format!("failed to open `{}`", file.display()))?;
                    layer::apply(root, reader, dirs)
                        .with_context(|| format!("unpacking `{source}`"))
                },
            )
        }
        // The lock's package set (or a new resolution), its `.deb`s verified
        // in the download cache, unpacked into `cache_root/deb-<digest>/`.
        SysrootSource::Debian { request, lock, locked } => {
            crate::build::debian::sysroot::prepared(request, lock.clone(), *locked, cache_root)
        }
    }
}

/// An image of a layout: its manifest's digest and its layers in order.
struct Image {
    digest: String,
    layers: Vec<String>,
    /// The digest of the image configuration.
    config: String,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The image tagged `tag` (or the only image) of the layout at `layout`,
/// through one level of image index for a multi-platform image.
fn select(layout: &Path, tag: Option<&str>) -> Result<Image> {
    let index = read_json(&layout.join("index.json"))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let candidates: Vec<&Value> = manifests
        .iter()
        .filter(|d| match tag {
            Some(tag) => d["annotations"][REF_NAME] == tag,
            // Artifacts (an SBOM attached to the image) are not images.
            None => d.get("artifactType").is_none(),
        })
        .collect();
    let descriptor = match (candidates.as_slice(), tag) {
        ([one], _) => *one,
        ([], Some(tag)) => bail!("no image is tagged `{tag}`"),
        ([], None) => bail!("the layout holds no image"),
        (_, _) => bail!("the layout holds several images: name one with oci:DIR:TAG"),
    };
    let digest = descriptor["digest"].as_str().context("a descriptor without a digest")?;
    let mut manifest = read_blob_json(layout, digest)?;
    let mut digest = digest.to_string();
    if manifest["manifests"].is_array() {
        let inner = platform_manifest(&manifest)?;
        manifest = read_blob_json(layout, &inner)?;
        digest = inner;
    }
    let layers = manifest["layers"]
        .as_array()
        .context("the image manifest has no layers")?
        .iter()
        .map(|l| l["digest"].as_str().map(str::to_string).context("a layer without a digest"))
        .collect::<Result<Vec<_>>>()?;
    for layer in &layers {
        let path = blob_path(layout, layer)?;
        let hex = fsutil::sha256_file(&path)
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        anyhow::ensure!(
            format!("sha256:{hex}") == *layer,
            "layer {layer} does not match its digest"
        );
    }
    let config = manifest["config"]["digest"].as_str().context("a manifest without a config")?;
    Ok(Image { digest, layers, config: config.to_string() })
}

/// The manifest of this machine's platform in an image index.
fn platform_manifest(index: &Value) -> Result<String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    let manifests = index["manifests"].as_array().context("an empty image index")?;
    let chosen = manifests
        .iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
        .or(if manifests.len() == 1 { manifests.first() } else { None })
        .with_context(|| format!("the image index has no linux/{arch} image"))?;
    chosen["digest"].as_str().map(str::to_string).context("a descriptor without a digest")
}

/// `blobs/sha256/<hex>` of a digest, refusing anything but sha256 and hex.
fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(layout.join("blobs/sha256").join(hex))
        }
        _ => bail!("`{digest}` is not a sha256 digest"),
    }
}

fn read_blob_json(layout: &Path, digest: &str) -> Result<Value> {
    let path = blob_path(layout, digest)?;
    let bytes =
        std::fs::read(&path).with_context(|| format!("failed to read `{}`", path.display()))?;
    anyhow::ensure!(
        format!("sha256:{}", fsutil::sha256_hex(&bytes)) == digest,
        "blob {digest} does not match its digest"
    );
    serde_json::from_slice(&bytes).with_context(|| format!("failed to parse `{}`", path.display()))
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("failed to parse `{}`", path.display()))
}

/// The uid and gid of each root path, as an image's layers record them.
pub type LayerOwners = BTreeMap<PathBuf, (u32, u32)>;

/// What a structure test reads of an image layout's only image besides its
/// files: the configuration's `config` object, and the owner of every path
/// as the layers' headers give it (a later layer's entry wins; whiteouts
/// are not followed, a path removed stays listed).
pub fn config_and_owners(layout: &Path) -> Result<(Value, LayerOwners)> {
    let image = select(layout, None)
        .with_context(|| format!("reading the image layout `{}`", layout.display()))?;
    let mut config = read_blob_json(layout, &image.config)?;
    let mut owners = BTreeMap::new();
    for digest in &image.layers {
        let blob = blob_path(layout, digest)?;
        let file = std::fs::File::open(&blob)
            .with_context(|| format!("failed to open `{}`", blob.display()))?;
        let mut archive = tar::Archive::new(layer::decompress(file)?);
        for entry in archive.entries().context("reading a layer")? {
            let entry = entry.context("reading a layer")?;
            let header = entry.header();
            let path = Path::new("/").join(relative(&entry.path().context("reading a path")?)?);
            let uid = header.uid().context("reading an owner")? as u32;
            let gid = header.gid().context("reading a group")? as u32;
            owners.insert(path, (uid, gid));
        }
    }
    Ok((config["config"].take(), owners))
}

/// The blob of the SBOM attached to the layout's image (an artifact of
/// type `application/spdx+json`), if there is one.
pub fn attached_sbom(layout: &Path) -> Result<Option<PathBuf>> {
    let index = read_json(&layout.join("index.json"))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let artifact = manifests.iter().find(|d| d["artifactType"] == crate::build::sbom::MEDIA_TYPE);
    let Some(digest) = artifact.and_then(|d| d["digest"].as_str()) else { return Ok(None) };
    let manifest = read_blob_json(layout, digest)?;
    match manifest["layers"][0]["digest"].as_str() {
        Some(layer) => Ok(Some(blob_path(layout, layer)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysroot_flags_parse_into_sources() {
        let parse = |s: &str| s.parse::<SysrootSource>();
        assert_eq!(parse("/"), Ok(SysrootSource::Dir("/".into())));
        assert_eq!(
            parse("oci:/img:latest"),
            Ok(SysrootSource::Oci { layout: "/img".into(), tag: Some("latest".into()) })
        );
        assert_eq!(parse("oci:img"), Ok(SysrootSource::Oci { layout: "img".into(), tag: None }));
        assert_eq!(
            parse("oci:/a:b/c"),
            Ok(SysrootSource::Oci { layout: "/a:b/c".into(), tag: None })
        );
        assert_eq!(parse("tar:x.tar.gz"), Ok(SysrootSource::Tar("x.tar.gz".into())));
        assert!(parse("oci:").is_err());
        assert!(parse("tar:").is_err());
        assert_eq!(parse("oci:/img:latest").unwrap().to_string(), "oci:/img:latest");
        let debian = |suite: &str, arch: Option<&str>| {
            let request = crate::build::debian::DebianRequest {
                suite: suite.into(),
                architecture: arch.map(str::to_string),
                ..Default::default()
            };
            Ok(SysrootSource::Debian { request, lock: None, locked: false })
        };
        assert_eq!(parse("debian:bookworm"), debian("bookworm", None));
        assert_eq!(parse("debian:trixie/arm64"), debian("trixie", Some("arm64")));
        assert_eq!(parse("debian:trixie/arm64").unwrap().to_string(), "debian:trixie/arm64");
        assert!(parse("debian:").is_err());
        assert!(parse("debian:bookworm/").is_err());
        assert!(parse("debian:a/b/c").is_err());
    }

    #[test]
    fn digests_never_name_a_path_outside_the_blobs() {
        assert!(blob_path(Path::new("/l"), "sha256:../../etc/passwd").is_err());
        assert!(blob_path(Path::new("/l"), &format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(blob_path(Path::new("/l"), &format!("sha256:{}", "a".repeat(64))).is_ok());
    }
}
