//! Helpers shared by the integration tests: compiling tiny C fixtures, asking glibc's own loader what it loads, and `.deb`s assembled in memory (`support/deb.rs`, `deb_fixture`).

pub mod deb;
pub mod foreign;

use std::collections::BTreeSet;
use std::os::unix::fs::symlink;
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

/// The repository's root (where `rootfs-spec/` is).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The specs shipped in `rootfs-spec/` that build on their own (those with
/// a `name`; the others are only included).
pub fn shipped_specs() -> Vec<PathBuf> {
    let specs = specs_in(&project_root().join("rootfs-spec"));
    assert!(specs.len() >= 3, "expected the default spec and at least two others");
    specs
}

/// The specs of `dir` that build on their own (the files with a `name`),
/// sorted.
pub fn specs_in(dir: &Path) -> Vec<PathBuf> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| {
            let value: toml::Table = std::fs::read_to_string(p).unwrap().parse().unwrap();
            value.contains_key("name")
        })
        .collect();
    specs.sort();
    specs
}

/// Every path of a tree, sorted, with its type, mode, mtime and content
/// digest or link target: equal listings mean identical trees.
pub fn tree_listing(root: &Path) -> Vec<String> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let kind = if meta.is_dir() {
                "dir".to_string()
            } else if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else {
                format!("file {:x}", sha2::Sha256::digest(std::fs::read(&path).unwrap()))
            };
            out.push(format!("{rel} mode={:o} mtime={} {kind}", meta.mode(), meta.mtime()));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    let meta = std::fs::metadata(root).unwrap();
    out.push(format!(". mode={:o} mtime={} dir", meta.mode(), meta.mtime()));
    walk(root, root, &mut out);
    out
}

/// The `xtask` binary of this workspace, for tests of the command line.
/// `cargo xtask test` builds it before running the tests.
pub fn xtask_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-<hash> -> target/<profile>/xtask
    let path = exe.parent().and_then(Path::parent).unwrap().join("xtask");
    assert!(
        path.is_file(),
        "`{}` is missing: run the tests with `cargo xtask test`, which builds it",
        path.display()
    );
    path
}

/// `xtask rootfs COMMAND SPEC --out OUT EXTRA...`: the exit status, and
/// standard output then standard error.
pub fn rootfs_cli(command: &str, spec: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let (status, mut text, stderr) = rootfs_cli_split(command, spec, out, extra);
    text.push_str(&stderr);
    (status, text)
}

/// [`rootfs_cli`] with standard output and standard error apart.
pub fn rootfs_cli_split(
    command: &str,
    spec: &Path,
    out: &Path,
    extra: &[&str],
) -> (i32, String, String) {
    let output = std::process::Command::new(xtask_binary())
        .args(["rootfs", command])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// This process's mount table: mount IDs and the root's own line are what
/// would change if a mount leaked, so the whole table is compared.
pub fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// Runs `argv` inside `root` with `chroot(2)` and an empty environment but
/// `env`; returns exit status and output.
pub fn in_chroot(root: &Path, argv: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    let root = root.to_path_buf();
    let mut command = std::process::Command::new(argv[0]);
    command.args(&argv[1..]).env_clear().envs(env.iter().copied());
    // SAFETY: chroot and chdir are async-signal-safe system calls.
    unsafe {
        command.pre_exec(move || {
            rustix::process::chroot(&root)?;
            rustix::process::chdir("/")?;
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// A sysroot assembled from copies of host files, whose absolute symlinks
/// would point at the host if followed outside it.
pub fn copy_sysroot(root: &Path) {
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
    let options = fs_extra::dir::CopyOptions::new();
    for soname in ["ld-linux-x86-64.so.2", "libc.so.6", "libtinfo.so.6"] {
        // The real file, with the soname as a symlink to it when they differ
        // (libtinfo.so.6 -> libtinfo.so.6.4), as on the host.
        let real =
            std::fs::canonicalize(Path::new("/usr/lib/x86_64-linux-gnu").join(soname)).unwrap();
        fs_extra::copy_items(&[&real], &lib, &options).unwrap();
        let name = real.file_name().unwrap();
        if name != soname {
            symlink(name, lib.join(soname)).unwrap();
        }
    }
    fs_extra::copy_items(&["/usr/bin/bash"], root.join("usr/bin"), &options).unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    symlink("usr/lib", root.join("lib")).unwrap();
    symlink("usr/lib64", root.join("lib64")).unwrap();
    symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        root.join("usr/lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
}

/// Gives a sysroot a dpkg database: each package (name, version) owns the
/// paths listed, spelled as the package ships them (`/lib/...` on a
/// merged-`/usr` sysroot, as Debian's packages still do).
pub fn add_dpkg(root: &Path, packages: &[(&str, &str, &[&str])]) {
    let info = root.join("var/lib/dpkg/info");
    std::fs::create_dir_all(&info).unwrap();
    let mut status = String::new();
    for (name, version, paths) in packages {
        status.push_str(&format!(
            "Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: {version}\nDescription: {name}\n\n"
        ));
        let list: String = paths.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(info.join(format!("{name}:amd64.list")), list).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
}

/// `target/`, or `$CARGO_TARGET_DIR`, as `cargo xtask test` sees it.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// A program the tests need from the host, or `None` after saying in one
/// line that the test is skipped (`cargo xtask test` installs them all).
pub fn host_tool(name: &str, why: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/usr/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("skipped: {why}: `{name}` is not installed (`cargo xtask test` installs it)");
    }
    found
}

/// The SPDX project's validator, from the virtual environment `cargo xtask
/// test` creates, or `None` after one `skipped:` line.
pub fn pyspdxtools() -> Option<PathBuf> {
    let path = target_dir().join("venv/bin/pyspdxtools");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: validating the SBOM: `{}` is missing (`cargo xtask test` installs spdx-tools there)",
            path.display()
        );
        None
    }
}

/// The built tree exported by this tool as an OCI image layout at
/// `layout`, tagged `latest`.
pub fn oci_image_of(built: &rootfs::build::Built, layout: &Path) {
    let options = rootfs::export::Options {
        format: rootfs::export::Format::Oci,
        output: Some(layout.to_path_buf()),
        compression: None,
        epoch: 0,
        force: false,
        sysroot: PathBuf::from("/"),
    };
    rootfs::export::export(built, &options)
        .unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
}

/// How our closure of `subject` differs from the loader's, or `None` when
/// they agree: where the loader resolves everything, the same files and
/// no miss of ours; where it misses something, the same names missed.
pub fn closure_disagreement(
    subject: &str,
    (ours, our_missing): (&BTreeSet<PathBuf>, &BTreeSet<String>),
    (truth, missing): (&BTreeSet<PathBuf>, &BTreeSet<String>),
) -> Option<String> {
    let agree = if missing.is_empty() {
        ours == truth && our_missing.is_empty()
    } else {
        our_missing == missing
    };
    (!agree).then(|| {
        format!(
            "{subject}: only ours {:?}, only the loader's {:?}, missing ours {our_missing:?} loader {missing:?}",
            ours.difference(truth).collect::<Vec<_>>(),
            truth.difference(ours).collect::<Vec<_>>(),
        )
    })
}

/// A fresh folder in `/var/tmp`, for programs a tree holds at their host
/// path: never under `/tmp`, which every check covers with a tmpfs of its
/// own (and where a checkout, with its `target/`, may be).
pub fn outside_tmp(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in("/var/tmp").unwrap()
}

/// Whether this process can enter a rootfs (root, or an unprivileged user
/// namespace); prints the one `skipped:` line when not.
pub fn can_enter() -> bool {
    match rootfs::run::smoke::cannot_enter_reason() {
        None => true,
        Some(reason) => {
            eprintln!("skipped: {reason}");
            false
        }
    }
}

/// Whether a process of this host has exactly `cmdline` as its command
/// line (arguments joined with spaces).
pub fn has_process(cmdline: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
    })
}
