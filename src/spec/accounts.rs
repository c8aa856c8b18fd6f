//! The accounts a tree has by its spec: `root` (unless `[[users]]` lists it) and `[[users]]`, looked up by name or uid, one rule for `[image] user`, `shell --user` and `run --user`.

use std::path::PathBuf;

use super::Spec;

/// A line of the tree's `/etc/passwd`, as far as choosing who runs a
/// command needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// `root` first (always there, unless `[[users]]` lists it), then
/// `[[users]]` in the spec's order.
pub fn all(spec: &Spec) -> Vec<Account> {
    let mut accounts: Vec<Account> = spec
        .users
        .iter()
        .map(|u| Account {
            name: u.value.name.clone(),
            uid: u.value.uid,
            gid: u.value.gid,
            home: u.value.home.clone(),
        })
        .collect();
    if !accounts.iter().any(|a| a.name == "root") {
        let root = Account { name: "root".into(), uid: 0, gid: 0, home: PathBuf::from("/root") };
        accounts.insert(0, root);
    }
    accounts
}

/// The account called `name`.
pub fn by_name(spec: &Spec, name: &str) -> Option<Account> {
    all(spec).into_iter().find(|a| a.name == name)
}

/// The account with uid `uid`: the first one listed, as `getpwuid` finds it.
pub fn by_uid(spec: &Spec, uid: u32) -> Option<Account> {
    all(spec).into_iter().find(|a| a.uid == uid)
}

/// The gid a process running as `uid` gets when none is asked for: its
/// account's, else 0, as container runtimes do for a uid that
/// `/etc/passwd` does not list.
pub fn gid_of_uid(spec: &Spec, uid: u32) -> u32 {
    by_uid(spec, uid).map_or(0, |a| a.gid)
}

/// The account names, for an error that lists them.
pub fn names(spec: &Spec) -> Vec<String> {
    all(spec).into_iter().map(|a| a.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Spec {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).unwrap();
        crate::spec::load(&path).unwrap()
    }

    const TWO_USERS: &str = "name = \"a\"\n\
        [[users]]\nname = \"app\"\nuid = 1000\ngid = 1000\nhome = \"/home/app\"\n\
        [[users]]\nname = \"svc\"\nuid = 1001\ngid = 50\nhome = \"/srv\"\n";

    #[test]
    fn root_comes_first_and_users_follow_in_order() {
        let names = names(&spec(TWO_USERS));
        assert_eq!(names, ["root", "app", "svc"]);
    }

    #[test]
    fn a_uid_without_an_account_gets_gid_0_and_a_listed_one_its_own() {
        let spec = spec(TWO_USERS);
        assert_eq!(gid_of_uid(&spec, 1001), 50);
        assert_eq!(gid_of_uid(&spec, 4242), 0);
        assert_eq!(gid_of_uid(&spec, 0), 0);
        assert_eq!(by_name(&spec, "svc").map(|a| a.home), Some(PathBuf::from("/srv")));
        assert!(by_name(&spec, "nobody").is_none());
    }

    #[test]
    fn a_listed_root_replaces_the_implicit_one() {
        let spec = spec(
            "name = \"a\"\n[[users]]\nname = \"root\"\nuid = 0\ngid = 0\nhome = \"/home/root\"\n",
        );
        assert_eq!(all(&spec).len(), 1);
        assert_eq!(by_uid(&spec, 0).unwrap().home, PathBuf::from("/home/root"));
    }
}
