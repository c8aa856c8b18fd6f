//! Foreign architectures: `rootfs smoke` of an arm64 tree (every probe under qemu-user, on the tree and on its sysroot) against a plain loop of `chroot TREE qemu-aarch64-static PROG --version` (`bench/qemu-chroot-loop.sh`), and the export of a two-architecture spec as one image index against two exports of one architecture each.
//!
//! Both build their trees from bookworm's packages (amd64 and arm64, the
//! fixed [`PACKAGES`] and [`COMMANDS`]) once, untimed, and time whole
//! processes round-robin after a warm-up, as the other benchmarks do.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

use super::timing::{Contender, Measured, Side, Trash, round_robin, sync_and_settle};
use super::write_file;
use crate::project_root;

/// The packages of both benchmarks' trees.
const PACKAGES: &[&str] = &["bash", "coreutils", "findutils", "grep", "procps", "sed"];

/// The programs smoked (each probed with `--version`), a fixed list of
/// the packages' commands.
const COMMANDS: &[&str] = &[
    "bash", "cat", "chmod", "cp", "cut", "date", "dd", "df", "du", "env", "expr", "find", "grep",
    "head", "id", "ls", "mkdir", "mv", "ps", "readlink", "rm", "sed", "seq", "sort", "stat",
    "tail", "touch", "tr", "uname", "wc",
];

/// The spec of `architecture` (one) or `architectures` (several).
fn spec_text(name: &str, arches: &[&str]) -> String {
    let quoted =
        |items: &[&str]| items.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
    let arch = match arches {
        [one] => format!("architecture = \"{one}\""),
        many => format!("architectures = [{}]", quoted(many)),
    };
    format!(
        "name = \"{name}\"\ncommands = [{}]\n\n[sysroot.debian]\nsuite = \"bookworm\"\n{arch}\npackages = [{}]\n\n[image]\ncmd = [\"/usr/bin/uname\", \"-m\"]\n",
        quoted(COMMANDS),
        quoted(PACKAGES)
    )
}

/// A spec in its own folder under `work`: the spec's path and its output.
fn write_spec(work: &Path, name: &str, arches: &[&str]) -> Result<(PathBuf, PathBuf)> {
    let dir = work.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let spec = dir.join("spec.toml");
    write_file(&spec, &spec_text(name, arches))?;
    Ok((spec, dir.join("out")))
}

/// `xtask rootfs COMMAND SPEC --out OUT EXTRA...`.
fn rootfs(exe: &Path, command: &str, spec: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.args(["rootfs", command]).arg(spec).arg("--out").arg(out).args(extra);
    c
}

fn untimed(mut command: Command, what: &str) -> Result<()> {
    let status = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
    ensure!(status.with_context(|| what.to_string())?.success(), "{what} failed");
    Ok(())
}

/// Both benchmarks; their section of the results, in Markdown.
pub fn run(exe: &Path, work: &Path, runs: usize, only: Option<&str>) -> Result<String> {
    let mut out = String::new();
    if only.is_none_or(|o| o == "foreign-smoke") {
        out.push_str(&smoke(exe, work, runs)?);
    }
    if only.is_none_or(|o| o == "multiarch-export") {
        out.push_str(&export(exe, work, runs)?);
    }
    Ok(out)
}

/// The arm64 smoke run against the plain qemu-user loop.
fn smoke(exe: &Path, work: &Path, runs: usize) -> Result<String> {
    eprintln!("== foreign smoke: arm64, {} programs", COMMANDS.len());
    let (spec, tree) = write_spec(work, "foreign-smoke", &["arm64"])?;
    untimed(rootfs(exe, "build", &spec, &tree, &[]), "building the arm64 tree")?;
    // The loop's tree: a hard-linked copy holding the emulator, which a
    // chroot cannot reach outside it.
    let copy = tree.with_file_name("loop-tree");
    let _ = std::fs::remove_dir_all(&copy);
    let cp = Command::new("cp").arg("-al").arg(&tree).arg(&copy).status();
    ensure!(cp.context("copying the tree")?.success(), "cp -al `{}` failed", tree.display());
    let emulator = Path::new("/usr/bin/qemu-aarch64-static");
    std::fs::copy(emulator, copy.join("qemu-aarch64-static"))
        .with_context(|| format!("failed to copy `{}`", emulator.display()))?;
    let list = tree.with_file_name("programs.txt");
    let lines: String = COMMANDS.iter().map(|c| format!("/usr/bin/{c}\n")).collect();
    write_file(&list, &lines)?;
    sync_and_settle();
    let before = load_average();
    let mut contenders = smoke_contenders(exe, &spec, &tree, &copy, &list, runs);
    round_robin(&mut contenders);
    let measured: Vec<(&str, Measured)> =
        contenders.iter().map(|c| (c.label, c.measured())).collect();
    let [first, to_loop, rerun] = [0, 1, 2].map(|i| (measured[i].0, measured[i].1.clone()));
    let mut out = format!("### foreign smoke: arm64 tree of {} programs\n\n", COMMANDS.len());
    let _ = writeln!(
        out,
        "Medians of {runs} runs (after one warm-up); load average {before} before, {} after.\n",
        load_average()
    );
    out.push_str(&table(&[first, to_loop.clone()], "our first run / loop"));
    out.push_str(&table(&[rerun, to_loop], "our rerun / loop"));
    Ok(out)
}

/// Our first run, the loop, and our rerun. A first run has nothing
/// remembered: each probe runs on the sysroot too
/// (`run/smoke/remembered.rs`); a rerun runs only the tree's side.
fn smoke_contenders<'a>(
    exe: &'a Path,
    spec: &'a Path,
    tree: &'a Path,
    copy: &'a Path,
    list: &'a Path,
    runs: usize,
) -> Vec<Contender<'a>> {
    let script = project_root().join("bench/qemu-chroot-loop.sh");
    let forget = move || {
        let _ = std::fs::remove_file(rootfs::run::smoke::remembered::path_for(tree));
        sync_and_settle();
    };
    vec![
        Contender::new(
            "rootfs smoke, first run (arm64 tree and sysroot, qemu-user)",
            Side::Ours,
            runs,
            move || rootfs(exe, "smoke", spec, tree, &["--no-build"]),
        )
        .prepare(forget),
        Contender::new(
            "loop: chroot TREE qemu-aarch64-static PROG --version",
            Side::Theirs,
            runs,
            move || {
                let mut c = Command::new(&script);
                c.arg(copy).arg(list).arg("/qemu-aarch64-static").arg("10");
                c
            },
        )
        .prepare(sync_and_settle),
        Contender::new("rootfs smoke, rerun (reference remembered)", Side::Ours, runs, move || {
            rootfs(exe, "smoke", spec, tree, &["--no-build"])
        })
        .prepare(sync_and_settle),
    ]
}

/// The two-architecture export against two single-architecture exports,
/// each with nothing cached.
fn export(exe: &Path, work: &Path, runs: usize) -> Result<String> {
    eprintln!("== multi-architecture export: amd64 + arm64");
    let (multi, multi_out) = write_spec(work, "multiarch-export", &["amd64", "arm64"])?;
    let (amd64, amd64_out) = write_spec(work, "single-amd64", &["amd64"])?;
    let (arm64, arm64_out) = write_spec(work, "single-arm64", &["arm64"])?;
    let trash = Trash::new(work.join("trash/multiarch"));
    let oci = |out: &Path| out.with_file_name("image.oci");
    let caches = [
        rootfs::export::layer_cache_path(&multi_out.join("amd64")),
        rootfs::export::layer_cache_path(&amd64_out),
        rootfs::export::layer_cache_path(&arm64_out),
    ];
    let outputs: Vec<PathBuf> =
        [&multi_out, &amd64_out, &arm64_out].iter().map(|o| oci(o)).chain(caches).collect();
    let export_of = |spec: &Path, out: &Path| {
        let output = oci(out);
        rootfs(
            exe,
            "export",
            spec,
            out,
            &["--format", "oci", "--output", output.to_str().unwrap_or("")],
        )
    };
    for (spec, out) in [(&multi, &multi_out), (&amd64, &amd64_out), (&arm64, &arm64_out)] {
        untimed(rootfs(exe, "build", spec, out, &[]), "building the trees to export")?;
    }
    let clear = || trash.clear(&outputs.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    let mut contenders = vec![
        Contender::new("export --format oci, amd64 + arm64 (one index)", Side::Ours, runs, || {
            export_of(&multi, &multi_out)
        })
        .prepare(clear),
        Contender::new("export --format oci, amd64 alone", Side::Theirs, runs, || {
            export_of(&amd64, &amd64_out)
        })
        .prepare(clear),
        Contender::new("export --format oci, arm64 alone", Side::Theirs, runs, || {
            export_of(&arm64, &arm64_out)
        })
        .prepare(clear),
    ];
    round_robin(&mut contenders);
    let measured: Vec<(&str, Measured)> =
        contenders.iter().map(|c| (c.label, c.measured())).collect();
    let mut out =
        String::from("### multi-architecture export: one image index against two images\n\n");
    let _ =
        writeln!(out, "Medians of {runs} runs (after one warm-up), nothing cached before each.\n");
    out.push_str(&table(&measured, "index / (amd64 + arm64)"));
    Ok(out)
}

/// The table of medians, and the ratio of the first to the sum of the
/// others.
fn table(measured: &[(&str, Measured)], ratio_label: &str) -> String {
    let mut out = String::from("| what | median | min–max |\n|---|---|---|\n");
    let mut medians = Vec::new();
    for (label, m) in measured {
        match m {
            Ok(t) => {
                let s = |d: std::time::Duration| d.as_secs_f64();
                let _ = writeln!(
                    out,
                    "| {label} | {:.2} s | {:.2}–{:.2} s |",
                    s(t.median),
                    s(t.min),
                    s(t.max)
                );
                medians.push(s(t.median));
            }
            Err(e) => {
                let _ = writeln!(out, "| {label} | failed: {e} | |");
            }
        }
    }
    if medians.len() == measured.len() && medians.len() > 1 {
        let rest: f64 = medians[1..].iter().sum();
        let _ = writeln!(out, "\n{ratio_label}: **{:.2}x**\n", medians[0] / rest);
    }
    out
}

/// `/proc/loadavg`'s first three fields.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
