//! Host independence, live: a package-sysroot spec built on this host and again inside a bare tree (the `xtask` binary and its libraries, no apt, dpkg, gpg or packages) gives the same tree, manifest, SBOM, lock and OCI export, byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{can_enter, rootfs_cli, tree_listing, xtask_binary};

/// The spec built on both sides: bash, coreutils and Python, whose
/// interpreter brings a library closure (libm, libz, libexpat), verified
/// against a copy of the archive keyring shipped beside the spec.
const SPEC: &str = "name = \"pk\"\n\
    commands = [\"bash\", \"ls\", \"python3\"]\n\n\
    [sysroot.debian]\n\
    suite = \"bookworm\"\n\
    packages = [\"bash\", \"coreutils\", \"python3-minimal\"]\n\
    keyring = \"keys/debian-archive-keyring.gpg\"\n";

/// Paths a bare builder must not have: the package tools, the keyrings
/// and apt configuration of a Debian host, and the spec's own programs.
const ABSENT: &[&str] = &[
    "usr/bin/apt",
    "usr/bin/apt-get",
    "usr/bin/dpkg",
    "usr/bin/dpkg-deb",
    "usr/bin/gpg",
    "usr/bin/gpgv",
    "usr/bin/bash",
    "usr/bin/ls",
    "usr/bin/python3",
    "etc/apt",
    "var/lib/dpkg",
    "usr/share/keyrings",
];

/// A folder holding the spec and the keyring copy, as a checkout would.
fn project(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::copy(
        rootfs::build::debian::source::DEBIAN_ARCHIVE_KEYRING,
        dir.join("keys/debian-archive-keyring.gpg"),
    )
    .unwrap();
    let spec = dir.join("pk.toml");
    std::fs::write(&spec, SPEC).unwrap();
    spec
}

/// The bare builder: a tree this tool makes from the host with the `xtask`
/// binary as its one command, so the resolver gives it the loader and the
/// libraries it links (libc, libm, libgcc_s), and `/w` to bind work onto.
fn builder(dir: &Path, program: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let spec = dir.join("builder.toml");
    let text =
        format!("name = \"builder\"\ncommands = [\"{}\"]\ndirs = [\"/w\"]\n", program.display());
    std::fs::write(&spec, text).unwrap();
    let out = dir.join("tree");
    let (code, text) = rootfs_cli("build", &spec, &out, &[]);
    assert_eq!(code, 0, "{text}");
    let listing = tree_listing(&out).join("\n");
    for path in ABSENT {
        assert!(!out.join(path).exists(), "the builder has `{path}`:\n{listing}");
    }
    (spec, out, program.to_path_buf())
}

/// `xtask rootfs ARGS` inside the builder, run by this tool's own sandbox
/// as root of its user namespace, with `work` at `/w` (the working folder),
/// the host's network and resolver configuration, `env` and the target
/// folder (for `.sysroots/`) under `/w`. Returns the exit status and output.
fn inside(
    builder: &(PathBuf, PathBuf, PathBuf),
    work: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String) {
    let (spec, out, program) = builder;
    let mut command = Command::new(xtask_binary());
    command.args(["rootfs", "run"]).arg(spec).arg("--out").arg(out);
    command.arg("--bind").arg(format!("{}:/w", work.display()));
    command.args(["--bind", "/etc/resolv.conf:ro", "--network", "host", "--user", "root"]);
    command.args(["--workdir", "/w", "--env", "CARGO_TARGET_DIR=/w/target"]);
    for (key, value) in env {
        command.arg("--env").arg(format!("{key}={value}"));
    }
    command.arg("--").arg(program).arg("rootfs").args(args);
    let output = command.output().unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// What is compared, each as text whose lines a diff can show: the tree's
/// listing (every path with its type, mode, mtime, digest or target), the
/// manifest, SBOM and lock as written, and every file of the OCI export
/// with its digest.
fn outputs(dir: &Path) -> BTreeMap<&'static str, String> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    BTreeMap::from([
        ("tree", tree_listing(&dir.join("out")).join("\n")),
        ("manifest", read(dir.join(".rootfs/out.manifest.json"))),
        ("sbom", read(dir.join(".rootfs/out.spdx.json"))),
        ("lock", read(dir.join("pk.lock"))),
        ("oci export", file_digests(&dir.join("out.oci")).join("\n")),
    ])
}

/// Each file below `root` as `PATH SHA256`, sorted: what an export is,
/// without the times the files were written at.
fn file_digests(root: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let digest = rootfs::fsutil::sha256_file(&path).unwrap();
                lines.push(format!("{} {digest}", path.strip_prefix(root).unwrap().display()));
            }
        }
    }
    lines.sort();
    lines
}

/// Every output that differs, with a unified diff of its lines.
fn differences(host: &BTreeMap<&str, String>, bare: &BTreeMap<&str, String>) -> String {
    let mut report = String::new();
    for (name, text) in host {
        let other = &bare[name];
        if text != other {
            let diff = similar::TextDiff::from_lines(text, other);
            report.push_str(&format!(
                "{name} differs (host {}, bare {}):\n{}\n",
                rootfs::fsutil::sha256_hex(text.as_bytes()),
                rootfs::fsutil::sha256_hex(other.as_bytes()),
                diff.unified_diff().context_radius(2).header("host", "bare")
            ));
        }
    }
    report
}

/// Issue 20's proof of host independence. On the host: build (resolving
/// the set from the apt sources' mirror, writing the lock) and export.
/// Then, in the bare builder at another path (`/w`, with its own target
/// folder): without a mirror named anywhere the build stops saying so;
/// with `ROOTFS_DEBIAN_MIRROR` (read here from the host's apt sources, as a
/// CI job would set it) and an empty cache, `update --locked` verifies the
/// `InRelease` with the shipped keyring and resolves the same set, and a
/// `--locked` build fetches, verifies and unpacks every `.deb` itself. The
/// cache starts empty rather than bound from the host, so nothing of the
/// host's downloads or unpacked sysroots can reach the second build.
#[test]
fn live_a_package_sysroot_builds_the_same_bytes_inside_a_bare_tree() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (host, bare) = (tmp.path().join("host"), tmp.path().join("bare"));
    let spec = project(&host);
    let out = host.join("out");
    for command in ["build", "export"] {
        let extra: &[&str] = if command == "export" { &["--format", "oci"] } else { &[] };
        let (code, text) = rootfs_cli(command, &spec, &out, extra);
        assert_eq!(code, 0, "{command} on the host: {text}");
    }
    project(&bare);
    std::fs::copy(host.join("pk.lock"), bare.join("pk.lock")).unwrap();
    // The program sits in the tree at its host path, which must not be
    // under `/tmp` (covered by a tmpfs inside), where a checkout may be.
    let program_dir = crate::support::outside_tmp("rootfs-bare-");
    let program = program_dir.path().join("xtask");
    std::fs::copy(xtask_binary(), &program).unwrap();
    let builder = builder(&tmp.path().join("builder"), &program);
    let build = ["build", "pk.toml", "--out", "/w/out", "--locked"];
    let (code, text) = inside(&builder, &bare, &[], &build);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("this machine has no apt sources to take a mirror from"), "{text}");
    let apt = rootfs::build::debian::source::AptSources::from_host().unwrap();
    let mirror = apt.mirror_for("bookworm").expect("this host's apt sources serve bookworm");
    let env = [("ROOTFS_DEBIAN_MIRROR", mirror.as_str()), ("ROOTFS_CACHE_DIR", "/w/cache")];
    let export = ["export", "pk.toml", "--out", "/w/out", "--format", "oci"];
    for args in [&["update", "pk.toml", "--locked"][..], &build, &export] {
        let (code, text) = inside(&builder, &bare, &env, args);
        assert_eq!(code, 0, "{args:?} in the bare tree: {text}");
    }
    let (host, bare) = (outputs(&host), outputs(&bare));
    for (name, text) in &host {
        eprintln!("{name}: sha256 {}", rootfs::fsutil::sha256_hex(text.as_bytes()));
    }
    let report = differences(&host, &bare);
    assert!(report.is_empty(), "the bare tree built other bytes:\n{report}");
}
