//! Tidy checks that run with the tests: every source file says what it is for, and the documentation names every key and command that exists.

use std::path::{Path, PathBuf};

use crate::support::project_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_opens_with_a_doc_line() {
    let root = project_root();
    let mut files = Vec::new();
    for dir in ["src", "xtask/src", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//! "))
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` first line: {missing:?}");
}

/// The keys a table of the spec accepts, as the parser lists them when it
/// meets an unknown one.
fn accepted_keys(spec_text: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("spec.toml");
    std::fs::write(&path, spec_text).unwrap();
    let err = rootfs::spec::load(&path).unwrap_err();
    let message = err.message;
    let list = message.split("expected").nth(1).unwrap_or_else(|| panic!("{message}"));
    list.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn the_spec_reference_documents_every_key() {
    let readme = std::fs::read_to_string(project_root().join("rootfs-spec/README.md")).unwrap();
    let tables = [
        "name = \"x\"\nnot_a_key = 1\n",
        "name = \"x\"\n[[files]]\nnot_a_key = 1\n",
        "name = \"x\"\n[[symlinks]]\nnot_a_key = 1\n",
        "name = \"x\"\n[[users]]\nnot_a_key = 1\n",
        "name = \"x\"\n[[groups]]\nnot_a_key = 1\n",
        "name = \"x\"\n[[trees]]\nnot_a_key = 1\n",
        "name = \"x\"\n[smoke]\nnot_a_key = 1\n",
        "name = \"x\"\n[[smoke.checks]]\nnot_a_key = 1\n",
        "name = \"x\"\ndirs = [{ not_a_key = 1 }]\n",
        "name = \"x\"\n[image]\nnot_a_key = 1\n",
        "name = \"x\"\n[shell]\nnot_a_key = 1\n",
        "name = \"x\"\n[shell]\nbinds = [{ not_a_key = 1 }]\n",
        "name = \"x\"\n[sysroot]\nnot_a_key = 1\n",
        "name = \"x\"\n[sysroot.debian]\nnot_a_key = 1\n",
    ];
    let mut undocumented = Vec::new();
    for table in tables {
        let keys = accepted_keys(table);
        assert!(!keys.is_empty(), "{table}");
        for key in keys {
            if !readme.contains(&format!("`{key}`")) {
                undocumented.push(format!("{key} (from {:?})", table.lines().nth(1).unwrap()));
            }
        }
    }
    assert!(undocumented.is_empty(), "keys missing from rootfs-spec/README.md: {undocumented:?}");
}

#[test]
fn the_readme_starts_with_the_two_commands_and_ci_runs_the_same_tests() {
    let root = project_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands: Vec<&str> =
        readme.lines().filter(|l| l.starts_with("cargo xtask")).take(2).collect();
    assert_eq!(commands, ["cargo xtask rootfs", "cargo xtask test"]);
    let first_heading = readme.find("\n## ").unwrap_or(readme.len());
    assert!(
        readme[..first_heading].contains("cargo xtask test"),
        "the commands come before anything else"
    );
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "cargo xtask test"),
        ".ci/run must run the README's test command"
    );
}

#[test]
fn the_readme_lists_the_packages_the_tests_install() {
    let root = project_root();
    let source = std::fs::read_to_string(root.join("xtask/src/packages.rs")).unwrap();
    let list = source.split("pub const FOR_TESTS: &[&str] = &[").nth(1).unwrap();
    let list = list.split("];").next().unwrap();
    let in_code: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .map(|l| l.trim_end_matches(',').trim_matches('"'))
        .collect();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme.split("<!-- packages for tests -->").nth(1).unwrap();
    let section = section.split("<!-- end of packages for tests -->").next().unwrap();
    let in_readme: Vec<&str> = section.split('`').skip(1).step_by(2).collect();
    assert_eq!(in_readme, in_code, "README.md's list of packages is not packages::FOR_TESTS");
}

/// ARCHITECTURE.md's code map names every source file, and no file that
/// is gone: a newcomer finds where a thing lives from the map alone.
#[test]
fn the_code_map_names_every_source_file_and_no_other() {
    let root = project_root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let map = text.split("## Code map").nth(1).expect("a `## Code map` section");
    let map = map.split("\n## ").next().unwrap();
    let named: std::collections::BTreeSet<String> = map
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.ends_with(".rs") && !word.contains(' ') && !word.starts_with("tests/"))
        .map(str::to_string)
        .collect();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let files: std::collections::BTreeSet<String> = files
        .iter()
        .map(|f| f.strip_prefix(root.join("src")).unwrap().display().to_string())
        .collect();
    let unnamed: Vec<_> = files.difference(&named).collect();
    let gone: Vec<_> = named.difference(&files).collect();
    assert!(unnamed.is_empty(), "source files the code map does not name: {unnamed:?}");
    assert!(gone.is_empty(), "the code map names files that do not exist: {gone:?}");
}
