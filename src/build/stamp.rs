//! The stamp beside a built rootfs (`.rootfs/<name>.stamp.json` beside it): the state of every input and output at build time, so an unchanged rebuild is a cheap no-op.
//!
//! The check re-reads the spec files and `lstat`s every recorded path: each
//! copied file and mirrored symlink, every directory the resolver searched
//! (a library appearing there could change the answer), the sysroot's
//! loader cache or configuration, every path of the built tree (an edit
//! inside it is a change too), and the tool itself.
//!
//! The inputs and outputs are kept as vectors sorted by path, written as
//! JSON maps: a tree of 60,000 entries has two such lists, and building a
//! `BTreeMap` of paths while reading them cost more than every `lstat` of
//! the check (paths compare component by component). The check `lstat`s
//! them on every core and still names the first change in path order.
//!
//! A state is compared by device, inode, mode, size and mtime, not ctime:
//! ctime also moves when anyone makes or removes a hard link to a file
//! (`--link hard` does), which would make every build look stale. A file
//! rewritten in place with its mtime set back would go unnoticed, as it
//! does with make and rsync.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::vocab::{FileState, Sha256};

/// Everything besides the inputs that decides what a build writes: the
/// tool, its options and the CPU. Kept field by field, so that a rebuild
/// says which one changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampKey {
    /// The tool's version.
    pub version: String,
    /// The running binary's state: a rebuilt tool may write other bytes.
    pub exe: Option<FileState>,
    /// The sysroot, canonical.
    pub sysroot: PathBuf,
    /// `--link`, by its name (`copy`, `hard`).
    pub link: String,
    /// The timestamp of every file (`SOURCE_DATE_EPOCH`).
    pub epoch: i64,
    /// The spec's name.
    pub spec: String,
    /// The host CPU as the loader sees it: its hwcaps decide the libraries.
    pub cpu: String,
}

impl StampKey {
    /// The first field that differs from `self` (the stamp's) in `now`,
    /// with both values where they are short, for people; `None` when
    /// every field is the same.
    pub fn change(&self, now: &StampKey) -> Option<String> {
        let reason = if self.version != now.version {
            format!("the tool's version changed ({} -> {})", self.version, now.version)
        } else if self.exe != now.exe {
            "the tool was rebuilt".to_string()
        } else if self.sysroot != now.sysroot {
            let (was, is) = (self.sysroot.display(), now.sysroot.display());
            format!("the sysroot changed (`{was}` -> `{is}`)")
        } else if self.link != now.link {
            format!("`--link` changed ({} -> {})", self.link, now.link)
        } else if self.epoch != now.epoch {
            format!("SOURCE_DATE_EPOCH changed ({} -> {})", self.epoch, now.epoch)
        } else if self.spec != now.spec {
            format!("the spec's name changed (`{}` -> `{}`)", self.spec, now.spec)
        } else if self.cpu != now.cpu {
            "the CPU changed (its hwcaps decide the libraries)".to_string()
        } else {
            return None;
        };
        Some(reason)
    }
}

/// The key as a stamp holds it: its fields, or the one line of words
/// (`rootfs 0.1.0 exe=... link=Copy ...`) that stamps held before the
/// fields were kept apart. Such a stamp is still this tool's (a build
/// replaces it), and stale.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum RecordedKey {
    Fields(StampKey),
    Line(String),
}

/// By hand rather than `untagged`, whose buffering cannot hold the `i128`
/// of a [`FileState`]: a string is the earlier line, a map the fields.
impl<'de> Deserialize<'de> for RecordedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::spec::text_or_table::deserialize(
            deserializer,
            "a stamp key: a table of fields, or the earlier line",
            RecordedKey::Line,
            RecordedKey::Fields,
        )
    }
}

impl Default for RecordedKey {
    fn default() -> RecordedKey {
        RecordedKey::Line(String::new())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stamp {
    /// Everything about how the build was asked for: tool, options.
    pub key: RecordedKey,
    /// sha256 of each spec file read.
    pub specs: BTreeMap<PathBuf, Sha256>,
    /// State of each input (`None`: it did not exist), sorted by path.
    #[serde(with = "sorted_map")]
    pub inputs: Vec<(PathBuf, Option<FileState>)>,
    /// State of every path of the output tree, relative to it (`""` is the
    /// tree itself), as written, sorted by path.
    #[serde(with = "sorted_map")]
    pub outputs: Vec<(PathBuf, FileState)>,
    pub manifest: Option<FileState>,
    /// sha256 of the lock file as the build left it beside the spec.
    #[serde(default)]
    pub lock: Option<Sha256>,
    /// State of that lock file, so that a no-op build does not read it:
    /// its sha256 is compared only when the state moved (`None` from a
    /// build that did not record it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_state: Option<FileState>,
    /// State of the SBOM beside the tree.
    #[serde(default)]
    pub sbom: Option<FileState>,
}

/// Where the stamp of the rootfs at `out` lives.
pub fn path_for(out: &Path) -> PathBuf {
    crate::fsutil::side_file(out, ".stamp.json")
}

impl Stamp {
    pub fn read(path: &Path) -> Option<Stamp> {
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).context("serialising the stamp")
    }

    /// The bytes of [`Stamp::to_json`], written as they are made.
    pub fn write_json(&self, w: &mut dyn std::io::Write) -> Result<()> {
        serde_json::to_writer(w, self).context("serialising the stamp")
    }

    /// Whether this stamp was written for the very tree folder now at `out`
    /// (same device and inode) and the manifest file now at `manifest`.
    pub fn describes(&self, out: &Path, manifest: &Path) -> bool {
        let tree =
            self.outputs.first().filter(|(rel, _)| rel.as_os_str().is_empty()).map(|(_, s)| s);
        let now = FileState::read(out);
        let tree_matches = matches!((tree, &now), (Some(a), Some(b)) if a.same_file(b));
        tree_matches && self.manifest.is_some() && FileState::read(manifest) == self.manifest
    }

    /// The first reason the build at `out` is stale, or `None` when it is up
    /// to date.
    pub fn stale_reason(
        &self,
        key: &StampKey,
        specs: &BTreeMap<PathBuf, Sha256>,
        out: &Path,
    ) -> Option<String> {
        let change = match &self.key {
            RecordedKey::Fields(recorded) => recorded.change(key),
            RecordedKey::Line(_) => Some("the stamp is of an earlier version of the tool".into()),
        };
        if change.is_some() {
            return change;
        }
        if let Some(change) = spec_change(&self.specs, specs) {
            return Some(change);
        }
        if self.outputs.is_empty() {
            return Some(format!("`{}` was not recorded", out.display()));
        }
        use rayon::prelude::*;
        if let Some((path, _)) = self
            .outputs
            .par_iter()
            .find_first(|(rel, state)| FileState::read(&out.join(rel)).as_ref() != Some(state))
        {
            return Some(format!("`{}` changed", out.join(path).display()));
        }
        if FileState::read(&crate::build::manifest::path_for(out)) != self.manifest {
            return Some("the manifest changed".to_string());
        }
        self.inputs
            .par_iter()
            .find_first(|(path, state)| FileState::read(path) != *state)
            .map(|(path, _)| format!("`{}` changed", path.display()))
    }
}

/// Which spec file changed, was added to the includes or left them, for
/// people; `None` when all are as recorded.
fn spec_change(old: &BTreeMap<PathBuf, Sha256>, new: &BTreeMap<PathBuf, Sha256>) -> Option<String> {
    if let Some((path, _)) = new.iter().find(|(p, d)| old.get(*p).is_some_and(|o| o != *d)) {
        return Some(format!("`{}` changed", path.display()));
    }
    if let Some(path) = new.keys().find(|p| !old.contains_key(*p)) {
        return Some(format!("`{}` is read now, and was not before", path.display()));
    }
    old.keys()
        .find(|p| !new.contains_key(*p))
        .map(|path| format!("`{}` is no longer read", path.display()))
}

/// The state of every path of the tree at `out`, from its manifest,
/// sorted by path.
pub fn outputs(
    out: &Path,
    manifest: &crate::build::manifest::Manifest,
) -> Vec<(PathBuf, FileState)> {
    use rayon::prelude::*;
    let root = std::iter::once(PathBuf::new());
    let paths =
        manifest.entries.iter().map(|e| e.path.strip_prefix("/").unwrap_or(&e.path).to_path_buf());
    let rels: Vec<PathBuf> = root.chain(paths).collect();
    let mut states: Vec<(PathBuf, FileState)> = rels
        .into_par_iter()
        .filter_map(|rel| FileState::read(&out.join(&rel)).map(|state| (rel, state)))
        .collect();
    states.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    states.dedup_by(|a, b| a.0 == b.0);
    states
}

/// A list of `(path, value)` sorted by path, as a JSON map: the bytes a
/// `BTreeMap` gives, read back without building one.
mod sorted_map {
    use std::fmt;
    use std::marker::PhantomData;
    use std::path::PathBuf;

    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde::ser::{SerializeMap, Serializer};

    pub fn serialize<S: Serializer, V: serde::Serialize>(
        list: &[(PathBuf, V)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(list.len()))?;
        for (path, value) in list {
            map.serialize_entry(path, value)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Vec<(PathBuf, V)>, D::Error> {
        deserializer.deserialize_map(ListVisitor(PhantomData))
    }

    struct ListVisitor<V>(PhantomData<V>);

    impl<'de, V: Deserialize<'de>> Visitor<'de> for ListVisitor<V> {
        type Value = Vec<(PathBuf, V)>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map from paths to states")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut list = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry::<PathBuf, V>()? {
                list.push(entry);
            }
            // Written sorted; a hand-edited stamp is put back in order.
            if !list.is_sorted_by(|a, b| a.0 < b.0) {
                list.sort_by(|a, b| a.0.cmp(&b.0));
                list.dedup_by(|a, b| a.0 == b.0);
            }
            Ok(list)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StampKey {
        StampKey {
            version: "0.1.0".into(),
            exe: None,
            // A path with a space and `=`, which the one-line key of
            // earlier stamps could not tell from its next word.
            sysroot: "/a b=c".into(),
            link: "copy".into(),
            epoch: 1,
            spec: "s".into(),
            cpu: "v3".into(),
        }
    }

    #[test]
    fn each_field_of_the_key_is_named_when_it_changed() {
        let was = key();
        assert_eq!(was.change(&key()), None);
        let exe = FileState { dev: 1, ino: 2, mode: 0o755, size: 3, mtime_ns: 4 };
        type Edit = Box<dyn Fn(&mut StampKey)>;
        let cases: [(Edit, &str); 7] = [
            (
                Box::new(|k| k.version = "0.2.0".into()),
                "the tool's version changed (0.1.0 -> 0.2.0)",
            ),
            (Box::new(move |k| k.exe = Some(exe.clone())), "the tool was rebuilt"),
            (
                Box::new(|k| k.sysroot = "/a b=d".into()),
                "the sysroot changed (`/a b=c` -> `/a b=d`)",
            ),
            (Box::new(|k| k.link = "hard".into()), "`--link` changed (copy -> hard)"),
            (Box::new(|k| k.epoch = 2), "SOURCE_DATE_EPOCH changed (1 -> 2)"),
            (Box::new(|k| k.spec = "t".into()), "the spec's name changed (`s` -> `t`)"),
            (
                Box::new(|k| k.cpu = "v2".into()),
                "the CPU changed (its hwcaps decide the libraries)",
            ),
        ];
        for (edit, reason) in cases {
            let mut now = key();
            edit(&mut now);
            assert_eq!(was.change(&now).as_deref(), Some(reason));
        }
    }

    #[test]
    fn a_stamp_of_the_one_line_key_is_still_read_and_is_stale() {
        let out = Path::new("/nonexistent/tree");
        let specs = BTreeMap::new();
        let earlier = r#"{"key":"rootfs 0.1.0 exe=1:2:3 sysroot=/ link=Copy epoch=0 spec=s cpu=x","specs":{},"inputs":{},"outputs":{},"manifest":null}"#;
        let stamp: Stamp = serde_json::from_str(earlier).unwrap();
        assert_eq!(
            stamp.stale_reason(&key(), &specs, out).as_deref(),
            Some("the stamp is of an earlier version of the tool")
        );
        let exe =
            FileState { dev: 1, ino: 2, mode: 0o755, size: 3, mtime_ns: 1_733_000_000_123_456_789 };
        let key = || StampKey { exe: Some(exe.clone()), ..key() };
        let now = Stamp { key: RecordedKey::Fields(key()), ..Stamp::default() };
        let read: Stamp = serde_json::from_slice(&now.to_json().unwrap()).unwrap();
        assert!(matches!(&read.key, RecordedKey::Fields(k) if *k == key()), "{read:?}");
        // The key matches, so the next step speaks.
        let reason = read.stale_reason(&key(), &specs, out);
        assert_eq!(reason.as_deref(), Some("`/nonexistent/tree` was not recorded"));
    }
}
