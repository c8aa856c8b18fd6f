//! How closures are shown: a readable tree per input, or one JSON object for all of them.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use serde_json::{Value, json};

use super::{Closure, InputKind};

/// One JSON object mapping each input, exactly as given, to its sorted
/// `files` and `missing` (and `error`, when the input itself is unusable).
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
        map.insert(c.input.clone(), entry);
    }
    let mut text = serde_json::to_string_pretty(&map).expect("JSON of strings cannot fail");
    text.push('\n');
    text
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
        let _ = writeln!(out, "{}{suffix}", c.input);
        let mut seen = HashSet::from([0usize]);
        walk(c, 0, 1, &mut seen, &mut out);
        for m in &c.missing {
            let chain: Vec<String> = m.chain.iter().map(|p| p.display().to_string()).collect();
            let _ = writeln!(out, "    missing {}: needed by {}", m.name, chain.join(" -> "));
            if !m.searched.is_empty() {
                let dirs: Vec<String> =
                    m.searched.iter().map(|p| p.display().to_string()).collect();
                let _ = writeln!(out, "        searched {}", dirs.join(", "));
            }
            if let Some(note) = &m.note {
                let _ = writeln!(out, "        {note}");
            }
        }
    }
    out
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
