//! The kernel a smoke run boots: a file, or `debian:SUITE`, the `vmlinuz` of the suite's current `linux-image-amd64`, fetched and verified through the package sysroot's code (the mirror from apt's sources) and kept in the download cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::build::debian::{self, DebianRequest, Wanted};
use crate::spec::KernelSource;

/// The kernel image of `source` on this machine, fetched first for
/// `debian:`.
pub fn image(source: &KernelSource) -> Result<PathBuf> {
    match source {
        KernelSource::Path(path) if path.is_file() => Ok(path.clone()),
        KernelSource::Path(path) => bail!("the kernel `{}` is not a file", path.display()),
        KernelSource::Debian { suite } => debian_image(suite),
    }
}

/// The `vmlinuz` of `suite`'s `linux-image-<arch>`: the metapackage's
/// first dependency is the versioned image package, whose `/boot/vmlinuz-*`
/// is extracted once next to its `.deb` in the cache.
fn debian_image(suite: &str) -> Result<PathBuf> {
    let request = DebianRequest { suite: suite.to_string(), ..DebianRequest::default() };
    let options = debian::Options::default();
    let source = debian::sysroot::archive_source(&request, Path::new("/"), &options)?;
    let cache = debian::cache::Cache::open(&debian::cache::default_dir()?)?;
    let indexes = debian::fetch::fetch_indexes(&source, &cache, &debian::fetch::Http::new())?;
    let packages: Vec<_> = indexes.iter().flat_map(|i| &i.packages).collect();
    let newest = |name: &str| {
        packages
            .iter()
            .filter(|p| p.id.name == name)
            .max_by(|a, b| debian::version::compare(&a.id.version, &b.id.version))
    };
    let meta = format!("linux-image-{}", source.architecture);
    let meta_package = newest(&meta).with_context(|| format!("`{suite}` has no `{meta}`"))?;
    let image_name = meta_package
        .depends
        .split([',', ' ', '('])
        .find(|name| name.starts_with("linux-image-"))
        .with_context(|| format!("`{meta}` of `{suite}` depends on no `linux-image-*`"))?;
    let image = newest(image_name).with_context(|| format!("`{suite}` has no `{image_name}`"))?;
    let wanted = Wanted::listed(image, &source);
    let fetched = debian::fetch(std::slice::from_ref(&wanted), &options)?;
    let deb = &fetched[0];
    let out = cache.path(&deb.sha256).with_extension("vmlinuz");
    if !out.is_file() {
        extract_vmlinuz(&deb.path, &out)?;
    }
    Ok(out)
}

/// Writes the package's `./boot/vmlinuz-*` to `out` (renamed into place
/// once whole).
fn extract_vmlinuz(deb: &Path, out: &Path) -> Result<()> {
    let partial = out.with_extension("vmlinuz.partial");
    let (_, found) = debian::deb::read(deb, |_, data| {
        let mut archive = tar::Archive::new(data);
        for entry in archive.entries().context("reading the data archive")? {
            let mut entry = entry.context("reading the data archive")?;
            let path = entry.path().context("reading a path of the data archive")?.into_owned();
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if path.parent().is_some_and(|p| p.ends_with("boot")) && name.starts_with("vmlinuz-") {
                let mut file = std::fs::File::create(&partial)
                    .with_context(|| format!("creating `{}`", partial.display()))?;
                std::io::copy(&mut entry, &mut file)
                    .with_context(|| format!("writing `{}`", partial.display()))?;
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    if !found {
        bail!("`{}` has no `/boot/vmlinuz-*`", deb.display());
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming `{}` to `{}`", partial.display(), out.display()))
}
