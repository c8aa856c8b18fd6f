//! The spec fragment `rootfs trace --write` writes: the findings as spec entries, sorted, each with the checks that needed it in a comment, so a rerun on an unchanged host writes the same bytes.

use std::fmt::Write;

use super::{AccountKind, Finding, Findings, Group};

/// The first line of every fragment: how a later run knows the file is its
/// own to replace.
pub const HEADER: &str = "# Written by `cargo xtask rootfs trace`";

/// The fragment for `findings` of the spec named `name`.
pub fn render(findings: &Findings, name: &str, file_name: &str) -> String {
    let mut out = String::new();
    header(&mut out, findings, name, file_name);
    let of = |group: Group| findings.missing.values().filter(move |f| f.group == group);
    for group in [Group::Commands, Group::Libraries, Group::Dirs] {
        list(&mut out, group.key(), of(group).collect());
    }
    helpers(&mut out, of(Group::Commands).collect());
    for item in of(Group::Files) {
        let src = quoted(&item.path.to_string_lossy());
        let _ = writeln!(out, "\n# {}\n[[files]]\nsrc = {src}", joined(&item.needed_by));
    }
    for item in of(Group::Symlinks) {
        symlink(&mut out, item);
    }
    for account in findings.accounts.values() {
        self::account(&mut out, account);
    }
    for item in of(Group::Trees) {
        let src = quoted(&item.path.to_string_lossy());
        let _ = writeln!(out, "\n# {}\n[[trees]]\nsrc = {src}", joined(&item.needed_by));
    }
    shell_binds(&mut out, of(Group::ShellBinds).collect());
    out
}

/// What the file is and how to use it, then the folders noted but never
/// proposed.
fn header(out: &mut String, findings: &Findings, name: &str, file_name: &str) {
    let _ = write!(
        out,
        "{HEADER} for `{name}`: what its checks used on the sysroot that the\n\
         # rest of the spec does not provide. Include it from the spec (include =\n\
         # [\"{file_name}\"]) and build again; a trace that rewrites it keeps what only\n\
         # it provides and the checks still use, so an unchanged host gives the same\n\
         # bytes. Once the rest of the spec provides everything, it holds no entries.\n"
    );
    if !findings.noted.is_empty() {
        out.push_str("#\n# Noted, never proposed (the sandbox's own /proc, /sys, /dev, /tmp and /run,\n# and the sysroot's users' own files under /root and /home):\n");
        for (folder, checks) in &findings.noted_folders() {
            let _ = writeln!(out, "#   {folder} ({})", joined(checks));
        }
    }
}

/// A top-level list (`commands`, `libraries`, `dirs`), each path with the
/// checks that needed it.
fn list(out: &mut String, key: &str, items: Vec<&Finding>) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{key} = [");
    for item in items {
        let path = quoted(&item.path.to_string_lossy());
        let _ = writeln!(out, "  {path}, # {}", joined(&item.needed_by));
    }
    out.push_str("]\n");
}

/// Programs found because another one ran them: they are needed by the
/// checks that ran them, not probed on their own.
fn helpers(out: &mut String, helpers: Vec<&Finding>) {
    if helpers.is_empty() {
        return;
    }
    out.push_str(
        "\n[smoke]\n# Run by other programs; the checks that need them test them.\nskip = [\n",
    );
    for item in helpers {
        let _ = writeln!(out, "  {},", quoted(&item.path.to_string_lossy()));
    }
    out.push_str("]\n");
}

fn symlink(out: &mut String, item: &Finding) {
    let target = item.target.as_ref().map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
    let _ = writeln!(
        out,
        "\n# {}\n[[symlinks]]\npath = {}\ntarget = {}",
        joined(&item.needed_by),
        quoted(&item.path.to_string_lossy()),
        quoted(&target)
    );
}

/// A `[[users]]` or `[[groups]]` entry from the sysroot's account line.
fn account(out: &mut String, account: &super::Account) {
    let _ = writeln!(out, "\n# {}\n[[{}]]", joined(&account.needed_by), account.kind.table());
    let f = &account.fields;
    let _ = match account.kind {
        AccountKind::User => writeln!(
            out,
            "name = {}\nuid = {}\ngid = {}\nhome = {}\nshell = {}\ngecos = {}",
            quoted(&f[0]),
            f[2],
            f[3],
            quoted(&f[5]),
            quoted(&f[6]),
            quoted(&f[4])
        ),
        AccountKind::Group => writeln!(out, "name = {}\ngid = {}", quoted(&f[0]), f[2]),
    };
}

/// This machine's own files, as `[shell]` binds.
fn shell_binds(out: &mut String, binds: Vec<&Finding>) {
    if binds.is_empty() {
        return;
    }
    out.push_str(
        "\n[shell]\n# This machine's own files: `shell` and `run` bind them, read-only, rather than\n# copy them into a tree that other machines may use.\nbinds = [\n",
    );
    for item in binds {
        let bind = format!("{}:ro", item.path.to_string_lossy());
        let _ = writeln!(out, "  {}, # {}", quoted(&bind), joined(&item.needed_by));
    }
    out.push_str("]\n");
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Check names on one short comment line.
fn joined(checks: &std::collections::BTreeSet<String>) -> String {
    super::needed_by(checks)
}
