//! Applying one image layer (a tar stream, plain, gzip or zstd) to an unpacked root, whiteouts included, without any write landing outside that root.
//!
//! The rules, as the OCI image specification's "Applying Changesets" gives
//! them:
//! - an entry replaces whatever is at its path, except that a directory
//!   over a directory merges;
//! - `.wh.NAME` removes `NAME` of the layers below; `.wh..wh..opq` in a
//!   directory removes everything the layers below put in it (entries of
//!   this layer stay, wherever the marker comes in the stream).
//!
//! Safety: every entry's path is relative, and one with a `..` component is
//! refused. Its parent directory is opened from the root's descriptor with
//! `openat2(2)` and `RESOLVE_IN_ROOT`, so a symlink an earlier entry made
//! (`etc -> /etc`, `x -> ../../..`) resolves inside the root as it would in
//! a chroot, never outside; the last component is then created relative to
//! that descriptor with `O_EXCL | O_NOFOLLOW` (files), `mkdirat`,
//! `symlinkat` or `linkat`, and what was there is removed with
//! `unlinkat`, never by a path. Whiteouts resolve their directory with
//! `RESOLVE_NO_SYMLINKS` too: they name paths of the layers below, not
//! places reached through links.
//!
//! Owners, timestamps, extended attributes and device nodes are not kept:
//! the build only reads the sysroot's files, their modes and symlinks.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{CString, OsStr};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::fsutil;

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";

/// The exact mode of every directory made, applied once all layers are in
/// (directories are made writable while they are filled).
pub type DirModes = BTreeMap<PathBuf, u32>;

/// Applies the layer read from `reader` to the root open at `root`.
pub fn apply(root: &OwnedFd, reader: impl Read, dirs: &mut DirModes) -> Result<()> {
    let mut stream = decompress(reader)?;
    let first = first_block(&mut stream)?;
    let mut archive = tar::Archive::new(std::io::Cursor::new(first).chain(stream));
    let mut added: HashSet<PathBuf> = HashSet::new();
    let mut opaque: Vec<PathBuf> = Vec::new();
    for entry in archive.entries().context("reading the layer")? {
        let mut entry = entry.context("reading the layer")?;
        let rel = relative(&entry.path().context("reading an entry's path")?)?;
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else { continue };
        let text = name.to_string_lossy();
        if text == OPAQUE {
            opaque.push(parent.to_path_buf());
        } else if let Some(hidden) = text.strip_prefix(WHITEOUT) {
            if let Some(dir) = open_dir(root, parent, false, Within::Literal)? {
                fsutil::remove_tree_at(&dir, &c_name(OsStr::new(hidden))?)?;
            }
        } else {
            let dir = open_dir(root, parent, true, Within::Root)?.context("no parent")?;
            write_entry(root, &dir, name, &mut entry, dirs)
                .with_context(|| format!("unpacking `{}`", rel.display()))?;
            // With its parents, so an opaque directory keeps them too.
            added.extend(rel.ancestors().map(Path::to_path_buf));
        }
    }
    for dir in opaque {
        clear_below(root, &dir, &added)?;
    }
    Ok(())
}

/// A plain, gzip or zstd stream, told apart by its first bytes.
pub(crate) fn decompress<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::new(reader);
    let head = reader.fill_buf().context("reading the layer")?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader).context("reading zstd")?)
    } else {
        Box::new(reader)
    })
}

/// The size of a tar block, and of a header (`tar(5)`).
const BLOCK: usize = 512;

/// The stream's first block, checked to be a tar header (or the zeros that
/// end an empty archive) before the tar reader sees it: its messages about
/// a header that does not parse quote the header's bytes, which for a file
/// that is no archive (`/etc/passwd`) are the file's first lines.
fn first_block(stream: &mut impl Read) -> Result<Vec<u8>> {
    let mut block = Vec::with_capacity(BLOCK);
    stream.take(BLOCK as u64).read_to_end(&mut block).context("reading the layer")?;
    let header = block.len() == BLOCK && is_tar_header(&block);
    if !block.is_empty() && !header {
        bail!("not a tar archive (plain, gzip or zstd): its first {BLOCK} bytes are no tar header");
    }
    Ok(block)
}

/// Whether `block` is a tar header by its checksum, which every format
/// (v7, ustar, GNU, pax) has: the octal sum of the block's bytes, the
/// checksum field itself counted as spaces (`tar(5)`); or all zeros.
fn is_tar_header(block: &[u8]) -> bool {
    const FIELD: std::ops::Range<usize> = 148..156;
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let field = &block[FIELD];
    let digits: Vec<u8> = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b.is_ascii_digit())
        .copied()
        .collect();
    let Ok(text) = std::str::from_utf8(&digits) else { return false };
    let Ok(recorded) = u32::from_str_radix(text, 8) else { return false };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if FIELD.contains(&i) { u32::from(b' ') } else { u32::from(b) })
        .sum();
    sum == recorded
}

/// An entry's path relative to the root: `./`, `/` and `.` dropped, `..`
/// refused.
pub fn relative(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("`{}` leads outside the root", path.display())
            }
        }
    }
    Ok(out)
}

/// An entry path as a Debian package may spell it (`deb(5)`: members of
/// `data.tar` are relative, `./usr/bin/bash`): like [`relative`], but an
/// absolute path is refused too instead of being read from the root.
pub(crate) fn relative_strict(path: &Path) -> Result<PathBuf> {
    if path.has_root() {
        bail!("`{}` is an absolute path", path.display());
    }
    relative(path)
}

pub(crate) fn c_name(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes()).context("a name with a NUL byte")
}

/// How symlinks met on the way to a directory are followed (`openat2(2)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Within {
    /// `RESOLVE_IN_ROOT`: as in a chroot; an absolute or climbing link
    /// stays inside the root.
    Root,
    /// `RESOLVE_BENEATH`: relative links inside the root only; one that is
    /// absolute or climbs above the root fails with `EXDEV`.
    Beneath,
    /// `RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS`: the path as spelled.
    Literal,
}

/// Opens the directory `rel` of the root, resolved inside it as `within`
/// says (the module's rules), creating missing directories when `create`.
/// `None` when it does not exist and is not to be created. This is the one
/// place where a write into an unpacked root finds its directory: image
/// layers use it, and so does the Debian unpacker (`build/debian/unpack.rs`).
pub(crate) fn open_dir(
    root: &OwnedFd,
    rel: &Path,
    create: bool,
    within: Within,
) -> Result<Option<OwnedFd>> {
    let resolve = ResolveFlags::NO_MAGICLINKS
        | match within {
            Within::Root => ResolveFlags::IN_ROOT,
            Within::Beneath => ResolveFlags::BENEATH,
            Within::Literal => ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS,
        };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let path = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    match rustix::fs::openat2(root, path, flags, Mode::empty(), resolve) {
        Ok(fd) => return Ok(Some(fd)),
        Err(Errno::NOENT) if create => {}
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) if !create => return Ok(None),
        Err(Errno::XDEV) => {
            bail!("`{}` leads through a symlink out of the root", rel.display());
        }
        Err(e) => {
            return Err(e).with_context(|| format!("opening `{}` in the image", rel.display()));
        }
    }
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        bail!("the image's root cannot be opened");
    };
    let up = open_dir(root, parent, true, within)?.context("no parent")?;
    match rustix::fs::mkdirat(&up, &c_name(name)?, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("creating `{}`", rel.display())),
    }
    let fd = rustix::fs::openat2(root, path, flags, Mode::empty(), resolve)
        .with_context(|| format!("opening `{}` in the image", rel.display()))?;
    Ok(Some(fd))
}

/// Writes one entry as `name` in `dir`, replacing what is there.
fn write_entry<R: Read>(
    root: &OwnedFd,
    dir: &OwnedFd,
    name: &OsStr,
    entry: &mut tar::Entry<R>,
    dirs: &mut DirModes,
) -> Result<()> {
    let c = c_name(name)?;
    let header = entry.header();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let kind = header.entry_type();
    let existing = rustix::fs::statat(dir, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
    let is_dir = existing.as_ref().is_some_and(|s| {
        rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Directory
    });
    if kind.is_dir() {
        if !is_dir {
            fsutil::remove_tree_at(dir, &c)?;
            rustix::fs::mkdirat(dir, c.as_c_str(), Mode::from_raw_mode(0o700))?;
        }
        let rel = relative(&entry.path()?)?;
        dirs.insert(rel, mode);
        return Ok(());
    }
    if !(kind.is_file() || kind.is_symlink() || kind.is_hard_link()) {
        // Devices, fifos: nothing a build copies.
        return Ok(());
    }
    if existing.is_some() {
        fsutil::remove_tree_at(dir, &c)?;
    }
    if kind.is_symlink() {
        let target = entry.link_name()?.context("a symlink without a target")?;
        rustix::fs::symlinkat(target.as_os_str().as_bytes(), dir, c.as_c_str())?;
    } else if kind.is_hard_link() {
        let target = relative(&entry.link_name()?.context("a hard link without a target")?)?;
        let (Some(parent), Some(target_name)) = (target.parent(), target.file_name()) else {
            bail!("a hard link to the root");
        };
        let from = open_dir(root, parent, false, Within::Root)?
            .with_context(|| format!("the hard link target `{}` is missing", target.display()))?;
        rustix::fs::linkat(
            &from,
            c_name(target_name)?.as_c_str(),
            dir,
            c.as_c_str(),
            AtFlags::empty(),
        )
        .with_context(|| format!("linking to `{}`", target.display()))?;
    } else {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, c.as_c_str(), flags, Mode::from_raw_mode(0o600))?;
        let mut file = std::fs::File::from(fd);
        std::io::copy(entry, &mut file)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
    }
    Ok(())
}

/// An opaque directory: removes what the layers below left in it, keeping
/// this layer's entries.
fn clear_below(root: &OwnedFd, dir: &Path, added: &HashSet<PathBuf>) -> Result<()> {
    let Some(fd) = open_dir(root, dir, false, Within::Literal)? else { return Ok(()) };
    for name in fsutil::dir_names(&fd)? {
        let rel = dir.join(OsStr::from_bytes(name.as_bytes()));
        if !added.contains(&rel) {
            fsutil::remove_tree_at(&fd, &name)?;
        }
    }
    Ok(())
}

/// Gives every directory made its exact mode, deepest first.
pub fn finish(root: &OwnedFd, dirs: &DirModes) -> Result<()> {
    for (rel, mode) in dirs.iter().rev() {
        if let Some(fd) = open_dir(root, rel, false, Within::Literal)? {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(*mode))
                .with_context(|| format!("setting the mode of `{}`", rel.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_header_is_told_from_other_bytes_by_its_checksum() {
        let mut header = tar::Header::new_gnu();
        header.set_path("etc/passwd").unwrap();
        header.set_size(0);
        header.set_cksum();
        assert!(is_tar_header(header.as_bytes()));
        assert!(is_tar_header(&[0; BLOCK]));
        let mut changed = header.as_bytes().to_vec();
        changed[0] ^= 1;
        assert!(!is_tar_header(&changed));
        let mut text = b"root:x:0:0:root:/root:/bin/bash\n".repeat(20);
        text.truncate(BLOCK);
        assert!(!is_tar_header(&text));
        let message = format!("{:#}", first_block(&mut &text[..]).unwrap_err());
        assert_eq!(
            message,
            "not a tar archive (plain, gzip or zstd): its first 512 bytes are no tar header"
        );
        assert!(first_block(&mut &b"short"[..]).is_err());
        assert!(first_block(&mut &b""[..]).unwrap().is_empty());
    }
}
