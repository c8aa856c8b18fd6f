//! One stopped thread of the traced tree, seen through its `/proc/<pid>` directory: the path its call names, and what is at that path inside its root.
//!
//! Everything is read while the thread waits for our answer, through a
//! descriptor of its `/proc/<pid>` directory: a descriptor that keeps naming
//! the same process even if the number is reused (`proc(5)`), once
//! `SECCOMP_IOCTL_NOTIF_ID_VALID` right after it is opened has shown that the
//! number still belonged to the waiting thread (the supervisor checks again
//! after the memory is read). The root and the lookup are needed only when a
//! call names a path, not for glibc's `fstat` (`fstatat(fd, "",
//! AT_EMPTY_PATH)`), which costs a notification but nothing more.
//! Paths are looked up inside the thread's own root (`/proc/<pid>/root`) with
//! `openat2(2)`'s `RESOLVE_IN_ROOT`, so that a chroot'ed or pivot_root'ed
//! process is handled as it sees itself.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::syscalls::{self, Flags, PathArg, Syscall};
use super::{Access, FileType, Found};

/// `PATH_MAX` (`<linux/limits.h>`): the kernel refuses longer paths with
/// `ENAMETOOLONG`, so a string without a NUL by then names nothing.
const PATH_MAX: usize = 4096;
/// Reads of the target's memory stop at page boundaries (x86_64 pages are
/// 4 KiB), so a string at the end of a mapping is read without touching the
/// unmapped page after it.
const PAGE: u64 = 4096;

/// What one call names, as the target sees it.
#[derive(Debug)]
pub(super) enum Named {
    /// An absolute path (inside the target's root) to look up.
    Path { access: Access, path: PathBuf, follow: bool },
    /// The file an open descriptor refers to, by its `/proc/<pid>/fd` link.
    Fd { access: Access, fd: i32, link: PathBuf },
    /// A call that names no new path: `fstat` done as `fstatat(fd, "",
    /// AT_EMPTY_PATH)` (glibc's `fstat`), or an empty path, which fails.
    Nothing,
}

/// A traced thread, by its `/proc/<pid>` directory.
pub(super) struct Target {
    proc_dir: OwnedFd,
}

/// The root directory of a traced thread, `/proc/<pid>/root`.
struct Root {
    fd: OwnedFd,
    /// Where that root is as this process sees it (`readlink` of
    /// `/proc/<pid>/root`): `/` unless the target is chroot'ed or in another
    /// mount namespace. Links of `/proc` are relative to the reader's root,
    /// so a link under this prefix, with the prefix removed, is the path the
    /// target sees.
    link: PathBuf,
}

impl Root {
    /// A path as this process sees it, as the target sees it.
    fn inside(&self, ours: &Path) -> Option<PathBuf> {
        in_root(&self.link, ours)
    }
}

impl Target {
    /// Opens `/proc/<pid>`. The caller checks that the notification is still
    /// valid afterwards: then this names the thread that made the call, and
    /// so does everything opened through it.
    pub(super) fn open(pid: u32) -> Result<Target, Errno> {
        let proc_dir = rustix::fs::open(
            format!("/proc/{pid}"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Target { proc_dir })
    }

    /// The thread's root, opened only for a call that names something.
    fn root(&self) -> Result<Root, Errno> {
        let fd = rustix::fs::openat(
            &self.proc_dir,
            "root",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd, link: link_at(&self.proc_dir, "root")? })
    }

    /// Reads what `syscall` with `args` names from the stopped thread: its
    /// path string, its flags, and the directory a relative path starts
    /// from. A failure carries the part of the path known so far.
    pub(super) fn named(
        &self,
        syscall: &Syscall,
        args: &[u64; 6],
    ) -> Result<Named, (PathBuf, Errno)> {
        let (dirfd, path_arg) = match syscall.path {
            PathArg::Fd(i) => {
                let fd = int(args[i]);
                let link = self.fd_link(fd).map_err(|e| (PathBuf::new(), e))?;
                return Ok(Named::Fd { access: syscall.access, fd, link });
            }
            PathArg::At { dirfd, path } => {
                (dirfd.map_or(syscalls::AT_FDCWD, |i| int(args[i])), path)
            }
        };
        let mem = rustix::fs::openat(
            &self.proc_dir,
            "mem",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| (PathBuf::new(), e))?;
        let bytes = match args[path_arg] {
            // A NULL path is allowed with AT_EMPTY_PATH (statx, fstatat).
            0 => Vec::new(),
            addr => read_string(&mem, addr).map_err(|e| (PathBuf::new(), e))?,
        };
        let flags = CallFlags::read(syscall, args, &mem).map_err(|e| (path_of(&bytes), e))?;
        let access = match syscall.access {
            Access::Open if flags.directory => Access::OpenDirectory,
            access => access,
        };
        if bytes.is_empty() {
            // `execveat(fd, "", AT_EMPTY_PATH)` is `fexecve`: the descriptor's
            // file is executed. Any other empty path is an fstat or an error.
            if flags.empty_path && access == Access::Exec && dirfd != syscalls::AT_FDCWD {
                let link = self.fd_link(dirfd).map_err(|e| (PathBuf::new(), e))?;
                return Ok(Named::Fd { access, fd: dirfd, link });
            }
            return Ok(Named::Nothing);
        }
        let relative = Path::new(OsStr::from_bytes(&bytes));
        let path = if relative.is_absolute() && !flags.in_root {
            normal(relative)
        } else {
            let base = self.dir_link(dirfd).map_err(|e| (path_of(&bytes), e))?;
            let root_link = link_at(&self.proc_dir, "root").map_err(|e| (path_of(&bytes), e))?;
            let base =
                in_root(&root_link, &base).ok_or_else(|| (base.join(relative), Errno::XDEV))?;
            normal(&base.join(relative.strip_prefix("/").unwrap_or(relative)))
        };
        Ok(Named::Path { access, path, follow: flags.follow })
    }

    /// What is at `named` inside the target's root, now (before the call
    /// runs: the caller answers the notification afterwards).
    pub(super) fn look_up(&self, named: Named) -> Option<(PathBuf, Access, Found)> {
        let unknown = |errno: Errno| Found::Unknown { errno: errno.raw_os_error() };
        match named {
            Named::Nothing => None,
            Named::Path { access, path, .. } if is_proc(&path) => Some((path, access, Found::Proc)),
            Named::Path { access, path, follow } => {
                let found = self.root().map_or_else(unknown, |root| find(&root, &path, follow));
                Some((path, access, found))
            }
            Named::Fd { access, fd, link } => Some(self.find_fd(access, fd, link)),
        }
    }

    /// An open descriptor's file: its link names it already resolved, and
    /// opening the link (a magic link, followed by the kernel) reaches the
    /// very file even if it was renamed since.
    fn find_fd(&self, access: Access, fd: i32, link: PathBuf) -> (PathBuf, Access, Found) {
        let unknown = |errno: Errno| Found::Unknown { errno: errno.raw_os_error() };
        let text = link.as_os_str().as_bytes();
        if !text.starts_with(b"/") || text.starts_with(b"/memfd:") || text.ends_with(b" (deleted)")
        {
            return (link, access, Found::NoPath);
        }
        let root = match self.root() {
            Ok(root) => root,
            Err(e) => return (link, access, unknown(e)),
        };
        let Some(path) = root.inside(&link) else {
            return (link, access, unknown(Errno::XDEV));
        };
        if is_proc(&path) {
            return (path, access, Found::Proc);
        }
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        let found =
            match rustix::fs::openat(&self.proc_dir, format!("fd/{fd}"), flags, Mode::empty())
                .and_then(|file| file_type(&file))
            {
                Ok(file_type) => Found::File { file_type, canonical: Some(path.clone()) },
                Err(e) => unknown(e),
            };
        (path, access, found)
    }

    /// The directory a relative path starts from: the working directory for
    /// `AT_FDCWD`, else the descriptor's file.
    fn dir_link(&self, dirfd: i32) -> Result<PathBuf, Errno> {
        if dirfd == syscalls::AT_FDCWD {
            link_at(&self.proc_dir, "cwd")
        } else {
            self.fd_link(dirfd)
        }
    }

    fn fd_link(&self, fd: i32) -> Result<PathBuf, Errno> {
        link_at(&self.proc_dir, format!("fd/{fd}"))
    }
}

/// What is at `path` (as the target names it) inside `root`.
fn find(root: &Root, path: &Path, follow: bool) -> Found {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    // RESOLVE_IN_ROOT: absolute symbolic links and `..` stay inside the
    // target's root, as they do for the target (`openat2(2)`); it also
    // refuses magic links (`/proc/self/fd/N`), whose meaning would be ours,
    // not the target's.
    match rustix::fs::openat2(&root.fd, path, flags, Mode::empty(), ResolveFlags::IN_ROOT) {
        Ok(fd) => match file_type(&fd) {
            Ok(file_type) => Found::File { file_type, canonical: canonical(root, &fd) },
            Err(e) => Found::Unknown { errno: e.raw_os_error() },
        },
        Err(Errno::NOENT | Errno::NOTDIR) => Found::Missing,
        Err(e) => Found::Unknown { errno: e.raw_os_error() },
    }
}

/// The path of a file we opened inside `root`, as the target sees it: our
/// `/proc/self/fd` link names it from our root, and inside the target's root
/// it is the part under the root's own link. `None` when it is not under it,
/// which `RESOLVE_IN_ROOT` should make impossible.
fn canonical(root: &Root, fd: &OwnedFd) -> Option<PathBuf> {
    let link = link_at(rustix::fs::CWD, format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    root.inside(&link)
}

/// `ours` (a path as this process sees it) as a process whose root this
/// process sees at `root_link` sees it.
fn in_root(root_link: &Path, ours: &Path) -> Option<PathBuf> {
    if root_link == Path::new("/") {
        return Some(ours.to_path_buf());
    }
    ours.strip_prefix(root_link).ok().map(|rest| Path::new("/").join(rest))
}

/// The flags of one call that change what it looks up.
#[derive(Default)]
struct CallFlags {
    follow: bool,
    directory: bool,
    empty_path: bool,
    /// `openat2` with `RESOLVE_IN_ROOT`: the path is inside the directory
    /// descriptor, even when absolute.
    in_root: bool,
}

impl CallFlags {
    fn read(syscall: &Syscall, args: &[u64; 6], mem: &OwnedFd) -> Result<CallFlags, Errno> {
        let open = |flags: u64| CallFlags {
            follow: flags & syscall.open.nofollow == 0,
            directory: flags & syscall.open.directory != 0,
            ..CallFlags::default()
        };
        Ok(match syscall.flags {
            Flags::Follow => CallFlags { follow: true, ..CallFlags::default() },
            Flags::NoFollow => CallFlags::default(),
            // open(2)'s flags are an `int`.
            Flags::Open(i) => open(u64::from(int(args[i]) as u32)),
            Flags::OpenHow(i) => {
                // struct open_how { u64 flags; u64 mode; u64 resolve; }
                let mut how = [0u8; 24];
                read_exact(mem, &mut how, args[i])?;
                let word = |n: usize| u64::from_ne_bytes(how[n * 8..n * 8 + 8].try_into().unwrap());
                CallFlags { in_root: word(2) & syscalls::RESOLVE_IN_ROOT != 0, ..open(word(0)) }
            }
            Flags::At(i) => {
                let at = u64::from(int(args[i]) as u32);
                CallFlags {
                    follow: at & syscalls::AT_SYMLINK_NOFOLLOW == 0,
                    empty_path: at & syscalls::AT_EMPTY_PATH != 0,
                    ..CallFlags::default()
                }
            }
        })
    }
}

/// An `int` argument: the kernel reads the low 32 bits of the register, on
/// both ABIs (i386 arguments arrive zero-extended, so `AT_FDCWD` is
/// `0xffffff9c`).
fn int(arg: u64) -> i32 {
    arg as u32 as i32
}

/// A NUL-terminated string at `addr` in the target's memory.
fn read_string(mem: &OwnedFd, mut addr: u64) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut buf = [0u8; PAGE as usize];
    while out.len() < PATH_MAX {
        let want = ((PAGE - addr % PAGE) as usize).min(PATH_MAX - out.len());
        let n = pread(mem, &mut buf[..want], addr)?;
        if let Some(nul) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        addr += n as u64;
    }
    Err(Errno::NAMETOOLONG)
}

fn read_exact(mem: &OwnedFd, buf: &mut [u8], mut addr: u64) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let n = pread(mem, &mut buf[done..], addr)?;
        done += n;
        addr += n as u64;
    }
    Ok(())
}

/// `pread` of the target's memory; a read of nothing is an unmapped
/// address (`proc(5)`, `/proc/pid/mem`).
fn pread(mem: &OwnedFd, buf: &mut [u8], addr: u64) -> Result<usize, Errno> {
    match rustix::io::pread(mem, buf, addr)? {
        0 => Err(Errno::IO),
        n => Ok(n),
    }
}

fn link_at<P: rustix::path::Arg>(dir: impl AsFd, path: P) -> Result<PathBuf, Errno> {
    let target = rustix::fs::readlinkat(dir, path, Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
}

fn file_type(fd: &OwnedFd) -> Result<FileType, Errno> {
    let stat = rustix::fs::fstat(fd)?;
    Ok(match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
        rustix::fs::FileType::Directory => FileType::Directory,
        rustix::fs::FileType::RegularFile => FileType::Regular,
        rustix::fs::FileType::Symlink => FileType::Symlink,
        _ => FileType::Other,
    })
}

fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// `/proc` and below: files that describe processes (and, read by us, would
/// describe the supervisor), recorded but never looked up.
fn is_proc(path: &Path) -> bool {
    path.starts_with("/proc")
}

/// `path` without `.` components and repeated slashes, which the kernel
/// skips too; `..` is kept, since only a lookup knows where it leads.
fn normal(path: &Path) -> PathBuf {
    path.components().filter(|c| *c != Component::CurDir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_drops_only_what_the_kernel_skips() {
        assert_eq!(normal(Path::new("/a/./b//c/../d/")), Path::new("/a/b/c/../d"));
        assert_eq!(normal(Path::new("/")), Path::new("/"));
    }

    #[test]
    fn paths_under_the_root_link_are_seen_without_it() {
        let root = Path::new("/srv/tree");
        assert_eq!(in_root(root, Path::new("/srv/tree/usr/bin")), Some("/usr/bin".into()));
        assert_eq!(in_root(root, Path::new("/srv/tree")), Some("/".into()));
        assert_eq!(in_root(root, Path::new("/srv/treehouse")), None);
        assert_eq!(in_root(Path::new("/"), Path::new("/etc")), Some("/etc".into()));
    }

    #[test]
    fn proc_paths_are_recognised_by_component() {
        assert!(is_proc(Path::new("/proc")));
        assert!(is_proc(Path::new("/proc/self/maps")));
        assert!(!is_proc(Path::new("/process")));
    }
}
