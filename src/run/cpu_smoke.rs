//! Smoke checks run again on other x86-64 CPU levels: the qemu CPU model of each level (its level confirmed by the loader itself, run under it), and every check run under `qemu-x86_64-static` with that model, children included (`run/sandbox/binfmt.rs`), judged against the sysroot run natively.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::resolve::elf::IsaLevel;
use crate::run::sandbox::binfmt::native::{self as binfmt, Entry};
use crate::run::smoke::{Check, Options, Report};

/// The emulator, from Debian's `qemu-user-static`.
pub const EMULATOR: &str = "qemu-x86_64-static";

/// The variable `qemu-user` reads its CPU model from: the program's
/// children inherit it, so they run on the same model.
const CPU_VARIABLE: &str = "QEMU_CPU";

/// The qemu CPU model whose CPUID has exactly the features of `level`, as
/// glibc's loader reads them (`x86.cpu_features.isa_1` of `ld.so
/// --list-diagnostics`: 0x1, 0x3, 0x7 under qemu 7.2). `Haswell-noTSX`
/// lists features qemu's TCG does not emulate and warns about each on
/// every start; they are not part of any level, so they are taken off.
fn model(level: IsaLevel) -> Result<&'static str> {
    match level {
        IsaLevel::V1 => Ok("qemu64"),
        IsaLevel::V2 => Ok("Nehalem"),
        IsaLevel::V3 => Ok("Haswell-noTSX,-pcid,-x2apic,-tsc-deadline,-invpcid"),
        IsaLevel::V4 => bail!(
            "no qemu CPU model of level x86-64-v4 runs here: qemu's TCG emulates no AVX-512 (qemu 7.2); on a machine of that level, the native run is the v4 run"
        ),
    }
}

/// The emulator ready for the checks of one CPU level: a marked copy in a
/// folder of its own, and its `binfmt_misc` entry.
#[derive(Debug)]
pub struct Emulator {
    pub level: IsaLevel,
    pub model: &'static str,
    entry: Arc<Entry>,
    _dir: tempfile::TempDir,
}

impl Emulator {
    /// Prepares the emulator for `level` and checks, with `loader` (the
    /// tree's `ld.so`) run under it, that the model is of that level.
    pub fn prepare(level: IsaLevel, loader: &Path) -> Result<Emulator> {
        let model = model(level)?;
        let found = find_emulator()?;
        let dir = tempfile::Builder::new()
            .prefix("rootfs-cpu-")
            .tempdir()
            .context("making a folder for the emulator")?;
        let copy = dir.path().join(EMULATOR);
        binfmt::mark(&found, &copy)?;
        let seen = loader_level(&copy, model, loader)?;
        if seen != level {
            bail!(
                "qemu's CPU model `{model}` is {} for glibc's loader, not {}",
                seen.name(),
                level.name()
            );
        }
        let entry = Arc::new(Entry::new(&copy)?);
        Ok(Emulator { level, model, entry, _dir: dir })
    }

    /// How a report names this run.
    pub fn describe(&self) -> String {
        format!("{} ({EMULATOR} -cpu {})", self.level.name(), self.model)
    }
}

/// `qemu-x86_64-static` on `PATH`.
fn find_emulator() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(EMULATOR))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "`{EMULATOR}` is not on PATH: smoke on other CPU levels needs it (Debian's `qemu-user-static`)"
            )
        })
}

/// The tree's own loader, for [`Emulator::prepare`]; the host's when the
/// tree has none (a static tree).
pub fn loader_of(tree: &Path) -> PathBuf {
    let ours = tree.join("lib64/ld-linux-x86-64.so.2");
    if ours.exists() { ours } else { PathBuf::from("/lib64/ld-linux-x86-64.so.2") }
}

/// The level glibc's loader sees under `model` (`ld.so
/// --list-diagnostics`, `x86.cpu_features.isa_1`: one bit per level).
fn loader_level(emulator: &Path, model: &str, loader: &Path) -> Result<IsaLevel> {
    let run = || {
        duct::cmd!(emulator, "-cpu", model, loader, "--list-diagnostics")
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
    };
    // The emulator was written a moment ago: a process another thread
    // started meanwhile may still hold a copy of that descriptor until it
    // executes, and executing the file then fails with ETXTBSY (the known
    // race of writing and running a file in a process with threads).
    let mut output = run();
    for _ in 0..100 {
        match &output {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                output = run();
            }
            _ => break,
        }
    }
    let output = output.with_context(|| {
        format!("running `{}` under `{}`", loader.display(), emulator.display())
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let bits = text
        .lines()
        .find_map(|l| l.strip_prefix("x86.cpu_features.isa_1=0x"))
        .and_then(|hex| u32::from_str_radix(hex.trim(), 16).ok())
        .with_context(|| {
            format!(
                "`{} --list-diagnostics` under `-cpu {model}` names no ISA level:\n{text}",
                loader.display()
            )
        })?;
    IsaLevel::from_bits(bits).with_context(|| format!("`isa_1={bits:#x}` names no x86-64 level"))
}

/// Runs `checks` in the tree at `root` with its programs under `emulator`,
/// each judged as [`crate::run::smoke::run`] judges it (the reference runs on
/// this machine's CPU).
pub fn run(
    root: &Path,
    checks: &[Check],
    options: &Options,
    emulator: &Emulator,
) -> Result<Report> {
    // The model reaches the program's children through the environment.
    let env = vec![(CPU_VARIABLE.to_string(), emulator.model.to_string())];
    let emulation = crate::run::smoke::Emulation { entry: emulator.entry.clone(), env };
    let mut report = crate::run::smoke::run_emulated(root, checks, options, Some(emulation))?;
    report.notes.push(format!(
        "note: on {}, every check's environment holds {CPU_VARIABLE}={}, which the programs it starts inherit; one started with an emptied environment runs on qemu's default model",
        emulator.level.name(),
        emulator.model
    ));
    Ok(report)
}
