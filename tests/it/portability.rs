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

fn build_spec(dir: &Path, commands: &[&Path]) -> anyhow::Result<rootfs::build::Built> {
    let list: Vec<String> = commands.iter().map(|c| format!("{:?}", c.to_str().unwrap())).collect();
    let spec = dir.join("spec.toml");
    std::fs::write(&spec, format!("name = \"p\"\ncommands = [{}]\n", list.join(", "))).unwrap();
    let mut options = rootfs::build::Options::new(&spec, dir);
    options.out = Some(dir.join("p"));
    rootfs::build::build(&options)
}

#[test]
fn a_build_with_a_missing_symbol_version_fails_before_touching_the_previous_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = d.join("good");
    cc(&good, "int main(void) { return 0; }\n", &[]);
    let first = build_spec(d, &[&good]).unwrap();
    let listing = crate::support::tree_listing(&first.out);
    let prog = versioned_fixture(d, false);
    let err = build_spec(d, &[&good, &prog]).unwrap_err();
    let text = rootfs::render_error(&err);
    let expected = format!(
        "{}: version `V2' not found (required by {})",
        d.join("old/libv.so.1").display(),
        prog.display()
    );
    assert!(text.contains(&expected), "{text}");
    assert_eq!(rootfs::exit_code(&err), 1);
    assert_eq!(crate::support::tree_listing(&first.out), listing, "the previous tree is intact");
}

#[test]
fn the_report_names_the_cpu_level_kernel_and_glibc_the_objects_declare() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // `-z x86-64-v3` marks the program as needing x86-64-v3
    // (GNU_PROPERTY_X86_ISA_1_NEEDED), as `-march=x86-64-v3` code would.
    let v3 = d.join("v3");
    cc(&v3, "int main(void) { return 0; }\n", &["-Wl,-z,x86-64-v3"]);
    let plain = d.join("plain");
    cc(&plain, "int main(void) { return 0; }\n", &[]);
    let built = build_spec(d, &[&v3, &plain]).unwrap();
    let report = built.manifest.portability.clone().unwrap();
    assert_eq!(report.cpu, Some(rootfs::resolve::elf::IsaLevel::V3));
    assert_eq!(report.cpu_levels["x86-64-v3"], std::slice::from_ref(&v3));
    let summary = report.summary();
    assert!(summary.starts_with("needs: x86-64-v3 CPU, Linux >= "), "{summary}");
    // The host's libc names its kernel and is needed at its newest version
    // by no program this small, but every program needs some GLIBC_2.x.
    assert!(report.libc_kernel.is_some());
    let glibc = report.glibc.as_ref().unwrap();
    assert!(glibc.version.starts_with("GLIBC_2."), "{glibc:?}");
    // The manifest keeps the report: an up-to-date build gives it back.
    let again = build_spec(d, &[&v3, &plain]).unwrap();
    assert!(again.up_to_date);
    assert_eq!(again.manifest.portability, Some(report.clone()));
    let text = report.render(10);
    assert!(text.contains("cpu: x86-64-v3\n  x86-64-v3: 1 objects\n"), "{text}");
    assert!(text.contains("informational"), "{text}");
    // The loader agrees where it can: it refuses the program on a CPU
    // without v3 (`--glibc-hwcaps-mask` does not apply to ISA notes, so
    // ask the loader what this CPU supports instead).
    let supported = duct::cmd!("/lib64/ld-linux-x86-64.so.2", "--help")
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    let help = String::from_utf8_lossy(&supported.stdout);
    if help.contains("x86-64-v3 (supported, searched)") {
        let status = duct::cmd!(&v3).unchecked().run().unwrap().status;
        assert!(status.success(), "this CPU runs x86-64-v3 code");
    }
}

/// `lib/libbar.so.1` as a baseline build and as `glibc-hwcaps/x86-64-v2/`
/// and `x86-64-v3/` builds, each returning its level; `lib/libonly.so.1`
/// only as the two variants. The program, linked with an RPATH to `lib/`,
/// prints the level of each library it got.
///
/// ```sh
/// cc -shared -fPIC -o lib/[glibc-hwcaps/LEVEL/]libbar.so.1 -Wl,-soname,libbar.so.1 bar.c -DLEVEL=N
/// cc -o prog prog.c lib/libbar.so.1 lib/glibc-hwcaps/x86-64-v2/libonly.so.1 -Wl,-rpath,<d>/lib
/// ```
fn hwcaps_fixture(d: &Path) -> PathBuf {
    let lib = d.join("lib");
    for (name, dir, level) in [
        ("bar", lib.clone(), 1),
        ("bar", lib.join("glibc-hwcaps/x86-64-v2"), 2),
        ("bar", lib.join("glibc-hwcaps/x86-64-v3"), 3),
        ("only", lib.join("glibc-hwcaps/x86-64-v2"), 2),
        ("only", lib.join("glibc-hwcaps/x86-64-v3"), 3),
    ] {
        let soname = format!("-Wl,-soname,lib{name}.so.1");
        let source = format!("int {name}(void) {{ return {level}; }}\n");
        cc(&dir.join(format!("lib{name}.so.1")), &source, &["-shared", "-fPIC", &soname]);
    }
    let prog = d.join("prog");
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    let bar = lib.join("libbar.so.1");
    let only = lib.join("glibc-hwcaps/x86-64-v2/libonly.so.1");
    cc(
        &prog,
        "#include <stdio.h>\nint bar(void); int only(void);\nint main(void) { printf(\"%d %d\\n\", bar(), only()); return 0; }\n",
        &[bar.to_str().unwrap(), only.to_str().unwrap(), &rpath],
    );
    prog
}

/// What the loader in `root` makes of `prog` when the CPU offers only the
/// glibc-hwcaps levels `mask` names (what an older CPU sees).
fn run_masked(root: &Path, prog: &Path, mask: &str) -> (i32, String) {
    let argv = ["/lib64/ld-linux-x86-64.so.2", "--glibc-hwcaps-mask", mask, prog.to_str().unwrap()];
    crate::support::in_chroot(root, &argv, &[])
}

#[test]
fn every_cpu_variant_of_a_library_is_kept_so_older_cpus_find_theirs() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (running the loader inside the tree uses chroot(2))");
        return;
    }
    let help = duct::cmd!("/lib64/ld-linux-x86-64.so.2", "--help").read().unwrap();
    if !help.contains("x86-64-v3 (supported, searched)") {
        eprintln!(
            "skipped: this CPU does not run x86-64-v3 code, which the fixture's variants need"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let prog = hwcaps_fixture(d);
    let built = build_spec(d, &[&prog]).unwrap();
    let lib = d.join("lib");
    for kept in [
        "libbar.so.1",
        "glibc-hwcaps/x86-64-v2/libbar.so.1",
        "glibc-hwcaps/x86-64-v3/libbar.so.1",
        "glibc-hwcaps/x86-64-v2/libonly.so.1",
        "glibc-hwcaps/x86-64-v3/libonly.so.1",
    ] {
        let path = lib.join(kept);
        assert!(built.out.join(path.strip_prefix("/").unwrap()).is_file(), "{kept} is kept");
    }
    let why = built.manifest.why(&lib.join("glibc-hwcaps/x86-64-v2/libbar.so.1")).unwrap();
    assert!(why.contains("another CPU level's build of"), "{why}");
    // The tree answers as the sysroot does, for each CPU level.
    for (mask, expected) in [("x86-64-v3", "3 3\n"), ("x86-64-v2", "2 2\n")] {
        let (status, out) = run_masked(&built.out, &prog, mask);
        assert_eq!((status, out.as_str()), (0, expected), "mask {mask}");
        let host = duct::cmd!("/lib64/ld-linux-x86-64.so.2", "--glibc-hwcaps-mask", mask, &prog)
            .read()
            .unwrap();
        assert_eq!(format!("{host}\n"), expected, "the host agrees for mask {mask}");
    }
    // A CPU below v2 gets the baseline libbar, and no libonly at all, on
    // the sysroot as in the tree.
    let (status, out) = run_masked(&built.out, &prog, "");
    assert_ne!(status, 0);
    assert!(out.contains("libonly.so.1: cannot open shared object file"), "{out}");
}

fn build_spec_text(dir: &Path, text: &str) -> anyhow::Result<rootfs::build::Built> {
    let spec = dir.join("spec.toml");
    std::fs::write(&spec, text).unwrap();
    let mut options = rootfs::build::Options::new(&spec, dir);
    options.out = Some(dir.join("p"));
    rootfs::build::build(&options)
}

#[test]
fn a_spec_cpu_level_leaves_out_higher_variants_and_refuses_objects_that_need_more() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (running the loader inside the tree uses chroot(2))");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let prog = hwcaps_fixture(d);
    let text =
        format!("name = \"p\"\ncpu = \"x86-64-v2\"\ncommands = [{:?}]\n", prog.to_str().unwrap());
    let built = build_spec_text(d, &text).unwrap();
    let in_tree = |p: &str| built.out.join(d.join("lib").join(p).strip_prefix("/").unwrap());
    assert!(in_tree("libbar.so.1").is_file());
    assert!(in_tree("glibc-hwcaps/x86-64-v2/libbar.so.1").is_file());
    assert!(in_tree("glibc-hwcaps/x86-64-v2/libonly.so.1").is_file());
    assert!(!in_tree("glibc-hwcaps/x86-64-v3/libbar.so.1").exists(), "v3 is above the level");
    assert!(!in_tree("glibc-hwcaps/x86-64-v3/libonly.so.1").exists());
    let (status, out) = run_masked(&built.out, &prog, "x86-64-v2");
    assert_eq!((status, out.as_str()), (0, "2 2\n"));

    let v3 = d.join("v3");
    cc(&v3, "int main(void) { return 0; }\n", &["-Wl,-z,x86-64-v3"]);
    let text = format!(
        "name = \"p\"\ncpu = \"x86-64-v2\"\ncommands = [{:?}, {:?}]\n",
        prog.to_str().unwrap(),
        v3.to_str().unwrap()
    );
    let listing = crate::support::tree_listing(&built.out);
    let err = build_spec_text(d, &text).unwrap_err();
    let message = rootfs::render_error(&err);
    assert!(
        message.contains("1 object needs more than the spec's cpu = \"x86-64-v2\"")
            && message.contains(&format!("{} needs x86-64-v3", v3.display()))
            && message.contains("spec.toml:2:"),
        "{message}"
    );
    assert_eq!(crate::support::tree_listing(&built.out), listing, "nothing was written");

    let err = build_spec_text(d, "name = \"p\"\ncpu = \"pentium\"\n").unwrap_err();
    let message = rootfs::render_error(&err);
    assert!(message.contains("invalid cpu level `pentium`"), "{message}");
    assert_eq!(rootfs::exit_code(&err), 2);
}

#[test]
fn an_oci_export_names_the_cpu_level_as_its_variant_and_the_needs_as_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let v3 = d.join("v3");
    cc(&v3, "int main(void) { return 0; }\n", &["-Wl,-z,x86-64-v3"]);
    let text = format!(
        "name = \"p\"\ncommands = [{:?}]\n[image]\nlabels = {{ \"rootfs.needs.glibc\" = \"mine\" }}\n",
        v3.to_str().unwrap()
    );
    let built = build_spec_text(d, &text).unwrap();
    let oci = d.join("p.oci");
    let options = rootfs::export::Options {
        format: rootfs::export::Format::Oci,
        output: Some(oci.clone()),
        compression: None,
        epoch: 0,
        force: false,
        sysroot: PathBuf::from("/"),
    };
    rootfs::export::export(&built, &options).unwrap();
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let blob = |digest: &serde_json::Value| {
        oci.join("blobs/sha256").join(digest.as_str().unwrap().strip_prefix("sha256:").unwrap())
    };
    let index = read(oci.join("index.json"));
    assert_eq!(index["manifests"][0]["platform"]["variant"], "v3", "{index}");
    let manifest = read(blob(&index["manifests"][0]["digest"]));
    let config = read(blob(&manifest["config"]["digest"]));
    assert_eq!(config["variant"], "v3");
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["rootfs.needs.cpu"], "x86-64-v3", "{labels}");
    assert!(labels["rootfs.needs"].as_str().unwrap().starts_with("needs: x86-64-v3 CPU"));
    assert_eq!(labels["rootfs.needs.glibc"], "mine", "the spec's own labels win");
}
