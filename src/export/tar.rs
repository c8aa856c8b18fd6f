//! A deterministic tar writer: POSIX ustar headers written by hand from the tree's entries, with PAX records only for what ustar cannot hold, so the bytes depend on nothing but the entries.
//!
//! What makes two archives of the same entries identical (`pax(1)`, "ustar
//! Interchange Format"): entries in the tree's sorted order; one mtime;
//! numeric owners with empty user and group names; no atime or ctime
//! records; the modes of the tree; hard links as `LNKTYPE` entries naming
//! the first path of the file; no record padding. The size of an archive
//! is known before it is written ([`size`]), which a tar inside a tar (the
//! docker archive) needs.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result, bail};

use super::tree::{Entry, Kind, Tree};

const BLOCK: usize = 512;

/// Two zero blocks end an archive.
pub const END: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// How entry names are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// Put before every name: `""` for image layers (`usr/bin/bash`, as
    /// image builders write them), `"./"` for a whole-tree archive (as
    /// `tar -C TREE -cf - .` writes it).
    pub prefix: &'static str,
    /// Whether the archive starts with the tree's root folder (`./`).
    pub root: bool,
}

/// Image layers: no root entry, names without `./`.
pub const LAYER: Style = Style { prefix: "", root: false };
/// A whole tree: the root entry, names starting with `./`.
pub const ARCHIVE: Style = Style { prefix: "./", root: true };

/// One archive member, as the header describes it.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub linkname: &'a [u8],
}

impl Header<'_> {
    /// A regular file owned by root, for archives this tool assembles.
    pub fn file(name: &[u8], size: u64, mtime: i64) -> Header<'_> {
        Header { name, typeflag: b'0', mode: 0o644, uid: 0, gid: 0, size, mtime, linkname: b"" }
    }

    /// A directory owned by root; `name` ends with `/`.
    pub fn dir(name: &[u8], mtime: i64) -> Header<'_> {
        Header { name, typeflag: b'5', mode: 0o755, uid: 0, gid: 0, size: 0, mtime, linkname: b"" }
    }
}

/// The header blocks of a member: a PAX extended header first when a
/// value does not fit ustar's fields, then the ustar header.
pub fn header_bytes(h: &Header) -> Vec<u8> {
    let mut block = [0u8; BLOCK];
    let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
    match split_name(h.name) {
        Some((prefix, name)) => {
            block[..name.len()].copy_from_slice(name);
            block[345..345 + prefix.len()].copy_from_slice(prefix);
        }
        None => {
            pax.push(("path", h.name.to_vec()));
            let short = &h.name[..h.name.len().min(100)];
            block[..short.len()].copy_from_slice(short);
        }
    }
    octal(&mut block[100..108], u64::from(h.mode & 0o7777));
    for (range, key, value) in [(108..116, "uid", h.uid), (116..124, "gid", h.gid)] {
        if !octal(&mut block[range], u64::from(value)) {
            pax.push((key, value.to_string().into_bytes()));
        }
    }
    if !octal(&mut block[124..136], h.size) {
        pax.push(("size", h.size.to_string().into_bytes()));
    }
    if h.mtime < 0 || !octal(&mut block[136..148], h.mtime as u64) {
        octal(&mut block[136..148], 0);
        pax.push(("mtime", h.mtime.to_string().into_bytes()));
    }
    block[156] = h.typeflag;
    if h.linkname.len() <= 100 {
        block[157..157 + h.linkname.len()].copy_from_slice(h.linkname);
    } else {
        pax.push(("linkpath", h.linkname.to_vec()));
        block[157..257].copy_from_slice(&h.linkname[..100]);
    }
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    octal(&mut block[329..337], 0);
    octal(&mut block[337..345], 0);
    checksum(&mut block);
    let mut out = Vec::with_capacity(3 * BLOCK);
    if !pax.is_empty() {
        out.extend(pax_member(h, &pax));
    }
    out.extend_from_slice(&block);
    out
}

/// A PAX extended header member (`typeflag` `x`) holding `records`, named
/// `PaxHeaders/<last component>` (never with a process id, as GNU tar
/// names them, which would make archives differ).
fn pax_member(h: &Header, records: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in records {
        // "%d %s=%s\n", where the length counts its own digits.
        let base = key.len() + value.len() + 3;
        let mut len = base + 1;
        while base + len.to_string().len() != len {
            len += 1;
        }
        body.extend_from_slice(format!("{len} {key}=").as_bytes());
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    let trimmed = h.name.strip_suffix(b"/").unwrap_or(h.name);
    let last = trimmed.rsplit(|b| *b == b'/').next().unwrap_or(b"");
    let mut name = b"PaxHeaders/".to_vec();
    name.extend_from_slice(&last[..last.len().min(100 - name.len())]);
    let header = Header {
        name: &name,
        typeflag: b'x',
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: body.len() as u64,
        mtime: h.mtime.max(0),
        linkname: b"",
    };
    let mut out = header_bytes(&header);
    out.extend_from_slice(&body);
    out.extend(std::iter::repeat_n(0u8, padding(body.len() as u64)));
    out
}

/// ustar's `name` (100 bytes) and `prefix` (155 bytes), split at a `/`, or
/// `None` when the name needs a PAX `path` record.
fn split_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((b"", name));
    }
    if name.len() > 256 {
        return None;
    }
    // The longest name part that fits leaves the shortest prefix.
    let search = &name[..name.len() - 1];
    (0..search.len())
        .filter(|&i| search[i] == b'/')
        .find(|&i| i <= 155 && name.len() - i - 1 <= 100)
        .map(|i| (&name[..i], &name[i + 1..]))
}

/// Writes `value` as zero-padded octal filling the field but its last byte
/// (a NUL); false when it does not fit.
fn octal(field: &mut [u8], value: u64) -> bool {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    if text.len() > width {
        return false;
    }
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
    true
}

/// The header checksum: the sum of its bytes with the checksum field read
/// as spaces, as six octal digits, a NUL and a space.
fn checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(text.as_bytes());
}

/// Zero bytes after content of `size` bytes, to the next block.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The member name of an entry in `style`: directories end with `/`.
fn member_name(style: Style, entry: &Entry) -> Vec<u8> {
    let mut name = style.prefix.as_bytes().to_vec();
    name.extend_from_slice(entry.relative().as_os_str().as_bytes());
    if entry.kind == Kind::Dir {
        name.push(b'/');
    }
    name
}

/// The header of an entry of the tree, as written in `style`.
fn entry_header(tree: &Tree, style: Style, entry: &Entry) -> Result<Vec<u8>> {
    let name = member_name(style, entry);
    let link_name;
    let (typeflag, size, linkname): (u8, u64, &[u8]) = match &entry.kind {
        Kind::Dir => (b'5', 0, b""),
        Kind::File { size, .. } => (b'0', *size, b""),
        Kind::HardLink { to } => {
            link_name = member_name(style, &tree.entries[*to]);
            (b'1', 0, &link_name)
        }
        Kind::Symlink { target } => (b'2', 0, target.as_os_str().as_bytes()),
        Kind::CharDevice { .. } => {
            bail!("`{}`: devices are not written to tar archives", entry.path.display())
        }
    };
    Ok(header_bytes(&Header {
        name: &name,
        typeflag,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        size,
        mtime: tree.epoch,
        linkname,
    }))
}

/// The root folder's header (`./`), mode 0755, owned by root.
fn root_header(tree: &Tree) -> Vec<u8> {
    header_bytes(&Header::dir(b"./", tree.epoch))
}

/// The exact size of the archive [`write`] writes.
pub fn size(tree: &Tree, select: &[usize], style: Style) -> Result<u64> {
    let mut total = END.len() as u64;
    if style.root {
        total += root_header(tree).len() as u64;
    }
    for &i in select {
        let entry = &tree.entries[i];
        let content = Tree::content_size(entry);
        total += entry_header(tree, style, entry)?.len() as u64 + content + padding(content) as u64;
    }
    Ok(total)
}

/// Writes the entries `select` (indices into the tree's entries, in
/// order) as one archive. Hard links must come with the file they name.
pub fn write(
    tree: &Tree,
    select: &[usize],
    style: Style,
    out: &mut (impl Write + ?Sized),
) -> Result<()> {
    if style.root {
        out.write_all(&root_header(tree)).context("writing an archive")?;
    }
    let mut buffer = vec![0u8; 1 << 20];
    for &i in select {
        let entry = &tree.entries[i];
        out.write_all(&entry_header(tree, style, entry)?).context("writing an archive")?;
        if let Kind::File { size, .. } = entry.kind {
            copy_content(tree, entry, size, &mut buffer, out)?;
            out.write_all(&[0u8; BLOCK][..padding(size)]).context("writing an archive")?;
        }
    }
    out.write_all(&END).context("writing an archive")?;
    Ok(())
}

/// Copies exactly `size` bytes of a tree file; a file that is now shorter
/// or longer than the manifest says is an error, not a corrupt archive.
pub fn copy_content(
    tree: &Tree,
    entry: &Entry,
    size: u64,
    buffer: &mut [u8],
    out: &mut (impl Write + ?Sized),
) -> Result<()> {
    let mut file = tree.open(entry)?;
    let shown = || format!("`{}` in `{}`", entry.path.display(), tree.root.display());
    let mut left = size;
    while left > 0 {
        let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file
            .read(&mut buffer[..want])
            .with_context(|| format!("failed to read {}", shown()))?;
        if n == 0 {
            bail!("{} is shorter than its manifest says: rebuild with --force", shown());
        }
        out.write_all(&buffer[..n]).context("writing an archive")?;
        left -= n as u64;
    }
    let mut probe = [0u8; 1];
    if file.read(&mut probe).with_context(|| format!("failed to read {}", shown()))? != 0 {
        bail!("{} is longer than its manifest says: rebuild with --force", shown());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_ustar_with_a_valid_checksum() {
        let bytes = header_bytes(&Header::file(b"etc/hosts", 10, 0));
        assert_eq!(bytes.len(), BLOCK);
        assert_eq!(&bytes[257..265], b"ustar\x0000");
        assert_eq!(&bytes[124..136], b"00000000012\0");
        let stored =
            u32::from_str_radix(std::str::from_utf8(&bytes[148..154]).unwrap(), 8).unwrap();
        let mut copy = bytes.clone();
        copy[148..156].fill(b' ');
        assert_eq!(stored, copy.iter().map(|&b| u32::from(b)).sum::<u32>());
        // No user or group names: owners are numeric.
        assert!(bytes[265..329].iter().all(|&b| b == 0));
    }

    #[test]
    fn long_names_are_split_or_moved_to_a_pax_record() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let bytes = header_bytes(&Header::file(long.as_bytes(), 0, 0));
        assert_eq!(bytes.len(), BLOCK, "a name that splits needs no PAX record");
        assert_eq!(&bytes[345..465], "d".repeat(120).as_bytes());
        let longer = "x".repeat(300);
        let bytes = header_bytes(&Header::file(longer.as_bytes(), 0, 0));
        assert_eq!(bytes[156], b'x');
        let body = String::from_utf8_lossy(&bytes[BLOCK..2 * BLOCK]);
        let record = body.trim_end_matches('\0');
        let (len, rest) = record.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), record.len());
        assert_eq!(rest, format!("path={longer}\n"));
        assert_eq!(bytes.len(), 3 * BLOCK);
    }

    #[test]
    fn values_too_large_for_ustar_go_to_pax_records() {
        let mut h = Header::file(b"big", 9 << 33, -5);
        h.uid = 1 << 30;
        let bytes = header_bytes(&h);
        let body = String::from_utf8_lossy(&bytes[BLOCK..2 * BLOCK]).into_owned();
        assert!(body.contains(" uid=1073741824\n"), "{body}");
        assert!(body.contains(&format!(" size={}\n", 9u64 << 33)), "{body}");
        assert!(body.contains(" mtime=-5\n"), "{body}");
    }
}
