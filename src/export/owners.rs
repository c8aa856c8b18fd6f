//! Who owns each path in an export: root (0:0), except each `[[users]]` home directory and everything below it, which belong to that user's uid and gid.
//!
//! A build writes files as whoever runs it; an export writes numeric owners
//! instead, the same on every machine. Home directories are found where the
//! build put them: resolved through the tree's own symlinks (`Sysroot`),
//! as the build resolved them.

use std::path::{Path, PathBuf};

use crate::resolve::sysroot::Sysroot;
use crate::spec::Spec;

/// The owners of a tree's paths.
#[derive(Clone, Debug, Default)]
pub struct Owners {
    /// Real root path of each home directory, with its owner; the longest
    /// first, so that a home inside another home wins.
    homes: Vec<(PathBuf, u32, u32)>,
}

impl Owners {
    /// The owners a spec gives the tree built at `tree`.
    pub fn of_spec(spec: &Spec, tree: &Path) -> Owners {
        let sysroot = Sysroot::new(tree);
        let mut homes: Vec<(PathBuf, u32, u32)> = spec
            .users
            .iter()
            .filter(|u| u.value.uid != 0 || u.value.gid != 0)
            .filter_map(|u| {
                let real = sysroot.locate(&u.value.home).ok()?.real;
                (real != Path::new("/")).then_some((real, u.value.uid, u.value.gid))
            })
            .collect();
        homes.sort_by(|a, b| {
            b.0.components().count().cmp(&a.0.components().count()).then(a.0.cmp(&b.0))
        });
        Owners { homes }
    }

    /// uid and gid of a root path.
    pub fn of(&self, path: &Path) -> (u32, u32) {
        self.homes
            .iter()
            .find(|(home, _, _)| path.starts_with(home))
            .map_or((0, 0), |(_, uid, gid)| (*uid, *gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_home_wins_and_the_rest_is_roots() {
        let owners = Owners { homes: vec![("/home/a/b".into(), 2, 2), ("/home/a".into(), 1, 1)] };
        assert_eq!(owners.of(Path::new("/home/a/b/c")), (2, 2));
        assert_eq!(owners.of(Path::new("/home/a/x")), (1, 1));
        assert_eq!(owners.of(Path::new("/home/ab")), (0, 0));
        assert_eq!(owners.of(Path::new("/etc/passwd")), (0, 0));
    }
}
