//! Which terminal description a tree can give an interactive shell: the caller's `TERM` when the tree has its terminfo entry, else the closest one it has.

use std::path::{Path, PathBuf};

use crate::build::manifest::Manifest;
use crate::vocab::EntryType;

/// Where ncurses looks for compiled entries on Debian, in its order
/// (`terminfo(5)`, "Fetching Compiled Descriptions").
const DIRS: &[&str] = &["/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"];

/// Tried, in order, when the caller's terminal has no entry in the tree.
const FALLBACKS: &[&str] = &["xterm-256color", "xterm", "vt100"];

/// The `TERM` to give a shell in the tree described by `manifest`, and a
/// line for people when it is not `wanted`.
pub fn term_for(manifest: &Manifest, wanted: Option<&str>) -> (String, Option<String>) {
    if let Some(term) = wanted.filter(|t| !t.is_empty())
        && has_entry(manifest, term)
    {
        return (term.to_string(), None);
    }
    let chosen = FALLBACKS.iter().find(|t| has_entry(manifest, t)).copied();
    let term = chosen.unwrap_or("dumb").to_string();
    let asked = wanted.unwrap_or("(unset)");
    let note = match chosen {
        Some(found) => {
            format!("note: the tree has no terminfo entry for TERM={asked}; using TERM={found}")
        }
        None => format!(
            "note: the tree has no terminfo entry for TERM={asked} nor for {}; using TERM=dumb",
            FALLBACKS.join(", ")
        ),
    };
    (term, Some(note))
}

/// Whether the tree holds a compiled entry for `term`, under its first
/// letter or that letter in hex (as on macOS-made trees).
pub fn has_entry(manifest: &Manifest, term: &str) -> bool {
    let Some(first) = term.chars().next() else { return false };
    if term.contains('/') {
        return false;
    }
    DIRS.iter().any(|dir| {
        [first.to_string(), format!("{:02x}", first as u32)].iter().any(|sub| {
            let path: PathBuf = Path::new(dir).join(sub).join(term);
            manifest.lookup(&path).is_some_and(|e| e.kind == EntryType::File)
        })
    })
}
