//! `/etc/ld.so.conf` and its `include` globs: the directories `ldconfig` would index, used when a sysroot has no cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::resolve::sysroot::Sysroot;

/// `ldconfig` stops following includes this deep; so do we, to survive loops.
const MAX_DEPTH: usize = 16;

/// The directories listed by the sysroot's `/etc/ld.so.conf`, in order,
/// without duplicates (a missing file lists nothing), and the files read.
pub fn dirs(sysroot: &Sysroot) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut out = Vec::new();
    let mut read = Vec::new();
    parse_file(sysroot, Path::new("/etc/ld.so.conf"), 0, &mut out, &mut read)?;
    Ok((out, read))
}

/// Reads one conf file; `read` holds the files already read, so that
/// includes of includes are read once, not once per path to them.
fn parse_file(
    sysroot: &Sysroot,
    path: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
    read: &mut Vec<PathBuf>,
) -> Result<()> {
    let Ok(found) = sysroot.locate(path) else {
        return Ok(());
    };
    if read.contains(&found.real) {
        return Ok(());
    }
    read.push(found.real.clone());
    let host = sysroot.host(&found.real);
    let text = std::fs::read_to_string(&host)
        .with_context(|| format!("failed to read `{}`", host.display()))?;
    let base = path.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        // As `parse_conf` in glibc's `elf/ldconfig.c`: comments start at
        // `#`, `include` takes blank-separated globs, `hwcap` is obsolete,
        // and any other line names one directory.
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(patterns) = keyword(line, "include") {
            if depth >= MAX_DEPTH {
                continue;
            }
            for pattern in patterns.split([' ', '\t']).filter(|p| !p.is_empty()) {
                let pattern = base.join(pattern);
                for file in glob_in_root(sysroot, &pattern)? {
                    parse_file(sysroot, &file, depth + 1, out, read)?;
                }
            }
        } else if keyword(line, "hwcap").is_some() {
            continue;
        } else {
            let dir = line.split('=').next().unwrap_or(line).trim_end_matches('/');
            let dir = PathBuf::from(if dir.is_empty() { "/" } else { dir });
            if !out.contains(&dir) {
                out.push(dir);
            }
        }
    }
    Ok(())
}

fn keyword<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(word)?;
    rest.starts_with([' ', '\t']).then(|| rest.trim_start())
}

/// Expands a glob written as a root path, returning sorted root paths.
fn glob_in_root(sysroot: &Sysroot, pattern: &Path) -> Result<Vec<PathBuf>> {
    let host_pattern = sysroot.host(pattern);
    let text = host_pattern
        .to_str()
        .with_context(|| format!("include pattern `{}` is not UTF-8", pattern.display()))?;
    let mut found = Vec::new();
    for entry in
        glob::glob(text).with_context(|| format!("bad include pattern `{}`", pattern.display()))?
    {
        let host = entry.with_context(|| format!("failed to expand `{}`", pattern.display()))?;
        if let Ok(rel) = host.strip_prefix(sysroot.root()) {
            found.push(Path::new("/").join(rel));
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_are_expanded_in_order_inside_the_sysroot() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        std::fs::create_dir_all(etc.join("ld.so.conf.d")).unwrap();
        std::fs::write(
            etc.join("ld.so.conf"),
            "# comment\n/opt/first/\ninclude ld.so.conf.d/*.conf\nhwcap 1 x\n",
        )
        .unwrap();
        std::fs::write(etc.join("ld.so.conf.d/b.conf"), "/opt/b\n").unwrap();
        std::fs::write(etc.join("ld.so.conf.d/a.conf"), "/opt/a # trailing\n/opt/first\n").unwrap();
        let (dirs, read) = dirs(&Sysroot::new(tmp.path())).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(dirs, [Path::new("/opt/first"), Path::new("/opt/a"), Path::new("/opt/b")]);
    }
}
