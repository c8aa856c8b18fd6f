//! The loader's symbol version check: after a process's objects are mapped, every version an object needs of a loaded library must be one that library defines (`_dl_check_map_versions` in glibc's `elf/dl-version.c`).
//!
//! The rules followed: the library is found among the loaded objects by
//! name (`find_needed`, which matches `DT_NEEDED` names, `l_name` and the
//! soname); a library with no `DT_VERDEF` at all only draws a note in
//! `ldd` and is not an error; a missing weak version (`VER_FLG_WEAK`) is
//! not an error either; any other missing version stops the program with
//! "version `V' not found (required by OBJECT)".

use std::fmt;
use std::path::PathBuf;

use super::{Map, Process};

/// A symbol version an object needs that the library loaded for it lacks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionMiss {
    /// The version's name, such as `GLIBC_2.38`.
    pub version: String,
    /// The library that should define it, as loaded.
    pub library: PathBuf,
    /// The object that needs it.
    pub required_by: PathBuf,
}

impl fmt::Display for VersionMiss {
    /// The loader's own words (`_dl_check_map_versions`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: version `{}' not found (required by {})",
            self.library.display(),
            self.version,
            self.required_by.display()
        )
    }
}

/// Whether `map` answers to `name` as `_dl_name_match_p` decides, or
/// carries it as its soname.
fn answers_to(map: &Map, name: &str) -> bool {
    map.names.iter().any(|n| n == name)
        || map.path.as_os_str() == name
        || map.object.soname.as_deref() == Some(name)
}

/// Checks every loaded object's needed versions, in load order, and
/// records each miss in the process's closure.
pub(super) fn check(process: &mut Process) {
    let mut misses = Vec::new();
    for map in &process.maps {
        for needed in &map.object.version_needs {
            // A library that was not found is already a miss of its own.
            let Some(library) = process.maps.iter().find(|m| answers_to(m, &needed.file)) else {
                continue;
            };
            let defs = &library.object.version_defs;
            if defs.is_empty() {
                continue;
            }
            for version in needed.versions.iter().filter(|v| !v.weak) {
                if !defs.contains(&version.name) {
                    misses.push(VersionMiss {
                        version: version.name.clone(),
                        library: library.path.clone(),
                        required_by: map.path.clone(),
                    });
                }
            }
        }
    }
    for miss in misses {
        if !process.closure.version_misses.contains(&miss) {
            process.closure.version_misses.push(miss);
        }
    }
}
