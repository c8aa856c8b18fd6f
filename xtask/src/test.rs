//! `cargo xtask test`: installs what the tests need on the host, then runs every test of the workspace.

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::{packages, project_root, target_dir};

pub fn run(extra: &[String]) -> Result<()> {
    let sh = Shell::new().context("starting a shell")?;
    sh.change_dir(project_root());
    packages::ensure(&sh, packages::FOR_TESTS)?;
    ensure_spdx_validator(&sh)?;
    // The tests of the command line run this very binary; it is built, as
    // `cargo xtask` just ran it, under the same target directory.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    cmd!(sh, "{cargo} build --package xtask")
        .run()
        .context("building the xtask binary for the tests")?;
    cmd!(sh, "{cargo} test --workspace {extra...}").run().context("running the tests")?;
    Ok(())
}

/// `pyspdxtools`, the SPDX project's validator, in `target/venv` (the SBOM
/// tests run it from there); installed from PyPI when missing.
fn ensure_spdx_validator(sh: &Shell) -> Result<()> {
    let venv = target_dir().join("venv");
    if venv.join("bin/pyspdxtools").is_file() {
        return Ok(());
    }
    eprintln!("installing spdx-tools into {}", venv.display());
    cmd!(sh, "python3 -m venv {venv}").run().context("creating a Python virtual environment")?;
    let pip = venv.join("bin/pip");
    cmd!(sh, "{pip} install --quiet --disable-pip-version-check spdx-tools")
        .run()
        .context("installing spdx-tools with pip")?;
    Ok(())
}
