//! Building rootfs trees: every shipped spec loads everything inside a chroot, builds are reproducible and atomic, and no write escapes the output.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rootfs::build::manifest::Manifest;
use rootfs::build::{Built, Options, build};
use rootfs::vocab::FileState;

use crate::support::{
    cc, copy_sysroot, in_chroot, program, project_root, shared_lib, shipped_specs, tree_listing,
};

fn options(spec: &Path, out: &Path) -> Options {
    let mut options = Options::new(spec, out.parent().unwrap());
    options.out = Some(out.to_path_buf());
    options
}

fn write_spec(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("spec.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_shipped_spec_builds_and_the_loader_finds_every_library_inside() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (checking with the loader inside the tree uses chroot(2))");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for spec in shipped_specs() {
        let built = build(&Options::new(&spec, tmp.path()))
            .unwrap_or_else(|e| panic!("{}: {}", spec.display(), rootfs::render_error(&e)));
        assert!(!built.manifest.commands.is_empty(), "{}", spec.display());
        for command in &built.manifest.commands {
            if command.kind != rootfs::build::manifest::CommandKind::Dynamic {
                // A static program would run for real under the trace flag.
                continue;
            }
            let path = command.path.to_str().unwrap();
            let (status, output) =
                in_chroot(&built.out, &[path], &[("LD_TRACE_LOADED_OBJECTS", "1")]);
            assert_eq!(status, 0, "{} in {}:\n{output}", command.name, spec.display());
            assert!(
                !output.contains("not found"),
                "{} in {}:\n{output}",
                command.name,
                spec.display()
            );
            // Everything the loader opened inside is in the manifest.
            for line in output.lines() {
                let Some(path) =
                    line.split(" => ").last().and_then(|p| p.trim().split(" (0x").next())
                else {
                    continue;
                };
                if let Some(relative) = path.strip_prefix('/') {
                    assert!(
                        built.out.join(relative).exists(),
                        "{path} loaded by {} is not in the tree",
                        command.name
                    );
                }
            }
        }
    }
}

#[test]
fn the_default_spec_is_the_classic_set_with_merged_usr_mirrored() {
    let tmp = tempfile::tempdir().unwrap();
    let built =
        build(&Options::new(project_root().join("rootfs-spec/default.toml"), tmp.path())).unwrap();
    let names: Vec<&str> = built.manifest.commands.iter().map(|c| c.name.as_str()).collect();
    // vim comes first, from presets/vim.toml, which the spec includes.
    assert_eq!(names, ["/usr/bin/vim", "bash", "ls", "ps", "ss", "hostname", "ip", "mount", "cat"]);
    let m = &built.manifest;
    for dir in ["/bin", "/sbin", "/lib", "/lib64"] {
        let host = std::fs::symlink_metadata(dir).unwrap();
        let entry = m.entry(Path::new(dir)).unwrap();
        if host.file_type().is_symlink() {
            assert_eq!(
                entry.target.as_deref(),
                Some(std::fs::read_link(dir).unwrap().as_path()),
                "{dir}"
            );
        } else {
            assert_eq!(entry.kind, rootfs::vocab::EntryType::Dir);
        }
    }
    assert_eq!(m.entry(Path::new("/tmp")).unwrap().mode.to_string(), "1777");
    assert_eq!(m.entry(Path::new("/root")).unwrap().mode.to_string(), "0700");
    // vim's chain of alternatives is kept, and the real file copied once.
    let chain: Vec<PathBuf> = std::iter::successors(Some(PathBuf::from("/usr/bin/vim")), |p| {
        m.entry(p)
            .and_then(|e| e.target.clone())
            .map(|t| if t.is_absolute() { t } else { p.parent().unwrap().join(t) })
    })
    .collect();
    let last = chain.last().unwrap();
    assert_eq!(m.entry(last).unwrap().kind, rootfs::vocab::EntryType::File);
    assert_eq!(std::fs::canonicalize("/usr/bin/vim").unwrap(), *last);
    let passwd = std::fs::read_to_string(built.out.join("etc/passwd")).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n")
            && passwd.contains("app:x:1000:1000:"),
        "{passwd}"
    );
    assert!(
        m.why(Path::new("/lib64/ld-linux-x86-64.so.2"))
            .unwrap()
            .contains("program interpreter of /usr/bin/bash")
    );
    // The loader cache written for the tree is one glibc's ldconfig reads.
    let listed =
        duct::cmd!("ldconfig", "-C", built.out.join("etc/ld.so.cache"), "-p").read().unwrap();
    assert!(
        listed.contains("libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"),
        "{listed}"
    );
}

#[test]
fn rebuilds_are_byte_for_byte_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = project_root().join("rootfs-spec/default.toml");
    let a = tmp.path().join("a/default");
    let b = tmp.path().join("b/default");
    let mut first = options(&spec, &a);
    first.epoch = 1_700_000_000;
    let built_a = build(&first).unwrap();
    let manifest_a = std::fs::read(&built_a.manifest_path).unwrap();
    let listing_a = tree_listing(&a);
    assert!(
        listing_a.iter().all(|l| l.contains(" mtime=1700000000 ")),
        "every timestamp is the epoch"
    );

    // The same output again, forced, and a second output elsewhere.
    let mut again = first.clone();
    again.force = true;
    build(&again).unwrap();
    assert_eq!(std::fs::read(&built_a.manifest_path).unwrap(), manifest_a);
    assert_eq!(tree_listing(&a), listing_a);
    let mut other = options(&spec, &b);
    other.epoch = 1_700_000_000;
    let built_b = build(&other).unwrap();
    assert_eq!(std::fs::read(&built_b.manifest_path).unwrap(), manifest_a);
    assert_eq!(tree_listing(&b), listing_a);
}

#[test]
fn an_unchanged_rebuild_is_a_no_op_and_any_changed_input_is_noticed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let lib = d.join("lib");
    shared_lib(&lib, "a", &[], &[]);
    program(
        &d.join("bin/prog"),
        &["a"],
        &["-L", lib.to_str().unwrap(), &format!("-Wl,-rpath,{}", lib.display())],
    );
    std::fs::write(d.join("motd"), "hello\n").unwrap();
    let text = format!(
        "name = \"t\"\ncommands = [\"{}\"]\n[[files]]\nsrc = \"motd\"\ndest = \"/etc/motd\"\n",
        d.join("bin/prog").display()
    );
    let spec = write_spec(d, &text);
    let out = d.join("out/t");
    let opts = options(&spec, &out);
    let rebuilt = |why: &str| -> Built {
        let built = build(&opts).unwrap();
        assert!(!built.up_to_date, "a rebuild was expected after {why}");
        built
    };
    let first = build(&opts).unwrap();
    assert!(!first.up_to_date);
    let second = build(&opts).unwrap();
    assert!(second.up_to_date, "{:?}", second.reason);
    assert!(second.summary().contains("is up to date"));

    std::fs::write(d.join("motd"), "hello again\n").unwrap();
    rebuilt("a file of the spec changed");
    std::fs::write(&spec, format!("{text}\n# a comment\n")).unwrap();
    rebuilt("the spec changed");
    shared_lib(&lib, "a", &[], &["-O2"]);
    rebuilt("a library changed");
    // A directory appearing where the loader searches first could hold a
    // better match: that is a change too.
    std::fs::create_dir_all(lib.join("glibc-hwcaps")).unwrap();
    rebuilt("a search directory changed");
    assert!(build(&opts).unwrap().up_to_date);
    // An edit inside the tree is a change too.
    std::fs::set_permissions(out.join("etc/motd"), std::fs::Permissions::from_mode(0o600)).unwrap();
    rebuilt("a file of the tree changed mode");
    std::fs::set_permissions(out.join("etc/motd"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(out.join("etc/motd"), "edited in place\n").unwrap();
    rebuilt("a file of the tree was edited");
    std::fs::remove_dir_all(&out).unwrap();
    rebuilt("the output was removed");
    // A [[files]] src given as a symlink, pointed elsewhere.
    std::fs::write(d.join("motd2"), "second\n").unwrap();
    std::fs::rename(d.join("motd"), d.join("motd1")).unwrap();
    symlink("motd1", d.join("motd")).unwrap();
    rebuilt("the src became a symlink");
    std::fs::remove_file(d.join("motd")).unwrap();
    symlink("motd2", d.join("motd")).unwrap();
    let built = rebuilt("the src symlink points elsewhere");
    assert_eq!(std::fs::read_to_string(built.out.join("etc/motd")).unwrap(), "second\n");
}

#[test]
fn a_spec_spelled_another_way_is_the_same_spec_and_a_change_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("part.toml"), "commands = [\"cat\"]\n").unwrap();
    let spec = write_spec(d, "name = \"t\"\ninclude = [\"part.toml\"]\n");
    let out = d.join("out/t");
    let first = build(&options(&spec, &out)).unwrap();
    assert!(!first.up_to_date);
    // `sub/../spec.toml`, as `../spec.toml` from `sub/` gives it, and the
    // same file through a symlinked folder.
    symlink(d, d.join("link")).unwrap();
    for other in [d.join("sub/../spec.toml"), d.join("link/spec.toml")] {
        let built = build(&options(&other, &out)).unwrap();
        assert!(built.up_to_date, "{}: {:?}", other.display(), built.reason);
    }
    let canonical = |name: &str| std::fs::canonicalize(d.join(name)).unwrap();
    std::fs::write(d.join("part.toml"), "commands = [\"cat\", \"ls\"]\n").unwrap();
    let built = build(&options(&spec, &out)).unwrap();
    let expected = format!("`{}` changed", canonical("part.toml").display());
    assert_eq!(built.reason.as_deref(), Some(expected.as_str()));
    std::fs::write(d.join("more.toml"), "").unwrap();
    std::fs::write(&spec, "name = \"t\"\ninclude = [\"part.toml\", \"more.toml\"]\n").unwrap();
    let built = build(&options(&spec, &out)).unwrap();
    let expected = format!("`{}` changed", canonical("spec.toml").display());
    assert_eq!(built.reason.as_deref(), Some(expected.as_str()));
    let mut hard = options(&spec, &out);
    hard.link = rootfs::build::install::LinkMode::Hard;
    let built = build(&hard).unwrap();
    assert_eq!(built.reason.as_deref(), Some("`--link` changed (copy -> hard)"));
}

#[test]
fn a_command_in_usr_local_shadowing_one_in_usr_is_named_by_build_and_deps() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    copy_sysroot(&sysroot);
    std::fs::create_dir_all(sysroot.join("usr/local/bin")).unwrap();
    std::fs::copy("/usr/bin/bash", sysroot.join("usr/local/bin/bash")).unwrap();
    let spec = write_spec(tmp.path(), "name = \"t\"\ncommands = [\"bash\"]\n");
    let mut opts = options(&spec, &tmp.path().join("out/t"));
    opts.sysroot = sysroot.clone();
    let built = build(&opts).unwrap();
    let note = "`bash` is `/usr/local/bin/bash`, first on PATH; `/usr/bin/bash` is there too (write its path in `commands` to take that one)";
    assert_eq!(built.warnings, [note]);
    let deps = std::process::Command::new(crate::support::xtask_binary())
        .args(["rootfs", "deps", "--sysroot"])
        .arg(&sysroot)
        .arg("bash")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&deps.stdout);
    assert!(stdout.starts_with("bash => /usr/local/bin/bash\n"), "{stdout}");
    assert!(stdout.contains(&format!("    warning: {note}\n")), "{stdout}");
    // Written as a path, the command is what it says, with no note.
    std::fs::write(&spec, "name = \"t\"\ncommands = [\"/usr/bin/bash\"]\n").unwrap();
    assert!(build(&opts).unwrap().warnings.is_empty());
}

#[test]
fn setuid_and_setgid_bits_are_dropped_unless_the_spec_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let host = d.join("suid");
    std::fs::copy("/usr/bin/true", &host).unwrap();
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o6755)).unwrap();
    for (keep, expected) in [(false, 0o755), (true, 0o6755)] {
        let text =
            format!("name = \"s\"\nkeep_setuid = {keep}\ncommands = [\"{}\"]\n", host.display());
        let spec = write_spec(d, &text);
        let out = d.join(format!("out-{keep}/s"));
        build(&options(&spec, &out)).unwrap();
        let copied = out.join(host.strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::metadata(&copied).unwrap().mode() & 0o7777,
            expected,
            "keep_setuid = {keep}"
        );
    }
    assert_eq!(
        std::fs::metadata(&host).unwrap().mode() & 0o7777,
        0o6755,
        "the host file is untouched"
    );
}

#[test]
fn symlinks_in_the_spec_cannot_lead_writes_outside_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let victim = d.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    // A symlink that would point at the victim if followed on the host, and
    // a file written through it.
    let text = format!(
        "name = \"e\"\ncommands = [\"cat\"]\n[[symlinks]]\npath = \"/escape\"\ntarget = \"/../../../..{}\"\n[[files]]\ncontent = \"x\"\ndest = \"/escape/planted\"\n",
        victim.display()
    );
    let spec = write_spec(d, &text);
    let out = d.join("out/e");
    build(&options(&spec, &out)).unwrap();
    assert!(!victim.join("planted").exists(), "a write escaped the output");
    // The kernel's rule inside a chroot: `..` stops at the root, so the
    // file lands at the same path inside the tree.
    let inside = out.join(victim.strip_prefix("/").unwrap()).join("planted");
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "x");
    assert_eq!(
        std::fs::read_link(out.join("escape")).unwrap(),
        Path::new(&format!("/../../../..{}", victim.display()))
    );
}

#[test]
fn an_output_replaced_by_a_symlink_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep"), "precious").unwrap();
    std::fs::create_dir_all(d.join("out")).unwrap();
    symlink(&elsewhere, d.join("out/t")).unwrap();
    let spec = write_spec(d, "name = \"t\"\ncommands = [\"cat\"]\n");
    let err = build(&options(&spec, &d.join("out/t"))).unwrap_err();
    assert!(
        rootfs::render_error(&err).contains("it is a symlink"),
        "{}",
        rootfs::render_error(&err)
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(elsewhere.join("keep")).unwrap(), "precious");
    let leftovers: Vec<_> =
        std::fs::read_dir(d.join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["t"], "no staging folder is left behind");
}

/// The rootfs's `ld.so.cache` gives each library its own flags: in a
/// sysroot whose cache holds a 64-bit and a 32-bit `libmix.so.1`, each
/// outside every default directory, a 64-bit and a 32-bit program that
/// need it both find their own inside the built tree.
#[test]
fn a_spec_mixing_32_and_64_bit_programs_runs_both() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (chroot)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    copy_sysroot(&sysroot);
    if let Err(why) = add_32_bit_libc(&sysroot) {
        eprintln!("skipped: no 32-bit libc to build with (install gcc-multilib): {why}");
        return;
    }
    // Built with: cc [-m32] -shared -fPIC -Wl,-soname,libmix.so.1 and
    // cc [-m32] prog.c -L DIR -lmix, for each word size.
    let lib = "const char *mix(void) { return BITS; }\n";
    let prog =
        "#include <stdio.h>\nconst char *mix(void);\nint main(void) { puts(mix()); return 0; }\n";
    for (bits, flag) in [("64", None), ("32", Some("-m32"))] {
        let dir = sysroot.join(format!("opt/m{bits}"));
        let flags: Vec<&str> = flag.into_iter().collect();
        let define = format!("-DBITS=\"{bits} bits\"");
        let mut lib_flags = flags.clone();
        lib_flags.extend(["-shared", "-fPIC", "-Wl,-soname,libmix.so.1", define.as_str()]);
        cc(&dir.join("libmix.so.1"), lib, &lib_flags);
        let mut prog_flags = flags.clone();
        let link = format!("-L{}", dir.display());
        prog_flags.extend([link.as_str(), "-l:libmix.so.1"]);
        cc(&sysroot.join(format!("usr/bin/prog{bits}")), prog, &prog_flags);
    }
    std::fs::write(sysroot.join("etc/ld.so.conf"), "/opt/m64\n/opt/m32\n").unwrap();
    let status = std::process::Command::new("ldconfig").arg("-r").arg(&sysroot).status().unwrap();
    assert!(status.success(), "ldconfig -r failed");
    let spec = write_spec(tmp.path(), "name = \"mixed\"\ncommands = [\"prog64\", \"prog32\"]\n");
    let out = tmp.path().join("out/mixed");
    let mut opts = options(&spec, &out);
    opts.sysroot = sysroot.clone();
    build(&opts).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
    for bits in ["64", "32"] {
        let (code, text) = in_chroot(&out, &[&format!("/usr/bin/prog{bits}")], &[]);
        assert_eq!((code, text.trim()), (0, format!("{bits} bits").as_str()), "prog{bits}");
    }
}

/// The host's 32-bit loader and libc (from `libc6-i386`) in a sysroot, as
/// on the host: `/lib/ld-linux.so.2 -> /lib32/ld-linux.so.2`.
fn add_32_bit_libc(sysroot: &Path) -> Result<(), String> {
    let host = Path::new("/usr/lib32");
    for name in ["ld-linux.so.2", "libc.so.6"] {
        if !host.join(name).is_file() {
            return Err(format!("`{}` is missing", host.join(name).display()));
        }
    }
    let lib32 = sysroot.join("usr/lib32");
    std::fs::create_dir_all(&lib32).unwrap();
    for name in ["ld-linux.so.2", "libc.so.6"] {
        std::fs::copy(host.join(name), lib32.join(name)).unwrap();
    }
    symlink("usr/lib32", sysroot.join("lib32")).unwrap();
    symlink("/lib32/ld-linux.so.2", sysroot.join("usr/lib/ld-linux.so.2")).unwrap();
    std::fs::create_dir_all(sysroot.join("etc")).unwrap();
    Ok(())
}

/// A host file that grows while it is copied: the digest in the manifest
/// is always the digest of the bytes that landed in the tree.
#[test]
fn a_file_changing_during_the_build_has_the_digest_of_its_copy() {
    use sha2::Digest;
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let growing = d.join("growing.bin");
    std::fs::write(&growing, vec![7u8; 32 << 20]).unwrap();
    let spec = write_spec(
        d,
        &format!(
            "name = \"g\"\n[[files]]\nsrc = \"{}\"\ndest = \"/data/growing.bin\"\n",
            growing.display()
        ),
    );
    let out = d.join("out/g");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (growing, stop) = (growing.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new().append(true).open(&growing).unwrap();
            // At most 64 MiB more, whatever happens.
            for _ in 0..(16 << 10) {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                file.write_all(&[9u8; 4096]).unwrap();
            }
        })
    };
    for _ in 0..3 {
        let mut opts = options(&spec, &out);
        opts.force = true;
        let built = build(&opts).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
        let entry = built.manifest.entry(Path::new("/data/growing.bin")).unwrap();
        let copy = std::fs::read(out.join("data/growing.bin")).unwrap();
        assert_eq!(entry.size, Some(copy.len() as u64));
        assert_eq!(
            entry.sha256.map(|d| d.to_string()),
            Some(format!("{:x}", sha2::Sha256::digest(&copy)))
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn missing_commands_and_libraries_are_reported_together() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let lib = d.join("lib");
    shared_lib(&lib, "gone", &[], &[]);
    program(&d.join("prog"), &["gone"], &["-L", lib.to_str().unwrap()]);
    let text = format!(
        "name = \"m\"\ncommands = [\"no-such-command\", \"{}\", \"cat\"]\n",
        d.join("prog").display()
    );
    let spec = write_spec(d, &text);
    let out = d.join("out/m");
    let err = build(&options(&spec, &out)).unwrap_err();
    let text = rootfs::render_error(&err);
    assert_eq!(rootfs::exit_code(&err), 1);
    assert!(text.contains("2 things the rootfs needs could not be found"), "{text}");
    assert!(text.contains("command `no-such-command`"), "{text}");
    assert!(
        text.contains(
            "not found on PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        "{text}"
    );
    let prog = d.join("prog");
    let expected = format!(
        "libgone.so for command `{}`: not found, needed by {}",
        prog.display(),
        prog.display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("\n    searched ld.so.cache, /lib/x86_64-linux-gnu,"), "{text}");
    assert!(!out.exists());
}

#[test]
fn the_manifest_says_why_each_path_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let built =
        build(&Options::new(project_root().join("rootfs-spec/default.toml"), tmp.path())).unwrap();
    let manifest = Manifest::read(&built.manifest_path).unwrap();
    let paths: Vec<&Path> = manifest.entries.iter().map(|e| e.path.as_path()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "entries are sorted");
    let libc = manifest.entry(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
    assert_eq!(libc.kind, rootfs::vocab::EntryType::File);
    let in_tree = built.out.join("usr/lib/x86_64-linux-gnu/libc.so.6");
    assert_eq!(libc.sha256, Some(rootfs::vocab::Sha256::of_file(&in_tree).unwrap()));
    assert!(
        libc.why.iter().any(|w| w.starts_with("needed by /usr/bin/bash as libc.so.6")),
        "{:?}",
        libc.why
    );
    let why = manifest.why(Path::new("/bin/vim")).unwrap();
    for expected in
        ["/bin (symlink -> usr/bin", "/etc/alternatives/vim (symlink", "command `/usr/bin/vim`"]
    {
        assert!(why.contains(expected), "{why}");
    }
    for entry in &manifest.entries {
        assert!(!entry.why.is_empty(), "{} has no reason", entry.path.display());
    }
}

#[test]
fn hard_link_mode_shares_host_inodes_except_where_the_mode_differs() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let host = d.join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::copy("/usr/bin/true", host.join("plain")).unwrap();
    std::fs::copy("/usr/bin/true", host.join("suid")).unwrap();
    std::fs::set_permissions(host.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("plain", host.join("alias")).unwrap();
    let text = format!(
        "name = \"h\"\ncommands = [\"{}\", \"{}\", \"{}\"]\n",
        host.join("plain").display(),
        host.join("suid").display(),
        host.join("alias").display()
    );
    let spec = write_spec(d, &text);
    let out = d.join("out/h");
    let mut opts = options(&spec, &out);
    opts.link = rootfs::build::install::LinkMode::Hard;
    let built = build(&opts).unwrap();
    let inside = |name: &str| out.join(host.join(name).strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::metadata(inside("plain")).unwrap().ino(),
        std::fs::metadata(host.join("plain")).unwrap().ino()
    );
    // Dropping the setuid bit would change the host file: that one is copied.
    assert_ne!(
        std::fs::metadata(inside("suid")).unwrap().ino(),
        std::fs::metadata(host.join("suid")).unwrap().ino()
    );
    assert_eq!(std::fs::metadata(inside("suid")).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(std::fs::metadata(host.join("suid")).unwrap().mode() & 0o7777, 0o4755);
    // A host symlink is linked too (a new one would cost an inode), and
    // still reads as its target.
    assert_eq!(
        std::fs::symlink_metadata(inside("alias")).unwrap().ino(),
        std::fs::symlink_metadata(host.join("alias")).unwrap().ino()
    );
    assert_eq!(std::fs::read_link(inside("alias")).unwrap(), Path::new("plain"));
    // Linking changed the host inode's ctime; that alone is not a change.
    assert!(build(&opts).unwrap().up_to_date);
    let digest = |b: &Built| b.manifest.entry(&host.join("plain")).unwrap().sha256;
    opts.link = rootfs::build::install::LinkMode::Copy;
    let copied = build(&opts).unwrap();
    assert!(!copied.up_to_date, "changing the link mode rebuilds");
    assert_eq!(digest(&copied), digest(&built));
}

#[test]
fn a_sysroot_build_takes_every_file_from_the_sysroot() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    copy_sysroot(&sysroot);
    let spec = write_spec(tmp.path(), "name = \"s\"\ncommands = [\"bash\"]\n");
    let out = tmp.path().join("out/s");
    let mut opts = options(&spec, &out);
    opts.sysroot = sysroot.clone();
    let built = build(&opts).unwrap_or_else(|e| panic!("{}", rootfs::render_error(&e)));
    let sources: Vec<&Path> =
        built.manifest.entries.iter().filter_map(|e| e.source.as_deref()).collect();
    assert!(sources.len() >= 4, "{sources:?}");
    for source in sources {
        assert!(
            source.starts_with(&sysroot),
            "`{}` came from outside the sysroot",
            source.display()
        );
    }
    // The absolute symlink is recreated as it was, and resolves inside.
    assert_eq!(
        std::fs::read_link(out.join("usr/lib64/ld-linux-x86-64.so.2")).unwrap(),
        Path::new("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    );
    if rustix::process::geteuid().is_root() {
        let (status, output) = in_chroot(&out, &["/bin/bash", "-c", "echo from the sysroot"], &[]);
        assert_eq!((status, output.trim()), (0, "from the sysroot"));
    } else {
        eprintln!("skipped: needs root (running bash inside the tree uses chroot(2))");
    }
}

#[test]
fn hard_link_builds_of_two_specs_sharing_files_stay_no_ops() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut opts = Vec::new();
    for name in ["a", "b"] {
        let spec = d.join(format!("{name}.toml"));
        std::fs::write(&spec, format!("name = \"{name}\"\ncommands = [\"cat\", \"true\"]\n"))
            .unwrap();
        let mut o = options(&spec, &d.join("out").join(name));
        o.link = rootfs::build::install::LinkMode::Hard;
        build(&o).unwrap();
        opts.push(o);
    }
    // Each build linked the same host files, moving their ctime: that is not
    // a change of either.
    for o in &opts {
        let again = build(o).unwrap();
        assert!(again.up_to_date, "{:?}", again.reason);
    }
}

/// A command whose host path is under `/tmp` is copied there in the tree,
/// where every command inside sees only its own tmpfs: the build says so,
/// and says nothing for the same program elsewhere.
#[test]
fn entries_under_a_folder_the_sandbox_covers_are_named_by_a_warning() {
    let tmp = tempfile::Builder::new().prefix("rootfs-hidden-").tempdir_in("/tmp").unwrap();
    let program = tmp.path().join("bin/tool");
    std::fs::create_dir_all(program.parent().unwrap()).unwrap();
    std::fs::copy("/usr/bin/true", &program).unwrap();
    let elsewhere = crate::support::outside_tmp("rootfs-hidden-");
    let spec = write_spec(
        elsewhere.path(),
        &format!("name = \"t\"\ncommands = [\"{}\"]\n", program.display()),
    );
    let opts = options(&spec, &elsewhere.path().join("out/t"));
    let warnings = build(&opts).unwrap().warnings;
    let expected = format!("`{}` and 2 more lie under /tmp", tmp.path().display());
    assert!(
        warnings.iter().any(|w| w.starts_with(&expected) && w.contains("do not see them")),
        "{warnings:?}"
    );
    let moved = elsewhere.path().join("tool");
    std::fs::copy(&program, &moved).unwrap();
    std::fs::write(&spec, format!("name = \"t\"\ncommands = [\"{}\"]\n", moved.display())).unwrap();
    let warnings = build(&opts).unwrap().warnings;
    assert!(!warnings.iter().any(|w| w.contains("lie under")), "{warnings:?}");
}

/// The digest, SHA1, license and owner caches beside a tree are written by
/// the first build, hold an entry for each host file, content and
/// copyright file it used, and are reused, not rewritten, by a cold build (the tree
/// and the files describing it moved away), which writes the same manifest
/// and SBOM.
#[test]
fn a_cold_build_reuses_the_caches_of_the_first_without_rewriting_them() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), "name = \"t\"\ncommands = [\"cat\", \"true\"]\n");
    let out = tmp.path().join("out/t");
    let first = build(&options(&spec, &out)).unwrap();
    let side = rootfs::fsutil::side_dir(&out);
    let caches =
        ["digests.json", "sha1.json", "licenses.json", "owners.json"].map(|n| side.join(n));
    let states: Vec<_> = caches.iter().map(|c| FileState::read(c)).collect();
    assert!(states.iter().all(Option::is_some), "every cache is written: {caches:?}");
    let digests = rootfs::build::digest_cache::read(&caches[0]);
    let copied: Vec<&Path> = (first.manifest.entries.iter())
        .filter(|e| e.kind == rootfs::vocab::EntryType::File)
        .filter_map(|e| e.source.as_deref())
        .collect();
    assert!(!copied.is_empty());
    for source in &copied {
        assert!(digests.contains_key(*source), "no digest of `{}`", source.display());
    }
    let licenses = rootfs::build::license_cache::read(&caches[2]);
    assert!(
        licenses.keys().any(|p| p.ends_with("coreutils/copyright")),
        "the copyright file of `cat` is cached: {:?}",
        licenses.keys().collect::<Vec<_>>()
    );
    let described = |name: &str| std::fs::read(side.join(name)).unwrap();
    let (manifest, sbom) = (described("t.manifest.json"), described("t.spdx.json"));

    let aside = tmp.path().join("aside");
    std::fs::create_dir(&aside).unwrap();
    std::fs::rename(&out, aside.join("t")).unwrap();
    for name in ["t.manifest.json", "t.spdx.json", "t.stamp.json"] {
        std::fs::rename(side.join(name), aside.join(name)).unwrap();
    }
    let cold = build(&options(&spec, &out)).unwrap();
    assert!(!cold.up_to_date);
    let again: Vec<_> = caches.iter().map(|c| FileState::read(c)).collect();
    assert_eq!(again, states, "nothing new: the caches are left as they were");
    assert_eq!(described("t.manifest.json"), manifest);
    assert_eq!(described("t.spdx.json"), sbom);
}
