//! `[image]`: how an export presents the rootfs as a container image (process, environment, user, metadata, layering), each value checked and located in its file.
//!
//! Every key is documented in `rootfs-spec/README.md`. Merging follows the
//! rest of the spec: a later file overrides an earlier one key by key
//! (`env` and `labels` name by name), and the lists (`exposed_ports`,
//! `volumes`) are concatenated with repeats dropped.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{Item, Location, Spec, SpecError};

/// The most layers an image may be split into: overlay filesystems stack
/// at most about 128 lower layers, and engines refuse more.
pub const MAX_LAYERS: u32 = 100;

/// Signals a container may be stopped with, as `signal(7)` names them.
const SIGNALS: &[&str] = &[
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// The `[image]` table after merging.
#[derive(Clone, Debug, Default)]
pub struct Image {
    /// `org.opencontainers.image.ref.name`; `latest` when not given.
    pub tag: Option<Item<String>>,
    pub entrypoint: Option<Item<Vec<String>>>,
    pub cmd: Option<Item<Vec<String>>>,
    pub env: BTreeMap<String, Item<String>>,
    pub workdir: Option<Item<PathBuf>>,
    pub user: Option<Item<User>>,
    pub labels: BTreeMap<String, Item<String>>,
    /// Normalised as `PORT/PROTOCOL`, in the order first given.
    pub exposed_ports: Vec<Item<String>>,
    pub volumes: Vec<Item<PathBuf>>,
    /// A name from `signal(7)` (`SIGTERM`) or a number.
    pub stop_signal: Option<Item<String>>,
    /// How many layers to split the tree into; 1 when not given.
    pub layers: Option<Item<u32>>,
}

impl Image {
    /// The tag, `latest` by default.
    pub fn tag(&self) -> &str {
        self.tag.as_ref().map_or("latest", |t| t.value.as_str())
    }

    /// How many layers, 1 by default.
    pub fn layers(&self) -> u32 {
        self.layers.as_ref().map_or(1, |l| l.value)
    }
}

/// Who the process runs as: a name of `[[users]]` (or `root`), or a uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum User {
    Name(String),
    Id(u32),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImage {
    tag: Option<Spanned<String>>,
    entrypoint: Option<Spanned<Vec<String>>>,
    cmd: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    workdir: Option<Spanned<String>>,
    user: Option<Spanned<RawUser>>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    exposed_ports: Vec<Spanned<String>>,
    #[serde(default)]
    volumes: Vec<Spanned<String>>,
    stop_signal: Option<Spanned<String>>,
    layers: Option<Spanned<u32>>,
}

struct RawUser(User);

/// A user is a name or a number; a hand-written visitor says so in its
/// error, where `#[serde(untagged)]` would only say that nothing matched.
impl<'de> Deserialize<'de> for RawUser {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawUser;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a user name from [[users]], or a uid from 0 to 4294967295")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawUser, E> {
                Ok(RawUser(User::Name(v.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawUser, E> {
                u32::try_from(v)
                    .map(|id| RawUser(User::Id(id)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Merges one file's `[image]` table into `image`.
pub(super) fn merge(
    image: &mut Image,
    raw: Option<RawImage>,
    at: &impl Fn(Range<usize>) -> Location,
) -> Result<(), SpecError> {
    let Some(raw) = raw else { return Ok(()) };
    set(&mut image.tag, checked(raw.tag, at, check_tag)?);
    set(&mut image.entrypoint, checked(raw.entrypoint, at, |v, l| check_argv(v, l, "entrypoint"))?);
    set(&mut image.cmd, checked(raw.cmd, at, |v, l| check_argv(v, l, "cmd"))?);
    set(&mut image.workdir, checked(raw.workdir, at, |v, l| absolute(&v, l, "`workdir`", true))?);
    set(&mut image.user, checked(raw.user, at, |v, l| check_user(v.0, l))?);
    set(&mut image.stop_signal, checked(raw.stop_signal, at, |v, l| check_signal(&v, l))?);
    set(&mut image.layers, checked(raw.layers, at, check_layers)?);
    for (name, value) in raw.env {
        let location = at(value.span());
        check_env(&name, value.get_ref(), &location)?;
        image.env.insert(name, Item { value: value.into_inner(), at: location });
    }
    for (name, value) in raw.labels {
        let location = at(value.span());
        if name.is_empty() {
            return Err(SpecError::at(&location, "a label needs a name"));
        }
        image.labels.insert(name, Item { value: value.into_inner(), at: location });
    }
    for port in raw.exposed_ports {
        let location = at(port.span());
        add_once(&mut image.exposed_ports, check_port(port.get_ref(), &location)?, location);
    }
    for volume in raw.volumes {
        let location = at(volume.span());
        let value = absolute(volume.get_ref(), &location, "a volume", false)?;
        add_once(&mut image.volumes, value, location);
    }
    Ok(())
}

/// A later file's value, when it gives one, replaces an earlier one's.
fn set<T>(slot: &mut Option<Item<T>>, value: Option<Item<T>>) {
    if value.is_some() {
        *slot = value;
    }
}

/// The value of a key, checked by `check` and located in its file.
fn checked<T, U>(
    raw: Option<Spanned<T>>,
    at: &impl Fn(Range<usize>) -> Location,
    check: impl FnOnce(T, &Location) -> Result<U, SpecError>,
) -> Result<Option<Item<U>>, SpecError> {
    let Some(raw) = raw else { return Ok(None) };
    let location = at(raw.span());
    let value = check(raw.into_inner(), &location)?;
    Ok(Some(Item { value, at: location }))
}

/// Appends `value` to a list unless an earlier file listed it already.
fn add_once<T: PartialEq>(list: &mut Vec<Item<T>>, value: T, at: Location) {
    if !list.iter().any(|item| item.value == value) {
        list.push(Item { value, at });
    }
}

fn check_layers(value: u32, at: &Location) -> Result<u32, SpecError> {
    if (1..=MAX_LAYERS).contains(&value) {
        return Ok(value);
    }
    Err(SpecError::at(at, format!("invalid number of layers `{value}`"))
        .help(format!("give a whole number from 1 to {MAX_LAYERS}")))
}

/// A tag as OCI and Docker accept it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
/// The uid and gid `[image] user` names: `root`, a name of `[[users]]`, or
/// a uid (with its account's gid, else 0). A name of no account is a
/// mistake in the spec.
pub fn user_ids(spec: &Spec, item: &Item<User>) -> Result<(u32, u32), SpecError> {
    match &item.value {
        User::Name(name) => {
            super::accounts::by_name(spec, name).map(|a| (a.uid, a.gid)).ok_or_else(|| {
                let names = super::accounts::names(spec);
                SpecError::at(&item.at, format!("[image] user `{name}` is not a user of this spec"))
                    .help(format!("the users are: {}; or give a uid", names.join(", ")))
            })
        }
        User::Id(uid) => Ok((*uid, super::accounts::gid_of_uid(spec, *uid))),
    }
}

/// Checks across the merged spec, when it is read: the user the image runs
/// as exists.
pub(super) fn check(spec: &Spec) -> Result<(), SpecError> {
    if let Some(item) = &spec.image.user {
        user_ids(spec, item)?;
    }
    Ok(())
}

fn check_tag(tag: String, at: &Location) -> Result<String, SpecError> {
    let mut chars = tag.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && tag.len() <= 128;
    if valid {
        Ok(tag)
    } else {
        Err(SpecError::at(at, format!("invalid tag `{tag}`")).help(
            "use at most 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
        ))
    }
}

/// `entrypoint` and `cmd`: a program must have a name.
fn check_argv(argv: Vec<String>, at: &Location, key: &str) -> Result<Vec<String>, SpecError> {
    if argv.first().is_some_and(String::is_empty) {
        return Err(SpecError::at(at, format!("`{key}` starts with an empty program name"))
            .help("give the program first, as a path or a name on PATH"));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(SpecError::at(at, format!("`{key}` contains a NUL character")));
    }
    Ok(argv)
}

/// Environment names as `environ(7)` and shells accept them.
fn check_env(name: &str, value: &str, at: &Location) -> Result<(), SpecError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(SpecError::at(at, format!("invalid environment variable name `{name}`"))
            .help("start with a letter or `_`, then letters, digits or `_`"));
    }
    if value.contains('\0') {
        return Err(SpecError::at(at, format!("the value of `{name}` contains a NUL character")));
    }
    Ok(())
}

/// An absolute path without `..`; `/` itself only where `root_ok`.
fn absolute(text: &str, at: &Location, what: &str, root_ok: bool) -> Result<PathBuf, SpecError> {
    let path = Path::new(text);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::at(
            at,
            format!("{what} must be an absolute path inside the rootfs without `..`, got `{text}`"),
        )
        .help(format!(
            "write it from the rootfs root, like `/{}`",
            text.trim_start_matches("./")
        )));
    }
    let normal: PathBuf = path.components().collect();
    if !root_ok && normal == Path::new("/") {
        return Err(SpecError::at(at, format!("{what} cannot be `/` itself")));
    }
    Ok(normal)
}

fn check_user(user: User, at: &Location) -> Result<User, SpecError> {
    if let User::Name(name) = &user
        && !super::convert::valid_account_name(name)
    {
        return Err(SpecError::at(at, format!("invalid user name `{name}`"))
            .help("give the name of a [[users]] entry (or `root`), or a uid"));
    }
    Ok(user)
}

/// `PORT` or `PORT/PROTOCOL`, normalised to `PORT/PROTOCOL` (tcp by default).
fn check_port(text: &str, at: &Location) -> Result<String, SpecError> {
    let (port, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    let number = port.parse::<u16>().ok().filter(|p| *p > 0 && !port.starts_with('0'));
    match (number, protocol) {
        (Some(number), "tcp" | "udp" | "sctp") => Ok(format!("{number}/{protocol}")),
        _ => Err(SpecError::at(at, format!("invalid port `{text}`")).help(
            "write a port from 1 to 65535, optionally with /tcp, /udp or /sctp: \"8080/tcp\"",
        )),
    }
}

/// A signal name (`SIGTERM` or `TERM`, `SIGRTMIN+3`) or a number from 1 to 64.
fn check_signal(text: &str, at: &Location) -> Result<String, SpecError> {
    let upper = text.to_ascii_uppercase();
    let named = if upper.starts_with("SIG") { upper.clone() } else { format!("SIG{upper}") };
    let realtime = ["SIGRTMIN", "SIGRTMAX"].iter().any(|base| {
        named.strip_prefix(base).is_some_and(|rest| {
            rest.is_empty()
                || rest.strip_prefix(['+', '-']).and_then(|n| n.parse::<u8>().ok()).is_some_and(
                    |n| (1..=30).contains(&n) && !(rest.starts_with('-') && *base == "SIGRTMIN"),
                )
        })
    });
    if SIGNALS.contains(&named.as_str()) || realtime {
        return Ok(named);
    }
    if text.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n)) {
        return Ok(text.to_string());
    }
    Err(SpecError::at(at, format!("invalid stop signal `{text}`"))
        .help("give a signal name such as \"SIGTERM\" or \"SIGINT\", or a number from 1 to 64"))
}

#[cfg(test)]
mod tests {
    use crate::spec::{Spec, SpecError, load};

    fn load_files(files: &[(&str, &str)]) -> Result<Spec, SpecError> {
        let tmp = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(tmp.path().join(name), text).unwrap();
        }
        load(&tmp.path().join(files[0].0))
    }

    #[test]
    fn later_files_override_key_by_key() {
        let base = "[image]\ncmd = [\"a\"]\ntag = \"v1\"\nenv = { A = \"1\", B = \"2\" }\nexposed_ports = [\"80\"]\n";
        let top = "name = \"x\"\ninclude = [\"base.toml\"]\n[image]\ncmd = [\"b\", \"c\"]\nenv = { B = \"3\" }\nexposed_ports = [\"80/tcp\", \"53/udp\"]\nuser = 1000\n";
        let spec = load_files(&[("top.toml", top), ("base.toml", base)]).unwrap();
        let image = &spec.image;
        assert_eq!(image.cmd.as_ref().unwrap().value, ["b", "c"]);
        assert_eq!(image.tag(), "v1");
        let env: Vec<(&str, &str)> =
            image.env.iter().map(|(k, v)| (k.as_str(), v.value.as_str())).collect();
        assert_eq!(env, [("A", "1"), ("B", "3")]);
        let ports: Vec<&str> = image.exposed_ports.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(ports, ["80/tcp", "53/udp"]);
        assert_eq!(image.user.as_ref().unwrap().value, super::User::Id(1000));
        assert_eq!(image.layers(), 1);
    }

    #[test]
    fn values_are_checked_where_they_are_written() {
        let err = load_files(&[("s.toml", "name = \"x\"\n[image]\nlayers = 0\n")]).unwrap_err();
        assert_eq!(err.at.as_ref().unwrap().line_column(), (3, 10));
        let err = load_files(&[("s.toml", "name = \"x\"\n[image]\nstop_signal = \"SIGNOPE\"\n")])
            .unwrap_err();
        assert!(err.message.contains("stop signal"), "{}", err.message);
        let spec =
            load_files(&[("s.toml", "name = \"x\"\n[image]\nstop_signal = \"term\"\n")]).unwrap();
        assert_eq!(spec.image.stop_signal.unwrap().value, "SIGTERM");
        let spec =
            load_files(&[("s.toml", "name = \"x\"\n[image]\nstop_signal = \"SIGRTMIN+3\"\n")])
                .unwrap();
        assert_eq!(spec.image.stop_signal.unwrap().value, "SIGRTMIN+3");
    }
}
