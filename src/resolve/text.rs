//! How closures are shown: a readable tree per input, or one JSON object for all of them.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use serde_json::{Value, json};

use super::dlopen::feature_words;
use super::{Closure, InputKind, Missing, Reason, Skip, SkippedDlopen};

/// One JSON object mapping each input, exactly as given, to its sorted
/// `files` and `missing` (and `error`, when the input itself is unusable).
/// Libraries declared in `.note.dlopen` notes add, when there are any,
/// `dlopen` (those loaded, with their reason), `skipped_dlopen` (those left
/// out, with why) and `warnings` (notes that cannot be read); symbol
/// versions a library lacks add `version_misses`, in the loader's words.
pub fn render_json(closures: &[Closure]) -> String {
    let mut map = BTreeMap::new();
    for c in closures {
        let mut entry = json!({
            "files": c.file_paths().iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "missing": c.missing_names(),
        });
        if let Some(e) = &c.error {
            entry["error"] = Value::String(e.to_string());
        }
        if !c.version_misses.is_empty() {
            let lines: Vec<String> = c.version_misses.iter().map(|v| v.to_string()).collect();
            entry["version_misses"] = json!(lines);
        }
        let dlopened = dlopened_json(c);
        if !dlopened.is_empty() {
            entry["dlopen"] = Value::Array(dlopened);
        }
        if !c.skipped_dlopen.is_empty() {
            entry["skipped_dlopen"] = c.skipped_dlopen.iter().map(skipped_json).collect();
        }
        if !c.warnings.is_empty() {
            entry["warnings"] = json!(c.warnings);
        }
        map.insert(c.input.clone(), entry);
    }
    let mut text = serde_json::to_string_pretty(&map).expect("JSON of strings cannot fail");
    text.push('\n');
    text
}

/// The files loaded for `.note.dlopen` entries, sorted by path.
fn dlopened_json(c: &Closure) -> Vec<Value> {
    let mut out: Vec<(String, Value)> = c
        .files
        .iter()
        .filter_map(|f| match &f.reason {
            Reason::Dlopen { by, name, feature, priority } => {
                let path = f.path.display().to_string();
                let value = json!({
                    "path": path,
                    "name": name,
                    "by": by.display().to_string(),
                    "feature": feature,
                    "priority": priority.to_string(),
                });
                Some((path, value))
            }
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, v)| v).collect()
}

fn skipped_json(s: &SkippedDlopen) -> Value {
    let mut value = json!({
        "by": s.by.display().to_string(),
        "sonames": s.entry.sonames,
        "feature": s.entry.feature,
        "priority": s.entry.priority.to_string(),
    });
    match &s.why {
        Skip::BelowLevel { level } => value["why"] = json!(format!("below the level {level}")),
        Skip::NotFound { searched, note } => {
            value["why"] = json!("not found");
            value["searched"] =
                searched.iter().map(|p| Value::String(p.display().to_string())).collect();
            if let Some(note) = note {
                value["note"] = json!(note);
            }
        }
    }
    value
}

/// A tree per input, in the style of `lddtree`: who needs what, found where.
/// A library is expanded where it first appears; later mentions say so.
pub fn render_tree(closures: &[Closure]) -> String {
    let mut out = String::new();
    for c in closures {
        let suffix = match (&c.error, &c.kind) {
            (Some(e), _) => format!(" (error: {e})"),
            (None, InputKind::Static) => " (statically linked)".to_string(),
            (None, InputKind::NotDynamic) => " (not dynamic)".to_string(),
            _ => String::new(),
        };
        // A name found on PATH says which program it is.
        if !c.input.contains('/') && c.error.is_none() {
            let _ = writeln!(out, "{} => {}{suffix}", c.input, c.path.display());
        } else {
            let _ = writeln!(out, "{}{suffix}", c.input);
        }
        let mut seen = HashSet::from([0usize]);
        walk(c, 0, 1, &mut seen, &mut out);
        for m in &c.missing {
            write_missing(m, &mut out);
        }
        for v in &c.version_misses {
            let _ = writeln!(out, "    {v}");
        }
        for s in &c.skipped_dlopen {
            write_skipped(s, &mut out);
        }
        for w in &c.warnings {
            let _ = writeln!(out, "    warning: {w}");
        }
    }
    out
}

fn write_missing(m: &Missing, out: &mut String) {
    let chain: Vec<String> = m.chain.iter().map(|p| p.display().to_string()).collect();
    let _ = writeln!(out, "    missing {}: needed by {}", m.name, chain.join(" -> "));
    write_searched(&m.searched, m.note.as_deref(), out);
}

fn write_skipped(s: &SkippedDlopen, out: &mut String) {
    let why = match &s.why {
        Skip::BelowLevel { level } => format!("below the level {level}"),
        Skip::NotFound { .. } => "not found, and optional".to_string(),
    };
    let _ = writeln!(
        out,
        "    skipped dlopen {} ({}{}) of {}: {why}",
        s.entry.sonames.join(" or "),
        s.entry.priority,
        feature_words(&s.entry),
        s.by.display()
    );
    if let Skip::NotFound { searched, note } = &s.why {
        write_searched(searched, note.as_deref(), out);
    }
}

fn write_searched(searched: &[std::path::PathBuf], note: Option<&str>, out: &mut String) {
    if !searched.is_empty() {
        let dirs: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
        let _ = writeln!(out, "        searched {}", dirs.join(", "));
    }
    if let Some(note) = note {
        let _ = writeln!(out, "        {note}");
    }
}

fn walk(c: &Closure, node: usize, depth: usize, seen: &mut HashSet<usize>, out: &mut String) {
    for edge in &c.nodes[node].edges {
        let indent = "    ".repeat(depth);
        match edge.to {
            None => {
                let _ = writeln!(out, "{indent}{} => not found", edge.label);
            }
            Some(to) => {
                let expand = c.nodes[to].parent == Some(node) && seen.insert(to);
                let path = c.nodes[to].path.display();
                let _ = writeln!(out, "{indent}{} => {path}", edge.label);
                if expand {
                    walk(c, to, depth + 1, seen, out);
                }
            }
        }
    }
}
