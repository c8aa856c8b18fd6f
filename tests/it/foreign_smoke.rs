//! The shipped default spec built from a bookworm arm64 (and s390x, big-endian down to the tree's `ld.so.cache`) package sysroot and smoke-tested through qemu-user, with the emulator registered in the sandbox's own binfmt_misc and the sysroot as the reference under the same emulator; `trace` under the same emulator.

use std::path::Path;

use rootfs::build::{Options, build};
use rootfs::resolve::arch::Arch;
use rootfs::run::smoke;

use crate::support::{foreign, project_root};

#[test]
fn the_default_spec_built_for_arm64_passes_its_smoke_under_emulation() {
    smoke_default_spec("arm64");
}

#[test]
fn the_default_spec_built_for_s390x_passes_its_smoke_under_emulation() {
    smoke_default_spec("s390x");
}

fn smoke_default_spec(name: &str) {
    let arch = Arch::by_debian_name(name).unwrap();
    if let Some(reason) = rootfs::run::sandbox::cannot_enter_reason() {
        return eprintln!("skipped: {reason}");
    }
    if let Err(missing) = foreign::runner(arch) {
        return eprintln!("{missing}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut options = Options::new(project_root().join("rootfs-spec/default.toml"), tmp.path());
    options.sysroot = foreign::sysroot(arch);
    options.lock = Some(tmp.path().join("default.lock"));
    let built = build(&options).unwrap();
    let bash = built.out.join("usr/bin/bash");
    let Ok(rootfs::resolve::elf::FileKind::Elf(object)) = rootfs::resolve::elf::read(&bash) else {
        panic!()
    };
    assert_eq!(object.ident, Some(arch.ident()), "the tree's bash is {name}'s");
    // x86-64's `/lib64` is in the tree only when this architecture's
    // sysroot has one (neither arm64's nor s390x's does).
    let has = |root: &Path| root.join("lib64").symlink_metadata().is_ok();
    assert!(!has(&options.sysroot), "{name}'s sysroot has /lib64");
    assert!(!has(&built.out), "the {name} tree has /lib64");

    let checks = smoke::checks(&built.spec, &built.manifest);
    let (reference, note) =
        smoke::reference(&built.spec, &built.manifest, &built.out, &options.sysroot);
    assert_eq!(reference.as_deref(), Some(options.sysroot.as_path()), "{note:?}");
    assert!(note.unwrap().contains("under `"), "the note names the emulator");
    let started = std::time::Instant::now();
    let options = smoke::Options { jobs: 2, hostname: built.spec.name.clone(), reference };
    let report = smoke::run(&built.out, &checks, &options).unwrap();
    eprintln!("{name} smoke of {} checks in {:.1?}", checks.len(), started.elapsed());
    assert_eq!(report.failed(), 0, "\n{}", report.table());
    assert!(report.table().ends_with(&format!("{} passed, 0 failed\n", checks.len())));
    // The shell runs other programs: each exec goes through the emulator.
    let argv = vec!["/bin/sh".to_string(), "-c".to_string(), "hostname; ls /".to_string()];
    let expect = smoke::Expect::Exit { code: 0, contains: Some("default\nbin\n".into()) };
    let exec = smoke::Check { name: "exec".into(), argv, expect, ..checks[0].clone() };
    let report =
        smoke::run(&built.out, &[exec], &smoke::Options { reference: None, ..options }).unwrap();
    assert_eq!(report.failed(), 0, "\n{}", report.table());
    assert_serves_the_sandbox_alone(&bash, arch);
}

/// The registration lived in the sandbox's user namespace: the host's own
/// binfmt_misc (when mounted) holds no entry of ours, and without an entry
/// of its own for the architecture the host still cannot run its program.
fn assert_serves_the_sandbox_alone(program: &Path, arch: &Arch) {
    let _held = foreign::HOST_BINFMT.lock().unwrap_or_else(|e| e.into_inner());
    let mut host_has_one = false;
    if let Ok(entries) = std::fs::read_dir("/proc/sys/fs/binfmt_misc") {
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with("rootfs-"), "{name} registered on the host");
            host_has_one |= name.contains(arch.qemu);
        }
    }
    if host_has_one {
        return eprintln!("note: the host has a {} binfmt_misc entry of its own", arch.qemu);
    }
    let err = std::process::Command::new(program).arg("--version").output().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOEXEC), "{err}");
}

/// `trace` on the arm64 sysroot runs its checks under the emulator, whose
/// system calls the tracer sees (they are the guest program's): python3's
/// standard library is found missing from the tree, as it is from a tree
/// of this machine's own python3.
#[test]
fn trace_learns_the_standard_library_of_an_arm64_python_as_of_the_hosts() {
    let arch = Arch::by_debian_name("arm64").unwrap();
    if !crate::support::can_enter() {
        return;
    }
    if let Err(missing) = foreign::runner(arch) {
        return eprintln!("{missing}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("py.toml");
    std::fs::write(
        &spec,
        "name = \"py\"\ncommands = [\"python3\"]\n[smoke.args]\npython3 = [\"-c\", \"import json, email.mime.text\"]\n",
    )
    .unwrap();
    let sysroot = foreign::sysroot(arch);
    for (sysroot, name) in [(sysroot.as_path(), "arm64"), (Path::new("/"), "host")] {
        let output = std::process::Command::new(crate::support::xtask_binary())
            .args(["rootfs", "trace"])
            .arg(&spec)
            .arg("--sysroot")
            .arg(sysroot)
            .arg("--out")
            .arg(tmp.path().join(name))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stdout.contains("  /usr/lib/python3.11\n      needed by python3"),
            "{name}:\n{stdout}\n{stderr}"
        );
    }
}
