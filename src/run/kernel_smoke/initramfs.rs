//! The initramfs a kernel smoke run boots: the guest's init (this tool's own program, with the loader and libraries it needs at the paths the loader searches), the job, and the tree under `/tree`, as an uncompressed newc archive (nothing to decompress in an emulated guest).

use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::export::cpio::{Header, pad4};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// The init's path, given to the kernel as `rdinit=`.
pub const INIT: &str = "/rootfs-guest/init";

/// One member of the archive.
enum Member {
    Dir {
        mode: u32,
    },
    /// A host file's content.
    File {
        from: PathBuf,
        mode: u32,
        size: u64,
    },
    Symlink {
        target: PathBuf,
    },
    /// `/dev/console`, which the kernel opens for init before it runs it.
    Console,
}

/// Writes the initramfs to `out`: `agent` (a dynamically linked program)
/// as the init, `job` as [`super::wire::JOB_PATH`], `tree` under
/// [`super::guest::TREE`].
pub fn write(out: &Path, agent: &Path, job: &[u8], tree: &Path) -> Result<()> {
    let mut members: Vec<(PathBuf, Member)> = Vec::new();
    for dir in ["/dev", "/proc", "/sys", "/tmp", "/rootfs-guest"] {
        members.push((PathBuf::from(dir), Member::Dir { mode: 0o755 }));
    }
    members.push((PathBuf::from("/dev/console"), Member::Console));
    add_agent(&mut members, agent)?;
    members.push((PathBuf::from(super::guest::TREE), Member::Dir { mode: 0o755 }));
    add_tree(&mut members, tree, Path::new(super::guest::TREE))?;
    let job_file = out.with_extension("job.json");
    std::fs::write(&job_file, job).with_context(|| format!("writing `{}`", job_file.display()))?;
    let size = job.len() as u64;
    members.push((
        PathBuf::from(super::wire::JOB_PATH),
        Member::File { from: job_file, mode: 0o644, size },
    ));
    let file =
        std::fs::File::create(out).with_context(|| format!("creating `{}`", out.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    write_members(&members, &mut writer).with_context(|| format!("writing `{}`", out.display()))?;
    writer.flush().with_context(|| format!("writing `{}`", out.display()))
}

/// The agent as [`INIT`], and every file the loader opens for it at the
/// path it opens it by, each parent a real directory.
fn add_agent(members: &mut Vec<(PathBuf, Member)>, agent: &Path) -> Result<()> {
    let resolver = crate::resolve::Resolver::new(crate::resolve::Options::default())?;
    let closure = resolver.resolve(&agent.display().to_string());
    if !closure.is_complete() || closure.error.is_some() {
        bail!("`{}` cannot be the guest's init: its libraries are not all found", agent.display());
    }
    members.push((PathBuf::from(INIT), file_member(agent)?));
    let mut dirs = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for opened in &closure.files {
        let path = normal(&opened.path)
            .with_context(|| format!("the agent's library path `{}`", opened.path.display()))?;
        for parent in path.ancestors().skip(1).filter(|p| *p != Path::new("/")) {
            dirs.insert(parent.to_path_buf());
        }
        files.push((path, file_member(&opened.located.real)?));
    }
    members.extend(dirs.into_iter().map(|d| (d, Member::Dir { mode: 0o755 })));
    members.extend(files);
    Ok(())
}

/// `path` without `.` and `..` (which a loader's name may hold).
fn normal(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            std::path::Component::Normal(p) => out.push(p),
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            std::path::Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn file_member(from: &Path) -> Result<Member> {
    let meta = std::fs::metadata(from).with_context(|| format!("reading `{}`", from.display()))?;
    Ok(Member::File {
        from: from.to_path_buf(),
        mode: meta.permissions().mode() & 0o7777,
        size: meta.len(),
    })
}

/// Every entry of the tree below `inside`, sorted, a directory before its
/// content; symlinks as they are, hard links as copies.
fn add_tree(members: &mut Vec<(PathBuf, Member)>, host: &Path, inside: &Path) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(host)
        .with_context(|| format!("reading the folder `{}`", host.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading the folder `{}`", host.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading `{}`", path.display()))?;
        let name = inside.join(entry.file_name());
        let mode = meta.mode() & 0o7777;
        if meta.is_dir() {
            members.push((name.clone(), Member::Dir { mode }));
            add_tree(members, &path, &name)?;
        } else if meta.is_symlink() {
            let target = std::fs::read_link(&path)
                .with_context(|| format!("reading the link `{}`", path.display()))?;
            members.push((name, Member::Symlink { target }));
        } else if meta.is_file() {
            members.push((name, Member::File { from: path, mode, size: meta.len() }));
        } else {
            bail!("`{}` is neither a folder, a file nor a symlink", path.display());
        }
    }
    Ok(())
}

/// The members, numbered from 1, owned by root, and the trailer.
fn write_members(members: &[(PathBuf, Member)], out: &mut dyn Write) -> Result<()> {
    let mut buffer = vec![0u8; 1 << 20];
    for (i, (path, member)) in members.iter().enumerate() {
        let (mode, size, rdev) = match member {
            Member::Dir { mode } => (S_IFDIR | mode, 0, (0, 0)),
            Member::File { mode, size, .. } => (S_IFREG | mode, *size, (0, 0)),
            Member::Symlink { target } => {
                (S_IFLNK | 0o777, target.as_os_str().len() as u64, (0, 0))
            }
            Member::Console => (S_IFCHR | 0o600, 0, (5, 1)),
        };
        let size32 = u32::try_from(size)
            .map_err(|_| anyhow::anyhow!("`{}` is larger than cpio's 4 GiB", path.display()))?;
        let nlink = if matches!(member, Member::Dir { .. }) { 2 } else { 1 };
        let header =
            Header { ino: i as u32 + 1, mode, uid: 0, gid: 0, nlink, mtime: 0, size: size32, rdev };
        let name = path.strip_prefix("/").unwrap_or(path);
        header.write(name.as_os_str().as_bytes(), out)?;
        match member {
            Member::File { from, size, .. } => copy(from, *size, &mut buffer, out)?,
            Member::Symlink { target } => out.write_all(target.as_os_str().as_bytes())?,
            _ => {}
        }
        out.write_all(&[0u8; 3][..pad4(size)])?;
    }
    let trailer =
        Header { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0, rdev: (0, 0) };
    trailer.write(b"TRAILER!!!", out)
}

/// Exactly `size` bytes of `from`: a file that changed size since it was
/// listed is an error, not a broken archive.
fn copy(from: &Path, size: u64, buffer: &mut [u8], out: &mut dyn Write) -> Result<()> {
    use std::io::Read;
    let file =
        std::fs::File::open(from).with_context(|| format!("opening `{}`", from.display()))?;
    let mut limited = file.take(size);
    let mut copied = 0u64;
    loop {
        let n = limited.read(buffer).with_context(|| format!("reading `{}`", from.display()))?;
        if n == 0 {
            break;
        }
        out.write_all(&buffer[..n])?;
        copied += n as u64;
    }
    if copied != size {
        bail!("`{}` changed while it was archived ({copied} bytes, not {size})", from.display());
    }
    Ok(())
}
