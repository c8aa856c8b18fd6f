//! A package sysroot unpacked from `.deb`s: merged-`/usr` placement, owners, modes and times kept, hostile entries refused with nothing written outside, file conflicts and `Replaces`, the dpkg database, alternatives; and a real `bash` set whose closure the resolver finds entirely inside it, and from which a tree builds and runs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rootfs::build::debian::deb;
use rootfs::build::debian::package::FetchedDeb;
use rootfs::build::debian::unpack::prepare;
use rootfs::resolve::sysroot::Sysroot;

use crate::support::deb::{DebFixture, Entry, MTIME, deb_fixture};

fn write_all(dir: &Path, fixtures: &[DebFixture]) -> Vec<FetchedDeb> {
    fixtures.iter().map(|f| f.write(&dir.join("debs"))).collect()
}

fn link(path: &Path) -> PathBuf {
    std::fs::read_link(path).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()))
}

/// The error's whole chain, for matching.
fn error_of(debs: &[FetchedDeb], cache: &Path) -> String {
    format!("{:#}", prepare(debs, cache).expect_err("the set must be refused"))
}

#[test]
fn packages_land_under_usr_with_their_modes_owners_and_times() {
    let tmp = tempfile::tempdir().unwrap();
    let tool = deb_fixture("tool")
        .entry(Entry::dir("./"))
        .entry(Entry::dir("./bin/"))
        .entry(Entry::file("./bin/tool", b"#!/bin/sh\n").mode(0o755))
        .entry(Entry::dir("./usr/"))
        .entry(Entry::dir("./usr/bin/"))
        .entry(Entry::file("./usr/bin/su-tool", b"x").mode(0o4755))
        .entry(Entry::symlink("./usr/bin/tool-alias", "/bin/tool"))
        .entry(Entry::hard_link("./usr/bin/tool-hard", "./bin/tool"))
        .entry(Entry::dir("./lib64/"))
        .entry(Entry::symlink("./lib64/ld-test.so", "/lib/x86_64-linux-gnu/ld-test.so"))
        .entry(Entry::dir("./var/"))
        .entry(Entry::dir("./var/spool/").mode(0o1777).owner(1, 2))
        // A directory link that climbs above its own directory, and a
        // directory shipped where it is: the link is kept and followed.
        .entry(Entry::dir("./usr/share/"))
        .entry(Entry::dir("./usr/share/real/"))
        .entry(Entry::dir("./usr/share/doc/"))
        .entry(Entry::symlink("./usr/share/doc/tool", "../real"))
        .entry(Entry::dir("./usr/share/doc/tool/"))
        .entry(Entry::file("./usr/share/doc/tool/copyright", b"c"));
    let debs = write_all(tmp.path(), &[tool]);
    let cache = tmp.path().join("cache");
    let unpacked = prepare(&debs, &cache).unwrap();
    let root = &unpacked.dir;
    assert!(unpacked.unpacked && root.starts_with(&cache));
    assert!(unpacked.key.starts_with("deb-"), "{}", unpacked.key);
    for dir in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        assert_eq!(link(&root.join(dir)), Path::new("usr").join(dir), "the `{dir}` link");
        assert!(root.join("usr").join(dir).is_dir());
    }
    let tool = std::fs::symlink_metadata(root.join("usr/bin/tool")).unwrap();
    assert!(tool.is_file());
    assert_eq!(tool.permissions().mode() & 0o7777, 0o755);
    assert_eq!(tool.mtime(), MTIME as i64);
    let su = std::fs::metadata(root.join("usr/bin/su-tool")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755, "setuid is kept");
    assert_eq!(link(&root.join("usr/bin/tool-alias")), Path::new("/bin/tool"));
    assert_eq!(std::fs::metadata(root.join("usr/bin/tool-hard")).unwrap().ino(), tool.ino());
    assert_eq!(
        link(&root.join("usr/lib64/ld-test.so")),
        Path::new("/lib/x86_64-linux-gnu/ld-test.so")
    );
    assert_eq!(link(&root.join("usr/share/doc/tool")), Path::new("../real"));
    assert!(root.join("usr/share/real/copyright").is_file());
    let spool = std::fs::metadata(root.join("var/spool")).unwrap();
    assert_eq!(spool.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(spool.mtime(), MTIME as i64);
    if rustix::process::geteuid().is_root() {
        assert_eq!((spool.uid(), spool.gid()), (1, 2), "owners are the archive's");
    } else {
        assert_eq!(unpacked.notes.len(), 1, "{:?}", unpacked.notes);
    }

    let started = Instant::now();
    let again = prepare(&debs, &cache).unwrap();
    assert_eq!((again.unpacked, &again.dir), (false, root), "an unchanged set is reused");
    eprintln!("reused in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
}

#[test]
fn a_package_may_ship_the_merged_usr_links_but_not_replace_them() {
    let tmp = tempfile::tempdir().unwrap();
    // As trixie's base-files ships them, beside a package writing through
    // them at the same time.
    let mut links = deb_fixture("base-files").entry(Entry::dir("./"));
    for dir in ["bin", "sbin", "lib", "lib64"] {
        links = links.entry(Entry::symlink(&format!("./{dir}"), &format!("usr/{dir}")));
    }
    let mut tool = deb_fixture("tool").entry(Entry::dir("./")).entry(Entry::dir("./bin/"));
    for i in 0..200 {
        tool = tool.entry(Entry::file(&format!("./bin/t{i}"), b"x"));
    }
    let debs = write_all(tmp.path(), &[links, tool]);
    let unpacked = prepare(&debs, &tmp.path().join("cache")).unwrap();
    assert_eq!(link(&unpacked.dir.join("bin")), Path::new("usr/bin"));
    assert!(unpacked.dir.join("usr/bin/t199").is_file());
    let list = std::fs::read_to_string(unpacked.dir.join("var/lib/dpkg/info/base-files.list"));
    assert!(list.unwrap().contains("/lib64\n"));

    for (name, entry) in
        [("as-file", Entry::file("./lib64", b"x")), ("elsewhere", Entry::symlink("./bin", "/tmp"))]
    {
        let debs = write_all(tmp.path(), &[deb_fixture(name).entry(entry)]);
        let error = error_of(&debs, &tmp.path().join(name));
        assert!(error.contains("is a merged-/usr link"), "{name}: {error}");
    }
}

#[test]
fn hostile_entries_are_refused_by_name_and_nothing_is_written_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let out = outside.to_str().unwrap();
    let passwd = std::fs::metadata("/etc/passwd").unwrap();
    let climbs = "../".repeat(8);
    let cases: Vec<(&str, Vec<Entry>, String)> = vec![
        (
            "dotdot",
            vec![Entry::file(&format!("./{climbs}{}/dotdot", &out[1..]), b"x")],
            "leads outside the root".to_string(),
        ),
        (
            "absolute",
            vec![Entry::file(&format!("{out}/absolute"), b"x")],
            format!("`{out}/absolute` is an absolute path"),
        ),
        (
            "through-absolute-link",
            vec![Entry::symlink("./evil", out), Entry::file("./evil/through", b"x")],
            "`evil` leads through a symlink out of the root".to_string(),
        ),
        (
            "through-climbing-link",
            vec![
                Entry::symlink("./evil", &format!("{climbs}{}", &out[1..])),
                Entry::file("./evil/climbing", b"x"),
            ],
            "`evil` leads through a symlink out of the root".to_string(),
        ),
        (
            "hard-link-to-host",
            vec![Entry::hard_link("./passwd", "/etc/passwd")],
            "a hard link to `/etc/passwd`".to_string(),
        ),
        (
            "hard-link-to-unshipped",
            vec![Entry::hard_link("./passwd", "./etc/passwd")],
            "a hard link to `etc/passwd`, which this package does not ship before it".to_string(),
        ),
    ];
    for (name, entries, expected) in cases {
        let mut fixture = deb_fixture(name);
        fixture.entries = entries;
        let shown = fixture.entries.last().unwrap().path.clone();
        let debs = write_all(tmp.path(), &[fixture]);
        let cache = tmp.path().join(format!("cache-{name}"));
        let error = error_of(&debs, &cache);
        assert!(error.contains(&format!("unpacking `{shown}`")), "{name}: {error}");
        assert!(error.contains(&expected), "{name}: {error}");
        assert!(error.contains(&format!("unpacking `{name}` from `")), "{name}: {error}");
        let left: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
        assert!(left.is_empty(), "{name}: nothing is kept in the cache: {left:?}");
    }
    let written: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(written.is_empty(), "nothing is written outside: {written:?}");
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().nlink(), passwd.nlink());
}

#[test]
fn a_file_shipped_twice_is_refused_unless_one_package_replaces_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let shipping = |name: &str, path: &str| {
        deb_fixture(name)
            .entry(Entry::dir("./"))
            .entry(Entry::dir("./usr/"))
            .entry(Entry::dir("./usr/bin/"))
            .entry(Entry::file(path, name.as_bytes()).mode(0o755))
    };
    // `./bin/same` is `./usr/bin/same` once `/bin` links to `usr/bin`.
    let debs = write_all(
        tmp.path(),
        &[shipping("alpha", "./usr/bin/same"), shipping("beta", "./bin/same")],
    );
    let error = error_of(&debs, &tmp.path().join("cache"));
    assert!(
        error.contains(
            "`/usr/bin/same` is shipped by both `alpha` and `beta`, and neither `Replaces` the other"
        ),
        "{error}"
    );

    // Whichever package comes first in the set, the replacing one wins, and
    // dpkg's list of the replaced one no longer has the file.
    for (replacing, replaced) in [("aaa-new", "zzz-old"), ("zzz-new", "aaa-old")] {
        let debs = write_all(
            tmp.path(),
            &[
                shipping(replaced, "./usr/bin/same"),
                shipping(replacing, "./usr/bin/same")
                    .field("Replaces", &format!("{replaced} (<< 2.0)")),
            ],
        );
        let unpacked = prepare(&debs, &tmp.path().join(format!("cache-{replacing}"))).unwrap();
        let same = std::fs::read(unpacked.dir.join("usr/bin/same")).unwrap();
        assert_eq!(String::from_utf8(same).unwrap(), replacing);
        let info = unpacked.dir.join("var/lib/dpkg/info");
        let list = |name: &str| std::fs::read_to_string(info.join(format!("{name}.list"))).unwrap();
        assert!(list(replacing).contains("/usr/bin/same\n"));
        assert!(!list(replaced).contains("/usr/bin/same"), "{}", list(replaced));
    }

    // A versioned `Replaces` covers only the versions it allows: `old` 2.0
    // is not `<< 2.0`, so the file is refused, and the error says why.
    let mut newer_old = shipping("old", "./usr/bin/same");
    newer_old.version = "2.0".into();
    let new = shipping("new", "./usr/bin/same").field("Replaces", "old (<< 2.0), other");
    let debs = write_all(tmp.path(), &[newer_old, new]);
    let error = error_of(&debs, &tmp.path().join("cache-versioned"));
    assert!(
        error.contains(
            "`/usr/bin/same` is shipped by both `new` and `old`, and `new` has `Replaces: old (<< 2.0)`, which does not cover `old` 2.0"
        ),
        "{error}"
    );
}

#[test]
fn the_instances_of_a_multi_arch_same_package_share_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let instance = |arch: &str| {
        deb_fixture("libx")
            .arch(arch)
            .field("Multi-Arch", "same")
            .entry(Entry::dir("./"))
            .entry(Entry::dir("./usr/"))
            .entry(Entry::dir("./usr/share/"))
            .entry(Entry::dir("./usr/share/doc/"))
            .entry(Entry::dir("./usr/share/doc/libx/"))
            .entry(Entry::file("./usr/share/doc/libx/copyright", b"same"))
    };
    let debs = write_all(tmp.path(), &[instance("amd64"), instance("i386")]);
    let unpacked = prepare(&debs, &tmp.path().join("cache")).unwrap();
    let info = unpacked.dir.join("var/lib/dpkg/info");
    for arch in ["amd64", "i386"] {
        let list = std::fs::read_to_string(info.join(format!("libx:{arch}.list"))).unwrap();
        assert!(list.ends_with("/usr/share/doc/libx/copyright\n"), "{arch}: {list}");
    }
    // Without `Multi-Arch: same`, the two instances conflict.
    let plain = |arch: &str| deb_fixture("liby").arch(arch).entry(Entry::file("./f", b"y"));
    let error =
        error_of(&write_all(tmp.path(), &[plain("amd64"), plain("i386")]), &tmp.path().join("y"));
    assert!(error.contains("`/f` is shipped by both `liby:amd64` and `liby:i386`"), "{error}");
}

#[test]
fn the_dpkg_database_names_the_package_of_each_file() {
    let tmp = tempfile::tempdir().unwrap();
    let tool = deb_fixture("tool")
        .field("Multi-Arch", "same")
        .member("conffiles", "/etc/tool.conf\n")
        .member("md5sums", "0cc175b9c0f1b6a831c399e269772661  bin/tool\n")
        .entry(Entry::dir("./"))
        .entry(Entry::dir("./bin/"))
        .entry(Entry::file("./bin/tool", b"a").mode(0o755))
        .entry(Entry::dir("./etc/"))
        .entry(Entry::file("./etc/tool.conf", b"a"));
    let other = deb_fixture("other").arch("all").entry(Entry::dir("./"));
    let debs = write_all(tmp.path(), &[tool, other]);
    let unpacked = prepare(&debs, &tmp.path().join("cache")).unwrap();
    let sysroot = Sysroot::new(&unpacked.dir);
    let database = rootfs::build::dpkg::Database::read(&sysroot).unwrap().expect("a status file");
    let names: Vec<_> =
        database.packages.iter().map(|p| format!("{} {} {}", p.name, p.version, p.arch)).collect();
    assert_eq!(names, ["other 1.0 all", "tool 1.0 amd64"]);
    let wanted = [Path::new("/usr/bin/tool"), Path::new("/etc/tool.conf")].into();
    let owners = database.owners(&sysroot, &wanted);
    assert_eq!(owners.len(), 2, "{owners:?}");
    assert!(owners.values().all(|p| p.name == "tool"));

    let info = unpacked.dir.join("var/lib/dpkg/info");
    let list = std::fs::read_to_string(info.join("tool:amd64.list")).unwrap();
    assert_eq!(list, "/.\n/bin\n/bin/tool\n/etc\n/etc/tool.conf\n");
    assert!(info.join("tool:amd64.md5sums").is_file());
    let status = std::fs::read_to_string(unpacked.dir.join("var/lib/dpkg/status")).unwrap();
    assert!(status.starts_with("Package: other\nStatus: install ok installed\n"), "{status}");
    assert!(
        status
            .contains("Conffiles:\n /etc/tool.conf 0cc175b9c0f1b6a831c399e269772661\nDescription:"),
        "{status}"
    );
}

#[test]
fn alternatives_follow_priorities_and_other_script_work_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let editor = |name: &str, priority: u32| {
        let path = format!("/usr/bin/{name}");
        deb_fixture(name)
            .member(
                "postinst",
                &format!(
                    "#!/bin/sh\nset -e\nupdate-alternatives --install /usr/bin/editor editor {path} {priority} \\\n  --slave /usr/share/man/man1/editor.1.gz editor.1.gz /usr/share/man/man1/{name}.1.gz\nadduser --system {name}\n"
                ),
            )
            .entry(Entry::dir("./"))
            .entry(Entry::dir("./usr/"))
            .entry(Entry::dir("./usr/bin/"))
            .entry(Entry::file(&format!(".{path}"), b"x").mode(0o755))
            .entry(Entry::dir("./usr/share/"))
            .entry(Entry::dir("./usr/share/man/"))
            .entry(Entry::dir("./usr/share/man/man1/"))
            .entry(Entry::file(&format!("./usr/share/man/man1/{name}.1.gz"), b"x"))
    };
    let debs = write_all(tmp.path(), &[editor("nano", 40), editor("vim", 50), editor("ed", 45)]);
    let unpacked = prepare(&debs, &tmp.path().join("cache")).unwrap();
    let root = &unpacked.dir;
    assert_eq!(link(&root.join("etc/alternatives/editor")), Path::new("/usr/bin/vim"));
    assert_eq!(link(&root.join("usr/bin/editor")), Path::new("/etc/alternatives/editor"));
    assert_eq!(
        link(&root.join("etc/alternatives/editor.1.gz")),
        Path::new("/usr/share/man/man1/vim.1.gz")
    );
    assert_eq!(
        link(&root.join("usr/share/man/man1/editor.1.gz")),
        Path::new("/etc/alternatives/editor.1.gz")
    );
    let listed: Vec<String> = unpacked.not_reproduced.iter().map(|n| n.to_string()).collect();
    assert_eq!(listed, ["ed postinst: adduser", "nano postinst: adduser", "vim postinst: adduser"]);
    // The same list comes back from a reused folder, read from the scripts
    // kept in its dpkg database.
    let again = prepare(&debs, &tmp.path().join("cache")).unwrap();
    assert!(!again.unpacked);
    assert_eq!(again.not_reproduced, unpacked.not_reproduced);
}

#[test]
fn a_broken_deb_is_named_with_the_member_that_is_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.deb");
    let good = deb_fixture("good").entry(Entry::file("./f", &[7; 4096])).members();
    let member = |name: &str| good.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let mut truncated = member("data.tar.xz");
    truncated.truncate(truncated.len() / 2);
    type Members<'a> = Vec<(&'a str, Vec<u8>)>;
    let cases: Vec<(Members, String)> = vec![
        (
            vec![("control.tar.gz", member("control.tar.gz"))],
            "its first member is `control.tar.gz`, not `debian-binary`".to_string(),
        ),
        (
            vec![("debian-binary", b"3.0\n".to_vec())],
            "has format `3.0` in `debian-binary`: only 2.x is read".to_string(),
        ),
        (
            vec![
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", member("control.tar.gz")),
            ],
            "ends before its `data.tar` member".to_string(),
        ),
        (
            vec![
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", member("control.tar.gz")),
                ("data.tar.xz", truncated),
            ],
            "reading `data.tar.xz` of".to_string(),
        ),
    ];
    for (members, expected) in cases {
        std::fs::write(&path, crate::support::deb::ar_of(&members)).unwrap();
        let read = deb::read(&path, |_, stream| Ok(std::io::copy(stream, &mut std::io::sink())?));
        let error = format!("{:#}", read.unwrap_err());
        assert!(error.contains(&format!("`{}`", path.display())), "{error}");
        assert!(error.contains(&expected), "{error}");
    }
}

/// The `.deb`s of a small real set, downloaded by this machine's apt
/// (verified by apt against its signed indexes), as the fetcher hands
/// them on; `None`, said on stderr, when apt cannot download.
fn real_set(dir: &Path, names: &[&str]) -> Option<Vec<FetchedDeb>> {
    std::fs::create_dir_all(dir).unwrap();
    let out = duct::cmd("apt-get", ["download"].iter().chain(names))
        .dir(dir)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipped: `apt-get download` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            eprintln!("skipped: `apt-get download` cannot run: {e}");
            return None;
        }
    }
    let mut debs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let (control, ()) = deb::read(&path, |_, _| Ok(())).unwrap();
        let field = |name: &str| control.stanza.get(name).unwrap().to_string();
        debs.push(FetchedDeb {
            id: rootfs::build::debian::package::PackageId {
                name: field("Package"),
                version: field("Version"),
                architecture: field("Architecture"),
            },
            filename: path.file_name().unwrap().to_string_lossy().into_owned(),
            sha256: rootfs::vocab::Sha256::of_file(&path).unwrap(),
            path,
        });
    }
    Some(debs)
}

/// The real paths of a program's closure, the program itself included.
fn closure_of(sysroot: &Path, program: &str) -> std::collections::BTreeSet<PathBuf> {
    let options = rootfs::resolve::Options { sysroot: sysroot.to_path_buf(), ..Default::default() };
    let closure = rootfs::resolve::Resolver::new(options).unwrap().resolve(program);
    assert!(closure.error.is_none(), "{program} in `{}`: {:?}", sysroot.display(), closure.error);
    assert!(closure.missing.is_empty(), "{program}: {:?}", closure.missing);
    let mut files: std::collections::BTreeSet<PathBuf> =
        closure.files.iter().map(|f| f.located.real.clone()).collect();
    files.insert(closure.located.unwrap().real);
    files
}

#[test]
fn a_real_bash_set_unpacks_and_the_resolver_finds_bash_entirely_inside_it() {
    let tmp = tempfile::tempdir().unwrap();
    // libc-bin brings `/etc/ld.so.conf`: the resolver reads it, as the
    // sysroot has no `ld.so.cache` (ldconfig is never run); ca-certificates
    // brings what `update-ca-certificates` makes a bundle of.
    let names = ["bash", "libc6", "libtinfo6", "base-files", "libc-bin", "ca-certificates"];
    let Some(debs) = real_set(&tmp.path().join("debs"), &names) else { return };
    let cache = tmp.path().join("cache");
    let (started, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_SELF));
    let unpacked = prepare(&debs, &cache).unwrap();
    let ours = started.elapsed().as_secs_f64();
    let our_cpu = cpu_seconds(libc::RUSAGE_SELF) - cpu;
    let root = &unpacked.dir;
    assert_eq!(unpacked.architecture, "amd64");
    if crate::support::host_tool("dpkg-deb", "timing a serial `dpkg-deb -x` loop").is_some() {
        let (started, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_CHILDREN));
        let target = tmp.path().join("dpkg-deb");
        for deb in &debs {
            duct::cmd!("dpkg-deb", "-x", &deb.path, &target).run().unwrap();
        }
        let theirs = started.elapsed().as_secs_f64();
        let their_cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - cpu;
        eprintln!(
            "unpacked {} packages in {ours:.3} s, {our_cpu:.3} s of CPU (with the database and scripts); a serial `dpkg-deb -x` loop: {theirs:.3} s, {their_cpu:.3} s of CPU",
            debs.len()
        );
    }

    // bash's `./bin/bash` is at `usr/bin/bash`, reached through `/bin`.
    assert!(root.join("usr/bin/bash").is_file());
    assert_eq!(link(&root.join("bin")), Path::new("usr/bin"));
    let inside = closure_of(root, "/bin/bash");
    let host = closure_of(Path::new("/"), "/bin/bash");
    assert_eq!(inside, host, "the same files as the host's bash, at the same paths");
    for path in &inside {
        let real = std::fs::canonicalize(root.join(path.strip_prefix("/").unwrap())).unwrap();
        assert!(real.starts_with(std::fs::canonicalize(root).unwrap()), "{}", real.display());
    }
    // Every file of the closure is owned by the package that shipped it.
    let sysroot = Sysroot::new(root);
    let database = rootfs::build::dpkg::Database::read(&sysroot).unwrap().unwrap();
    let owners = database.owners(&sysroot, &inside.iter().map(PathBuf::as_path).collect());
    let owner_names: std::collections::BTreeSet<&str> =
        owners.values().map(|p| p.name.as_str()).collect();
    assert_eq!(owners.len(), inside.len(), "{owners:?}");
    assert_eq!(owner_names, ["bash", "libc6", "libtinfo6"].into());

    assert!(root.join("etc/ld.so.conf").is_file() && !root.join("etc/ld.so.cache").exists());

    // The CA bundle holds every certificate the package ships, in the order
    // update-ca-certificates writes them; on a host with the same version and
    // nothing deselected, the host's bundle starts with the same bytes.
    let bundle = std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let shipped = walk_count(&root.join("usr/share/ca-certificates"), "crt");
    assert!(shipped > 100, "{shipped} certificates");
    assert_eq!(bundle.matches("-----BEGIN CERTIFICATE-----").count(), shipped);
    let version = debs.iter().find(|d| d.id.name == "ca-certificates").unwrap().id.version.clone();
    let host = rootfs::build::dpkg::Database::read(&Sysroot::new("/")).unwrap().unwrap_or_default();
    let host_has =
        host.packages.iter().any(|p| p.name == "ca-certificates" && p.version == version);
    let host_conf = std::fs::read_to_string("/etc/ca-certificates.conf").unwrap_or_default();
    if host_has && !host_conf.lines().any(|l| l.starts_with('!')) {
        let host_bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();
        assert!(host_bundle.starts_with(&bundle), "the host's bundle starts with ours");
    }
    let pem = root.join("etc/ssl/certs/ACCVRAIZ1.pem");
    assert_eq!(link(&pem), Path::new("/usr/share/ca-certificates/mozilla/ACCVRAIZ1.crt"));
    // Each certificate is linked under its OpenSSL subject hash as
    // `openssl rehash` links it: the same names as the host's, for the
    // certificates both have.
    let hashed: Vec<(String, PathBuf)> = std::fs::read_dir(root.join("etc/ssl/certs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e.to_str().unwrap().parse::<u32>().is_ok()))
        .map(|p| (p.file_name().unwrap().to_str().unwrap().to_string(), link(&p)))
        .collect();
    assert!(hashed.len() >= shipped - 2, "{} hash links for {shipped}", hashed.len());
    if host_has && Path::new("/etc/ssl/certs").join(&hashed[0].0).is_symlink() {
        for (name, target) in &hashed {
            let host_target = std::fs::read_link(Path::new("/etc/ssl/certs").join(name));
            assert_eq!(host_target.ok().as_ref(), Some(target), "{name}");
        }
        eprintln!("{} hash links named as the host's", hashed.len());
    }

    // What the scripts do that is not reproduced is listed, not dropped.
    for item in &unpacked.not_reproduced {
        eprintln!("not reproduced: {item}");
    }
    assert!(
        unpacked.not_reproduced.iter().any(|n| n.package == "ca-certificates"),
        "{:?}",
        unpacked.not_reproduced
    );

    // A tree built from the package sysroot: its SBOM names the packages'
    // versions, read from the dpkg database the unpacker wrote.
    let spec = tmp.path().join("debbash.toml");
    std::fs::write(&spec, "name = \"debbash\"\ncommands = [\"bash\"]\n").unwrap();
    let mut options = rootfs::build::Options::new(&spec, tmp.path().join("out"));
    options.sysroot = root.clone();
    let built =
        rootfs::build::build(&options).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rootfs::build::sbom::path_for(&built.out)).unwrap())
            .unwrap();
    let listed: std::collections::BTreeMap<String, String> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            Some((p["name"].as_str()?.to_string(), p["versionInfo"].as_str()?.to_string()))
        })
        .collect();
    for name in ["bash", "libc6", "libtinfo6"] {
        let deb = debs.iter().find(|d| d.id.name == name).unwrap();
        assert_eq!(listed.get(name), Some(&deb.id.version), "{name} in the SBOM: {listed:?}");
    }

    if rustix::process::geteuid().is_root() {
        for dir in [root, &built.out] {
            let (code, out) = crate::support::in_chroot(dir, &["/bin/bash", "-c", "echo ok"], &[]);
            assert_eq!((code, out.as_str()), (0, "ok\n"), "in `{}`", dir.display());
        }
    } else {
        eprintln!("skipped: `chroot {} /bin/bash` needs root", root.display());
    }
}

/// How many files named `*.EXT` are under `dir`.
fn walk_count(dir: &Path, ext: &str) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += walk_count(&path, ext);
        } else if path.extension().is_some_and(|e| e == ext) {
            count += 1;
        }
    }
    count
}

/// User and system CPU time of this process (all its threads) or of its
/// waited-for children, in seconds: unlike wall time, not inflated by other
/// work on a shared machine.
fn cpu_seconds(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable `rusage`; getrusage(2) fills it.
    let usage = unsafe {
        assert_eq!(libc::getrusage(who, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
