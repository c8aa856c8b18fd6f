//! The spec: what a rootfs holds, read from TOML with its includes merged, every value checked and located in its file.
//!
//! Every key is documented in `rootfs-spec/README.md`. Parsing is strict:
//! unknown keys, wrong types and missing keys are errors that point at the
//! file, line and column (see [`SpecError`]).

mod diagnostic;
pub mod image;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

pub use self::diagnostic::{Location, Source, SpecError};

/// The spec `cargo xtask rootfs` builds when given none.
pub const DEFAULT_SPEC: &str = "rootfs-spec/default.toml";

/// A value from a spec file, with where it was written.
#[derive(Clone, Debug)]
pub struct Item<T> {
    pub value: T,
    pub at: Location,
}

/// A directory to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dir {
    pub path: PathBuf,
    pub mode: Option<u32>,
}

/// Where a file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// A host file (absolute, already joined to the spec's directory).
    Host(PathBuf),
    /// Inline text from the spec.
    Content(String),
}

/// An extra file. Its item's location is the `dest` value (or the table
/// when `dest` is implied); `src_at` points at `src`.
#[derive(Clone, Debug)]
pub struct File {
    pub source: FileSource,
    pub dest: PathBuf,
    pub mode: Option<u32>,
    pub src_at: Option<Location>,
}

/// An extra symlink: `path` will read `target`, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symlink {
    pub path: PathBuf,
    pub target: PathBuf,
}

/// A line of `/etc/passwd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
    pub gecos: String,
}

/// A line of `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// One extra smoke check.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub run: Vec<String>,
    pub exit: i32,
    pub contains: Option<String>,
    pub timeout: Option<f64>,
}

/// How the built rootfs is smoke-tested.
#[derive(Clone, Debug)]
pub struct Smoke {
    /// Seconds; the default for every check.
    pub timeout: f64,
    /// Arguments per command name.
    pub args: BTreeMap<String, Item<Vec<String>>>,
    /// Commands not run on their own (still available to checks).
    pub skip: Vec<Item<String>>,
    pub checks: Vec<Item<Check>>,
}

/// A spec with its includes merged.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    /// The top spec file as given.
    pub path: PathBuf,
    /// Every spec file read (the top one and its includes), for change
    /// detection.
    pub sources: Vec<Arc<Source>>,
    pub commands: Vec<Item<String>>,
    pub libraries: Vec<Item<String>>,
    pub dirs: Vec<Item<Dir>>,
    pub files: Vec<Item<File>>,
    pub symlinks: Vec<Item<Symlink>>,
    pub users: Vec<Item<User>>,
    pub groups: Vec<Item<Group>>,
    pub keep_setuid: bool,
    pub smoke: Smoke,
    /// How exports present the tree as a container image.
    pub image: image::Image,
}

/// Default smoke timeout, in seconds.
const DEFAULT_TIMEOUT: f64 = 10.0;

/// Includes deeper than this are a loop or a mistake.
const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Option<Spanned<String>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    commands: Vec<Spanned<String>>,
    #[serde(default)]
    libraries: Vec<Spanned<String>>,
    #[serde(default)]
    dirs: Vec<Spanned<RawDir>>,
    #[serde(default)]
    files: Vec<Spanned<RawFile>>,
    #[serde(default)]
    symlinks: Vec<Spanned<RawSymlink>>,
    #[serde(default)]
    users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    groups: Vec<Spanned<RawGroup>>,
    keep_setuid: Option<bool>,
    smoke: Option<RawSmoke>,
    image: Option<image::RawImage>,
}

enum RawDir {
    Path(String),
    Table(RawDirTable),
}

/// A directory is a string or a table; a hand-written visitor keeps the
/// table's own errors (an unknown key) that `#[serde(untagged)]` would drop.
impl<'de> Deserialize<'de> for RawDir {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawDir;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a path string, or a table with `path` and optional `mode`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawDir, E> {
                Ok(RawDir::Path(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawDir, A::Error> {
                RawDirTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawDir::Table)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirTable {
    path: String,
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    src: Option<Spanned<String>>,
    content: Option<String>,
    dest: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSymlink {
    path: Spanned<String>,
    target: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Spanned<String>,
    uid: u32,
    gid: u32,
    home: Option<Spanned<String>>,
    shell: Option<Spanned<String>>,
    gecos: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    gid: u32,
    #[serde(default)]
    members: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmoke {
    timeout: Option<Spanned<f64>>,
    #[serde(default)]
    args: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    skip: Vec<Spanned<String>>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    run: Spanned<Vec<String>>,
    #[serde(default)]
    exit: i32,
    contains: Option<String>,
    timeout: Option<Spanned<f64>>,
}

/// Reads a spec and everything it includes.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let mut spec = Spec {
        name: String::new(),
        path: path.to_path_buf(),
        sources: Vec::new(),
        commands: Vec::new(),
        libraries: Vec::new(),
        dirs: Vec::new(),
        files: Vec::new(),
        symlinks: Vec::new(),
        users: Vec::new(),
        groups: Vec::new(),
        keep_setuid: false,
        smoke: Smoke {
            timeout: DEFAULT_TIMEOUT,
            args: BTreeMap::new(),
            skip: Vec::new(),
            checks: Vec::new(),
        },
        image: image::Image::default(),
    };
    let mut stack = Vec::new();
    let mut merged = Vec::new();
    let name = load_into(&mut spec, path, &mut stack, &mut merged)?;
    let Some(name) = name else {
        let source = spec.sources.first().expect("the top spec was read");
        return Err(SpecError::in_file(&source.path, "missing key `name`").help(
            "add `name = \"...\"` at the top: the rootfs is built in target/rootfs/<name>/",
        ));
    };
    spec.name = name;
    check_unique(&spec)?;
    check_smoke_names(&spec)?;
    Ok(spec)
}

/// Merges the file at `path` (after its includes) into `spec`; returns its
/// `name`. `stack` holds the files being read (canonical, and as the user
/// wrote them), to find include loops; `merged` every file already merged,
/// so that a file included twice (a diamond) counts once.
fn load_into(
    spec: &mut Spec,
    path: &Path,
    stack: &mut Vec<(PathBuf, PathBuf)>,
    merged: &mut Vec<PathBuf>,
) -> Result<Option<String>, SpecError> {
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| SpecError::in_file(path, format!("cannot read spec: {e}")))?;
    if merged.contains(&canonical) {
        return Ok(None);
    }
    if stack.len() >= MAX_INCLUDE_DEPTH {
        return Err(SpecError::in_file(
            path,
            format!("includes are nested more than {MAX_INCLUDE_DEPTH} deep"),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::in_file(path, format!("cannot read spec: {e}")))?;
    let base = stack
        .first()
        .and_then(|(top, _)| top.parent())
        .or(canonical.parent())
        .unwrap_or(Path::new("/"));
    let name = canonical.strip_prefix(base).map_or_else(|_| canonical.clone(), Path::to_path_buf);
    let source = Arc::new(Source { path: path.to_path_buf(), name, text });
    spec.sources.push(source.clone());
    let at = |span: std::ops::Range<usize>| Location { source: source.clone(), span };
    let raw: RawSpec =
        toml::from_str(&source.text).map_err(|e| toml_error(&e, at(e.span().unwrap_or(0..0))))?;
    let dir = path.parent().unwrap_or(Path::new("."));

    stack.push((canonical, path.to_path_buf()));
    for include in &raw.include {
        let included = dir.join(include.get_ref());
        if let Ok(target) = std::fs::canonicalize(&included)
            && let Some(start) = stack.iter().position(|(c, _)| *c == target)
        {
            let mut cycle: Vec<String> =
                stack[start..].iter().map(|(_, p)| p.display().to_string()).collect();
            cycle.push(included.display().to_string());
            return Err(SpecError::at(
                &at(include.span()),
                format!("include loop: `{}` is already being read", included.display()),
            )
            .help(format!("the includes go {}; remove one of them", cycle.join(" -> "))));
        }
        if !included.is_file() {
            return Err(SpecError::at(
                &at(include.span()),
                format!("included spec `{}` does not exist", included.display()),
            )
            .help("include paths are relative to the including spec's directory"));
        }
        load_into(spec, &included, stack, merged)?;
    }
    let (canonical, _) = stack.pop().expect("pushed above");
    merged.push(canonical);

    merge_names(
        &mut spec.commands,
        raw.commands,
        &at,
        "command",
        "a name to look up on PATH, such as \"bash\"",
    )?;
    merge_names(
        &mut spec.libraries,
        raw.libraries,
        &at,
        "library",
        "a soname, such as \"libnss_files.so.2\"",
    )?;
    for d in raw.dirs {
        let location = at(d.span());
        let (path, mode) = match d.into_inner() {
            RawDir::Path(p) => (p, None),
            RawDir::Table(t) => (t.path, t.mode),
        };
        let path = root_path(&path, &location, "a directory")?;
        let mode = mode.map(|m| parse_mode(&m, &location)).transpose()?;
        spec.dirs.push(Item { value: Dir { path, mode }, at: location });
    }
    for f in raw.files {
        let location = at(f.span());
        let f = f.into_inner();
        let mode = f.mode.as_ref().map(|m| parse_mode(m.get_ref(), &at(m.span()))).transpose()?;
        let src_at = f.src.as_ref().map(|src| at(src.span()));
        let (source, default_dest) = match (f.src, f.content) {
            (Some(src), None) => {
                let raw_src = PathBuf::from(src.get_ref());
                let host = if raw_src.is_absolute() { raw_src.clone() } else { dir.join(&raw_src) };
                let default_dest = raw_src.is_absolute().then_some(raw_src);
                (FileSource::Host(host), default_dest)
            }
            (None, Some(content)) => (FileSource::Content(content), None),
            (Some(_), Some(_)) => {
                return Err(SpecError::at(&location, "a file has both `src` and `content`")
                    .help("keep one of them"));
            }
            (None, None) => {
                return Err(SpecError::at(&location, "a file needs `src` or `content`")
                    .help("`src` is a host path (absolute, or relative to this spec); `content` is inline text"));
            }
        };
        let (dest, location) = match (f.dest, default_dest) {
            (Some(dest), _) => {
                let dest_at = at(dest.span());
                (root_path(dest.get_ref(), &dest_at, "a destination")?, dest_at)
            }
            (None, Some(dest)) => {
                (root_path(&dest.to_string_lossy(), &location, "a destination")?, location)
            }
            (None, None) => {
                return Err(SpecError::at(&location, "missing key `dest`")
                    .help("`dest` may be left out only when `src` is an absolute path"));
            }
        };
        spec.files.push(Item { value: File { source, dest, mode, src_at }, at: location });
    }
    for s in raw.symlinks {
        let s = s.into_inner();
        let location = at(s.path.span());
        let path = root_path(s.path.get_ref(), &at(s.path.span()), "a symlink path")?;
        if s.target.get_ref().is_empty() {
            return Err(SpecError::at(&at(s.target.span()), "empty symlink target"));
        }
        spec.symlinks.push(Item {
            value: Symlink { path, target: PathBuf::from(s.target.into_inner()) },
            at: location,
        });
    }
    for u in raw.users {
        let location = at(u.span());
        let u = u.into_inner();
        let name = account_name(&u.name, &at(u.name.span()))?;
        let home = match &u.home {
            Some(h) => root_path(h.get_ref(), &at(h.span()), "a home directory")?,
            None if u.uid == 0 => PathBuf::from("/root"),
            None => PathBuf::from("/home").join(&name),
        };
        let shell = match &u.shell {
            Some(s) => root_path(s.get_ref(), &at(s.span()), "a shell")?,
            None => PathBuf::from("/bin/sh"),
        };
        let gecos = u.gecos.unwrap_or_else(|| name.clone());
        if gecos.contains([':', '\n']) {
            return Err(SpecError::at(&location, "`gecos` cannot contain `:` or a newline"));
        }
        for (key, value) in [("home", &home), ("shell", &shell)] {
            if value.to_string_lossy().contains([':', '\n']) {
                return Err(SpecError::at(
                    &location,
                    format!("`{key}` cannot contain `:` or a newline"),
                )
                .help("/etc/passwd separates its fields with `:`"));
            }
        }
        spec.users.push(Item {
            value: User { name, uid: u.uid, gid: u.gid, home, shell, gecos },
            at: location,
        });
    }
    for g in raw.groups {
        let location = at(g.span());
        let g = g.into_inner();
        let name = account_name(&g.name, &at(g.name.span()))?;
        let mut members = Vec::new();
        for member in &g.members {
            if !valid_account_name(member.get_ref()) {
                return Err(SpecError::at(&at(member.span()), format!("invalid group member `{}`", member.get_ref()))
                    .help("members are user names: lowercase letters, digits, `_` or `-`, starting with a letter or `_`"));
            }
            members.push(member.get_ref().clone());
        }
        spec.groups.push(Item { value: Group { name, gid: g.gid, members }, at: location });
    }
    if let Some(keep) = raw.keep_setuid {
        spec.keep_setuid |= keep;
    }
    if let Some(smoke) = raw.smoke {
        if let Some(timeout) = smoke.timeout {
            spec.smoke.timeout = positive_seconds(&timeout, &at(timeout.span()))?;
        }
        for (name, args) in smoke.args {
            let location = at(args.span());
            spec.smoke.args.insert(name, Item { value: args.into_inner(), at: location });
        }
        for name in smoke.skip {
            let location = at(name.span());
            spec.smoke.skip.push(Item { value: name.into_inner(), at: location });
        }
        for check in smoke.checks {
            let location = at(check.span());
            let check = check.into_inner();
            if check.run.get_ref().is_empty() {
                return Err(SpecError::at(&at(check.run.span()), "`run` is empty")
                    .help("give the command and its arguments"));
            }
            let timeout =
                check.timeout.as_ref().map(|t| positive_seconds(t, &at(t.span()))).transpose()?;
            spec.smoke.checks.push(Item {
                value: Check {
                    run: check.run.into_inner(),
                    exit: check.exit,
                    contains: check.contains,
                    timeout,
                },
                at: location,
            });
        }
    }
    image::merge(&mut spec.image, raw.image, &at)?;
    if let Some(name) = &raw.name {
        let location = at(name.span());
        let value = name.get_ref();
        // The name is also the hostname inside smoke tests: at most 64 bytes.
        let valid = !value.is_empty()
            && value.len() <= 64
            && !value.starts_with('.')
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(SpecError::at(&location, format!("invalid name `{value}`"))
                .help("use at most 64 letters, digits, `-`, `_` and `.`, not starting with `.`: it names target/rootfs/<name>/"));
        }
    }
    Ok(raw.name.map(Spanned::into_inner))
}

/// Adds `commands` or `libraries` entries: a name, or an absolute path
/// inside the rootfs; the first of duplicates is kept.
fn merge_names(
    items: &mut Vec<Item<String>>,
    raw: Vec<Spanned<String>>,
    at: &impl Fn(std::ops::Range<usize>) -> Location,
    what: &str,
    example: &str,
) -> Result<(), SpecError> {
    for name in raw {
        let location = at(name.span());
        let value = name.into_inner();
        if value.is_empty() {
            return Err(SpecError::at(&location, format!("empty {what} name"))
                .help(format!("give {example}, or an absolute path")));
        }
        if value.contains('/') {
            root_path(&value, &location, &format!("a {what} path"))?;
        }
        if !items.iter().any(|i| i.value == value) {
            items.push(Item { value, at: location });
        }
    }
    Ok(())
}

/// Checks a path meant for the inside of the rootfs: absolute, no `..`, not
/// `/` itself. Returns it normalised (no `.`, no trailing slash).
fn root_path(text: &str, at: &Location, what: &str) -> Result<PathBuf, SpecError> {
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err(SpecError::at(
            at,
            format!("{what} must be an absolute path inside the rootfs, got `{text}`"),
        )
        .help(format!(
            "write it from the rootfs root, like `/{}`",
            text.trim_start_matches("./")
        )));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::at(at, format!("{what} must not contain `..`, got `{text}`"))
            .help("write the path without `..`; paths are resolved inside the rootfs and may not climb out"));
    }
    let normal: PathBuf = path.components().collect();
    if normal == Path::new("/") {
        return Err(SpecError::at(at, format!("{what} cannot be `/` itself")));
    }
    Ok(normal)
}

fn parse_mode(text: &str, at: &Location) -> Result<u32, SpecError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let octal = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if octal && mode <= 0o7777 => Ok(mode),
        _ => Err(SpecError::at(at, format!("invalid mode `{text}`"))
            .help("write the mode in octal, as a string: `\"0644\"`")),
    }
}

fn positive_seconds(value: &Spanned<f64>, at: &Location) -> Result<f64, SpecError> {
    let v = *value.get_ref();
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(SpecError::at(at, format!("invalid timeout `{v}`"))
            .help("give a number of seconds, more than 0 and at most 86400"))
    }
}

fn valid_account_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
        && name.len() <= 32
}

fn account_name(name: &Spanned<String>, at: &Location) -> Result<String, SpecError> {
    if valid_account_name(name.get_ref()) {
        Ok(name.get_ref().clone())
    } else {
        Err(SpecError::at(at, format!("invalid account name `{}`", name.get_ref()))
            .help("start with a lowercase letter or `_`, then lowercase letters, digits, `_` or `-` (at most 32)"))
    }
}

/// `[smoke.args]` and `skip` name commands of the spec: a typo would
/// otherwise silently test something else.
fn check_smoke_names(spec: &Spec) -> Result<(), SpecError> {
    let names: Vec<&str> = spec.commands.iter().map(|c| c.value.as_str()).collect();
    let known = |name: &str| names.contains(&name);
    let listed = || format!("the commands are: {}", names.join(", "));
    for (name, args) in &spec.smoke.args {
        if !known(name) {
            return Err(SpecError::at(
                &args.at,
                format!("[smoke.args] names `{name}`, which is not a command of this spec"),
            )
            .help(listed()));
        }
    }
    for skipped in &spec.smoke.skip {
        if !known(&skipped.value) {
            return Err(SpecError::at(
                &skipped.at,
                format!(
                    "[smoke] skip names `{}`, which is not a command of this spec",
                    skipped.value
                ),
            )
            .help(listed()));
        }
    }
    Ok(())
}

/// A TOML or type error from the parser, in the words of the spec: Rust
/// type names replaced, and help that fits the kind of mistake.
fn toml_error(e: &toml::de::Error, at: Location) -> SpecError {
    let message = e
        .message()
        .trim_end_matches('\n')
        .replace("expected f64", "expected a number of seconds")
        .replace("expected u32", "expected a whole number from 0 to 4294967295")
        .replace("expected i32", "expected a whole number");
    let line =
        at.source.text[at.span.start.min(at.source.text.len())..].lines().next().unwrap_or("");
    let line_start =
        at.source.text[..at.span.start.min(at.source.text.len())].rsplit('\n').next().unwrap_or("");
    let key = format!("{line_start}{line}");
    let key = key.trim_start();
    let help = if key.starts_with("mode") {
        "write the mode in octal, as a string: mode = \"0644\""
    } else if key.starts_with("timeout") {
        "write a number of seconds: timeout = 10"
    } else if message.contains("unknown field")
        || message.contains("missing field")
        || message.contains("invalid type")
    {
        "see rootfs-spec/README.md for every key and its type"
    } else {
        "this is not valid TOML; see https://toml.io for the syntax"
    };
    SpecError::at(&at, message).help(help)
}

/// Users, groups and directories may each be given once.
fn check_unique(spec: &Spec) -> Result<(), SpecError> {
    let twice = |at: &Location, what: String, first: &Location| {
        SpecError::at(at, what).help(format!("the first one is at {first}; keep one of them"))
    };
    for (i, user) in spec.users.iter().enumerate() {
        let u = &user.value;
        if let Some(first) = spec.users[..i].iter().find(|o| o.value.name == u.name) {
            return Err(twice(
                &user.at,
                format!("user name `{}` is given twice", u.name),
                &first.at,
            ));
        }
        if let Some(first) = spec.users[..i].iter().find(|o| o.value.uid == u.uid) {
            let what = format!("uid {} is already used by `{}`", u.uid, first.value.name);
            return Err(twice(&user.at, what, &first.at));
        }
        if u.name == "root" && (u.uid != 0 || u.gid != 0) {
            return Err(SpecError::at(&user.at, "`root` always has uid 0 and gid 0").help(
                "give root uid 0 and gid 0 (to change its home or shell), or use another name",
            ));
        }
        if u.uid == 0 && u.name != "root" {
            return Err(SpecError::at(&user.at, "uid 0 is always `root`")
                .help("root is always in /etc/passwd; give this user another uid"));
        }
    }
    for (i, group) in spec.groups.iter().enumerate() {
        let g = &group.value;
        if let Some(first) = spec.groups[..i].iter().find(|o| o.value.name == g.name) {
            return Err(twice(
                &group.at,
                format!("group name `{}` is given twice", g.name),
                &first.at,
            ));
        }
        if let Some(first) = spec.groups[..i].iter().find(|o| o.value.gid == g.gid) {
            let what = format!("gid {} is already used by `{}`", g.gid, first.value.name);
            return Err(twice(&group.at, what, &first.at));
        }
        if (g.gid == 0) != (g.name == "root") {
            return Err(SpecError::at(
                &group.at,
                "gid 0 is always the group `root`, and `root` always gid 0",
            )
            .help("root is always in /etc/group; list it here only with gid 0, to add members"));
        }
    }
    for (i, dir) in spec.dirs.iter().enumerate() {
        let clash = |d: &&Item<Dir>| {
            d.value.path == dir.value.path
                && d.value.mode.is_some()
                && dir.value.mode.is_some()
                && d.value.mode != dir.value.mode
        };
        if let Some(first) = spec.dirs[..i].iter().find(clash) {
            let what = format!(
                "directory `{}` is given twice with different modes",
                dir.value.path.display()
            );
            return Err(twice(&dir.at, what, &first.at));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Spec, SpecError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spec.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err = load_text("name = \"x\"\ncommands = [\"bash\", 3]\n").unwrap_err();
        assert_eq!(err.at.as_ref().unwrap().line_column(), (2, 21));
        let err =
            load_text("name = \"x\"\n[[files]]\nsrc = \"a\"\ndest = \"etc/a\"\n").unwrap_err();
        assert_eq!(err.at.as_ref().unwrap().line_column(), (4, 8));
        assert!(err.message.contains("absolute"), "{}", err.message);
    }

    #[test]
    fn modes_are_octal_strings() {
        let spec =
            load_text("name = \"x\"\ndirs = [\"/a\", { path = \"/b/\", mode = \"0750\" }]\n")
                .unwrap();
        assert_eq!(spec.dirs[1].value, Dir { path: "/b".into(), mode: Some(0o750) });
        assert!(load_text("name = \"x\"\ndirs = [{ path = \"/b\", mode = \"9\" }]\n").is_err());
    }
}
