//! A path inside a root, resolved as the kernel resolves it in a chroot: the one walker for the sysroot, the plan and the manifest.
//!
//! The rule, written once:
//! - components are taken one at a time from `/`; `.` is skipped;
//! - `..` goes to the parent of the directory reached so far, and stops at
//!   the root (`openat2(2)`'s `RESOLVE_IN_ROOT`): nothing outside is reached;
//! - a symlink is replaced by its target: an absolute target restarts at the
//!   root, a relative one continues from the symlink's directory;
//! - the last component is followed only when asked ([`Walk::follow_last`]);
//! - after [`MAX_SYMLINKS`] symlinks in one walk the next one fails
//!   ([`WalkError::Loop`], the kernel's `ELOOP`, `path_resolution(7)`);
//! - a file used as a directory is [`WalkError::NotADirectory`]; a component
//!   that does not exist is [`WalkError::NotFound`], unless
//!   [`Walk::missing_ok`] says that it will be created as a directory.
//!
//! The walker knows nothing about where entries live. The caller passes a
//! `lookup` that says what one root path is, without following it (an
//! `lstat(2)`, or a map lookup): [`Node::Dir`], [`Node::File`],
//! [`Node::Symlink`] with its target text, or [`Node::Missing`]. It is only
//! asked about paths whose parents are directories already resolved. Three
//! kinds of tree use it: the sysroot (a host directory seen as `/`), the plan
//! (a map of root paths to entries, where a missing directory will be
//! created), and the manifest (the same map, read only).
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::{Path, PathBuf};
//! use rootfs::resolve::rootpath::{self, Node, Walk};
//!
//! let tree: BTreeMap<PathBuf, Node> = [
//!     ("/usr", Node::Dir),
//!     ("/usr/lib", Node::Dir),
//!     ("/lib", Node::Symlink("usr/lib".into())),
//!     ("/usr/lib/libc.so.6", Node::File),
//! ]
//! .into_iter()
//! .map(|(p, n)| (PathBuf::from(p), n))
//! .collect();
//! let lookup = |p: &Path| Ok(tree.get(p).cloned().unwrap_or(Node::Missing));
//!
//! let walked = rootpath::walk(Path::new("/lib/libc.so.6"), Walk::FOLLOW, lookup).unwrap();
//! assert_eq!(walked.real, Path::new("/usr/lib/libc.so.6"));
//! assert_eq!(walked.node, Node::File);
//! assert_eq!(walked.links[0].path, Path::new("/lib"));
//!
//! // A plan may place a file under directories it has yet to create.
//! let walked = rootpath::walk(Path::new("/lib/new/x"), Walk::CREATE, lookup).unwrap();
//! assert_eq!((walked.real.as_path(), walked.node), (Path::new("/usr/lib/new/x"), Node::Missing));
//! ```
//!
//! [`walk_from`] continues from a directory already resolved, counting the
//! symlinks crossed to reach it toward the limit: a caller can keep a cache
//! of resolved directories (the sysroot does) and get the same answers as a
//! walk from `/`.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The kernel follows at most this many symlinks in one lookup; one more is
/// `ELOOP` (`path_resolution(7)`).
pub const MAX_SYMLINKS: usize = 40;

/// `path` with `.` and `..` taken out without looking at anything, `..`
/// stopping at `/`: where a path leads when none of its components is a
/// symlink (for paths a tracer saw, or a command line gave).
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            _ => {}
        }
    }
    out
}

/// One symlink crossed while resolving a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    /// Root path of the symlink itself; its parent directories are real.
    pub path: PathBuf,
    /// The link's text, exactly as `readlink(2)` returns it.
    pub target: PathBuf,
}

/// What one root path is, as `lookup` reports it, without following it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir,
    /// Anything that is not a directory or a symlink.
    File,
    /// A symlink, with its target text.
    Symlink(PathBuf),
    /// Nothing is there (yet).
    Missing,
}

/// A path resolved inside the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// The root path reached, every symlink on the way resolved (the last
    /// one only when followed).
    pub real: PathBuf,
    /// The symlinks crossed, in the order they were followed.
    pub links: Vec<Link>,
    /// What `real` is: never a symlink unless the last component was not
    /// followed; `Missing` only with [`Walk::missing_ok`].
    pub node: Node,
}

impl Walked {
    /// The root directory, where every walk starts.
    pub fn root() -> Walked {
        Walked { real: PathBuf::from("/"), links: Vec::new(), node: Node::Dir }
    }
}

/// How to walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Follow a symlink in the last component (`stat(2)` rather than
    /// `lstat(2)`).
    pub follow_last: bool,
    /// A component that does not exist is accepted, as a directory that
    /// will be created; everything below it is then missing too.
    pub missing_ok: bool,
}

impl Walk {
    /// Where a path leads: every symlink followed, everything must exist.
    pub const FOLLOW: Walk = Walk { follow_last: true, missing_ok: false };
    /// Where an entry named by this path is: the last component is not
    /// followed, everything must exist.
    pub const NO_FOLLOW: Walk = Walk { follow_last: false, missing_ok: false };
    /// Where an entry would be created: the last component is not followed,
    /// and missing directories will be created.
    pub const CREATE: Walk = Walk { follow_last: false, missing_ok: true };
}

/// Why a walk failed. Each names the root path where it stopped.
#[derive(Debug)]
pub enum WalkError {
    /// This component does not exist (`ENOENT`).
    NotFound(PathBuf),
    /// This component is used as a directory but is not one (`ENOTDIR`).
    NotADirectory(PathBuf),
    /// Following this symlink would pass [`MAX_SYMLINKS`] (`ELOOP`).
    Loop(PathBuf),
    /// `lookup` failed for this path.
    Io(PathBuf, io::Error),
}

impl WalkError {
    /// The root path where the walk stopped.
    pub fn path(&self) -> &Path {
        match self {
            WalkError::NotFound(p)
            | WalkError::NotADirectory(p)
            | WalkError::Loop(p)
            | WalkError::Io(p, _) => p,
        }
    }
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkError::NotFound(p) => write!(f, "`{}` does not exist", p.display()),
            WalkError::NotADirectory(p) => write!(f, "`{}` is not a directory", p.display()),
            WalkError::Loop(p) => write!(
                f,
                "too many levels of symbolic links at `{}` (more than {MAX_SYMLINKS})",
                p.display()
            ),
            WalkError::Io(p, e) => write!(f, "cannot look up `{}`: {e}", p.display()),
        }
    }
}

impl std::error::Error for WalkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalkError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

/// As the system call that met it would fail: `ENOENT`, `ENOTDIR`,
/// `ELOOP`, or the error of the lookup itself.
impl From<WalkError> for io::Error {
    fn from(e: WalkError) -> io::Error {
        use rustix::io::Errno;
        let errno = match e {
            WalkError::NotFound(_) => Errno::NOENT,
            WalkError::NotADirectory(_) => Errno::NOTDIR,
            WalkError::Loop(_) => Errno::LOOP,
            WalkError::Io(_, e) => return e,
        };
        io::Error::from_raw_os_error(errno.raw_os_error())
    }
}

/// Resolves `path` (a root path; a relative one is taken from `/`) inside
/// the root that `lookup` describes.
pub fn walk(
    path: &Path,
    how: Walk,
    lookup: impl FnMut(&Path) -> io::Result<Node>,
) -> Result<Walked, WalkError> {
    walk_from(&Walked::root(), path, how, lookup)
}

/// Resolves `rest` from `start`, a path already walked (normally a
/// directory): a relative `rest` is taken from `start.real`, and the
/// symlinks of `start.links` count toward the limit. An empty `rest` gives
/// `start` back.
pub fn walk_from(
    start: &Walked,
    rest: &Path,
    how: Walk,
    mut lookup: impl FnMut(&Path) -> io::Result<Node>,
) -> Result<Walked, WalkError> {
    let mut at = start.clone();
    let mut pending: Vec<Step> = steps(rest).rev().collect();
    if !pending.is_empty() {
        enter(&mut at, &mut pending, how)?;
    }
    while let Some(step) = pending.pop() {
        match step {
            Step::Root => at = Walked { links: at.links, ..Walked::root() },
            Step::Up => up(&mut at, &mut lookup)?,
            Step::Name(name) => {
                let next = at.real.join(&name);
                let is_last = pending.is_empty();
                let node = lookup(&next).map_err(|e| WalkError::Io(next.clone(), e))?;
                match node {
                    Node::Symlink(target) if !is_last || how.follow_last => {
                        cross(&mut at, &mut pending, next, target)?;
                    }
                    Node::File if !is_last => return Err(WalkError::NotADirectory(next)),
                    Node::Missing if !how.missing_ok => return Err(WalkError::NotFound(next)),
                    node => {
                        at.real = next;
                        at.node = node;
                    }
                }
            }
        }
    }
    Ok(at)
}

/// One step still to take; owned, because symlink targets add steps.
enum Step {
    Root,
    Up,
    Name(std::ffi::OsString),
}

fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::RootDir | Component::Prefix(_) => Some(Step::Root),
        Component::CurDir => None,
        Component::ParentDir => Some(Step::Up),
        Component::Normal(name) => Some(Step::Name(name.to_os_string())),
    })
}

/// Checks that a walk may go on below `at`, the start of [`walk_from`]: it
/// must be a directory (or a missing one, with `missing_ok`); a symlink
/// left unfollowed is followed now.
fn enter(at: &mut Walked, pending: &mut Vec<Step>, how: Walk) -> Result<(), WalkError> {
    match at.node.clone() {
        Node::Dir => Ok(()),
        Node::Missing if how.missing_ok => Ok(()),
        Node::Missing => Err(WalkError::NotFound(at.real.clone())),
        Node::File => Err(WalkError::NotADirectory(at.real.clone())),
        Node::Symlink(target) => {
            let link = at.real.clone();
            at.real.pop();
            at.node = Node::Dir;
            cross(at, pending, link, target)
        }
    }
}

/// Follows the symlink `link`, found in the directory `at`: its target's
/// steps come next, from `at`.
fn cross(
    at: &mut Walked,
    pending: &mut Vec<Step>,
    link: PathBuf,
    target: PathBuf,
) -> Result<(), WalkError> {
    if at.links.len() >= MAX_SYMLINKS {
        return Err(WalkError::Loop(link));
    }
    // An empty target names nothing (`ENOENT`).
    if target.as_os_str().is_empty() {
        return Err(WalkError::NotFound(link));
    }
    pending.extend(steps(&target).rev());
    at.links.push(Link { path: link, target });
    Ok(())
}

/// `..`: the parent of the directory reached, but never above the root.
fn up(
    at: &mut Walked,
    lookup: &mut impl FnMut(&Path) -> io::Result<Node>,
) -> Result<(), WalkError> {
    let was_missing = at.node == Node::Missing;
    at.real.pop();
    at.node = Node::Dir;
    // The parent of an existing directory exists; the parent of a missing
    // one may be missing too.
    if was_missing && at.real != Path::new("/") {
        let node = lookup(&at.real).map_err(|e| WalkError::Io(at.real.clone(), e))?;
        if node == Node::Missing {
            at.node = Node::Missing;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// An in-memory tree, as the plan and the manifest have.
    fn tree(entries: &[(&str, Node)]) -> BTreeMap<PathBuf, Node> {
        entries.iter().map(|(p, n)| (PathBuf::from(p), n.clone())).collect()
    }

    fn walk_in(tree: &BTreeMap<PathBuf, Node>, path: &str, how: Walk) -> Result<Walked, WalkError> {
        walk(Path::new(path), how, |p| Ok(tree.get(p).cloned().unwrap_or(Node::Missing)))
    }

    fn link(target: &str) -> Node {
        Node::Symlink(target.into())
    }

    fn layout() -> BTreeMap<PathBuf, Node> {
        tree(&[
            ("/usr", Node::Dir),
            ("/usr/lib", Node::Dir),
            ("/usr/lib/x", Node::File),
            ("/usr/lib/rel", link("x")),
            ("/usr/lib/up", link("../lib/x")),
            ("/lib", link("usr/lib")),
            ("/abs", link("/lib/rel")),
            ("/escape", link("../../../../usr/lib/x")),
            ("/file", Node::File),
        ])
    }

    #[test]
    fn absolute_targets_restart_at_the_root_and_relative_ones_at_the_link() {
        let t = layout();
        let w = walk_in(&t, "/abs", Walk::FOLLOW).unwrap();
        assert_eq!(w.real, Path::new("/usr/lib/x"));
        assert_eq!(w.node, Node::File);
        let crossed: Vec<&Path> = w.links.iter().map(|l| l.path.as_path()).collect();
        assert_eq!(crossed, ["/abs", "/lib", "/usr/lib/rel"]);
        assert_eq!(w.links[0].target, Path::new("/lib/rel"));
        assert_eq!(walk_in(&t, "lib/up", Walk::FOLLOW).unwrap().real, Path::new("/usr/lib/x"));
    }

    #[test]
    fn dot_dot_stops_at_the_root() {
        let t = layout();
        assert_eq!(walk_in(&t, "/escape", Walk::FOLLOW).unwrap().real, Path::new("/usr/lib/x"));
        assert_eq!(
            walk_in(&t, "/../../usr/./lib", Walk::FOLLOW).unwrap().real,
            Path::new("/usr/lib")
        );
        let w = walk_in(&t, "/lib/..", Walk::FOLLOW).unwrap();
        assert_eq!((w.real.as_path(), w.node), (Path::new("/usr"), Node::Dir));
    }

    #[test]
    fn the_last_component_is_followed_only_when_asked() {
        let t = layout();
        let w = walk_in(&t, "/lib", Walk::NO_FOLLOW).unwrap();
        assert_eq!((w.real.as_path(), w.node), (Path::new("/lib"), link("usr/lib")));
        assert!(w.links.is_empty());
        // Symlinks before the last component are always followed.
        let w = walk_in(&t, "/lib/rel", Walk::NO_FOLLOW).unwrap();
        assert_eq!(w.real, Path::new("/usr/lib/rel"));
    }

    #[test]
    fn loops_stop_after_the_limit() {
        let t = tree(&[("/a", link("b")), ("/b", link("/a"))]);
        let err = walk_in(&t, "/a", Walk::FOLLOW).unwrap_err();
        assert!(matches!(err, WalkError::Loop(_)), "{err}");
        assert_eq!(
            io::Error::from(err).raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );

        // Exactly MAX_SYMLINKS links resolve; one more does not.
        let chain = |n: usize| -> BTreeMap<PathBuf, Node> {
            let mut t: BTreeMap<PathBuf, Node> = (0..n)
                .map(|i| (PathBuf::from(format!("/l{i}")), link(&format!("l{}", i + 1))))
                .collect();
            t.insert(PathBuf::from(format!("/l{n}")), Node::File);
            t
        };
        let w = walk_in(&chain(MAX_SYMLINKS), "/l0", Walk::FOLLOW).unwrap();
        assert_eq!(w.links.len(), MAX_SYMLINKS);
        let err = walk_in(&chain(MAX_SYMLINKS + 1), "/l0", Walk::FOLLOW).unwrap_err();
        assert_eq!(err.path(), Path::new(&format!("/l{MAX_SYMLINKS}")));
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let t = layout();
        let err = walk_in(&t, "/file/x", Walk::CREATE).unwrap_err();
        assert!(matches!(&err, WalkError::NotADirectory(p) if p == Path::new("/file")), "{err}");
        let err = walk_in(&t, "/lib/rel/..", Walk::FOLLOW).unwrap_err();
        assert!(
            matches!(&err, WalkError::NotADirectory(p) if p == Path::new("/usr/lib/x")),
            "{err}"
        );
        assert_eq!(err.to_string(), "`/usr/lib/x` is not a directory");
    }

    #[test]
    fn missing_components_fail_unless_they_will_be_created() {
        let t = layout();
        let err = walk_in(&t, "/lib/new/x", Walk::FOLLOW).unwrap_err();
        assert!(matches!(&err, WalkError::NotFound(p) if p == Path::new("/usr/lib/new")), "{err}");
        let w = walk_in(&t, "/lib/new/x", Walk::CREATE).unwrap();
        assert_eq!((w.real.as_path(), w.node), (Path::new("/usr/lib/new/x"), Node::Missing));
        // Back up from a missing directory into one that exists.
        let w = walk_in(&t, "/lib/new/../x", Walk::CREATE).unwrap();
        assert_eq!((w.real.as_path(), w.node), (Path::new("/usr/lib/x"), Node::File));
        let w = walk_in(&t, "/opt/a/..", Walk::CREATE).unwrap();
        assert_eq!((w.real.as_path(), w.node), (Path::new("/opt"), Node::Missing));
    }

    #[test]
    fn a_walk_continues_from_a_resolved_directory_counting_its_links() {
        let t = layout();
        let lookup = |p: &Path| Ok(t.get(p).cloned().unwrap_or(Node::Missing));
        let dir = walk(Path::new("/lib"), Walk::FOLLOW, lookup).unwrap();
        let w = walk_from(&dir, Path::new("rel"), Walk::FOLLOW, lookup).unwrap();
        assert_eq!(w, walk(Path::new("/lib/rel"), Walk::FOLLOW, lookup).unwrap());
        let full = Walked { links: vec![dir.links[0].clone(); MAX_SYMLINKS], ..dir };
        let err = walk_from(&full, Path::new("rel"), Walk::FOLLOW, lookup).unwrap_err();
        assert!(matches!(err, WalkError::Loop(_)), "{err}");
        let err = walk_from(&w, Path::new("y"), Walk::FOLLOW, lookup).unwrap_err();
        assert!(matches!(err, WalkError::NotADirectory(_)), "{err}");
    }
}
