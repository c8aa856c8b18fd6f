//! The license each package's copyright file declares, by the file's state, kept beside the outputs (`.rootfs/licenses.json`), so a build parses only the copyright files that changed.
//!
//! Reading and translating the copyright files of a tree's few hundred
//! packages (`dpkg/copyright.rs`) costs as much CPU as hard-linking the
//! tree. An entry is used only while its file's [`FileState`] (device,
//! inode, mode, size, mtime) is the one taken before the file was read,
//! and the whole cache only by the very program that wrote it (its own
//! executable's state): another version of this tool may translate the
//! same text differently.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::build::dpkg::copyright::Declared;
use crate::build::side_file::{self, SideFile};
use crate::vocab::FileState;

/// Host path of a copyright file -> (its state when read, what it declares).
pub type Licenses = HashMap<PathBuf, (FileState, Declared)>;

/// The file as written: its format, the program that wrote it, and the
/// entries sorted, on one line. (The format is a field of its own: the
/// flattened wrapper of `SideFile::FORMAT` cannot carry a
/// [`FileState`]'s 128-bit time.)
#[derive(Default, Serialize, Deserialize)]
pub struct LicenseFile {
    format: u32,
    /// The state of the executable that wrote the file.
    tool: Option<FileState>,
    entries: BTreeMap<PathBuf, (FileState, Declared)>,
}

/// Bumped when what the file means changes.
const FORMAT: u32 = 1;

/// A license cache's shape, checked without keeping its entries.
#[derive(Deserialize)]
struct Shape {
    format: u32,
    #[serde(rename = "tool")]
    _tool: serde::de::IgnoredAny,
    #[serde(rename = "entries")]
    _entries: serde::de::IgnoredAny,
}

impl SideFile for LicenseFile {
    const NAME: &'static str = "licenses.json";
    const WHAT: &'static str = "a license cache";
    const PRETTY: bool = false;

    fn valid(&self) -> bool {
        self.format == FORMAT
    }

    fn recognise(bytes: &[u8]) -> bool {
        serde_json::from_slice::<Shape>(bytes).is_ok_and(|shape| shape.format == FORMAT)
    }
}

/// The license cache for outputs in the folder holding `out`.
pub fn path_for(out: &Path) -> PathBuf {
    side_file::path_for::<LicenseFile>(out)
}

/// The state of the running program, which a cache must have been written
/// by to be used.
fn this_tool() -> Option<FileState> {
    std::env::current_exe().ok().and_then(|exe| FileState::read(&exe))
}

/// Reads the cache; a missing, unreadable or foreign one, or one another
/// program wrote, is empty.
pub fn read(path: &Path) -> Licenses {
    let file = side_file::read::<LicenseFile>(path);
    match file.tool {
        Some(tool) if Some(&tool) == this_tool().as_ref() => file.entries.into_iter().collect(),
        _ => Licenses::new(),
    }
}

/// Adds `fresh` to the cache on disk, keeping the `known` entries whose
/// file is unchanged (other trees in the folder may use them), and writes
/// it back atomically; a cache that would be written as it was read
/// (`known`, nothing fresh, nothing dropped) is left alone.
pub fn update(path: &Path, known: Licenses, fresh: Licenses) -> Result<()> {
    use rayon::prelude::*;
    let known_entries = known.len();
    let older: Vec<(PathBuf, (FileState, Declared))> = known
        .into_par_iter()
        .filter(|(host, (state, _))| {
            !fresh.contains_key(host) && FileState::read(host).as_ref() == Some(state)
        })
        .collect();
    if fresh.is_empty() && known_entries > 0 && older.len() == known_entries {
        return Ok(());
    }
    let entries = fresh.into_iter().chain(older).collect();
    side_file::write(path, &LicenseFile { format: FORMAT, tool: this_tool(), entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(expression: &str) -> Declared {
        Declared { expression: Some(expression.to_string()), references: BTreeMap::new() }
    }

    #[test]
    fn entries_of_changed_files_and_of_another_program_are_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, changed) = (dir.path().join("kept"), dir.path().join("changed"));
        std::fs::write(&kept, "a").unwrap();
        std::fs::write(&changed, "b").unwrap();
        let state = |p: &Path| FileState::read(p).unwrap();
        let path = path_for(&dir.path().join("tree"));
        let known: Licenses = [(changed.clone(), (state(&changed), declared("MIT")))].into();
        let fresh: Licenses = [(kept.clone(), (state(&kept), declared("GPL-2.0-only")))].into();
        std::fs::write(&changed, "longer").unwrap();
        update(&path, known, fresh).unwrap();
        let read_back = read(&path);
        assert_eq!(
            read_back.keys().collect::<Vec<_>>(),
            [&kept],
            "the changed file's entry is dropped"
        );
        assert_eq!(read_back[&kept].1, declared("GPL-2.0-only"));
        let written = FileState::read(&path).unwrap();
        update(&path, read_back, Licenses::new()).unwrap();
        assert_eq!(FileState::read(&path), Some(written), "nothing changed: not rewritten");

        // The same file, as another build of this tool wrote it.
        let mut file = side_file::read::<LicenseFile>(&path);
        assert!(file.tool.is_some());
        file.tool.as_mut().unwrap().mtime_ns += 1;
        side_file::write(&path, &file).unwrap();
        assert!(read(&path).is_empty(), "another program's translations are not taken");
        let bytes = std::fs::read(&path).unwrap();
        assert!(side_file::recognise::<LicenseFile>(&bytes));
        assert!(!side_file::recognise::<LicenseFile>(br#"{"format":2,"tool":null,"entries":{}}"#));
        assert!(!side_file::recognise::<LicenseFile>(b"{}"));
    }
}
