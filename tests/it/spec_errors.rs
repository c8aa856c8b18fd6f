//! Broken specs: each gets its exact error message and exit status, and the previous output survives every failed build untouched.
//!
//! Every case is `tests/data/bad-specs/<case>.toml`, with the report a user
//! sees in `<case>.stderr`. Run with `UPDATE_EXPECT=1` to write the reports
//! as they are now instead of comparing, then read the diff.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rootfs::build::{Options, build};
use sha2::{Digest, Sha256};

/// The broken specs, relative to the package root (the working directory of
/// integration tests), so that the paths in the messages are stable.
const DIR: &str = "tests/data/bad-specs";

/// Each case and its exit status: 2 for a mistake in the spec, 1 for
/// something the host does not have.
const CASES: &[(&str, u8)] = &[
    ("bad-cpu-level", 2),
    ("bad-mode", 2),
    ("command-absolute-missing", 1),
    ("command-not-found", 1),
    ("dest-climbs-out", 2),
    ("dest-collides-with-ld-cache", 2),
    ("dest-collides-with-library", 2),
    ("dest-collides-with-passwd", 2),
    ("dest-inside-ld-cache", 2),
    ("dest-is-a-directory", 2),
    ("dest-under-a-file", 2),
    ("dir-collides-with-file", 2),
    ("dir-unknown-key", 2),
    ("dir-wrong-type", 2),
    ("dlopen-unknown", 2),
    ("duplicate-uid", 2),
    ("duplicate-user", 2),
    ("empty-command", 2),
    ("file-with-both-sources", 2),
    ("file-without-dest", 2),
    ("file-without-source", 2),
    ("group-gid-zero", 2),
    ("image-bad-env-name", 2),
    ("image-bad-port", 2),
    ("image-bad-stop-signal", 2),
    ("image-bad-tag", 2),
    ("image-empty-entrypoint", 2),
    ("image-relative-workdir", 2),
    ("image-unknown-key", 2),
    ("image-user-wrong-type", 2),
    ("image-zero-layers", 2),
    ("include-broken", 2),
    ("include-loop", 2),
    ("include-missing", 2),
    ("invalid-account-name", 2),
    ("invalid-group-member", 2),
    ("invalid-name", 2),
    ("library-not-found", 1),
    ("missing-name", 2),
    ("mode-not-a-string", 2),
    ("passwd-through-symlink", 2),
    ("relative-command-path", 2),
    ("relative-dest", 2),
    ("root-not-uid-zero", 2),
    ("root-with-other-gid", 2),
    ("shell-bind-climbs-out", 2),
    ("shell-bind-table-unknown-key", 2),
    ("shell-bind-wrong-type", 2),
    ("shell-env-bad-name", 2),
    ("shell-network-unknown", 2),
    ("shell-unknown-key", 2),
    ("shell-user-unknown", 2),
    ("shell-workdir-relative", 2),
    ("shell-writable-size-bad-unit", 2),
    ("shell-writable-size-too-small", 2),
    ("smoke-args-ambiguous-base-name", 2),
    ("smoke-bad-cpu", 2),
    ("smoke-bad-kernel", 2),
    ("smoke-check-bind-same-as-host", 2),
    ("smoke-check-empty-run", 2),
    ("smoke-check-unknown-key", 2),
    ("smoke-memory-bad-size", 2),
    ("smoke-pids-zero", 2),
    ("smoke-reference-unknown", 2),
    ("smoke-timeout-negative", 2),
    ("smoke-timeout-string", 2),
    ("smoke-tmp-size-negative", 2),
    ("src-is-a-directory", 2),
    ("src-missing", 2),
    ("structure-bad-regex", 2),
    ("structure-missing-file", 2),
    ("structure-unknown-key", 2),
    ("symlink-collides-with-file", 2),
    ("symlink-collides-with-passwd", 2),
    ("syntax-error", 2),
    ("debian-packages-bad-name", 2),
    ("sysroot-debian-architecture-and-architectures", 2),
    ("sysroot-debian-architectures-twice", 2),
    ("sysroot-debian-architectures-unknown", 2),
    ("sysroot-debian-bad-package", 2),
    ("sysroot-debian-unknown-key", 2),
    ("sysroot-debian-without-suite", 2),
    ("tree-invalid-glob", 2),
    ("tree-relative-without-dest", 2),
    ("tree-src-missing", 2),
    ("uid-zero-not-root", 2),
    ("unknown-file-key", 2),
    ("unknown-key", 2),
    ("user-group-gid-clash", 2),
    ("user-missing-uid", 2),
    ("wrong-type", 2),
];

/// Specs in the folder that are only included by cases, and the structure
/// test files cases name.
const HELPERS: &[&str] = &[
    "include-broken-part.toml",
    "include-loop-back.toml",
    "structure-bad-regex.yaml",
    "structure-unknown-key.yaml",
];

#[test]
fn broken_specs_fail_with_their_message_and_leave_the_output_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "name = \"t\"\ncommands = [\"cat\"]\n").unwrap();
    let out_root = tmp.path().join("out");
    let out = out_root.join("t");
    let mut options = Options::new(&good, &out_root);
    options.out = Some(out.clone());
    build(&options).unwrap();

    let before = Snapshot::take(&out);
    // Nothing but the output and, in one hidden folder beside it, its
    // manifest, SBOM and stamp, and the digest, license, owner and SHA1 caches: a staging
    // folder left behind by a failed build would show as a new name here.
    assert_eq!(
        before.siblings,
        [
            ".rootfs",
            ".rootfs/digests.json",
            ".rootfs/licenses.json",
            ".rootfs/owners.json",
            ".rootfs/sha1.json",
            ".rootfs/t.manifest.json",
            ".rootfs/t.spdx.json",
            ".rootfs/t.stamp.json",
            "t",
        ]
    );
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut failures = String::new();
    for &(case, code) in CASES {
        options.spec = Path::new(DIR).join(format!("{case}.toml"));
        let err = match build(&options) {
            Ok(_) => {
                // The output is replaced, so later cases would compare
                // against the wrong tree.
                let after = Snapshot::take(&out);
                writeln!(failures, "{case}: built instead of failing\n{}", before.diff(&after))
                    .unwrap();
                break;
            }
            Err(err) => err,
        };
        let actual = format!("{}\n", normalise(&rootfs::render_error(&err), tmp.path()));
        let snapshot = Path::new(DIR).join(format!("{case}.stderr"));
        if update {
            std::fs::write(&snapshot, &actual).unwrap();
        } else {
            match std::fs::read_to_string(&snapshot) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => writeln!(
                    failures,
                    "{case}: the message differs from {}\n--- expected\n{expected}--- actual\n{actual}---",
                    snapshot.display()
                )
                .unwrap(),
                Err(e) => writeln!(
                    failures,
                    "{case}: cannot read {} ({e}); run with UPDATE_EXPECT=1 to write it\n--- actual\n{actual}---",
                    snapshot.display()
                )
                .unwrap(),
            }
        }
        let status = rootfs::exit_code(&err);
        if status != code {
            writeln!(failures, "{case}: exit status {status}, expected {code}").unwrap();
        }
        let after = Snapshot::take(&out);
        if after != before {
            writeln!(failures, "{case}: the previous output changed\n{}", before.diff(&after))
                .unwrap();
        }
    }
    assert!(failures.is_empty(), "{failures}");

    // The failures did not touch what decides whether a build is needed.
    options.spec = good;
    assert!(build(&options).unwrap().up_to_date, "the good spec had to be rebuilt");
}

/// Every spec in the folder is a case or a helper, and every report
/// belongs to a case, so that no file is silently left untested or stale.
/// (A missing report fails the test above.)
#[test]
fn every_bad_spec_is_a_case() {
    let is_case = |stem: &str| CASES.iter().any(|(c, _)| *c == stem);
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let known = match name.rsplit_once('.') {
            Some((stem, "toml")) => is_case(stem) || HELPERS.contains(&name.as_str()),
            Some((stem, "stderr")) => is_case(stem),
            Some((_, "yaml")) => HELPERS.contains(&name.as_str()),
            _ => false,
        };
        if !known {
            strays.push(name);
        }
    }
    strays.sort();
    assert!(strays.is_empty(), "files in {DIR} that are neither a case nor a helper: {strays:?}");
}

/// Replaces what differs from run to run: the temporary folder and where
/// the package is checked out.
fn normalise(text: &str, tmp: &Path) -> String {
    let mut text = text.to_string();
    for (path, placeholder) in [(tmp.to_path_buf(), "$TMP"), (package_root(), "$ROOT")] {
        for path in [std::fs::canonicalize(&path).unwrap(), path] {
            text = text.replace(path.to_str().unwrap(), placeholder);
        }
    }
    text
}

fn package_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An output as a user finds it: its tree, its manifest and stamp, and
/// what else is in its folder.
#[derive(PartialEq, Eq)]
struct Snapshot {
    /// One line per path of the tree, without following symlinks.
    tree: Vec<String>,
    /// The inode of each path, which shows a tree swapped in even when
    /// its content is the same.
    inodes: Vec<u64>,
    manifest: Vec<u8>,
    stamp: Vec<u8>,
    /// The names in the output's parent folder (a staging folder left
    /// behind would show here).
    siblings: Vec<String>,
}

impl Snapshot {
    fn take(out: &Path) -> Snapshot {
        let mut tree = Vec::new();
        let mut inodes = Vec::new();
        list(out, Path::new("/"), &mut tree, &mut inodes);
        let parent = out.parent().unwrap();
        let names = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        };
        let mut siblings = names(parent);
        let side = rootfs::fsutil::side_dir(out);
        siblings.extend(names(&side).into_iter().map(|n| format!(".rootfs/{n}")));
        siblings.sort();
        Snapshot {
            tree,
            inodes,
            manifest: std::fs::read(rootfs::build::manifest::path_for(out)).unwrap(),
            stamp: std::fs::read(rootfs::build::stamp::path_for(out)).unwrap(),
            siblings,
        }
    }

    /// What differs, for a failure message.
    fn diff(&self, after: &Snapshot) -> String {
        let mut text = String::new();
        for line in &self.tree {
            if !after.tree.contains(line) {
                writeln!(text, "  - {line}").unwrap();
            }
        }
        for line in &after.tree {
            if !self.tree.contains(line) {
                writeln!(text, "  + {line}").unwrap();
            }
        }
        if self.inodes != after.inodes {
            text.push_str("  the files were replaced (their inodes changed)\n");
        }
        if self.manifest != after.manifest {
            text.push_str("  the manifest changed\n");
        }
        if self.stamp != after.stamp {
            text.push_str("  the stamp changed\n");
        }
        if self.siblings != after.siblings {
            writeln!(text, "  beside the output: {:?} -> {:?}", self.siblings, after.siblings)
                .unwrap();
        }
        text
    }
}

/// Appends a line and the inode for `host` (shown as `inside`, its path in
/// the rootfs), then for everything below it in name order.
fn list(host: &Path, inside: &Path, lines: &mut Vec<String>, inodes: &mut Vec<u64>) {
    let meta = std::fs::symlink_metadata(host).unwrap();
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        format!("symlink -> {}", std::fs::read_link(host).unwrap().display())
    } else if kind.is_file() {
        let digest = Sha256::digest(std::fs::read(host).unwrap());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("file sha256={hex}")
    } else if kind.is_dir() {
        "dir".to_string()
    } else {
        "other".to_string()
    };
    lines.push(format!(
        "{} {what} mode={:o} size={} mtime={}",
        inside.display(),
        meta.mode(),
        meta.size(),
        meta.mtime()
    ));
    inodes.push(meta.ino());
    if kind.is_dir() {
        let mut names: Vec<_> =
            std::fs::read_dir(host).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for name in names {
            list(&host.join(&name), &inside.join(&name), lines, inodes);
        }
    }
}
