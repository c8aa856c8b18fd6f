//! Checks across the merged spec: names and ids given once, and `[smoke]` names that are commands of the spec (by their name, or their base name when that is unambiguous).

use std::path::Path;

use super::{Dir, Item, Location, Spec, SpecError};

/// Rewrites `[smoke.args]` keys and `skip` names to the command names they
/// stand for: a typo would otherwise silently test something else.
pub(super) fn smoke_names(spec: &mut Spec) -> Result<(), SpecError> {
    let names: Vec<String> = spec.commands.iter().map(|c| c.value.clone()).collect();
    let args = std::mem::take(&mut spec.smoke.args);
    for (name, item) in args {
        let command = command_named(&names, &name, &item.at, "[smoke.args] names")?;
        spec.smoke.args.insert(command, item);
    }
    for skipped in &mut spec.smoke.skip {
        skipped.value = command_named(&names, &skipped.value, &skipped.at, "[smoke] skip names")?;
    }
    Ok(())
}

/// The command `name` stands for: itself, or the one command whose base
/// name it is.
fn command_named(
    names: &[String],
    name: &str,
    at: &Location,
    what: &str,
) -> Result<String, SpecError> {
    if names.iter().any(|n| n == name) {
        return Ok(name.to_string());
    }
    let by_base: Vec<&String> = names
        .iter()
        .filter(|n| Path::new(n.as_str()).file_name().is_some_and(|b| b == name))
        .collect();
    match by_base.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            Err(SpecError::at(at, format!("{what} `{name}`, which is not a command of this spec"))
                .help(format!("the commands are: {}", names.join(", "))))
        }
        many => {
            let listed: Vec<&str> = many.iter().map(|n| n.as_str()).collect();
            Err(SpecError::at(
                at,
                format!("{what} `{name}`, which could be any of {}", listed.join(", ")),
            )
            .help("write the command exactly as `commands` gives it"))
        }
    }
}

/// Users, groups and directories may each be given once.
pub(super) fn unique(spec: &Spec) -> Result<(), SpecError> {
    unique_users(spec)?;
    unique_groups(spec)?;
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

/// The error for an entry that repeats an earlier one.
fn twice(at: &Location, what: String, first: &Location) -> SpecError {
    SpecError::at(at, what).help(format!("the first one is at {first}; keep one of them"))
}

/// Each user name and uid once; `root` is uid 0 and gid 0, and only root.
fn unique_users(spec: &Spec) -> Result<(), SpecError> {
    for (i, user) in spec.users.iter().enumerate() {
        let u = &user.value;
        if let Some(first) = spec.users[..i].iter().find(|o| o.value.name == u.name) {
            let what = format!("user name `{}` is given twice", u.name);
            return Err(twice(&user.at, what, &first.at));
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
    Ok(())
}

/// Each group name and gid once; gid 0 is `root`, and only root.
fn unique_groups(spec: &Spec) -> Result<(), SpecError> {
    for (i, group) in spec.groups.iter().enumerate() {
        let g = &group.value;
        if let Some(first) = spec.groups[..i].iter().find(|o| o.value.name == g.name) {
            let what = format!("group name `{}` is given twice", g.name);
            return Err(twice(&group.at, what, &first.at));
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
    Ok(())
}
