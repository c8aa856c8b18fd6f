//! `rootfs trace` on compiled fixtures: a library opened with `dlopen` under a name built at run time, a helper it executes, a data file, a listed directory and a file opened by a second thread are each found missing from the tree, as root and as an unprivileged user; the fragment it writes completes the tree. A check runs under `trace` with the bind, network, working directory and environment `smoke` gives it; a check that fails on the sysroot is reported and stops the fragment; `trace -- CMD` shows the command's output and status; this machine's files become `[shell]` binds, and a temporary name is never listed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{cc, rootfs_cli_split, xtask_binary};

/// The fixture's C source. Built with:
/// `cc -o bin/traced traced.c -pthread` (dlopen is in libc since glibc 2.34).
const TRACED_C: &str = r#"
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *base;

static void *opener(void *arg) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data/thread.txt", base);
    FILE *f = fopen(path, "r");
    if (f) fclose(f);
    return arg;
}

int main(int argc, char **argv) {
    base = argc > 1 ? argv[1] : "/nonexistent";
    char path[4096];
    /* A library named only at run time: no header names it. */
    snprintf(path, sizeof path, "%s/lib/lib%s.so", base, "plug");
    void *plug = dlopen(path, RTLD_NOW);
    snprintf(path, sizeof path, "%s/data/data.txt", base);
    FILE *f = fopen(path, "r");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/share/listed", base);
    DIR *d = opendir(path);
    if (d) { while (readdir(d)) {} closedir(d); }
    pthread_t thread;
    pthread_create(&thread, NULL, opener, NULL);
    pthread_join(thread, NULL);
    snprintf(path, sizeof path, "%s/bin/helper", base);
    pid_t pid = fork();
    if (pid == 0) { execl(path, path, (char *)NULL); _exit(127); }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("plug=%s helper=%d\n", plug ? "loaded" : "missing", WEXITSTATUS(status));
    return 0;
}
"#;

/// Builds the fixture under `dir` (outside `/tmp`, which the sandbox
/// replaces with its own) and returns the spec that names it.
fn fixture(dir: &Path) -> PathBuf {
    cc(&dir.join("bin/traced"), TRACED_C, &["-pthread"]);
    cc(&dir.join("bin/helper"), "int main(void) { return 3; }\n", &[]);
    cc(&dir.join("lib/libplug.so"), "int plug(void) { return 1; }\n", &["-shared", "-fPIC"]);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/data.txt"), "data\n").unwrap();
    std::fs::write(dir.join("data/thread.txt"), "thread\n").unwrap();
    std::fs::create_dir_all(dir.join("share/listed")).unwrap();
    std::fs::write(dir.join("share/listed/one"), "1\n").unwrap();
    for sub in ["bin", "lib", "data", "share", "share/listed"] {
        let path = dir.join(sub);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let spec = dir.join("traced.toml");
    let text = format!(
        "name = \"traced\"\ncommands = [\"{traced}\"]\n[smoke.args]\ntraced = [\"{base}\"]\n",
        traced = dir.join("bin/traced").display(),
        base = dir.display()
    );
    std::fs::write(&spec, text).unwrap();
    spec
}

/// A fresh folder readable by everyone, in `/var/tmp`: the sandbox has
/// its own `/tmp`, and the trace never proposes what lies in the users'
/// homes, so a fixture there would be invisible or noted only, wherever the
/// checkout is.
fn work_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from("/var/tmp").join(format!("rootfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    dir
}

fn trace(spec: &Path, out: &Path, write: Option<&Path>, as_nobody: bool) -> (i32, String, String) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(xtask_binary());
    command.args(["rootfs", "trace"]).arg(spec).arg("--out").arg(out);
    if let Some(write) = write {
        command.arg("--write").arg(write);
    }
    if as_nobody {
        command.env_clear().env("PATH", "/usr/bin:/bin");
        // SAFETY: setgroups, setgid and setuid are async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn finds_everything(as_nobody: bool) {
    let dir = work_dir(if as_nobody { "trace-nobody" } else { "trace-root" });
    let spec = fixture(&dir);
    let out = dir.join("out/traced");
    let (code, stdout, stderr) = trace(&spec, &out, None, as_nobody);
    assert_eq!(code, 1, "something is missing, so the exit status is 1:\n{stdout}{stderr}");
    let d = dir.display();
    for (group, path) in [
        ("libraries", format!("{d}/lib/libplug.so")),
        ("commands", format!("{d}/bin/helper")),
        ("files", format!("{d}/data/data.txt")),
        ("files", format!("{d}/data/thread.txt")),
        ("trees", format!("{d}/share/listed")),
    ] {
        let section = stdout.split(&format!("{group} (")).nth(1).unwrap_or("");
        assert!(
            section.contains(&format!("  {path}\n")),
            "{path} not in {group}:\n{stdout}{stderr}"
        );
    }
    // The fragment completes the tree. Rewriting it on an unchanged host
    // gives the same bytes, and a trace of the completed spec into another
    // file finds nothing and writes no entries.
    let fragment = dir.join("traced.traced.toml");
    let (code, stdout, stderr) = trace(&spec, &out, Some(&fragment), as_nobody);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let text = std::fs::read_to_string(&spec).unwrap();
    let with_include = "name = \"traced\"\ninclude = [\"traced.traced.toml\"]\n";
    std::fs::write(&spec, text.replacen("name = \"traced\"\n", with_include, 1)).unwrap();
    let first = std::fs::read(&fragment).unwrap();
    let (code, stdout, stderr) = trace(&spec, &out, Some(&fragment), as_nobody);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(std::fs::read(&fragment).unwrap(), first, "a rerun changed the fragment");
    let again = dir.join("again.toml");
    let (code, stdout, stderr) = trace(&spec, &out, Some(&again), as_nobody);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.ends_with("the tree lacks 0 paths\n"), "{stdout}{stderr}");
    assert_eq!(entries(&again), Vec::<String>::new(), "the completed spec still lacks something");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lines of a fragment that are not comments.
pub fn entries(fragment: &Path) -> Vec<String> {
    std::fs::read_to_string(fragment)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn trace_finds_what_a_program_uses_as_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (the rootless run of this test switches to uid 65534)");
        return;
    }
    finds_everything(false);
}

#[test]
fn trace_finds_what_a_program_uses_rootless() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to switch to uid 65534");
        return;
    }
    if !crate::support::can_enter() {
        return;
    }
    finds_everything(true);
}

/// The network namespace of this process, as `readlink /proc/self/ns/net`
/// prints it.
fn own_network() -> String {
    std::fs::read_link("/proc/self/ns/net").unwrap().display().to_string()
}

#[test]
fn trace_runs_a_check_with_the_bind_network_and_environment_smoke_gives_it() {
    if !crate::support::can_enter() {
        return;
    }
    let dir = work_dir("trace-opens");
    let bound = dir.join("bound");
    std::fs::create_dir_all(&bound).unwrap();
    // `/mnt` exists on the host, the sysroot here: a bind on a sysroot
    // lands on a path it has.
    let spec = dir.join("opens.toml");
    std::fs::write(
        &spec,
        "name = \"opens\"\ncommands = [\"sh\", \"readlink\"]\n\n[[smoke.checks]]\n\
         run = [\"sh\", \"-c\", \"readlink /proc/self/ns/net > \\\"$WHERE/net-$MARK\\\"\"]\n\
         binds = [\"bound:/mnt\"]\nnetwork = \"host\"\nworkdir = \"/mnt\"\n\
         env = { MARK = \"set\", WHERE = \".\" }\n",
    )
    .unwrap();
    let out = dir.join("out/opens");
    let written = bound.join("net-set");
    for command in ["smoke", "trace"] {
        let (code, stdout, stderr) = rootfs_cli_split(command, &spec, &out, &[]);
        assert_eq!(code, 0, "{command}:\n{stdout}{stderr}");
        let text = std::fs::read_to_string(&written)
            .unwrap_or_else(|e| panic!("{command} did not write through the bind: {e}"));
        assert_eq!(text.trim(), own_network(), "{command} did not share the host's network");
        std::fs::remove_file(&written).unwrap();
    }
    // What the check did on its bind is the host's own, never proposed.
    let (_, stdout, _) = rootfs_cli_split("trace", &spec, &out, &[]);
    assert!(!stdout.contains("/mnt"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_check_failing_on_the_sysroot_is_reported_and_no_fragment_is_written() {
    if !crate::support::can_enter() {
        return;
    }
    let dir = work_dir("trace-fails");
    let spec = dir.join("fails.toml");
    std::fs::write(
        &spec,
        "name = \"fails\"\ncommands = [\"sh\", \"seq\"]\n\n[[smoke.checks]]\n\
         run = [\"sh\", \"-c\", \"seq 1 40; echo last words; exit 4\"]\n",
    )
    .unwrap();
    let out = dir.join("out/fails");
    let fragment = dir.join("fails.traced.toml");
    let write = ["--write", fragment.to_str().unwrap()];
    let (code, stdout, stderr) = rootfs_cli_split("trace", &spec, &out, &write);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let expected = "FAIL on the sysroot: check 1: sh -c 'seq 1 40; echo last words; exit 4': exit 4, expected 0\n\
         \x20   $ sh -c 'seq 1 40; echo last words; exit 4'\n\
         \x20   | ... (29 lines before)\n";
    assert!(stdout.contains(expected), "{stdout}");
    assert!(stdout.contains("    | 40\n    | last words\n"), "the tail is shown:\n{stdout}");
    let closing = "3 checks traced, 1 failed on the sysroot: the tree lacks 0 paths\n";
    assert!(stdout.ends_with(closing), "{stdout}");
    assert!(stderr.contains("--keep-going writes it anyway"), "{stderr}");
    assert!(!fragment.exists(), "a fragment was written after a failure");
    let keep_going = ["--write", fragment.to_str().unwrap(), "--keep-going"];
    let (code, stdout, stderr) = rootfs_cli_split("trace", &spec, &out, &keep_going);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(fragment.is_file(), "--keep-going writes the fragment:\n{stdout}{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_of_a_command_shows_its_output_and_status_and_opens_what_run_opens() {
    if !crate::support::can_enter() {
        return;
    }
    let dir = work_dir("trace-command");
    let bound = dir.join("bound");
    std::fs::create_dir_all(&bound).unwrap();
    std::fs::write(bound.join("in.txt"), "from the host\n").unwrap();
    let spec = dir.join("command.toml");
    std::fs::write(&spec, "name = \"command\"\ncommands = [\"sh\", \"cat\"]\n").unwrap();
    let out = dir.join("out/command");
    let bind = format!("{}:/mnt", bound.display());
    let flags =
        ["--bind", &bind, "--workdir", "/mnt", "--env", "FOO=bar", "--network", "host", "--"];
    let script = "cat in.txt; echo \"FOO=$FOO\"; readlink /proc/self/ns/net; exit 3";
    let argv: Vec<&str> = flags.iter().copied().chain(["sh", "-c", script]).collect();
    let (code, stdout, stderr) = rootfs_cli_split("trace", &spec, &out, &argv);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let network = own_network();
    let expected = format!(
        "from the host\nFOO=bar\n{network}\n`sh -c '{script}'` exited with status 3\n\
         FAIL on the sysroot: sh -c 'cat in.txt; echo \"FOO=$FOO\"; readlink /proc/self/ns/…: exit 3, expected 0\n"
    );
    assert!(stdout.starts_with(&expected), "{stdout}{stderr}");
    let (code, stdout, stderr) = rootfs_cli_split("trace", &spec, &out, &["--", "nosuchtool"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.starts_with("`nosuchtool` did not start: "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn machine_files_are_proposed_as_shell_binds_and_checks_named_in_one_short_line() {
    if !crate::support::can_enter() {
        return;
    }
    if !Path::new("/etc/resolv.conf").is_file() || !Path::new("/etc/hosts").is_file() {
        eprintln!("skipped: this host has no /etc/resolv.conf or /etc/hosts to read");
        return;
    }
    let dir = work_dir("trace-machine");
    let spec = dir.join("machine.toml");
    std::fs::write(
        &spec,
        "name = \"machine\"\ncommands = [\"sh\", \"cat\"]\n\n[[smoke.checks]]\n\
         run = [\"sh\", \"-c\", \"\"\"\ncat /etc/resolv.conf /etc/hosts > /dev/null\n\
         echo made > /tmp/scratch && cat /tmp/scratch && rm /tmp/scratch\n\"\"\"]\n",
    )
    .unwrap();
    let out = dir.join("out/machine");
    let fragment = dir.join("machine.traced.toml");
    let (code, stdout, stderr) =
        rootfs_cli_split("trace", &spec, &out, &["--write", fragment.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let expected = "\n[shell]\n# This machine's own files: `shell` and `run` bind them, read-only, rather than\n\
         # copy them into a tree that other machines may use.\nbinds = [\n\
         \x20 \"/etc/hosts:ro\", # needed by check 1: sh -c 'cat /etc/resolv.conf /etc/hosts > /dev/null…\n\
         \x20 \"/etc/resolv.conf:ro\", # needed by check 1: sh -c 'cat /etc/resolv.conf /etc/hosts > /dev/null…\n]\n";
    let written = std::fs::read_to_string(&fragment).unwrap();
    assert!(written.ends_with(expected), "{written}");
    assert!(!written.contains("scratch") && !written.contains("[[files]]"), "{written}");
    // Included, the fragment's binds count: a trace of the completed spec
    // into another file proposes nothing, and rewriting it changes nothing.
    let text = std::fs::read_to_string(&spec).unwrap();
    let with_include = "name = \"machine\"\ninclude = [\"machine.traced.toml\"]\n";
    std::fs::write(&spec, text.replacen("name = \"machine\"\n", with_include, 1)).unwrap();
    let again = dir.join("again.toml");
    let (code, stdout, stderr) =
        rootfs_cli_split("trace", &spec, &out, &["--write", again.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(entries(&again), Vec::<String>::new(), "{stdout}");
    let (code, stdout, stderr) =
        rootfs_cli_split("trace", &spec, &out, &["--write", fragment.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(std::fs::read_to_string(&fragment).unwrap(), written, "a rerun changed it");
    let _ = std::fs::remove_dir_all(&dir);
}
