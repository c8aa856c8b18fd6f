//! The `[shell]` table (defaults for `shell` and `run`: binds, working directory, environment, network, user, a writable layer) and the `binds` and `network` keys it shares with `[[smoke.checks]]`; also the bind, user and variable syntax the command line uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::convert::{PathRule, root_path, root_path_rule};
use super::{Here, Item, Location, Spec, SpecError};
use crate::vocab::Network;

/// A host file or directory to mount inside, as asked (not yet checked
/// against the host or the tree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// The host path: absolute, or relative to the spec's folder (in a
    /// spec) or the current directory (on the command line).
    pub source: PathBuf,
    /// The path inside, normalised; `None` means the source's own
    /// absolute path.
    pub dest: Option<PathBuf>,
    pub read_only: bool,
}

impl Bind {
    /// `HOST[:PATH][:ro]` (`:rw` is the default and may be written). A PATH
    /// starts with `/`, so `HOST:ro` is a read-only bind at HOST's path.
    pub fn parse(text: &str) -> Result<Bind, PathRule> {
        let (rest, read_only) = match text.rsplit_once(':') {
            Some((rest, "ro")) => (rest, true),
            Some((rest, "rw")) => (rest, false),
            _ => (text, false),
        };
        let (source, dest) = match rest.rsplit_once(':') {
            Some((source, dest)) if dest.starts_with('/') || dest.is_empty() => {
                (source, Some(root_path_rule(dest, "a bind path")?))
            }
            // `/etc:../x` or `.:src` is a path inside that is not absolute,
            // not a host path with a colon in it (the string form cannot
            // spell one): saying so beats looking for a host path named
            // `/etc:../x`.
            Some((source, dest)) if !source.is_empty() => {
                return Err(PathRule {
                    message: format!("the path inside must be absolute, got `{dest}` in `{text}`"),
                    help: format!(
                        "write the path inside from the tree's root, such as `{source}:/{}`",
                        dest.trim_start_matches("./").trim_start_matches(['.', '/'])
                    ),
                });
            }
            _ => (rest, None),
        };
        if source.is_empty() {
            return Err(PathRule {
                message: format!("a bind needs a host path, got `{text}`"),
                help: "write HOST[:PATH][:ro], such as `.:/src` or `/etc/resolv.conf:ro`".into(),
            });
        }
        Ok(Bind { source: PathBuf::from(source), dest, read_only })
    }
}

/// Who runs the command inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    /// A name of `[[users]]`, or `root`.
    Name(String),
    /// A uid, and a gid when given.
    Ids { uid: u32, gid: Option<u32> },
}

impl UserSpec {
    /// `NAME`, `UID` or `UID:GID`.
    pub fn parse(text: &str) -> Option<UserSpec> {
        let number = |t: &str| t.parse::<u32>().ok();
        if text.starts_with(|c: char| c.is_ascii_digit()) {
            return match text.split_once(':') {
                Some((uid, gid)) => {
                    Some(UserSpec::Ids { uid: number(uid)?, gid: Some(number(gid)?) })
                }
                None => Some(UserSpec::Ids { uid: number(text)?, gid: None }),
            };
        }
        super::convert::valid_account_name(text).then(|| UserSpec::Name(text.to_string()))
    }
}

/// Whether `name` can be the name of an environment variable: not empty,
/// without `=` or NUL.
pub fn valid_variable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// The `[shell]` table, merged over includes: what `shell` and `run` use
/// when the command line does not say otherwise.
#[derive(Clone, Debug, Default)]
pub struct Shell {
    /// In the order given; a later bind at the same path replaces an
    /// earlier one.
    pub binds: Vec<Item<Bind>>,
    pub workdir: Option<Item<PathBuf>>,
    pub env: BTreeMap<String, Item<String>>,
    pub env_pass: Vec<Item<String>>,
    pub network: Option<Network>,
    pub user: Option<Item<UserSpec>>,
    pub writable: Option<bool>,
    /// Bytes the writable layer may hold; `None`: as much as `/tmp`.
    pub writable_size: Option<u64>,
    /// The program `shell` opens, a path inside.
    pub shell: Option<Item<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShell {
    #[serde(default)]
    binds: Vec<Spanned<RawBind>>,
    workdir: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    env_pass: Vec<Spanned<String>>,
    network: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    writable: Option<bool>,
    writable_size: Option<Spanned<super::raw::RawSize>>,
    shell: Option<Spanned<String>>,
}

/// A bind is a `HOST[:PATH][:ro]` string or a table.
pub(super) enum RawBind {
    Text(String),
    Table(RawBindTable),
}

impl<'de> Deserialize<'de> for RawBind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::text_or_table::deserialize(
            deserializer,
            "a string \"HOST[:PATH][:ro]\", or a table with `src`, `dest` and `read_only`",
            RawBind::Text,
            RawBind::Table,
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBindTable {
    src: String,
    dest: Option<String>,
    #[serde(default)]
    read_only: bool,
}

/// The smallest writable layer `[shell] writable_size` and
/// `--writable-size` accept: one page.
pub const LEAST_WRITABLE_SIZE: u64 = 4096;

/// `--writable-size SIZE` read as `[shell] writable_size` is, for the
/// command line's parser: the bytes, or what is wrong with the text.
pub fn writable_size_flag(text: &str) -> Result<u64, BadSize> {
    super::convert::size_bytes(text)
        .filter(|n| *n >= LEAST_WRITABLE_SIZE)
        .ok_or(BadSize { least: LEAST_WRITABLE_SIZE })
}

/// A flag's size that is not one, or is below `least` bytes; its message
/// says what a size looks like, as a spec error's help does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSize {
    pub least: u64,
}

impl std::fmt::Display for BadSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::convert::size_help(self.least))
    }
}

impl std::error::Error for BadSize {}

/// Merges one file's `[shell]` into `shell`: scalar keys (`writable_size`
/// too) override what an included file set, `env` per variable; `binds` and `env_pass` add up.
pub(super) fn merge(shell: &mut Shell, raw: RawShell, here: &Here) -> Result<(), SpecError> {
    for bind in binds(raw.binds, here)? {
        add_bind(&mut shell.binds, bind);
    }
    if let Some(workdir) = raw.workdir {
        shell.workdir = Some(workdir_value(workdir, here)?);
    }
    for (name, value) in raw.env {
        let value = env_value(&name, value, here)?;
        shell.env.insert(name, value);
    }
    for name in raw.env_pass {
        let at = here.at(name.span());
        if !valid_variable_name(name.get_ref()) {
            return Err(SpecError::at(&at, format!("invalid environment variable `{}`", name.get_ref()))
                .help("give the name of a variable of the caller's environment, such as \"SSH_AUTH_SOCK\""));
        }
        if !shell.env_pass.iter().any(|n| n.value == *name.get_ref()) {
            shell.env_pass.push(Item { value: name.into_inner(), at });
        }
    }
    if let Some(network) = raw.network {
        shell.network = Some(network_value(&network, here)?);
    }
    if let Some(user) = raw.user {
        let at = here.at(user.span());
        let value = UserSpec::parse(user.get_ref()).ok_or_else(|| {
            SpecError::at(&at, format!("invalid user `{}`", user.get_ref()))
                .help("give a name of [[users]], `root`, a uid, or `uid:gid`")
        })?;
        shell.user = Some(Item { value, at });
    }
    if let Some(writable) = raw.writable {
        shell.writable = Some(writable);
    }
    if let Some(size) = raw.writable_size {
        let at = here.at(size.span());
        shell.writable_size = Some(super::convert::parse_size(
            size.get_ref(),
            &at,
            "writable_size",
            LEAST_WRITABLE_SIZE,
        )?);
    }
    if let Some(program) = raw.shell {
        let at = here.at(program.span());
        let value = root_path(program.get_ref(), &at, "a shell")?;
        shell.shell = Some(Item { value, at });
    }
    Ok(())
}

/// A working directory of `[shell]` or of a smoke check: `/`, or a path
/// inside by the spec's rules.
pub(super) fn workdir_value(raw: Spanned<String>, here: &Here) -> Result<Item<PathBuf>, SpecError> {
    let at = here.at(raw.span());
    let path = if Path::new(raw.get_ref()) == Path::new("/") {
        PathBuf::from("/")
    } else {
        root_path(raw.get_ref(), &at, "a working directory")?
    };
    Ok(Item { value: path, at })
}

/// A variable of `[shell]` `env` or of a smoke check's `env`.
pub(super) fn env_value(
    name: &str,
    value: Spanned<String>,
    here: &Here,
) -> Result<Item<String>, SpecError> {
    let at = here.at(value.span());
    if !valid_variable_name(name) || value.get_ref().contains('\0') {
        return Err(SpecError::at(&at, format!("invalid environment variable `{name}`")).help(
            "a variable's name is not empty and has no `=`; neither name nor value has a NUL byte",
        ));
    }
    Ok(Item { value: value.into_inner(), at })
}

/// Adds a bind, replacing an earlier one at the same path inside.
pub fn add_bind(binds: &mut Vec<Item<Bind>>, bind: Item<Bind>) {
    let same = |b: &Item<Bind>| b.value.dest.is_some() && b.value.dest == bind.value.dest;
    binds.retain(|b| !same(b));
    binds.push(bind);
}

/// `binds` of `[shell]` or of a smoke check: each checked for its syntax,
/// a relative source joined to the spec's folder.
pub(super) fn binds(raw: Vec<Spanned<RawBind>>, here: &Here) -> Result<Vec<Item<Bind>>, SpecError> {
    let mut binds = Vec::new();
    for raw_bind in raw {
        let at = here.at(raw_bind.span());
        let rule = |r: PathRule| SpecError::at(&at, r.message).help(r.help);
        let mut bind = match raw_bind.into_inner() {
            RawBind::Text(text) => Bind::parse(&text).map_err(rule)?,
            RawBind::Table(table) => Bind {
                source: PathBuf::from(&table.src),
                dest: table
                    .dest
                    .map(|d| root_path_rule(&d, "a bind path"))
                    .transpose()
                    .map_err(rule)?,
                read_only: table.read_only,
            },
        };
        if bind.source.as_os_str().is_empty() {
            return Err(SpecError::at(&at, "a bind needs a host path in `src`"));
        }
        bind.source = match bind.source.strip_prefix("~") {
            // The caller's home: a toolchain or a cache that `rustup` and
            // `cargo` keep there, whoever runs the spec.
            Ok(rest) => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
                Some(home) => PathBuf::from(home).join(rest),
                None => {
                    return Err(SpecError::at(&at, "`~` in a bind needs HOME to be set")
                        .help("set HOME, or give the host path in full"));
                }
            },
            Err(_) => here.dir.join(&bind.source),
        };
        binds.push(Item { value: bind, at });
    }
    Ok(binds)
}

/// `network = "none"` or `"host"`.
pub(super) fn network_value(raw: &Spanned<String>, here: &Here) -> Result<Network, SpecError> {
    Network::parse(raw.get_ref()).ok_or_else(|| {
        SpecError::at(&here.at(raw.span()), format!("invalid network `{}`", raw.get_ref()))
            .help("use \"none\" (only a loopback of its own) or \"host\" (the caller's network)")
    })
}

/// Checks across the merged spec: the user `[shell]` names is root or one
/// of `[[users]]`.
pub(super) fn check(spec: &Spec) -> Result<(), SpecError> {
    if let Some(Item { value: UserSpec::Name(name), at }) = &spec.shell.user
        && name != "root"
        && !spec.users.iter().any(|u| u.value.name == *name)
    {
        return Err(unknown_user(spec, name, at));
    }
    Ok(())
}

fn unknown_user(spec: &Spec, name: &str, at: &Location) -> SpecError {
    let mut names: Vec<&str> = spec.users.iter().map(|u| u.value.name.as_str()).collect();
    if !names.contains(&"root") {
        names.insert(0, "root");
    }
    SpecError::at(at, format!("user `{name}` is not in [[users]]"))
        .help(format!("the users are: {}; or give a uid", names.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_read_host_path_inside_and_mode() {
        let bind = |dest: Option<&str>, read_only| Bind {
            source: PathBuf::from(if dest.is_some() { "a:b" } else { "dir" }),
            dest: dest.map(PathBuf::from),
            read_only,
        };
        assert_eq!(Bind::parse("dir").unwrap(), bind(None, false));
        assert_eq!(Bind::parse("dir:ro").unwrap(), bind(None, true));
        assert_eq!(Bind::parse("a:b:/src/").unwrap(), bind(Some("/src"), false));
        assert_eq!(Bind::parse("a:b:/src:rw").unwrap(), bind(Some("/src"), false));
        assert_eq!(Bind::parse("a:b:/src:ro").unwrap(), bind(Some("/src"), true));
        let err = Bind::parse("/etc:../x").unwrap_err();
        assert_eq!(err.message, "the path inside must be absolute, got `../x` in `/etc:../x`");
        assert_eq!(err.help, "write the path inside from the tree's root, such as `/etc:/x`");
        assert!(Bind::parse(".:src/a").is_err());
        let err = Bind::parse("dir:/src/../etc").unwrap_err();
        assert_eq!(err.message, "a bind path must not contain `..`, got `/src/../etc`");
        assert!(Bind::parse(":/src").is_err());
        assert!(Bind::parse("dir:/").is_err());
    }

    #[test]
    fn users_are_names_or_numbers() {
        assert_eq!(UserSpec::parse("app"), Some(UserSpec::Name("app".into())));
        assert_eq!(UserSpec::parse("1000"), Some(UserSpec::Ids { uid: 1000, gid: None }));
        assert_eq!(UserSpec::parse("1:2"), Some(UserSpec::Ids { uid: 1, gid: Some(2) }));
        assert_eq!(UserSpec::parse("1:x"), None);
        assert_eq!(UserSpec::parse("App"), None);
    }
}
