//! What a sandbox opens beyond the tree, and who runs in it: host paths bound in (each resolved inside the tree, its mount point found or planned in a writable layer), the network, the user, a throwaway writable layer, the working directory; prepared as C strings before any fork.
//!
//! The default [`Access`] is a smoke check's isolation: nothing bound, a
//! network of its own, root inside, the tree read-only.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicI32;

use crate::resolve::rootpath::{Node, Walk, WalkError};
use crate::resolve::sysroot::Sysroot;
use crate::spec::{self, Item, SpecError};
use crate::vocab::Network;

/// A uid and gid inside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// What a command may use besides the tree, and who runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Mounted in this order (parents before what is below them).
    pub binds: Vec<Bind>,
    pub network: Network,
    /// The command runs as these ids inside, mapped to the caller outside:
    /// what it writes on a bind belongs to the caller.
    pub user: Ids,
    /// Writes anywhere in the tree go to a layer discarded at exit.
    pub writable: bool,
    /// Bytes that layer may hold (a full layer says ENOSPC inside);
    /// `None`: as much as `/tmp` holds by default.
    pub writable_size: Option<u64>,
    /// The working directory inside; `/` when `None`.
    pub workdir: Option<PathBuf>,
    /// A directory of the tree (its real path inside) covered by a tmpfs
    /// that the user inside owns: the home, writable while the tree is not.
    pub home: Option<PathBuf>,
}

impl Access {
    /// Whether the tree is seen through a writable layer: for mount points
    /// that the tree lacks, or for `writable`. Binds on paths the root has
    /// are attached to the read-only root itself.
    pub fn needs_layer(&self) -> bool {
        self.writable || self.binds.iter().any(|b| !b.layer.is_empty())
    }

    /// The first bind whose mount point the root lacks.
    pub fn lacking_mount_point(&self) -> Option<&Bind> {
        self.binds.iter().find(|b| !b.layer.is_empty())
    }
}

/// A host path bound inside, checked against the host and the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// The host path, canonical.
    pub source: PathBuf,
    /// The path inside, every symlink of the tree resolved (inside it).
    pub target: PathBuf,
    pub read_only: bool,
    /// Whether the source is a directory (else a file).
    pub dir: bool,
    /// When the tree lacks the mount point: each directory above it that
    /// the layer must hold, with its mode (the tree's, or `0755` where the
    /// tree has none), then the mount point itself.
    layer: Vec<(PathBuf, u32)>,
}

/// Why a bind cannot be made.
#[derive(Debug)]
pub enum BindError {
    /// The host path does not exist, or cannot be read.
    Source(PathBuf, std::io::Error),
    /// The path inside is not absolute, or has `..`.
    NotInside(PathBuf),
    /// `/proc` and below belong to the command's own proc.
    UnderProc(PathBuf),
    /// Walking the path inside the tree failed.
    Walk(PathBuf, WalkError),
    /// A directory onto a file of the tree, or a file onto a directory.
    Kind { target: PathBuf, source: PathBuf, source_is_dir: bool },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Source(path, e) => {
                write!(f, "the host path `{}` cannot be bound: {e}", path.display())
            }
            BindError::NotInside(path) => write!(
                f,
                "`{}` is not a path inside the tree: it must be absolute, without `..`",
                path.display()
            ),
            BindError::UnderProc(path) => write!(
                f,
                "`{}` is under /proc, which is the command's own: bind somewhere else",
                path.display()
            ),
            BindError::Walk(path, e) => {
                write!(f, "the bind path `{}` cannot be placed in the tree: {e}", path.display())
            }
            BindError::Kind { target, source, source_is_dir } => {
                let (source_kind, target_kind) = if *source_is_dir {
                    ("a directory", "a file")
                } else {
                    ("a file", "a directory")
                };
                write!(
                    f,
                    "`{}` is {source_kind} and `{}` is {target_kind} in the tree: a bind needs the same kind on both sides",
                    source.display(),
                    target.display()
                )
            }
        }
    }
}

impl std::error::Error for BindError {}

impl Bind {
    /// Binds host path `source` at `dest` inside `tree` (by default at the
    /// source's own absolute path, as given: `/etc/resolv.conf` even when
    /// it is a symlink), resolving `dest` in the tree as spec paths are:
    /// `..` never climbs out, an absolute symlink restarts at the tree's
    /// root.
    pub fn resolve(
        tree: &Path,
        source: &Path,
        dest: Option<&Path>,
        read_only: bool,
    ) -> Result<Bind, BindError> {
        let (canonical, meta) = source_of(source)?;
        let own = std::path::absolute(source).ok().filter(|p| !has_parent_dir(p));
        let own = own.unwrap_or_else(|| canonical.clone());
        let dest = dest.unwrap_or(&own);
        let inside = dest.is_absolute() && !has_parent_dir(dest);
        if !inside || dest == Path::new("/") {
            return Err(BindError::NotInside(dest.to_path_buf()));
        }
        let walk = Walk { follow_last: true, missing_ok: true };
        let sysroot = Sysroot::new(tree);
        let walked =
            sysroot.walk(dest, walk).map_err(|e| BindError::Walk(dest.to_path_buf(), e))?;
        if walked.real.starts_with("/proc") {
            return Err(BindError::UnderProc(dest.to_path_buf()));
        }
        let kind_error = || BindError::Kind {
            target: dest.to_path_buf(),
            source: canonical.clone(),
            source_is_dir: meta.is_dir(),
        };
        let layer = match walked.node {
            Node::Dir if !meta.is_dir() => return Err(kind_error()),
            Node::File if meta.is_dir() => return Err(kind_error()),
            // `/tmp` is a fresh tmpfs inside, where PID 1 makes the mount
            // point itself: no layer needed, on a tree or a sysroot.
            Node::Missing if walked.real.starts_with("/tmp") => Vec::new(),
            Node::Missing => layer_entries(&sysroot, &walked.real, meta.is_dir()),
            _ => Vec::new(),
        };
        Ok(Bind { source: canonical, target: walked.real, read_only, dir: meta.is_dir(), layer })
    }
}

/// Whether `path` is a directory inside: in a bind (the deepest one it is
/// under), or in the tree.
pub fn is_dir_inside(tree: &Path, path: &Path, binds: &[Bind]) -> bool {
    let how = Walk { follow_last: true, missing_ok: true };
    let Ok(walked) = Sysroot::new(tree).walk(path, how) else { return false };
    let under = binds
        .iter()
        .filter(|b| walked.real.starts_with(&b.target) || path.starts_with(&b.target))
        .max_by_key(|b| b.target.components().count());
    match under {
        Some(bind) => {
            let rest =
                walked.real.strip_prefix(&bind.target).or_else(|_| path.strip_prefix(&bind.target));
            rest.is_ok_and(|rest| bind.source.join(rest).is_dir())
        }
        None => walked.node == Node::Dir,
    }
}

/// The host side of a bind: the canonical path and what is there.
fn source_of(source: &Path) -> Result<(PathBuf, std::fs::Metadata), BindError> {
    let canonical =
        std::fs::canonicalize(source).map_err(|e| BindError::Source(source.to_path_buf(), e))?;
    let meta =
        std::fs::metadata(&canonical).map_err(|e| BindError::Source(source.to_path_buf(), e))?;
    Ok((canonical, meta))
}

/// Whether the host path of a bind can be bound, before there is a tree to
/// bind it in.
pub fn check_source(source: &Path) -> Result<(), BindError> {
    source_of(source).map(|_| ())
}

fn has_parent_dir(path: &Path) -> bool {
    path.components().any(|c| c == Component::ParentDir)
}

/// A bind of the spec (`[shell]`, a smoke check) resolved for `tree`; a
/// failure points at the spec's value.
pub fn resolve_item(tree: &Path, item: &Item<spec::Bind>) -> Result<Bind, SpecError> {
    let bind = &item.value;
    Bind::resolve(tree, &bind.source, bind.dest.as_deref(), bind.read_only).map_err(|e| {
        SpecError::at(&item.at, e.to_string())
            .help("a bind is HOST[:PATH][:ro]: an existing host path, and a path inside the tree")
    })
}

/// The directories above `target` (a real path whose last component the
/// tree lacks), with the tree's modes, and `target` itself.
fn layer_entries(sysroot: &Sysroot, target: &Path, dir: bool) -> Vec<(PathBuf, u32)> {
    let mut entries = Vec::new();
    let mut at = PathBuf::from("/");
    for component in target.parent().unwrap_or(Path::new("/")).components().skip(1) {
        at.push(component);
        let mode =
            std::fs::metadata(sysroot.host(&at)).map_or(0o755, |m| m.permissions().mode() & 0o7777);
        entries.push((at.clone(), mode));
    }
    entries.push((target.to_path_buf(), if dir { 0o755 } else { 0o644 }));
    entries
}

/// An [`Access`] as PID 1 uses it: C strings, the overlay's options.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    /// The writable layer over the tree, when there is one.
    pub layer: Option<Layer>,
    pub binds: Vec<PreparedBind>,
    pub share_network: bool,
    /// `uid_map` and `gid_map` of the nested user namespace: the user
    /// inside, as the keeper's root (the caller).
    pub inner_maps: (Vec<u8>, Vec<u8>),
    pub writable: bool,
    pub workdir: Option<CString>,
    /// The home to cover with the user's tmpfs, inside (after `pivot_root`).
    pub home: Option<CString>,
}

/// The overlay over the tree: a tmpfs *scratch* mounted on the tree's own
/// path holds its upper and work folders and the folder it is mounted on;
/// the tree itself stays reachable as PID 1's working directory, its lower
/// layer (`.`).
#[derive(Debug)]
pub(super) struct Layer {
    /// The tree's host path, where the scratch is mounted.
    pub scratch: CString,
    /// The scratch tmpfs's mount options, with its size: the bound of
    /// what the upper layer holds.
    pub scratch_options: CString,
    /// `upper`, `work` and `merged` in the scratch.
    pub dirs: Vec<CString>,
    /// What the upper folder holds before the overlay is mounted: mount
    /// points the tree lacks (host paths in the scratch, mode, whether a
    /// directory).
    pub entries: Vec<(CString, u32, bool)>,
    /// The overlay's mount options.
    pub options: CString,
    /// Where the overlay is mounted: `<scratch>/merged`.
    pub root: PathBuf,
}

/// One bind as PID 1 makes it.
#[derive(Debug)]
pub(super) struct PreparedBind {
    pub source: CString,
    /// The mount point inside, then each directory above it (from the
    /// top), made after `pivot_root` when missing (in `/tmp`, `/dev`, or
    /// another bind).
    pub target: CString,
    pub parents: Vec<CString>,
    pub dir: bool,
    pub read_only: bool,
    /// The detached mount `open_tree(2)` gives PID 1 before anything covers
    /// the source; written only in PID 1's own copy of this memory.
    pub fd: AtomicI32,
}

fn c(path: &Path) -> anyhow::Result<CString> {
    use anyhow::Context;
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("`{}` contains a NUL byte", path.display()))
}

/// Prepares `access` for the tree at `tree` (absolute).
pub(super) fn prepare(tree: &Path, access: &Access) -> anyhow::Result<Prepared> {
    let mut binds = access.binds.clone();
    // Parents before what is mounted below them, whatever the order asked.
    binds.sort_by_key(|b| b.target.components().count());
    let size = access.writable_size.unwrap_or(crate::vocab::Limits::default().tmp_size);
    let layer = access.needs_layer().then(|| layer(tree, &binds, size)).transpose()?;
    let binds = binds
        .iter()
        .map(|b| {
            let parents = b.target.ancestors().skip(1).filter(|p| *p != Path::new("/"));
            let mut parents = parents.map(c).collect::<anyhow::Result<Vec<_>>>()?;
            parents.reverse();
            Ok(PreparedBind {
                source: c(&b.source)?,
                target: c(&b.target)?,
                parents,
                dir: b.dir,
                read_only: b.read_only,
                fd: AtomicI32::new(-1),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let Ids { uid, gid } = access.user;
    Ok(Prepared {
        layer,
        binds,
        share_network: access.network == Network::Host,
        inner_maps: (format!("{uid} 0 1\n").into_bytes(), format!("{gid} 0 1\n").into_bytes()),
        writable: access.writable,
        workdir: access.workdir.as_deref().map(c).transpose()?,
        home: access.home.as_deref().map(c).transpose()?,
    })
}

fn layer(tree: &Path, binds: &[Bind], size: u64) -> anyhow::Result<Layer> {
    let upper = tree.join("upper");
    let mut entries: Vec<(CString, u32, bool)> = Vec::new();
    for bind in binds {
        let last = bind.layer.len().saturating_sub(1);
        for (i, (path, mode)) in bind.layer.iter().enumerate() {
            let host = c(&upper.join(path.strip_prefix("/").unwrap_or(path)))?;
            if !entries.iter().any(|(p, _, _)| *p == host) {
                entries.push((host, *mode, i < last || bind.dir));
            }
        }
    }
    let options =
        format!("lowerdir=.,upperdir={},workdir={}", escape(&upper), escape(&tree.join("work")));
    Ok(Layer {
        scratch: c(tree)?,
        scratch_options: CString::new(format!("mode=0700,size={size}"))
            .expect("no NUL in formatted numbers"),
        dirs: ["upper", "work", "merged"]
            .iter()
            .map(|d| c(&tree.join(d)))
            .collect::<anyhow::Result<_>>()?,
        entries,
        options: CString::new(options)
            .map_err(|_| anyhow::anyhow!("the tree's path has a NUL byte"))?,
        root: tree.join("merged"),
    })
}

/// A path in overlay's mount options, where `,` separates options and `:`
/// lower layers: both, and `\`, are escaped with a backslash.
fn escape(path: &Path) -> String {
    let mut out = String::new();
    for ch in path.to_string_lossy().chars() {
        if matches!(ch, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_path_is_resolved_inside_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/share")).unwrap();
        std::fs::create_dir_all(tree.join("proc")).unwrap();
        std::fs::write(tree.join("usr/file"), "").unwrap();
        std::os::unix::fs::symlink("/../../usr/share", tree.join("share")).unwrap();
        let source = tmp.path().join("src");
        std::fs::create_dir(&source).unwrap();
        let bind = |dest: &str| Bind::resolve(&tree, &source, Some(Path::new(dest)), false);
        let through_link = bind("/share/x/y").unwrap();
        assert_eq!(through_link.target, Path::new("/usr/share/x/y"));
        let modes: Vec<u32> = through_link.layer.iter().map(|(_, m)| *m).collect();
        assert_eq!(through_link.layer.len(), 4, "{:?}", through_link.layer);
        assert_eq!(modes[3], 0o755);
        assert!(bind("/usr/share").unwrap().layer.is_empty());
        assert!(matches!(bind("/usr/file"), Err(BindError::Kind { .. })));
        assert!(matches!(bind("/usr/file/x"), Err(BindError::Walk(..))));
        assert!(matches!(bind("/proc/x"), Err(BindError::UnderProc(_))));
        assert!(matches!(bind("/a/../b"), Err(BindError::NotInside(_))));
        assert!(matches!(bind("src"), Err(BindError::NotInside(_))));
        let missing = Bind::resolve(&tree, &tmp.path().join("nope"), None, false);
        assert!(matches!(missing, Err(BindError::Source(..))), "{missing:?}");
        assert_eq!(escape(Path::new("/a:b,c\\d")), "/a\\:b\\,c\\\\d");
    }
}
