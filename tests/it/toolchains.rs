//! Real builds in trees made for them: a C project of the fixtures with its own autoconf-style `./configure` (tee, sed, cmp, expr, uname), `make` and `make test`, completed by one `trace --write`, then smoke-tested and built again with `run --bind`; and this repository building and testing itself in the tree of `rootfs-spec/dev.toml`.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use crate::findings::entries;
use crate::support::{can_enter, project_root, rootfs_cli, xtask_binary};

/// A fresh folder in `/var/tmp`: a bind on the host's `/` lands on a path
/// it has, and the sandbox has its own `/tmp`.
fn work_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from("/var/tmp").join(format!("rootfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_c_project_configures_builds_and_passes_its_tests_in_a_tree_made_by_one_trace() {
    if !can_enter() {
        return;
    }
    let dir = work_dir("cproject");
    let project = dir.join("project");
    let options = fs_extra::dir::CopyOptions { content_only: true, ..Default::default() };
    fs_extra::dir::copy(project_root().join("tests/data/cproject"), &project, &options).unwrap();
    // Bare commands: the trace learns the rest (the tools configure runs,
    // the compiler's helpers, headers, start files and linker scripts; cc1
    // and collect2 come with the folder gcc searched for them).
    let spec = dir.join("cproject.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"cproject\"\ninclude = [\"cproject.traced.toml\"]\ncommands = [\"sh\", \"make\", \"cc\"]\n\n\
             [[smoke.checks]]\nrun = [\"sh\", \"-c\", \"./configure && make clean && make && make test\"]\n\
             binds = [\"project\"]\nworkdir = \"{}\"\ncontains = \"all tests passed\"\ntimeout = 300\n",
            project.display()
        ),
    )
    .unwrap();
    let fragment = dir.join("cproject.traced.toml");
    std::fs::write(&fragment, format!("{}\n", rootfs::run::findings::HEADER)).unwrap();
    let out = dir.join("out/cproject");
    let (code, text) = rootfs_cli("trace", &spec, &out, &["--write", fragment.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let learned = entries(&fragment).join("\n");
    for wanted in [
        "\"/usr/bin/tee\"",
        "\"/usr/bin/sed\"",
        "\"/usr/bin/cmp\"",
        "\"/usr/bin/expr\"",
        "\"/usr/bin/uname\"",
        "src = \"/usr/include\"",
        "src = \"/usr/lib/gcc/x86_64-linux-gnu/12\"",
        "src = \"/usr/lib/x86_64-linux-gnu/libc.so\"",
    ] {
        assert!(learned.contains(wanted), "{wanted} not learned:\n{learned}");
    }
    // Readable and portable: no project or temporary path, one short line
    // per comment.
    let written = std::fs::read_to_string(&fragment).unwrap();
    assert!(!written.contains(project.to_str().unwrap()), "{written}");
    assert!(!written.contains("/tmp/"), "{written}");
    let comment = |l: &str| l.split_once("# ").map_or(0, |(_, c)| c.chars().count());
    assert!(written.lines().all(|l| comment(l) <= 100), "{written}");
    let (code, text) = rootfs_cli("smoke", &spec, &out, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    eprintln!(
        "the C project's tree: {}; its fragment: {} bytes, {} entries",
        text.lines().find(|l| l.starts_with("built ")).unwrap_or("?"),
        written.len(),
        entries(&fragment).len()
    );
    // By hand, as a developer would: the project bound at its own path.
    let clean = Command::new("make").arg("-s").arg("clean").current_dir(&project).status();
    assert!(clean.unwrap().success());
    let bind = project.to_str().unwrap();
    let argv =
        ["--bind", bind, "--workdir", bind, "--", "sh", "-c", "./configure && make && make test"];
    let (code, text) = rootfs_cli("run", &spec, &out, &argv);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("all tests passed"), "{text}");
    let built = std::fs::metadata(project.join("libroots.so")).unwrap();
    assert_eq!(built.uid(), rustix::process::geteuid().as_raw(), "written as the caller");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's own command, `run rootfs-spec/dev.toml -- cargo test
/// --offline --lib` from the checkout, as the caller, in the tree that
/// `rootfs-spec/dev.toml` makes; then a trace of the same work finds
/// nothing that tree lacks. It shares `target/` with the `cargo test`
/// running it (which holds no lock while tests run): the same paths inside
/// as outside keep cargo's fingerprints valid, so what `cargo xtask test`
/// built is reused, and only what differs is built again.
#[test]
fn this_repository_builds_and_passes_its_tests_in_its_own_dev_environment() {
    if !can_enter() {
        return;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    if !home.join(".rustup/toolchains").is_dir() || !home.join(".cargo/bin/cargo").is_file() {
        eprintln!("skipped: dev.toml binds the caller's rustup toolchains, and HOME has none");
        return;
    }
    let root = project_root();
    let started = std::time::Instant::now();
    let dev = |command: &str| {
        let output = Command::new(xtask_binary())
            .args(["rootfs", command, "rootfs-spec/dev.toml", "--"])
            .args(["cargo", "test", "--offline", "--lib"])
            .current_dir(&root)
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    };
    let (code, text) = dev("run");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("test result: ok."), "{text}");
    eprintln!("cargo test --offline --lib in dev.toml: {:.1} s", started.elapsed().as_secs_f64());
    // The test binary cargo ran is the caller's, built inside or out.
    let binary = text
        .lines()
        .find_map(|l| l.strip_prefix("     Running unittests src/lib.rs (")?.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no unit tests ran:\n{text}"));
    let owner = std::fs::metadata(root.join(binary)).unwrap().uid();
    assert_eq!(owner, rustix::process::geteuid().as_raw(), "{binary} is not the caller's");
    let (code, text) = dev("trace");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("\n1 checks traced: the tree lacks 0 paths\n"), "{text}");
}
