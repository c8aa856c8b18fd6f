//! A host directory seen as `/`: paths inside it are resolved the way the kernel resolves them in a chroot.
//!
//! Path vocabulary used across the crate:
//! - a *root path* is an absolute path in the sysroot's own namespace, such as
//!   `/usr/lib/x86_64-linux-gnu/libc.so.6`;
//! - a *host path* is where that file lives on the machine running the tool,
//!   `sysroot.host(root_path)`.
//!
//! Symlinks are followed inside the root only, by the walker of
//! `resolve/rootpath.rs`: an absolute target restarts at the sysroot, and `..` stops
//! at it, as with `openat2(2)`'s `RESOLVE_IN_ROOT`. Every symlink crossed is
//! recorded, because a rootfs built from these paths must recreate the same
//! chain.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use crate::resolve::rootpath::Link;
use crate::resolve::rootpath::{self, Node, Walk, WalkError, Walked};

/// A path resolved inside a sysroot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// Root path with every symlink resolved: the file's real location.
    pub real: PathBuf,
    /// The symlinks crossed, in the order they were followed.
    pub links: Vec<Link>,
    /// Identity of the real file, as the loader compares it (`st_dev`,
    /// `st_ino`), and its type.
    pub dev: u64,
    pub ino: u64,
    pub is_dir: bool,
    /// The real file's `st_mode` permission bits (`0o7777`) and size, from
    /// the same `stat(2)`: the plan takes them from here rather than
    /// stat'ing every file again for each closure that holds it.
    pub mode: u32,
    pub size: u64,
}

/// A host directory treated as `/`, with a cache of resolved directories so
/// that a directory searched for many libraries is resolved once.
///
/// A directory is always resolved from `/` (its parents from the cache),
/// never from the middle of another lookup's chain of symlinks; it is cached
/// with the symlinks crossed to reach it, which count toward the limit of a
/// walk that goes on from there. A lookup therefore gets the answer a walk
/// from `/` would give, whatever other lookups ran before it, on whatever
/// thread. `ELOOP` and I/O errors are not cached at all.
#[derive(Debug)]
pub struct Sysroot {
    root: PathBuf,
    /// Root path of a directory as asked (not normalised) -> where it leads.
    dirs: RwLock<HashMap<PathBuf, Result<Arc<Walked>, Absent>>>,
}

/// Why a directory leads nowhere, kept in the cache: a missing component
/// or a file on the way, which no count of symlinks changes. A directory
/// searched for many names (a hwcaps subdirectory that does not exist) is
/// looked up once.
#[derive(Clone, Debug)]
enum Absent {
    NotFound(PathBuf),
    NotADirectory(PathBuf),
}

impl From<Absent> for WalkError {
    fn from(absent: Absent) -> WalkError {
        match absent {
            Absent::NotFound(p) => WalkError::NotFound(p),
            Absent::NotADirectory(p) => WalkError::NotADirectory(p),
        }
    }
}

impl Sysroot {
    pub fn new(root: impl Into<PathBuf>) -> Sysroot {
        Sysroot { root: root.into(), dirs: RwLock::new(HashMap::new()) }
    }

    /// The host directory that plays `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the sysroot is the host's own `/`.
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The host path of a root path, without resolving anything.
    pub fn host(&self, root_path: &Path) -> PathBuf {
        self.root.join(root_path.strip_prefix("/").unwrap_or(root_path))
    }

    /// Resolves `path` (a root path; relative paths are taken from `/`)
    /// following every symlink inside the sysroot. The error is the one the
    /// kernel would give (`ENOENT`, `ENOTDIR`, `ELOOP`, or that of `lstat`).
    pub fn locate(&self, path: &Path) -> io::Result<Located> {
        Ok(self.locate_walked(path)?)
    }

    /// The real root path of the directory `dir` (every symlink followed),
    /// from the cache of directories; `None` when it leads nowhere or to
    /// something else than a directory. For many lookups of few
    /// directories (the parents of every path a package lists).
    pub fn real_dir(&self, dir: &Path) -> Option<PathBuf> {
        self.locate_dir(dir).ok().map(|walked| walked.real.clone())
    }

    /// Resolves `path` from `/` as `how` says, without the cache of
    /// directories: for a path asked about once (a mount point).
    pub fn walk(&self, path: &Path, how: Walk) -> Result<Walked, WalkError> {
        rootpath::walk(path, how, |p| self.lookup(p).map(|(node, _)| node))
    }

    fn locate_walked(&self, path: &Path) -> Result<Located, WalkError> {
        let (parent, last) = split_last(path);
        let dir = self.locate_dir(&parent)?;
        // The lstat of the last path looked up: the real file's identity
        // when the walk ends there, as it does unless it ends with `..`.
        let mut seen: Option<(PathBuf, Metadata)> = None;
        let walked = match last {
            None => dir.as_ref().clone(),
            Some(last) => rootpath::walk_from(&dir, Path::new(&last), Walk::FOLLOW, |p| {
                let (node, meta) = self.lookup(p)?;
                seen = meta.map(|m| (p.to_path_buf(), m));
                Ok(node)
            })?,
        };
        let meta = match seen {
            Some((path, meta)) if path == walked.real => meta,
            _ => std::fs::metadata(self.host(&walked.real))
                .map_err(|e| WalkError::Io(walked.real.clone(), e))?,
        };
        Ok(Located {
            real: walked.real,
            links: walked.links,
            dev: meta.dev(),
            ino: meta.ino(),
            is_dir: meta.is_dir(),
            mode: meta.mode() & 0o7777,
            size: meta.size(),
        })
    }

    /// Resolves a directory, from the cache when it was resolved before.
    fn locate_dir(&self, dir: &Path) -> Result<Arc<Walked>, WalkError> {
        let (parent, last) = split_last(dir);
        let Some(last) = last else {
            return Ok(Arc::new(Walked::root()));
        };
        if let Some(cached) = self.dirs.read().expect("sysroot cache poisoned").get(dir) {
            return cached.clone().map_err(WalkError::from);
        }
        let up = self.locate_dir(&parent)?;
        let walked = rootpath::walk_from(&up, Path::new(&last), Walk::FOLLOW, |p| {
            self.lookup(p).map(|(node, _)| node)
        })
        .and_then(|walked| match walked.node {
            Node::Dir => Ok(Arc::new(walked)),
            _ => Err(WalkError::NotADirectory(walked.real)),
        });
        let cached = match &walked {
            Ok(walked) => Ok(walked.clone()),
            Err(WalkError::NotFound(p)) => Err(Absent::NotFound(p.clone())),
            Err(WalkError::NotADirectory(p)) => Err(Absent::NotADirectory(p.clone())),
            // Never kept: `ELOOP` and I/O errors.
            Err(_) => return walked,
        };
        self.dirs.write().expect("sysroot cache poisoned").insert(dir.to_path_buf(), cached);
        walked
    }

    /// What a root path is, with `lstat(2)` and `readlink(2)` on its host
    /// path, and the `lstat` result when there is one.
    fn lookup(&self, path: &Path) -> io::Result<(Node, Option<Metadata>)> {
        let host = self.host(path);
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Node::Missing, None)),
            Err(e) => return Err(e),
        };
        let node = if meta.file_type().is_symlink() {
            Node::Symlink(std::fs::read_link(&host)?)
        } else if meta.is_dir() {
            Node::Dir
        } else {
            Node::File
        };
        Ok((node, Some(meta)))
    }
}

/// A root path as its parent directory and its last component: `/usr/lib/.`
/// is `/usr` and `lib` (`Path::components` drops the inner `.`, and a
/// trailing slash), `/` has no last component.
fn split_last(path: &Path) -> (PathBuf, Option<PathBuf>) {
    let mut components: Vec<Component> = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    let last = components.pop().map(|c| PathBuf::from(c.as_os_str()));
    let parent = std::iter::once(Component::RootDir).chain(components).collect();
    (parent, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::rootpath::MAX_SYMLINKS;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libx.so.1.2"), b"x").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/lib/libx.so.1.2", root.join("usr/lib/libx.so.1")).unwrap();
        // Points at the host's /etc, which must not be reached.
        symlink("/etc/../../../etc", root.join("escape")).unwrap();
        let sysroot = Sysroot::new(root);
        let found = sysroot.locate(Path::new("/lib/libx.so.1")).unwrap();
        assert_eq!(found.real, Path::new("/usr/lib/libx.so.1.2"));
        assert_eq!(
            found.links,
            vec![
                Link { path: "/lib".into(), target: "usr/lib".into() },
                Link { path: "/usr/lib/libx.so.1".into(), target: "/lib/libx.so.1.2".into() },
                Link { path: "/lib".into(), target: "usr/lib".into() },
            ]
        );
        assert_eq!(
            sysroot.locate(Path::new("/escape")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            sysroot.locate(Path::new("/usr/../../usr/lib")).unwrap().real,
            Path::new("/usr/lib")
        );
    }

    #[test]
    fn symlink_loops_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        symlink("b", tmp.path().join("a")).unwrap();
        symlink("a", tmp.path().join("b")).unwrap();
        let err = Sysroot::new(tmp.path()).locate(Path::new("/a")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::LOOP.raw_os_error()));
    }

    fn is_loop(result: io::Result<Located>) -> bool {
        result.is_err_and(|e| e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()))
    }

    /// A directory met at the end of a long chain of symlinks fails there
    /// (`ELOOP`), but a short lookup of the same directory must still
    /// succeed, before or after, whichever ran first: the cache resolves a
    /// directory from `/`, keeps it with the links that led to it, and
    /// never keeps a loop.
    #[test]
    fn a_loop_found_deep_in_a_chain_is_not_cached_for_shallow_lookups() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("d/real")).unwrap();
        std::fs::write(root.join("d/real/y"), b"y").unwrap();
        symlink("real", root.join("d/sub")).unwrap();
        symlink("sub", root.join("d/sub2")).unwrap();
        // /c0 -> /c1 -> ... -> /c39 -> /d/sub/y: the 41st link is `sub`.
        for i in 0..MAX_SYMLINKS {
            let next =
                if i + 1 == MAX_SYMLINKS { "/d/sub/y".to_string() } else { format!("c{}", i + 1) };
            symlink(next, root.join(format!("c{i}"))).unwrap();
        }
        let sysroot = Sysroot::new(root);
        assert!(is_loop(sysroot.locate(Path::new("/c0"))));
        assert!(is_loop(sysroot.locate(Path::new("/c0/../d/sub/y"))));
        let found = sysroot.locate(Path::new("/d/sub/y")).unwrap();
        assert_eq!(found.real, Path::new("/d/real/y"));
        assert!(is_loop(sysroot.locate(Path::new("/c0"))));

        // A cached directory brings its links along: /c1 is 39 links away
        // from /d, so one more link is allowed below it, and two are not.
        let sysroot = Sysroot::new(root);
        std::fs::remove_file(root.join("c39")).unwrap();
        symlink("/d", root.join("c39")).unwrap();
        assert_eq!(sysroot.locate(Path::new("/c1/real/y")).unwrap().links.len(), 39);
        assert_eq!(sysroot.locate(Path::new("/c1/sub/y")).unwrap().links.len(), 40);
        assert!(is_loop(sysroot.locate(Path::new("/c1/sub2/y"))));
        assert_eq!(sysroot.locate(Path::new("/d/sub2/y")).unwrap().links.len(), 2);
    }
}
