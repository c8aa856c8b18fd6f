//! `cargo xtask`: parses flags and dispatches to the `rootfs` library; no logic lives here.

mod bench;
mod flags;
mod packages;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
