//! An initramfs: the tree as a newc cpio archive (gzip by default), as the kernel unpacks it (`Documentation/driver-api/early-userspace/buffer-format.rst`), with `/dev/console` always in it and `/init` required.
//!
//! Reproducible: members in the tree's sorted order (a directory before its
//! content), inodes numbered from 1 in that order, one mtime, the owners of
//! the other exports (root, and each user's home), no device numbers but
//! the console's. A file with several names is stored once, with its
//! content under its first name; the kernel links the later names to it
//! (`maybe_link` in `init/initramfs.c`).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::tree::{Entry, Kind, Tree};
use super::{Exported, Job, archive};
use crate::spec::SpecError;

/// `/dev/console`: the kernel opens it for init's standard input, output
/// and error before it runs `/init` (`console_on_rootfs` in `init/main.c`).
const CONSOLE: (u32, u32) = (5, 1);

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Writes the job's tree as an initramfs.
pub(super) fn write(mut job: Job) -> Result<Exported> {
    check_init(&job)?;
    add_console(&mut job.tree)?;
    let mtime = u32::try_from(job.tree.epoch).map_err(|_| {
        anyhow::anyhow!("SOURCE_DATE_EPOCH {} does not fit a cpio header", job.tree.epoch)
    })?;
    let size = archive::write_file(&job, |out| write_archive(&job.tree, mtime, out))?;
    Ok(Exported::new(&job, size))
}

/// The kernel runs `/init` from the initramfs (`rdinit=`), and panics
/// without one: a tree without an executable `/init` is a spec mistake.
fn check_init(job: &Job) -> Result<()> {
    let spec = &job.built.spec;
    let help = "add a [[files]] entry with dest = \"/init\" and mode = \"0755\" (a script or a static program), or a [[symlinks]] entry from /init to a command";
    let sysroot = crate::resolve::sysroot::Sysroot::new(&job.tree.root);
    let real = sysroot.locate(Path::new("/init")).map(|l| l.real);
    let entry = real.ok().and_then(|real| job.tree.find(&real)).map(|i| &job.tree.entries[i]);
    match entry {
        None => Err(SpecError::in_file(
            &spec.path,
            "an initramfs needs `/init`, and this spec has none",
        )
        .help(help)
        .into()),
        Some(e)
            if !matches!(e.kind, Kind::File { .. } | Kind::HardLink { .. })
                || e.mode & 0o111 == 0 =>
        {
            Err(SpecError::in_file(
                &spec.path,
                format!(
                    "`/init` is not an executable file (it is `{}`, mode {:04o})",
                    e.path.display(),
                    e.mode
                ),
            )
            .help(help)
            .into())
        }
        Some(_) => Ok(()),
    }
}

fn add_console(tree: &mut Tree) -> Result<()> {
    let dev = tree.find(Path::new("/dev")).map(|i| &tree.entries[i].kind);
    if dev != Some(&Kind::Dir) {
        bail!("`/dev` is not a directory of the tree, so the initramfs cannot hold `/dev/console`");
    }
    let (major, minor) = CONSOLE;
    tree.insert(Entry {
        path: PathBuf::from("/dev/console"),
        kind: Kind::CharDevice { major, minor },
        mode: 0o600,
        uid: 0,
        gid: 0,
    })
    .context("the initramfs needs `/dev/console` as a device")
}

/// The members and the trailer.
fn write_archive(tree: &Tree, mtime: u32, out: &mut dyn Write) -> Result<()> {
    let groups = tree.hard_link_groups();
    let names = |i: usize| groups.iter().find(|g| g.contains(&i)).map_or(1, Vec::len) as u32;
    let mut inodes = vec![0u32; tree.entries.len()];
    let mut buffer = vec![0u8; 1 << 20];
    for (i, entry) in tree.entries.iter().enumerate() {
        inodes[i] = match entry.kind {
            Kind::HardLink { to } => inodes[to],
            _ => (i + 1) as u32,
        };
        let (kind, nlink, size, rdev) = match &entry.kind {
            Kind::Dir => (S_IFDIR, 2, 0, (0, 0)),
            Kind::File { size, .. } => (S_IFREG, names(i), *size, (0, 0)),
            Kind::HardLink { .. } => (S_IFREG, names(i), 0, (0, 0)),
            Kind::Symlink { target } => (S_IFLNK, 1, target.as_os_str().len() as u64, (0, 0)),
            Kind::CharDevice { major, minor } => (S_IFCHR, 1, 0, (*major, *minor)),
        };
        let size32 = u32::try_from(size).map_err(|_| {
            anyhow::anyhow!("`{}` is larger than cpio's 4 GiB", entry.path.display())
        })?;
        let header = Header {
            ino: inodes[i],
            mode: kind | entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            nlink,
            mtime,
            size: size32,
            rdev,
        };
        header.write(entry.relative().as_os_str().as_bytes(), out)?;
        match &entry.kind {
            Kind::File { size, .. } => {
                super::tar::copy_content(tree, entry, *size, &mut buffer, out)?
            }
            Kind::Symlink { target } => out.write_all(target.as_os_str().as_bytes())?,
            _ => {}
        }
        out.write_all(&[0u8; 3][..pad4(size)])?;
    }
    let trailer =
        Header { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0, rdev: (0, 0) };
    trailer.write(b"TRAILER!!!", out)?;
    Ok(())
}

/// A newc header (`070701`): thirteen 8-digit hexadecimal fields. Also
/// what `kernel_smoke`'s initramfs is written with.
pub(crate) struct Header {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub size: u32,
    pub rdev: (u32, u32),
}

impl Header {
    /// The header, the name with its NUL, and padding to 4 bytes.
    pub(crate) fn write(&self, name: &[u8], out: &mut dyn Write) -> Result<()> {
        let namesize = name.len() as u32 + 1;
        let fields = [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.size,
            0,
            0,
            self.rdev.0,
            self.rdev.1,
            namesize,
            0,
        ];
        let mut bytes = b"070701".to_vec();
        for field in fields {
            bytes.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.resize(bytes.len() + pad4(bytes.len() as u64), 0);
        out.write_all(&bytes).context("writing an initramfs")
    }
}

pub(crate) fn pad4(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}
