//! The whole host: a spec naming every dynamically linked program in `/usr/bin` and `/usr/sbin` is traced, completed with the fragment it writes, and then behaves as on the host for all but at most five.

use std::path::PathBuf;

use crate::support::rootfs_cli;

/// Regular files (symlinks not followed) with a `PT_INTERP`, sorted.
fn dynamic_programs(dirs: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let regular = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
            if regular
                && let Ok(rootfs::resolve::elf::FileKind::Elf(object)) =
                    rootfs::resolve::elf::read(&path)
                && object.interp.is_some()
                && object.malformed.is_none()
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_host_program_behaves_as_on_the_host_after_one_trace() {
    if !crate::support::can_enter() {
        return;
    }
    let programs = dynamic_programs(&["/usr/bin", "/usr/sbin"]);
    assert!(programs.len() > 100, "only {} programs", programs.len());
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("whole-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("whole.toml");
    let list: String = programs.iter().map(|p| format!("  \"{}\",\n", p.display())).collect();
    // A probe that hangs (a program that waits for a terminal) costs its
    // timeout three times: keep it short.
    let text = format!(
        "name = \"whole\"\ninclude = [\"whole.traced.toml\"]\ncommands = [\n{list}]\n[smoke]\ntimeout = 5\n"
    );
    std::fs::write(&spec, text).unwrap();
    let fragment = dir.join("whole.traced.toml");
    std::fs::write(&fragment, format!("{}\n", rootfs::run::findings::HEADER)).unwrap();
    let out = dir.join("out/whole");
    let (code, text) = rootfs_cli("trace", &spec, &out, &["--write", fragment.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let (_, text) = rootfs_cli("smoke", &spec, &out, &[]);
    let summary = text.lines().rev().find(|l| l.ends_with(" failed")).unwrap_or("").to_string();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.starts_with(' ')
                && (l.contains(" FAIL ") || l.contains(" TIMEOUT ") || l.contains(" ERROR "))
        })
        .collect();
    eprintln!("{} programs: {summary}", programs.len());
    // A smoke run that stopped before its table is no pass.
    assert!(summary.ends_with(" failed"), "no report from smoke:\n{text}");
    assert!(failed.len() <= 5, "{} programs differ from the host:\n{text}", failed.len());
    let _ = std::fs::remove_dir_all(&dir);
}
