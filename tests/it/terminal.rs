//! `shell` on a real terminal, driven through tmux: the prompt shows, line editing works, vim draws with the tree's terminfo, and Ctrl-C interrupts the foreground program and not the shell; as root and as 65534.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::devenv::{Caller, Fixture};
use crate::support::{has_process, xtask_binary};

/// A tmux server of its own (`-L`), killed when dropped.
struct Tmux<'a> {
    fixture: &'a Fixture,
    socket: String,
}

impl Tmux<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.fixture.caller.command("tmux", &self.fixture.home);
        // The server's socket goes in the caller's own home; panes start
        // with `sh -c` (65534's login shell is `nologin`).
        command.env("TMUX_TMPDIR", &self.fixture.home).env("SHELL", "/bin/sh");
        command.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        command
    }

    fn tmux(&self, args: &[&str]) {
        let output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
    }

    fn screen(&self) -> String {
        let output = self.command(&["capture-pane", "-p", "-t", "t"]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits up to 10 s for the screen to satisfy `ready`; the screen.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "waited 10 s for {what}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for `n` prompts on the screen.
    fn prompts(&self, n: usize, prompt: &str) -> String {
        self.wait_for(&format!("{n} prompts"), |s| s.matches(prompt).count() >= n)
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]).output();
    }
}

fn has_tmux() -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: tmux is not installed (`cargo xtask test` installs it as root)");
    }
    found
}

#[test]
fn shell_keeps_a_working_terminal_in_tmux() {
    if !has_tmux() {
        return;
    }
    for caller in Caller::all() {
        let Some(fixture) = Fixture::new(caller, "") else { continue };
        let tmux = Tmux {
            fixture: &fixture,
            socket: format!("rootfs-it-{}-{caller:?}", std::process::id()),
        };
        let shell = format!(
            "{} rootfs shell {} --out {}",
            xtask_binary().display(),
            fixture.spec.display(),
            fixture.out.display()
        );
        tmux.tmux(&["new-session", "-d", "-x", "120", "-y", "40", "-s", "t", &shell]);
        let prompt = if caller.uid() == 0 { "#" } else { "$" };
        let prompt = format!("bash-{}{prompt}", bash_version());
        tmux.prompts(1, &prompt);

        // Line editing: the cursor moves back and a letter goes in there.
        tmux.type_text("echo wrld");
        tmux.keys(&["Left", "Left", "Left"]);
        tmux.type_text("o");
        tmux.keys(&["Enter"]);
        let screen = tmux.prompts(2, &prompt);
        assert!(screen.lines().any(|l| l == "world"), "{screen}");

        // vim draws the file and its empty lines, with the tree's terminfo.
        // (`-u NONE`: the default spec has vim without its runtime files,
        // so the `defaults.vim` it reads at start is not there.)
        tmux.type_text("vim -u NONE /etc/hosts");
        tmux.keys(&["Enter"]);
        let screen = tmux.wait_for("vim", |s| {
            s.contains("127.0.0.1 localhost") && s.lines().filter(|l| *l == "~").count() > 10
        });
        assert!(!screen.contains("E558") && !screen.contains("terminfo"), "{screen}");
        tmux.type_text(":q");
        tmux.keys(&["Enter"]);
        tmux.wait_for("vim to quit", |s| !s.contains("127.0.0.1 localhost") && s.contains(&prompt));

        // Ctrl-C stops the foreground program; the shell carries on.
        tmux.type_text("sleep 1000");
        tmux.keys(&["Enter"]);
        std::thread::sleep(Duration::from_millis(300));
        tmux.keys(&["C-c"]);
        tmux.type_text("echo status=$? alive");
        tmux.keys(&["Enter"]);
        let screen =
            tmux.wait_for("the shell after Ctrl-C", |s| s.lines().any(|l| l == "status=130 alive"));
        assert!(screen.contains(&prompt), "{screen}");

        tmux.type_text("exit");
        tmux.keys(&["Enter"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tmux.command(&["has-session", "-t", "t"]).output().unwrap().status.success() {
            assert!(Instant::now() < deadline, "the shell did not exit:\n{}", tmux.screen());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `run -- sleep` in a terminal: the command is not PID 1 of its namespace
/// (which gets no default action for Ctrl-C) but PID 2 under an init, in
/// the terminal's foreground, so Ctrl-C ends it and `run` says so with 130.
#[test]
fn ctrl_c_stops_run_of_sleep_with_status_130_in_tmux() {
    if !has_tmux() {
        return;
    }
    for caller in Caller::all() {
        let Some(fixture) = Fixture::new(caller, "") else { continue };
        let tmux = Tmux {
            fixture: &fixture,
            socket: format!("rootfs-it-run-{}-{caller:?}", std::process::id()),
        };
        let run = format!(
            "{} rootfs run {} --out {} -- sleep 4711; echo status=$?; sleep 60",
            xtask_binary().display(),
            fixture.spec.display(),
            fixture.out.display()
        );
        tmux.tmux(&["new-session", "-d", "-x", "120", "-y", "40", "-s", "t", &run]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !has_process("sleep 4711") {
            assert!(Instant::now() < deadline, "sleep did not start:\n{}", tmux.screen());
            std::thread::sleep(Duration::from_millis(50));
        }
        tmux.keys(&["C-c"]);
        tmux.wait_for("run to end with 130", |s| s.lines().any(|l| l.ends_with("status=130")));
        assert!(!has_process("sleep 4711"), "sleep outlived Ctrl-C:\n{}", tmux.screen());
    }
}

/// Types `shell` on the fixture's spec into an interactive bash in tmux,
/// as a user would (the tool is then not the session's leader); waits for
/// the shell inside (`echo ready-$((1+1))` shows `ready-2`), exits it, and
/// checks that the outer bash has the terminal back. Returns the screen.
fn shell_session(fixture: &Fixture, name: &str) -> String {
    let tmux = Tmux { fixture, socket: format!("rootfs-it-{}-{name}", std::process::id()) };
    let outer = "env PS1='outer> ' bash --norc --noprofile -i";
    tmux.tmux(&["new-session", "-d", "-x", "160", "-y", "40", "-s", "t", outer]);
    tmux.wait_for("the outer bash", |s| s.contains("outer>"));
    let shell = format!(
        "{} rootfs shell {} --out {}",
        xtask_binary().display(),
        fixture.spec.display(),
        fixture.out.display()
    );
    tmux.type_text(&shell);
    tmux.keys(&["Enter"]);
    tmux.type_text("echo ready-$((1+1))");
    tmux.keys(&["Enter"]);
    // Typed before the shell starts, its output may follow a prompt.
    tmux.wait_for("the shell", |s| s.lines().any(|l| l.ends_with("ready-2")));
    tmux.type_text("exit");
    tmux.keys(&["Enter"]);
    tmux.type_text("echo back-$((2+3))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the outer bash to read the terminal again", |s| s.lines().any(|l| l == "back-5"))
}

#[test]
fn shell_opens_bash_before_sh_or_the_one_the_spec_names_and_exits_cleanly() {
    if !has_tmux() {
        return;
    }
    let base = crate::support::project_root().join("rootfs-spec/base.toml");
    for caller in Caller::all() {
        let Some(fixture) = Fixture::new(caller, "") else { continue };
        // `/bin/sh` (dash on Debian) first, as the git preset lists it.
        let spec = |extra: &str| {
            let text = format!(
                "name = \"devenv\"\ninclude = [{:?}]\ncommands = [\"/bin/sh\", \"bash\", \"id\"]\n{extra}",
                base.display().to_string()
            );
            std::fs::write(&fixture.spec, text).unwrap();
        };
        spec("");
        let screen = shell_session(&fixture, &format!("bash-{caller:?}"));
        assert!(screen.contains("opening `/usr/bin/bash` (set [shell] shell"), "{screen}");
        assert!(screen.contains(&format!("bash-{}", bash_version())), "{screen}");
        assert!(!screen.contains("Cannot set tty process group"), "{screen}");

        spec("[shell]\nshell = \"/bin/sh\"\n");
        let screen = shell_session(&fixture, &format!("sh-{caller:?}"));
        assert!(screen.contains("opening `/bin/sh`, the spec's [shell] shell"), "{screen}");
        assert!(!screen.contains("bash-"), "{screen}");
        assert!(!screen.contains("Cannot set tty process group"), "{screen}");
    }
}

/// `5.2` for bash 5.2.15, as its default prompt shows it: the host's bash,
/// which the tree holds a copy of.
fn bash_version() -> String {
    let output = Command::new("bash")
        .args(["-c", "echo ${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
