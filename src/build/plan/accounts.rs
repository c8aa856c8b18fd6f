//! `/etc/passwd` and `/etc/group` written from the spec's users and groups, with `root` always present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{EntryKind, Plan, Why, insert, resolve_in_plan};
use crate::spec::{File, Item, Spec, SpecError};

/// Adds the account files and the users' home directories. A spec that
/// provides its own `/etc/passwd` or `/etc/group` as a file keeps it, unless
/// it also lists users or groups, which would be silently lost.
pub fn add(plan: &mut Plan, spec: &Spec) -> Result<()> {
    let passwd_file = provided(plan, spec, "/etc/passwd");
    let group_file = provided(plan, spec, "/etc/group");
    refuse_both(passwd_file, spec.users.first().map(|u| &u.at), "/etc/passwd", "users", "account")?;
    refuse_both(group_file, spec.groups.first().map(|g| &g.at), "/etc/group", "groups", "group")?;
    if passwd_file.is_none() {
        write(plan, "/etc/passwd", passwd(plan, spec))?;
    }
    if group_file.is_none() {
        write(plan, "/etc/group", group(spec)?)?;
    }
    add_homes(plan, spec)
}

/// A file placed at `path` by the spec, however its `dest` is spelled.
fn provided<'a>(plan: &Plan, spec: &'a Spec, path: &str) -> Option<&'a Item<File>> {
    spec.files.iter().find(|f| {
        resolve_in_plan(plan, &f.value.dest, false).is_ok_and(|real| real == Path::new(path))
    })
}

/// A provided account file and a list of accounts cannot go together: one
/// of them would be silently lost.
fn refuse_both(
    file: Option<&Item<File>>,
    first: Option<&crate::spec::Location>,
    path: &str,
    key: &str,
    what: &str,
) -> Result<()> {
    let (Some(file), Some(first)) = (file, first) else { return Ok(()) };
    Err(SpecError::at(first, format!("the spec provides {path} as a file and also lists {key}"))
        .help(format!(
            "list every {what} as [[{key}]] and drop the file at {}, or drop the {key}",
            file.at
        ))
        .into())
}

/// `/etc/passwd`: root, then the spec's users, by uid.
fn passwd(plan: &Plan, spec: &Spec) -> String {
    let shell = ["/bin/sh", "/bin/bash", "/bin/ash"]
        .into_iter()
        .find(|s| {
            resolve_in_plan(plan, Path::new(s), true)
                .is_ok_and(|real| plan.entries.contains_key(&real))
        })
        .unwrap_or("/bin/sh");
    let mut lines: BTreeMap<u32, String> =
        BTreeMap::from([(0, format!("root:x:0:0:root:/root:{shell}"))]);
    for user in &spec.users {
        let u = &user.value;
        lines.insert(
            u.uid,
            format!(
                "{}:x:{}:{}:{}:{}:{}",
                u.name,
                u.uid,
                u.gid,
                u.gecos,
                u.home.display(),
                u.shell.display()
            ),
        );
    }
    lines.values().map(|l| format!("{l}\n")).collect()
}

/// `/etc/group`: root, the spec's groups, and a group named after each
/// user for a primary gid that no spec group has.
fn group(spec: &Spec) -> Result<String> {
    let mut groups: BTreeMap<u32, (String, Vec<String>)> =
        BTreeMap::from([(0, ("root".to_string(), Vec::new()))]);
    for group in &spec.groups {
        let g = &group.value;
        groups.insert(g.gid, (g.name.clone(), g.members.clone()));
    }
    for user in &spec.users {
        let u = &user.value;
        if groups.contains_key(&u.gid) {
            continue;
        }
        if let Some(clash) = spec.groups.iter().find(|g| g.value.name == u.name) {
            return Err(SpecError::at(
                &user.at,
                format!(
                    "user `{}` has gid {} but group `{}` has gid {}",
                    u.name, u.gid, u.name, clash.value.gid
                ),
            )
            .help(format!(
                "make the gids agree, or give the user the group's gid (see {})",
                clash.at
            ))
            .into());
        }
        groups.insert(u.gid, (u.name.clone(), Vec::new()));
    }
    Ok(groups
        .iter()
        .map(|(gid, (name, members))| format!("{name}:x:{gid}:{}\n", members.join(",")))
        .collect())
}

fn write(plan: &mut Plan, path: &str, text: String) -> Result<()> {
    let kind = EntryKind::Data { bytes: text.into_bytes(), mode: 0o644 };
    insert(plan, Path::new(path), kind, Why::Accounts)?;
    Ok(())
}

/// A home that is already a directory gains a reason; anything else there
/// is a conflict.
fn add_homes(plan: &mut Plan, spec: &Spec) -> Result<()> {
    for user in &spec.users {
        let home: PathBuf = resolve_in_plan(plan, &user.value.home, true)
            .map_err(|e| SpecError::at(&user.at, e.to_string()))?;
        insert(plan, &home, EntryKind::Dir { mode: 0o755 }, Why::Accounts)
            .map_err(|e| SpecError::at(&user.at, e.to_string()))?;
    }
    Ok(())
}
