//! Helpers shared by the integration tests: compiling tiny C fixtures, and asking glibc's own loader what it loads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

/// Compiles `source` (C) with `cc` into `out`, with extra flags.
pub fn cc(out: &Path, source: &str, flags: &[&str]) {
    let sh = Shell::new().unwrap();
    let dir = out.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join(format!("{}.c", out.file_name().unwrap().to_str().unwrap()));
    std::fs::write(&src, source).unwrap();
    cmd!(sh, "cc -o {out} {src} {flags...}").quiet().run().unwrap();
}

/// Builds a shared library `lib<name>.so` in `dir` whose function `<name>`
/// calls the functions `calls` (which it links against from `link_dirs`).
pub fn shared_lib(dir: &Path, name: &str, calls: &[&str], flags: &[&str]) -> PathBuf {
    let decls: String = calls.iter().map(|c| format!("int {c}(void);")).collect();
    let body: String = calls.iter().map(|c| format!("{c}()+")).collect();
    let source = format!("{decls}\nint {name}(void) {{ return {body}1; }}\n");
    let out = dir.join(format!("lib{name}.so"));
    let mut all = vec!["-shared", "-fPIC"];
    all.extend_from_slice(flags);
    let libs: Vec<String> = calls.iter().map(|c| format!("-l{c}")).collect();
    all.extend(libs.iter().map(String::as_str));
    cc(&out, &source, &all);
    out
}

/// Builds an executable calling `calls`.
pub fn program(out: &Path, calls: &[&str], flags: &[&str]) {
    let decls: String = calls.iter().map(|c| format!("int {c}(void);")).collect();
    let body: String = calls.iter().map(|c| format!("{c}()+")).collect();
    let source = format!("{decls}\nint main(void) {{ return {body}0 > 100; }}\n");
    let mut all: Vec<&str> = flags.to_vec();
    let libs: Vec<String> = calls.iter().map(|c| format!("-l{c}")).collect();
    all.extend(libs.iter().map(String::as_str));
    cc(out, &source, &all);
}

/// What glibc's loader itself reports for a real exec of `program`
/// (`LD_TRACE_LOADED_OBJECTS=1`): the canonical paths it loads and the names
/// it cannot find.
pub fn loader_trace(program: &Path) -> (BTreeSet<PathBuf>, BTreeSet<String>) {
    let out = duct::cmd!(program)
        .full_env([("LD_TRACE_LOADED_OBJECTS", "1"), ("PATH", "/usr/bin:/bin")])
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    parse_trace(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `ldd`-style output into canonical paths and missing names.
pub fn parse_trace(text: &str) -> (BTreeSet<PathBuf>, BTreeSet<String>) {
    let mut files = BTreeSet::new();
    let mut missing = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_suffix(" => not found") {
            missing.insert(name.to_string());
            continue;
        }
        let path = match line.split_once(" => ") {
            Some((_, rest)) => rest,
            None => line,
        };
        let path = path.split(" (0x").next().unwrap_or("");
        if path.starts_with('/') {
            files.insert(std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path)));
        }
    }
    (files, missing)
}

/// Canonical host paths of a closure's files.
pub fn canonical(paths: &[&Path]) -> BTreeSet<PathBuf> {
    paths.iter().map(|p| std::fs::canonicalize(p).unwrap()).collect()
}
