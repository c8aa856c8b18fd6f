//! `cargo xtask test`: installs what the tests need on the host, then runs every test of the workspace.

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::{packages, project_root};

pub fn run(extra: &[String]) -> Result<()> {
    let sh = Shell::new().context("starting a shell")?;
    sh.change_dir(project_root());
    packages::ensure(&sh, packages::FOR_TESTS)?;
    // The tests of the command line run this very binary; it is built, as
    // `cargo xtask` just ran it, under the same target directory.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    cmd!(sh, "{cargo} build --package xtask")
        .run()
        .context("building the xtask binary for the tests")?;
    cmd!(sh, "{cargo} test --workspace {extra...}").run().context("running the tests")?;
    Ok(())
}
