//! Parity with each architecture's own loader: every dynamic ELF object of a Debian package sysroot of that architecture, resolved by us and listed by its `ld.so` under qemu-user, chrooted in the sysroot with the cache its own `ldconfig` wrote.
//!
//! arm64 and s390x (the big-endian one, whose cache is big-endian too) run
//! by default; `ROOTFS_TEST_ALL_ARCHES=1` adds amd64, armhf, i386, ppc64el
//! and riscv64 (each costs a download on a cold cache and a minute or two of
//! emulation).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use rootfs::resolve::arch::Arch;
use rootfs::resolve::elf::FileKind;
use rootfs::resolve::sysroot::Sysroot;
use rootfs::resolve::{DlopenLevel, Options, Resolver};

use crate::support::foreign;

#[test]
fn arm64_objects_resolve_as_arm64s_loader_lists_them() {
    parity("arm64");
}

#[test]
fn s390x_objects_resolve_as_s390xs_loader_lists_them() {
    parity("s390x");
}

#[test]
fn every_other_architecture_resolves_as_its_loader_lists_it_when_asked() {
    if std::env::var_os("ROOTFS_TEST_ALL_ARCHES").is_none() {
        eprintln!(
            "skipped: amd64, armhf, i386, ppc64el and riscv64 parity runs with ROOTFS_TEST_ALL_ARCHES=1"
        );
        return;
    }
    for arch in ["amd64", "armhf", "i386", "ppc64el", "riscv64"] {
        parity(arch);
    }
}

fn parity(name: &str) {
    let arch = Arch::by_debian_name(name).unwrap();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: {name} parity needs root (chroot(2) into the sysroot)");
        return;
    }
    let emulator = match foreign::runner(arch) {
        Ok(emulator) => emulator,
        Err(missing) => return eprintln!("{missing}"),
    };
    let start = Instant::now();
    let sysroot = foreign::sysroot(arch);
    let prepared = start.elapsed();
    let packages = foreign::package_count(&sysroot);
    assert!(packages >= 100, "{name}: only {packages} packages");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("foreign-parity").join(name);
    foreign::linked_copy(&sysroot, &root);
    let run = Runner {
        root: root.clone(),
        emulator: emulator.map(|e| foreign::place_emulator(&root, &e)),
    };
    // The architecture's own ldconfig writes the cache the loader reads
    // (`-X`: the soname links the packages ship stay as they are).
    let (status, out) = run.run(&["/sbin/ldconfig", "-X"]);
    assert_eq!(status, 0, "{name}: ldconfig: {out}");
    let (status, help) = run.run(&[arch.interp, "--help"]);
    assert_eq!(status, 0, "{name}: ld.so --help: {help}");

    let subjects = subjects(&root, arch);
    let options =
        Options { sysroot: root.clone(), dlopen: DlopenLevel::None, ..Options::default() };
    let resolver = Resolver::new(options).unwrap();
    assert_same_configuration(arch, &resolver, &help);
    let traced = Instant::now();
    let failures = differences(arch, &run, &resolver, &subjects);
    eprintln!(
        "parity {name}: {} objects of {packages} packages, {} differences; sysroot ready in {:.1?}, loader runs {:.1?}",
        subjects.len(),
        failures.len(),
        prepared,
        traced.elapsed()
    );
    assert!(subjects.len() >= 100, "{name}: too few objects: {}", subjects.len());
    assert!(
        failures.is_empty(),
        "{name}: {} of {} differ:\n{}",
        failures.len(),
        subjects.len(),
        failures.join("\n")
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Runs programs chrooted in the root, through its emulator when it has one.
struct Runner {
    root: PathBuf,
    emulator: Option<&'static str>,
}

impl Runner {
    fn run(&self, argv: &[&str]) -> (i32, String) {
        let full: Vec<&str> = self.emulator.into_iter().chain(argv.iter().copied()).collect();
        foreign::in_chroot(&self.root, &full)
    }
}

/// For each subject whose closure differs from what the loader lists: the
/// paths only we have, only the loader has, and the names each missed.
fn differences(
    arch: &Arch,
    run: &Runner,
    resolver: &Resolver,
    subjects: &[PathBuf],
) -> Vec<String> {
    let inputs: Vec<String> = subjects.iter().map(|p| p.display().to_string()).collect();
    let closures = resolver.resolve_all(&inputs);
    let view = Sysroot::new(&run.root);
    let real = |p: &Path| view.locate(p).map(|l| l.real).unwrap_or_else(|_| p.to_path_buf());
    subjects
        .par_iter()
        .zip(closures.par_iter())
        .filter_map(|(subject, closure)| {
            let (_, out) = run.run(&[arch.interp, "--list", subject.to_str().unwrap()]);
            let (truth, missing) = parse_trace_in(&out, &real);
            let ours: BTreeSet<PathBuf> = closure.file_paths().into_iter().map(real).collect();
            let our_missing: BTreeSet<String> =
                closure.missing_names().iter().map(|s| s.to_string()).collect();
            let theirs = (&truth, &missing);
            crate::support::closure_disagreement(
                &subject.display().to_string(),
                (&ours, &our_missing),
                theirs,
            )
            .map(|d| format!("{d}\n{out}"))
        })
        .collect()
}

/// Our loader configuration says what the loader's `--help` says: the
/// trusted directories in order, and the names of its `glibc-hwcaps`
/// subdirectories (all it knows, usable or not here).
fn assert_same_configuration(arch: &Arch, resolver: &Resolver, help: &str) {
    let config = resolver.config(&arch.ident());
    let dirs: Vec<PathBuf> = help
        .lines()
        .filter_map(|l| l.trim().strip_suffix(" (system search path)"))
        .map(PathBuf::from)
        .collect();
    assert_eq!(config.default_dirs, dirs, "{}: trusted directories\n{help}", arch.debian);
    let hwcaps: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Subdirectories of glibc-hwcaps"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(arch.glibc_hwcaps, hwcaps.as_slice(), "{}: glibc-hwcaps\n{help}", arch.debian);
}

/// The loader's list (`--list` output), with every path taken to its real
/// place in the root (never looked up on the host), and the names it did
/// not find.
fn parse_trace_in(
    out: &str,
    real: &impl Fn(&Path) -> PathBuf,
) -> (BTreeSet<PathBuf>, BTreeSet<String>) {
    let mut files = BTreeSet::new();
    let mut missing = BTreeSet::new();
    for line in out.lines().map(str::trim) {
        if let Some(name) = line.strip_suffix(" => not found") {
            missing.insert(name.to_string());
            continue;
        }
        // A dependency of the listed object itself that is missing stops
        // the loader before it lists anything.
        if let Some((_, rest)) = line.split_once(": error while loading shared libraries: ") {
            let name = rest.split(": cannot open shared object file").next().unwrap_or(rest);
            missing.insert(name.to_string());
            continue;
        }
        let path = line.split_once(" => ").map_or(line, |(_, rest)| rest);
        let path = path.split(" (0x").next().unwrap_or("");
        if path.starts_with('/') {
            files.insert(real(Path::new(path)));
        }
    }
    (files, missing)
}

/// Root paths of every dynamic object of `arch` in the root that its
/// loader can list: programs with its interpreter, libraries with
/// dependencies. Symlinks are skipped: their targets are listed.
fn subjects(root: &Path, arch: &Arch) -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk(root, Path::new("/"), &mut files);
    files
        .into_iter()
        .filter(|path| {
            let host = root.join(path.strip_prefix("/").unwrap());
            let Ok(FileKind::Elf(o)) = rootfs::resolve::elf::read(&host) else { return false };
            o.ident == Some(arch.ident())
                && o.malformed.is_none()
                && o.dynamic
                && match o.interp.as_deref() {
                    Some(interp) => interp == arch.interp,
                    None => !o.needed.is_empty(),
                }
        })
        .collect()
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let host = root.join(dir.strip_prefix("/").unwrap());
    let mut entries: Vec<_> = std::fs::read_dir(&host).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type().unwrap();
        let path = dir.join(entry.file_name());
        if kind.is_dir() {
            walk(root, &path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}
