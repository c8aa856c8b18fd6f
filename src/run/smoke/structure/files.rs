//! `fileExistenceTests` and `fileContentTests` read from the root on disk: a path resolved as a chroot would (its last component not followed for existence), its mode written as Go's `FileMode.String()`, its owner as the image has it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Subject, expand, locate};
use crate::resolve::rootpath::WalkError;
use crate::spec::structure::{ExecutableBy, FileContentTest, FileExistenceTest};

/// The failures of a file existence test.
pub(super) fn existence(subject: &Subject, test: &FileExistenceTest) -> Vec<String> {
    let path = expand(&test.path, &subject.config.env);
    let found = locate(&subject.root, Path::new(&path), false).map_err(|e| e.to_string()).and_then(
        |(real, host)| {
            std::fs::symlink_metadata(&host)
                .map(|meta| (real, meta))
                .map_err(|e| format!("cannot stat `{path}`: {e}"))
        },
    );
    let (real, meta) = match (found, test.should_exist) {
        (Ok(_), false) => return vec![format!("`{path}` should not exist, but it does")],
        (Err(_), false) => return Vec::new(),
        (Err(why), true) => return vec![format!("`{path}` should exist: {why}")],
        (Ok(found), true) => found,
    };
    let mode = go_mode(meta.mode());
    let mut failures = Vec::new();
    if let Some(want) = &test.permissions
        && want.0 != mode
    {
        failures.push(format!("`{path}` has permissions {mode}, expected {}", want.0));
    }
    if let Some(by) = test.is_executable_by {
        let (bits, who) = match by {
            ExecutableBy::Any => (0o111, "any"),
            ExecutableBy::Owner => (0o100, "owner"),
            ExecutableBy::Group => (0o010, "group"),
            ExecutableBy::Other => (0o001, "other"),
        };
        if meta.mode() & bits == 0 {
            failures.push(format!("`{path}` is not executable by {who}: {mode}"));
        }
    }
    let (uid, gid) = subject.owners.of(&real, &meta);
    if let Some(want) = test.uid
        && want != uid
    {
        failures.push(format!("`{path}` is owned by uid {uid}, expected {want}"));
    }
    if let Some(want) = test.gid
        && want != gid
    {
        failures.push(format!("`{path}` has gid {gid}, expected {want}"));
    }
    failures
}

/// The failures of a file content test: every expected pattern must match
/// somewhere in the file, no excluded one anywhere.
pub(super) fn content(subject: &Subject, test: &FileContentTest) -> Vec<String> {
    let path = expand(&test.path, &subject.config.env);
    let bytes = locate(&subject.root, Path::new(&path), true)
        .map_err(|e: WalkError| e.to_string())
        .and_then(|(_, host)| {
            std::fs::read(&host).map_err(|e| format!("cannot read `{path}`: {e}"))
        });
    let text = match bytes {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(why) => return vec![why],
    };
    let mut failures = Vec::new();
    super::command::matches(
        &mut failures,
        "content",
        &test.expected_contents,
        &test.excluded_contents,
        &text,
    );
    failures
}

/// A `st_mode` as Go's `os.FileMode.String()` writes it: the type and
/// special letters in Go's order (`dalTLDpSugct?`), or `-`, then `rwx`
/// three times.
pub fn go_mode(mode: u32) -> String {
    let kind = mode & libc::S_IFMT;
    let mut out = String::new();
    let letters = [
        (kind == libc::S_IFDIR, 'd'),
        (kind == libc::S_IFLNK, 'L'),
        (kind == libc::S_IFBLK || kind == libc::S_IFCHR, 'D'),
        (kind == libc::S_IFIFO, 'p'),
        (kind == libc::S_IFSOCK, 'S'),
        (mode & libc::S_ISUID != 0, 'u'),
        (mode & libc::S_ISGID != 0, 'g'),
        (kind == libc::S_IFCHR, 'c'),
        (mode & libc::S_ISVTX != 0, 't'),
    ];
    out.extend(letters.iter().filter(|(set, _)| *set).map(|(_, c)| c));
    if out.is_empty() {
        out.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        out.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_written_as_go_writes_them() {
        assert_eq!(go_mode(libc::S_IFREG | 0o755), "-rwxr-xr-x");
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), "drwxr-xr-x");
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), "Lrwxrwxrwx");
        assert_eq!(go_mode(libc::S_IFDIR | libc::S_ISVTX | 0o777), "dtrwxrwxrwx");
        assert_eq!(go_mode(libc::S_IFREG | libc::S_ISUID | 0o4755 & 0o777), "urwxr-xr-x");
        assert_eq!(go_mode(libc::S_IFCHR | 0o666), "Dcrw-rw-rw-");
        assert_eq!(go_mode(libc::S_IFREG | 0o640), "-rw-r-----");
    }
}
