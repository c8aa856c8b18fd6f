//! Package selection: the named packages and the closure of their `Pre-Depends` and `Depends`, chosen as apt chooses with equal pins, sorted by name.
//!
//! The rules, after Debian Policy §7 and apt's resolver in its simple case:
//! - one version per package name: the highest (dpkg's ordering) across
//!   all suites, the first suite winning a tie, as apt does when every
//!   suite has the same pin priority;
//! - a group `a | b` already satisfied by a selected package adds nothing;
//!   otherwise its first alternative that some package satisfies is taken;
//! - a name is satisfied by the package of that name, or by a package that
//!   `Provides` it (among several providers, as apt's `CompareProviders`:
//!   essential first, then by `Priority`, then by name); a versioned relation only by a versioned provide
//!   (`Provides: foo (= 1.0)`, Policy §7.5), never by an unversioned one;
//! - architecture qualifiers: only one architecture is selected for (plus
//!   `all`), so `:any`, `:native` and the selected architecture are all
//!   satisfied by a native package; a foreign architecture is not served,
//!   and `Multi-Arch` matters only across architectures, so it does not
//!   change the choice here;
//! - `Essential: yes` packages are not added on their own, unlike
//!   debootstrap's minbase: only what is named and what it depends on is
//!   taken;
//! - a cycle ends where it meets a selected package.

use std::collections::{BTreeMap, HashMap, VecDeque};

use anyhow::{Context, Result, bail};

use super::index::IndexPackage;
use super::relation::{self, ArchQualifier, Relation};
use super::version;

/// The packages of all indexes of an archive source, by name and by the
/// virtual names they provide.
pub struct Universe<'a> {
    architecture: String,
    /// Highest version first; for equal versions, the earlier suite first.
    by_name: HashMap<&'a str, Vec<&'a IndexPackage>>,
    /// Best provider first: see `Universe::new`.
    providers: HashMap<&'a str, Vec<(&'a IndexPackage, &'a Relation)>>,
}

impl<'a> Universe<'a> {
    /// Indexes `packages` of `architecture` and `all`.
    pub fn new(
        packages: impl IntoIterator<Item = &'a IndexPackage>,
        architecture: &str,
    ) -> Universe<'a> {
        let mut by_name: HashMap<&str, Vec<&IndexPackage>> = HashMap::new();
        let mut providers: HashMap<&str, Vec<(&IndexPackage, &Relation)>> = HashMap::new();
        for package in packages {
            if package.id.architecture != architecture && package.id.architecture != "all" {
                continue;
            }
            by_name.entry(&package.id.name).or_default().push(package);
            for provide in &package.provides {
                providers.entry(&provide.name).or_default().push((package, provide));
            }
        }
        let newest_first = |a: &&IndexPackage, b: &&IndexPackage| {
            version::compare(&b.id.version, &a.id.version).then(a.suite.cmp(&b.suite))
        };
        for list in by_name.values_mut() {
            list.sort_by(newest_first);
        }
        for list in providers.values_mut() {
            // apt's `CompareProviders` (apt-pkg/depcache.cc): essential
            // packages first, then the higher `Priority`; the name breaks
            // the remaining ties so that the choice is stable.
            list.sort_by(|(a, _), (b, _)| {
                (!a.essential, a.priority, &a.id.name)
                    .cmp(&(!b.essential, b.priority, &b.id.name))
                    .then_with(|| newest_first(a, b))
            });
        }
        Universe { architecture: architecture.to_string(), by_name, providers }
    }

    /// Whether the arch qualifier of `relation` can be met by a package of
    /// the selected architecture.
    fn arch_ok(&self, relation: &Relation) -> bool {
        match &relation.arch {
            None | Some(ArchQualifier::Any) => true,
            Some(ArchQualifier::Named(arch)) => arch == "native" || *arch == self.architecture,
        }
    }

    /// The packages that could satisfy `relation`, best first: the real
    /// package's versions, then providers.
    fn candidates(&self, relation: &Relation) -> Vec<&'a IndexPackage> {
        if !self.arch_ok(relation) {
            return Vec::new();
        }
        let real = self
            .by_name
            .get(relation.name.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|p| relation.constraint.as_ref().is_none_or(|c| c.allows(&p.id.version)));
        let provided = self
            .providers
            .get(relation.name.as_str())
            .into_iter()
            .flatten()
            .filter(|(_, provide)| provide_satisfies(provide, relation))
            .map(|(p, _)| *p);
        real.chain(provided).collect()
    }
}

/// Whether a `Provides` entry satisfies `relation`: an unversioned provide
/// satisfies only an unversioned relation.
fn provide_satisfies(provide: &Relation, relation: &Relation) -> bool {
    if provide.name != relation.name {
        return false;
    }
    match (&relation.constraint, &provide.constraint) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(wanted), Some(given)) => {
            given.op == relation::Op::Eq && wanted.allows(&given.version)
        }
    }
}

/// Selects `named` (each a package name, optionally with a constraint such
/// as `bash (>= 5)`) and their dependency closure; sorted by name.
pub fn select<'a>(universe: &Universe<'a>, named: &[String]) -> Result<Vec<&'a IndexPackage>> {
    let mut selected: BTreeMap<&'a str, &'a IndexPackage> = BTreeMap::new();
    // Who pulled each package in, for errors that show the chain.
    let mut pulled_by: HashMap<&'a str, &'a str> = HashMap::new();
    let mut queue: VecDeque<&'a IndexPackage> = VecDeque::new();
    for name in named {
        let wanted = relation::parse_one(name).with_context(|| format!("the package `{name}`"))?;
        let choice = match universe.candidates(&wanted).first() {
            Some(package) => *package,
            None => bail!("no package `{name}` for {} in the indexes", universe.architecture),
        };
        add(choice, &wanted, &mut selected, &mut queue)?;
    }
    while let Some(package) = queue.pop_front() {
        for (field, text) in [("Pre-Depends", &package.pre_depends), ("Depends", &package.depends)]
        {
            let groups = relation::parse_field(text).with_context(|| {
                format!("package `{}` {}: bad `{field}`", package.id.name, package.id.version)
            })?;
            for group in groups {
                // Preferring what is already selected: a group any of
                // whose alternatives a selected package meets adds nothing.
                let satisfied = group.iter().any(|r| {
                    universe
                        .candidates(r)
                        .iter()
                        .any(|c| selected.get(c.id.name.as_str()).is_some_and(|s| s.id == c.id))
                });
                if satisfied {
                    continue;
                }
                let choice = group.iter().find_map(|r| {
                    universe
                        .candidates(r)
                        .into_iter()
                        .find(|c| !selected.contains_key(c.id.name.as_str()))
                        .map(|c| (c, r))
                });
                let Some((choice, relation)) = choice else {
                    bail!(
                        "{}: `{}` {} has `{field}: {}`, which no package satisfies{}",
                        chain(&pulled_by, &package.id.name),
                        package.id.name,
                        package.id.version,
                        relation::display_group(&group),
                        why_not(universe, &group, &selected),
                    );
                };
                pulled_by.insert(&choice.id.name, &package.id.name);
                add(choice, relation, &mut selected, &mut queue)?;
            }
        }
    }
    Ok(selected.into_values().collect())
}

fn add<'a>(
    package: &'a IndexPackage,
    relation: &Relation,
    selected: &mut BTreeMap<&'a str, &'a IndexPackage>,
    queue: &mut VecDeque<&'a IndexPackage>,
) -> Result<()> {
    match selected.get(package.id.name.as_str()) {
        Some(existing) if existing.id.version != package.id.version => bail!(
            "`{relation}` needs `{}` {}, but {} is already selected",
            package.id.name,
            package.id.version,
            existing.id.version
        ),
        Some(_) => Ok(()),
        None => {
            selected.insert(&package.id.name, package);
            queue.push_back(package);
            Ok(())
        }
    }
}

/// `a <- b <- c`: how a package came to be selected.
fn chain(pulled_by: &HashMap<&str, &str>, name: &str) -> String {
    let mut names = vec![name.to_string()];
    let mut at = name;
    while let Some(parent) = pulled_by.get(at) {
        if names.iter().any(|n| n == parent) || names.len() > 32 {
            break;
        }
        names.push(parent.to_string());
        at = parent;
    }
    format!("required by {}", names.join(" <- "))
}

/// Why each alternative failed: the versions there are, or the version
/// already selected.
fn why_not(
    universe: &Universe<'_>,
    group: &[Relation],
    selected: &BTreeMap<&str, &IndexPackage>,
) -> String {
    let mut reasons = Vec::new();
    for relation in group {
        if let Some(chosen) = selected.get(relation.name.as_str()) {
            reasons.push(format!("`{}` {} is selected", relation.name, chosen.id.version));
        } else if let Some(versions) = universe.by_name.get(relation.name.as_str()) {
            let list: Vec<&str> = versions.iter().map(|p| p.id.version.as_str()).collect();
            reasons.push(format!("`{}` has only {}", relation.name, list.join(", ")));
        } else {
            reasons.push(format!("no package `{}`", relation.name));
        }
    }
    format!(" ({})", reasons.join("; "))
}
