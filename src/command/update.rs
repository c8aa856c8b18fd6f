//! `rootfs update`: the spec's `[sysroot.debian]` packages resolved again from the mirror's current indexes, the lock's package set rewritten, and what changed said.

use std::path::PathBuf;

use anyhow::Result;

use super::Console;
use crate::UsageError;
use crate::build::lock::Update;

/// What `rootfs update` takes.
#[derive(Clone, Debug)]
pub struct UpdateOptions {
    /// The spec file; `None` for `default_spec`.
    pub spec: Option<PathBuf>,
    pub default_spec: PathBuf,
    /// Refuse any change to the lock.
    pub locked: bool,
}

/// Rewrites the lock's package set from the current indexes and says
/// what changed (or that nothing did).
pub fn update(options: &UpdateOptions, console: &mut dyn Console) -> Result<Update> {
    let spec = options.spec.clone().unwrap_or_else(|| options.default_spec.clone());
    let loaded = crate::spec::load(&spec)?;
    let Some(request) = loaded.debian.as_ref().map(|item| {
        crate::build::debian::merge_request(Some(&item.value), None, &[], &loaded.debian_packages)
    }) else {
        return Err(UsageError(format!(
            "`{}` has no `[sysroot.debian]`: there is no package set to update",
            spec.display()
        ))
        .into());
    };
    let fetch = crate::build::debian::Options { progress: true, ..Default::default() };
    let lock = crate::build::lock::path_for(&spec);
    let update = crate::build::debian::package_set::update(
        &request,
        &loaded.name,
        &lock,
        &fetch,
        options.locked,
    )?;
    match update.summary(true) {
        Some(text) => console.note(&text),
        None if update.refreshed => console.note(&format!(
            "the lock `{}` names the same packages; rewritten with the fields this version records",
            update.path.display()
        )),
        None => console.note(&format!("the lock `{}` is up to date", update.path.display())),
    }
    Ok(update)
}
