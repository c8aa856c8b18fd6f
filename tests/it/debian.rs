//! The Debian package source against a small archive the tests make and serve on loopback: selection with alternatives, `Provides` and a cycle, every verification failing closed, an offline second fetch, and one small live fetch from the machine's configured mirror.

mod archive;

use std::path::{Path, PathBuf};

use rootfs::build::debian::{self, DebianRequest, Options, Wanted, package_set};

use self::archive::{Pkg, Server, archive, armored_public, sha256, signing_key};

/// The packages of the happy-path archive; `main` is the main suite and
/// `updates` an extra one.
const PACKAGES: &[Pkg] = &[
    Pkg {
        suite: "main",
        name: "app",
        version: "1.0",
        arch: "amd64",
        fields: "Pre-Depends: libc6 (>= 2.30)\nDepends: libfoo (>= 2.1), nosuch | mawk, awk, cyc-a\n",
    },
    Pkg {
        suite: "main",
        name: "libc6",
        version: "2.36-9",
        arch: "amd64",
        fields: "Multi-Arch: same\n",
    },
    Pkg {
        suite: "main",
        name: "libc6",
        version: "2.28-10",
        arch: "amd64",
        fields: "Multi-Arch: same\n",
    },
    Pkg { suite: "main", name: "libfoo", version: "2.0", arch: "amd64", fields: "" },
    Pkg { suite: "updates", name: "libfoo", version: "2.1", arch: "amd64", fields: "" },
    // `awk` is provided by both; `gawk` sorts first and has the higher
    // priority, but `mawk` is already selected for `nosuch | mawk`, and
    // apt prefers what it has.
    Pkg {
        suite: "main",
        name: "gawk",
        version: "5.2",
        arch: "amd64",
        fields: "Provides: awk\nPriority: required\n",
    },
    Pkg {
        suite: "main",
        name: "mawk",
        version: "1.3.4",
        arch: "amd64",
        fields: "Provides: awk\nMulti-Arch: foreign\n",
    },
    Pkg { suite: "main", name: "cyc-a", version: "1", arch: "all", fields: "Depends: cyc-b\n" },
    Pkg {
        suite: "main",
        name: "cyc-b",
        version: "1",
        arch: "all",
        fields: "Depends: cyc-a (>= 1)\n",
    },
    Pkg {
        suite: "main",
        name: "tool",
        version: "0.1",
        arch: "amd64",
        fields: "Depends: pyabi (>= 3.11), mawk:any\n",
    },
    // An unversioned provide never meets a versioned relation (Policy 7.5).
    Pkg { suite: "main", name: "oldpy", version: "1", arch: "amd64", fields: "Provides: pyabi\n" },
    Pkg {
        suite: "main",
        name: "pyimpl",
        version: "3.11.2",
        arch: "amd64",
        fields: "Provides: pyabi (= 3.11)\n",
    },
    Pkg {
        suite: "main",
        name: "base-files",
        version: "12",
        arch: "amd64",
        fields: "Essential: yes\n",
    },
    Pkg { suite: "main", name: "armonly", version: "1", arch: "arm64", fields: "" },
    // Conflicts and Breaks: `daemon-x` conflicts with `libssl1`, so
    // `server` gets `daemon-y`; `legacy` breaks `libssl1` and `clash` needs
    // both; `mta-a` conflicts with what it provides, so with `mta-b` too;
    // `newer`'s versioned conflict leaves `libssl1` 1 out.
    Pkg {
        suite: "main",
        name: "server",
        version: "1",
        arch: "amd64",
        fields: "Depends: libssl1, daemon-x | daemon-y\n",
    },
    Pkg { suite: "main", name: "libssl1", version: "1", arch: "amd64", fields: "" },
    Pkg {
        suite: "main",
        name: "daemon-x",
        version: "1",
        arch: "amd64",
        fields: "Conflicts: libssl1\n",
    },
    Pkg { suite: "main", name: "daemon-y", version: "1", arch: "amd64", fields: "" },
    Pkg {
        suite: "main",
        name: "clash",
        version: "1",
        arch: "amd64",
        fields: "Depends: libssl1, legacy\n",
    },
    Pkg {
        suite: "main",
        name: "legacy",
        version: "1",
        arch: "amd64",
        fields: "Breaks: libssl1 (<< 2)\n",
    },
    Pkg {
        suite: "main",
        name: "modern",
        version: "1",
        arch: "amd64",
        fields: "Depends: libssl1, newer\n",
    },
    Pkg {
        suite: "main",
        name: "newer",
        version: "1",
        arch: "amd64",
        fields: "Conflicts: libssl1 (<< 1)\n",
    },
    Pkg {
        suite: "main",
        name: "mailer",
        version: "1",
        arch: "amd64",
        fields: "Depends: mta-a, mta-b\n",
    },
    Pkg {
        suite: "main",
        name: "mta-a",
        version: "1",
        arch: "amd64",
        fields: "Provides: mail-transport\nConflicts: mail-transport\n",
    },
    Pkg {
        suite: "main",
        name: "mta-b",
        version: "1",
        arch: "amd64",
        fields: "Provides: mail-transport\n",
    },
    Pkg {
        suite: "main",
        name: "broken",
        version: "1",
        arch: "amd64",
        fields: "Depends: libfoo (>= 3) | nosuch\n",
    },
];

struct Fixture {
    server: Server,
    keyring: PathBuf,
    cache: PathBuf,
    _tmp: tempfile::TempDir,
}

fn fixture(release_extra: &str) -> Fixture {
    let key = signing_key("good");
    fixture_of(&key, archive(PACKAGES, &key, release_extra))
}

/// A fixture serving `files`, with `key`'s public half as its keyring.
fn fixture_of(key: &pgp::composed::SignedSecretKey, files: archive::Files) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(files);
    let keyring = tmp.path().join("keys/test.asc");
    std::fs::create_dir_all(keyring.parent().unwrap()).unwrap();
    std::fs::write(&keyring, armored_public(key)).unwrap();
    Fixture { server, keyring, cache: tmp.path().join("cache"), _tmp: tmp }
}

impl Fixture {
    fn request(&self, packages: &[&str]) -> DebianRequest {
        DebianRequest {
            suite: "main".into(),
            architecture: Some("amd64".into()),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            mirror: Some(self.server.url.clone()),
            keyring: Some(PathBuf::from("keys/test.asc")),
            extra_suites: vec!["updates".into()],
            ..Default::default()
        }
    }

    fn options(&self) -> Options {
        // No apt sources: the tests never depend on this machine's.
        Options {
            cache_dir: Some(self.cache.clone()),
            apt: Some(Default::default()),
            ..Default::default()
        }
    }

    /// A spec with this archive as its `[sysroot.debian]`, beside the
    /// keyring.
    fn spec(&self, packages: &[&str]) -> PathBuf {
        let path = self.base().join("spec.toml");
        let list: Vec<String> = packages.iter().map(|p| format!("\"{p}\"")).collect();
        let text = format!(
            "name = \"pkgs\"\n\n[sysroot.debian]\nsuite = \"main\"\nextra_suites = [\"updates\"]\narchitecture = \"amd64\"\nmirror = \"{}\"\nkeyring = \"keys/test.asc\"\npackages = [{}]\n",
            self.server.url,
            list.join(", ")
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `rootfs update` of `spec`.
    fn update(&self, spec: &Path, locked: bool) -> anyhow::Result<rootfs::build::lock::Update> {
        let loaded = rootfs::spec::load(spec).unwrap();
        let request = &loaded.debian.as_ref().unwrap().value;
        let lock = rootfs::build::lock::path_for(spec);
        package_set::update(request, &loaded.name, &lock, &self.options(), locked)
    }

    /// Options that read and honour the lock beside `spec`.
    fn locked_options(&self, spec: &Path, locked: bool) -> Options {
        Options { lock: Some(rootfs::build::lock::path_for(spec)), locked, ..self.options() }
    }

    fn base(&self) -> &Path {
        self.keyring.parent().unwrap().parent().unwrap()
    }

    fn fetch(
        &self,
        packages: &[&str],
    ) -> anyhow::Result<(debian::Resolution, Vec<rootfs::build::debian::package::FetchedDeb>)> {
        debian::fetch_request(&self.request(packages), self.base(), &self.options())
    }

    /// The names in the cache folder, sorted.
    fn cached(&self) -> Vec<String> {
        let dir = self.cache.join("debian/sha256");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn error_text(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

#[test]
fn selects_the_closure_with_alternatives_provides_versions_and_a_cycle_then_fetches_verified_debs()
{
    let f = fixture("");
    let (resolution, debs) = f.fetch(&["app", "tool"]).unwrap();
    let names: Vec<String> = resolution
        .packages
        .iter()
        .map(|w| format!("{} {} {}", w.id.name, w.id.version, w.id.architecture))
        .collect();
    assert_eq!(
        names,
        [
            "app 1.0 amd64",
            "cyc-a 1 all",
            "cyc-b 1 all",
            "libc6 2.36-9 amd64",
            "libfoo 2.1 amd64",
            "mawk 1.3.4 amd64",
            "pyimpl 3.11.2 amd64",
            "tool 0.1 amd64",
        ]
    );
    // The suites and their InRelease digests, as a lock records them.
    let suites: Vec<&str> = resolution.suites.iter().map(|s| s.suite.as_str()).collect();
    assert_eq!(suites, ["main", "updates"]);
    assert_eq!(
        resolution.suites[0].inrelease_sha256.to_string(),
        sha256(&f.server.get("dists/main/InRelease"))
    );
    assert_eq!(resolution.suites[0].date, "Sat, 10 Aug 2024 09:50:58 UTC");
    // Every .deb is in the cache under its digest, with the bytes served.
    assert_eq!(debs.len(), 8);
    for deb in &debs {
        let bytes = std::fs::read(&deb.path).unwrap();
        assert_eq!(sha256(&bytes), deb.sha256.to_string());
        assert_eq!(bytes, f.server.get(&deb.filename));
        assert_eq!(deb.path, f.cache.join("debian/sha256").join(deb.sha256.to_string()));
    }
    // Nothing but verified files, and no temporary file left behind.
    assert!(f.cached().iter().all(|n| n.len() == 64), "{:?}", f.cached());
}

#[test]
fn a_second_fetch_of_the_same_set_makes_no_request() {
    let f = fixture("");
    let (resolution, first) = f.fetch(&["app"]).unwrap();
    let before = f.server.requests();
    assert!(before >= 3, "the cold fetch made {before} requests");
    let again = debian::fetch(&resolution.packages, &f.options()).unwrap();
    assert_eq!(again, first);
    assert_eq!(f.server.requests(), before, "a fetch satisfied by the cache asked the mirror");
}

#[test]
fn a_tampered_inrelease_is_refused() {
    let f = fixture("");
    let signed = String::from_utf8(f.server.get("dists/main/InRelease")).unwrap();
    f.server
        .put("dists/main/InRelease", signed.replace("Origin: Test", "Origin: Evil").into_bytes());
    let err = error_text(&f.fetch(&["app"]).unwrap_err());
    assert!(err.contains("dists/main/InRelease` has a bad signature"), "{err}");
    assert!(!f.cached().iter().any(|n| n == &sha256(&f.server.get("dists/main/InRelease"))));
}

#[test]
fn an_inrelease_signed_by_an_unknown_key_or_not_at_all_is_refused() {
    let f = fixture("");
    let stranger = signing_key("stranger");
    let text = "Origin: Test\nDate: Sat, 10 Aug 2024 09:50:58 UTC\nSHA256:\n";
    let foreign = archive::clearsign(text, &stranger).into_bytes();
    f.server.put("dists/main/InRelease", foreign.clone());
    let err = error_text(&f.fetch(&["app"]).unwrap_err());
    assert!(err.contains("dists/main/InRelease` is signed by key"), "{err}");
    assert!(err.contains("which is not in the keyring"), "{err}");
    f.server.put("dists/main/InRelease", text.as_bytes().to_vec());
    let err = error_text(&f.fetch(&["app"]).unwrap_err());
    assert!(err.contains("dists/main/InRelease` is not an OpenPGP cleartext-signed file"), "{err}");
    // The other suite's verified files may be kept, these never.
    let cached = f.cached();
    assert!(
        !cached.contains(&sha256(&foreign)) && !cached.contains(&sha256(text.as_bytes())),
        "{cached:?}"
    );
}

#[test]
fn an_expired_valid_until_is_refused_unless_the_mirror_is_a_snapshot() {
    let f = fixture("Valid-Until: Sat, 17 Aug 2024 09:50:58 UTC\n");
    let err = error_text(&f.fetch(&["app"]).unwrap_err());
    assert!(err.contains("/InRelease` expired on 2024-08-17T09:50:58Z"), "{err}");
    let mut request = f.request(&["app"]);
    request.snapshot = true;
    debian::fetch_request(&request, f.base(), &f.options()).unwrap();
}

#[test]
fn a_key_that_has_expired_is_refused_unless_a_snapshot_was_signed_while_it_was_valid() {
    // Made on 2024-08-01, valid for a week; the mirror's files are signed
    // now (long after), or on 2024-08-03 as a snapshot's would have been.
    let (made, week) = (1_722_470_400, 7 * 86_400);
    let key = archive::expiring_signing_key("old", made, week);
    let fingerprint =
        format!("{:X}", pgp::types::KeyDetails::fingerprint(&key.secret_subkeys[0].key));
    let f = fixture_of(&key, archive(PACKAGES, &key, ""));
    let err = error_text(&f.fetch(&["app"]).unwrap_err());
    let expected = format!(
        "dists/main/InRelease` is signed by key {fingerprint}, which expired on 2024-08-08T00:00:00Z; if the mirror is a snapshot, set `snapshot = true`"
    );
    assert!(err.contains(&expected), "{err}");
    let mut snapshot = f.request(&["app"]);
    snapshot.snapshot = true;
    let err = error_text(&debian::fetch_request(&snapshot, f.base(), &f.options()).unwrap_err());
    assert!(
        err.contains("which had expired on 2024-08-08T00:00:00Z, before it signed on"),
        "{err}"
    );

    let then = made + 2 * 86_400;
    let signed_then =
        archive::archive_signed(PACKAGES, "", &|t| archive::clearsign_at(t, &key, then));
    let f = fixture_of(&key, signed_then);
    let err = error_text(&f.fetch(&["app"]).unwrap_err());
    assert!(err.contains(&expected), "{err}");
    let mut snapshot = f.request(&["app"]);
    snapshot.snapshot = true;
    debian::fetch_request(&snapshot, f.base(), &f.options()).unwrap();
    // A key that has not expired is taken whenever it signed.
    let fresh = signing_key("fresh");
    let signed_then =
        archive::archive_signed(PACKAGES, "", &|t| archive::clearsign_at(t, &fresh, then));
    fixture_of(&fresh, signed_then).fetch(&["app"]).unwrap();
}

#[test]
fn a_packages_index_with_a_wrong_hash_is_refused_and_not_kept() {
    let f = fixture("");
    let path = "dists/main/main/binary-amd64/Packages.xz";
    let mut index = f.server.get(path);
    let listed = sha256(&index);
    index.extend_from_slice(b"\0");
    f.server.put(path, index.clone());
    let err = error_text(&f.fetch(&["app"]).unwrap_err());
    assert!(err.contains(path), "{err}");
    assert!(err.contains(&format!("expected SHA256 {listed}")), "{err}");
    assert!(err.contains(&format!("got SHA256 {}", sha256(&index))), "{err}");
    // Only the verified InReleases are kept.
    assert!(
        !f.cached().contains(&sha256(&index)) && !f.cached().contains(&listed),
        "{:?}",
        f.cached()
    );
    assert!(f.cached().iter().all(|n| n.len() == 64));
}

#[test]
fn a_deb_with_a_wrong_digest_is_refused_and_not_kept() {
    let f = fixture("");
    let path = "pool/main/mawk/mawk_1.3.4_amd64.deb";
    let good = f.server.get(path);
    let evil = archive::deb("Package: mawk\n", &[("./usr/bin/mawk", b"evil")]);
    f.server.put(path, evil.clone());
    let err = error_text(&f.fetch(&["app"]).unwrap_err());
    assert!(err.contains(path), "{err}");
    assert!(err.contains(&sha256(&good)) && err.contains(&sha256(&evil)), "{err}");
    let cached = f.cached();
    assert!(!cached.contains(&sha256(&evil)) && !cached.contains(&sha256(&good)), "{cached:?}");
    assert!(cached.iter().all(|n| n.len() == 64), "a temporary file was left: {cached:?}");
}

#[test]
fn missing_packages_and_unsatisfiable_relations_are_named() {
    let f = fixture("");
    let err = error_text(&f.fetch(&["nope"]).unwrap_err());
    assert!(err.contains("no package `nope` for amd64"), "{err}");
    let err = error_text(&f.fetch(&["broken"]).unwrap_err());
    assert!(
        err.contains("`broken` 1 has `Depends: libfoo (>= 3) | nosuch`, which no package satisfies (`libfoo` has only 2.1, 2.0; no package `nosuch`)"),
        "{err}"
    );
    // Essential packages and other architectures' are not pulled in.
    let err = error_text(&f.fetch(&["armonly"]).unwrap_err());
    assert!(err.contains("no package `armonly`"), "{err}");
}

#[test]
fn conflicts_and_breaks_are_avoided_when_an_alternative_exists_else_refused_naming_both() {
    let f = fixture("");
    let names = |asked: &[&str]| -> Vec<String> {
        let (resolution, _) = f.fetch(asked).unwrap();
        resolution.packages.iter().map(|w| w.id.name.clone()).collect()
    };
    assert_eq!(names(&["server"]), ["daemon-y", "libssl1", "server"]);
    assert_eq!(names(&["modern"]), ["libssl1", "modern", "newer"]);
    // Its own `Provides` does not make a package conflict with itself.
    assert_eq!(names(&["mta-a"]), ["mta-a"]);
    let err = error_text(&f.fetch(&["clash"]).unwrap_err());
    assert!(
        err.contains("`legacy` 1 has `Breaks: libssl1 (<< 2)`, which `libssl1` 1 meets, and the closure needs both (required by legacy <- clash; required by libssl1 <- clash)"),
        "{err}"
    );
    let err = error_text(&f.fetch(&["mailer"]).unwrap_err());
    assert!(
        err.contains("`mta-a` 1 has `Conflicts: mail-transport`, which `mta-b` 1 meets"),
        "{err}"
    );
    // Asked for by name, two conflicting packages are refused too.
    let err = error_text(&f.fetch(&["daemon-x", "libssl1"]).unwrap_err());
    assert!(
        err.contains("`daemon-x` 1 has `Conflicts: libssl1`, which `libssl1` 1 meets"),
        "{err}"
    );
}

#[test]
fn a_locked_package_the_mirror_no_longer_serves_is_named_with_its_version() {
    let f = fixture("");
    let (resolution, _) = f.fetch(&["app"]).unwrap();
    let mut gone: Wanted = resolution.packages[0].clone();
    gone.filename = "pool/main/a/app/app_0.9_amd64.deb".into();
    gone.sha256 = "0".repeat(64).parse().unwrap();
    gone.id.version = "0.9".into();
    let err = error_text(&debian::fetch(&[gone], &f.options()).unwrap_err());
    assert!(err.contains("the mirror no longer serves `app` 0.9 (amd64)"), "{err}");
}

#[test]
fn update_writes_the_package_set_and_says_what_changed_and_locked_refuses_changes() {
    let f = fixture("");
    let spec = f.spec(&["app"]);
    let lock_path = rootfs::build::lock::path_for(&spec);
    let first = f.update(&spec, false).unwrap();
    assert!(first.created);
    let text = std::fs::read_to_string(&lock_path).unwrap();
    let lock = rootfs::build::lock::Lock::parse(text.as_bytes()).unwrap();
    let set = lock.debian.unwrap();
    assert_eq!(set.suites, ["main", "updates"]);
    assert_eq!(set.requested, ["app"]);
    assert_eq!(
        set.releases["main"].sha256.to_string(),
        sha256(&f.server.get("dists/main/InRelease"))
    );
    let libfoo = &set.packages["libfoo"];
    assert_eq!((libfoo.version.as_str(), libfoo.suite.as_str()), ("2.1", "updates"));
    assert_eq!(libfoo.filename, "pool/main/libfoo/libfoo_2.1_amd64.deb");
    assert!(!text.contains(&f.server.url), "the lock names the mirror:\n{text}");
    // Nothing changed: nothing to say, nothing written.
    let again = f.update(&spec, false).unwrap();
    assert!(again.summary(true).is_none(), "{:?}", again.summary(true));
    assert!(!again.refreshed);
    // Each release's distribution (Origin `Test`, no Version: the codename),
    // which a lock written before it was recorded gains on `update`.
    assert_eq!(set.releases["main"].distro.as_deref(), Some("test-main"));
    let older = text.replace("distro = \"test-main\"\n", "");
    std::fs::write(&lock_path, older.replace("distro = \"test-updates\"\n", "")).unwrap();
    let locked = f.update(&spec, true).unwrap();
    assert!(locked.summary(true).is_none() && !locked.refreshed, "--locked writes nothing");
    let refreshed = f.update(&spec, false).unwrap();
    assert!(refreshed.summary(true).is_none() && refreshed.refreshed);
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), text);

    // The mirror publishes libfoo 2.2 in `updates`.
    let key = signing_key("good");
    std::fs::write(&f.keyring, archive::armored_public(&key)).unwrap();
    let mut packages: Vec<Pkg> = PACKAGES.to_vec();
    packages.push(Pkg {
        suite: "updates",
        name: "libfoo",
        version: "2.2",
        arch: "amd64",
        fields: "",
    });
    for (path, bytes) in archive(&packages, &key, "") {
        f.server.put(&path, bytes);
    }
    let before = std::fs::read(&lock_path).unwrap();
    let err = error_text(&f.update(&spec, true).unwrap_err());
    assert!(err.contains("package changed: libfoo 2.1 -> 2.2"), "{err}");
    assert_eq!(std::fs::read(&lock_path).unwrap(), before, "--locked wrote the lock");
    let changed = f.update(&spec, false).unwrap();
    let summary = changed.summary(true).unwrap();
    assert!(summary.contains("package changed: libfoo 2.1 -> 2.2"), "{summary}");
    assert!(summary.contains("suite updates: InRelease locked"), "{summary}");
    assert!(summary.contains("suite main: InRelease locked"), "{summary}");
}

#[test]
fn a_locked_build_reads_no_index_and_fetches_only_what_the_cache_lacks() {
    let f = fixture("");
    let spec = f.spec(&["app"]);
    f.update(&spec, false).unwrap();
    let request = rootfs::spec::load(&spec).unwrap().debian.unwrap().value;
    // A cold cache: only the .debs are asked for, no InRelease or index.
    let cold = tempfile::tempdir().unwrap();
    let options =
        Options { cache_dir: Some(cold.path().to_path_buf()), ..f.locked_options(&spec, true) };
    let before = f.server.requests();
    let (set, debs) = package_set::locked_or_resolved(&request, f.base(), &options).unwrap();
    assert_eq!(f.server.requests() - before, set.packages.len());
    assert_eq!(debs.len(), 6);
    // Everything cached: not one request.
    let before = f.server.requests();
    let (again, _) = package_set::locked_or_resolved(&request, f.base(), &options).unwrap();
    assert_eq!((again, f.server.requests()), (set, before));
    // Asking for another package: `--locked` refuses, naming the change.
    let mut more = request.clone();
    more.packages.push("tool".into());
    let err = error_text(&package_set::locked_or_resolved(&more, f.base(), &options).unwrap_err());
    assert!(err.contains("--locked: the inputs differ"), "{err}");
    assert!(err.contains("packages asked for changed: + tool"), "{err}");
    // Without --locked it resolves anew.
    let (new, _) =
        package_set::locked_or_resolved(&more, f.base(), &f.locked_options(&spec, false)).unwrap();
    assert!(new.packages.contains_key("pyimpl"));
    // A locked package the mirror removed, fetched into an empty cache.
    f.server.files.lock().unwrap().remove("pool/main/cyc-b/cyc-b_1_all.deb");
    let empty = tempfile::tempdir().unwrap();
    let options =
        Options { cache_dir: Some(empty.path().to_path_buf()), ..f.locked_options(&spec, true) };
    let err =
        error_text(&package_set::locked_or_resolved(&request, f.base(), &options).unwrap_err());
    assert!(err.contains("the mirror no longer serves `cyc-b` 1 (all)"), "{err}");
}

/// One small fetch from the mirror this machine's apt sources name (CI
/// reaches Debian's archive): `bash` from bookworm, verified against
/// Debian's archive keyring; then the closure of `python3 git vim` from the
/// same parsed indexes, timed (issue 20's budget is 200 ms).
#[test]
fn live_bash_from_bookworm_via_the_apt_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let request = DebianRequest {
        suite: "bookworm".into(),
        packages: vec!["bash".into()],
        ..Default::default()
    };
    let options = Options { cache_dir: Some(tmp.path().to_path_buf()), ..Default::default() };
    let start = std::time::Instant::now();
    let source = debian::sysroot::archive_source(&request, Path::new("."), &options).unwrap();
    let cache = debian::cache::Cache::open(tmp.path()).unwrap();
    let indexes =
        debian::fetch::fetch_indexes(&source, &cache, &debian::fetch::Http::new()).unwrap();
    let fetched_indexes = start.elapsed();
    let resolution = debian::sysroot::resolve_from(&source, &indexes, &request.packages).unwrap();
    let debs = debian::fetch(&resolution.packages, &options).unwrap();
    eprintln!(
        "live: indexes in {fetched_indexes:?}, {} packages of bash fetched in {:?} in all",
        debs.len(),
        start.elapsed()
    );
    let names: Vec<&str> = resolution.packages.iter().map(|w| w.id.name.as_str()).collect();
    // `base-files` pre-depends on the virtual `awk`: apt takes `mawk`
    // (`Priority: required`), not `gawk` and its libraries.
    for name in ["bash", "libc6", "libtinfo6", "debianutils", "base-files", "mawk"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(!names.contains(&"gawk") && debs.len() < 15, "{names:?}");
    for deb in &debs {
        assert_eq!(rootfs::vocab::Sha256::of_file(&deb.path).unwrap(), deb.sha256);
    }
    let asked: Vec<String> = ["python3", "git", "vim"].map(String::from).to_vec();
    // CPU time of this thread as well as wall time: the machine may be
    // shared, and the budget is about our work.
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let (start, start_cpu) = (std::time::Instant::now(), cpu());
    let universe = debian::select::Universe::new(indexes.iter().flat_map(|i| &i.packages), "amd64");
    let selected = debian::select::select(&universe, &asked).unwrap();
    eprintln!(
        "live: closure of python3 git vim from {} parsed stanzas: {} packages in {:?} ({:?} CPU)",
        indexes.iter().map(|i| i.packages.len()).sum::<usize>(),
        selected.len(),
        start.elapsed(),
        cpu() - start_cpu
    );
    let big = debian::sysroot::resolve_from(&source, &indexes, &asked).unwrap();
    assert_eq!(big.packages.len(), selected.len());
    let names: Vec<&str> = big.packages.iter().map(|w| w.id.name.as_str()).collect();
    for name in ["python3", "python3.11", "git", "vim", "libc6", "perl-base"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

/// The command line: `rootfs update SPEC` writes the package set, and a
/// build asking for other packages under `--locked` is refused before any
/// index is read.
#[test]
fn update_and_locked_from_the_command_line() {
    let f = fixture("");
    let spec = f.spec(&["app"]);
    let xtask = |args: &[&str]| {
        let output = std::process::Command::new(crate::support::xtask_binary())
            .arg("rootfs")
            .args(args)
            .env(debian::cache::CACHE_DIR_VAR, &f.cache)
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let spec_arg = spec.to_str().unwrap();
    let (code, stderr) = xtask(&["update", spec_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("wrote the lock"), "{stderr}");
    let (code, stderr) = xtask(&["update", spec_arg, "--locked"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("is up to date"), "{stderr}");
    let before = f.server.requests();
    let out = f.base().join("out");
    let (code, stderr) = xtask(&[
        "build",
        spec_arg,
        "--out",
        out.to_str().unwrap(),
        "--locked",
        "--packages",
        "app,tool",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--locked: the inputs differ"), "{stderr}");
    assert!(stderr.contains("packages asked for changed: + tool"), "{stderr}");
    assert_eq!(f.server.requests(), before, "a refused locked build asked the mirror");
    assert!(!out.exists());
    // A preset that says `tool` provides its files changes the package set
    // as much: refused under --locked, naming the package.
    std::fs::write(f.base().join("preset.toml"), "debian_packages = [\"tool\"]\n").unwrap();
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replacen("\n", "\ninclude = [\"preset.toml\"]\n", 1)).unwrap();
    let (code, stderr) = xtask(&["build", spec_arg, "--out", out.to_str().unwrap(), "--locked"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("packages asked for changed: + tool"), "{stderr}");
    assert_eq!(f.server.requests(), before, "a refused locked build asked the mirror");
    assert!(!out.exists());
}

/// Builds sharing the cache at once: each download lands under a temporary
/// name and is renamed into place once verified, so both fetches succeed
/// and the cache holds only whole, verified files.
#[test]
fn concurrent_fetches_into_one_cache_both_succeed_and_leave_only_verified_files() {
    let f = fixture("");
    let results: Vec<_> = std::thread::scope(|scope| {
        let fetches: Vec<_> = (0..3).map(|_| scope.spawn(|| f.fetch(&["app", "tool"]))).collect();
        fetches.into_iter().map(|t| t.join().unwrap().unwrap()).collect()
    });
    for (_, debs) in &results {
        assert_eq!(debs, &results[0].1);
        for deb in debs {
            assert_eq!(rootfs::vocab::Sha256::of_file(&deb.path).unwrap(), deb.sha256);
        }
    }
    assert!(f.cached().iter().all(|n| n.len() == 64), "{:?}", f.cached());
}

/// The whole path, live: a spec's `[sysroot.debian]` resolved through the
/// apt sources, fetched, verified and unpacked, a tree built from it whose
/// every file comes from the packages, its lock carrying the package set,
/// and the tree's programs running. A second prepare reuses the folder.
#[test]
fn live_a_tree_built_from_bookworm_packages_runs_and_locks_its_package_set() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("pk.toml");
    std::fs::write(
        &spec,
        "name = \"pk\"\ncommands = [\"bash\", \"ls\"]\n\
         [[files]]\nsrc = \"motd\"\ndest = \"/etc/motd\"\n\
         [[files]]\nsrc = \"/etc/bash.bashrc\"\ndest = \"/etc/copied.bashrc\"\n\
         [[trees]]\nsrc = \"/usr/local/lib/no-such-folder\"\noptional = true\n\
         [sysroot.debian]\nsuite = \"bookworm\"\npackages = [\"bash\", \"coreutils\"]\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("motd"), "a host file\n").unwrap();
    let request = rootfs::spec::load(&spec).unwrap().debian.unwrap().value;
    let lock = rootfs::build::lock::path_for(&spec);
    let source = rootfs::build::image_sysroot::SysrootSource::Debian {
        request,
        lock: Some(lock.clone()),
        locked: false,
    };
    let sysroots = tmp.path().join("sysroots");
    let prepared = rootfs::build::image_sysroot::prepare(&source, &sysroots).unwrap();
    assert!(prepared.unpacked && prepared.dir.starts_with(&sysroots));
    let mut options = rootfs::build::Options::new(&spec, tmp.path());
    options.sysroot = prepared.dir.clone();
    options.packages = prepared.packages.clone();
    let built = rootfs::build::build(&options).unwrap();
    // Everything but the relative `[[files]]` src comes from the packages,
    // the absolute one (copied elsewhere) too. Sources are paths inside the
    // sysroot, which sits elsewhere on each machine; each names a path the
    // unpacked packages have.
    for entry in &built.manifest.entries {
        if let Some(source) = &entry.source
            && entry.path != Path::new("/etc/motd")
        {
            let inside = prepared.dir.join(source.strip_prefix("/").unwrap());
            assert!(inside.symlink_metadata().is_ok(), "{} is from the host", source.display());
        }
    }
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        text.contains("[debian.packages.bash]") && text.contains("[debian.packages.coreutils]")
    );
    sbom_from_the_package_set(&built, prepared.packages.as_ref().unwrap());
    // A package lock: the set and the one host input, nothing per file.
    let parsed = rootfs::build::lock::Lock::parse(text.as_bytes()).unwrap();
    assert!(parsed.pins_packages(), "{text}");
    assert_eq!(parsed.spec_files.keys().collect::<Vec<_>>(), [Path::new("/etc/motd")], "{text}");
    assert_eq!(parsed.spec_files[Path::new("/etc/motd")].input.as_deref(), Some("host"));
    for table in ["[commands", "[files", "[links", "[trees", "copied.bashrc"] {
        assert!(!text.contains(table), "{table} in the package lock:\n{text}");
    }
    // An absolute `src` no package ships is not looked for on the host.
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("/etc/bash.bashrc", "/etc/hostname")).unwrap();
    let err = rootfs::build::build(&options).unwrap_err();
    let shown = rootfs::render_error(&err);
    assert!(shown.contains("cannot read `/etc/hostname` in the sysroot"), "{shown}");
    assert!(shown.contains("`debian_packages`"), "{shown}");
    std::fs::write(&spec, text).unwrap();
    let again = rootfs::build::image_sysroot::prepare(&source, &sysroots).unwrap();
    assert!(!again.unpacked, "the same package set reuses its folder");
    assert_eq!(again.packages, prepared.packages, "the lock's set is used again");
    if rustix::process::geteuid().is_root() {
        let (status, out) = crate::support::in_chroot(
            &built.out,
            &["/bin/bash", "-c", "ls / >/dev/null && echo ok"],
            &[],
        );
        assert_eq!((status, out.as_str()), (0, "ok\n"));
    } else {
        eprintln!("skipped the run inside: needs root (chroot(2))");
    }
}

/// A `trixie` spec on this bookworm host, as a user would write it (the
/// release with its updates and security suites, Debian's archive keyring
/// by default), builds and passes its smoke. The keyring question,
/// answered: bookworm's `debian-archive-keyring` (2023.3+deb12u2) ships
/// trixie's keys, and trixie's `InRelease` carries a signature by trixie's
/// own automatic signing key (with bookworm's and the trixie release
/// key's), so the default keyring verifies it with no key added; the test
/// checks the locked `InRelease` against trixie's key alone.
#[test]
fn live_a_trixie_spec_builds_and_passes_its_smoke_on_this_host() {
    if !crate::support::can_enter() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("tx.toml");
    std::fs::write(
        &spec,
        "name = \"tx\"\ncommands = [\"bash\", \"ls\", \"python3\"]\n\n[sysroot.debian]\nsuite = \"trixie\"\n\
         extra_suites = [\"trixie-updates\", \"trixie-security\"]\n\
         packages = [\"bash\", \"coreutils\", \"python3-minimal\"]\n",
    )
    .unwrap();
    let (code, text) = crate::support::rootfs_cli("smoke", &spec, &tmp.path().join("out"), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("3 passed, 0 failed"), "{text}");
    let lock =
        rootfs::build::lock::read(&rootfs::build::lock::path_for(&spec)).unwrap().unwrap().lock;
    let set = lock.debian.expect("the lock holds the package set");
    assert!(set.packages["libc6"].version.contains("deb13"), "{:?}", set.packages["libc6"]);
    let inrelease = debian::cache::default_dir()
        .unwrap()
        .join("debian/sha256")
        .join(set.releases["trixie"].sha256.to_string());
    let trixie_key = Path::new("/usr/share/keyrings/debian-archive-trixie-automatic.gpg");
    let keyring = debian::release::Keyring::load(trixie_key)
        .expect("bookworm's debian-archive-keyring ships trixie's keys (2023.3+deb12u2 and later)");
    let bytes = std::fs::read(&inrelease).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let at = debian::release::At { now: now.as_secs() as i64, snapshot: false };
    debian::release::verify(&bytes, &keyring, "trixie/InRelease", at).unwrap();
}

/// The SBOM of a tree built from a package set: every Debian package in it
/// is one of the set, with the set's version, a purl naming the
/// distribution its suite's `InRelease` states, the `.deb`'s file name and
/// SHA256; licenses from the DEP-5 copyright files the packages ship
/// (coreutils has one; libc6's is free-form, so `NOASSERTION`); and the
/// SPDX project's validator accepts it.
fn sbom_from_the_package_set(built: &rootfs::build::Built, set: &rootfs::build::lock::PackageSet) {
    let path = rootfs::build::sbom::path_for(&built.out);
    let sbom: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let packages = sbom["packages"].as_array().unwrap();
    let debs: Vec<&serde_json::Value> =
        packages.iter().filter(|p| p["SPDXID"] != "SPDXRef-Rootfs").collect();
    assert!(debs.len() >= 5, "{debs:?}");
    for package in &debs {
        let name = package["name"].as_str().unwrap();
        let locked = &set.packages[name];
        assert_eq!(package["versionInfo"], locked.version.as_str(), "{name}");
        let purl = package["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        assert!(purl.ends_with("?arch=amd64&distro=debian-12"), "{purl}");
        let file_name = locked.filename.rsplit('/').next().unwrap();
        assert_eq!(package["packageFileName"], file_name, "{name}");
        let checksum =
            serde_json::json!([{ "algorithm": "SHA256", "checksumValue": locked.sha256 }]);
        assert_eq!(package["checksums"], checksum, "{name}");
    }
    let license = |name: &str| {
        let package = debs.iter().find(|p| p["name"] == name).unwrap();
        package["licenseDeclared"].as_str().unwrap().to_string()
    };
    assert!(license("coreutils").starts_with("GPL-3.0-or-later"), "{}", license("coreutils"));
    assert_eq!(license("libc6"), "NOASSERTION");
    let Some(validator) = crate::support::pyspdxtools() else { return };
    let output = std::process::Command::new(validator).arg("-i").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && !text.to_lowercase().contains("invalid"), "{text}");
}
