//! Sysroots unpacked into the cache folder: the [`Prepared`] result every source gives (directory, image, Debian packages), and the digest-named folder, filled under a temporary name and renamed, that an unchanged source reuses.
//!
//! Both unpackers, `build/image_sysroot.rs` (OCI layouts and tar archives) and
//! `build/debian/unpack.rs` (package sets), fill their folders through
//! `cached`, and write every entry by the rules of `layer.rs`.

pub(crate) mod layer;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};

use crate::fsutil;

/// A sysroot ready for the resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The directory to use as `/`.
    pub dir: PathBuf,
    /// `sha256:<hex>` of the image manifest or archive, for an image.
    pub image: Option<String>,
    /// Whether the image was unpacked now (rather than found in the cache).
    pub unpacked: bool,
    /// For a package sysroot, the package set it was made from, which the
    /// build records in the lock's `[debian]`.
    pub packages: Option<crate::build::lock::PackageSet>,
    /// What people should know about how it was made: for a package
    /// sysroot, each maintainer-script effect that was not reproduced.
    pub notes: Vec<String>,
}

/// The cache folder `name` (a digest of what fills it), filled by `fill`
/// under a temporary name and renamed when it is not there.
pub(crate) fn cached(
    cache_root: &Path,
    name: &str,
    image: Option<String>,
    fill: impl FnOnce(&std::os::fd::OwnedFd, &mut layer::DirModes) -> Result<()>,
) -> Result<Prepared> {
    let dir = cache_root.join(name);
    let prepared = |unpacked| Prepared {
        dir: dir.clone(),
        image: image.clone(),
        unpacked,
        packages: None,
        notes: Vec::new(),
    };
    if dir.is_dir() {
        return Ok(prepared(false));
    }
    std::fs::create_dir_all(cache_root)
        .with_context(|| format!("failed to create `{}`", cache_root.display()))?;
    // Unique per process and per call: two threads of one process (tests)
    // may fill the same name at once; the first rename wins.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = cache_root.join(format!(".{name}.partial-{}-{call}", std::process::id()));
    fsutil::remove_tree(&partial)?;
    std::fs::create_dir(&partial)
        .with_context(|| format!("failed to create `{}`", partial.display()))?;
    let filled = (|| {
        let root = rustix::fs::open(
            &partial,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("failed to open `{}`", partial.display()))?;
        let mut dirs = layer::DirModes::new();
        fill(&root, &mut dirs)?;
        layer::finish(&root, &dirs)?;
        // The image's root keeps the mode a root directory has.
        rustix::fs::fchmod(&root, Mode::from_raw_mode(0o755))?;
        Ok(())
    })();
    if let Err(e) = filled {
        let _ = fsutil::remove_tree(&partial);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&partial, &dir) {
        let _ = fsutil::remove_tree(&partial);
        // Another build unpacked the same image meanwhile.
        if !dir.is_dir() {
            return Err(e).with_context(|| format!("failed to create `{}`", dir.display()));
        }
    }
    Ok(prepared(true))
}
