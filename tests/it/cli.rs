//! The command line as a user meets it: `run` keeps standard output for the command, `shell` picks a terminal the tree knows, `why` and `--junit` fail clearly, and `[smoke]` names may be base names.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{can_enter, project_root, xtask_binary};

fn xtask(args: &[&str], out: &Path) -> Command {
    let mut command = Command::new(xtask_binary());
    command.args(["rootfs"]).args(&args[..1]);
    command.arg(project_root().join("rootfs-spec/default.toml")).arg("--out").arg(out);
    command.args(&args[1..]);
    command
}

#[test]
fn run_keeps_standard_output_for_the_command_alone() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("default");
    let output = xtask(&["run", "--", "cat", "/etc/passwd"], &out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.stdout, std::fs::read(out.join("etc/passwd")).unwrap());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("built "), "the build's status line goes to stderr: {stderr}");
}

fn shell_term(out: &Path, term: &str) -> (String, String) {
    let mut child = xtask(&["shell"], out)
        .env("TERM", term)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"echo TERM=$TERM\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn shell_gives_a_terminal_the_tree_has_an_entry_for() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("default");
    let (stdout, stderr) = shell_term(&out, "xterm");
    assert_eq!(stdout, "TERM=xterm");
    assert!(!stderr.contains("terminfo"), "{stderr}");
    let (stdout, stderr) = shell_term(&out, "alacritty-direct");
    assert_eq!(stdout, "TERM=xterm-256color");
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("terminfo")).collect();
    assert_eq!(
        notes,
        [
            "note: the tree has no terminfo entry for TERM=alacritty-direct; using TERM=xterm-256color"
        ]
    );
}

#[test]
fn why_of_a_path_not_in_the_tree_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("default");
    let build = xtask(&["build"], &out).output().unwrap();
    assert!(build.status.success());
    let mut why = Command::new(xtask_binary());
    why.args(["rootfs", "why", "/usr/bin/not-there", "--spec"])
        .arg(project_root().join("rootfs-spec/default.toml"))
        .arg("--out")
        .arg(&out);
    let output = why.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`/usr/bin/not-there` is not in"), "{stderr}");
}

#[test]
fn a_junit_file_that_cannot_be_written_is_an_error() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("default");
    let junit = tmp.path().join("no-such-dir/report.xml");
    let output = xtask(&["smoke", "--junit", junit.to_str().unwrap()], &out).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("writing the JUnit report") && stderr.contains("report.xml"),
        "{stderr}"
    );
    assert!(!junit.exists() && !junit.parent().unwrap().exists());
}

#[test]
fn smoke_names_may_be_a_commands_base_name() {
    if !can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("base.toml");
    let text = "name = \"base\"\ncommands = [\"/usr/bin/cat\", \"/usr/bin/sleep\"]\n[smoke]\nskip = [\"sleep\"]\n[smoke.args]\ncat = [\"/proc/self/status\"]\n";
    std::fs::write(&spec, text).unwrap();
    let output = Command::new(xtask_binary())
        .args(["rootfs", "smoke"])
        .arg(&spec)
        .arg("--out")
        .arg(tmp.path().join("base"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.ends_with("1 passed, 0 failed\n"), "{stdout}");
    assert!(stdout.contains("/usr/bin/cat "), "{stdout}");
}
