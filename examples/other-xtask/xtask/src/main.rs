//! `cargo xtask rootfs`: build this project's rootfs, smoke-test it inside, and export it as an OCI image.

use std::path::Path;
use std::process::ExitCode;

use rootfs::export::{Format, Options};

fn main() -> ExitCode {
    match rootfs() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", rootfs::render_error(&e));
            ExitCode::from(rootfs::exit_code(&e))
        }
    }
}

fn rootfs() -> anyhow::Result<ExitCode> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let options = rootfs::build::Options::new(root.join("rootfs.toml"), root.join("target/rootfs"));
    let built = rootfs::build::build(&options)?;
    println!("{}", built.summary());
    let smoked = rootfs::run::smoke::smoke_tree(&built, Path::new("/"))?;
    for note in &smoked.notes {
        eprintln!("{note}");
    }
    print!("{}", smoked.report.table());
    println!("{}", rootfs::export::export(&built, &Options::new(Format::Oci))?.summary());
    Ok(if smoked.report.failed() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
