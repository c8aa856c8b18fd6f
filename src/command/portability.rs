//! `rootfs portability`: the tree built when missing or stale, then what it needs of the machine beneath it (CPU level, kernel, glibc symbol versions) said, for people or as JSON.

use anyhow::Result;

use super::Console;
use super::target::{self, Target};
use crate::resolve::portability::Portability;

/// What `rootfs portability` takes.
#[derive(Clone, Debug)]
pub struct PortabilityOptions {
    pub target: Target,
    /// Say the whole report as JSON, every object named.
    pub json: bool,
}

/// Says what the tree needs of the machine beneath it.
pub fn portability(options: &PortabilityOptions, console: &mut dyn Console) -> Result<Portability> {
    let build_options = target::build_options(&options.target, console)?;
    let built = target::built(&options.target, &build_options, console)?;
    let portability = built.manifest.portability.unwrap_or_default();
    if options.json {
        console.out(&portability.to_json()?);
    } else {
        console.line(&portability.summary());
        console.out(&portability.render(10));
    }
    Ok(portability)
}
