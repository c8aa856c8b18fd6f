//! The JSON files this tool keeps in `.rootfs/` beside its outputs (the digest and SHA1 caches, the layer cache, the ledger of outputs): one rule for where each lives, recognising a file of ours, reading one that may be missing, its format number, and the atomic write.
//!
//! Each file is a type implementing [`SideFile`]. A file is this tool's
//! when it parses as that type, carries the type's format number (for the
//! files that have one), and passes the type's own check ([`SideFile::valid`],
//! such as "every key is a sha256"). Reading tolerates a missing or foreign
//! file (a cache only saves time: it is then empty); whether a foreign file
//! may be replaced is `output`'s rule, which takes [`recognise`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A JSON file of [`crate::fsutil::SIDE_DIR`].
pub trait SideFile: Serialize + DeserializeOwned + Default {
    /// Its name in the side folder.
    const NAME: &'static str;
    /// What it is, for people: "a digest cache".
    const WHAT: &'static str;
    /// Written indented, for files people read (the ledger), or on one line.
    const PRETTY: bool;
    /// The number written as the file's `"format"` field, bumped when what
    /// the file means changes, so that an older file is not taken for a
    /// current one; `None` for files whose shape is their only version.
    const FORMAT: Option<u32> = None;

    /// Checks beyond the JSON's shape.
    fn valid(&self) -> bool {
        true
    }

    /// Whether `bytes` are a file of this type: by default, whether they
    /// parse as one. A type of many entries checks them one at a time
    /// without keeping them (`fsutil::is_json_map_of`), so recognising a
    /// 60,000-entry cache costs no memory.
    fn recognise(bytes: &[u8]) -> bool {
        parse::<Self>(bytes).is_some()
    }
}

/// The file of type `T` for outputs in the folder holding `out`.
pub fn path_for<T: SideFile>(out: &Path) -> PathBuf {
    crate::fsutil::side_dir(out).join(T::NAME)
}

/// The file as its format number wraps it: `{"format": N, ...the fields}`.
#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    format: u32,
    #[serde(flatten)]
    body: T,
}

/// The content of `bytes`, when they are a `T` of this tool.
pub fn parse<T: SideFile>(bytes: &[u8]) -> Option<T> {
    let value = match T::FORMAT {
        None => serde_json::from_slice::<T>(bytes).ok()?,
        Some(format) => {
            let versioned = serde_json::from_slice::<Versioned<T>>(bytes).ok()?;
            (versioned.format == format).then_some(versioned.body)?
        }
    };
    value.valid().then_some(value)
}

/// Whether `bytes` are a `T` of this tool.
pub fn recognise<T: SideFile>(bytes: &[u8]) -> bool {
    T::recognise(bytes)
}

/// The file at `path`; empty when it is missing, unreadable or not ours.
pub fn read<T: SideFile>(path: &Path) -> T {
    std::fs::read(path).ok().and_then(|bytes| parse(&bytes)).unwrap_or_default()
}

/// The bytes [`write()`] puts in the file.
#[cfg(test)]
pub fn to_bytes<T: SideFile>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    write_to::<T>(&mut bytes, value)?;
    Ok(bytes)
}

/// Writes the file's bytes to `w` as they are made: a digest cache of a
/// large tree is megabytes that need not be held whole.
fn write_to<T: SideFile>(w: &mut dyn std::io::Write, value: &impl Serialize) -> Result<()> {
    let written = match (T::FORMAT, T::PRETTY) {
        (None, false) => serde_json::to_writer(w, value),
        (None, true) => serde_json::to_writer_pretty(w, value),
        (Some(format), false) => serde_json::to_writer(w, &Versioned { format, body: value }),
        (Some(format), true) => serde_json::to_writer_pretty(w, &Versioned { format, body: value }),
    };
    written.with_context(|| format!("serialising {}", T::WHAT))
}

/// Writes `value` at `path` atomically (a temporary file renamed over it),
/// making the side folder when it is missing.
pub fn write<T: SideFile>(path: &Path, value: &T) -> Result<()> {
    write_as::<T>(path, value)
}

/// [`write()`] of a value that serialises as a `T` (the entries of a
/// large map, sorted, without building the map).
pub fn write_as<T: SideFile>(path: &Path, value: &impl Serialize) -> Result<()> {
    crate::fsutil::write_side_file_with(path, |w| write_to::<T>(w, value))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(transparent)]
    struct Plain(BTreeMap<String, u32>);

    impl SideFile for Plain {
        const NAME: &'static str = "plain.json";
        const WHAT: &'static str = "a plain file";
        const PRETTY: bool = false;
        fn valid(&self) -> bool {
            self.0.values().all(|v| *v < 10)
        }
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Numbered {
        items: BTreeMap<String, u32>,
    }

    impl SideFile for Numbered {
        const NAME: &'static str = "numbered.json";
        const WHAT: &'static str = "a numbered file";
        const PRETTY: bool = true;
        const FORMAT: Option<u32> = Some(3);
    }

    #[test]
    fn a_file_is_written_as_its_type_says_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let plain = Plain([("a".to_string(), 1)].into());
        let path = path_for::<Plain>(&dir.path().join("tree"));
        assert_eq!(path, dir.path().join(".rootfs/plain.json"));
        write(&path, &plain).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), br#"{"a":1}"#);
        assert_eq!(read::<Plain>(&path), plain);

        let numbered = Numbered { items: [("b".to_string(), 2)].into() };
        let path = path_for::<Numbered>(&dir.path().join("tree"));
        write(&path, &numbered).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\n  \"format\": 3,\n  \"items\": {\n    \"b\": 2\n  }\n}");
        assert_eq!(read::<Numbered>(&path), numbered);
    }

    #[test]
    fn only_files_of_this_type_version_and_rule_are_ours() {
        assert!(recognise::<Plain>(br#"{"a":1}"#));
        assert!(!recognise::<Plain>(br#"{"a":12}"#), "valid() refuses it");
        assert!(!recognise::<Plain>(b"my notes\n"));
        assert!(recognise::<Numbered>(br#"{"format":3,"items":{}}"#));
        assert!(!recognise::<Numbered>(br#"{"format":2,"items":{}}"#), "an older format");
        assert!(!recognise::<Numbered>(br#"{"items":{}}"#), "no format");
    }

    #[test]
    fn a_missing_or_foreign_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.json");
        assert_eq!(read::<Plain>(&path), Plain::default());
        std::fs::write(&path, "my notes\n").unwrap();
        assert_eq!(read::<Plain>(&path), Plain::default());
        std::fs::write(&path, r#"{"format":2,"items":{"x":1}}"#).unwrap();
        assert_eq!(read::<Numbered>(&path), Numbered::default());
    }
}
