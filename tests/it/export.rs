//! Exports checked by the tools that consume them: skopeo and umoci read the OCI image, podman runs it and loads the docker archive, runc runs the bundle, tar and cpio unpack the archives, a Debian kernel boots the initramfs in qemu; and every export is reproducible.
//!
//! One tree (`tests/data/export/app.toml`) is built once, under cargo's
//! test scratch folder, and shared: each test exports it into a folder of
//! its own. `cargo xtask test` installs the tools; a missing one fails the
//! test that needs it, with what to install.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rootfs::build::{Built, Options, build};
use rootfs::export::{self, Compression, Exported, Format};
use sha2::Digest;

use crate::support::{project_root, xtask_binary};

/// What the image's `cmd` prints, run as the spec says.
const EXPECTED: &str = "user=1000:1000 greeting=hello cwd=/home/app";

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Says why a test that needs root does not run, in one line.
pub(crate) fn needs_root() -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: needs root");
    true
}

/// A tool the tests drive, which `cargo xtask test` installs.
pub(crate) fn tool(name: &str) -> &str {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(name).is_file()));
    assert!(found, "`{name}` is missing: run the tests with `cargo xtask test`, which installs it");
    name
}

/// Runs a command; its standard output, or a panic with everything it said.
pub(crate) fn run(argv: &[&str], env: &[(&str, &Path)]) -> String {
    let mut expression =
        duct::cmd(argv[0], &argv[1..]).stdout_capture().stderr_capture().unchecked();
    for (key, value) in env {
        expression = expression.env(key, value);
    }
    let out = expression.run().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{argv:?} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn spec(name: &str) -> PathBuf {
    project_root().join("tests/data/export").join(name)
}

/// Builds `spec` into `out` (a no-op when it is up to date).
fn build_into(spec: &Path, out: &Path, epoch: i64) -> Built {
    let mut options = Options::new(spec, out.parent().unwrap());
    options.out = Some(out.to_path_buf());
    options.epoch = epoch;
    build(&options).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)))
}

/// The shared tree of `app.toml`, built once per test run.
fn app() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export/export-app");
        build_into(&spec("app.toml"), &out, 0)
    })
}

fn export_to(
    built: &Built,
    format: Format,
    compression: Option<Compression>,
    output: &Path,
) -> Exported {
    let options = export::Options {
        format,
        output: Some(output.to_path_buf()),
        compression,
        epoch: 0,
        force: false,
        sysroot: PathBuf::from("/"),
    };
    export::export(built, &options).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)))
}

/// Every path under `root` but the root: type, mode, owner (as root, who
/// can set owners), link target or content digest.
fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<PathBuf> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for path in names {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_dir() {
                "dir".to_string()
            } else if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_file() {
                format!("file {:x}", sha2::Sha256::digest(std::fs::read(&path).unwrap()))
            } else {
                format!("device {:x}", meta.rdev())
            };
            let owner = if super_user() {
                format!(" {}:{}", meta.uid(), meta.gid())
            } else {
                String::new()
            };
            let mode = if meta.file_type().is_symlink() { 0o777 } else { meta.mode() & 0o7777 };
            out.push(format!(
                "{} {mode:04o}{owner} {what}",
                path.strip_prefix(root).unwrap().display()
            ));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    fn super_user() -> bool {
        rustix::process::geteuid().is_root()
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// The tree's listing with the owners an export gives it: the user's home
/// belongs to the user.
fn expected_listing(built: &Built) -> Vec<String> {
    listing(&built.out)
        .into_iter()
        .map(|line| {
            if is_root() && line.starts_with("home/app") {
                line.replacen(" 0:0 ", " 1000:1000 ", 1)
            } else {
                line
            }
        })
        .collect()
}

#[test]
fn skopeo_reads_the_oci_image_and_umoci_unpacks_it_to_the_tree() {
    let built = app();
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("app.oci");
    let exported = export_to(built, Format::Oci, None, &oci);
    assert_eq!(exported.layers, Some(3));
    let image = format!("oci:{}:v1", oci.display());
    let inspect: serde_json::Value =
        serde_json::from_str(&run(&[tool("skopeo"), "inspect", &image], &[])).unwrap();
    assert_eq!(inspect["Architecture"], "amd64", "{inspect}");
    assert_eq!(inspect["Os"], "linux", "{inspect}");
    assert_eq!(inspect["Digest"], exported.digest.clone().unwrap().as_str());
    let config: serde_json::Value =
        serde_json::from_str(&run(&["skopeo", "inspect", "--config", &image], &[])).unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/home/app");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "GREETING=hello",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ])
    );
    assert_eq!(c["ExposedPorts"], serde_json::json!({"53/udp": {}, "8080/tcp": {}}));
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    // Labels and annotations are written in sorted key order.
    let raw = std::fs::read_to_string(blob(&oci, &manifest(&oci)["config"])).unwrap();
    assert!(
        raw.find("\"a.first\"").unwrap() < raw.find("\"org.opencontainers.image.title\"").unwrap(),
        "{raw}"
    );

    let bundle = tmp.path().join("unpacked");
    let image = format!("{}:v1", oci.display());
    let mut argv = vec![tool("umoci"), "unpack", "--image", &image];
    if !is_root() {
        argv.push("--rootless");
    }
    argv.push(bundle.to_str().unwrap());
    run(&argv, &[]);
    assert_eq!(listing(&bundle.join("rootfs")), expected_listing(built));
}

/// The image manifest of a layout.
fn manifest(oci: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    serde_json::from_slice(&std::fs::read(blob(oci, &index["manifests"][0])).unwrap()).unwrap()
}

fn blob(oci: &Path, descriptor: &serde_json::Value) -> PathBuf {
    let digest = descriptor["digest"].as_str().unwrap();
    oci.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

/// `containers.conf` for these machines: the host's hard limits are below
/// podman's default ulimits, and crun refuses its hybrid cgroups.
pub(crate) fn containers_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("containers.conf");
    let text = "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n";
    std::fs::write(&conf, text).unwrap();
    conf
}

#[test]
fn podman_runs_the_image_and_loads_the_docker_archive() {
    if needs_root() {
        return;
    }
    let built = app();
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("app.oci");
    export_to(built, Format::Oci, None, &oci);
    let archive = tmp.path().join("app.docker.tar");
    export_to(built, Format::DockerArchive, None, &archive);
    let conf = containers_conf(tmp.path());
    let (root, runroot) = (tmp.path().join("storage"), tmp.path().join("run"));
    let storage = format!(
        "containers-storage:[vfs@{}+{}]localhost/export-app:copied",
        root.display(),
        runroot.display()
    );
    let env = [("CONTAINERS_CONF", conf.as_path())];
    run(&[tool("skopeo"), "copy", "-q", &format!("oci:{}:v1", oci.display()), &storage], &env);
    let podman = |args: &[&str]| {
        let mut argv = vec![
            tool("podman"),
            "--root",
            root.to_str().unwrap(),
            "--runroot",
            runroot.to_str().unwrap(),
            "--storage-driver",
            "vfs",
        ];
        argv.extend_from_slice(args);
        run(&argv, &env)
    };
    let printed = podman(&["run", "--rm", "--network", "none", "localhost/export-app:copied"]);
    assert_eq!(printed.trim(), EXPECTED);
    let loaded = podman(&["load", "-q", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("export-app:v1"), "{loaded}");
    let printed = podman(&["run", "--rm", "--network", "none", "localhost/export-app:v1"]);
    assert_eq!(printed.trim(), EXPECTED);
    podman(&["rmi", "-a", "-f"]);
}

#[test]
fn runc_runs_the_bundle_as_the_image_says() {
    if needs_root() {
        return;
    }
    let built = app();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("app.bundle");
    export_to(built, Format::Bundle, None, &bundle);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["terminal"], false);
    assert_eq!(config["hostname"], "export-app");
    assert_eq!(listing(&bundle.join("rootfs")), expected_listing(built));
    let state = tmp.path().join("runc-state");
    let id = format!("rootfs-export-test-{}", std::process::id());
    let printed = run(
        &[
            tool("runc"),
            "--root",
            state.to_str().unwrap(),
            "run",
            "--bundle",
            bundle.to_str().unwrap(),
            &id,
        ],
        &[],
    );
    assert_eq!(printed.trim(), EXPECTED);
}

#[test]
fn tar_exports_extract_to_the_tree_with_each_compression() {
    let built = app();
    let tmp = tempfile::tempdir().unwrap();
    for (compression, decompress) in [
        (None, None),
        (Some(Compression::Gzip), Some("pigz")),
        (Some(Compression::Zstd), Some("zstd")),
    ] {
        let name = format!("app.tar{}", compression.map_or("", |c| c.extension()));
        let archive = tmp.path().join(&name);
        export_to(built, Format::Tar, compression, &archive);
        let plain = match decompress {
            None => archive.clone(),
            Some(tool_name) => {
                let plain = tmp.path().join(format!("{name}.plain"));
                let out = run(
                    &[
                        "sh",
                        "-c",
                        &format!("{} -dc \"$0\" > \"$1\"", tool(tool_name)),
                        archive.to_str().unwrap(),
                        plain.to_str().unwrap(),
                    ],
                    &[],
                );
                assert!(out.is_empty());
                plain
            }
        };
        let dest = tmp.path().join(format!("{name}.x"));
        std::fs::create_dir(&dest).unwrap();
        run(
            &[
                tool("tar"),
                "-x",
                "--numeric-owner",
                "-f",
                plain.to_str().unwrap(),
                "-C",
                dest.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(listing(&dest), expected_listing(built), "{name}");
    }
}

#[test]
fn the_initramfs_holds_the_tree_and_a_console_and_boots_a_debian_kernel() {
    let built = app();
    let tmp = tempfile::tempdir().unwrap();
    let initramfs = tmp.path().join("app.cpio.gz");
    export_to(built, Format::Cpio, None, &initramfs);
    let listed = run(
        &[
            "sh",
            "-c",
            &format!("{} -dc \"$0\" | {} -itv --numeric-uid-gid", tool("pigz"), tool("cpio")),
            initramfs.to_str().unwrap(),
        ],
        &[],
    );
    let console: Vec<&str> = listed.lines().filter(|l| l.ends_with(" dev/console")).collect();
    assert_eq!(console.len(), 1, "{listed}");
    assert!(
        console[0].starts_with("crw-------") && console[0].contains(" 5,   1 "),
        "{}",
        console[0]
    );
    if is_root() {
        let dest = tmp.path().join("x");
        std::fs::create_dir(&dest).unwrap();
        run(
            &[
                "sh",
                "-c",
                "pigz -dc \"$0\" | (cd \"$1\" && cpio -idm --quiet --no-absolute-filenames)",
                initramfs.to_str().unwrap(),
                dest.to_str().unwrap(),
            ],
            &[],
        );
        let mut expected = expected_listing(built);
        expected.push(format!("dev/console 0600 0:0 device {:x}", rustix::fs::makedev(5, 1)));
        expected.sort_by(|a, b| {
            Path::new(a.split(' ').next().unwrap()).cmp(Path::new(b.split(' ').next().unwrap()))
        });
        assert_eq!(listing(&dest), expected);
    }
    let kernel = debian_kernel();
    let qemu = duct::cmd!(
        tool("qemu-system-x86_64"),
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        "512",
        "-nographic",
        "-no-reboot",
        "-kernel",
        &kernel,
        "-initrd",
        &initramfs,
        "-append",
        "rdinit=/init console=ttyS0 panic=-1"
    )
    .stdin_null()
    .stderr_to_stdout()
    .stdout_capture()
    .unchecked()
    .start()
    .unwrap();
    let output = match qemu.wait_timeout(Duration::from_secs(240)).unwrap() {
        Some(output) => output.clone(),
        None => {
            qemu.kill().unwrap();
            panic!("qemu did not power off within 240 s");
        }
    };
    let console = String::from_utf8_lossy(&output.stdout);
    assert!(
        console.contains("init: hello from pid 1 as uid 0"),
        "the kernel's console:\n{console}"
    );
}

/// The newest kernel of `linux-image-amd64`.
fn debian_kernel() -> PathBuf {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .collect();
    kernels.sort();
    kernels.pop().expect("no /boot/vmlinuz-*: run the tests with `cargo xtask test`, which installs linux-image-amd64")
}

#[test]
fn an_initramfs_needs_an_init() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("no-init.toml");
    std::fs::write(&spec, "name = \"no-init\"\ncommands = [\"cat\"]\n").unwrap();
    let out = tmp.path().join("out/no-init");
    let result = std::process::Command::new(xtask_binary())
        .args([
            "rootfs",
            "export",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "cpio",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("an initramfs needs `/init`, and this spec has none"), "{stderr}");
    assert!(!out.with_file_name("no-init.cpio.gz").exists());
}

/// Every file under an export (or the export itself), with its bytes.
fn contents(path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if path.is_file() {
        out.insert(PathBuf::new(), std::fs::read(path).unwrap());
        return out;
    }
    for line in listing(path) {
        let rel = PathBuf::from(line.split(' ').next().unwrap());
        if path.join(&rel).is_file() {
            out.insert(rel.clone(), std::fs::read(path.join(&rel)).unwrap());
        }
    }
    out
}

#[test]
fn two_exports_are_byte_identical_and_another_epoch_changes_only_timestamps() {
    let built = app();
    let tmp = tempfile::tempdir().unwrap();
    let formats = [
        (Format::Oci, "oci"),
        (Format::DockerArchive, "docker.tar"),
        (Format::Tar, "tar"),
        (Format::Cpio, "cpio.gz"),
    ];
    for (format, name) in formats {
        let a = tmp.path().join(format!("a/app.{name}"));
        let b = tmp.path().join(format!("b/app.{name}"));
        export_to(built, format, None, &a);
        export_to(built, format, None, &b);
        assert!(contents(&a) == contents(&b), "two {name} exports differ");
    }
    // The same spec built and exported at another time.
    let later = build_into(&spec("app.toml"), &tmp.path().join("later/export-app"), 1_700_000_000);
    let options = |epoch, output: PathBuf| export::Options {
        format: Format::Tar,
        output: Some(output),
        compression: None,
        epoch,
        force: false,
        sysroot: PathBuf::from("/"),
    };
    let (first, second) = (tmp.path().join("t0.tar"), tmp.path().join("t1.tar"));
    export::export(built, &options(0, first.clone())).unwrap();
    export::export(&later, &options(1_700_000_000, second.clone())).unwrap();
    same_but_mtimes(&std::fs::read(&first).unwrap(), &std::fs::read(&second).unwrap());
    // The image too: its configuration differs only in `created` (and in
    // the layers' digests), its layers only in their mtimes.
    let (first, second) = (tmp.path().join("e0.oci"), tmp.path().join("e1.oci"));
    export::export(built, &export::Options { format: Format::Oci, ..options(0, first.clone()) })
        .unwrap();
    let later_options =
        export::Options { format: Format::Oci, ..options(1_700_000_000, second.clone()) };
    export::export(&later, &later_options).unwrap();
    let (m0, m1) = (manifest(&first), manifest(&second));
    let config = |oci: &Path, m: &serde_json::Value, created: &str| {
        let text = std::fs::read_to_string(blob(oci, &m["config"])).unwrap();
        let mut config: serde_json::Value =
            serde_json::from_str(&text.replace(created, "CREATED")).unwrap();
        config["rootfs"]["diff_ids"] = serde_json::Value::Null;
        config
    };
    assert_eq!(
        config(&first, &m0, "1970-01-01T00:00:00Z"),
        config(&second, &m1, "2023-11-14T22:13:20Z")
    );
    let gunzip = |path: PathBuf| {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
            &mut out,
        )
        .unwrap();
        out
    };
    let layers = |m: &serde_json::Value| m["layers"].as_array().unwrap().clone();
    for (l0, l1) in layers(&m0).iter().zip(&layers(&m1)) {
        same_but_mtimes(&gunzip(blob(&first, l0)), &gunzip(blob(&second, l1)));
    }
}

/// Two archives of the same entries, the first at epoch 0, the second at
/// 1700000000: equal but for the mtimes and the checksums.
fn same_but_mtimes(first: &[u8], second: &[u8]) {
    let (first, second) = (tar_members(first), tar_members(second));
    assert_eq!(first.len(), second.len());
    for ((name, header, content), (name2, header2, content2)) in first.iter().zip(&second) {
        assert_eq!(name, name2);
        assert_eq!(content, content2, "{name}");
        assert_eq!(&header[136..148], b"00000000000\0", "{name}");
        assert_eq!(&header2[136..148], format!("{:011o}\0", 1_700_000_000).as_bytes(), "{name}");
        assert_eq!((&header[..136], &header[156..]), (&header2[..136], &header2[156..]), "{name}");
    }
}

/// The members of a ustar archive: name, header block, content.
fn tar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut members = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at..at + 512].iter().any(|&b| b != 0) {
        let header = bytes[at..at + 512].to_vec();
        let field = |range: std::ops::Range<usize>| {
            String::from_utf8_lossy(&header[range]).trim_end_matches('\0').to_string()
        };
        let size = u64::from_str_radix(&field(124..135), 8).unwrap() as usize;
        let name = format!("{}{}", field(345..500), field(0..100));
        let content = bytes[at + 512..at + 512 + size].to_vec();
        members.push((name, header, content));
        at += 512 + size.div_ceil(512) * 512;
    }
    members
}

#[test]
fn specs_sharing_libc_share_their_first_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let other = build_into(&spec("other.toml"), &tmp.path().join("trees/export-other"), 0);
    let (a, b) = (tmp.path().join("app.oci"), tmp.path().join("other.oci"));
    export_to(app(), Format::Oci, None, &a);
    export_to(&other, Format::Oci, None, &b);
    let digests = |oci: &Path| -> Vec<String> {
        manifest(oci)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let (da, db) = (digests(&a), digests(&b));
    assert_eq!((da.len(), db.len()), (3, 3));
    assert_eq!(da[0], db[0], "the loader's layer");
    assert_eq!(da[1], db[1], "libc's layer");
    assert_ne!(da[2], db[2]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&a, &manifest(&a)["config"])).unwrap()).unwrap();
    let history = config["history"].to_string();
    assert!(history.contains("ld-linux-x86-64.so.2") && history.contains("libc.so.6"), "{history}");
}

#[test]
fn an_unchanged_export_writes_nothing_and_a_changed_one_reuses_its_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let spec_path = tmp.path().join("app.toml");
    let text = std::fs::read_to_string(spec("app.toml")).unwrap();
    std::fs::write(&spec_path, &text).unwrap();
    let out = tmp.path().join("trees/export-app");
    let oci = tmp.path().join("app.oci");
    let first = export_to(&build_into(&spec_path, &out, 0), Format::Oci, None, &oci);
    assert!(!first.up_to_date);
    let inodes = |oci: &Path| -> BTreeMap<String, u64> {
        std::fs::read_dir(oci.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().ino()))
            .collect()
    };
    let before = inodes(&oci);
    let again = export_to(&build_into(&spec_path, &out, 0), Format::Oci, None, &oci);
    assert!(again.up_to_date, "{}", again.summary());
    assert_eq!(again.digest, first.digest);
    assert_eq!(inodes(&oci), before);
    // Another command: a new configuration, the same layers, linked.
    std::fs::write(&spec_path, text.replace("greeting=$GREETING", "greeting=[$GREETING]")).unwrap();
    let changed = export_to(&build_into(&spec_path, &out, 0), Format::Oci, None, &oci);
    assert!(!changed.up_to_date);
    assert_ne!(changed.digest, first.digest);
    let after = inodes(&oci);
    let layers: Vec<String> = manifest(&oci)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap()[7..].to_string())
        .collect();
    for layer in &layers {
        assert_eq!(after[layer], before[layer], "layer {layer} was written again");
    }
    assert_eq!(after.len(), before.len(), "the old configuration and manifest are gone");
}

#[test]
fn an_export_refuses_paths_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = d.join("spec.toml");
    std::fs::write(&spec, "name = \"t\"\ncommands = [\"cat\"]\n").unwrap();
    let out = d.join("trees/t");
    let mine = d.join("mine.tar");
    std::fs::write(&mine, "my own tar\n").unwrap();
    let folder = d.join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes"), "keep\n").unwrap();
    let export = |format: &str, output: &Path| {
        let result = std::process::Command::new(xtask_binary())
            .args([
                "rootfs",
                "export",
                spec.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--format",
                format,
                "--output",
                output.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (result.status.code(), String::from_utf8_lossy(&result.stderr).into_owned())
    };
    for (format, output, why) in [
        ("tar", mine.as_path(), "a file this tool did not write"),
        ("oci", folder.as_path(), "did not write"),
        ("tar", &out.join("etc/x.tar"), "the tree being exported"),
        ("oci", &out, "the tree being exported"),
    ] {
        let (code, stderr) = export(format, output);
        assert_eq!(code, Some(2), "{output:?}: {stderr}");
        assert!(
            stderr.contains("refusing to replace") && stderr.contains(why),
            "{output:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my own tar\n");
    assert_eq!(std::fs::read_to_string(folder.join("notes")).unwrap(), "keep\n");
    assert!(!out.join("etc/x.tar").exists());
    // Its own output, it replaces.
    let ours = d.join("ours.tar");
    assert_eq!(export("tar", &ours).0, Some(0));
    assert_eq!(export("tar", &ours).0, Some(0));
}

#[test]
fn an_image_user_that_is_not_in_the_spec_is_a_spec_error() {
    let tmp = tempfile::tempdir().unwrap();
    let spec_path = tmp.path().join("spec.toml");
    std::fs::write(
        &spec_path,
        "name = \"t\"\ncommands = [\"cat\"]\n\n[image]\nuser = \"nobody\"\n",
    )
    .unwrap();
    // Found when the spec is read: before any build, not at the export.
    let out = tmp.path().join("trees/t");
    let mut options = Options::new(&spec_path, out.parent().unwrap());
    options.out = Some(out.clone());
    let err = build(&options).unwrap_err();
    assert_eq!(rootfs::exit_code(&err), 2);
    let report = rootfs::render_error(&err);
    assert!(report.contains("[image] user `nobody` is not a user of this spec"), "{report}");
    assert!(report.contains("spec.toml:5:8"), "{report}");
    assert!(!out.exists() && !tmp.path().join("spec.lock").exists());
}

#[test]
fn an_image_whose_spec_names_no_command_runs_the_first_one_and_says_so() {
    if needs_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("nocmd.toml");
    std::fs::write(&spec, "name = \"nocmd\"\ncommands = [\"echo\", \"cat\"]\n").unwrap();
    let built = build_into(&spec, &tmp.path().join("out/nocmd"), 0);
    let oci = tmp.path().join("nocmd.oci");
    let exported = export_to(&built, Format::Oci, None, &oci);
    let summary = exported.summary();
    assert!(
        summary
            .contains("cmd `/usr/bin/echo`, the spec's first command: set [image] cmd to choose"),
        "{summary}"
    );
    let manifest = manifest(&oci);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&oci, &manifest["config"])).unwrap()).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/usr/bin/echo"]));
    // podman runs it with no command given.
    let conf = containers_conf(tmp.path());
    let (root, runroot) = (tmp.path().join("storage"), tmp.path().join("run"));
    let env = [("CONTAINERS_CONF", conf.as_path())];
    let storage = format!(
        "containers-storage:[vfs@{}+{}]localhost/nocmd:latest",
        root.display(),
        runroot.display()
    );
    run(&[tool("skopeo"), "copy", "-q", &format!("oci:{}:latest", oci.display()), &storage], &env);
    let podman = |args: &[&str]| {
        let mut argv = vec![tool("podman"), "--root", root.to_str().unwrap()];
        argv.extend_from_slice(&[
            "--runroot",
            runroot.to_str().unwrap(),
            "--storage-driver",
            "vfs",
        ]);
        argv.extend_from_slice(args);
        run(&argv, &env)
    };
    let printed = podman(&["run", "--rm", "--network", "none", "localhost/nocmd:latest"]);
    assert_eq!(printed, "\n");
    podman(&["rmi", "-a", "-f"]);
}
