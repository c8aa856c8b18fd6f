//! `cargo xtask`: parses flags and dispatches to the `rootfs` library; no logic lives here.

mod bench;
mod flags;
mod packages;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    one_malloc_arena_per_core();
    let flags = flags::Xtask::parse();
    match flags.run() {
        Ok(code) => code,
        Err(err) => {
            // User mistakes and failures end here: one report, no backtrace.
            eprintln!("{}", rootfs::render_error(&err));
            ExitCode::from(rootfs::exit_code(&err))
        }
    }
}

/// Caps glibc's malloc arenas at one per core (its default is eight per
/// core, `mallopt(3)`): memory a thread frees stays in its own arena, and a
/// build's later steps run on other threads than its earlier ones, so a
/// build of 62,000 entries peaked at 190-215 MiB instead of 168 MiB, with
/// the same CPU time (BENCHMARKS.md, issue 17).
fn one_malloc_arena_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: called first in `main`, before any other thread exists or
    // anything is allocated through another arena; mallopt only sets a
    // limit that glibc reads when it next creates an arena.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, cores);
    }
}

/// The workspace root: where `rootfs-spec/` and `target/` live.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `target`, or `$CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// `target/rootfs`, or `$CARGO_TARGET_DIR/rootfs`.
pub fn out_root() -> PathBuf {
    target_dir().join("rootfs")
}
