//! `rootfs build`: every tree of the spec built (one per architecture of a multi-architecture spec), each one's summary and portability said.

use anyhow::Result;

use super::Console;
use super::target::{self, Target};
use crate::build::Built;

/// What `rootfs build` takes.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub target: Target,
    /// Rebuild even when nothing changed.
    pub force: bool,
}

/// What `rootfs build` made.
pub struct BuildReport {
    /// Every tree, in the spec's order of architectures.
    pub built: Vec<Built>,
}

/// Builds every tree of the spec; says each one's summary and what it
/// needs of the machine on the console's output.
pub fn build(options: &BuildOptions, console: &mut dyn Console) -> Result<BuildReport> {
    let parts = target::built_parts(&options.target, options.force, console)?;
    let built: Vec<Built> = parts.into_iter().map(|(_, built)| built).collect();
    for one in &built {
        console.line(&one.summary());
        if let Some(portability) = &one.manifest.portability {
            console.line(&portability.summary());
        }
    }
    Ok(BuildReport { built })
}
