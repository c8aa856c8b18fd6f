//! `[sysroot.debian]`: a sysroot made from Debian packages (suite, architecture, packages, mirror, components, keyring, extra suites, snapshot), each value checked and located in its file.
//!
//! Every key is documented in `rootfs-spec/README.md`. Merging follows the
//! rest of the spec: a later file's scalar keys override an earlier one's,
//! and its lists (`packages`, `components`, `extra_suites`) are appended
//! with repeats dropped, so a preset can add packages to a base spec's
//! suite. The top-level `debian_packages` of any file (a preset's) is
//! merged the same way into its own list, which a package sysroot adds to
//! `packages` and any other sysroot ignores. A relative `keyring` is taken relative to the file that names it.

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{Here, Item, Location, SpecError};

/// What a spec (or the command line) asks for; every `None` or empty
/// field takes its default in `resolve` of `build/debian/source.rs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebianRequest {
    /// The main suite, e.g. `bookworm`.
    pub suite: String,
    /// A Debian architecture name; default: this machine's.
    pub architecture: Option<String>,
    /// A multi-architecture spec's architectures (`architectures = [...]`),
    /// in the spec's order; empty for a single-architecture spec. The
    /// request of one of its trees (made by `multiarch.rs`) keeps the
    /// list and sets `architecture` to its own.
    pub architectures: Vec<String>,
    /// The packages to install, with their dependency closure.
    pub packages: Vec<String>,
    /// The mirror's base URL (the folder holding `dists/` and `pool/`);
    /// default: from the apt sources.
    pub mirror: Option<String>,
    /// Default: `main`.
    pub components: Vec<String>,
    /// A keyring file, armored or binary; default: Debian's archive keyring.
    pub keyring: Option<PathBuf>,
    /// Further suites searched along with the main one, e.g.
    /// `bookworm-updates`, `bookworm-security`.
    pub extra_suites: Vec<String>,
    /// Whether the mirror is a snapshot, whose `Valid-Until` has passed by
    /// design and is not enforced.
    pub snapshot: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSysroot {
    debian: Option<Spanned<RawDebian>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDebian {
    suite: Option<Spanned<String>>,
    architecture: Option<Spanned<String>>,
    architectures: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    mirror: Option<Spanned<String>>,
    #[serde(default)]
    components: Vec<Spanned<String>>,
    keyring: Option<Spanned<String>>,
    #[serde(default)]
    extra_suites: Vec<Spanned<String>>,
    snapshot: Option<bool>,
}

/// Merges one file's `[sysroot]` table into `debian`.
pub(super) fn merge(
    debian: &mut Option<Item<DebianRequest>>,
    raw: RawSysroot,
    here: &Here,
) -> Result<(), SpecError> {
    let Some(table) = raw.debian else { return Ok(()) };
    let at = |span: Range<usize>| here.at(span);
    let table_at = at(table.span());
    let raw = table.into_inner();
    let item = debian.get_or_insert_with(|| Item { value: DebianRequest::default(), at: table_at });
    let request = &mut item.value;
    if let Some(suite) = raw.suite {
        request.suite = word(suite, &at, "suite", "a suite such as \"bookworm\"")?;
    }
    merge_architectures(request, raw.architecture, raw.architectures, &at)?;
    for package in raw.packages {
        push_new(&mut request.packages, package_name(package, &at)?);
    }
    if let Some(mirror) = raw.mirror {
        let location = at(mirror.span());
        let url = mirror.into_inner();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.contains(char::is_whitespace)
        {
            return Err(SpecError::at(&location, format!("the mirror `{url}` is not an http or https URL"))
                .help("give the folder holding `dists/` and `pool/`, or leave `mirror` out to use the one apt is configured with"));
        }
        request.mirror = Some(url);
    }
    for component in raw.components {
        let value = word(component, &at, "component", "a component such as \"main\"")?;
        push_new(&mut request.components, value);
    }
    for suite in raw.extra_suites {
        let value = word(suite, &at, "extra suite", "a suite such as \"bookworm-updates\"")?;
        push_new(&mut request.extra_suites, value);
    }
    if let Some(keyring) = raw.keyring {
        let location = at(keyring.span());
        let path = here.dir.join(keyring.get_ref());
        if !path.is_file() {
            return Err(SpecError::at(&location, format!("no keyring file `{}`", path.display()))
                .help("give an armored (.asc) or binary (.gpg) OpenPGP keyring, relative to this spec"));
        }
        request.keyring = Some(path);
    }
    if let Some(snapshot) = raw.snapshot {
        request.snapshot = snapshot;
    }
    Ok(())
}

/// `architecture` or `architectures`, never both in one file; a later
/// file's either one replaces what an earlier file said, as scalars do.
fn merge_architectures(
    request: &mut DebianRequest,
    one: Option<Spanned<String>>,
    many: Option<Spanned<Vec<Spanned<String>>>>,
    at: &impl Fn(Range<usize>) -> Location,
) -> Result<(), SpecError> {
    const EXAMPLE: &str = "a Debian architecture such as \"amd64\"";
    if let (Some(_), Some(list)) = (&one, &many) {
        return Err(SpecError::at(
            &at(list.span()),
            "`architecture` and `architectures` cannot both be set",
        )
        .help("keep `architectures = [...]` for one tree per architecture, or `architecture` for one tree"));
    }
    if let Some(arch) = one {
        request.architecture = Some(word(arch, at, "architecture", EXAMPLE)?);
        request.architectures.clear();
    }
    if let Some(list) = many {
        let location = at(list.span());
        let mut names: Vec<String> = Vec::new();
        for arch in list.into_inner() {
            let arch_at = at(arch.span());
            let name = known_arch(word(arch, at, "architecture", EXAMPLE)?, &arch_at)?;
            if names.contains(&name) {
                return Err(SpecError::at(&arch_at, format!("`{name}` is listed twice"))
                    .help("list each architecture once"));
            }
            names.push(name);
        }
        if names.is_empty() {
            return Err(SpecError::at(&location, "`architectures` is empty")
                .help("list at least one Debian architecture, such as [\"amd64\", \"arm64\"], or leave the key out for this machine's"));
        }
        request.architectures = names;
        request.architecture = None;
    }
    Ok(())
}

/// A name of `crate::resolve::arch::ALL`, the architectures a tree can be built
/// for: a list is checked here, where its entry can be pointed at.
fn known_arch(name: String, at: &Location) -> Result<String, SpecError> {
    if crate::resolve::arch::Arch::by_debian_name(&name).is_some() {
        return Ok(name);
    }
    let known: Vec<&str> = crate::resolve::arch::ALL.iter().map(|a| a.debian).collect();
    Err(SpecError::at(at, format!("`{name}` is not an architecture this tool builds"))
        .help(format!("use one of {}", known.join(", "))))
}

/// Merges one file's top-level `debian_packages`: the packages that
/// provide what the file copies, used only with a package sysroot.
pub(super) fn merge_provided(
    provided: &mut Vec<String>,
    raw: Vec<Spanned<String>>,
    here: &Here,
) -> Result<(), SpecError> {
    for package in raw {
        push_new(provided, package_name(package, &|span| here.at(span))?);
    }
    Ok(())
}

fn package_name(
    package: Spanned<String>,
    at: &impl Fn(Range<usize>) -> Location,
) -> Result<String, SpecError> {
    let location = at(package.span());
    let name = package.into_inner();
    if !is_package_name(&name) {
        return Err(SpecError::at(&location, format!("`{name}` is not a Debian package name"))
            .help("package names are lowercase letters, digits and `+-.`, at least two long (Debian Policy 5.6.1)"));
    }
    Ok(name)
}

/// After every file is merged: a `[sysroot.debian]` needs a suite.
pub(super) fn check(debian: &Option<Item<DebianRequest>>) -> Result<(), SpecError> {
    match debian {
        Some(item) if item.value.suite.is_empty() => {
            Err(SpecError::at(&item.at, "`[sysroot.debian]` needs a `suite`")
                .help("add `suite = \"bookworm\"` (or the suite to take packages from)"))
        }
        _ => Ok(()),
    }
}

/// A suite, architecture or component: letters, digits and `-._`, so that
/// it can only ever name one folder of a mirror's `dists/`.
fn word(
    value: Spanned<String>,
    at: &impl Fn(Range<usize>) -> Location,
    what: &str,
    example: &str,
) -> Result<String, SpecError> {
    let location = at(value.span());
    let text = value.into_inner();
    let ok = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !text.starts_with('.');
    if !ok {
        return Err(SpecError::at(&location, format!("invalid {what} `{text}`"))
            .help(format!("use {example}")));
    }
    Ok(text)
}

/// Debian Policy §5.6.1: at least two characters, lowercase letters,
/// digits, `+`, `-` and `.`, starting with a letter or digit.
fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}

fn push_new(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}
