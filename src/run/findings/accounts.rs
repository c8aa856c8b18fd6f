//! Accounts a traced check looked up that the tree's `/etc/passwd` or `/etc/group` lacks, proposed as the sysroot's own lines (`[[users]]`, `[[groups]]`), never invented.
//!
//! A trace sees which files a check opened, not what it read in them, so
//! an account is proposed where there is evidence on both sides: the check
//! opened `/etc/passwd` (or `/etc/group`), and the account's name is a
//! string of its own (`\0name\0`, as a C string literal is stored) in a
//! program the check executed, as exim4 holds `Debian-exim`. A user's
//! primary group comes with it when the check opened `/etc/group`. Only
//! accounts of the sysroot that the rest of the spec does not give are
//! proposed, and only those with an id of a package's own account (100 to
//! 65533): the static ones every system has (`list`, `lp`) have names that
//! are ordinary strings of programs too. Names built at run time or read
//! from a configuration file are not found this way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::resolve::sysroot::Sysroot;
use crate::run::trace::{Access, Trace};
use crate::spec::Spec;

/// Which file an account is a line of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccountKind {
    /// A line of `/etc/passwd`: `[[users]]`.
    User,
    /// A line of `/etc/group`: `[[groups]]`.
    Group,
}

impl AccountKind {
    /// The file in the root, and the spec table the account becomes.
    pub fn file(self) -> &'static str {
        match self {
            AccountKind::User => "/etc/passwd",
            AccountKind::Group => "/etc/group",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            AccountKind::User => "users",
            AccountKind::Group => "groups",
        }
    }
}

/// One account the tree lacks: the sysroot's line, split at `:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub kind: AccountKind,
    /// `name:x:uid:gid:gecos:home:shell` or `name:x:gid:members`.
    pub fields: Vec<String>,
    /// The names of the checks that needed it, sorted.
    pub needed_by: BTreeSet<String>,
}

impl Account {
    pub fn name(&self) -> &str {
        &self.fields[0]
    }
}

/// The accounts of a root's `/etc/passwd` or `/etc/group`, by name, each
/// split at `:`; lines that do not have the file's fields are left out.
fn read_accounts(sysroot: &Sysroot, kind: AccountKind) -> BTreeMap<String, Vec<String>> {
    let fields = match kind {
        AccountKind::User => 7,
        AccountKind::Group => 4,
    };
    let text = std::fs::read_to_string(sysroot.host(Path::new(kind.file()))).unwrap_or_default();
    text.lines()
        .map(|line| line.split(':').map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f.len() == fields && !f[0].is_empty() && f[2].parse::<u32>().is_ok())
        .filter(|f| kind == AccountKind::Group || f[3].parse::<u32>().is_ok())
        .map(|f| (f[0].clone(), f))
        .collect()
}

/// What the sysroot has and the spec gives, read once per trace.
pub(super) struct Known {
    sysroot: [BTreeMap<String, Vec<String>>; 2],
    /// Names the spec gives (root always), except through `fragment`.
    spec: [BTreeSet<String>; 2],
}

impl Known {
    /// `from_fragment`: whether an account of the spec comes only from the
    /// fragment being rewritten, which must then propose it again.
    pub(super) fn new(
        spec: &Spec,
        sysroot: &Sysroot,
        from_fragment: impl Fn(&crate::spec::Location) -> bool,
    ) -> Known {
        let root = || BTreeSet::from(["root".to_string()]);
        let mut users = root();
        users.extend(
            spec.users.iter().filter(|u| !from_fragment(&u.at)).map(|u| u.value.name.clone()),
        );
        let mut groups = root();
        groups.extend(
            spec.groups.iter().filter(|g| !from_fragment(&g.at)).map(|g| g.value.name.clone()),
        );
        Known {
            sysroot: [
                read_accounts(sysroot, AccountKind::User),
                read_accounts(sysroot, AccountKind::Group),
            ],
            spec: [users, groups],
        }
    }

    fn missing(&self, kind: AccountKind) -> impl Iterator<Item = &Vec<String>> {
        let i = kind as usize;
        self.sysroot[i].values().filter(move |f| !self.spec[i].contains(&f[0]))
    }
}

/// Adds to `found` the accounts the check named `check` needed, by its
/// `trace` on `sysroot`.
pub(super) fn find(
    found: &mut BTreeMap<(AccountKind, String), Account>,
    known: &Known,
    trace: &Trace,
    check: &str,
    sysroot: &Sysroot,
) {
    let opened = |file: &str| {
        trace.events.iter().any(|e| {
            e.exists()
                && matches!(e.access, Access::Open)
                && crate::resolve::rootpath::lexical(&e.path) == Path::new(file)
        })
    };
    let (users, groups) = (opened(AccountKind::User.file()), opened(AccountKind::Group.file()));
    if !users && !groups {
        return;
    }
    let programs: BTreeSet<&Path> = trace
        .events
        .iter()
        .filter(|e| e.exists() && e.access == Access::Exec)
        .map(|e| e.path.as_path())
        .collect();
    let contents: Vec<Vec<u8>> =
        programs.iter().filter_map(|p| std::fs::read(sysroot.host(p)).ok()).collect();
    let named = |name: &str| {
        let needle = [b"\0", name.as_bytes(), b"\0"].concat();
        contents.iter().any(|c| memchr::memmem::find(c, &needle).is_some())
    };
    let mut add = |kind: AccountKind, fields: &Vec<String>| {
        let account = found.entry((kind, fields[0].clone())).or_insert_with(|| Account {
            kind,
            fields: fields.clone(),
            needed_by: BTreeSet::new(),
        });
        account.needed_by.insert(check.to_string());
    };
    let mut primary = BTreeSet::new();
    if users {
        let wanted = |f: &Vec<String>| named(&f[0]) && dynamic(&f[2]);
        for fields in known.missing(AccountKind::User).filter(|f| wanted(f)) {
            primary.insert(fields[3].clone());
            add(AccountKind::User, fields);
        }
    }
    if groups {
        let wanted = |f: &Vec<String>| (named(&f[0]) && dynamic(&f[2])) || primary.contains(&f[2]);
        for fields in known.missing(AccountKind::Group).filter(|f| wanted(f)) {
            add(AccountKind::Group, fields);
        }
    }
}

/// Whether an id is one a package's own account gets: not one of the
/// accounts every system has from the start (ids 0 to 99, which Debian's
/// `base-passwd` allocates statically, Debian Policy 9.2.2: `list`, `lp`,
/// `mail`, whose short names are also ordinary strings of many programs),
/// nor `nobody` (65534).
fn dynamic(id: &str) -> bool {
    id.parse::<u32>().is_ok_and(|id| (100..65534).contains(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_lines_are_accounts() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nDebian-exim:x:101:103::/var/spool/exim4:/usr/sbin/nologin\nbroken:x:1\n+:::::\n",
        )
        .unwrap();
        std::fs::write(tmp.path().join("etc/group"), "Debian-exim:x:103:\nbad:x:y:\n").unwrap();
        let sysroot = Sysroot::new(tmp.path());
        let users = read_accounts(&sysroot, AccountKind::User);
        assert_eq!(users.keys().collect::<Vec<_>>(), ["Debian-exim", "root"]);
        assert_eq!(users["Debian-exim"][5], "/var/spool/exim4");
        let groups = read_accounts(&sysroot, AccountKind::Group);
        assert_eq!(groups.keys().collect::<Vec<_>>(), ["Debian-exim"]);
        assert!(dynamic("101") && dynamic("4242"));
        assert!(!dynamic("38") && !dynamic("0") && !dynamic("65534") && !dynamic("x"));
    }
}
