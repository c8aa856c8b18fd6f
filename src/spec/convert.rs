//! Each table of a spec file turned into checked items: paths inside the rootfs, modes, account names, sizes and timeouts, each error pointing at its value.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::raw::{
    RawCheck, RawDir, RawFile, RawGroup, RawSize, RawSmoke, RawSpec, RawSymlink, RawTree, RawUser,
};
use super::{
    Check, Dir, File, FileSource, Group, Here, Item, LimitOverrides, Location, Reference, Spec,
    SpecError, Symlink, Tree, TreeSource, User,
};

/// Merges one file's tables into `spec` (its includes are already merged);
/// returns its `name`.
pub(super) fn merge(
    spec: &mut Spec,
    raw: RawSpec,
    here: &Here,
) -> Result<Option<String>, SpecError> {
    let command_example = "a name to look up on PATH, such as \"bash\"";
    merge_names(&mut spec.commands, raw.commands, here, "command", command_example)?;
    let library_example = "a soname, such as \"libnss_files.so.2\"";
    merge_names(&mut spec.libraries, raw.libraries, here, "library", library_example)?;
    for d in raw.dirs {
        spec.dirs.push(dir(d, here)?);
    }
    for f in raw.files {
        spec.files.push(file(f, here)?);
    }
    for s in raw.symlinks {
        spec.symlinks.push(symlink(s.into_inner(), here)?);
    }
    for u in raw.users {
        spec.users.push(user(u, here)?);
    }
    for g in raw.groups {
        spec.groups.push(group(g, here)?);
    }
    for t in raw.trees {
        spec.trees.push(tree(t, here)?);
    }
    if let Some(level) = raw.dlopen {
        spec.dlopen = level.get_ref().parse().map_err(|_| {
            SpecError::at(
                &here.at(level.span()),
                format!("invalid dlopen level `{}`", level.get_ref()),
            )
            .help("use \"required\", \"recommended\", \"suggested\" or \"none\"")
        })?;
    }
    if let Some(cpu) = raw.cpu {
        let at = here.at(cpu.span());
        let value = crate::resolve::elf::IsaLevel::parse(cpu.get_ref()).ok_or_else(|| {
            SpecError::at(&at, format!("invalid cpu level `{}`", cpu.get_ref()))
                .help("use \"x86-64-v1\", \"x86-64-v2\", \"x86-64-v3\" or \"x86-64-v4\"")
        })?;
        spec.cpu = Some(Item { value, at });
    }
    if let Some(keep) = raw.keep_setuid {
        spec.keep_setuid |= keep;
    }
    if let Some(raw_smoke) = raw.smoke {
        smoke(spec, raw_smoke, here)?;
    }
    super::image::merge(&mut spec.image, raw.image, &|span| here.at(span))?;
    if let Some(raw_shell) = raw.shell {
        super::shell::merge(&mut spec.shell, raw_shell, here)?;
    }
    if let Some(raw_sysroot) = raw.sysroot {
        super::sysroot::merge(&mut spec.debian, raw_sysroot, here)?;
    }
    super::sysroot::merge_provided(&mut spec.debian_packages, raw.debian_packages, here)?;
    raw.name.map(|name| spec_name(name, here)).transpose()
}

/// Adds `commands` or `libraries` entries: a name, or an absolute path
/// inside the rootfs; the first of duplicates is kept.
fn merge_names(
    items: &mut Vec<Item<String>>,
    raw: Vec<Spanned<String>>,
    here: &Here,
    what: &str,
    example: &str,
) -> Result<(), SpecError> {
    for name in raw {
        let location = here.at(name.span());
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

fn dir(raw: Spanned<RawDir>, here: &Here) -> Result<Item<Dir>, SpecError> {
    let location = here.at(raw.span());
    let (path, mode) = match raw.into_inner() {
        RawDir::Path(p) => (p, None),
        RawDir::Table(t) => (t.path, t.mode),
    };
    let path = root_path(&path, &location, "a directory")?;
    let mode = mode.map(|m| parse_mode(&m, &location)).transpose()?;
    Ok(Item { value: Dir { path, mode }, at: location })
}

fn file(raw: Spanned<RawFile>, here: &Here) -> Result<Item<File>, SpecError> {
    let location = here.at(raw.span());
    let f = raw.into_inner();
    let mode = f.mode.as_ref().map(|m| parse_mode(m.get_ref(), &here.at(m.span()))).transpose()?;
    let src_at = f.src.as_ref().map(|src| here.at(src.span()));
    let (source, default_dest) = match (f.src, f.content) {
        (Some(src), None) => {
            let raw_src = PathBuf::from(src.get_ref());
            if raw_src.is_absolute() {
                (FileSource::System(raw_src.clone()), Some(raw_src))
            } else {
                (FileSource::Host(here.dir.join(&raw_src)), None)
            }
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
            let dest_at = here.at(dest.span());
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
    Ok(Item { value: File { source, dest, mode, src_at }, at: location })
}

fn symlink(s: RawSymlink, here: &Here) -> Result<Item<Symlink>, SpecError> {
    let location = here.at(s.path.span());
    let path = root_path(s.path.get_ref(), &location, "a symlink path")?;
    if s.target.get_ref().is_empty() {
        return Err(SpecError::at(&here.at(s.target.span()), "empty symlink target"));
    }
    Ok(Item { value: Symlink { path, target: PathBuf::from(s.target.into_inner()) }, at: location })
}

fn tree(raw: Spanned<RawTree>, here: &Here) -> Result<Item<Tree>, SpecError> {
    let location = here.at(raw.span());
    let t = raw.into_inner();
    let src_at = here.at(t.src.span());
    let src = PathBuf::from(t.src.get_ref());
    if t.src.get_ref().is_empty() {
        return Err(SpecError::at(&src_at, "empty tree `src`")
            .help("give a directory: absolute for one of the sysroot, or relative to this spec"));
    }
    let source = if src.is_absolute() {
        TreeSource::Sysroot(root_path(t.src.get_ref(), &src_at, "a tree's `src`")?)
    } else {
        TreeSource::Host(here.dir.join(&src))
    };
    let dest = match (&t.dest, &source) {
        (Some(dest), _) => root_path(dest.get_ref(), &here.at(dest.span()), "a tree's `dest`")?,
        (None, TreeSource::Sysroot(path)) => path.clone(),
        (None, TreeSource::Host(_)) => {
            return Err(SpecError::at(&location, "missing key `dest`")
                .help("`dest` may be left out only when `src` is an absolute path"));
        }
    };
    let mut exclude = Vec::new();
    for pattern in &t.exclude {
        let compiled = glob::Pattern::new(pattern.get_ref()).map_err(|e| {
            SpecError::at(
                &here.at(pattern.span()),
                format!("invalid glob `{}`: {}", pattern.get_ref(), e.msg),
            )
            .help(
                "globs match paths relative to the tree, such as \"**/__pycache__\" or \"test/**\"",
            )
        })?;
        exclude.push(compiled);
    }
    Ok(Item { value: Tree { source, dest, exclude, optional: t.optional, src_at }, at: location })
}

fn user(raw: Spanned<RawUser>, here: &Here) -> Result<Item<User>, SpecError> {
    let location = here.at(raw.span());
    let u = raw.into_inner();
    let name = account_name(&u.name, &here.at(u.name.span()))?;
    let home = match &u.home {
        Some(h) => root_path(h.get_ref(), &here.at(h.span()), "a home directory")?,
        None if u.uid == 0 => PathBuf::from("/root"),
        None => PathBuf::from("/home").join(&name),
    };
    let shell = match &u.shell {
        Some(s) => root_path(s.get_ref(), &here.at(s.span()), "a shell")?,
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
    Ok(Item { value: User { name, uid: u.uid, gid: u.gid, home, shell, gecos }, at: location })
}

fn group(raw: Spanned<RawGroup>, here: &Here) -> Result<Item<Group>, SpecError> {
    let location = here.at(raw.span());
    let g = raw.into_inner();
    let name = account_name(&g.name, &here.at(g.name.span()))?;
    let mut members = Vec::new();
    for member in &g.members {
        if !valid_account_name(member.get_ref()) {
            return Err(SpecError::at(&here.at(member.span()), format!("invalid group member `{}`", member.get_ref()))
                .help("members are user names: lowercase letters, digits, `_` or `-`, starting with a letter or `_`"));
        }
        members.push(member.get_ref().clone());
    }
    Ok(Item { value: Group { name, gid: g.gid, members }, at: location })
}

/// `[smoke]`: scalar keys override what an included file set; `args`,
/// `skip` and `checks` add up.
fn smoke(spec: &mut Spec, raw: RawSmoke, here: &Here) -> Result<(), SpecError> {
    let smoke = &mut spec.smoke;
    if let Some(timeout) = raw.timeout {
        smoke.timeout = positive_seconds(&timeout, &here.at(timeout.span()))?;
    }
    if let Some(reference) = raw.reference {
        smoke.reference = match reference.get_ref().as_str() {
            "sysroot" => Reference::Sysroot,
            "none" => Reference::None,
            other => {
                return Err(SpecError::at(&here.at(reference.span()), format!("invalid reference `{other}`"))
                    .help("use \"sysroot\" (judge probes against the sysroot) or \"none\" (by their exit status)"));
            }
        };
    }
    let limits = limits(raw.pids, raw.memory, raw.tmp_size, here)?;
    smoke.limits = limits.apply(smoke.limits);
    for (name, args) in raw.args {
        let location = here.at(args.span());
        smoke.args.insert(name, Item { value: args.into_inner(), at: location });
    }
    for name in raw.skip {
        let location = here.at(name.span());
        smoke.skip.push(Item { value: name.into_inner(), at: location });
    }
    for raw_check in raw.checks {
        smoke.checks.push(check(raw_check, here)?);
    }
    for file in raw.structure_tests {
        let at = here.at(file.span());
        let path = here.dir.join(file.get_ref());
        if !path.is_file() {
            return Err(SpecError::at(
                &at,
                format!("cannot read structure test file `{}`", path.display()),
            )
            .help("give a container-structure-test YAML file, relative to this spec's folder"));
        }
        let tests = super::structure::load(&path)?;
        smoke.structure_tests.push(Item { value: std::sync::Arc::new(tests), at });
    }
    for cpu in raw.cpus {
        let at = here.at(cpu.span());
        let value = crate::resolve::elf::IsaLevel::parse(cpu.get_ref()).ok_or_else(|| {
            SpecError::at(&at, format!("invalid cpu level `{}`", cpu.get_ref()))
                .help("use \"x86-64-v1\", \"x86-64-v2\" or \"x86-64-v3\"")
        })?;
        if !smoke.cpus.iter().any(|c| c.value == value) {
            smoke.cpus.push(Item { value, at });
        }
    }
    for kernel in raw.kernels {
        let at = here.at(kernel.span());
        let value = super::KernelSource::parse(kernel.get_ref(), &here.dir)
            .map_err(|why| SpecError::at(&at, why.to_string()).help(super::KERNEL_HELP))?;
        smoke.kernels.push(Item { value, at });
    }
    Ok(())
}

fn check(raw: Spanned<RawCheck>, here: &Here) -> Result<Item<Check>, SpecError> {
    let location = here.at(raw.span());
    let check = raw.into_inner();
    if check.run.get_ref().is_empty() {
        return Err(SpecError::at(&here.at(check.run.span()), "`run` is empty")
            .help("give the command and its arguments"));
    }
    let timeout =
        check.timeout.as_ref().map(|t| positive_seconds(t, &here.at(t.span()))).transpose()?;
    let limits = limits(check.pids, check.memory, check.tmp_size, here)?;
    let binds = super::shell::binds(check.binds, here)?;
    let network = check.network.as_ref().map(|n| super::shell::network_value(n, here));
    let network = network.transpose()?.unwrap_or_default();
    let workdir = check.workdir.map(|w| super::shell::workdir_value(w, here)).transpose()?;
    let mut env = BTreeMap::new();
    for (name, value) in check.env {
        let value = super::shell::env_value(&name, value, here)?;
        env.insert(name, value.value);
    }
    if check.same_as_host
        && (!binds.is_empty() || network != crate::vocab::Network::None || workdir.is_some())
    {
        return Err(SpecError::at(
            &location,
            "a check with `binds`, `network` or `workdir` cannot be `same_as_host`",
        )
        .help("the sysroot's run has none of them; check the output with `contains` instead"));
    }
    let value = Check {
        run: check.run.into_inner(),
        exit: check.exit,
        contains: check.contains,
        same_as_host: check.same_as_host,
        timeout,
        limits,
        binds,
        network,
        workdir,
        env,
    };
    Ok(Item { value, at: location })
}

/// `pids`, `memory` and `tmp_size`, as given.
fn limits(
    pids: Option<Spanned<i64>>,
    memory: Option<Spanned<RawSize>>,
    tmp_size: Option<Spanned<RawSize>>,
    here: &Here,
) -> Result<LimitOverrides, SpecError> {
    let pids = pids
        .map(|p| match *p.get_ref() {
            n @ 1..=4_194_304 => Ok(n as u64),
            n => Err(SpecError::at(&here.at(p.span()), format!("invalid `pids` {n}"))
                .help("give the most processes a check may run at once: from 1 to 4194304")),
        })
        .transpose()?;
    let size = |raw: Option<Spanned<RawSize>>, key: &str, least: u64| {
        raw.map(|s| parse_size(s.get_ref(), &here.at(s.span()), key, least)).transpose()
    };
    Ok(LimitOverrides {
        pids,
        memory: size(memory, "memory", 1 << 20)?,
        tmp_size: size(tmp_size, "tmp_size", 4096)?,
    })
}

/// Bytes, from a number or a string with a binary `K`, `M` or `G` suffix.
pub(super) fn parse_size(
    raw: &RawSize,
    at: &Location,
    key: &str,
    least: u64,
) -> Result<u64, SpecError> {
    let bytes = match raw {
        RawSize::Bytes(n) => u64::try_from(*n).ok(),
        RawSize::Text(text) => size_bytes(text),
    };
    let shown = match raw {
        RawSize::Bytes(n) => n.to_string(),
        RawSize::Text(t) => format!("\"{t}\""),
    };
    match bytes {
        Some(n) if n >= least => Ok(n),
        _ => Err(SpecError::at(at, format!("invalid `{key}` {shown}")).help(size_help(least))),
    }
}

/// Bytes from a size as the spec and the flags write it: a number, or one
/// with a binary `K`, `M` or `G` suffix; `None` when it is not one.
pub(super) fn size_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        _ => (text, 0),
    };
    digits.trim().parse::<u64>().ok().and_then(|n| n.checked_mul(1 << shift))
}

/// What a size must look like, for a spec error or a flag's.
pub(super) fn size_help(least: u64) -> String {
    format!("give a number of bytes or a size such as \"256M\" or \"2G\", at least {least} bytes")
}

fn spec_name(name: Spanned<String>, here: &Here) -> Result<String, SpecError> {
    let location = here.at(name.span());
    let value = name.into_inner();
    // The name is also the hostname inside smoke tests: at most 64 bytes.
    let valid = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('.')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(SpecError::at(&location, format!("invalid name `{value}`"))
            .help("use at most 64 letters, digits, `-`, `_` and `.`, not starting with `.`: it names target/rootfs/<name>/"));
    }
    Ok(value)
}

/// Checks a path meant for the inside of the rootfs: absolute, no `..`, not
/// `/` itself. Returns it normalised (no `.`, no trailing slash).
pub(super) fn root_path(text: &str, at: &Location, what: &str) -> Result<PathBuf, SpecError> {
    root_path_rule(text, what).map_err(|rule| SpecError::at(at, rule.message).help(rule.help))
}

/// Why a path cannot be a path inside the rootfs, and the fix: the rule
/// spec paths follow, for values that are not in a spec file (flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRule {
    pub message: String,
    pub help: String,
}

/// The rule of spec paths inside the rootfs (absolute, no `..`, not `/`
/// itself), without a place in a file; returns the path normalised.
pub fn root_path_rule(text: &str, what: &str) -> Result<PathBuf, PathRule> {
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err(PathRule {
            message: format!("{what} must be an absolute path inside the rootfs, got `{text}`"),
            help: format!(
                "write it from the rootfs root, like `/{}`",
                text.trim_start_matches("./")
            ),
        });
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(PathRule {
            message: format!("{what} must not contain `..`, got `{text}`"),
            help: "write the path without `..`; paths are resolved inside the rootfs and may not climb out".into(),
        });
    }
    let normal: PathBuf = path.components().collect();
    if normal == Path::new("/") {
        return Err(PathRule {
            message: format!("{what} cannot be `/` itself"),
            help: "name a path below `/`".into(),
        });
    }
    Ok(normal)
}

fn parse_mode(text: &str, at: &Location) -> Result<u32, SpecError> {
    match text.parse::<crate::vocab::Mode>() {
        Ok(mode) => Ok(mode.bits()),
        Err(bad) => Err(SpecError::at(at, bad.to_string())
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

pub(super) fn valid_account_name(name: &str) -> bool {
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
