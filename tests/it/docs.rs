//! The documentation's examples, run exactly as printed: every `console` block of the READMEs prints what it shows, and the README's development spec works with the commands shown under it.

use std::path::{Path, PathBuf};

use crate::support::{project_root, xtask_binary};

/// The fenced blocks of a Markdown text: info string and body.
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => open = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// A folder with a `cargo` that runs this tree's `xtask` binary for
/// `cargo xtask ...`, so that a line is run as printed without building.
fn cargo_shim(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("shim");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = xtask ] || {{ echo 'only cargo xtask here' >&2; exit 99; }}\nshift\nexec {} \"$@\"\n",
        xtask_binary().display()
    );
    std::fs::write(bin.join("cargo"), script).unwrap();
    std::fs::set_permissions(bin.join("cargo"), PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

/// Runs `line` with `sh -c` in `cwd`, standard error with standard output
/// as a terminal shows them, `stdin` as its input; exit status and output.
fn run_line(line: &str, cwd: &Path, shim: &Path, target: &Path, stdin: &str) -> (i32, String) {
    let path = format!("{}:/usr/bin:/bin", shim.display());
    let out = duct::cmd!("sh", "-c", line)
        .dir(cwd)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target)
        .stdin_bytes(stdin.as_bytes().to_vec())
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_console_example_prints_what_it_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let shim = cargo_shim(tmp.path());
    let mut checked = 0;
    for doc in ["README.md", "rootfs-spec/README.md"] {
        let text = std::fs::read_to_string(project_root().join(doc)).unwrap();
        for (info, body) in fenced_blocks(&text) {
            if info != "console" {
                continue;
            }
            // `$ COMMAND` lines, each followed by what it prints.
            let mut lines = body.lines().peekable();
            while let Some(line) = lines.next() {
                let command = line.strip_prefix("$ ").unwrap_or_else(|| panic!("{doc}: {line}"));
                let mut expected = String::new();
                while let Some(next) = lines.next_if(|l| !l.starts_with("$ ")) {
                    expected.push_str(next);
                    expected.push('\n');
                }
                let target = tmp.path().join("target");
                let (_, printed) = run_line(command, &project_root(), &shim, &target, "");
                assert_eq!(printed, expected, "{doc}: `{command}` printed something else");
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "expected the spec README's two error examples");
}

#[test]
fn the_readmes_development_spec_works_with_its_commands() {
    if !crate::support::can_enter() {
        return;
    }
    let text = std::fs::read_to_string(project_root().join("README.md")).unwrap();
    let blocks = fenced_blocks(&text);
    let at = blocks
        .iter()
        .position(|(info, body)| info == "toml" && body.starts_with("# dev.toml"))
        .expect("the README's dev.toml example");
    let (info, commands) = &blocks[at + 1];
    assert_eq!(info, "sh", "the commands follow the spec");
    // A checkout: the spec at its root, with what it includes, and a
    // Makefile whose `test` target uses the shell, as real ones do.
    let tmp = tempfile::tempdir().unwrap();
    let checkout = tmp.path().join("checkout");
    std::fs::create_dir_all(checkout.join("rootfs-spec")).unwrap();
    std::fs::write(checkout.join("dev.toml"), &blocks[at].1).unwrap();
    std::fs::copy(
        project_root().join("rootfs-spec/base.toml"),
        checkout.join("rootfs-spec/base.toml"),
    )
    .unwrap();
    std::fs::write(
        checkout.join("Makefile"),
        "test:\n\t@echo \"tests ran in $$(pwd)\" && ls Makefile\n",
    )
    .unwrap();
    let shim = cargo_shim(tmp.path());
    let target = tmp.path().join("target");
    let lines: Vec<&str> = commands.lines().collect();
    assert_eq!(lines.len(), 2, "{commands}");
    // `shell`: a shell in /src, as the caller; its input here is a script.
    let uid = rustix::process::geteuid().as_raw();
    let (code, printed) =
        run_line(lines[0], &checkout, &shim, &target, "pwd; id -u 2>/dev/null || echo $UID\n");
    assert_eq!(code, 0, "{}: {printed}", lines[0]);
    assert!(printed.ends_with(&format!("/src\n{uid}\n")), "{}: {printed}", lines[0]);
    let (code, printed) = run_line(lines[1], &checkout, &shim, &target, "");
    assert_eq!(code, 0, "{}: {printed}", lines[1]);
    assert!(printed.ends_with("tests ran in /src\nMakefile\n"), "{}: {printed}", lines[1]);
}
