//! A `Packages` index: the binary packages of one suite, component and architecture, each with its relations, its `Filename`, `Size` and `SHA256`.
//!
//! Only the fields that selection and fetching use are kept. `Depends`,
//! `Pre-Depends`, `Conflicts` and `Breaks` stay as text until a package is
//! selected, since most of
//! an index's 60,000 packages are never looked at; `Provides` is parsed
//! up front, as every lookup of a virtual name needs it.

use anyhow::{Context, Result, bail};

use super::control;
use super::package::PackageId;
use super::relation::{self, Relation};
use crate::vocab::Sha256;

/// `Multi-Arch:` (the MultiArch spec, wiki.debian.org/Multiarch/Implementation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MultiArch {
    #[default]
    No,
    /// Satisfies dependencies of packages of other architectures.
    Foreign,
    /// Co-installable with itself for other architectures.
    Same,
    /// Satisfies `name:any` dependencies.
    Allowed,
}

/// `Priority:` (Debian Policy §2.5), most important first, so that the
/// derived order sorts providers as apt prefers them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Required,
    Important,
    Standard,
    #[default]
    Optional,
    Extra,
}

impl Priority {
    fn parse(text: Option<&str>) -> Priority {
        match text {
            Some("required") => Priority::Required,
            Some("important") => Priority::Important,
            Some("standard") => Priority::Standard,
            Some("extra") => Priority::Extra,
            _ => Priority::Optional,
        }
    }
}

/// One stanza of a `Packages` index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPackage {
    pub id: PackageId,
    pub multi_arch: MultiArch,
    /// `Essential: yes`. Not pulled in unless named or depended on.
    pub essential: bool,
    /// `Priority:`, which apt weighs when several packages provide a name.
    pub priority: Priority,
    /// `Pre-Depends:` as written.
    pub pre_depends: String,
    /// `Depends:` as written.
    pub depends: String,
    /// `Conflicts:` as written.
    pub conflicts: String,
    /// `Breaks:` as written.
    pub breaks: String,
    pub provides: Vec<Relation>,
    /// `Filename:`, relative to the mirror's base URL.
    pub filename: String,
    pub size: u64,
    /// `SHA256:`.
    pub sha256: Sha256,
    /// Which suite of the source this came from (an index into
    /// `ArchiveSource::suites`).
    pub suite: usize,
}

/// Parses an index's text; `suite` is recorded in each package, `url`
/// names the index in errors.
pub fn parse(text: &str, suite: usize, url: &str) -> Result<Vec<IndexPackage>> {
    let stanzas = control::parse(text).with_context(|| format!("failed to parse `{url}`"))?;
    stanzas
        .iter()
        .map(|stanza| package(stanza, suite).with_context(|| format!("in `{url}`")))
        .collect()
}

fn package(stanza: &control::Stanza, suite: usize) -> Result<IndexPackage> {
    let field =
        |name: &str| stanza.get(name).with_context(|| format!("a package without `{name}`"));
    let name = field("Package")?;
    let required = |field_name: &str| {
        stanza.get(field_name).with_context(|| format!("package `{name}` has no `{field_name}`"))
    };
    let Ok(sha256) = required("SHA256")?.to_ascii_lowercase().parse::<Sha256>() else {
        bail!("package `{name}`: `SHA256` is not 64 hex digits");
    };
    let size =
        required("Size")?.parse().with_context(|| format!("package `{name}`: bad `Size`"))?;
    let multi_arch = match stanza.get("Multi-Arch").unwrap_or("no") {
        "foreign" => MultiArch::Foreign,
        "same" => MultiArch::Same,
        "allowed" => MultiArch::Allowed,
        _ => MultiArch::No,
    };
    let provides = match stanza.get("Provides") {
        Some(text) => relation::parse_field(text)
            .with_context(|| format!("package `{name}`: bad `Provides`"))?
            .into_iter()
            .flatten()
            .collect(),
        None => Vec::new(),
    };
    Ok(IndexPackage {
        id: PackageId {
            name: name.to_string(),
            version: required("Version")?.to_string(),
            architecture: required("Architecture")?.to_string(),
        },
        multi_arch,
        essential: stanza.get("Essential") == Some("yes"),
        priority: Priority::parse(stanza.get("Priority")),
        pre_depends: stanza.get("Pre-Depends").unwrap_or_default().to_string(),
        depends: stanza.get("Depends").unwrap_or_default().to_string(),
        conflicts: stanza.get("Conflicts").unwrap_or_default().to_string(),
        breaks: stanza.get("Breaks").unwrap_or_default().to_string(),
        provides,
        filename: required("Filename")?.to_string(),
        size,
        sha256,
        suite,
    })
}
