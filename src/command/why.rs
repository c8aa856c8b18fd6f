//! `rootfs why`: why a path is in a built tree, from the manifest that describes the tree in place.

use std::path::PathBuf;

use anyhow::Result;

use super::Console;
use super::target::{self, Target};
use crate::UsageError;

/// What `rootfs why` takes.
#[derive(Clone, Debug)]
pub struct WhyOptions {
    /// The spec and output folder of the tree to ask.
    pub target: Target,
    /// A path inside the tree.
    pub path: PathBuf,
}

/// Says why `options.path` is in the tree, and returns that text; a path
/// the tree lacks is a usage error.
pub fn why(options: &WhyOptions, console: &mut dyn Console) -> Result<String> {
    let build_options = target::build_options(&options.target, console)?;
    let spec = crate::spec::load(&build_options.spec)?;
    let out = crate::build::out_dir(&build_options, &spec);
    let manifest = crate::build::Beside::of(&out).current_manifest()?;
    match manifest.why(&options.path) {
        Some(text) => {
            console.out(&text);
            Ok(text)
        }
        None => {
            Err(UsageError(format!("`{}` is not in {}", options.path.display(), out.display()))
                .into())
        }
    }
}
