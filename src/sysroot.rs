//! A host directory seen as `/`: paths inside it are resolved the way the kernel resolves them in a chroot.
//!
//! Path vocabulary used across the crate:
//! - a *root path* is an absolute path in the sysroot's own namespace, such as
//!   `/usr/lib/x86_64-linux-gnu/libc.so.6`;
//! - a *host path* is where that file lives on the machine running the tool,
//!   `sysroot.host(root_path)`.
//!
//! Symlinks are followed inside the root only: an absolute target restarts at
//! the sysroot, and `..` stops at it, as with `openat2(2)`'s
//! `RESOLVE_IN_ROOT`. Every symlink crossed is recorded, because a rootfs
//! built from these paths must recreate the same chain.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The kernel gives up after this many symlinks in one lookup (`ELOOP`,
/// `path_resolution(7)`).
const MAX_SYMLINKS: usize = 40;

/// One symlink crossed while resolving a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    /// Root path of the symlink itself; its parent directories are real.
    pub path: PathBuf,
    /// The link's text, exactly as `readlink(2)` returns it.
    pub target: PathBuf,
}

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
}

/// A host directory treated as `/`, with a cache of resolved directories so
/// that a directory searched for many libraries is resolved once.
#[derive(Debug)]
pub struct Sysroot {
    root: PathBuf,
    dirs: RwLock<HashMap<PathBuf, Arc<io::Result<Located>>>>,
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
    /// following every symlink inside the sysroot.
    pub fn locate(&self, path: &Path) -> io::Result<Located> {
        self.locate_depth(path, 0)
    }

    fn locate_depth(&self, path: &Path, depth: usize) -> io::Result<Located> {
        let mut components: Vec<Component> = path.components().collect();
        while components
            .first()
            .is_some_and(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
        {
            components.remove(0);
        }
        // `/usr/lib/.` resolves like `/usr/lib`: Path::components drops the
        // inner `.`; a trailing slash is kept out of the way too.
        let Some(last) = components.pop() else {
            return self.stat_real(PathBuf::from("/"), Vec::new());
        };
        let parent: PathBuf =
            std::iter::once(Component::RootDir).chain(components.iter().copied()).collect();
        let dir = self.locate_dir(&parent, depth)?;
        if !dir.is_dir {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        }
        let name = match last {
            Component::Normal(name) => name.to_os_string(),
            Component::ParentDir => {
                let real = dir.real.parent().unwrap_or(Path::new("/")).to_path_buf();
                return self.stat_real(real, dir.links.clone());
            }
            _ => return Ok(dir.as_ref().clone()),
        };
        self.step(&dir, name, depth)
    }

    /// Resolves one more name inside an already resolved directory.
    fn step(&self, dir: &Located, name: OsString, depth: usize) -> io::Result<Located> {
        let candidate = dir.real.join(&name);
        let host = self.host(&candidate);
        let meta = std::fs::symlink_metadata(&host)?;
        if meta.file_type().is_symlink() {
            if depth >= MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(rustix::io::Errno::LOOP.raw_os_error()));
            }
            let target = std::fs::read_link(&host)?;
            let next = if target.is_absolute() { target.clone() } else { dir.real.join(&target) };
            let mut links = dir.links.clone();
            links.push(Link { path: candidate, target });
            let mut rest = self.locate_depth(&next, depth + 1)?;
            links.append(&mut rest.links);
            rest.links = links;
            return Ok(rest);
        }
        Ok(Located {
            real: candidate,
            links: dir.links.clone(),
            dev: meta.dev(),
            ino: meta.ino(),
            is_dir: meta.is_dir(),
        })
    }

    fn locate_dir(&self, dir: &Path, depth: usize) -> io::Result<Arc<Located>> {
        if let Some(found) = self.dirs.read().expect("sysroot cache poisoned").get(dir) {
            return clone_result(found);
        }
        let found = Arc::new(self.locate_depth(dir, depth));
        self.dirs.write().expect("sysroot cache poisoned").insert(dir.to_path_buf(), found.clone());
        clone_result(&found)
    }

    fn stat_real(&self, real: PathBuf, links: Vec<Link>) -> io::Result<Located> {
        let meta = std::fs::metadata(self.host(&real))?;
        Ok(Located { real, links, dev: meta.dev(), ino: meta.ino(), is_dir: meta.is_dir() })
    }
}

fn clone_result(found: &Arc<io::Result<Located>>) -> io::Result<Arc<Located>> {
    match found.as_ref() {
        Ok(located) => Ok(Arc::new(located.clone())),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
