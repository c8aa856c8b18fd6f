//! The libraries an object declares it may `dlopen(3)` in its `.note.dlopen` notes: which of them a resolution loads, and how each is found.
//!
//! The loader never reads these notes (the FDO "ELF dlopen metadata",
//! <https://systemd.io/ELF_DLOPEN_METADATA/>): a program calls `dlopen` when
//! it needs a feature. A rootfs that must offer the feature needs the
//! library, so after the `DT_NEEDED` closure each loaded object's declared
//! libraries are loaded, in load order, down to [`Options::dlopen`](super::Options::dlopen)
//! (required, then recommended, then suggested).
//!
//! `dlopen(3)` from an object is glibc's `_dl_map_object` with that object as
//! the caller (`_dl_open_worker`, `elf/dl-open.c`): a name an object already
//! loaded answers to is that object; otherwise the name is searched like a
//! `DT_NEEDED` entry of the caller, with its `DT_RPATH` chain and its
//! `DT_RUNPATH`. Each library found brings its own `DT_NEEDED` closure.
//!
//! An entry's sonames are alternatives, most preferred first; a program tries
//! them in turn, and the first that loads wins. When none is found, a
//! required entry is a miss like any other; a recommended or suggested one is
//! optional, and is listed in [`Closure::skipped_dlopen`](super::Closure)
//! with the places searched, as is an entry below the level asked for.

use std::fmt;
use std::str::FromStr;

use super::search::Search;
use super::{Process, Reason, Resolver, Skip, SkippedDlopen, expand_name};
use crate::resolve::elf::{DlopenEntry, DlopenPriority};

/// Which declared libraries a resolution loads: those of this priority and
/// above. [`Options::dlopen`](super::Options) defaults to `Recommended`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DlopenLevel {
    Required,
    #[default]
    Recommended,
    Suggested,
    /// None at all: only what the loader itself loads.
    None,
}

impl DlopenLevel {
    /// Whether a declared library of `priority` is loaded at this level.
    pub fn includes(self, priority: DlopenPriority) -> bool {
        match self {
            DlopenLevel::Required => priority == DlopenPriority::Required,
            DlopenLevel::Recommended => priority <= DlopenPriority::Recommended,
            DlopenLevel::Suggested => true,
            DlopenLevel::None => false,
        }
    }
}

impl fmt::Display for DlopenLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DlopenLevel::Required => "required",
            DlopenLevel::Recommended => "recommended",
            DlopenLevel::Suggested => "suggested",
            DlopenLevel::None => "none",
        })
    }
}

/// A level named by its text: `required`, `recommended`, `suggested`, `none`.
impl FromStr for DlopenLevel {
    type Err = UnknownDlopenLevel;

    fn from_str(text: &str) -> Result<DlopenLevel, UnknownDlopenLevel> {
        match text {
            "required" => Ok(DlopenLevel::Required),
            "recommended" => Ok(DlopenLevel::Recommended),
            "suggested" => Ok(DlopenLevel::Suggested),
            "none" => Ok(DlopenLevel::None),
            _ => Err(UnknownDlopenLevel(text.to_string())),
        }
    }
}

/// A text that names no [`DlopenLevel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownDlopenLevel(pub String);

impl fmt::Display for UnknownDlopenLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown dlopen level `{}`: expected `required`, `recommended`, `suggested` or `none`",
            self.0
        )
    }
}

impl std::error::Error for UnknownDlopenLevel {}

impl Resolver {
    /// Loads the libraries `process.maps[at]` declares, as `dlopen` from it
    /// would, and records those left out.
    pub(super) fn dlopen_declared(&self, process: &mut Process, at: usize) {
        let object = process.maps[at].object.clone();
        let by = process.maps[at].path.clone();
        for warning in &object.warnings {
            process.closure.warnings.push(format!("`{}`: {warning}", by.display()));
        }
        for entry in &object.dlopen {
            if self.options.dlopen.includes(entry.priority) {
                self.dlopen_entry(process, at, entry);
            } else {
                process.closure.skipped_dlopen.push(SkippedDlopen {
                    by: by.clone(),
                    entry: entry.clone(),
                    why: Skip::BelowLevel { level: self.options.dlopen },
                });
            }
        }
    }

    /// One declared entry: its sonames tried in order until one is found.
    fn dlopen_entry(&self, process: &mut Process, at: usize, entry: &DlopenEntry) {
        let by = process.maps[at].path.clone();
        let mut seen = Search::default();
        for soname in &entry.sonames {
            let mut search = Search::default();
            let Some(name) = expand_name(process, at, soname) else {
                search.fatal = Some(format!("`{soname}`: $ORIGIN cannot be expanded"));
                seen.absorb(search);
                continue;
            };
            if let Some(mapped) = self.find(process, at, &name, &mut search) {
                let reason = Reason::Dlopen {
                    by,
                    name: name.clone(),
                    feature: entry.feature.clone(),
                    priority: entry.priority,
                };
                self.attach(process, at, &name, &format!("dlopen {name}"), mapped, reason);
                return;
            }
            seen.absorb(search);
        }
        let (searched, note) = seen.into_report();
        if entry.priority != DlopenPriority::Required {
            let why = Skip::NotFound { searched, note };
            process.closure.skipped_dlopen.push(SkippedDlopen { by, entry: entry.clone(), why });
            return;
        }
        // A miss under the most preferred name, the others in the note.
        let name = &entry.sonames[0];
        let mut declared = format!("required in `.note.dlopen`{}", feature_words(entry));
        if entry.sonames.len() > 1 {
            declared.push_str(&format!(", or else {}", entry.sonames[1..].join(", ")));
        }
        let note = Some(note.map_or(declared.clone(), |note| format!("{declared}; {note}")));
        self.record_missing(process, at, name, searched, note);
        let from = process.maps[at].node;
        process.closure.add_edge(from, &format!("dlopen {name}"), None);
    }
}

/// ` for feature `x``, or nothing for an entry without a feature.
pub(super) fn feature_words(entry: &DlopenEntry) -> String {
    entry.feature.as_ref().map(|f| format!(" for feature `{f}`")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_includes_its_priority_and_those_above() {
        use DlopenPriority::*;
        let all = [Required, Recommended, Suggested];
        let included = |level: DlopenLevel| -> Vec<DlopenPriority> {
            all.into_iter().filter(|p| level.includes(*p)).collect()
        };
        assert_eq!(included(DlopenLevel::Required), [Required]);
        assert_eq!(included(DlopenLevel::default()), [Required, Recommended]);
        assert_eq!(included(DlopenLevel::Suggested), all);
        assert!(included(DlopenLevel::None).is_empty());
        for level in ["required", "recommended", "suggested", "none"] {
            assert_eq!(level.parse::<DlopenLevel>().unwrap().to_string(), level);
        }
        assert!("all".parse::<DlopenLevel>().unwrap_err().to_string().contains("`all`"));
    }
}
