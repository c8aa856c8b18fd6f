//! The shipped presets and a new user's real workloads: each preset's checks do real work and pass (the C toolchain builds with make and links a library of its own, Rust builds and tests a crate), and a trace of it finds nothing missing; a spec of bare commands with real checks is completed by one `trace --write`.

use std::path::PathBuf;

use crate::findings::entries;
use crate::support::{can_enter, project_root, rootfs_cli};

/// A folder under the target directory (the sandbox replaces `/tmp`).
pub(crate) fn work_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A preset, included by a spec of its own: every check passes, and a
/// trace of its checks finds nothing the tree lacks.
fn preset_is_honest(name: &str) {
    if !can_enter() {
        return;
    }
    let dir = work_dir(&format!("preset-{name}"));
    let spec = dir.join("spec.toml");
    let preset = project_root().join("rootfs-spec/presets").join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!("name = \"preset-{name}\"\ninclude = [\"{}\"]\n", preset.display()),
    )
    .unwrap();
    let out = dir.join("out/tree");
    let (code, text) = rootfs_cli("smoke", &spec, &out, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    let (code, text) = rootfs_cli("trace", &spec, &out, &[]);
    assert_eq!(code, 0, "the trace of preset {name} found something missing:\n{text}");
    assert!(text.contains("the tree lacks 0 paths"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn preset_certs_is_honest() {
    preset_is_honest("certs");
}

#[test]
fn preset_locale_is_honest() {
    preset_is_honest("locale");
}

#[test]
fn preset_python3_is_honest() {
    preset_is_honest("python3");
}

#[test]
fn preset_git_is_honest() {
    preset_is_honest("git");
}

#[test]
fn preset_java_is_honest() {
    preset_is_honest("java");
}

#[test]
fn preset_vim_is_honest() {
    preset_is_honest("vim");
}

#[test]
fn preset_c_is_honest() {
    preset_is_honest("c");
}

#[test]
fn preset_rust_is_honest() {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    if !home.join(".rustup/toolchains").is_dir() || !home.join(".cargo/bin/cargo").is_file() {
        eprintln!(
            "skipped: the rust preset binds the caller's rustup toolchains, and HOME has none"
        );
        return;
    }
    preset_is_honest("rust");
}

#[test]
fn every_preset_has_a_test_and_checks_that_do_work() {
    let dir = project_root().join("rootfs-spec/presets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["c", "certs", "git", "java", "locale", "python3", "rust", "vim"]);
    for name in &names {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
        assert!(text.contains("[[smoke.checks]]"), "preset {name} has no check of its own");
    }
}

/// Python with ssl, sqlite3, json and ctypes, git init/commit/clone, Perl
/// with POSIX and Data::Dumper, curl of a file:// URL, javac and java, and
/// vim writing a file: bare commands, completed by one `trace --write`.
#[test]
fn a_new_users_workloads_pass_after_one_trace() {
    if !can_enter() {
        return;
    }
    let dir = work_dir("workloads");
    let spec = dir.join("workloads.toml");
    std::fs::copy(project_root().join("tests/data/workloads/workloads.toml"), &spec).unwrap();
    let fragment = dir.join("workloads.traced.toml");
    // The spec includes the fragment; before the first trace it is empty.
    std::fs::write(&fragment, format!("{}\n", rootfs::run::findings::HEADER)).unwrap();
    let out = dir.join("out/w");
    let (code, text) = rootfs_cli("trace", &spec, &out, &["--write", fragment.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(!entries(&fragment).is_empty(), "the bare spec lacks nothing?\n{text}");
    let (code, text) = rootfs_cli("smoke", &spec, &out, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    let second = dir.join("second.toml");
    let (code, text) = rootfs_cli("trace", &spec, &out, &["--write", second.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(entries(&second), Vec::<String>::new(), "the completed spec still lacks:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
