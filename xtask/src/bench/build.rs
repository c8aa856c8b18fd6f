//! The build benchmark: on each command list, our resolution and builds (first, cold, no-op, one input changed, `--link hard`) against the copy and hard-link floors and the peers' scripts in `bench/`, then which programs load in each tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

use super::timing::{Contender, Measured, Side, Trash, round_robin};
use super::{List, Options, report, write_file, write_spec};
use crate::project_root;

/// What one list's benchmark measured.
pub struct Row {
    pub list: String,
    pub programs: usize,
    /// Regular files our build copies, and their size.
    pub files: usize,
    pub mib: f64,
    pub ours: Vec<(&'static str, Measured)>,
    pub peers: Vec<(&'static str, Measured)>,
    /// Programs that fail to load inside each tool's tree (`None`: not
    /// checked, which needs root for chroot).
    pub broken: Vec<(&'static str, Option<usize>)>,
}

/// Measures each list in turn; returns the build section of the results,
/// in Markdown.
pub fn run(exe: &Path, work: &Path, lists: &[&List], options: &Options) -> Result<String> {
    let mut rows = Vec::new();
    for list in lists {
        eprintln!("== {} ({} programs: {})", list.name, list.programs.len(), list.rule);
        rows.push(measure(exe, work, list, options)?);
    }
    // Deleting the trees moved aside is left to the end, so that it cannot
    // slow any measurement down.
    let trash = work.join("trash");
    std::fs::remove_dir_all(&trash)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .with_context(|| format!("failed to remove `{}`", trash.display()))?;
    Ok(report::render(&rows, options.runs))
}

fn measure(exe: &Path, work: &Path, list: &List, options: &Options) -> Result<Row> {
    let files = Files::write(work, list)?;
    let (copied, bytes) = first_build(exe, &files, list)?;
    let trash = Trash::new(work.join("trash").join(&list.name));
    let mut contenders = ours(exe, &files, &list.programs, &trash, options.runs);
    contenders.extend(floors(&files, &trash, options.runs));
    if !options.no_peers {
        // The slow peers get fewer runs on the big list.
        let runs = if list.programs.len() > 200 { options.runs.min(3) } else { options.runs };
        contenders.extend(peers(&files, &trash, runs));
    }
    round_robin(&mut contenders);
    let broken = broken_trees(&contenders, &list.programs);
    let measured = |side| {
        let chosen = contenders.iter().filter(|c| c.side == side);
        chosen.map(|c| (c.label, c.measured())).collect()
    };
    Ok(Row {
        list: list.name.clone(),
        programs: list.programs.len(),
        files: copied,
        mib: bytes as f64 / (1024.0 * 1024.0),
        ours: measured(Side::Ours),
        peers: measured(Side::Theirs),
        broken,
    })
}

/// The files of one list's benchmark, in `target/bench/<list>/`.
struct Files {
    dir: PathBuf,
    spec: PathBuf,
    spec_text: String,
    /// The programs, one a line, for the peers.
    programs: PathBuf,
    /// The host files our build copies, one a line, for the floors.
    copied: PathBuf,
    /// Our tree and the files beside it.
    out: PathBuf,
    manifest: PathBuf,
    sbom: PathBuf,
    stamp: PathBuf,
    digests: PathBuf,
    sha1s: PathBuf,
    licenses: PathBuf,
    owners: PathBuf,
}

impl Files {
    /// A fresh folder with the list's spec and program list.
    fn write(work: &Path, list: &List) -> Result<Files> {
        let dir = work.join(&list.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        let spec = dir.join("spec.toml");
        let spec_text = write_spec(&spec, &list.name, &list.programs, "")?;
        let programs = dir.join("programs.txt");
        let lines: String = list.programs.iter().map(|p| format!("{}\n", p.display())).collect();
        write_file(&programs, &lines)?;
        let out = dir.join("tree");
        Ok(Files {
            spec,
            spec_text,
            programs,
            copied: dir.join("copied.txt"),
            manifest: rootfs::build::manifest::path_for(&out),
            sbom: rootfs::build::sbom::path_for(&out),
            stamp: rootfs::build::stamp::path_for(&out),
            digests: rootfs::build::digest_cache::path_for(&out),
            sha1s: rootfs::build::sha1_cache::path_for(&out),
            licenses: rootfs::build::license_cache::path_for(&out),
            owners: rootfs::build::owner_cache::path_for(&out),
            out,
            dir,
        })
    }

    /// `rootfs build SPEC --out TREE EXTRA...`
    fn build(&self, exe: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(exe);
        c.args(["rootfs", "build"]).arg(&self.spec).arg("--out").arg(&self.out).args(extra);
        c
    }
}

/// One build first, untimed, for the list of files it copies (the floors
/// copy exactly those, listed in `copied.txt`); returns their number and
/// size.
fn first_build(exe: &Path, files: &Files, list: &List) -> Result<(usize, u64)> {
    let status =
        files.build(exe, &[]).stdout(Stdio::null()).status().context("running the first build")?;
    ensure!(status.success(), "the first build of `{}` failed", list.name);
    let built = rootfs::build::manifest::Manifest::read(&files.manifest)?;
    let copied: Vec<&rootfs::build::manifest::ManifestEntry> =
        built.entries.iter().filter(|e| e.kind == rootfs::vocab::EntryType::File).collect();
    let bytes = copied.iter().filter_map(|e| e.size).sum();
    let sources: String = copied
        .iter()
        .filter_map(|e| e.source.as_ref())
        .map(|s| format!("{}\n", s.display()))
        .collect();
    write_file(&files.copied, &sources)?;
    Ok((copied.len(), bytes))
}

/// Our resolution and builds, in the order they run in each round.
fn ours<'a>(
    exe: &'a Path,
    files: &'a Files,
    programs: &'a [PathBuf],
    trash: &'a Trash,
    runs: usize,
) -> Vec<Contender<'a>> {
    let build = move || files.build(exe, &[]);
    // A cold build starts from an empty folder: the tree and every file
    // describing it (manifest, SBOM, stamp) moved aside; the digest, SHA1,
    // license and owner caches stay, except for the very first build.
    let (out, manifest, sbom, stamp) = (&files.out, &files.manifest, &files.sbom, &files.stamp);
    let mut changes = 0;
    vec![
        Contender::new("resolution", Side::Ours, runs, move || deps_command(exe, programs))
            .allow_exit_1(),
        Contender::new("first build (nothing cached)", Side::Ours, runs, build).prepare(
            move || {
                let (digests, sha1s) = (&files.digests, &files.sha1s);
                let (licenses, owners) = (&files.licenses, &files.owners);
                trash.clear(&[out, manifest, sbom, stamp, digests, sha1s, licenses, owners])
            },
        ),
        Contender::new("cold build", Side::Ours, runs, build)
            .prepare(move || trash.clear(&[out, manifest, sbom, stamp])),
        Contender::new("no-op rebuild", Side::Ours, runs, build),
        // One input changed: the spec gains a comment, so everything is
        // planned and written again (digests of unchanged host files are
        // reused).
        Contender::new("one input changed", Side::Ours, runs, build).prepare(move || {
            changes += 1;
            let _ = std::fs::write(&files.spec, format!("{}# change {changes}\n", files.spec_text));
        }),
        Contender::new("cold build --link hard", Side::Ours, runs, move || {
            files.build(exe, &["--link", "hard"])
        })
        .prepare(move || {
            let _ = std::fs::write(&files.spec, &files.spec_text);
            trash.clear(&[out, manifest, sbom, stamp]);
        })
        .tree(&files.out),
    ]
}

fn deps_command(exe: &Path, programs: &[PathBuf]) -> Command {
    let mut c = Command::new(exe);
    c.args(["rootfs", "deps", "--json"]).args(programs);
    c
}

/// `cp -a` and `cp -al` of exactly the files our build copies.
fn floors<'a>(files: &'a Files, trash: &'a Trash, runs: usize) -> Vec<Contender<'a>> {
    let floor = |label, name| script(files, trash, label, name, &files.copied, runs, Writes::Floor);
    vec![
        floor("copy floor (cp -a)", "copy-floor.sh"),
        floor("hard-link floor (cp -al)", "hardlink-floor.sh"),
    ]
}

/// Resolution the classic ways, and the tools people use instead.
fn peers<'a>(files: &'a Files, trash: &'a Trash, runs: usize) -> Vec<Contender<'a>> {
    let peer =
        |label, name, writes| script(files, trash, label, name, &files.programs, runs, writes);
    vec![
        peer("resolution: ldd per program", "ldd-each.sh", Writes::Nothing),
        peer("resolution: lddtree -l", "lddtree-list.sh", Writes::Nothing),
        peer("classic recipe (ldd + cp)", "classic.sh", Writes::Tree),
        peer("lddtree --copy-to-tree", "lddtree.sh", Writes::Tree),
        peer("dracut-install", "dracut-install.sh", Writes::Tree),
        peer("jk_cp", "jk_cp.sh", Writes::Tree),
    ]
}

/// What a script of `bench/` writes into its destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// Nothing (resolution alone).
    Nothing,
    /// Copies of files: moved aside before each run.
    Floor,
    /// A tree meant to run programs: moved aside before each run, and
    /// checked afterwards.
    Tree,
}

/// `bench/NAME INPUT target/bench/<list>/peer-<NAME without .sh>`.
fn script<'a>(
    files: &'a Files,
    trash: &'a Trash,
    label: &'static str,
    name: &str,
    input: &Path,
    runs: usize,
    writes: Writes,
) -> Contender<'a> {
    let dest = files.dir.join(format!("peer-{}", name.trim_end_matches(".sh")));
    let script = project_root().join("bench").join(name);
    let (input, dest_for_command) = (input.to_path_buf(), dest.clone());
    let contender = Contender::new(label, Side::Theirs, runs, move || {
        let mut c = Command::new(&script);
        c.arg(&input).arg(&dest_for_command);
        c
    });
    let contender = match writes {
        Writes::Nothing => contender,
        Writes::Floor | Writes::Tree => {
            let dest = dest.clone();
            contender.prepare(move || trash.clear(&[&dest]))
        }
    };
    if writes == Writes::Tree { contender.tree(&dest) } else { contender }
}

/// For each contender that writes a tree, how many of `programs` fail to
/// load in the tree its last run left.
fn broken_trees(
    contenders: &[Contender],
    programs: &[PathBuf],
) -> Vec<(&'static str, Option<usize>)> {
    let with_tree = contenders.iter().filter_map(|c| c.tree.as_ref().map(|t| (c, t)));
    with_tree
        .map(|(c, tree)| {
            let label = if c.side == Side::Ours { "our build" } else { c.label };
            (label, broken_programs(tree, programs))
        })
        .collect()
}

/// How many programs fail to load inside `tree`, asked of the tree's own
/// loader in trace mode under `chroot(2)` (nothing of the program runs):
/// a non-zero exit or a library "not found".
fn broken_programs(tree: &Path, programs: &[PathBuf]) -> Option<usize> {
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() || !tree.is_dir() {
        return None;
    }
    let mut broken = 0;
    for program in programs {
        let root = tree.to_path_buf();
        let mut c = Command::new("/lib64/ld-linux-x86-64.so.2");
        c.arg("--list").arg(program).env_clear().stderr(Stdio::null());
        // SAFETY: chroot and chdir are async-signal-safe system calls.
        unsafe {
            c.pre_exec(move || {
                rustix::process::chroot(&root)?;
                rustix::process::chdir("/")?;
                Ok(())
            });
        }
        let ok = c.output().is_ok_and(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("not found")
        });
        broken += usize::from(!ok);
    }
    Some(broken)
}
