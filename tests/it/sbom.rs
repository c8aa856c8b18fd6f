//! The SBOM beside a tree: SPDX that the SPDX project's own validator accepts, the packages and versions dpkg reports, every file's digest as in the tree, and the same document attached to an OCI image that skopeo still reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rootfs::build::{Options, build};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::support::{host_tool, oci_image_of, project_root, pyspdxtools};

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// File SPDX id -> the package ids that contain it.
fn containers(sbom: &Value) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in sbom["relationships"].as_array().unwrap() {
        if r["relationshipType"] == "CONTAINS" {
            let to = r["relatedSpdxElement"].as_str().unwrap().to_string();
            map.entry(to).or_default().push(r["spdxElementId"].as_str().unwrap().to_string());
        }
    }
    map
}

#[test]
fn the_default_specs_sbom_validates_and_matches_dpkg_and_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build(&Options::new(project_root().join("rootfs-spec/default.toml"), tmp.path()))
        .unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
    let path = rootfs::build::sbom::path_for(&built.out);
    let sbom = read_json(&path);

    let sh = Shell::new().unwrap();
    let format = "-f=${Version}";
    let version = cmd!(sh, "dpkg-query -W {format} libc6").read().unwrap();
    let packages = sbom["packages"].as_array().unwrap();
    let libc6 = packages.iter().find(|p| p["name"] == "libc6").expect("libc6 is listed");
    assert_eq!(libc6["versionInfo"].as_str(), Some(version.as_str()));
    let purl = libc6["externalRefs"][0]["referenceLocator"].as_str().unwrap();
    assert!(purl.starts_with("pkg:deb/debian/libc6@") && purl.ends_with("?arch=amd64"), "{purl}");

    // Every regular file of the tree, with its digest, and no other.
    let files = sbom["files"].as_array().unwrap();
    let tree_files: BTreeSet<String> = built
        .manifest
        .entries
        .iter()
        .filter(|e| e.kind == rootfs::vocab::EntryType::File)
        .map(|e| format!(".{}", e.path.display()))
        .collect();
    let listed: BTreeSet<String> =
        files.iter().map(|f| f["fileName"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, tree_files);
    let checksum = |file: &Value, algorithm: &str| {
        let checksums = file["checksums"].as_array().unwrap();
        let found = checksums.iter().find(|c| c["algorithm"] == algorithm).unwrap();
        found["checksumValue"].as_str().unwrap().to_string()
    };
    for file in files {
        let name = file["fileName"].as_str().unwrap();
        let in_tree = built.out.join(&name[2..]);
        let sha256 = rootfs::fsutil::sha256_file(&in_tree).unwrap();
        assert_eq!(checksum(file, "SHA256"), sha256, "{name}");
        let sha1 = rootfs::fsutil::digest_file::<sha1::Sha1>(&in_tree).unwrap();
        assert_eq!(checksum(file, "SHA1"), sha1, "{name}");
    }

    // dpkg lists libc under /lib; the tree holds it under /usr/lib.
    let by_name: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f["fileName"].as_str().unwrap(), f["SPDXID"].as_str().unwrap()))
        .collect();
    let contained = containers(&sbom);
    let libc = by_name["./usr/lib/x86_64-linux-gnu/libc.so.6"];
    assert_eq!(contained[libc], [libc6["SPDXID"].as_str().unwrap()]);
    for unowned in ["./etc/passwd", "./etc/group", "./etc/ld.so.cache"] {
        assert!(!contained.contains_key(by_name[unowned]), "{unowned} has a package");
    }

    // The SHA1s come from the cache beside the tree on a rebuild, and make
    // the same document.
    let sha1s = rootfs::build::sha1_cache::read(&rootfs::build::sha1_cache::path_for(&built.out));
    let contents: BTreeSet<String> = files.iter().map(|f| checksum(f, "SHA256")).collect();
    assert_eq!(sha1s.len(), contents.len(), "one SHA1 per distinct content");
    let mut options = Options::new(project_root().join("rootfs-spec/default.toml"), tmp.path());
    options.force = true;
    let rebuilt = build(&options).unwrap();
    assert_eq!(
        std::fs::read(rootfs::build::sbom::path_for(&rebuilt.out)).unwrap(),
        std::fs::read(&path).unwrap()
    );

    // The same tree gives the same document, wherever it is written.
    let other = tempfile::tempdir().unwrap();
    let mut options = Options::new(project_root().join("rootfs-spec/default.toml"), other.path());
    options.force = true;
    let again = build(&options).unwrap();
    assert_eq!(
        std::fs::read(rootfs::build::sbom::path_for(&again.out)).unwrap(),
        std::fs::read(&path).unwrap()
    );

    let Some(validator) = pyspdxtools() else { return };
    let output = cmd!(sh, "{validator} -i {path}").ignore_status().output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pyspdxtools rejected the SBOM:\n{text}");
    assert!(!text.to_lowercase().contains("invalid"), "{text}");
}

#[test]
fn an_oci_export_carries_the_sbom_as_an_artifact_that_skopeo_passes_by() {
    let Some(skopeo) = host_tool("skopeo", "reading the exported image") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("s.toml");
    std::fs::write(&spec, "name = \"s\"\ncommands = [\"bash\"]\n").unwrap();
    let built = build(&Options::new(&spec, tmp.path().join("out"))).unwrap();
    let layout = tmp.path().join("image");
    oci_image_of(&built, &layout);
    let sh = Shell::new().unwrap();
    let reference = format!("oci:{}:latest", layout.display());
    let inspect: Value =
        serde_json::from_str(&cmd!(sh, "{skopeo} inspect {reference}").read().unwrap()).unwrap();
    assert_eq!(inspect["Architecture"], "amd64");
    let sbom = std::fs::read(rootfs::build::sbom::path_for(&built.out)).unwrap();
    let index_text = std::fs::read_to_string(layout.join("index.json")).unwrap();
    let index: Value = serde_json::from_str(&index_text).unwrap();
    let artifacts: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["artifactType"] == rootfs::build::sbom::MEDIA_TYPE)
        .collect();
    assert_eq!(artifacts.len(), 1, "{index_text}");
    let blob = |d: &Value| {
        let hex = d.as_str().unwrap().strip_prefix("sha256:").unwrap().to_string();
        std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
    };
    let manifest: Value = serde_json::from_slice(&blob(&artifacts[0]["digest"])).unwrap();
    assert_eq!(manifest["subject"]["digest"], inspect["Digest"]);
    assert_eq!(manifest["artifactType"], rootfs::build::sbom::MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
    assert_eq!(blob(&manifest["config"]["digest"]), b"{}");
    assert_eq!(blob(&manifest["layers"][0]["digest"]), sbom);
}
