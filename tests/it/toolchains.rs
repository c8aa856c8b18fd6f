//! Real builds in trees made by one trace of that work: a C project of the fixtures with its own autoconf-style `./configure` (tee, sed, cmp, expr, uname), `make` and `make test`, completed by one `trace --write`, then smoke-tested and built again with `run --bind`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::findings::entries;
use crate::support::{can_enter, project_root, xtask_binary};

/// A fresh folder in `/var/tmp`: a bind on the host's `/` lands on a path
/// it has, and the sandbox has its own `/tmp`.
fn work_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from("/var/tmp").join(format!("rootfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `rootfs COMMAND SPEC --out OUT EXTRA...`: exit status, and standard
/// output then standard error.
fn xtask(command: &str, spec: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let output = Command::new(xtask_binary())
        .args(["rootfs", command])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
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
    std::fs::write(&fragment, format!("{}\n", rootfs::findings::HEADER)).unwrap();
    let out = dir.join("out/cproject");
    let (code, text) = xtask("trace", &spec, &out, &["--write", fragment.to_str().unwrap()]);
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
    let (code, text) = xtask("smoke", &spec, &out, &[]);
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
    let (code, text) = xtask("run", &spec, &out, &argv);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("all tests passed"), "{text}");
    let built = std::fs::metadata(project.join("libroots.so")).unwrap();
    assert_eq!(built.uid(), rustix::process::geteuid().as_raw(), "written as the caller");
    let _ = std::fs::remove_dir_all(&dir);
}
