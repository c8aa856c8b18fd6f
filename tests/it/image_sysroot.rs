//! An image as the sysroot: a spec built from an image of a tree this tool built finds every library inside and copies nothing more; layers apply in order with whiteouts, and no entry writes outside the cache.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rootfs::build::image_sysroot::{SysrootSource, prepare};
use rootfs::build::manifest::{CommandKind, Manifest};
use rootfs::build::{Options, build};
use serde_json::json;

use crate::support::{copy_sysroot, host_tool, in_chroot, oci_image_of, project_root};

/// What a tree holds, host origins left out: equal sets mean the same tree.
fn contents(manifest: &Manifest) -> BTreeSet<String> {
    manifest
        .entries
        .iter()
        .map(|e| {
            format!("{} {:?} {} {:?} {:?}", e.path.display(), e.kind, e.mode, e.sha256, e.target)
        })
        .collect()
}

#[test]
fn a_spec_built_from_an_image_of_its_own_tree_loads_everything_and_copies_nothing_more() {
    if host_tool("umoci", "building from an OCI image").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A copy of the specs, so that their lock is this test's own.
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("presets")).unwrap();
    for name in ["default.toml", "default.structure.yaml", "base.toml", "presets/vim.toml"] {
        std::fs::copy(project_root().join("rootfs-spec").join(name), repo.join(name)).unwrap();
    }
    let spec = repo.join("default.toml");
    let first = build(&Options::new(&spec, tmp.path().join("from-host"))).unwrap();
    let layout = tmp.path().join("image");
    oci_image_of(&first, &layout);

    let source: SysrootSource = format!("oci:{}:latest", layout.display()).parse().unwrap();
    let cache = tmp.path().join("cache");
    let started = Instant::now();
    let prepared = prepare(&source, &cache).unwrap();
    eprintln!("unpacked the image in {:.3} s", started.elapsed().as_secs_f64());
    assert!(prepared.unpacked && prepared.dir.starts_with(&cache));
    let again = prepare(&source, &cache).unwrap();
    assert_eq!((again.unpacked, &again.dir), (false, &prepared.dir), "the cache is reused");

    let mut options = Options::new(&spec, tmp.path().join("from-image"));
    options.sysroot = prepared.dir.clone();
    options.image = prepared.image.clone();
    let second = build(&options).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
    assert_eq!(contents(&second.manifest), contents(&first.manifest));
    let lock =
        rootfs::build::lock::Lock::parse(&std::fs::read(spec.with_extension("lock")).unwrap())
            .unwrap();
    assert_eq!(lock.image, prepared.image);
    assert!(lock.image.as_deref().is_some_and(|d| d.starts_with("sha256:")));

    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (asking the loader inside the tree uses chroot(2))");
        return;
    }
    for command in second.manifest.commands.iter().filter(|c| c.kind == CommandKind::Dynamic) {
        let path = command.path.to_str().unwrap();
        let (status, output) = in_chroot(&second.out, &[path], &[("LD_TRACE_LOADED_OBJECTS", "1")]);
        assert_eq!(status, 0, "{}:\n{output}", command.name);
        assert!(!output.contains("not found"), "{}:\n{output}", command.name);
    }
}

/// One tar entry: a path (written into the header as is, `..` included),
/// and what it is.
enum Entry<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (path, kind, mode, data, link): (&str, tar::EntryType, u32, &[u8], Option<&str>) =
            match entry {
                Entry::Dir(p, mode) => (p, tar::EntryType::Directory, *mode, b"", None),
                Entry::File(p, data) => (p, tar::EntryType::Regular, 0o644, data, None),
                Entry::Symlink(p, t) => (p, tar::EntryType::Symlink, 0o777, b"", Some(t)),
                Entry::HardLink(p, t) => (p, tar::EntryType::Link, 0o644, b"", Some(t)),
            };
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn blob(layout: &Path, bytes: &[u8]) -> serde_json::Value {
    let hex = rootfs::fsutil::sha256_hex(bytes);
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    json!({ "digest": format!("sha256:{hex}"), "size": bytes.len() })
}

/// An OCI image layout whose image `latest` has these layers, in order.
fn layout_with(layout: &Path, layers: &[Vec<u8>]) -> PathBuf {
    let config = blob(
        layout,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let mut d = blob(layout, l);
            d["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+gzip");
            d
        })
        .collect();
    let manifest = json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers });
    let mut descriptor = blob(layout, &serde_json::to_vec(&manifest).unwrap());
    descriptor["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": "latest" });
    let index = json!({ "schemaVersion": 2, "manifests": [descriptor] });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    layout.to_path_buf()
}

fn oci(layout: &Path) -> SysrootSource {
    SysrootSource::Oci { layout: layout.to_path_buf(), tag: Some("latest".into()) }
}

#[test]
fn layers_apply_in_order_with_whiteouts_and_links_resolve_inside_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = layer(&[
        Entry::Dir("./", 0o755),
        Entry::Dir("./a/", 0o755),
        Entry::File("./a/keep", b"kept"),
        Entry::File("./a/gone", b"whited out"),
        Entry::Dir("./o/", 0o755),
        Entry::File("./o/old", b"below an opaque directory"),
        Entry::Dir("./usr/lib/", 0o755),
        Entry::Symlink("./lib", "usr/lib"),
        Entry::Symlink("./evil", "/"),
        Entry::Symlink("./up", "../../.."),
        Entry::Dir("./ro/", 0o555),
        Entry::File("./ro/f", b"in a read-only directory"),
    ]);
    let upper = layer(&[
        Entry::File("o/new", b"this layer's"),
        Entry::File("o/.wh..wh..opq", b""),
        Entry::File("a/.wh.gone", b""),
        Entry::File("lib/through-link", b"lands in usr/lib"),
        Entry::File("evil/pwned", b"lands at the cache's root"),
        Entry::File("up/pwned2", b"lands at the cache's root"),
        Entry::HardLink("a/hard", "a/keep"),
    ]);
    let layout = layout_with(&tmp.path().join("image"), &[gzip(&lower), upper]);
    let cache = tmp.path().join("cache");
    let root = prepare(&oci(&layout), &cache).unwrap().dir;
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    assert_eq!(read("a/keep").as_deref(), Some("kept"));
    assert_eq!(read("a/gone"), None);
    assert_eq!(read("o/old"), None);
    assert_eq!(read("o/new").as_deref(), Some("this layer's"));
    assert_eq!(read("usr/lib/through-link").as_deref(), Some("lands in usr/lib"));
    assert!(read("pwned").is_some() && read("pwned2").is_some());
    assert!(!Path::new("/pwned").exists() && !Path::new("/pwned2").exists());
    assert!(!tmp.path().join("pwned2").exists());
    assert_eq!(std::fs::metadata(root.join("a/hard")).unwrap().nlink(), 2);
    assert_eq!(std::fs::metadata(root.join("ro")).unwrap().permissions().mode() & 0o7777, 0o555);
    assert_eq!(std::fs::read_link(root.join("evil")).unwrap(), Path::new("/"));
    let cached: Vec<_> =
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(cached.len(), 1, "only the finished folder stays: {cached:?}");
}

#[test]
fn entries_leading_outside_the_image_are_refused_and_nothing_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let host_link = outside.to_str().unwrap().to_string();
    let cases = [
        layer(&[Entry::File("../escape", b"x")]),
        layer(&[Entry::Dir("a/", 0o755), Entry::File("a/../../escape", b"x")]),
        layer(&[Entry::Symlink("host", &host_link), Entry::File("host/x", b"x")]),
        layer(&[Entry::File("a", b"x"), Entry::HardLink("b", "../a")]),
    ];
    for (i, case) in cases.iter().enumerate() {
        let layout = layout_with(&tmp.path().join(format!("image{i}")), std::slice::from_ref(case));
        let cache = tmp.path().join(format!("cache{i}"));
        let err = prepare(&oci(&layout), &cache).unwrap_err();
        assert!(format!("{err:#}").contains("`"), "case {i}: {err:#}");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0, "case {i} kept a folder");
    }
    assert!(!tmp.path().join("escape").exists());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn a_root_filesystem_archive_is_a_sysroot_too() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    copy_sysroot(&sysroot);
    let archive = tmp.path().join("sysroot.tar.gz");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(&archive).unwrap(),
        flate2::Compression::fast(),
    ));
    builder.follow_symlinks(false);
    builder.append_dir_all(".", &sysroot).unwrap();
    builder.into_inner().unwrap().finish().unwrap();

    let source: SysrootSource = format!("tar:{}", archive.display()).parse().unwrap();
    let prepared = prepare(&source, &tmp.path().join("cache")).unwrap();
    let spec = tmp.path().join("s.toml");
    std::fs::write(&spec, "name = \"s\"\ncommands = [\"bash\"]\n").unwrap();
    let mut options = Options::new(&spec, tmp.path().join("out"));
    options.sysroot = prepared.dir.clone();
    options.image = prepared.image.clone();
    let built = build(&options).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
    let digest = rootfs::fsutil::sha256_file(&archive).unwrap();
    assert_eq!(prepared.image, Some(format!("sha256:{digest}")));
    let libc = built.manifest.entry(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
    let host_libc = std::fs::canonicalize("/usr/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    assert_eq!(libc.sha256, Some(rootfs::vocab::Sha256::of_file(&host_libc).unwrap()));
}

/// A file that is no archive, plain or compressed, is said to be so in one
/// line that names it, without quoting its bytes (the tar reader's own
/// message quoted `/etc/passwd`'s accounts); nothing is left in the cache.
#[test]
fn a_file_that_is_no_archive_says_so_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let passwd = tmp.path().join("passwd");
    std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/bash\n".repeat(40)).unwrap();
    let gzipped = tmp.path().join("passwd.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gzipped).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(&std::fs::read(&passwd).unwrap()).unwrap();
    encoder.finish().unwrap();
    let cache = tmp.path().join("cache");
    for file in [&passwd, &gzipped] {
        let source: SysrootSource = format!("tar:{}", file.display()).parse().unwrap();
        let message = format!("{:#}", prepare(&source, &cache).unwrap_err());
        assert_eq!(
            message,
            format!(
                "unpacking `tar:{}`: not a tar archive (plain, gzip or zstd): its first 512 bytes are no tar header",
                file.display()
            )
        );
    }
    let left = std::fs::read_dir(&cache).map_or(0, |d| d.filter(|e| e.is_ok()).count());
    assert_eq!(left, 0, "the cache keeps a failed unpacking");
}
