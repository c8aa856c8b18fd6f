//! The shipped specs and presets in their bookworm package-sysroot form (`rootfs-spec/bookworm/`): each builds `--locked` from its committed lock, takes nothing from the host, and passes its smoke against the package sysroot; each lock pins packages, not files.
//!
//! Live: the `.deb`s come from the mirror this machine's apt sources name
//! (CI reaches Debian's archive) into the shared download cache
//! (`$ROOTFS_CACHE_DIR`, else `~/.cache/rootfs`), so a warm cache fetches
//! nothing. The unpacked sysroots are kept under the target directory, so
//! a second run unpacks nothing either.

use std::path::{Path, PathBuf};

use rootfs::build::image_sysroot::{Prepared, SysrootSource};
use rootfs::build::{Options, build};
use rootfs::run::smoke;

use crate::support::{can_enter, project_root, specs_in};

/// The specs of `rootfs-spec/bookworm/` (the files with a `name`), sorted.
fn bookworm_specs() -> Vec<PathBuf> {
    specs_in(&project_root().join("rootfs-spec/bookworm"))
}

/// The package sysroot of `spec` from its committed lock, refusing any
/// other package set, as `build --locked` prepares it.
fn prepare_locked(spec: &Path, sysroots: &Path) -> Prepared {
    let loaded = rootfs::spec::load(spec).unwrap();
    let table = loaded.debian.as_ref().map(|item| &item.value);
    let request = rootfs::build::debian::merge_request(table, None, &[], &loaded.debian_packages);
    let source = SysrootSource::Debian {
        request,
        lock: Some(rootfs::build::lock::path_for(spec)),
        locked: true,
    };
    rootfs::build::image_sysroot::prepare(&source, sysroots)
        .unwrap_or_else(|e| panic!("{}: {}", spec.display(), rootfs::render_error(&e)))
}

#[test]
fn the_bookworm_specs_are_the_shipped_specs_and_presets() {
    let names: Vec<String> = bookworm_specs()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["certs", "ci-shell", "default", "git", "java", "locale", "python3", "vim"]);
}

/// Each lock is a package lock of a few hundred lines: the package set and
/// nothing per file (the shipped specs have no host input), its size and
/// package count as README's table gives them.
#[test]
fn the_committed_bookworm_locks_pin_packages_not_files() {
    let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
    for spec in bookworm_specs() {
        let path = rootfs::build::lock::path_for(&spec);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: the lock must be committed: {e}", path.display()));
        let lock = rootfs::build::lock::Lock::parse(&bytes).unwrap();
        assert!(lock.pins_packages(), "{} is not a package lock", path.display());
        assert!(lock.spec_files.is_empty() && lock.trees.is_empty(), "{}", path.display());
        let set = lock.debian.unwrap();
        assert_eq!(
            (set.suites.as_slice(), set.architecture.as_str()),
            (&["bookworm".to_string()][..], "amd64")
        );
        let lines = bytes.iter().filter(|b| **b == b'\n').count();
        assert!(lines < 1000, "{}: {lines} lines", path.display());
        // README's table says the same.
        let name = spec.file_name().unwrap().to_string_lossy().into_owned();
        let row = format!("| `bookworm/{name}` | {} | {lines} |", set.packages.len());
        assert!(readme.contains(&row), "README.md lacks the row {row}");
    }
}

/// Every bookworm form builds `--locked` without touching its lock, every
/// file of its tree comes from the package sysroot, and every check passes
/// there, each probe judged against the same run on the package sysroot.
#[test]
fn every_bookworm_spec_builds_locked_and_passes_its_smoke() {
    let sysroots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bookworm-sysroots");
    let tmp = tempfile::tempdir().unwrap();
    for spec in bookworm_specs() {
        let lock_path = rootfs::build::lock::path_for(&spec);
        let committed = std::fs::read(&lock_path).unwrap();
        let prepared = prepare_locked(&spec, &sysroots);
        let mut options = Options::new(&spec, tmp.path());
        options.sysroot = prepared.dir.clone();
        options.packages = prepared.packages.clone();
        options.locked = true;
        let built = build(&options)
            .unwrap_or_else(|e| panic!("{}: {}", spec.display(), rootfs::render_error(&e)));
        assert_eq!(std::fs::read(&lock_path).unwrap(), committed, "{}", spec.display());
        // Sources are paths inside the sysroot (the same on every machine),
        // and the lock lists no host input: nothing came from the host.
        for entry in &built.manifest.entries {
            if let Some(source) = &entry.source {
                let inside = prepared.dir.join(source.strip_prefix("/").unwrap());
                assert!(
                    inside.symlink_metadata().is_ok(),
                    "{}: {} is not in the package sysroot",
                    spec.display(),
                    source.display()
                );
            }
        }
        let lock = rootfs::build::lock::Lock::parse(&committed).unwrap();
        assert!(lock.spec_files.is_empty() && lock.trees.is_empty(), "{}", spec.display());
        if !can_enter() {
            continue;
        }
        let checks = smoke::checks(&built.spec, &built.manifest);
        let (reference, _) =
            smoke::reference(&built.spec, &built.manifest, &built.out, &prepared.dir);
        let options = smoke::Options { jobs: 2, hostname: built.spec.name.clone(), reference };
        let report = smoke::run(&built.out, &checks, &options).unwrap();
        assert_eq!(report.failed(), 0, "{}:\n{}", spec.display(), report.table());
    }
}

/// What the maintainer scripts would do that is not reproduced is listed
/// for every bookworm form: by the build in full when the sysroot is
/// unpacked, and counted when it is reused; in one sorted order on every
/// run; naming only packages of the set. The README's examples of it are
/// among them: the Java trust store that `keytool` would make, and
/// vim-runtime's `helpztags`.
#[test]
fn what_the_scripts_would_do_is_listed_for_every_bookworm_spec_in_one_order() {
    let sysroots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bookworm-sysroots");
    for spec in bookworm_specs() {
        let shown = spec.display();
        let prepared = prepare_locked(&spec, &sysroots);
        let listed = rootfs::build::debian::scripts::not_reproduced(&prepared.dir).unwrap();
        assert_eq!(listed, rootfs::build::debian::scripts::not_reproduced(&prepared.dir).unwrap());
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, listed, "{shown}: the list is sorted and has no repeats");
        let set = prepared.packages.as_ref().unwrap();
        for item in &listed {
            assert!(set.packages.contains_key(&item.package), "{shown}: {item}");
        }
        let notes: Vec<String> = match prepared.unpacked {
            true => listed
                .iter()
                .map(|n| format!("note: not reproduced from the maintainer scripts: {n}"))
                .collect(),
            false => vec![format!(
                "note: {} maintainer-script effects of these packages are not reproduced (listed when the sysroot was unpacked)",
                listed.len()
            )],
        };
        assert_eq!(prepared.notes, notes, "{shown}");
        let lines: Vec<String> = listed.iter().map(|n| n.to_string()).collect();
        let name = spec.file_stem().unwrap().to_string_lossy().into_owned();
        let expected: &[&str] = match name.as_str() {
            "java" => {
                &["ca-certificates-java postinst: keytool", "ca-certificates-java postinst: java"]
            }
            "vim" => &["vim-runtime postinst: helpztags"],
            _ => &[],
        };
        for line in expected {
            assert!(lines.iter().any(|l| l == line), "{shown} lacks `{line}`: {lines:#?}");
        }
    }
}
