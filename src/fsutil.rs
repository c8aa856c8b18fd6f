//! File helpers with no dependency inside the crate: atomic writes, removal that never follows a symlink, sibling paths, digests, and the RFC 3339 time written into outputs.
//!
//! `install`, `stamp`, `digest_cache`, `manifest` and `output` all call these;
//! keeping them here is what lets those modules not depend on each other.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags};
use sha2::{Digest, Sha256};

/// Whether `bytes` are one JSON map whose every entry reads as a `K` and a
/// `V` that `accept` takes, looked at one entry at a time and none kept:
/// recognising a side file of 60,000 entries this way costs no memory,
/// where reading it into a map would build one only to drop it.
pub fn is_json_map_of<K, V>(bytes: &[u8], accept: impl Fn(&K, &V) -> bool) -> bool
where
    K: serde::de::DeserializeOwned,
    V: serde::de::DeserializeOwned,
{
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Entries<K, V, F>(F, std::marker::PhantomData<(K, V)>);
    impl<'de, K, V, F> Visitor<'de> for Entries<K, V, F>
    where
        K: serde::de::DeserializeOwned,
        V: serde::de::DeserializeOwned,
        F: Fn(&K, &V) -> bool,
    {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut all = true;
            while let Some((k, v)) = map.next_entry::<K, V>()? {
                all &= (self.0)(&k, &v);
            }
            Ok(all)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let accepted = de.deserialize_map(Entries(accept, std::marker::PhantomData));
    accepted.is_ok_and(|all| all) && de.end().is_ok()
}

/// sha256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// sha256 of a file's content, read in large pieces, as lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    digest_file::<Sha256>(path)
}

/// A file's digest with any RustCrypto hash (`Sha256`, `Sha1`), read in
/// large pieces, as lowercase hex.
pub fn digest_file<D: Digest>(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = D::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            let digest = hasher.finalize();
            return Ok(digest.iter().map(|b| format!("{b:02x}")).collect());
        }
        hasher.update(&buffer[..n]);
    }
}

/// A Unix time as RFC 3339 UTC (`1970-01-01T00:00:00Z`), by Howard
/// Hinnant's `civil_from_days`, so that no date library is needed: the
/// `created` of images and SBOMs.
pub fn rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let seconds = epoch.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// A finished hasher's digest, as lowercase hex.
pub fn hex_digest(hasher: Sha256) -> String {
    format!("{:x}", hasher.finalize())
}

/// `<path><suffix>`, beside `path`: `target/rootfs/default` and
/// `.manifest.json` give `target/rootfs/default.manifest.json`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// The hidden folder that holds the files describing the outputs of one
/// folder (manifests, stamps, SBOMs, caches), beside them, so that
/// `--out ~/tree` adds `~/tree` and `~/.rootfs/`, not five files to `~`.
pub const SIDE_DIR: &str = ".rootfs";

/// [`SIDE_DIR`] in the folder holding `out`.
pub fn side_dir(out: &Path) -> PathBuf {
    parent_dir(out).join(SIDE_DIR)
}

/// `<out's name><suffix>` in [`side_dir`]: `target/rootfs/default` and
/// `.manifest.json` give `target/rootfs/.rootfs/default.manifest.json`.
pub fn side_file(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    side_dir(out).join(name)
}

/// [`write_file_atomically`] for a file of a [`side_dir`], which is made
/// first when missing (only it: a path the user gives, such as a JUnit
/// report's, never gets folders made for it).
pub fn write_side_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_side_file_with(path, |w| Ok(w.write_all(bytes)?))
}

/// [`write_side_file`] with the bytes given by `write` as it makes them
/// ([`write_atomically_with`]).
pub fn write_side_file_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let parent = parent_dir(path);
    if parent.file_name().is_some_and(|n| n == SIDE_DIR) {
        match std::fs::create_dir(parent) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).with_context(|| format!("failed to create `{}`", parent.display()));
            }
            _ => {}
        }
    }
    write_atomically_with(path, write)
}

/// The folder holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The mode every file the tool writes for the user is created with: 0666
/// less the user's umask (0644 under the usual 022), as `cp` or an editor
/// would give it, so that a lock, a manifest or a fragment is readable by
/// whoever may read the folder. `tempfile` alone would give 0600.
pub const USER_FILE_MODE: u32 = 0o666;

/// A fresh, randomly named temporary file in `dir`, created with O_EXCL (a
/// symlink planted under a predictable name cannot redirect the write) and
/// [`USER_FILE_MODE`] under the umask.
pub fn user_temp_file(dir: &Path, prefix: &str) -> Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(USER_FILE_MODE))
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temporary file in `{}`", dir.display()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so readers see the old or the new file, never half of one. The
/// file gets [`USER_FILE_MODE`] under the umask.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |w| Ok(w.write_all(bytes)?))
}

/// [`write_file_atomically`] with the bytes given by `write` as it makes
/// them, through a buffer: a manifest or SBOM of a large tree is tens of
/// megabytes that need not be held whole.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let parent = parent_dir(path);
    let tmp = user_temp_file(parent, ".tmp")?;
    let mut buffered = std::io::BufWriter::with_capacity(1 << 16, tmp);
    write(&mut buffered).with_context(|| format!("failed to write `{}`", path.display()))?;
    let tmp = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(())
}

/// Removes a file, a symlink or a whole tree without ever following a
/// symlink: every directory is opened with `O_NOFOLLOW` relative to its
/// parent's descriptor, made writable through that descriptor (a mode like
/// `/proc`'s 0555 would stop the removal of its content), emptied, then
/// removed. A path that does not exist is not an error.
pub fn remove_tree(path: &Path) -> Result<()> {
    let context = || format!("failed to remove `{}`", path.display());
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(context),
        Ok(meta) if !meta.is_dir() => return std::fs::remove_file(path).with_context(context),
        Ok(_) => {}
    }
    let dir = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(context)?;
    empty_dir(&dir).with_context(context)?;
    drop(dir);
    std::fs::remove_dir(path).with_context(context)
}

/// Removes `name` in the open directory `dir` (a file, a symlink, or a
/// whole tree) without following any symlink, as [`remove_tree`] does. A
/// name that does not exist is not an error.
pub fn remove_tree_at(dir: &OwnedFd, name: &std::ffi::CStr) -> Result<()> {
    let shown = || name.to_string_lossy().into_owned();
    let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("inspecting `{}`", shown())),
    };
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Directory {
        let child = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening `{}`", shown()))?;
        empty_dir(&child).with_context(|| format!("in `{}`", shown()))?;
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
            .with_context(|| format!("removing `{}`", shown()))
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .with_context(|| format!("removing `{}`", shown()))
    }
}

fn empty_dir(dir: &OwnedFd) -> Result<()> {
    let _ = rustix::fs::fchmod(dir, Mode::from_raw_mode(0o700));
    for name in dir_names(dir)? {
        remove_tree_at(dir, &name)?;
    }
    Ok(())
}

/// The names in an open directory, `.` and `..` left out.
pub fn dir_names(dir: &OwnedFd) -> Result<Vec<std::ffi::CString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).context("listing a directory")? {
        let entry = entry.context("listing a directory")?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn removal_never_follows_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("ro")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
        std::fs::write(tree.join("ro/file"), b"y").unwrap();
        std::fs::set_permissions(
            tree.join("ro"),
            std::os::unix::fs::PermissionsExt::from_mode(0o555),
        )
        .unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"x");
        assert_eq!(sibling(Path::new("/a/b"), ".json"), Path::new("/a/b.json"));
    }
}
