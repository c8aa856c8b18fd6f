//! Where a package sysroot's packages come from: the mirror, suites, components, architecture and keyring, from the spec's `[sysroot.debian]` table with defaults taken from this machine (its apt sources, its own architecture, Debian's archive keyring).
//!
//! No mirror host name is written anywhere in this tool: without a
//! `mirror`, each suite's mirror is the `URIs` of the apt source entry that
//! serves it, read from `/etc/apt/sources.list`, `sources.list.d/*.list`
//! (one-line style) and `sources.list.d/*.sources` (deb822 style), as
//! sources.list(5) describes them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::control;

/// Debian's archive keyring as the `debian-archive-keyring` package
/// installs it on a Debian host.
pub const DEBIAN_ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The environment variable naming the mirror of every suite when the spec
/// names none, in place of this machine's apt sources: for a machine
/// without apt (a bare build tree, a CI image) or to try another mirror.
pub const MIRROR_VAR: &str = "ROOTFS_DEBIAN_MIRROR";

/// The mirror [`MIRROR_VAR`] names, if it is set and not empty.
pub fn mirror_from_env() -> Option<String> {
    std::env::var(MIRROR_VAR).ok().filter(|v| !v.is_empty())
}

pub use crate::spec::DebianRequest;

impl DebianRequest {
    /// The architecture of this request's tree when it is one of a
    /// multi-architecture spec's: the part of the lock it reads.
    pub fn part(&self) -> Option<&str> {
        self.architecture.as_deref().filter(|_| !self.architectures.is_empty())
    }
}

/// One suite of one mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteSource {
    /// The base URL, without a trailing `/`.
    pub mirror: String,
    pub suite: String,
    pub components: Vec<String>,
}

impl SuiteSource {
    /// The URL of a file below `dists/SUITE/`.
    pub fn dists_url(&self, path: &str) -> String {
        format!("{}/dists/{}/{path}", self.mirror, self.suite)
    }
}

/// A request with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveSource {
    /// The main suite first, then the extra suites in the order given.
    pub suites: Vec<SuiteSource>,
    pub architecture: String,
    pub keyring: PathBuf,
    pub snapshot: bool,
}

/// Fills in the defaults of `request`: mirrors from `apt` (see
/// [`AptSources::mirror_for`]), the architecture of this binary, Debian's
/// keyring. A relative `keyring` is taken relative to `base` (the spec's
/// folder).
pub fn resolve(request: &DebianRequest, apt: &AptSources, base: &Path) -> Result<ArchiveSource> {
    if request.suite.is_empty() {
        bail!("a Debian sysroot needs a `suite`");
    }
    let components = if request.components.is_empty() {
        vec!["main".to_string()]
    } else {
        request.components.clone()
    };
    let mut suites = Vec::new();
    for suite in std::iter::once(&request.suite).chain(&request.extra_suites) {
        let mirror = match &request.mirror {
            Some(mirror) => mirror.clone(),
            None => apt.mirror_for(suite).with_context(|| {
                let apt = if apt.entries.is_empty() {
                    "this machine has no apt sources to take a mirror from".to_string()
                } else {
                    format!("no apt source serves the suite `{suite}`")
                };
                format!(
                    "{apt} and no `mirror` is given: set `mirror` in `[sysroot.debian]` or `{MIRROR_VAR}`"
                )
            })?,
        };
        let mirror = mirror.trim_end_matches('/').to_string();
        if !(mirror.starts_with("http://") || mirror.starts_with("https://")) {
            bail!("the mirror `{mirror}` is not an http or https URL");
        }
        suites.push(SuiteSource { mirror, suite: suite.clone(), components: components.clone() });
    }
    let architecture = match &request.architecture {
        Some(arch) => arch.clone(),
        None => host_architecture()?.to_string(),
    };
    let keyring = match &request.keyring {
        Some(path) => base.join(path),
        None => PathBuf::from(DEBIAN_ARCHIVE_KEYRING),
    };
    Ok(ArchiveSource { suites, architecture, keyring, snapshot: request.snapshot })
}

/// The Debian name of the architecture this binary was built for.
pub fn host_architecture() -> Result<&'static str> {
    debian_architecture(std::env::consts::ARCH, cfg!(target_endian = "little")).with_context(|| {
        format!("no Debian architecture for `{}`: set `architecture`", std::env::consts::ARCH)
    })
}

/// Maps Rust's `target_arch` to Debian's name (dpkg's cputable and
/// ostable, for the glibc ports Debian ships).
fn debian_architecture(rust_arch: &str, little_endian: bool) -> Option<&'static str> {
    Some(match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "x86" => "i386",
        "powerpc64" if little_endian => "ppc64el",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "mips64" if little_endian => "mips64el",
        "loongarch64" => "loong64",
        _ => return None,
    })
}

/// The `deb` entries of a machine's apt sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AptSources {
    pub entries: Vec<AptEntry>,
}

/// One `deb` entry: a mirror and the suites it serves there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptEntry {
    pub uri: String,
    pub suites: Vec<String>,
}

/// Debian's release code names and aliases: an entry without an exact
/// match for a suite is only used when it serves one of these, so a
/// third-party repository (`nodistro`, `cloud-sdk-bookworm`) never becomes
/// the Debian mirror.
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "experimental",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
];

impl AptSources {
    /// Reads this machine's apt sources.
    pub fn from_host() -> Result<AptSources> {
        AptSources::read(Path::new("/etc/apt"))
    }

    /// Reads `sources.list` and `sources.list.d/*.list` / `*.sources` in
    /// `etc_apt`; missing files are no entries. Files are read in name
    /// order, as apt reads them.
    pub fn read(etc_apt: &Path) -> Result<AptSources> {
        let mut entries = Vec::new();
        let list = etc_apt.join("sources.list");
        if list.exists() {
            entries.extend(one_line_entries(&read(&list)?));
        }
        let dir = etc_apt.join("sources.list.d");
        let mut names = Vec::new();
        if dir.is_dir() {
            for entry in std::fs::read_dir(&dir)
                .with_context(|| format!("failed to list `{}`", dir.display()))?
            {
                let entry = entry.with_context(|| format!("failed to list `{}`", dir.display()))?;
                names.push(entry.path());
            }
        }
        names.sort();
        for path in names {
            match path.extension().and_then(|e| e.to_str()) {
                Some("list") => entries.extend(one_line_entries(&read(&path)?)),
                Some("sources") => entries.extend(
                    deb822_entries(&read(&path)?)
                        .with_context(|| format!("failed to parse `{}`", path.display()))?,
                ),
                _ => {}
            }
        }
        Ok(AptSources { entries })
    }

    /// The mirror serving `suite`: an entry listing it exactly; else one
    /// listing a Debian suite with the same suffix (`trixie-security` is
    /// served where `bookworm-security` is); else one listing a Debian
    /// suite without a suffix (`trixie` where `bookworm` is). The first
    /// such entry in apt's reading order wins.
    pub fn mirror_for(&self, suite: &str) -> Option<String> {
        let suffix = |s: &str| s.split_once('-').map(|(_, rest)| rest.to_string());
        let is_debian = |s: &str| DEBIAN_SUITES.contains(&s.split('-').next().unwrap_or(s));
        let exact = self.entries.iter().find(|e| e.suites.iter().any(|s| s == suite));
        let same_kind = || {
            self.entries
                .iter()
                .find(|e| e.suites.iter().any(|s| is_debian(s) && suffix(s) == suffix(suite)))
        };
        let same_kind = || if is_debian(suite) { same_kind() } else { None };
        exact.or_else(same_kind).map(|e| e.uri.trim_end_matches('/').to_string())
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("failed to read `{}`", path.display()))
}

/// `deb [options] URI SUITE COMPONENT...` lines.
fn one_line_entries(text: &str) -> Vec<AptEntry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut rest = match line.trim().strip_prefix("deb ") {
            Some(rest) => rest.trim(),
            None => continue,
        };
        if rest.starts_with('[') {
            let Some(end) = rest.find(']') else { continue };
            rest = rest[end + 1..].trim();
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            entries.push(AptEntry { uri: uri.to_string(), suites: vec![suite.to_string()] });
        }
    }
    entries
}

/// deb822 stanzas with `Types: deb`, unless `Enabled: no`.
fn deb822_entries(text: &str) -> Result<Vec<AptEntry>> {
    let mut entries = Vec::new();
    for stanza in control::parse(text)? {
        let types = stanza.get("Types").unwrap_or_default();
        if !types.split_whitespace().any(|t| t == "deb") || stanza.get("Enabled") == Some("no") {
            continue;
        }
        let suites: Vec<String> = stanza
            .get("Suites")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for uri in stanza.get("URIs").unwrap_or_default().split_whitespace() {
            entries.push(AptEntry { uri: uri.to_string(), suites: suites.clone() });
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_apt_sources_or_a_mirror_the_error_says_where_to_name_one() {
        let request = DebianRequest { suite: "bookworm".into(), ..Default::default() };
        let err = resolve(&request, &AptSources::default(), Path::new(".")).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "this machine has no apt sources to take a mirror from and no `mirror` is given: \
             set `mirror` in `[sysroot.debian]` or `ROOTFS_DEBIAN_MIRROR`"
        );
        let with = DebianRequest { mirror: Some("http://mirror.example/d/".into()), ..request };
        let source = resolve(&with, &AptSources::default(), Path::new(".")).unwrap();
        assert_eq!(source.suites[0].mirror, "http://mirror.example/d");
    }

    #[test]
    fn mirror_for_a_suite_from_both_styles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb [arch=amd64] http://third.example/apt cloud-sdk-bookworm main\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\n# note\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
             Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
             Types: deb\nURIs: http://other.example/x\nSuites: nodistro\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/off.list.disabled"),
            "deb http://no.example/ bookworm main\n",
        )
        .unwrap();
        let apt = AptSources::read(dir.path()).unwrap();
        assert_eq!(apt.mirror_for("bookworm").as_deref(), Some("http://mirror.example/debian"));
        assert_eq!(apt.mirror_for("trixie").as_deref(), Some("http://mirror.example/debian"));
        assert_eq!(
            apt.mirror_for("bookworm-security").as_deref(),
            Some("http://mirror.example/debian-security")
        );
        assert_eq!(
            apt.mirror_for("trixie-security").as_deref(),
            Some("http://mirror.example/debian-security")
        );
        assert_eq!(
            apt.mirror_for("trixie-updates").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(apt.mirror_for("jammy"), None);
    }

    #[test]
    fn architectures_map_to_debian_names() {
        assert_eq!(debian_architecture("x86_64", true), Some("amd64"));
        assert_eq!(debian_architecture("aarch64", true), Some("arm64"));
        assert_eq!(debian_architecture("powerpc64", true), Some("ppc64el"));
        assert_eq!(debian_architecture("powerpc64", false), None);
        assert!(host_architecture().is_ok());
    }
}
