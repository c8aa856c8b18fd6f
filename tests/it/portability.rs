//! What a tree needs of the machine beneath it: symbol versions checked as the loader checks them, and the CPU level and kernel its objects declare.

use std::path::{Path, PathBuf};

use rootfs::resolve::{Options, Resolver};

use crate::support::cc;

/// `libv.so.1` in `new/` defines `V1` and `V2`; the one in `old/` only
/// `V1`. The program calls `v2`, so it needs `V2`, and its RPATH points at
/// `old/`, where the loader refuses it.
///
/// ```sh
/// cc -shared -fPIC -o new/libv.so.1 -Wl,-soname,libv.so.1 -Wl,--version-script=v.map v.c
/// cc -shared -fPIC -o old/libv.so.1 -Wl,-soname,libv.so.1 -Wl,--version-script=old.map old.c
/// cc -o prog prog.c new/libv.so.1 -Wl,-rpath,<d>/old
/// ```
fn versioned_fixture(d: &Path, weak: bool) -> PathBuf {
    std::fs::write(d.join("v.map"), "V1 { global: v1; local: *; };\nV2 { global: v2; } V1;\n")
        .unwrap();
    std::fs::write(d.join("old.map"), "V1 { global: v1; local: *; };\n").unwrap();
    let soname = ["-shared", "-fPIC", "-Wl,-soname,libv.so.1"];
    let new_map = format!("-Wl,--version-script={}", d.join("v.map").display());
    let old_map = format!("-Wl,--version-script={}", d.join("old.map").display());
    cc(
        &d.join("new/libv.so.1"),
        "int v1(void) { return 1; }\nint v2(void) { return 2; }\n",
        &[&soname[..], &[new_map.as_str()]].concat(),
    );
    cc(
        &d.join("old/libv.so.1"),
        "int v1(void) { return 1; }\n",
        &[&soname[..], &[old_map.as_str()]].concat(),
    );
    let prog = d.join("prog");
    let rpath = format!("-Wl,-rpath,{}", d.join("old").display());
    let lib = d.join("new/libv.so.1");
    let source = if weak {
        // A weak reference to `v2` makes the version need weak too.
        "#pragma weak v2\nint v2(void);\nint main(void) { return v2 ? v2() != 2 : 0; }\n"
    } else {
        "int v2(void);\nint main(void) { return v2() != 2; }\n"
    };
    cc(&prog, source, &[lib.to_str().unwrap(), &rpath]);
    prog
}

fn loader_says(prog: &Path) -> String {
    let out = duct::cmd!(prog).stderr_capture().stdout_null().unchecked().run().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_symbol_version_the_library_lacks_is_a_miss_in_the_loaders_words() {
    let tmp = tempfile::tempdir().unwrap();
    let prog = versioned_fixture(tmp.path(), false);
    let closure = Resolver::new(Options::default()).unwrap().resolve(prog.to_str().unwrap());
    assert!(closure.missing.is_empty(), "{:?}", closure.missing);
    assert_eq!(closure.version_misses.len(), 1, "{:?}", closure.version_misses);
    let ours = closure.version_misses[0].to_string();
    // The loader prefixes its message with the program's name.
    let loader = loader_says(&prog);
    assert_eq!(loader.trim_end(), format!("{}: {ours}", prog.display()), "{loader}");
    assert!(!closure.is_complete());
    let text = rootfs::resolve::render_tree(std::slice::from_ref(&closure));
    assert!(text.contains(&ours), "{text}");
}

#[test]
fn a_weak_version_need_is_not_a_miss() {
    let tmp = tempfile::tempdir().unwrap();
    let prog = versioned_fixture(tmp.path(), true);
    let closure = Resolver::new(Options::default()).unwrap().resolve(prog.to_str().unwrap());
    assert!(closure.version_misses.is_empty(), "{:?}", closure.version_misses);
    assert_eq!(loader_says(&prog), "", "the loader starts it too");
}
