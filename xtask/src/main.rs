//! `cargo xtask`: parses flags and dispatches to the `rootfs` library; no logic lives here.

mod flags;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    match flags.run() {
        Ok(code) => code,
        Err(err) => {
            // User mistakes and failures end here: one message, no backtrace.
            eprintln!("error: {err:#}");
            ExitCode::from(rootfs::exit_code(&err))
        }
    }
}
