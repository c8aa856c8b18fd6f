//! The spec: what a rootfs holds, read from TOML with its includes merged, every value checked and located in its file.
//!
//! Every key is documented in `rootfs-spec/README.md`. Parsing is strict:
//! unknown keys, wrong types and missing keys are errors that point at the
//! file, line and column (see [`SpecError`]). The modules below follow the
//! data: `raw` is the file as TOML gives it, `convert` turns each table into
//! checked items, `checks` looks across items once everything is merged.

pub(crate) mod accounts;
mod checks;
mod convert;
mod diagnostic;
pub mod image;
mod kernel;
mod raw;
mod shell;
pub mod structure;
mod sysroot;
pub(crate) mod text_or_table;

pub use sysroot::DebianRequest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::convert::{PathRule, root_path_rule};
pub use self::diagnostic::{Location, Source, SpecError};
pub use self::kernel::{KERNEL_HELP, KernelSource};
use self::raw::RawSpec;
pub use self::shell::{
    BadSize, Bind, LEAST_WRITABLE_SIZE, Shell, UserSpec, valid_variable_name, writable_size_flag,
};
use crate::vocab::{Limits, Network};

/// The spec `cargo xtask rootfs` builds when given none.
pub const DEFAULT_SPEC: &str = "rootfs-spec/default.toml";

/// A value from a spec file, with where it was written.
#[derive(Clone, Debug)]
pub struct Item<T> {
    pub value: T,
    pub at: Location,
}

/// Items compare by value: where a value was written does not change what
/// it asks for.
impl<T: PartialEq> PartialEq for Item<T> {
    fn eq(&self, other: &Item<T>) -> bool {
        self.value == other.value
    }
}

/// A directory to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dir {
    pub path: PathBuf,
    pub mode: Option<u32>,
}

/// Where a file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// A host file: a relative `src`, joined to the spec's directory.
    Host(PathBuf),
    /// An absolute `src`: a file of the system the tree is made from, the
    /// host's own for a directory or image sysroot (as the sysroot `/`
    /// is the host), the packages' for a package sysroot (the plan's
    /// `SystemFiles` says which).
    System(PathBuf),
    /// Inline text from the spec.
    Content(String),
}

/// An extra file. Its item's location is the `dest` value (or the table
/// when `dest` is implied); `src_at` points at `src`.
#[derive(Clone, Debug)]
pub struct File {
    pub source: FileSource,
    pub dest: PathBuf,
    pub mode: Option<u32>,
    pub src_at: Option<Location>,
}

/// An extra symlink: `path` will read `target`, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symlink {
    pub path: PathBuf,
    pub target: PathBuf,
}

/// Where a tree's files come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeSource {
    /// A directory of the sysroot (an absolute `src`).
    Sysroot(PathBuf),
    /// A host directory (a relative `src`, joined to the spec's folder).
    Host(PathBuf),
}

/// A directory copied recursively, with what it leaves out.
#[derive(Clone, Debug)]
pub struct Tree {
    pub source: TreeSource,
    /// Where it goes inside the rootfs.
    pub dest: PathBuf,
    /// Globs matched against paths relative to the tree's root.
    pub exclude: Vec<glob::Pattern>,
    /// `optional = true`: a `src` the sysroot lacks is skipped, not an
    /// error (Python's `/usr/local` site folder, which no package ships).
    pub optional: bool,
    /// Where `src` is written.
    pub src_at: Location,
}

/// How far the `.note.dlopen` declarations of the copied objects are
/// followed; see [`crate::resolve::DlopenLevel`].
pub use crate::resolve::DlopenLevel;

/// A line of `/etc/passwd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
    pub gecos: String,
}

/// A line of `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The limits one check sets for itself; the rest come from `[smoke]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub pids: Option<u64>,
    pub memory: Option<u64>,
    pub tmp_size: Option<u64>,
}

impl LimitOverrides {
    /// `base` with these overrides applied.
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            pids: self.pids.unwrap_or(base.pids),
            memory: self.memory.unwrap_or(base.memory),
            tmp_size: self.tmp_size.unwrap_or(base.tmp_size),
        }
    }
}

/// One extra smoke check.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub run: Vec<String>,
    /// The exit status it must have (0 unless `same_as_host`, where only a
    /// given one counts).
    pub exit: Option<i32>,
    pub contains: Option<String>,
    /// It must also behave exactly as on the sysroot.
    pub same_as_host: bool,
    pub timeout: Option<f64>,
    pub limits: LimitOverrides,
    /// Host paths mounted inside for this check (`[shell]`'s syntax).
    pub binds: Vec<Item<Bind>>,
    pub network: Network,
    /// The working directory inside (in the tree or a bind); `/` by default.
    pub workdir: Option<Item<PathBuf>>,
    /// Variables set over the smoke environment (`HOME`, `PATH`, `TERM`).
    pub env: BTreeMap<String, String>,
}

/// What a command's default probe is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// The same probe run on the sysroot, in the same isolation.
    Sysroot,
    /// Nothing: a probe passes when it exits 0.
    None,
}

/// How the built rootfs is smoke-tested.
#[derive(Clone, Debug)]
pub struct Smoke {
    /// Seconds; the default for every check.
    pub timeout: f64,
    pub reference: Reference,
    /// Arguments per command, keyed by the command's name in `commands`
    /// (the spec may use its base name when that is unambiguous).
    pub args: BTreeMap<String, Item<Vec<String>>>,
    /// Commands not run on their own (still available to checks), by their
    /// name in `commands`.
    pub skip: Vec<Item<String>>,
    pub checks: Vec<Item<Check>>,
    /// The limits of every check that sets none of its own.
    pub limits: Limits,
    /// container-structure-test files (`structure_tests`), read and checked.
    pub structure_tests: Vec<Item<Arc<structure::StructureTests>>>,
    /// CPU levels every check runs on again, under an emulator.
    pub cpus: Vec<Item<crate::resolve::elf::IsaLevel>>,
    /// Kernels every check runs under again, in a virtual machine.
    pub kernels: Vec<Item<KernelSource>>,
}

/// A spec with its includes merged.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    /// The top spec file as given.
    pub path: PathBuf,
    /// Every spec file read (the top one and its includes), for change
    /// detection.
    pub sources: Vec<Arc<Source>>,
    pub commands: Vec<Item<String>>,
    pub libraries: Vec<Item<String>>,
    pub dirs: Vec<Item<Dir>>,
    pub files: Vec<Item<File>>,
    pub symlinks: Vec<Item<Symlink>>,
    pub users: Vec<Item<User>>,
    pub groups: Vec<Item<Group>>,
    pub trees: Vec<Item<Tree>>,
    pub dlopen: DlopenLevel,
    /// The oldest x86-64 CPU level the tree must run on: variants above it
    /// are left out, and an object that needs more fails the build.
    pub cpu: Option<Item<crate::resolve::elf::IsaLevel>>,
    pub keep_setuid: bool,
    pub smoke: Smoke,
    /// How exports present the tree as a container image.
    pub image: image::Image,
    /// Defaults for `shell` and `run`.
    pub shell: Shell,
    /// `[sysroot.debian]`: take programs and libraries from these Debian
    /// packages instead of the host (a `keyring` already joined to its
    /// spec's folder).
    pub debian: Option<Item<DebianRequest>>,
    /// `debian_packages`: the Debian packages that provide what the spec
    /// and its includes copy, merged, repeats dropped. Added to a package
    /// sysroot's `packages`; ignored for any other sysroot.
    pub debian_packages: Vec<String>,
}

/// Default smoke timeout, in seconds.
const DEFAULT_TIMEOUT: f64 = 10.0;

/// Includes deeper than this are a loop or a mistake.
const MAX_INCLUDE_DEPTH: usize = 16;

/// One spec file being merged: where its values are, and the folder its
/// relative paths start from.
pub(crate) struct Here {
    source: Arc<Source>,
    dir: PathBuf,
}

impl Here {
    fn at(&self, span: std::ops::Range<usize>) -> Location {
        Location { source: self.source.clone(), span }
    }
}

/// The files being read (canonical, and as the user wrote them), to find
/// include loops, and every file already merged, so that a file included
/// twice (a diamond) counts once.
#[derive(Default)]
struct Reading {
    stack: Vec<(PathBuf, PathBuf)>,
    merged: Vec<PathBuf>,
}

/// Reads a spec and everything it includes.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let mut spec = Spec {
        name: String::new(),
        path: path.to_path_buf(),
        sources: Vec::new(),
        commands: Vec::new(),
        libraries: Vec::new(),
        dirs: Vec::new(),
        files: Vec::new(),
        symlinks: Vec::new(),
        users: Vec::new(),
        groups: Vec::new(),
        trees: Vec::new(),
        dlopen: DlopenLevel::default(),
        cpu: None,
        keep_setuid: false,
        smoke: Smoke {
            timeout: DEFAULT_TIMEOUT,
            reference: Reference::Sysroot,
            args: BTreeMap::new(),
            skip: Vec::new(),
            checks: Vec::new(),
            limits: Limits::default(),
            structure_tests: Vec::new(),
            cpus: Vec::new(),
            kernels: Vec::new(),
        },
        image: image::Image::default(),
        shell: Shell::default(),
        debian: None,
        debian_packages: Vec::new(),
    };
    let name = load_into(&mut spec, path, &mut Reading::default())?;
    let Some(name) = name else {
        let source = spec.sources.first().expect("the top spec was read");
        return Err(SpecError::in_file(&source.path, "missing key `name`").help(
            "add `name = \"...\"` at the top: the rootfs is built in target/rootfs/<name>/",
        ));
    };
    spec.name = name;
    checks::unique(&spec)?;
    checks::smoke_names(&mut spec)?;
    shell::check(&spec)?;
    image::check(&spec)?;
    sysroot::check(&spec.debian)?;
    Ok(spec)
}

/// Merges the file at `path`, after its includes, into `spec`; returns
/// its `name`.
fn load_into(
    spec: &mut Spec,
    path: &Path,
    reading: &mut Reading,
) -> Result<Option<String>, SpecError> {
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| SpecError::in_file(path, format!("cannot read spec: {e}")))?;
    if reading.merged.contains(&canonical) {
        return Ok(None);
    }
    if reading.stack.len() >= MAX_INCLUDE_DEPTH {
        return Err(SpecError::in_file(
            path,
            format!("includes are nested more than {MAX_INCLUDE_DEPTH} deep"),
        ));
    }
    let here = read_source(spec, path, &canonical, reading)?;
    let raw: RawSpec = toml::from_str(&here.source.text)
        .map_err(|e| diagnostic::toml_error(&e, here.at(e.span().unwrap_or(0..0))))?;
    reading.stack.push((canonical, path.to_path_buf()));
    for include in &raw.include {
        let included = include_path(&here, include, reading)?;
        load_into(spec, &included, reading)?;
    }
    let (canonical, _) = reading.stack.pop().expect("pushed above");
    reading.merged.push(canonical);
    convert::merge(spec, raw, &here)
}

/// Reads a spec file and keeps it, for messages and change detection.
fn read_source(
    spec: &mut Spec,
    path: &Path,
    canonical: &Path,
    reading: &Reading,
) -> Result<Here, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::in_file(path, format!("cannot read spec: {e}")))?;
    let base = reading
        .stack
        .first()
        .and_then(|(top, _)| top.parent())
        .or(canonical.parent())
        .unwrap_or(Path::new("/"));
    let name =
        canonical.strip_prefix(base).map_or_else(|_| canonical.to_path_buf(), Path::to_path_buf);
    let source = Arc::new(Source { path: path.to_path_buf(), name, text });
    spec.sources.push(source.clone());
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(Here { source, dir })
}

/// The file an `include` names, refusing loops and missing files.
fn include_path(
    here: &Here,
    include: &toml::Spanned<String>,
    reading: &Reading,
) -> Result<PathBuf, SpecError> {
    let included = here.dir.join(include.get_ref());
    if let Ok(target) = std::fs::canonicalize(&included)
        && let Some(start) = reading.stack.iter().position(|(c, _)| *c == target)
    {
        let mut cycle: Vec<String> =
            reading.stack[start..].iter().map(|(_, p)| p.display().to_string()).collect();
        cycle.push(included.display().to_string());
        return Err(SpecError::at(
            &here.at(include.span()),
            format!("include loop: `{}` is already being read", included.display()),
        )
        .help(format!("the includes go {}; remove one of them", cycle.join(" -> "))));
    }
    if !included.is_file() {
        return Err(SpecError::at(
            &here.at(include.span()),
            format!("included spec `{}` does not exist", included.display()),
        )
        .help("include paths are relative to the including spec's directory"));
    }
    Ok(included)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Spec, SpecError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spec.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err = load_text("name = \"x\"\ncommands = [\"bash\", 3]\n").unwrap_err();
        assert_eq!(err.at.as_ref().unwrap().line_column(), (2, 21));
        let err =
            load_text("name = \"x\"\n[[files]]\nsrc = \"a\"\ndest = \"etc/a\"\n").unwrap_err();
        assert_eq!(err.at.as_ref().unwrap().line_column(), (4, 8));
        assert!(err.message.contains("absolute"), "{}", err.message);
    }

    #[test]
    fn debian_packages_merge_from_every_file_and_trees_can_be_optional() {
        let tmp = tempfile::tempdir().unwrap();
        let preset = "debian_packages = [\"python3\", \"libc6\"]\n\
            [[trees]]\nsrc = \"/usr/local/lib/x\"\noptional = true\n";
        std::fs::write(tmp.path().join("preset.toml"), preset).unwrap();
        let top =
            "name = \"x\"\ninclude = [\"preset.toml\"]\ndebian_packages = [\"libc6\", \"git\"]\n";
        std::fs::write(tmp.path().join("spec.toml"), top).unwrap();
        let spec = load(&tmp.path().join("spec.toml")).unwrap();
        assert_eq!(spec.debian_packages, ["python3", "libc6", "git"]);
        assert!(spec.debian.is_none(), "debian_packages alone makes no package sysroot");
        assert!(spec.trees[0].value.optional);
        let spec = load_text("name = \"x\"\n[[files]]\nsrc = \"/etc/hosts\"\n").unwrap();
        assert_eq!(spec.files[0].value.source, FileSource::System("/etc/hosts".into()));
    }

    #[test]
    fn modes_are_octal_strings() {
        let spec =
            load_text("name = \"x\"\ndirs = [\"/a\", { path = \"/b/\", mode = \"0750\" }]\n")
                .unwrap();
        assert_eq!(spec.dirs[1].value, Dir { path: "/b".into(), mode: Some(0o750) });
        assert!(load_text("name = \"x\"\ndirs = [{ path = \"/b\", mode = \"9\" }]\n").is_err());
    }
}
