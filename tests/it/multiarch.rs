//! A spec of two architectures (`tests/data/multiarch/two.toml`: amd64 and arm64 from bookworm's packages) through the command line: one tree each from one lock, `--locked`, smoke on both (arm64 under qemu-user), one OCI image index that skopeo, umoci and podman read and run per platform, a docker archive per architecture, and the index pushed to Debian's `docker-registry` on loopback and pulled back by platform.
//!
//! The trees are built once, under cargo's test scratch folder, and shared;
//! each test exports into a folder of its own. The tools are the ones
//! `cargo xtask test` installs: a missing one fails the test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rootfs::resolve::arch::Arch;

use crate::export::{containers_conf, needs_root, run, tool};
use crate::support::{foreign, project_root, rootfs_cli, rootfs_cli_split};

const ARCHES: [&str; 2] = ["amd64", "arm64"];

/// What the image's command prints on each platform (`uname -m`), before
/// bash's version.
fn expected_machine(arch: &str) -> &'static str {
    match arch {
        "amd64" => "machine=x86_64 shell=5.2",
        "arm64" => "machine=aarch64 shell=5.2",
        _ => unreachable!(),
    }
}

/// The spec copied into a scratch folder (its lock is written beside it),
/// and the output folder holding `amd64/` and `arm64/`.
struct Built {
    spec: PathBuf,
    out: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("multiarch");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = dir.join("two.toml");
        std::fs::copy(project_root().join("tests/data/multiarch/two.toml"), &spec).unwrap();
        let out = dir.join("out");
        let (status, text) = rootfs_cli("build", &spec, &out, &[]);
        assert_eq!(status, 0, "{text}");
        Built { spec, out }
    })
}

fn emulator_present() {
    let arm64 = Arch::by_debian_name("arm64").unwrap();
    if let Err(missing) = foreign::runner(arm64) {
        panic!("{missing}: `cargo xtask test` installs it");
    }
}

#[test]
fn two_architectures_build_from_one_lock_and_locked_refuses_a_missing_one() {
    let built = built();
    for arch in ARCHES {
        let bash = built.out.join(arch).join("usr/bin/bash");
        let Ok(rootfs::resolve::elf::FileKind::Elf(object)) = rootfs::resolve::elf::read(&bash)
        else {
            panic!("no ELF bash in the {arch} tree")
        };
        let expected = Arch::by_debian_name(arch).unwrap().ident();
        assert_eq!(object.ident, Some(expected), "the {arch} tree's bash is {arch}'s");
        let side = built.out.join(".rootfs");
        for suffix in ["manifest.json", "spdx.json", "stamp.json"] {
            assert!(side.join(format!("{arch}.{suffix}")).is_file(), "{arch}.{suffix}");
        }
    }
    let lock_path = built.spec.with_extension("lock");
    let text = std::fs::read_to_string(&lock_path).unwrap();
    let lock = rootfs::build::lock::Lock::parse(text.as_bytes()).unwrap();
    assert_eq!(lock.debian, None, "a multi-architecture lock has no single [debian]");
    assert_eq!(lock.architectures.keys().collect::<Vec<_>>(), ARCHES);
    for (arch, set) in &lock.architectures {
        assert_eq!(&set.architecture, arch);
        assert_eq!(set.packages["bash"].architecture, *arch, "bash is {arch}'s");
        assert!(set.packages["bash"].filename.ends_with(&format!("_{arch}.deb")));
    }
    // Nothing changed: `--locked` passes and finds both trees up to date.
    let (status, text) = rootfs_cli("build", &built.spec, &built.out, &["--locked"]);
    assert_eq!(status, 0, "{text}");
    assert_eq!(text.matches("is up to date").count(), 2, "{text}");
    // A lock without arm64's package set: `--locked` refuses, writing nothing.
    let scratch = built.spec.parent().unwrap().join("locked-check");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let spec = scratch.join("two.toml");
    std::fs::copy(&built.spec, &spec).unwrap();
    let mut partial = lock.clone();
    partial.architectures.remove("arm64");
    let partial_text = partial.render().unwrap();
    std::fs::write(spec.with_extension("lock"), &partial_text).unwrap();
    let (status, text) = rootfs_cli("build", &spec, &scratch.join("out"), &["--locked"]);
    assert_eq!(status, 1, "{text}");
    assert!(text.contains("arm64"), "the refusal names the architecture: {text}");
    assert_eq!(std::fs::read_to_string(spec.with_extension("lock")).unwrap(), partial_text);
    assert!(!scratch.join("out/arm64").exists(), "no arm64 tree written under --locked");
    // `update` resolves both architectures again: nothing changed since.
    let output = std::process::Command::new(crate::support::xtask_binary())
        .args(["rootfs", "update"])
        .arg(&built.spec)
        .arg("--locked")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("is up to date"), "{said}");
}

#[test]
fn both_trees_pass_their_smoke_the_arm64_one_under_emulation() {
    if let Some(reason) = rootfs::run::sandbox::cannot_enter_reason() {
        return eprintln!("skipped: {reason}");
    }
    emulator_present();
    let built = built();
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("report.xml");
    let args = ["--no-build", "--junit", junit.to_str().unwrap()];
    let (status, stdout, stderr) = rootfs_cli_split("smoke", &built.spec, &built.out, &args);
    assert_eq!(status, 0, "{stdout}{stderr}");
    for arch in ARCHES {
        let xml = std::fs::read_to_string(tmp.path().join(format!("report-{arch}.xml"))).unwrap();
        assert!(xml.contains(&format!("rootfs.multiarch-two.{arch}")), "{xml}");
    }
    for arch in ARCHES {
        let heading = format!("{arch} ({}):", built.out.join(arch).display());
        let at = stdout.find(&heading).unwrap_or_else(|| panic!("no {arch} table:\n{stdout}"));
        assert!(stdout[at..].contains("5 passed, 0 failed"), "{stdout}");
    }
    assert!(stderr.contains("built for arm64"), "the arm64 note names the emulator: {stderr}");
    // `run` opens the tree of this machine's architecture.
    let host = Arch::host().unwrap().debian;
    let (status, stdout, stderr) =
        rootfs_cli_split("run", &built.spec, &built.out, &["--", "/bin/sh", "-c", "uname -m"]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    let machine = expected_machine(host).split(' ').next().unwrap().trim_start_matches("machine=");
    assert_eq!(stdout.trim(), machine, "run opened the {host} tree");
}

/// `export --format FORMAT` of the shared trees, with `extra` flags.
fn export(format: &str, extra: &[&str]) -> String {
    let built = built();
    let mut args = vec!["--format", format];
    args.extend_from_slice(extra);
    let (status, text) = rootfs_cli("export", &built.spec, &built.out, &args);
    assert_eq!(status, 0, "{text}");
    text
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(oci: &Path, descriptor: &serde_json::Value) -> PathBuf {
    let digest = descriptor["digest"].as_str().unwrap();
    oci.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

#[test]
fn the_oci_export_is_one_image_index_with_a_manifest_per_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first.oci"), tmp.path().join("second.oci"));
    export("oci", &["--output", first.to_str().unwrap()]);
    export("oci", &["--output", second.to_str().unwrap(), "--force"]);
    assert_eq!(contents(&first), contents(&second), "two exports are the same bytes");
    let raw =
        run(&[tool("skopeo"), "inspect", "--raw", &format!("oci:{}:v1", first.display())], &[]);
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json", "{raw}");
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!("{}/{}/{}", p["os"], p["architecture"], p["variant"]).replace('"', "")
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64/null", "linux/arm64/v8"], "{raw}");
    // Each manifest's config names its architecture, and the blobs stored
    // are exactly those referenced, each once (a name is its digest).
    let top = json(&first.join("index.json"));
    let mut referenced = std::collections::BTreeSet::new();
    let mut manifests: Vec<serde_json::Value> = top["manifests"].as_array().unwrap().clone();
    while let Some(descriptor) = manifests.pop() {
        referenced.insert(blob(&first, &descriptor));
        let document = json(&blob(&first, &descriptor));
        if let Some(listed) = document["manifests"].as_array() {
            manifests.extend(listed.iter().cloned());
            continue;
        }
        for layer in document["layers"].as_array().unwrap() {
            referenced.insert(blob(&first, layer));
        }
        referenced.insert(blob(&first, &document["config"]));
    }
    for (m, arch) in index["manifests"].as_array().unwrap().iter().zip(ARCHES) {
        let manifest = json(&blob(&first, m));
        assert_eq!(json(&blob(&first, &manifest["config"]))["architecture"], arch);
    }
    let stored: std::collections::BTreeSet<PathBuf> =
        std::fs::read_dir(first.join("blobs/sha256")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(stored, referenced, "every blob referenced is stored, and nothing else");
    // Two SBOM artifacts beside the index, which share their empty config.
    assert_eq!(top["manifests"].as_array().unwrap().len(), 3, "{top}");
}

/// Every file of a folder, by its path inside it, with its bytes.
fn contents(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                all.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    all
}

#[test]
fn umoci_unpacks_each_platform_and_podman_runs_the_right_one() {
    if needs_root() {
        return;
    }
    emulator_present();
    let tmp = tempfile::tempdir().unwrap();
    // podman names an image it runs from a layout after the layout's path,
    // which must be lowercase: not under the random temporary name.
    let oci = built().spec.parent().unwrap().join("podman/two.oci");
    export("oci", &["--output", oci.to_str().unwrap()]);
    for arch in ARCHES {
        // skopeo picks the platform's manifest out of the index into a
        // layout of its own, which umoci unpacks.
        let one = tmp.path().join(format!("{arch}.oci"));
        let source = format!("oci:{}:v1", oci.display());
        let dest = format!("oci:{}:{arch}", one.display());
        run(&[tool("skopeo"), "copy", "-q", "--override-arch", arch, &source, &dest], &[]);
        let bundle = tmp.path().join(format!("{arch}.bundle"));
        let image = format!("{}:{arch}", one.display());
        run(&[tool("umoci"), "unpack", "--image", &image, bundle.to_str().unwrap()], &[]);
        let bash = bundle.join("rootfs/usr/bin/bash");
        let Ok(rootfs::resolve::elf::FileKind::Elf(object)) = rootfs::resolve::elf::read(&bash)
        else {
            panic!()
        };
        assert_eq!(object.ident, Some(Arch::by_debian_name(arch).unwrap().ident()));
    }
    let _binfmt = foreign::host_binfmt(Arch::by_debian_name("arm64").unwrap());
    let podman = Podman::new(tmp.path());
    for arch in ARCHES {
        let platform = format!("linux/{arch}");
        let image = format!("oci:{}:v1", oci.display());
        let printed =
            podman.run(&["run", "--rm", "--network", "none", "--platform", &platform, &image]);
        assert!(printed.trim().starts_with(expected_machine(arch)), "{arch}: {printed}");
    }
    podman.run(&["rmi", "-a", "-f"]);
}

#[test]
fn a_docker_archive_is_written_per_architecture_beside_each_tree() {
    let built = built();
    let text = export("docker-archive", &[]);
    for arch in ARCHES {
        let archive = built.out.join(format!("{arch}.docker.tar"));
        assert!(text.contains(&archive.display().to_string()), "{text}");
        let listing = run(&["tar", "-tf", archive.to_str().unwrap()], &[]);
        assert!(listing.lines().any(|l| l == "manifest.json"), "{listing}");
    }
    let (status, text) = rootfs_cli(
        "export",
        &built.spec,
        &built.out,
        &["--format", "docker-archive", "--output", "/tmp/x.tar"],
    );
    assert_eq!(status, 2, "one --output for two archives is a usage error: {text}");
}

/// podman with its own storage and the test machines' containers.conf.
struct Podman {
    root: PathBuf,
    runroot: PathBuf,
    conf: PathBuf,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        Podman { root: dir.join("storage"), runroot: dir.join("run"), conf: containers_conf(dir) }
    }

    fn run(&self, args: &[&str]) -> String {
        let mut argv = vec![
            tool("podman"),
            "--root",
            self.root.to_str().unwrap(),
            "--runroot",
            self.runroot.to_str().unwrap(),
            "--storage-driver",
            "vfs",
        ];
        argv.extend_from_slice(args);
        run(&argv, &[("CONTAINERS_CONF", self.conf.as_path())])
    }
}

/// Debian's `docker-registry` serving a scratch folder on a free loopback
/// port; stopped (its process, by id) when dropped.
struct Registry {
    child: std::process::Child,
    addr: String,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        let storage = dir.join("registry");
        let text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = std::process::Command::new(tool("docker-registry"))
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry { child, addr };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&registry.addr).is_ok() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "docker-registry did not listen on {}: {:?}",
            registry.addr,
            std::fs::read_to_string(dir.join("registry.log"))
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_index_goes_through_a_loopback_registry_and_back_by_platform() {
    if needs_root() {
        return;
    }
    emulator_present();
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("two.oci");
    export("oci", &["--output", oci.to_str().unwrap()]);
    let registry = Registry::start(tmp.path());
    let reference = format!("{}/rootfs/multiarch-two:v1", registry.addr);
    let source = format!("oci:{}:v1", oci.display());
    let dest = format!("docker://{reference}");
    let skopeo = tool("skopeo");
    run(&[skopeo, "copy", "-q", "--all", "--dest-tls-verify=false", &source, &dest], &[]);
    let raw = run(&[skopeo, "inspect", "--raw", "--tls-verify=false", &dest], &[]);
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{raw}");
    let _binfmt = foreign::host_binfmt(Arch::by_debian_name("arm64").unwrap());
    let podman = Podman::new(tmp.path());
    for arch in ARCHES {
        let platform = format!("linux/{arch}");
        let pulled =
            podman.run(&["pull", "-q", "--tls-verify=false", "--platform", &platform, &reference]);
        let id = pulled.trim();
        let inspected = podman.run(&["image", "inspect", "--format", "{{.Architecture}}", id]);
        assert_eq!(inspected.trim(), arch);
        let printed = podman.run(&["run", "--rm", "--network", "none", id]);
        assert!(printed.trim().starts_with(expected_machine(arch)), "{arch}: {printed}");
    }
    podman.run(&["rmi", "-a", "-f"]);
}
