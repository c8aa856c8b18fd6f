//! `/etc/passwd` and `/etc/group` written from the spec's users and groups, with `root` always present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{EntryKind, Plan, Why, insert, resolve_in_plan};
use crate::spec::{Spec, SpecError};

/// Adds the account files and the users' home directories. A spec that
/// provides its own `/etc/passwd` or `/etc/group` as a file keeps it, unless
/// it also lists users or groups, which would be silently lost.
pub fn add(plan: &mut Plan, spec: &Spec) -> Result<()> {
    // A file placed there by the spec, however its `dest` is spelled.
    let provided = |path: &str| {
        spec.files.iter().find(|f| {
            resolve_in_plan(plan, &f.value.dest, false).is_ok_and(|real| real == Path::new(path))
        })
    };
    let (passwd_file, group_file) = (provided("/etc/passwd"), provided("/etc/group"));
    if let Some(file) = passwd_file
        && let Some(user) = spec.users.first()
    {
        return Err(SpecError::at(
            &user.at,
            "the spec provides /etc/passwd as a file and also lists users",
        )
        .help(format!(
            "list every account as [[users]] and drop the file at {}, or drop the users",
            file.at
        ))
        .into());
    }
    if let Some(file) = group_file
        && let Some(group) = spec.groups.first()
    {
        return Err(SpecError::at(
            &group.at,
            "the spec provides /etc/group as a file and also lists groups",
        )
        .help(format!(
            "list every group as [[groups]] and drop the file at {}, or drop the groups",
            file.at
        ))
        .into());
    }

    let shell = ["/bin/sh", "/bin/bash", "/bin/ash"]
        .into_iter()
        .find(|s| {
            resolve_in_plan(plan, Path::new(s), true)
                .is_ok_and(|real| plan.entries.contains_key(&real))
        })
        .unwrap_or("/bin/sh");
    let mut passwd: BTreeMap<u32, String> =
        BTreeMap::from([(0, format!("root:x:0:0:root:/root:{shell}"))]);
    for user in &spec.users {
        let u = &user.value;
        passwd.insert(
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

    // Groups: root, the spec's groups, and a group named after each user
    // for a primary gid that no spec group has.
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

    if passwd_file.is_none() {
        let text: String = passwd.values().map(|l| format!("{l}\n")).collect();
        insert(
            plan,
            Path::new("/etc/passwd"),
            EntryKind::Data { bytes: text.into_bytes(), mode: 0o644 },
            Why::Accounts,
        )
        .map_err(anyhow::Error::msg)?;
    }
    if group_file.is_none() {
        let text: String = groups
            .iter()
            .map(|(gid, (name, members))| format!("{name}:x:{gid}:{}\n", members.join(",")))
            .collect();
        insert(
            plan,
            Path::new("/etc/group"),
            EntryKind::Data { bytes: text.into_bytes(), mode: 0o644 },
            Why::Accounts,
        )
        .map_err(anyhow::Error::msg)?;
    }
    for user in &spec.users {
        let home: PathBuf = resolve_in_plan(plan, &user.value.home, true)
            .map_err(|e| SpecError::at(&user.at, e))?;
        // A home that is already a directory gains a reason; anything else
        // there is a conflict.
        insert(plan, &home, EntryKind::Dir { mode: 0o755 }, Why::Accounts)
            .map_err(|e| SpecError::at(&user.at, e))?;
    }
    Ok(())
}
