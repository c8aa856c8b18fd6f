//! What `shell` and `run` set up around a built tree, to work in it: host paths bound in, the working directory, the environment, the network, the user and a throwaway writable layer, from the spec's `[shell]` table with the command line over it.
//!
//! The command line overrides the table: `--workdir`, `--network`, `--user`
//! replace its values, `--env` and `--env-pass` replace its variables of
//! the same name, and a `--bind` replaces a bind of the table at the same
//! path inside (the other binds stay). `--bind` of the current directory
//! also makes its path inside the working directory, unless `--workdir`
//! says otherwise; so does a bind of the current directory in the table,
//! unless the table names a working directory. Mistakes are usage errors (exit 2): on the command line
//! they name the flag, in the spec they point at the value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::UsageError;
use crate::resolve::rootpath::{Node, Walk};
use crate::run::sandbox::{self, Access, Ids};
use crate::spec::{self, Spec, SpecError, UserSpec, accounts};
use crate::vocab::Network;

/// What the command line asks for, as written: the flags' text, which
/// [`Flags::parse`] checks and turns into a [`Request`].
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// `--bind HOST[:PATH][:ro]`, in order.
    pub binds: Vec<String>,
    pub workdir: Option<String>,
    /// `--env KEY=VALUE`.
    pub env: Vec<String>,
    /// `--env-pass KEY`: the variable of the caller's environment, when set.
    pub env_pass: Vec<String>,
    pub network: Option<Network>,
    /// `--user NAME|UID[:GID]`.
    pub user: Option<String>,
    pub writable: bool,
    /// `--writable-size SIZE`, in bytes: the most the writable layer holds.
    pub writable_size: Option<u64>,
}

/// What the command line asks for, each value parsed: what `shell`, `run`
/// and `trace` open over the spec's `[shell]` table.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `--bind`, in order.
    pub binds: Vec<FlagBind>,
    /// `--workdir`: `/`, or a path inside.
    pub workdir: Option<PathBuf>,
    /// `--env`, as (name, value), in order.
    pub env: Vec<(String, String)>,
    /// `--env-pass`: names of variables of the caller's environment.
    pub env_pass: Vec<String>,
    pub network: Option<Network>,
    /// `--user`; the caller's own ids when neither this nor the table
    /// names one.
    pub user: Option<UserSpec>,
    pub writable: bool,
    /// The most the writable layer holds, in bytes.
    pub writable_size: Option<u64>,
}

/// One `--bind`: the bind it asks for, and the flag's text, which every
/// later mistake about it (a host path missing, a path inside the tree
/// that is not a directory) names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagBind {
    pub text: String,
    pub bind: spec::Bind,
}

impl Flags {
    /// Every flag's syntax checked, once: a mistake is a usage error (exit
    /// status 2) naming the flag and its text.
    pub fn parse(&self) -> Result<Request> {
        let binds = self.binds.iter().map(|text| {
            let bind = spec::Bind::parse(text)
                .map_err(|rule| usage(format!("--bind `{text}`: {}", rule.message)))?;
            Ok(FlagBind { text: text.clone(), bind })
        });
        let workdir = self.workdir.as_deref().map(|text| {
            inside_dir(text).map_err(|rule| usage(format!("--workdir: {}", rule.message)))
        });
        let user = self.user.as_deref().map(|text| {
            UserSpec::parse(text).ok_or_else(|| {
                usage(format!(
                    "--user `{text}`: give a name of the spec's [[users]], `root`, a uid, or uid:gid"
                ))
            })
        });
        let binds = binds.collect::<Result<Vec<_>>>()?;
        let workdir = workdir.transpose()?;
        let user = user.transpose()?;
        for name in &self.env_pass {
            if !spec::valid_variable_name(name) {
                return Err(usage(format!("--env-pass `{name}`: not a variable name")));
            }
        }
        let env = self.env.iter().map(|text| {
            text.split_once('=')
                .filter(|(name, value)| spec::valid_variable_name(name) && !value.contains('\0'))
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .ok_or_else(|| usage(format!("--env `{text}`: write KEY=VALUE")))
        });
        let env = env.collect::<Result<Vec<_>>>()?;
        let (network, writable, writable_size) = (self.network, self.writable, self.writable_size);
        let env_pass = self.env_pass.clone();
        Ok(Request { binds, workdir, env, env_pass, network, user, writable, writable_size })
    }
}

/// How `shell` or `run` enters the tree: the sandbox's access, and the
/// whole environment of the command.
#[derive(Clone, Debug)]
pub struct Devenv {
    pub access: Access,
    pub env: Vec<(String, String)>,
}

/// The access and environment `request` asks for over `spec`'s `[shell]`,
/// in the tree at `tree`, with `TERM` set to `term`.
pub fn prepare(spec: &Spec, tree: &Path, request: &Request, term: &str) -> Result<Devenv> {
    let shell = &spec.shell;
    let (binds, implied) = binds(tree, shell, request)?;
    let workdir = workdir(tree, shell, request, implied, &binds)?;
    let (user, home) = user(spec, request.user.as_ref())?;
    let network = request.network.or(shell.network).unwrap_or_default();
    let writable = request.writable || shell.writable.unwrap_or(false);
    let writable_size = request.writable_size.or(shell.writable_size);
    let env = environment(shell, request, &home, term)?;
    let home = writable_home(tree, &home);
    let access = Access { binds, network, user, writable, writable_size, workdir, home };
    Ok(Devenv { access, env })
}

/// Everything of `request` and the `[shell]` table that can be checked
/// without a tree: the user, the table's variables, and that every host
/// path to bind exists. `shell` and `run` call it before building, so a
/// mistake costs no build and no lock write.
pub fn check(spec: &Spec, request: &Request) -> Result<()> {
    let mut flag_dests = Vec::new();
    for FlagBind { text, bind: asked } in &request.binds {
        sandbox::check_source(&asked.source).map_err(|e| usage(format!("--bind `{text}`: {e}")))?;
        flag_dests.push(asked.dest.clone().or_else(|| std::path::absolute(&asked.source).ok()));
    }
    // A table's bind that a flag replaces is not looked at, as in `binds`.
    let replaced = |dest: &Option<PathBuf>| dest.is_some() && flag_dests.contains(dest);
    check_bind_sources(spec.shell.binds.iter().filter(|b| !replaced(&b.value.dest)))?;
    let (_, home) = user(spec, request.user.as_ref())?;
    environment(&spec.shell, request, &home, "dumb")?;
    Ok(())
}

/// That the host path of each bind of the spec (`[shell]`, a smoke check)
/// exists, before there is a tree: a missing one points at the spec.
pub fn check_bind_sources<'a>(
    binds: impl Iterator<Item = &'a spec::Item<spec::Bind>>,
) -> Result<()> {
    for item in binds {
        sandbox::check_source(&item.value.source).map_err(|e| {
            SpecError::at(&item.at, e.to_string()).help(
                "a bind is HOST[:PATH][:ro]: an existing host path, and a path inside the tree",
            )
        })?;
    }
    Ok(())
}

/// The home to cover with a writable tmpfs of the namespace, so that
/// `git config --global` or a shell's history can be written there while
/// the tree stays read-only: the home when it is a directory of the tree
/// (its real path there), not `/` and not `/tmp` (which is one already).
fn writable_home(tree: &Path, home: &Path) -> Option<PathBuf> {
    let how = Walk { follow_last: true, missing_ok: false };
    let walked = crate::resolve::sysroot::Sysroot::new(tree).walk(home, how).ok()?;
    let own = walked.real != Path::new("/") && walked.real != Path::new("/tmp");
    (walked.node == Node::Dir && own).then_some(walked.real)
}

/// Where the shell `shell` opens comes from, for the line it prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellSource {
    /// `[shell] shell`.
    Spec,
    /// The login shell of the user inside, from `[[users]]`.
    Login,
    /// bash, the first fallback.
    Bash,
    /// `/bin/sh`, the last one.
    Sh,
}

/// The program `shell` opens, and why that one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellChoice {
    pub path: PathBuf,
    pub source: ShellSource,
}

impl ShellChoice {
    /// The line `shell` prints before opening it.
    pub fn describe(&self) -> String {
        let path = self.path.display();
        match self.source {
            ShellSource::Spec => format!("opening `{path}`, the spec's [shell] shell"),
            ShellSource::Login => format!("opening `{path}`, the user's login shell in [[users]]"),
            ShellSource::Bash | ShellSource::Sh => {
                format!("opening `{path}` (set [shell] shell in the spec to choose another)")
            }
        }
    }
}

/// The first of: the spec's `[shell] shell`, the login shell the spec's
/// `[[users]]` gives the user inside, bash, `/bin/sh`, that the tree at
/// `tree` holds. A `[shell] shell` the tree lacks is a spec error.
pub fn shell_to_open(spec: &Spec, tree: &Path, request: &Request) -> Result<ShellChoice> {
    let is_program = |path: &Path| {
        let how = Walk { follow_last: true, missing_ok: false };
        let walked = crate::resolve::sysroot::Sysroot::new(tree).walk(path, how);
        walked.is_ok_and(|w| w.node == Node::File)
    };
    let choice = |path: &Path, source| ShellChoice { path: path.to_path_buf(), source };
    if let Some(item) = &spec.shell.shell {
        if !is_program(&item.value) {
            return Err(SpecError::at(
                &item.at,
                format!("the shell `{}` is not in the tree", item.value.display()),
            )
            .help("add it to `commands`, or name a shell the tree has")
            .into());
        }
        return Ok(choice(&item.value, ShellSource::Spec));
    }
    let (ids, _) = user(spec, request.user.as_ref())?;
    let login = spec.users.iter().find(|u| u.value.uid == ids.uid).map(|u| &u.value.shell);
    // `nologin` and `false` are login shells that refuse a login.
    let refuses = |p: &Path| p.file_name().is_some_and(|n| n == "nologin" || n == "false");
    if let Some(login) = login.filter(|p| !refuses(p) && is_program(p)) {
        return Ok(choice(login, ShellSource::Login));
    }
    for bash in ["/usr/bin/bash", "/bin/bash"] {
        if is_program(Path::new(bash)) {
            return Ok(choice(Path::new(bash), ShellSource::Bash));
        }
    }
    Ok(choice(Path::new("/bin/sh"), ShellSource::Sh))
}

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// The table's binds, then the command line's; a later bind at the same
/// path inside replaces an earlier one (a table's bind replaced by a flag is
/// not even looked at). Also the paths inside of a bind of the current
/// directory, which may become the working directory.
fn binds(
    tree: &Path,
    shell: &spec::Shell,
    request: &Request,
) -> Result<(Vec<sandbox::Bind>, Implied)> {
    let cwd = std::env::current_dir().and_then(std::fs::canonicalize);
    let cwd = cwd.context("reading the current directory")?;
    let mut flags: Vec<(PathBuf, sandbox::Bind)> = Vec::new();
    let mut implied = Implied::default();
    for FlagBind { text, bind: asked } in &request.binds {
        let bind =
            sandbox::Bind::resolve(tree, &asked.source, asked.dest.as_deref(), asked.read_only)
                .map_err(|e| usage(format!("--bind `{text}`: {e}")))?;
        if bind.dir && bind.source == cwd {
            implied.by_flag = Some(bind.target.clone());
        }
        flags.push((asked.dest.clone().unwrap_or_else(|| bind.target.clone()), bind));
    }
    let replaced = |dest: &Path| flags.iter().any(|(asked, b)| asked == dest || b.target == dest);
    let mut binds: Vec<sandbox::Bind> = Vec::new();
    let mut add = |bind: sandbox::Bind| {
        binds.retain(|b| b.target != bind.target);
        binds.push(bind);
    };
    for item in &shell.binds {
        if !item.value.dest.as_deref().is_some_and(replaced) {
            let bind = sandbox::resolve_item(tree, item)?;
            if bind.dir && bind.source == cwd {
                implied.by_table = Some(bind.target.clone());
            }
            add(bind);
        }
    }
    for (_, bind) in flags {
        add(bind);
    }
    Ok((binds, implied))
}

/// Where a bind of the current directory is mounted: by `--bind`, or by
/// the table (a checkout's own spec binding the checkout).
#[derive(Default)]
struct Implied {
    by_flag: Option<PathBuf>,
    by_table: Option<PathBuf>,
}

/// `--workdir`, else a `--bind` of the current directory, else the
/// table's, else a bind of the current directory by the table: a directory
/// inside, in the tree or in a bind.
fn workdir(
    tree: &Path,
    shell: &spec::Shell,
    request: &Request,
    implied: Implied,
    binds: &[sandbox::Bind],
) -> Result<Option<PathBuf>> {
    if let Some(path) = &request.workdir {
        return match sandbox::is_dir_inside(tree, path, binds) {
            true => Ok(Some(path.clone())),
            false => Err(usage(format!(
                "--workdir: `{}` is not a directory in the tree",
                path.display()
            ))),
        };
    }
    if implied.by_flag.is_some() {
        return Ok(implied.by_flag);
    }
    match &shell.workdir {
        Some(item) if !sandbox::is_dir_inside(tree, &item.value, binds) => Err(SpecError::at(
            &item.at,
            format!(
                "the working directory `{}` is not a directory in the tree",
                item.value.display()
            ),
        )
        .help("give a directory of the tree or of one of `binds`")
        .into()),
        Some(item) => Ok(Some(item.value.clone())),
        None => Ok(implied.by_table),
    }
}

/// A working directory: `/`, or a path inside by the spec's rules.
fn inside_dir(text: &str) -> Result<PathBuf, spec::PathRule> {
    if Path::new(text).components().all(|c| c == std::path::Component::RootDir) && !text.is_empty()
    {
        return Ok(PathBuf::from("/"));
    }
    spec::root_path_rule(text, "a working directory")
}

/// The ids inside and the home directory: `--user`, else the table's user,
/// else the caller's own ids.
fn user(spec: &Spec, flag: Option<&UserSpec>) -> Result<(Ids, PathBuf)> {
    let asked = flag.or(spec.shell.user.as_ref().map(|item| &item.value)).cloned();
    let caller =
        Ids { uid: rustix::process::geteuid().as_raw(), gid: rustix::process::getegid().as_raw() };
    let ids = match asked {
        None => caller,
        Some(UserSpec::Name(name)) => match accounts::by_name(spec, &name) {
            Some(found) => Ids { uid: found.uid, gid: found.gid },
            None => {
                return Err(usage(format!(
                    "--user `{name}` is not a user of the spec; the users are: {}",
                    accounts::names(spec).join(", ")
                )));
            }
        },
        Some(UserSpec::Ids { uid, gid }) => {
            Ids { uid, gid: gid.unwrap_or_else(|| accounts::gid_of_uid(spec, uid)) }
        }
    };
    // A uid of no account gets `/tmp`, writable and its own in the
    // namespace, rather than `/`, where nothing can be written.
    let home = accounts::by_uid(spec, ids.uid).map_or_else(|| PathBuf::from("/tmp"), |a| a.home);
    Ok((ids, home))
}

/// `HOME` (the user's), `PATH` and `TERM`, then the table's `env` and
/// `env_pass`, then `--env-pass` and `--env`, each replacing a variable of
/// the same name; sorted by name.
fn environment(
    shell: &spec::Shell,
    request: &Request,
    home: &Path,
    term: &str,
) -> Result<Vec<(String, String)>> {
    let mut env: BTreeMap<String, String> =
        crate::run::smoke::environment(Some(term)).into_iter().collect();
    env.insert("HOME".into(), home.display().to_string());
    for (name, item) in &shell.env {
        env.insert(name.clone(), item.value.clone());
    }
    let passed = shell.env_pass.iter().map(|i| &i.value).chain(&request.env_pass);
    for name in passed {
        if !spec::valid_variable_name(name) {
            return Err(usage(format!("--env-pass `{name}`: not a variable name")));
        }
        match std::env::var(name) {
            Ok(value) => {
                env.insert(name.clone(), value);
            }
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(usage(format!("--env-pass `{name}`: its value is not UTF-8")));
            }
        }
    }
    for (name, value) in &request.env {
        env.insert(name.clone(), value.clone());
    }
    Ok(env.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(binds: &[&str], env: &[&str], user: Option<&str>) -> Flags {
        Flags {
            binds: binds.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            user: user.map(str::to_string),
            ..Flags::default()
        }
    }

    #[test]
    fn flags_are_parsed_once_into_typed_values() {
        let request =
            flags(&["/etc:/host-etc:ro"], &["A=b=c", "EMPTY="], Some("1000:100")).parse().unwrap();
        let bind = &request.binds[0];
        assert_eq!(bind.text, "/etc:/host-etc:ro");
        assert_eq!(bind.bind.source, Path::new("/etc"));
        assert_eq!(bind.bind.dest.as_deref(), Some(Path::new("/host-etc")));
        assert!(bind.bind.read_only);
        let env: Vec<(&str, &str)> =
            request.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("A", "b=c"), ("EMPTY", "")]);
        assert_eq!(request.user, Some(UserSpec::Ids { uid: 1000, gid: Some(100) }));
    }

    #[test]
    fn a_bad_flag_is_a_usage_error_naming_it() {
        let cases: [(Flags, &str); 5] = [
            (
                flags(&["/etc:../x"], &[], None),
                "--bind `/etc:../x`: the path inside must be absolute, got `../x` in `/etc:../x`",
            ),
            (flags(&[], &["NOEQUALS"], None), "--env `NOEQUALS`: write KEY=VALUE"),
            (
                flags(&[], &[], Some("a:b:c")),
                "--user `a:b:c`: give a name of the spec's [[users]], `root`, a uid, or uid:gid",
            ),
            (
                Flags { workdir: Some("src".into()), ..Flags::default() },
                "--workdir: a working directory must be an absolute path",
            ),
            (
                Flags { env_pass: vec!["A=B".into()], ..Flags::default() },
                "--env-pass `A=B`: not a variable name",
            ),
        ];
        for (flags, message) in cases {
            let err = flags.parse().unwrap_err();
            assert!(err.is::<UsageError>(), "{err:#}");
            assert!(err.to_string().starts_with(message), "{err:#}");
        }
    }
}
