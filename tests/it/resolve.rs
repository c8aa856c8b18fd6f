//! The resolver on synthetic objects compiled at test time, each case checked against glibc's own loader where it can run.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use rootfs::resolve::elf::DlopenPriority;
use rootfs::resolve::{Closure, DlopenLevel, InputKind, Options, Reason, Resolver, Skip, Via};

use crate::support::{canonical, cc, loader_trace, program, shared_lib};

fn resolve(path: &Path) -> Closure {
    Resolver::new(Options::default()).unwrap().resolve(path.to_str().unwrap())
}

/// Our answer equals what the loader does on a real exec of `path`. The
/// loader never reads `.note.dlopen`, so neither do we here.
fn assert_matches_loader(path: &Path) -> Closure {
    let options = Options { dlopen: DlopenLevel::None, ..Options::default() };
    let closure = Resolver::new(options).unwrap().resolve(path.to_str().unwrap());
    let (files, missing) = loader_trace(path);
    assert_eq!(canonical(&closure.file_paths()), files, "files of {}", path.display());
    let ours: std::collections::BTreeSet<String> =
        closure.missing_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(ours, missing, "missing of {}", path.display());
    closure
}

fn has_file(closure: &Closure, path: &Path) -> bool {
    closure.files.iter().any(|f| f.path == path)
}

/// `prog -> liba -> libb`, with liba in `mid/` and libb in `deep/`; the
/// program's search path is given by `flags`, liba's by `liba_flags`.
fn chain(dir: &Path, flags: &[&str], liba_flags: &[&str]) -> PathBuf {
    let deep = dir.join("deep");
    let mid = dir.join("mid");
    shared_lib(&deep, "b", &[], &[]);
    let mut a_flags = vec!["-L", deep.to_str().unwrap()];
    a_flags.extend_from_slice(liba_flags);
    shared_lib(&mid, "a", &["b"], &a_flags);
    let prog = dir.join("prog");
    let mut p_flags = vec![
        "-L",
        mid.to_str().unwrap(),
        "-L",
        deep.to_str().unwrap(),
        "-Wl,--allow-shlib-undefined",
    ];
    p_flags.extend_from_slice(flags);
    program(&prog, &["a"], &p_flags);
    prog
}

#[test]
fn rpath_is_inherited_by_dependencies() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rpath = format!("-Wl,-rpath,{}:{}", d.join("mid").display(), d.join("deep").display());
    let prog = chain(d, &["-Wl,--disable-new-dtags", &rpath], &[]);
    let closure = assert_matches_loader(&prog);
    assert!(has_file(&closure, &d.join("deep/libb.so")), "{closure:#?}");
    let libb = closure.files.iter().find(|f| f.path.ends_with("libb.so")).unwrap();
    assert_eq!(libb.reason, Reason::Needed { by: d.join("mid/liba.so"), name: "libb.so".into() });
}

#[test]
fn runpath_is_not_inherited() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let runpath = format!("-Wl,-rpath,{}:{}", d.join("mid").display(), d.join("deep").display());
    let prog = chain(d, &["-Wl,--enable-new-dtags", &runpath], &[]);
    let closure = assert_matches_loader(&prog);
    assert!(has_file(&closure, &d.join("mid/liba.so")));
    assert_eq!(closure.missing.len(), 1, "{closure:#?}");
    let miss = &closure.missing[0];
    assert_eq!(miss.name, "libb.so");
    assert_eq!(miss.chain, [prog.clone(), d.join("mid/liba.so")]);
    assert!(miss.searched.contains(&PathBuf::from("ld.so.cache")));
    assert!(miss.searched.contains(&PathBuf::from("/usr/lib/x86_64-linux-gnu")));
}

#[test]
fn a_library_runpath_disables_the_inherited_rpath() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rpath = format!("-Wl,-rpath,{}:{}", d.join("mid").display(), d.join("deep").display());
    let prog = chain(
        d,
        &["-Wl,--disable-new-dtags", &rpath],
        &["-Wl,--enable-new-dtags", "-Wl,-rpath,/nonexistent"],
    );
    let closure = assert_matches_loader(&prog);
    assert_eq!(closure.missing_names(), ["libb.so"]);
}

#[test]
fn runpath_in_the_same_object_disables_its_rpath() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rpath = format!("-Wl,-rpath,{}:{}", d.join("mid").display(), d.join("deep").display());
    let prog = chain(d, &["-Wl,--disable-new-dtags", &rpath], &[]);
    // The linker writes one or the other; give the program both by turning
    // its DT_DEBUG entry into a DT_RUNPATH with the same string.
    add_runpath_equal_to_rpath(&prog);
    let object = match rootfs::resolve::elf::read(&prog).unwrap() {
        rootfs::resolve::elf::FileKind::Elf(o) => o,
        other => panic!("{other:?}"),
    };
    assert!(object.runpath.is_some() && object.rpath.is_none());
    // liba comes from the RUNPATH, but libb no longer from the RPATH.
    let closure = assert_matches_loader(&prog);
    assert!(has_file(&closure, &d.join("mid/liba.so")));
    assert_eq!(closure.missing_names(), ["libb.so"]);
}

fn add_runpath_equal_to_rpath(path: &Path) {
    use goblin::elf::dynamic::{DT_DEBUG, DT_RPATH, DT_RUNPATH};
    let mut bytes = std::fs::read(path).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let dynamic = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == goblin::elf::program_header::PT_DYNAMIC)
        .unwrap();
    let dyns = &elf.dynamic.as_ref().unwrap().dyns;
    let rpath = dyns.iter().find(|d| d.d_tag == DT_RPATH).unwrap().d_val;
    let debug = dyns.iter().position(|d| d.d_tag == DT_DEBUG).unwrap();
    let at = dynamic.p_offset as usize + debug * 16;
    drop(elf);
    bytes[at..at + 8].copy_from_slice(&DT_RUNPATH.to_le_bytes());
    bytes[at + 8..at + 16].copy_from_slice(&rpath.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn origin_of_a_program_reached_through_a_symlink_is_its_real_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let lib = d.join("opt/app/lib");
    shared_lib(&lib, "a", &[], &[]);
    let real = d.join("opt/app/bin/prog");
    program(&real, &["a"], &["-L", lib.to_str().unwrap(), "-Wl,-rpath,$ORIGIN/../lib"]);
    std::fs::create_dir_all(d.join("bin")).unwrap();
    let link = d.join("bin/prog");
    symlink("../opt/app/bin/prog", &link).unwrap();
    let closure = assert_matches_loader(&link);
    assert!(has_file(&closure, &d.join("opt/app/bin/../lib/liba.so")), "{closure:#?}");
    // The loader's trace of a real exec is the truth; `ldd` on the symlink
    // takes $ORIGIN from the symlink's directory and gets it wrong.
    let ldd = duct::cmd!("ldd", &link).stdout_capture().unchecked().read().unwrap();
    assert!(ldd.contains("liba.so => not found"), "{ldd}");
}

/// Copies an ELF file and overwrites bytes of its header.
fn patched_copy(from: &Path, to: &Path, at: usize, bytes: &[u8]) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let mut data = std::fs::read(from).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(to, data).unwrap();
}

#[test]
fn libraries_of_the_wrong_machine_or_class_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = d.join("good");
    let liba = shared_lib(&good, "a", &[], &[]);
    // e_machine = EM_AARCH64 in one directory, EI_CLASS = ELFCLASS32 in another.
    patched_copy(&liba, &d.join("arm/liba.so"), 18, &183u16.to_le_bytes());
    patched_copy(&liba, &d.join("elf32/liba.so"), 4, &[1]);
    let prog = d.join("prog");
    let rpath = format!(
        "-Wl,-rpath,{}:{}:{}",
        d.join("arm").display(),
        d.join("elf32").display(),
        good.display()
    );
    program(&prog, &["a"], &["-L", good.to_str().unwrap(), &rpath]);
    let closure = assert_matches_loader(&prog);
    assert!(has_file(&closure, &good.join("liba.so")), "{closure:#?}");

    // With only the wrong ones present, the miss says why.
    std::fs::remove_file(good.join("liba.so")).unwrap();
    let closure = assert_matches_loader(&prog);
    let note = closure.missing[0].note.as_deref().unwrap();
    assert!(note.contains("elf32/liba.so") && note.contains("not elf64 x86_64"), "{note}");
}

#[test]
fn a_missing_library_is_reported_with_its_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rpath = format!("-Wl,-rpath,{}:{}", d.join("mid").display(), d.join("deep").display());
    let prog = chain(d, &[&rpath], &[]);
    std::fs::remove_file(d.join("deep/libb.so")).unwrap();
    let closure = assert_matches_loader(&prog);
    let miss = &closure.missing[0];
    assert_eq!(miss.name, "libb.so");
    assert_eq!(miss.chain, [prog.clone(), d.join("mid/liba.so")]);
    // liba's own RUNPATH is empty and the program's is not inherited: the
    // search went to the cache and the default directories.
    assert_eq!(miss.searched.first(), Some(&PathBuf::from("ld.so.cache")));
    let text = rootfs::resolve::render_tree(std::slice::from_ref(&closure));
    assert!(text.contains("libb.so => not found"), "{text}");
    assert!(
        text.contains(&format!(
            "missing libb.so: needed by {} -> {}/mid/liba.so",
            prog.display(),
            d.display()
        )),
        "{text}"
    );
}

#[test]
fn scripts_resolve_to_their_interpreter_and_env_to_the_program_on_path() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sh_script = d.join("s.sh");
    std::fs::write(&sh_script, "#!/bin/sh -e\necho hi\n").unwrap();
    let closure = resolve(&sh_script);
    assert_eq!(closure.kind, InputKind::Script);
    assert!(closure.is_complete(), "{closure:#?}");
    assert!(has_file(&closure, Path::new("/bin/sh")));
    assert!(closure.files.iter().any(|f| f.path.ends_with("libc.so.6")));
    let (sh_files, _) = loader_trace(Path::new("/bin/sh"));
    let mut expected = sh_files.clone();
    expected.insert(std::fs::canonicalize("/bin/sh").unwrap());
    assert_eq!(canonical(&closure.file_paths()), expected);

    let env_script = d.join("e");
    std::fs::write(&env_script, "#!/usr/bin/env -S bash -e\necho hi\n").unwrap();
    let closure = resolve(&env_script);
    assert!(closure.is_complete(), "{closure:#?}");
    assert!(has_file(&closure, Path::new("/usr/bin/env")));
    let bash = closure.files.iter().find(|f| f.path.ends_with("bash")).expect("bash found on PATH");
    assert_eq!(bash.reason, Reason::Env { of: env_script.clone() });
    assert!(
        closure.files.iter().any(|f| f.path.ends_with("libtinfo.so.6")),
        "bash's own libraries come too"
    );

    let nowhere = d.join("n");
    std::fs::write(&nowhere, "#!/usr/bin/env no-such-program-anywhere\n").unwrap();
    assert_eq!(resolve(&nowhere).missing_names(), ["no-such-program-anywhere"]);
}

#[test]
fn static_executables_need_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (name, flag) in [("static", "-static"), ("static-pie", "-static-pie")] {
        let out = d.join(name);
        cc(&out, "int main(void) { return 0; }\n", &[flag]);
        let closure = resolve(&out);
        assert_eq!(closure.kind, InputKind::Static, "{name}");
        assert!(closure.files.is_empty() && closure.is_complete(), "{name}: {closure:#?}");
    }
}

#[test]
fn a_sysroot_is_searched_alone_and_its_absolute_symlinks_stay_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let host_lib = Path::new("/usr/lib/x86_64-linux-gnu");
    // A merged-/usr layout whose absolute symlinks would point at the host
    // if followed outside the sysroot.
    std::fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    symlink("usr/lib", root.join("lib")).unwrap();
    symlink("usr/lib64", root.join("lib64")).unwrap();
    symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        root.join("usr/lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    for file in ["ld-linux-x86-64.so.2", "libc.so.6"] {
        std::fs::copy(host_lib.join(file), root.join("usr/lib/x86_64-linux-gnu").join(file))
            .unwrap();
    }
    // No ld.so.cache: the libraries of /opt/lib are found through ld.so.conf.
    std::fs::create_dir_all(root.join("etc/ld.so.conf.d")).unwrap();
    std::fs::write(root.join("etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n").unwrap();
    std::fs::write(root.join("etc/ld.so.conf.d/opt.conf"), "/opt/lib\n").unwrap();
    let opt = root.join("opt/lib");
    shared_lib(&opt, "a", &[], &[]);
    program(&root.join("usr/bin/prog"), &["a"], &["-L", opt.to_str().unwrap()]);
    symlink("/usr/bin/prog", root.join("usr/bin/alias")).unwrap();

    let resolver =
        Resolver::new(Options { sysroot: root.to_path_buf(), ..Options::default() }).unwrap();
    let closure = resolver.resolve("/usr/bin/alias");
    assert!(closure.is_complete(), "{closure:#?}");
    assert_eq!(
        closure.file_paths(),
        [
            Path::new("/lib/x86_64-linux-gnu/libc.so.6"),
            Path::new("/lib64/ld-linux-x86-64.so.2"),
            Path::new("/opt/lib/liba.so")
        ]
    );
    let interp =
        closure.files.iter().find(|f| f.path == Path::new("/lib64/ld-linux-x86-64.so.2")).unwrap();
    assert_eq!(interp.located.real, Path::new("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
    let links: Vec<(&Path, &Path)> =
        interp.located.links.iter().map(|l| (l.path.as_path(), l.target.as_path())).collect();
    assert_eq!(
        links,
        [
            (Path::new("/lib64"), Path::new("usr/lib64")),
            (
                Path::new("/usr/lib64/ld-linux-x86-64.so.2"),
                Path::new("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
            ),
            (Path::new("/lib"), Path::new("usr/lib")),
        ]
    );
    assert_eq!(closure.located.as_ref().unwrap().real, Path::new("/usr/bin/prog"));
}

/// A candidate the loader opens but cannot use stops the search (it does
/// not go on to the good library in a later directory), as glibc's
/// `open_verify` and `_dl_map_object_from_fd` do.
#[test]
fn a_bad_candidate_in_the_search_path_stops_the_loader() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = d.join("good");
    shared_lib(&good, "a", &[], &[]);
    // A linker script, as `libc.so` is; long enough to be read as a header.
    std::fs::create_dir_all(d.join("text")).unwrap();
    let script =
        "/* GNU ld script: use the shared library */\nGROUP ( /lib/x86_64-linux-gnu/libc.so.6 )\n";
    std::fs::write(d.join("text/liba.so"), script).unwrap();
    // A directory where the library would be.
    std::fs::create_dir_all(d.join("dir/liba.so")).unwrap();
    // A relocatable object (`cc -c`) named like the library.
    cc(&d.join("rel/liba.so"), "int a(void) { return 1; }\n", &["-c", "-fPIC"]);
    for (first, expected) in [
        ("text", "invalid ELF header"),
        ("dir", "cannot read file data"),
        ("rel", "only ET_DYN and ET_EXEC can be loaded"),
    ] {
        let prog = d.join(format!("prog-{first}"));
        let rpath = format!("-Wl,-rpath,{}:{}", d.join(first).display(), good.display());
        program(&prog, &["a"], &["-L", good.to_str().unwrap(), &rpath]);
        let closure = resolve(&prog);
        assert_eq!(closure.missing_names(), ["liba.so"], "{first}");
        let note = closure.missing[0].note.as_deref().unwrap();
        assert!(note.contains(expected), "{first}: {note}");
        let trace = duct::cmd!(&prog)
            .env("LD_TRACE_LOADED_OBJECTS", "1")
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .read()
            .unwrap();
        assert!(trace.contains(expected), "{first}: the loader says {trace}");
    }
}

#[test]
fn a_crlf_shebang_names_an_interpreter_that_does_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("crlf");
    std::fs::write(&script, "#!/bin/sh\r\necho hi\r\n").unwrap();
    let closure = resolve(&script);
    assert_eq!(closure.missing_names(), ["/bin/sh\r"]);
}

/// `deps NAME` finds NAME on `PATH` as the spec's commands and `which` do;
/// a relative path with a slash is still taken from the working directory.
#[test]
fn a_name_without_a_slash_is_a_command_found_on_path() {
    let first_on_path = rootfs::resolve::DEFAULT_PATH
        .iter()
        .map(|dir| Path::new(dir).join("cat"))
        .find(|p| p.is_file())
        .unwrap();
    // On Debian's merged /usr, /usr/bin comes before /bin.
    assert_eq!(first_on_path, Path::new("/usr/bin/cat"));
    let options = Options::default();
    let closure = Resolver::new(options.clone()).unwrap().resolve("cat");
    assert_eq!(closure.path, first_on_path);
    assert!(closure.is_complete() && !closure.files.is_empty(), "{closure:#?}");
    let by_name = rootfs::resolve::deps::run(&options, &["cat".to_string()], true).unwrap();
    let by_path =
        rootfs::resolve::deps::run(&options, &["/usr/bin/cat".to_string()], true).unwrap();
    assert_eq!(by_name.exit, 0, "{}", by_name.stderr);
    assert_eq!(by_name.stdout.replace("\"cat\"", "\"/usr/bin/cat\""), by_path.stdout);

    let tmp = tempfile::tempdir().unwrap();
    let name = "rootfs-test-not-on-path";
    program(&tmp.path().join("bin").join(name), &[], &[]);
    let options = Options { cwd: tmp.path().to_path_buf(), ..Options::default() };
    let resolver = Resolver::new(options.clone()).unwrap();
    for relative in [format!("./bin/{name}"), format!("bin/{name}")] {
        let closure = resolver.resolve(&relative);
        assert!(closure.is_complete(), "{relative}: {closure:#?}");
        assert_eq!(closure.path, tmp.path().join(&relative));
    }
    let report = rootfs::resolve::deps::run(&options, &[name.to_string()], false).unwrap();
    assert_eq!(report.exit, 1);
    assert_eq!(
        report.stdout,
        format!(
            "{name} (error: `{name}` not found on PATH \
             /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)\n"
        )
    );
}

/// A `.note.dlopen` note, emitted with inline assembly as systemd's
/// `ELF_NOTE_DLOPEN` emits it: owner `FDO`, type 0x407c0c0a, a NUL-terminated
/// JSON array, each part 4-byte aligned. `#json` turns the C string literal
/// into an assembler string with its quotes escaped.
const DLOPEN_NOTE_MACRO: &str = r#"
#define DLOPEN_NOTE(json)                                   \
    __asm__(".pushsection .note.dlopen,\"a\",@note\n"       \
            ".balign 4\n"                                   \
            ".long 4\n"           /* namesz: FDO and NUL */ \
            ".long 2f - 1f\n"     /* descsz */              \
            ".long 0x407c0c0a\n"  /* type */                \
            ".asciz \"FDO\"\n"                              \
            "1: .asciz " #json "\n"                         \
            "2: .balign 4\n"                                \
            ".popsection\n")
"#;

/// `prog`, whose notes declare libraries of every kind, in `lib/`:
/// - `core`: required `libreq.so`, which needs `libdep.so` and itself
///   declares a required `libplugin.so`, found only through its own
///   RUNPATH (`$ORIGIN/plugins`);
/// - `alt`: `libalt.so.2` or else `libalt.so.1` (no priority: recommended),
///   of which only the second exists;
/// - `extra`: suggested `libsugg.so`, which exists;
/// - `gone`: required `libgone.so`, and `opt`: recommended `libnothere.so`,
///   neither of which exists;
/// - and a note that is not JSON.
fn dlopen_fixture(d: &Path) -> PathBuf {
    let lib = d.join("lib");
    shared_lib(&lib, "dep", &[], &[]);
    shared_lib(&lib.join("plugins"), "plugin", &[], &[]);
    shared_lib(&lib, "sugg", &[], &[]);
    // cc -o lib/libalt.so.1 lib/libalt.so.1.c -shared -fPIC
    cc(&lib.join("libalt.so.1"), "int alt(void) { return 1; }\n", &["-shared", "-fPIC"]);
    let libreq = [
        DLOPEN_NOTE_MACRO,
        r#"DLOPEN_NOTE("[{\"feature\":\"plugin\",\"priority\":\"required\",\"soname\":[\"libplugin.so\"]}]");
int dep(void);
int req(void) { return dep(); }
"#,
    ]
    .concat();
    // cc -o lib/libreq.so lib/libreq.so.c -shared -fPIC -Llib -ldep
    //    -Wl,-rpath,$ORIGIN:$ORIGIN/plugins
    let lib_flag = format!("-L{}", lib.display());
    let flags = ["-shared", "-fPIC", &lib_flag, "-ldep", "-Wl,-rpath,$ORIGIN:$ORIGIN/plugins"];
    cc(&lib.join("libreq.so"), &libreq, &flags);
    let prog = [
        DLOPEN_NOTE_MACRO,
        r#"DLOPEN_NOTE("[{\"feature\":\"core\",\"description\":\"the core\",\"priority\":\"required\",\"soname\":[\"libreq.so\"]},{\"feature\":\"alt\",\"soname\":[\"libalt.so.2\",\"libalt.so.1\"]}]");
DLOPEN_NOTE("[{\"feature\":\"extra\",\"priority\":\"suggested\",\"soname\":[\"libsugg.so\"]}]");
DLOPEN_NOTE("[{\"feature\":\"gone\",\"priority\":\"required\",\"soname\":[\"libgone.so\"]},{\"feature\":\"opt\",\"priority\":\"recommended\",\"soname\":[\"libnothere.so\"]}]");
DLOPEN_NOTE("not json");
int main(void) { return 0; }
"#,
    ]
    .concat();
    // cc -o prog prog.c -Wl,-rpath,<d>/lib
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    let out = d.join("prog");
    cc(&out, &prog, &[&rpath]);
    out
}

fn resolve_at(path: &Path, level: DlopenLevel) -> Closure {
    let options = Options { dlopen: level, ..Options::default() };
    Resolver::new(options).unwrap().resolve(path.to_str().unwrap())
}

fn opened<'a>(closure: &'a Closure, path: &Path) -> &'a rootfs::resolve::Opened {
    closure.files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{closure:#?}"))
}

#[test]
fn libraries_declared_in_dlopen_notes_are_loaded_as_dlopen_would() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let lib = d.join("lib");
    let prog = dlopen_fixture(d);
    let closure = resolve_at(&prog, DlopenLevel::Recommended);

    // A required library that exists, with its own dependencies.
    let req = opened(&closure, &lib.join("libreq.so"));
    assert_eq!(
        req.reason,
        Reason::Dlopen {
            by: prog.clone(),
            name: "libreq.so".into(),
            feature: Some("core".into()),
            priority: DlopenPriority::Required,
        }
    );
    assert_eq!(req.via, Via::Runpath);
    let dep = opened(&closure, &lib.join("libdep.so"));
    assert_eq!(dep.reason, Reason::Needed { by: lib.join("libreq.so"), name: "libdep.so".into() });
    // Declared by a library: searched with that library's RUNPATH.
    let plugin = opened(&closure, &lib.join("plugins/libplugin.so"));
    assert!(
        matches!(&plugin.reason, Reason::Dlopen { by, .. } if *by == lib.join("libreq.so")),
        "{plugin:?}"
    );
    // Of two alternatives, the first found.
    let alt = opened(&closure, &lib.join("libalt.so.1"));
    assert!(matches!(&alt.reason, Reason::Dlopen { name, .. } if name == "libalt.so.1"));

    // A suggested library is left out at the level `recommended`, and an
    // optional one that is missing is no miss; both are reported.
    assert!(!closure.files.iter().any(|f| f.path.ends_with("libsugg.so")), "{closure:#?}");
    let skipped: Vec<(&str, &Skip)> =
        closure.skipped_dlopen.iter().map(|s| (s.entry.sonames[0].as_str(), &s.why)).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0], ("libsugg.so", &Skip::BelowLevel { level: DlopenLevel::Recommended }));
    assert!(
        matches!(skipped[1], ("libnothere.so", Skip::NotFound { searched, .. }) if searched.contains(&lib)),
        "{skipped:?}"
    );
    // A required library that is missing is a miss, as any other.
    assert_eq!(closure.missing_names(), ["libgone.so"]);
    assert_eq!(closure.missing[0].chain, std::slice::from_ref(&prog));
    assert!(!closure.is_complete());
    // The note that is not JSON is a warning, and nothing else.
    assert_eq!(closure.warnings.len(), 1, "{:?}", closure.warnings);
    assert!(closure.warnings[0].contains("not valid JSON"), "{:?}", closure.warnings);

    let text = rootfs::resolve::render_tree(std::slice::from_ref(&closure));
    for line in [
        format!("    dlopen libreq.so => {}/libreq.so", lib.display()),
        format!("        libdep.so => {}/libdep.so", lib.display()),
        format!("        dlopen libplugin.so => {}/plugins/libplugin.so", lib.display()),
        format!("    dlopen libalt.so.1 => {}/libalt.so.1", lib.display()),
        "    dlopen libgone.so => not found".to_string(),
        format!(
            "    skipped dlopen libsugg.so (suggested for feature `extra`) of {}: below the level recommended",
            prog.display()
        ),
        format!(
            "    skipped dlopen libnothere.so (recommended for feature `opt`) of {}: not found, and optional",
            prog.display()
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&rootfs::resolve::render_json(std::slice::from_ref(&closure)))
            .unwrap();
    let entry = &json[prog.to_str().unwrap()];
    let dlopened: Vec<&str> =
        entry["dlopen"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    // Sorted by path: lib/libalt.so.1, lib/libreq.so, lib/plugins/libplugin.so.
    assert_eq!(dlopened, ["libalt.so.1", "libreq.so", "libplugin.so"]);
    assert_eq!(entry["dlopen"][1]["priority"], "required");
    assert_eq!(entry["missing"], serde_json::json!(["libgone.so"]));
    assert_eq!(entry["skipped_dlopen"][1]["why"], "not found");
}

#[test]
fn the_dlopen_level_chooses_which_declared_libraries_come() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let lib = d.join("lib");
    let prog = dlopen_fixture(d);

    let all = resolve_at(&prog, DlopenLevel::Suggested);
    assert!(opened(&all, &lib.join("libsugg.so")).via == Via::Runpath);
    assert!(all.skipped_dlopen.iter().all(|s| matches!(s.why, Skip::NotFound { .. })));

    let required = resolve_at(&prog, DlopenLevel::Required);
    assert!(has_file(&required, &lib.join("libreq.so")));
    assert!(has_file(&required, &lib.join("plugins/libplugin.so")));
    assert!(!has_file(&required, &lib.join("libalt.so.1")));
    assert_eq!(required.missing_names(), ["libgone.so"]);

    // Without notes, exactly what the loader loads.
    let none = resolve_at(&prog, DlopenLevel::None);
    assert!(none.is_complete(), "{none:#?}");
    assert_eq!(canonical(&none.file_paths()), loader_trace(&prog).0);
    assert_eq!(none.skipped_dlopen.len(), 5);
}
