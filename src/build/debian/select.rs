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
//! - `Conflicts` and `Breaks` (Policy §7.4): a candidate that conflicts
//!   with, or breaks, a selected package (or is conflicted with or broken
//!   by one) is passed over for the next alternative or provider, as apt
//!   passes over what it cannot install; a closure that still holds two
//!   such packages (one had no other choice) is refused, naming both. A package's relation on a name
//!   it provides itself is ignored (Policy §7.6.2), and versioned relations
//!   are met by versioned provides only, as for `Depends`;
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
    let mut state = State::default();
    for name in named {
        let wanted = relation::parse_one(name).with_context(|| format!("the package `{name}`"))?;
        let choice = match universe.candidates(&wanted).first() {
            Some(package) => *package,
            None => bail!("no package `{name}` for {} in the indexes", universe.architecture),
        };
        add(choice, &wanted, &mut state)?;
    }
    while let Some(package) = state.queue.pop_front() {
        for (field, text) in [("Pre-Depends", &package.pre_depends), ("Depends", &package.depends)]
        {
            let groups = relation::parse_field(text).with_context(|| {
                format!("package `{}` {}: bad `{field}`", package.id.name, package.id.version)
            })?;
            for group in groups {
                if state.meets(universe, &group) {
                    continue;
                }
                let Some((choice, relation)) = choose(universe, &group, &mut state)? else {
                    bail!(
                        "{}: `{}` {} has `{field}: {}`, which no package satisfies{}",
                        chain(&state.pulled_by, &package.id.name),
                        package.id.name,
                        package.id.version,
                        relation::display_group(&group),
                        why_not(universe, &group, &state.selected),
                    );
                };
                state.pulled_by.insert(&choice.id.name, &package.id.name);
                add(choice, relation, &mut state)?;
            }
        }
    }
    check_conflicts(universe, &mut state)?;
    Ok(state.selected.into_values().collect())
}

/// The selection as it grows.
#[derive(Default)]
struct State<'a> {
    selected: BTreeMap<&'a str, &'a IndexPackage>,
    /// Who pulled each package in, for errors that show the chain.
    pulled_by: HashMap<&'a str, &'a str>,
    queue: VecDeque<&'a IndexPackage>,
    /// Each package's `Conflicts` and `Breaks`, parsed once.
    negative: HashMap<&'a str, Vec<(&'static str, Relation)>>,
}

impl<'a> State<'a> {
    /// Whether a selected package meets one of the alternatives of `group`:
    /// then it adds nothing (apt prefers what it has).
    fn meets(&self, universe: &Universe<'a>, group: &[Relation]) -> bool {
        group.iter().any(|r| {
            universe
                .candidates(r)
                .iter()
                .any(|c| self.selected.get(c.id.name.as_str()).is_some_and(|s| s.id == c.id))
        })
    }

    /// `package`'s `Conflicts` and `Breaks`, each with its field's name.
    fn negative(&mut self, package: &'a IndexPackage) -> Result<&[(&'static str, Relation)]> {
        if !self.negative.contains_key(package.id.name.as_str()) {
            let mut relations = Vec::new();
            for (field, text) in [("Conflicts", &package.conflicts), ("Breaks", &package.breaks)] {
                let groups = relation::parse_field(text).with_context(|| {
                    format!("package `{}` {}: bad `{field}`", package.id.name, package.id.version)
                })?;
                relations.extend(groups.into_iter().flatten().map(|r| (field, r)));
            }
            self.negative.insert(&package.id.name, relations);
        }
        Ok(&self.negative[package.id.name.as_str()])
    }

    /// The first selected package that `candidate` conflicts with or breaks,
    /// or that conflicts with or breaks it, with the relation and the
    /// package that has it.
    fn clash(
        &mut self,
        universe: &Universe<'a>,
        candidate: &'a IndexPackage,
    ) -> Result<Option<Clash<'a>>> {
        let others: Vec<&'a IndexPackage> = self.selected.values().copied().collect();
        for other in others {
            if other.id.name == candidate.id.name {
                continue;
            }
            for (has, meets) in [(candidate, other), (other, candidate)] {
                let hit = self.negative(has)?.iter().find(|(_, r)| hits(universe, r, meets));
                if let Some((field, relation)) = hit {
                    return Ok(Some(Clash { has, field, relation: relation.clone(), meets }));
                }
            }
        }
        Ok(None)
    }
}

/// A `Conflicts` or `Breaks` relation of `has` that `meets` satisfies.
struct Clash<'a> {
    has: &'a IndexPackage,
    field: &'static str,
    relation: Relation,
    meets: &'a IndexPackage,
}

/// Whether `package` is one that `relation` (of another package's
/// `Conflicts` or `Breaks`) names: by its name and version, or by what it
/// provides.
fn hits(universe: &Universe<'_>, relation: &Relation, package: &IndexPackage) -> bool {
    if !universe.arch_ok(relation) {
        return false;
    }
    let by_name = relation.name == package.id.name
        && relation.constraint.as_ref().is_none_or(|c| c.allows(&package.id.version));
    by_name || package.provides.iter().any(|provide| provide_satisfies(provide, relation))
}

/// The first alternative of `group` that a package not yet selected
/// satisfies without clashing with the selection, as apt passes over a
/// candidate it cannot install; else the first that clashes, which
/// [`check_conflicts`] then reports with the package it clashes with.
fn choose<'a, 'g>(
    universe: &Universe<'a>,
    group: &'g [Relation],
    state: &mut State<'a>,
) -> Result<Option<(&'a IndexPackage, &'g Relation)>> {
    let mut clashing = None;
    for relation in group {
        for candidate in universe.candidates(relation) {
            if state.selected.contains_key(candidate.id.name.as_str()) {
                continue;
            }
            if state.clash(universe, candidate)?.is_none() {
                return Ok(Some((candidate, relation)));
            }
            clashing = clashing.or(Some((candidate, relation)));
        }
    }
    Ok(clashing)
}

/// Refuses a closure that holds a package and another that it conflicts
/// with or breaks (one of them with no alternative), naming both and how
/// each came in.
fn check_conflicts<'a>(universe: &Universe<'a>, state: &mut State<'a>) -> Result<()> {
    let all: Vec<&'a IndexPackage> = state.selected.values().copied().collect();
    for package in all {
        // Each package against all the others, in name order, so that the
        // error is the same on every run.
        state.selected.remove(package.id.name.as_str());
        let clash = state.clash(universe, package)?;
        state.selected.insert(&package.id.name, package);
        if let Some(Clash { has, field, relation, meets }) = clash {
            bail!(
                "`{}` {} has `{field}: {relation}`, which `{}` {} meets, and the closure needs both ({}; {})",
                has.id.name,
                has.id.version,
                meets.id.name,
                meets.id.version,
                chain(&state.pulled_by, &has.id.name),
                chain(&state.pulled_by, &meets.id.name),
            );
        }
    }
    Ok(())
}

fn add<'a>(package: &'a IndexPackage, relation: &Relation, state: &mut State<'a>) -> Result<()> {
    match state.selected.get(package.id.name.as_str()) {
        Some(existing) if existing.id.version != package.id.version => bail!(
            "`{relation}` needs `{}` {}, but {} is already selected",
            package.id.name,
            package.id.version,
            existing.id.version
        ),
        Some(_) => Ok(()),
        None => {
            state.selected.insert(&package.id.name, package);
            state.queue.push_back(package);
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
