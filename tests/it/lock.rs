//! The lock beside a spec: `--locked` passes on unchanged inputs, names every difference and writes nothing on a changed one, a plain build updates it and says so, and two machines' worth of the same inputs give the same bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rootfs::build::lock::{Lock, Mismatch};
use rootfs::build::{Options, build};

use crate::support::{add_dpkg, copy_sysroot, tree_listing, xtask_binary};

const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

/// A sysroot with bash and a dpkg database listing libc and bash the way
/// Debian's packages do, under `/lib` and `/bin` of a merged-`/usr` tree.
fn sysroot_at(root: &Path, libc_version: &str) {
    copy_sysroot(root);
    add_dpkg(
        root,
        &[
            ("bash", "5.2.15-2+b2", &["/bin", "/bin/bash"]),
            ("libc6", libc_version, &["/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu/libc.so.6"]),
        ],
    );
}

fn spec_in(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let spec = dir.join("s.toml");
    std::fs::write(&spec, text).unwrap();
    spec
}

/// A spec of bash in `dir/repo`, built once from a sysroot in `dir`: the
/// options that built it and its lock.
fn built_with_lock(dir: &Path) -> (Options, PathBuf) {
    let sysroot = dir.join("sysroot");
    sysroot_at(&sysroot, "2.36-1");
    let spec = spec_in(&dir.join("repo"), "name = \"s\"\ncommands = [\"bash\"]\n");
    let lock = spec.with_extension("lock");
    let mut options = Options::new(&spec, dir.join("out"));
    options.sysroot = sysroot;
    build(&options).unwrap();
    (options, lock)
}

fn cli_build(spec: &Path, out: &Path, sysroot: &Path, extra: &[&str]) -> Output {
    Command::new(xtask_binary())
        .args(["rootfs", "build"])
        .arg(spec)
        .arg("--out")
        .arg(out)
        .arg("--sysroot")
        .arg(sysroot)
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Everything a `--locked` refusal must leave as it was.
fn snapshot(out: &Path, lock: &Path) -> (Vec<String>, Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        tree_listing(out),
        std::fs::read(lock).unwrap(),
        std::fs::read(rootfs::build::manifest::path_for(out)).unwrap(),
        std::fs::read(rootfs::build::sbom::path_for(out)).unwrap(),
    )
}

#[test]
fn a_library_changed_by_one_byte_fails_locked_and_a_plain_build_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    sysroot_at(&sysroot, "2.36-9+deb12u7");
    let spec = spec_in(&tmp.path().join("repo"), "name = \"s\"\ncommands = [\"bash\"]\n");
    let lock = spec.with_extension("lock");
    let out = tmp.path().join("out/s");

    let first = cli_build(&spec, &out, &sysroot, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("wrote the lock"), "{}", stderr(&first));
    let locked = Lock::parse(&std::fs::read(&lock).unwrap()).unwrap();
    // dpkg lists /lib/x86_64-linux-gnu/libc.so.6; the tree holds it under /usr.
    let libc = &locked.files[Path::new(LIBC)];
    assert_eq!(libc.package.as_deref(), Some("libc6"));
    assert_eq!(libc.version.as_deref(), Some("2.36-9+deb12u7"));
    assert_eq!(locked.files[Path::new("/usr/bin/bash")].package.as_deref(), Some("bash"));
    assert_eq!(locked.commands["bash"].program, Path::new("/usr/bin/bash"));

    let again = cli_build(&spec, &out, &sysroot, &["--locked"]);
    assert!(again.status.success(), "{}", stderr(&again));

    let before = snapshot(&out, &lock);
    let mut file = std::fs::OpenOptions::new().append(true).open(sysroot.join(&LIBC[1..])).unwrap();
    file.write_all(b"\0").unwrap();
    drop(file);
    let refused = cli_build(&spec, &out, &sysroot, &["--locked"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let text = stderr(&refused);
    assert!(text.contains(&format!("  changed sha256: {LIBC} (locked ")), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("  ")).count(), 1, "{text}");
    assert!(snapshot(&out, &lock) == before, "--locked wrote something");

    let updated = cli_build(&spec, &out, &sysroot, &[]);
    assert!(updated.status.success(), "{}", stderr(&updated));
    let text = stderr(&updated);
    assert!(text.contains("updated the lock"), "{text}");
    assert!(text.contains(&format!("changed sha256: {LIBC}")), "{text}");
    let relocked = Lock::parse(&std::fs::read(&lock).unwrap()).unwrap();
    assert_ne!(relocked.files[Path::new(LIBC)].sha256, libc.sha256);
    assert_eq!(relocked.files[Path::new(LIBC)].size, libc.size + 1);
    let passes = cli_build(&spec, &out, &sysroot, &["--locked"]);
    assert!(passes.status.success(), "{}", stderr(&passes));
}

#[test]
fn new_and_gone_inputs_and_package_versions_are_each_named() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    sysroot_at(&sysroot, "2.36-1");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("motd"), b"hello\n").unwrap();
    std::fs::write(repo.join("issue"), b"welcome\n").unwrap();
    let spec = spec_in(
        &repo,
        "name = \"s\"\ncommands = [\"bash\"]\n[[files]]\nsrc = \"motd\"\ndest = \"/etc/motd\"\n",
    );
    let out = tmp.path().join("out/s");
    let mut options = Options::new(&spec, out.parent().unwrap());
    options.out = Some(out.clone());
    options.sysroot = sysroot.clone();
    build(&options).unwrap();
    let before = snapshot(&out, &spec.with_extension("lock"));

    add_dpkg(
        &sysroot,
        &[
            ("bash", "5.2.15-2+b2", &["/bin/bash"]),
            ("libc6", "2.36-2", &["/lib/x86_64-linux-gnu/libc.so.6"]),
        ],
    );
    std::fs::write(
        &spec,
        "name = \"s\"\ncommands = [\"bash\"]\n[[files]]\nsrc = \"issue\"\ndest = \"/etc/issue\"\n",
    )
    .unwrap();
    options.locked = true;
    let err = build(&options).unwrap_err();
    assert_eq!(rootfs::exit_code(&err), 1);
    let mismatch = err.downcast_ref::<Mismatch>().expect("a lock mismatch");
    let shown: Vec<String> = mismatch.changes.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        shown,
        [
            "new dependency: /etc/issue (a [[files]] entry)",
            "file gone: /etc/motd (a [[files]] entry)",
            "package version changed: libc6 2.36-1 -> 2.36-2",
        ]
    );
    assert!(snapshot(&out, &spec.with_extension("lock")) == before, "--locked wrote something");
}

#[test]
fn two_copies_of_a_sysroot_give_byte_identical_locks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut locks = Vec::new();
    for place in ["a", "b/deeper/still"] {
        let base = tmp.path().join(place);
        let sysroot = base.join("sysroot");
        sysroot_at(&sysroot, "2.36-9+deb12u7");
        let spec = spec_in(&base.join("repo"), "name = \"s\"\ncommands = [\"bash\"]\n");
        let mut options = Options::new(&spec, base.join("out"));
        options.sysroot = sysroot;
        build(&options).unwrap();
        locks.push(std::fs::read_to_string(spec.with_extension("lock")).unwrap());
    }
    assert_eq!(locks[0], locks[1]);
    let host = tmp.path().to_str().unwrap();
    assert!(!locks[0].contains(host), "the lock names a host path:\n{}", locks[0]);
}

#[test]
fn an_unchanged_build_stays_a_no_op_and_a_foreign_lock_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut options, lock) = built_with_lock(tmp.path());
    options.locked = true;
    let again = build(&options).unwrap();
    assert!(again.up_to_date, "{:?}", again.reason);
    assert!(again.lock.is_none());

    // A lock removed is written again, by a build that says why.
    options.locked = false;
    std::fs::remove_file(&lock).unwrap();
    let rebuilt = build(&options).unwrap();
    assert!(
        rebuilt.reason.as_deref().is_some_and(|r| r.contains("is missing")),
        "{:?}",
        rebuilt.reason
    );
    assert!(lock.is_file());

    std::fs::write(&lock, b"my notes\n").unwrap();
    let err = build(&options).unwrap_err();
    assert_eq!(rootfs::exit_code(&err), 2, "{}", rootfs::render_error(&err));
    assert_eq!(std::fs::read(&lock).unwrap(), b"my notes\n");
}

/// A lock edited by hand (a digest cut short, a merge's conflict marker)
/// is refused with where and why it does not parse, and kept as it is.
#[test]
fn a_lock_that_does_not_parse_is_refused_saying_where() {
    let tmp = tempfile::tempdir().unwrap();
    let (options, lock) = built_with_lock(tmp.path());
    let text = std::fs::read_to_string(&lock).unwrap();
    let (line, digest) = text
        .lines()
        .enumerate()
        .find_map(|(n, l)| Some((n + 1, l.strip_prefix("sha256 = \"")?.trim_end_matches('"'))))
        .expect("a file's sha256 in the lock");
    let edited = text.replacen(digest, "abc", 1);
    std::fs::write(&lock, &edited).unwrap();
    let err = build(&options).unwrap_err();
    let shown = rootfs::render_error(&err);
    assert_eq!(rootfs::exit_code(&err), 2, "{shown}");
    assert!(shown.contains(&format!("at line {line},")), "{shown}");
    assert!(shown.contains("invalid sha256 `abc`"), "{shown}");
    assert!(shown.contains("fix it, or remove it and build again"), "{shown}");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), edited);

    let conflicted = format!("<<<<<<< HEAD\n{text}");
    std::fs::write(&lock, &conflicted).unwrap();
    let shown = rootfs::render_error(&build(&options).unwrap_err());
    assert!(shown.contains("at line 1,"), "{shown}");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), conflicted);
}

/// A no-op build judges the lock by the state the stamp recorded, as it
/// judges every input, and hashes it only when that state moved: a lock
/// rewritten in place with its size and mtime kept goes unnoticed (as an
/// input does), a lock touched with the same bytes is still fresh, and new
/// bytes with a new mtime rebuild.
#[test]
fn a_no_op_build_reads_the_lock_only_when_its_state_moved() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut options, lock) = built_with_lock(tmp.path());
    // Once with the lock just written, once with the lock kept as it was.
    for force in [false, true] {
        options.force = force;
        build(&options).unwrap();
        options.force = false;
        let original = std::fs::read(&lock).unwrap();
        let mtime = std::fs::metadata(&lock).unwrap().modified().unwrap();
        let mut edited = original.clone();
        let at = edited.iter().position(u8::is_ascii_lowercase).unwrap();
        edited[at] = edited[at].to_ascii_uppercase();
        let rewrite = |bytes: &[u8], time| {
            let mut file = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
            file.write_all(bytes).unwrap();
            file.set_modified(time).unwrap();
        };
        rewrite(&edited, mtime);
        let unread = build(&options).unwrap();
        assert!(unread.up_to_date, "the lock was read: {:?}", unread.reason);
        rewrite(&original, std::time::SystemTime::now() + std::time::Duration::from_secs(5));
        let touched = build(&options).unwrap();
        assert!(touched.up_to_date, "a touched lock: {:?}", touched.reason);
    }
    std::fs::OpenOptions::new().append(true).open(&lock).unwrap().write_all(b"# note\n").unwrap();
    let rebuilt = build(&options).unwrap();
    assert!(
        rebuilt.reason.as_deref().is_some_and(|r| r.contains("changed")),
        "{:?}",
        rebuilt.reason
    );
}

#[test]
fn a_tree_is_pinned_by_one_digest_and_a_locked_refusal_names_its_changed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    sysroot_at(&sysroot, "2.36-9+deb12u7");
    let data = sysroot.join("usr/share/data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    for name in ["a", "b", "sub/c"] {
        std::fs::write(data.join(name), name).unwrap();
    }
    let text = "name = \"s\"\ncommands = [\"bash\"]\n[[trees]]\nsrc = \"/usr/share/data\"\n";
    let spec = spec_in(&tmp.path().join("repo"), text);
    let lock = spec.with_extension("lock");
    let out = tmp.path().join("out/s");
    let first = cli_build(&spec, &out, &sysroot, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let locked = Lock::parse(&std::fs::read(&lock).unwrap()).unwrap();
    // One digest for the tree, no line per file of it.
    assert_eq!(locked.trees.keys().collect::<Vec<_>>(), [Path::new("/usr/share/data")]);
    assert!(locked.files.keys().all(|p| !p.starts_with("/usr/share/data")), "{:?}", locked.files);
    assert!(locked.files.contains_key(Path::new(LIBC)));

    std::fs::write(data.join("a"), "edited").unwrap();
    std::fs::remove_file(data.join("b")).unwrap();
    std::fs::write(data.join("sub/d"), "d").unwrap();
    let before = snapshot(&out, &lock);
    let refused = cli_build(&spec, &out, &sysroot, &["--locked"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let text = stderr(&refused);
    assert!(text.contains("  changed tree: /usr/share/data (locked "), "{text}");
    let detail: Vec<&str> = text.lines().filter(|l| l.starts_with("      ")).collect();
    let sha = |bytes: &[u8]| rootfs::fsutil::sha256_hex(bytes)[..12].to_string();
    assert_eq!(
        detail,
        [
            format!("      changed: a (was {}, now {})", sha(b"a"), sha(b"edited")).as_str(),
            "      gone: b",
            "      new: sub/d",
        ],
        "{text}"
    );
    assert!(snapshot(&out, &lock) == before, "--locked wrote something");
}

/// One change in many inputs (a package upgrade changes hundreds) is a
/// count by kind and ten lines on the command line, then how many more;
/// `--verbose` lists every one.
#[test]
fn a_long_lock_update_prints_ten_lines_and_verbose_prints_all() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    sysroot_at(&sysroot, "2.36-1");
    let repo = tmp.path().join("repo");
    let mut text = String::from("name = \"s\"\ncommands = [\"bash\"]\n");
    for i in 0..14 {
        text.push_str(&format!("[[files]]\nsrc = \"f{i:02}\"\ndest = \"/etc/f{i:02}\"\n"));
    }
    let spec = spec_in(&repo, &text);
    let write_all = |content: &str| {
        for i in 0..14 {
            std::fs::write(repo.join(format!("f{i:02}")), format!("{content} {i}\n")).unwrap();
        }
    };
    write_all("one");
    let out = tmp.path().join("out/s");
    let first = cli_build(&spec, &out, &sysroot, &[]);
    assert!(first.status.success(), "{}", stderr(&first));

    write_all("two");
    let short = cli_build(&spec, &out, &sysroot, &[]);
    let text = stderr(&short);
    assert!(short.status.success(), "{text}");
    let lines: Vec<&str> =
        text.lines().skip_while(|l| !l.starts_with("updated the lock")).collect();
    assert!(lines[0].ends_with("(14 changes: 14 changed):"), "{text}");
    let listed: Vec<&str> =
        lines[1..].iter().copied().take_while(|l| l.starts_with("  ")).collect();
    assert_eq!(listed.len(), 11, "{text}");
    assert!(listed[..10].iter().all(|l| l.starts_with("  changed sha256: /etc/f")), "{text}");
    assert_eq!(listed[10], "  ... 4 more, see `--verbose`", "{text}");

    write_all("three");
    let long = cli_build(&spec, &out, &sysroot, &["--verbose"]);
    let text = stderr(&long);
    assert!(long.status.success(), "{text}");
    let changed = text.lines().filter(|l| l.starts_with("  changed sha256: /etc/f")).count();
    assert_eq!(changed, 14, "{text}");
    assert!(!text.contains("more, see"), "{text}");
}

/// Owners come from the owner cache while dpkg's status file is in the
/// state they were found with, and from the packages' lists again once it
/// is not: a list edited behind dpkg's back (its status untouched) is not
/// seen, as the cache's contract with dpkg says; a status file rewritten,
/// as dpkg rewrites it for every package change, is.
#[test]
fn owners_are_remembered_until_dpkg_status_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (options, lock) = built_with_lock(tmp.path());
    let out = rootfs::build::out_dir(&options, &rootfs::spec::load(&options.spec).unwrap());
    let cache = rootfs::build::owner_cache::path_for(&out);
    assert!(cache.is_file(), "the first build remembers the owners it found");
    let owner_of_libc = || {
        let locked = Lock::parse(&std::fs::read(&lock).unwrap()).unwrap();
        locked.files[Path::new(LIBC)].package.clone()
    };
    assert_eq!(owner_of_libc().as_deref(), Some("libc6"));
    let cold = || {
        let side = rootfs::fsutil::side_dir(&out);
        std::fs::remove_dir_all(&out).unwrap();
        for name in ["s.manifest.json", "s.spdx.json", "s.stamp.json"] {
            std::fs::remove_file(side.join(name)).unwrap();
        }
        build(&options).unwrap();
    };
    let sysroot = &options.sysroot;
    let list = sysroot.join("var/lib/dpkg/info/libc6:amd64.list");
    std::fs::write(&list, "/lib/x86_64-linux-gnu\n").unwrap();
    cold();
    assert_eq!(owner_of_libc().as_deref(), Some("libc6"), "remembered: the lists were not read");
    let status = sysroot.join("var/lib/dpkg/status");
    let text = std::fs::read(&status).unwrap();
    std::fs::remove_file(&status).unwrap();
    std::fs::write(&status, text).unwrap();
    cold();
    assert_eq!(owner_of_libc(), None, "the status changed: the lists were read again");
}
