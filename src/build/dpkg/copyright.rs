//! The license a Debian package states in `/usr/share/doc/NAME/copyright` when that file is machine-readable (DEP-5), as an SPDX license expression.
//!
//! The format is the Debian `copyright-format/1.0`: a header paragraph whose
//! `Format` field names the format, then `Files` paragraphs, each with a
//! `License` field whose first line is a short name or an expression of
//! short names joined by `or` and `and` (`and` binds tighter, a comma
//! groups: `A or B, and C` is `(A OR B) AND C`), and standalone `License`
//! paragraphs holding the text of a short name.
//!
//! A short name becomes an SPDX identifier only where the two mean exactly
//! the same license (`GPL-2+` is `GPL-2.0-or-later`, `Expat` is `MIT`); any
//! other name (`MIT`, which Debian uses for several texts, `public-domain`,
//! `GPL-2+ with OpenSSL exception`) becomes a `LicenseRef-` of its own,
//! carried with its text (the standalone paragraph's, else the name) so
//! that the SPDX document defines every reference it uses. A file that is
//! not machine-readable, or an expression that does not parse, gives no
//! expression at all: the SBOM says `NOASSERTION`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::build::license_cache::Licenses;
use crate::resolve::sysroot::Sysroot;
use crate::vocab::FileState;

/// A package's declared license.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declared {
    /// The SPDX expression; `None` for `NOASSERTION`.
    pub expression: Option<String>,
    /// `LicenseRef-...` id -> (the Debian name, its text), for every
    /// reference the expression uses.
    pub references: BTreeMap<String, (String, String)>,
}

/// Reads and translates the copyright file of each package of `names` in
/// the sysroot (`/usr/share/doc/NAME` may be a symlink, followed inside
/// it), but for the files `known` has in their present state
/// (`build/license_cache.rs`); returns every package's license and the
/// files translated now, each with its state taken before it was read.
/// Packages built from one source often ship the same file (four of
/// Boost's, 2 MB each): files of one size are read one after another and
/// each distinct text is translated once, so no more than one size's
/// distinct texts are held at a time.
pub fn declared_all(
    sysroot: &Sysroot,
    names: &BTreeSet<&str>,
    known: &Licenses,
) -> (BTreeMap<String, Declared>, Licenses) {
    // Each file found and its state taken on every core.
    let located: Vec<(&str, Option<(u64, ToRead)>)> = names
        .par_iter()
        .map(|name| {
            let path = Path::new("/usr/share/doc").join(name).join("copyright");
            let file = sysroot.locate(&path).ok().filter(|l| !l.is_dir).map(|l| {
                let host = sysroot.host(&l.real);
                let state = FileState::read(&host);
                (l.size, ToRead { name, host, state })
            });
            (*name, file)
        })
        .collect();
    let mut by_size: BTreeMap<u64, Vec<ToRead>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (name, file) in located {
        let Some((size, file)) = file else {
            out.insert(name.to_string(), Declared::default());
            continue;
        };
        match known.get(&file.host).filter(|(s, _)| Some(s) == file.state.as_ref()) {
            Some((_, declared)) => {
                out.insert(name.to_string(), declared.clone());
            }
            None => by_size.entry(size).or_default().push(file),
        }
    }
    // Each size's files on one core, the sizes spread over every core.
    let groups: Vec<Vec<ToRead>> = by_size.into_values().collect();
    let translated: Vec<(ToRead, Declared)> =
        groups.into_par_iter().flat_map_iter(declared_alike).collect();
    let mut fresh = Licenses::new();
    for (file, declared) in translated {
        if let Some(state) = file.state {
            fresh.insert(file.host, (state, declared.clone()));
        }
        out.insert(file.name.to_string(), declared);
    }
    (out, fresh)
}

/// A package's copyright file to read: the package, the file's host path,
/// and its state taken before it is read.
struct ToRead<'a> {
    name: &'a str,
    host: PathBuf,
    state: Option<FileState>,
}

/// The declared licenses of files of one size, each distinct text parsed
/// once; a file that cannot be read as text declares nothing.
fn declared_alike(files: Vec<ToRead>) -> Vec<(ToRead, Declared)> {
    let mut seen: Vec<(String, Declared)> = Vec::new();
    let mut out = Vec::new();
    for file in files {
        let declared = match std::fs::read_to_string(&file.host) {
            Err(_) => Declared::default(),
            Ok(text) => match seen.iter().find(|(known, _)| *known == text) {
                Some((_, declared)) => declared.clone(),
                None => {
                    let declared = parse(&text);
                    seen.push((text, declared.clone()));
                    declared
                }
            },
        };
        out.push((file, declared));
    }
    out
}

/// The declared license of a copyright file's text.
pub fn parse(text: &str) -> Declared {
    let paragraphs = paragraphs(text);
    let Some(header) = paragraphs.first() else { return Declared::default() };
    let machine_readable = header
        .format
        .is_some_and(|format| format.contains("copyright-format") || format.contains("dep5"));
    if !machine_readable {
        return Declared::default();
    }
    let texts: BTreeMap<String, String> = paragraphs
        .iter()
        .filter(|p| !p.files)
        .filter_map(|p| p.license.as_ref())
        .filter(|(_, body)| !body.trim().is_empty())
        .map(|(name, body)| (name.to_lowercase(), body.clone()))
        .collect();
    let mut fields: Vec<&str> = paragraphs
        .iter()
        .filter(|p| p.files)
        .filter_map(|p| p.license.as_ref().map(|(first, _)| *first))
        .collect();
    if fields.is_empty() {
        fields.extend(header.license.as_ref().map(|(first, _)| *first));
    }
    // A field's expression depends on its text alone, and the terms are
    // sorted and deduplicated below: each distinct field is translated once
    // (Boost's file has 1,541 `Files` paragraphs and 30 distinct licenses).
    fields.sort_unstable();
    fields.dedup();
    let mut declared = Declared::default();
    let mut terms = Vec::new();
    for field in fields {
        match expression(field, &texts, &mut declared.references) {
            Some(term) => terms.push(term),
            None => return Declared::default(),
        }
    }
    terms.sort();
    terms.dedup();
    if terms.is_empty() {
        return Declared::default();
    }
    let wrapped: Vec<String> = if terms.len() == 1 {
        terms
    } else {
        terms.into_iter().map(|t| if t.contains(' ') { format!("({t})") } else { t }).collect()
    };
    declared.expression = Some(wrapped.join(" AND "));
    declared
}

/// A paragraph, with only the fields the license needs: `Format`'s value,
/// whether it has `Files`, and `License` (its first line and continuation
/// lines). The other fields (`Copyright` holds thousands of lines in some
/// packages) are skipped without being copied.
#[derive(Default)]
struct Paragraph<'a> {
    /// Whether any field was seen: a paragraph of other fields still counts
    /// (the first one is the header).
    any: bool,
    format: Option<&'a str>,
    files: bool,
    license: Option<(&'a str, String)>,
}

fn paragraphs(text: &str) -> Vec<Paragraph<'_>> {
    let mut out = Vec::new();
    let mut current = Paragraph::default();
    // Whether continuation lines belong to `License` (the last field seen).
    let mut in_license = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            if current.any {
                out.push(std::mem::take(&mut current));
            }
            in_license = false;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, body)) = current.license.as_mut().filter(|_| in_license) {
                let line = line.trim();
                body.push_str(if line == "." { "" } else { line });
                body.push('\n');
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.any = true;
            let (key, value) = (key.trim(), value.trim());
            in_license = key == "License";
            match key {
                "Format" => current.format = Some(value),
                "Files" => current.files = true,
                "License" => current.license = Some((value, String::new())),
                _ => {}
            }
        }
    }
    if current.any {
        out.push(current);
    }
    out
}

/// One `License` field's first line as an SPDX expression; `None` when it
/// does not parse.
fn expression(
    field: &str,
    texts: &BTreeMap<String, String>,
    references: &mut BTreeMap<String, (String, String)>,
) -> Option<String> {
    let spaced = field.replace(',', " , ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let groups: Vec<&[&str]> = tokens.split(|t| *t == ",").collect();
    let mut out = String::new();
    for (i, group) in groups.iter().enumerate() {
        let (joiner, rest) = match (i, group.first().map(|t| t.to_lowercase())) {
            (0, _) => ("", &group[..]),
            (_, Some(op)) if op == "and" || op == "or" => {
                (if op == "and" { " AND " } else { " OR " }, &group[1..])
            }
            _ => return None,
        };
        let inner = simple(rest, texts, references)?;
        if groups.len() > 1 && inner.contains(' ') {
            out.push_str(&format!("{joiner}({inner})"));
        } else {
            out.push_str(&format!("{joiner}{inner}"));
        }
    }
    Some(out)
}

/// Names joined by `and` and `or`, each name possibly followed by
/// `with ... exception`.
fn simple(
    tokens: &[&str],
    texts: &BTreeMap<String, String>,
    references: &mut BTreeMap<String, (String, String)>,
) -> Option<String> {
    let mut out = String::new();
    let mut term: Vec<&str> = Vec::new();
    let mut flush = |term: &mut Vec<&str>, out: &mut String| -> Option<()> {
        if term.is_empty() {
            return None;
        }
        let name = term.join(" ");
        out.push_str(&identifier(&name, texts, references));
        term.clear();
        Some(())
    };
    for token in tokens {
        let lower = token.to_lowercase();
        // `and` inside `with ... exception` is part of the exception's name.
        let in_exception = term.iter().any(|t| t.eq_ignore_ascii_case("with"))
            && !term.last().is_some_and(|t| t.eq_ignore_ascii_case("exception"));
        if (lower == "and" || lower == "or") && !in_exception {
            flush(&mut term, &mut out)?;
            out.push_str(if lower == "and" { " AND " } else { " OR " });
        } else {
            term.push(token);
        }
    }
    flush(&mut term, &mut out)?;
    Some(out)
}

/// The SPDX id of one Debian short name where it is exact, else a
/// `LicenseRef-` recorded in `references`.
fn identifier(
    name: &str,
    texts: &BTreeMap<String, String>,
    references: &mut BTreeMap<String, (String, String)>,
) -> String {
    if let Some(id) = exact(name) {
        return id;
    }
    let id: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '-' => c.to_string(),
            '+' => "-or-later".to_string(),
            _ => "-".to_string(),
        })
        .collect();
    let id = format!("LicenseRef-{id}");
    let text = texts.get(&name.to_lowercase()).cloned().unwrap_or_else(|| name.to_string());
    references.entry(id.clone()).or_insert_with(|| (name.to_string(), text));
    id
}

/// Debian short names (`copyright-format/1.0`, "License specification")
/// that name exactly one SPDX license.
fn exact(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    let fixed = match lower.as_str() {
        "apache-2.0" => "Apache-2.0",
        "artistic-2.0" => "Artistic-2.0",
        "bsd-2-clause" => "BSD-2-Clause",
        "bsd-3-clause" => "BSD-3-Clause",
        "bsd-4-clause" => "BSD-4-Clause",
        "cc0-1.0" => "CC0-1.0",
        "cddl-1.0" => "CDDL-1.0",
        "expat" => "MIT",
        "isc" => "ISC",
        "lppl-1.3c" => "LPPL-1.3c",
        "mpl-1.1" => "MPL-1.1",
        "mpl-2.0" => "MPL-2.0",
        "vim" => "Vim",
        "x11" => "X11",
        "zlib" => "Zlib",
        "zope-2.1" => "ZPL-2.1",
        _ => "",
    };
    if !fixed.is_empty() {
        return Some(fixed.to_string());
    }
    // The GNU licenses: `GPL-2`, `GPL-2+`, `LGPL-2.1+`, `GFDL-1.3`.
    let (family, rest) = ["agpl-", "lgpl-", "gpl-", "gfdl-"]
        .into_iter()
        .find_map(|f| lower.strip_prefix(f).map(|rest| (f, rest)))?;
    let (version, later) = match rest.strip_suffix('+') {
        Some(v) => (v, true),
        None => (rest, false),
    };
    let versions: &[&str] = match family {
        "gpl-" => &["1.0", "2.0", "3.0"],
        "lgpl-" => &["2.0", "2.1", "3.0"],
        "agpl-" => &["3.0"],
        _ => &["1.1", "1.2", "1.3"],
    };
    let full = if version.contains('.') { version.to_string() } else { format!("{version}.0") };
    if !versions.contains(&full.as_str()) {
        return None;
    }
    let family = family.trim_end_matches('-').to_uppercase();
    Some(format!("{family}-{full}-{}", if later { "or-later" } else { "only" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
        Upstream-Name: x\n\n\
        Files: *\nCopyright: someone\nLicense: GPL-2+\n\n\
        Files: lib/*\nCopyright: someone\nLicense: LGPL-2.1+ or BSD-3-clause, and public-domain\n\n\
        Files: debian/*\nLicense: GPL-3+ with Bison exception\n\n\
        License: public-domain\n Nobody owns this.\n .\n Really.\n";

    #[test]
    fn dep5_licenses_become_spdx_expressions() {
        let declared = parse(TEXT);
        assert_eq!(
            declared.expression.as_deref(),
            Some(
                "((LGPL-2.1-or-later OR BSD-3-Clause) AND LicenseRef-public-domain) AND GPL-2.0-or-later AND LicenseRef-GPL-3-or-later-with-Bison-exception"
            )
        );
        let (name, text) = &declared.references["LicenseRef-public-domain"];
        assert_eq!(
            (name.as_str(), text.as_str()),
            ("public-domain", "Nobody owns this.\n\nReally.\n")
        );
        assert!(declared.references.contains_key("LicenseRef-GPL-3-or-later-with-Bison-exception"));
    }

    #[test]
    fn files_of_one_size_are_each_translated_from_their_own_text() {
        let tmp = tempfile::tempdir().unwrap();
        let doc = tmp.path().join("usr/share/doc");
        let dep5 = |license: &str| {
            format!(
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: {license}\n"
            )
        };
        // `a` and `b` are the same text, `c` another of the same size.
        for (name, text) in [("a", dep5("GPL-2+")), ("b", dep5("GPL-2+")), ("c", dep5("GPL-3+"))] {
            std::fs::create_dir_all(doc.join(name)).unwrap();
            std::fs::write(doc.join(name).join("copyright"), text).unwrap();
        }
        let names: BTreeSet<&str> = ["a", "b", "c", "missing"].into();
        let sysroot = Sysroot::new(tmp.path());
        let (declared, fresh) = declared_all(&sysroot, &names, &Licenses::new());
        let expression = |name: &str| declared[name].expression.as_deref();
        assert_eq!(expression("a"), Some("GPL-2.0-or-later"));
        assert_eq!(expression("b"), Some("GPL-2.0-or-later"));
        assert_eq!(expression("c"), Some("GPL-3.0-or-later"));
        assert_eq!(declared["missing"], Declared::default());
        assert_eq!(declared.len(), 4);
        assert_eq!(fresh.len(), 3, "each file read is recorded with its state");

        // Known in its present state, a file is not read again; changed, it is.
        let (again, none) = declared_all(&sysroot, &names, &fresh);
        assert_eq!((again, none.len()), (declared.clone(), 0));
        std::fs::write(doc.join("c/copyright"), dep5("GPL-2")).unwrap();
        let (changed, reread) = declared_all(&sysroot, &names, &fresh);
        assert_eq!(changed["c"].expression.as_deref(), Some("GPL-2.0-only"));
        assert_eq!(reread.keys().collect::<Vec<_>>(), [&doc.join("c/copyright")]);
    }

    #[test]
    fn free_form_files_and_broken_expressions_assert_nothing() {
        assert_eq!(
            parse("This is the Debian prepackaged version of glibc.\n"),
            Declared::default()
        );
        let broken = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2 or\n";
        assert_eq!(parse(broken).expression, None);
        assert_eq!(exact("GPL-2"), Some("GPL-2.0-only".to_string()));
        assert_eq!(exact("GFDL-1.3+"), Some("GFDL-1.3-or-later".to_string()));
        assert_eq!(exact("GPL-4"), None);
        assert_eq!(exact("MIT"), None);
    }
}
