//! Output paths are ours or untouched: every refusal leaves the user's files byte for byte, exits 2, and writes nothing; an interrupted swap leaves a manifest that still describes the tree in place.

use std::path::{Path, PathBuf};
use std::process::Command;

use rootfs::build::{Beside, Options, build};

use crate::support::{tree_listing, xtask_binary};

const SPEC: &str = "name = \"t\"\ncommands = [\"cat\"]\n";

fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn options(spec: &Path, out: &Path) -> Options {
    let mut options = Options::new(spec, out.parent().unwrap());
    options.out = Some(out.to_path_buf());
    options
}

/// Every path under `dir` with its content: equal snapshots mean nothing
/// was written, removed or changed there.
fn snapshot(dir: &Path) -> Vec<String> {
    tree_listing(dir)
}

/// Runs `cargo xtask rootfs build` with `args` from `cwd`; exit status and
/// standard error.
fn xtask_build(cwd: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(xtask_binary())
        .current_dir(cwd)
        .args(["rootfs", "build"])
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A refusal by the command line: exit 2, the path and the reason named,
/// and the folder holding the output exactly as it was.
fn assert_refused(cwd: &Path, args: &[&str], watched: &Path, reason: &str) {
    let before = snapshot(watched);
    let (code, stderr) = xtask_build(cwd, args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert!(stderr.contains("refusing to replace"), "{args:?}: {stderr}");
    assert!(stderr.contains(reason), "{args:?}: expected {reason:?} in {stderr}");
    assert_eq!(snapshot(watched), before, "{args:?} changed `{}`", watched.display());
}

#[test]
fn a_folder_of_the_users_files_is_refused_even_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = write_spec(d, "spec.toml", SPEC);
    let work = d.join("work");
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::write(work.join("notes.txt"), "my notes\n").unwrap();
    std::fs::write(work.join("src/main.c"), "int main;\n").unwrap();
    let (spec, out) = (spec.to_str().unwrap(), work.to_str().unwrap());
    assert_refused(d, &[spec, "--out", out], d, "did not write");
    assert_refused(d, &[spec, "--out", out, "--force"], d, "did not write");
    assert_eq!(std::fs::read_to_string(work.join("notes.txt")).unwrap(), "my notes\n");
}

#[test]
fn a_file_a_symlink_and_the_manifests_place_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = write_spec(d, "spec.toml", SPEC);
    let spec = spec.to_str().unwrap();
    let outs = d.join("outs");
    std::fs::create_dir(&outs).unwrap();
    std::fs::write(outs.join("file"), "a file of mine\n").unwrap();
    std::fs::create_dir(d.join("elsewhere")).unwrap();
    std::fs::write(d.join("elsewhere/keep"), "precious\n").unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), outs.join("link")).unwrap();
    let file = outs.join("file");
    assert_refused(d, &[spec, "--out", file.to_str().unwrap()], d, "it is a file");
    let link = outs.join("link");
    assert_refused(d, &[spec, "--out", link.to_str().unwrap()], d, "it is a symlink");
    // The tree's own place is free, but the manifest's is the user's.
    let new = outs.join("new");
    let manifest = rootfs::build::manifest::path_for(&new);
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::write(&manifest, "{\"mine\": true}\n").unwrap();
    assert_refused(d, &[spec, "--out", new.to_str().unwrap()], d, "not a manifest of this tool");
    std::fs::write(rootfs::build::digest_cache::path_for(&new), "my json\n").unwrap();
    std::fs::remove_file(&manifest).unwrap();
    assert_refused(d, &[spec, "--out", new.to_str().unwrap()], d, "not a digest cache");
}

#[test]
fn the_root_the_sysroot_and_the_current_directorys_parents_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = write_spec(d, "spec.toml", SPEC);
    let spec = spec.to_str().unwrap();
    let cwd = d.join("project/sub");
    std::fs::create_dir_all(&cwd).unwrap();
    let project = d.join("project");
    assert_refused(&cwd, &[spec, "--out", project.to_str().unwrap()], d, "current directory");
    assert_refused(&cwd, &[spec, "--out", "."], d, "current directory");
    assert_refused(&cwd, &[spec, "--out", ".."], d, "current directory");
    let sysroot = d.join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let args = [spec, "--out", sysroot.to_str().unwrap(), "--sysroot", sysroot.to_str().unwrap()];
    assert_refused(d, &args, d, "the sysroot");
    // `/` itself: refused before anything else is looked at.
    let mut at_root = Options::new(spec, d.join("outs"));
    at_root.out = Some(PathBuf::from("/"));
    let err = build(&at_root).unwrap_err();
    assert_eq!(rootfs::exit_code(&err), 2);
    assert!(rootfs::render_error(&err).contains("root of the filesystem"));
}

#[test]
fn our_own_output_is_replaced_but_not_once_the_user_added_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = write_spec(d, "spec.toml", SPEC);
    let out = d.join("outs/t");
    // An empty folder is a fine place for a first build.
    std::fs::create_dir_all(&out).unwrap();
    build(&options(&spec, &out)).unwrap();
    let mut forced = options(&spec, &out);
    forced.force = true;
    assert!(!build(&forced).unwrap().up_to_date, "our own output is rebuilt with --force");
    // An edit of a file we wrote is a change; a new file is the user's.
    std::fs::write(out.join("home/todo"), "buy milk\n").unwrap();
    let before = snapshot(&d.join("outs"));
    let err = build(&forced).unwrap_err();
    assert_eq!(rootfs::exit_code(&err), 2, "{}", rootfs::render_error(&err));
    assert!(rootfs::render_error(&err).contains("`home/todo`"), "{}", rootfs::render_error(&err));
    assert_eq!(snapshot(&d.join("outs")), before);
    assert_eq!(std::fs::read_to_string(out.join("home/todo")).unwrap(), "buy milk\n");
}

/// The state a build interrupted between swapping its tree in and renaming
/// its manifest and stamp into place leaves: the new tree, the old manifest
/// and stamp, the new ones pending.
#[test]
fn after_an_interrupted_swap_the_manifest_in_use_describes_the_tree_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let old_spec = write_spec(d, "old.toml", SPEC);
    let new_spec = write_spec(d, "new.toml", "name = \"t\"\ncommands = [\"cat\", \"ls\"]\n");
    let out = d.join("outs/t");
    let next = d.join("outs/next");
    build(&options(&old_spec, &out)).unwrap();
    build(&options(&new_spec, &next)).unwrap();
    let (at, other) = (Beside::of(&out), Beside::of(&next));
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        &next,
        rustix::fs::CWD,
        &out,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .unwrap();
    let pending = |p: &Path| rootfs::fsutil::sibling(p, ".pending");
    std::fs::rename(&other.manifest, pending(&at.manifest)).unwrap();
    std::fs::rename(&other.stamp, pending(&at.stamp)).unwrap();
    let manifest = at.current_manifest().unwrap();
    assert!(manifest.commands.iter().any(|c| c.name == "ls"), "answered from the old manifest");
    // A build notices and rebuilds over it: the tree is its own output.
    let rebuilt = build(&options(&new_spec, &out)).unwrap();
    assert!(!rebuilt.up_to_date);
    assert!(!pending(&at.manifest).exists() && !pending(&at.stamp).exists());
    // With no manifest that describes it, `why` says so instead of guessing.
    std::fs::remove_dir_all(&next).unwrap();
    std::fs::rename(&out, &next).unwrap();
    std::fs::create_dir(&out).unwrap();
    let err = at.current_manifest().unwrap_err();
    assert!(format!("{err:#}").contains("does not describe the tree"), "{err:#}");
}

/// Runs the tool with `args` under `umask`, from `cwd`; exit status and
/// standard error.
fn xtask_with_umask(cwd: &Path, umask: u32, args: &[&str]) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(xtask_binary());
    command.current_dir(cwd).arg("rootfs").args(args);
    // SAFETY: umask(2) is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    let out = command.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The names in `dir`, sorted, with each one's permission bits.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut names: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.path().symlink_metadata().unwrap().permissions().mode() & 0o7777;
            (e.file_name().into_string().unwrap(), mode)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn files_beside_a_tree_go_in_one_hidden_folder_with_the_users_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = tmp.path().join("specs");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let spec = write_spec(&specs, "spec.toml", SPEC);
    let spec = spec.to_str().unwrap();
    let tree = home.join("tree");
    let tree_arg = tree.to_str().unwrap();
    for (umask, file_mode) in [(0o022, 0o644), (0o027, 0o640)] {
        // A rebuild from scratch each time, so every file is written anew
        // (an unchanged lock, or cache, is left as it is).
        let _ = std::fs::remove_file(specs.join("spec.lock"));
        for cache in ["digests.json", "licenses.json", "owners.json", "sha1.json"] {
            let _ = std::fs::remove_file(home.join(".rootfs").join(cache));
        }
        let (code, stderr) =
            xtask_with_umask(tmp.path(), umask, &["build", spec, "--out", tree_arg, "--force"]);
        assert_eq!(code, 0, "{stderr}");
        let fragment = specs.join("spec.traced.toml");
        let _ = std::fs::remove_file(&fragment);
        let write = fragment.to_str().unwrap();
        let args =
            ["trace", spec, "--out", tree_arg, "--write", write, "--", "cat", "/etc/hostname"];
        let (code, stderr) = xtask_with_umask(tmp.path(), umask, &args);
        assert_eq!(code, 0, "{stderr}");
        // `--out ~/tree` adds the tree and one hidden folder to `~`.
        let names: Vec<String> = modes(&home).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [".rootfs", "tree"]);
        let expected: Vec<(String, u32)> = [
            "digests.json",
            "licenses.json",
            "owners.json",
            "sha1.json",
            "tree.manifest.json",
            "tree.spdx.json",
            "tree.stamp.json",
        ]
        .iter()
        .map(|n| (n.to_string(), file_mode))
        .collect();
        assert_eq!(modes(&home.join(".rootfs")), expected, "umask {umask:o}");
        let beside_spec = modes(&specs);
        let mode_of = |name: &str| beside_spec.iter().find(|(n, _)| n == name).map(|(_, m)| *m);
        assert_eq!(mode_of("spec.lock"), Some(file_mode), "umask {umask:o}: {beside_spec:?}");
        assert_eq!(mode_of("spec.traced.toml"), Some(file_mode), "umask {umask:o}");
    }
}

#[test]
fn a_tree_of_the_earlier_layout_is_still_ours_and_its_side_files_move_in() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let spec = write_spec(d, "spec.toml", SPEC);
    let out = d.join("outs/t");
    build(&options(&spec, &out)).unwrap();
    // What an earlier version left: the files beside the tree, no folder.
    let outs = d.join("outs");
    let side = rootfs::fsutil::side_dir(&out);
    for (now, was) in [
        ("t.manifest.json", "t.manifest.json"),
        ("t.spdx.json", "t.spdx.json"),
        ("t.stamp.json", "t.stamp.json"),
        ("digests.json", ".rootfs-digests.json"),
        ("sha1.json", ".rootfs-sha1.json"),
    ] {
        std::fs::rename(side.join(now), outs.join(was)).unwrap();
    }
    // The license and owner caches came after that layout.
    std::fs::remove_file(side.join("licenses.json")).unwrap();
    std::fs::remove_file(side.join("owners.json")).unwrap();
    std::fs::remove_dir(&side).unwrap();
    std::fs::write(outs.join("notes.txt"), "mine\n").unwrap();
    let built =
        build(&options(&spec, &out)).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
    assert!(!built.up_to_date);
    let mut names: Vec<String> = std::fs::read_dir(&outs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".rootfs", "notes.txt", "t"]);
    assert!(build(&options(&spec, &out)).unwrap().up_to_date);
}
