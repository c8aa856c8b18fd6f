//! Parity with glibc's loader on this machine: every dynamic executable and shared library the host has, resolved statically and by the loader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rootfs::resolve::elf::FileKind;
use rootfs::resolve::{DlopenLevel, Options, Resolver};

use crate::support::{canonical, parse_trace};

/// glibc's loader on x86_64; programs with another interpreter are not
/// traced, because only glibc's loader stops before running the program.
const GLIBC_INTERP: &str = "/lib64/ld-linux-x86-64.so.2";

enum Subject {
    /// Traced with `ld.so --list REALPATH`: the loader in trace mode, given
    /// the path the kernel would report as `/proc/self/exe`, so `$ORIGIN` is
    /// what a real exec sees. Nothing of the program runs, whatever it is
    /// (a real exec of a setuid or setgid program would ignore the trace
    /// request and run it).
    Program(PathBuf),
    /// Traced with `ldd`, which loads it with `ld.so --list`.
    Library(PathBuf),
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if recursive && !path.is_symlink() {
                walk(&path, true, out);
            }
        } else if meta.is_file() {
            out.push(path);
        }
    }
}

fn subjects() -> Vec<Subject> {
    let mut programs = Vec::new();
    walk(Path::new("/usr/bin"), false, &mut programs);
    walk(Path::new("/usr/sbin"), false, &mut programs);
    walk(Path::new("/usr/libexec"), true, &mut programs);
    let mut libraries = Vec::new();
    walk(Path::new("/usr/lib/x86_64-linux-gnu"), false, &mut libraries);
    let mut out = Vec::new();
    for path in programs {
        if let Ok(FileKind::Elf(o)) = rootfs::resolve::elf::read(&path)
            && o.interp.as_deref() == Some(GLIBC_INTERP)
            && o.malformed.is_none()
        {
            out.push(Subject::Program(path));
        }
    }
    for path in libraries {
        if !path.file_name().unwrap().to_string_lossy().contains(".so") {
            continue;
        }
        if let Ok(FileKind::Elf(o)) = rootfs::resolve::elf::read(&path)
            && o.dynamic
            && !o.needed.is_empty()
            && o.malformed.is_none()
        {
            out.push(Subject::Library(path));
        }
    }
    out
}

#[test]
fn every_host_program_and_library_resolves_as_the_loader_loads_it() {
    let subjects = subjects();
    let inputs: Vec<String> = subjects
        .iter()
        .map(|s| match s {
            Subject::Program(p) | Subject::Library(p) => p.display().to_string(),
        })
        .collect();
    // The loader never reads `.note.dlopen`: compare what it loads alone.
    let options = Options { dlopen: DlopenLevel::None, ..Options::default() };
    let resolver = Resolver::new(options).unwrap();
    let closures = resolver.resolve_all(&inputs);
    let stats = resolver.stats();
    assert_eq!(stats.reads, stats.files, "every file is read and parsed once");

    let failures: Vec<String> = subjects
        .par_iter()
        .zip(closures.par_iter())
        .filter_map(|(subject, closure)| {
            let (truth, missing) = match subject {
                Subject::Program(p) => {
                    let real = std::fs::canonicalize(p).unwrap();
                    let out = duct::cmd!(GLIBC_INTERP, "--list", real)
                        .env_remove("LD_LIBRARY_PATH")
                        .stdout_capture()
                        .unchecked()
                        .read()
                        .unwrap();
                    parse_trace(&out)
                }
                Subject::Library(p) => {
                    let out = duct::cmd!("ldd", p)
                        .env_remove("LD_LIBRARY_PATH")
                        .stdout_capture()
                        .unchecked()
                        .read()
                        .unwrap();
                    parse_trace(&out)
                }
            };
            let ours = canonical(&closure.file_paths());
            let our_missing: BTreeSet<String> =
                closure.missing_names().iter().map(|s| s.to_string()).collect();
            // The comparison the issue asks for covers what the loader
            // resolves completely; where it misses something, we must miss
            // the same names.
            crate::support::closure_disagreement(
                &closure.input,
                (&ours, &our_missing),
                (&truth, &missing),
            )
        })
        .collect();
    assert!(subjects.len() > 100, "too few subjects found: {}", subjects.len());
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        subjects.len(),
        failures.join("\n")
    );
}
