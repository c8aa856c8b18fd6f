//! The library used from other projects, as they would: `examples/build-script` (a build script that embeds an initramfs, rerun by cargo exactly when an input changes) and `examples/other-xtask` (another project's own `cargo xtask`), each copied out of this repository and built offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

use crate::support::{can_enter, project_root, target_dir};

/// Copies `examples/<name>` to `dest` and points its dependency on this
/// crate at this checkout, as a user's copy elsewhere would.
fn copy_example(name: &str, dest: &Path) -> PathBuf {
    let from = project_root().join("examples").join(name);
    let to = dest.join(name);
    let options = fs_extra::dir::CopyOptions::new();
    fs_extra::dir::copy(&from, dest, &options).unwrap();
    let relative = if name == "other-xtask" { "../../.." } else { "../.." };
    for manifest in [to.join("Cargo.toml"), to.join("xtask/Cargo.toml")] {
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            let pointed = text.replace(
                &format!("path = \"{relative}\""),
                &format!("path = {:?}", project_root().display().to_string()),
            );
            std::fs::write(&manifest, pointed).unwrap();
        }
    }
    to
}

/// `cargo ARGS` in `dir`, offline, with a target folder shared by the
/// examples (under this project's own, so a second run compiles nothing),
/// and none of the variables the outer `cargo test` set for itself.
fn cargo(dir: &Path, args: &[&str]) -> (bool, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("CARGO_") && key_text != "CARGO_HOME" {
            command.env_remove(&key);
        }
    }
    command.env("CARGO_TARGET_DIR", target_dir().join("examples"));
    let out = command.args(args).arg("--offline").current_dir(dir).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The initramfs digest the example's binary prints, and the one of the
/// file its build script wrote under `OUT_DIR`.
fn digests(dir: &Path) -> (String, String) {
    let (ok, out) = cargo(dir, &["run", "-q"]);
    assert!(ok, "{out}");
    let printed = out.trim().rsplit(' ').next().unwrap().to_string();
    let build = target_dir().join("examples/debug/build");
    let mut written = None;
    for entry in std::fs::read_dir(&build).unwrap() {
        let cpio = entry.unwrap().path().join("out/rootfs/embedded.cpio.gz");
        if let Ok(bytes) = std::fs::read(&cpio) {
            let hex: String =
                sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            if hex == printed {
                written = Some(hex);
            }
        }
    }
    (printed, written.unwrap_or_default())
}

#[test]
fn a_build_script_embeds_an_initramfs_and_reruns_only_when_an_input_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_example("build-script", tmp.path());
    let (ok, out) = cargo(&dir, &["build"]);
    assert!(ok, "{out}");
    let (printed, written) = digests(&dir);
    assert_eq!(printed, written, "the binary embeds what the build script wrote");

    // Nothing changed: cargo finds the build script fresh.
    let (ok, out) = cargo(&dir, &["build", "-v"]);
    assert!(ok, "{out}");
    assert!(out.contains("Fresh rootfs-build-script-example"), "{out}");
    assert!(!out.contains("build-script-build`"), "the build script ran again:\n{out}");

    // The spec changed: it runs again, and the binary embeds the new tree.
    let spec = dir.join("rootfs.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("\"sed\"]", "\"sed\", \"grep\"]")).unwrap();
    let (ok, out) = cargo(&dir, &["build", "-v"]);
    assert!(ok, "{out}");
    assert!(out.contains("build-script-build`"), "the build script did not run again:\n{out}");
    let (again, _) = digests(&dir);
    assert_ne!(again, printed, "the embedded initramfs follows the spec");

    // Nothing was written beside the spec (the lock goes under OUT_DIR).
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Cargo.lock", "Cargo.toml", "build.rs", "rootfs.toml", "src"]);
}

#[test]
fn another_project_builds_smokes_and_exports_its_rootfs_from_its_own_xtask() {
    // The example smoke-tests its tree; `can_enter` says why when it cannot.
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_example("other-xtask", tmp.path());
    let (ok, out) = cargo(&dir, &["xtask", "rootfs"]);
    assert!(ok, "{out}");
    assert!(out.contains("built ") && out.contains("4 passed, 0 failed"), "{out}");
    assert!(dir.join("target/rootfs/app.oci/index.json").is_file(), "{out}");
}
