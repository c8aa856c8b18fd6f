//! The manifest beside a built rootfs (`.rootfs/<name>.manifest.json` beside it): every path, sorted, with its type, mode, size, digest, link target, origin and reasons.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::resolve::rootpath::{self, Node, Walk};
use crate::vocab::{EntryType, Mode, Sha256};

/// Bumped when the format changes incompatibly.
pub const FORMAT: u32 = 1;

/// How a command of the rootfs runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandKind {
    /// Dynamically linked: the loader and its libraries are involved.
    Dynamic,
    /// Statically linked (or static-pie).
    Static,
    /// A `#!` script.
    Script,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The spec's name.
    pub name: String,
    /// The spec's commands, as the smoke tests run them.
    pub commands: Vec<CommandEntry>,
    /// Every path of the rootfs except `/`, sorted.
    pub entries: Vec<ManifestEntry>,
    /// What the tree needs of the CPU and kernel beneath it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portability: Option<crate::resolve::portability::Portability>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEntry {
    /// The name the spec gives.
    pub name: String,
    /// Its path inside the rootfs.
    pub path: PathBuf,
    pub kind: CommandKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub path: PathBuf,
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Permission bits, written as `"0755"`.
    pub mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<Sha256>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<PathBuf>,
    /// The host path it was copied or mirrored from; for an image or
    /// package sysroot (a cache folder, somewhere else on each machine),
    /// its path inside that sysroot.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<PathBuf>,
    /// Why it is there, sorted.
    pub why: Vec<String>,
}

/// Where the manifest of the rootfs at `out` lives.
pub fn path_for(out: &Path) -> PathBuf {
    crate::fsutil::side_file(out, ".manifest.json")
}

impl Manifest {
    pub fn to_json(&self) -> Result<String> {
        let mut bytes = Vec::new();
        self.write_json(&mut bytes)?;
        String::from_utf8(bytes).context("writing the manifest as JSON")
    }

    /// The bytes of [`Manifest::to_json`], written as they are made.
    pub fn write_json(&self, w: &mut dyn std::io::Write) -> Result<()> {
        serde_json::to_writer_pretty(&mut *w, self).context("writing the manifest as JSON")?;
        w.write_all(b"\n").context("writing the manifest as JSON")
    }

    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes)?;
        anyhow::ensure!(
            manifest.format == FORMAT,
            "manifest format {} is not {FORMAT}",
            manifest.format
        );
        Ok(manifest)
    }

    /// Whether `bytes` are a manifest of this tool, judged by its fields
    /// and format without building its entries: [`Manifest::parse`] where
    /// they are not needed.
    pub fn recognise(bytes: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Shape {
            format: u32,
            #[serde(rename = "name")]
            _name: String,
            #[serde(rename = "commands")]
            _commands: serde::de::IgnoredAny,
            #[serde(rename = "entries")]
            _entries: serde::de::IgnoredAny,
        }
        serde_json::from_slice::<Shape>(bytes).is_ok_and(|shape| shape.format == FORMAT)
    }

    pub fn read(path: &Path) -> Result<Manifest> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("failed to read manifest `{}`", path.display()))?;
        Manifest::parse(&bytes)
            .with_context(|| format!("failed to parse manifest `{}`", path.display()))
    }

    pub fn entry(&self, path: &Path) -> Option<&ManifestEntry> {
        self.entries.binary_search_by(|e| e.path.as_path().cmp(path)).ok().map(|i| &self.entries[i])
    }

    /// Regular files and their total size.
    pub fn file_totals(&self) -> (usize, u64) {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryType::File)
            .fold((0, 0), |(n, b), e| (n + 1, b + e.size.unwrap_or(0)))
    }
}

impl Manifest {
    /// Answers "why is PATH in the rootfs": the entry's reasons and origin,
    /// after every symlink crossed on the way (each with its own reasons).
    pub fn why(&self, path: &Path) -> Option<String> {
        let (links, entry) = self.walk(path, Walk::FOLLOW)?;
        let mut out: String = links.iter().map(|l| describe(l)).collect();
        if let Some(entry) = entry {
            out.push_str(&describe(entry));
        }
        Some(out)
    }

    /// The entry a path leads to inside the tree, following its symlinks as
    /// a chroot would.
    pub fn lookup(&self, path: &Path) -> Option<&ManifestEntry> {
        self.walk(path, Walk::FOLLOW).and_then(|(_, entry)| entry)
    }

    /// The entry a path names inside the tree, its parents' symlinks
    /// followed but not a symlink in its last component (`lstat(2)`).
    pub fn lookup_link(&self, path: &Path) -> Option<&ManifestEntry> {
        self.walk(path, Walk::NO_FOLLOW).and_then(|(_, entry)| entry)
    }

    /// The symlinks crossed on the way to `path` and the entry there
    /// (`None` for `/` itself); `None` when the path is not in the tree.
    fn walk(
        &self,
        path: &Path,
        how: Walk,
    ) -> Option<(Vec<&ManifestEntry>, Option<&ManifestEntry>)> {
        let lookup = |p: &Path| {
            Ok(match self.entry(p) {
                None => Node::Missing,
                Some(e) => match (&e.kind, &e.target) {
                    (EntryType::Dir, _) => Node::Dir,
                    (EntryType::Symlink, Some(target)) => Node::Symlink(target.clone()),
                    _ => Node::File,
                },
            })
        };
        let walked = rootpath::walk(path, how, lookup).ok()?;
        let links = walked.links.iter().filter_map(|l| self.entry(&l.path)).collect();
        let entry =
            if walked.real == Path::new("/") { None } else { Some(self.entry(&walked.real)?) };
        Some((links, entry))
    }
}

fn describe(entry: &ManifestEntry) -> String {
    let kind = match entry.kind {
        EntryType::Dir => "dir",
        EntryType::File => "file",
        EntryType::Symlink => "symlink",
    };
    let mut text = format!("{} ({kind}", entry.path.display());
    if let Some(target) = &entry.target {
        text.push_str(&format!(" -> {}", target.display()));
    }
    text.push_str(&format!(", mode {}", entry.mode));
    if let Some(size) = entry.size {
        text.push_str(&format!(", {size} bytes"));
    }
    text.push_str(")\n");
    if let Some(source) = &entry.source {
        text.push_str(&format!("    from {}\n", source.display()));
    }
    for why in &entry.why {
        text.push_str(&format!("    {why}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_digest_or_mode_is_an_error_naming_the_manifest_and_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.manifest.json");
        let entry = |mode: &str, sha256: &str| {
            format!(
                r#"{{"format":1,"name":"t","commands":[],"entries":[{{"path":"/a","type":"file","mode":"{mode}","sha256":"{sha256}","why":[]}}]}}"#
            )
        };
        let good = Sha256::of(b"a").to_string();
        std::fs::write(&path, entry("0644", &good)).unwrap();
        let read = Manifest::read(&path).unwrap();
        assert_eq!(read.entries[0].sha256, Some(Sha256::of(b"a")));
        assert_eq!(serde_json::to_string(&read).unwrap(), entry("0644", &good));
        for (mode, sha256, says) in [
            ("0644", "abc", "invalid sha256 `abc`: expected 64 lowercase hex digits"),
            ("0x644", good.as_str(), "invalid mode `0x644`"),
        ] {
            std::fs::write(&path, entry(mode, sha256)).unwrap();
            let err = format!("{:#}", Manifest::read(&path).unwrap_err());
            let named = format!("failed to parse manifest `{}`: {says}", path.display());
            assert!(err.starts_with(&named), "{err}");
        }
    }
}
