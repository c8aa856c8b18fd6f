//! Smoke on other CPU levels: a program built for x86-64-v3 is reported as needing it, passes under qemu's v3 model and fails under v1 with the loader's own message, the programs a shell starts included.

use std::path::Path;
use std::time::Duration;

use rootfs::resolve::elf::IsaLevel;
use rootfs::run::cpu_smoke::{self, Emulator};
use rootfs::run::smoke::{self, Outcome};

use crate::support::{can_enter, cc};

/// `v3` is built for x86-64-v3 and says so (`-z x86-64-v3`):
///
/// ```sh
/// cc -march=x86-64-v3 -Wl,-z,x86-64-v3 -o v3 v3.c
/// ```
fn built_with_v3(d: &Path) -> rootfs::build::Built {
    let v3 = d.join("bin/v3");
    cc(
        &v3,
        "#include <stdio.h>\nint main(void) { puts(\"v3 runs\"); return 0; }\n",
        &["-march=x86-64-v3", "-Wl,-z,x86-64-v3"],
    );
    let spec = d.join("cpu.toml");
    let text = format!(
        "name = \"cpu\"\ncommands = [{v3:?}, \"sh\"]\n\n[smoke]\nskip = [\"sh\"]\n\n\
         [[smoke.checks]]\nrun = [\"sh\", \"-c\", \"{v3} && echo child ran\"]\ncontains = \"child ran\"\n",
        v3 = v3.to_str().unwrap()
    );
    std::fs::write(&spec, text).unwrap();
    let mut options = rootfs::build::Options::new(&spec, d);
    options.out = Some(d.join("cpu"));
    rootfs::build::build(&options).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)))
}

#[test]
fn a_v3_program_passes_on_v3_and_fails_on_v1_with_the_loaders_message() {
    if !can_enter() {
        return;
    }
    let tmp = crate::support::outside_tmp("rootfs-cpu-");
    let built = built_with_v3(tmp.path());
    let report = built.manifest.portability.as_ref().unwrap();
    assert_eq!(report.cpu, Some(IsaLevel::V3));
    let checks = smoke::checks(&built.spec, &built.manifest);
    assert_eq!(checks.len(), 2, "{checks:?}");
    let options = smoke::Options {
        jobs: 2,
        hostname: "cpu".to_string(),
        reference: Some(std::path::PathBuf::from("/")),
    };
    let loader = cpu_smoke::loader_of(&built.out);
    let v3 = Emulator::prepare(IsaLevel::V3, &loader).unwrap();
    let on_v3 = cpu_smoke::run(&built.out, &checks, &options, &v3).unwrap();
    assert_eq!(on_v3.failed(), 0, "{}", on_v3.table());
    let v1 = Emulator::prepare(IsaLevel::V1, &loader).unwrap();
    let on_v1 = cpu_smoke::run(&built.out, &checks, &options, &v1).unwrap();
    let table = on_v1.table();
    assert_eq!(on_v1.failed(), 2, "{table}");
    for result in &on_v1.results {
        assert!(matches!(result.outcome, Outcome::Fail(_)), "{table}");
        // The loader's own words, from the program itself and from the
        // one the shell started.
        assert!(result.output.contains("CPU ISA level is lower than required"), "{table}");
        assert!(result.elapsed < Duration::from_secs(10), "{table}");
    }
    assert!(table.contains("CPU ISA level is lower than required"), "{table}");
}

#[test]
fn a_level_no_qemu_model_emulates_is_refused_with_the_reason() {
    let err =
        Emulator::prepare(IsaLevel::V4, Path::new("/lib64/ld-linux-x86-64.so.2")).unwrap_err();
    assert!(format!("{err:#}").contains("no AVX-512"), "{err:#}");
}

#[test]
fn smoke_cpu_reports_each_level_and_a_column_per_run() {
    if !can_enter() {
        return;
    }
    let tmp = crate::support::outside_tmp("rootfs-cpu-");
    let built = built_with_v3(tmp.path());
    let spec = tmp.path().join("cpu.toml");
    let (code, text) = crate::support::rootfs_cli(
        "smoke",
        &spec,
        &built.out,
        &["--cpu", "x86-64-v1", "--cpu", "x86-64-v3"],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("\non x86-64-v1 (qemu-x86_64-static -cpu qemu64):\n"), "{text}");
    assert!(text.contains("\non x86-64-v3 (qemu-x86_64-static -cpu Haswell-noTSX,"), "{text}");
    assert!(text.contains("CPU ISA level is lower than required"), "{text}");
    let header = text.lines().find(|l| l.starts_with("check ") && l.contains("host")).unwrap();
    assert!(header.ends_with("host       x86-64-v1  x86-64-v3"), "{header}");
    let row =
        text.lines().rev().find(|l| l.starts_with(&format!("{}/bin/v3 ", tmp.path().display())));
    assert!(row.unwrap().ends_with("pass       FAIL       pass"), "{text}");
}
