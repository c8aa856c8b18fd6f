//! Package relations as `Depends`, `Pre-Depends` and `Provides` write them: `a (>= 1.0) | b:any, c`, parsed into groups of alternatives.
//!
//! The syntax is Debian Policy §7.1: a comma-separated list of groups, each
//! a `|`-separated list of alternatives, each a name with an optional
//! architecture qualifier (`:any`, `:native` or an architecture, §7.1 and
//! the MultiArch spec) and an optional version constraint in parentheses.
//! Architecture restrictions `[...]` and build profiles `<...>` appear only
//! in source packages' build relations; they are accepted and dropped.

use std::cmp::Ordering;
use std::fmt;

use anyhow::{Result, bail};

use super::version;

/// The operator of a version constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<<`
    Less,
    /// `<=` (and the obsolete `<`, which dpkg reads as `<=`)
    LessEq,
    /// `=`
    Eq,
    /// `>=` (and the obsolete `>`, which dpkg reads as `>=`)
    GreaterEq,
    /// `>>`
    Greater,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "<<" => Op::Less,
            "<=" | "<" => Op::LessEq,
            "=" => Op::Eq,
            ">=" | ">" => Op::GreaterEq,
            ">>" => Op::Greater,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Less => "<<",
            Op::LessEq => "<=",
            Op::Eq => "=",
            Op::GreaterEq => ">=",
            Op::Greater => ">>",
        }
    }
}

/// `(OP VERSION)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub op: Op,
    pub version: String,
}

impl Constraint {
    /// Whether `candidate` satisfies this constraint.
    pub fn allows(&self, candidate: &str) -> bool {
        let order = version::compare(candidate, &self.version);
        match self.op {
            Op::Less => order == Ordering::Less,
            Op::LessEq => order != Ordering::Greater,
            Op::Eq => order == Ordering::Equal,
            Op::GreaterEq => order != Ordering::Less,
            Op::Greater => order == Ordering::Greater,
        }
    }
}

/// The architecture qualifier after a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchQualifier {
    /// `name:any`: any architecture, if the package is `Multi-Arch: allowed`.
    Any,
    /// `name:native`, or an explicit architecture.
    Named(String),
}

/// One alternative: `name[:arch] [(op version)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    pub arch: Option<ArchQualifier>,
    pub constraint: Option<Constraint>,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.arch {
            Some(ArchQualifier::Any) => f.write_str(":any")?,
            Some(ArchQualifier::Named(arch)) => write!(f, ":{arch}")?,
            None => {}
        }
        if let Some(c) = &self.constraint {
            write!(f, " ({} {})", c.op.as_str(), c.version)?;
        }
        Ok(())
    }
}

/// A group of alternatives, `a | b`: satisfied by any one of them.
pub type Alternatives = Vec<Relation>;

/// Writes a group as the index does, `a (>= 1) | b`.
pub fn display_group(group: &[Relation]) -> String {
    group.iter().map(Relation::to_string).collect::<Vec<_>>().join(" | ")
}

/// Parses a whole field value into its groups.
pub fn parse_field(text: &str) -> Result<Vec<Alternatives>> {
    let mut groups = Vec::new();
    for group in text.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let alternatives =
            group.split('|').map(|alt| parse_one(alt.trim())).collect::<Result<Vec<_>>>()?;
        groups.push(alternatives);
    }
    Ok(groups)
}

/// Parses one alternative.
pub fn parse_one(text: &str) -> Result<Relation> {
    // Drop `[arch restrictions]` and `<build profiles>`: source-only syntax.
    let text = strip_restrictions(text);
    let (head, constraint) = match text.split_once('(') {
        Some((head, rest)) => {
            let Some(inner) = rest.trim_end().strip_suffix(')') else {
                bail!("`{text}`: a version constraint without its closing `)`");
            };
            let inner = inner.trim();
            let split = inner.find(|c: char| !matches!(c, '<' | '>' | '=')).unwrap_or(inner.len());
            let (op, version) = inner.split_at(split);
            let Some(op) = Op::parse(op.trim()) else {
                bail!("`{text}`: unknown version operator `{}`", op.trim());
            };
            let version = version.trim();
            if version.is_empty() {
                bail!("`{text}`: a version constraint without a version");
            }
            (head.trim(), Some(Constraint { op, version: version.to_string() }))
        }
        None => (text.trim(), None),
    };
    let (name, arch) = match head.split_once(':') {
        Some((name, "any")) => (name, Some(ArchQualifier::Any)),
        Some((name, arch)) => (name, Some(ArchQualifier::Named(arch.to_string()))),
        None => (head, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        bail!("`{text}` is not a package relation");
    }
    Ok(Relation { name: name.to_string(), arch, constraint })
}

/// `text` up to its first `[` or `<` outside parentheses.
fn strip_restrictions(text: &str) -> &str {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '[' | '<' if depth == 0 => return text[..at].trim(),
            _ => {}
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_alternatives_constraints_and_qualifiers() {
        let groups = parse_field(
            "libc6 (>= 2.34), awk | mawk:any, python3:native (<< 3.12~), x [amd64] <!nocheck>",
        )
        .unwrap();
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0][0].to_string(), "libc6 (>= 2.34)");
        assert_eq!(display_group(&groups[1]), "awk | mawk:any");
        assert_eq!(groups[2][0].arch, Some(ArchQualifier::Named("native".into())));
        assert_eq!(groups[2][0].constraint.as_ref().unwrap().op, Op::Less);
        assert_eq!(groups[3][0].name, "x");
        assert!(parse_field("a (>= )").is_err());
        assert!(parse_field("a (~= 1)").is_err());
    }

    #[test]
    fn constraints_compare_as_dpkg() {
        let c = |op, v: &str| Constraint { op, version: v.into() };
        assert!(c(Op::GreaterEq, "2.34").allows("2.36-9"));
        assert!(!c(Op::Less, "3.12~").allows("3.12"));
        assert!(c(Op::Less, "3.12~").allows("3.11.2-1"));
        assert!(c(Op::Eq, "1:1.0").allows("1:1.0-0"));
        assert!(!c(Op::Greater, "1.0").allows("1.0"));
        assert!(c(Op::LessEq, "1.0").allows("1.0"));
    }
}
