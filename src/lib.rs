//! Build minimal, reproducible Linux root filesystems from a declarative spec.
//!
//! The modules are the stages data flows through, in this order:
//! - [`spec`]: what the user asks for, every value checked and located in
//!   its file;
//! - [`resolve`]: what glibc's loader would open for a program, by reading
//!   ELF files in a sysroot (the loader of each architecture emulated, never
//!   run);
//! - [`build`]: where the files come from (a directory, an image, Debian
//!   packages), the plan, the tree written and swapped in, and the files
//!   written beside it (manifest, stamp, lock, SBOM);
//! - [`run`]: everything that runs a program in a tree (the sandbox, smoke
//!   checks judged against the sysroot, the tracer and what it finds, the
//!   dev environment);
//! - [`export`]: the tree shipped as an image, an archive or a bundle.
//!
//! Three modules drive the stages for a caller: [`command`] holds each
//! command of `cargo xtask rootfs` as one function (`command::build`,
//! `command::smoke`, `command::enter`, ...) taking one options struct and
//! a [`Console`] and returning one report; [`multiarch`] gives the trees a
//! command works on (one per architecture of a spec that lists several,
//! built from one lock, each smoked); and [`build_script`] is the whole
//! flow for a crate's `build.rs`. [`vocab`] holds the values several
//! stages name (an entry's type, a file's state, `Mode`, `Sha256`, the
//! network, the limits), and [`fsutil`] the file helpers every stage uses.
//! See ARCHITECTURE.md for the bird's-eye view.
//!
//! The commands stay under `command::` rather than at the crate's root,
//! where `rootfs::build` and `rootfs::export` already name the stages they
//! drive; the types every caller of them needs ([`Console`], [`Terminal`],
//! [`Captured`], [`Target`]) are re-exported here.
//!
//! # Run a command as the command line does
//!
//! A command says its text through the console it is given, in the order
//! `cargo xtask rootfs` shows it; [`Captured`] keeps it for a caller (or a
//! test) to read:
//!
//! ```
//! # fn main() -> anyhow::Result<()> {
//! use rootfs::command::{BuildOptions, Stream};
//!
//! let dir = tempfile::tempdir()?;
//! let spec = dir.path().join("tiny.toml");
//! std::fs::write(&spec, "name = \"tiny\"\ncommands = [\"cat\"]\n")?;
//!
//! // The project's defaults are the caller's: the spec built when none
//! // is named, and the folder trees go in (here `<dir>/tiny`).
//! let target = rootfs::Target::new(&spec, dir.path());
//! let mut console = rootfs::Captured::default();
//! let report = rootfs::command::build(&BuildOptions { target, force: false }, &mut console)?;
//! assert_eq!(report.built.len(), 1);
//! // A note for people first (on stderr), then the answer (on stdout).
//! let lock = dir.path().join("tiny.lock");
//! assert_eq!(console.said[0], (Stream::Err, format!("wrote the lock `{}`\n", lock.display())));
//! assert!(console.text(Stream::Out).starts_with("built "));
//! # Ok(())
//! # }
//! ```
//!
//! # Use the stages from your project
//!
//! Each stage is one call too, taking one options struct whose `new` sets
//! every default. Build a spec into a folder of your choosing, smoke-test
//! the tree, and ship it:
//!
//! ```
//! # fn main() -> anyhow::Result<()> {
//! use rootfs::export::{Format, Options as ExportOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let spec = dir.path().join("tiny.toml");
//! std::fs::write(&spec, "name = \"tiny\"\ncommands = [\"cat\", \"ls\"]\n")?;
//!
//! // The tree goes to `<dir>/tiny`, its manifest, stamp and SBOM beside it.
//! let built = rootfs::build::build(&rootfs::build::Options::new(&spec, dir.path()))?;
//! assert!(built.manifest.commands.iter().any(|c| c.name == "cat"));
//! println!("{}", built.summary());
//!
//! // Every command and check runs inside the tree, isolated, judged
//! // against the same run on the host (it needs root or user namespaces).
//! if rootfs::run::smoke::cannot_enter_reason().is_none() {
//!     let smoked = rootfs::run::smoke::smoke_tree(&built, std::path::Path::new("/"))?;
//!     assert_eq!(smoked.report.failed(), 0, "{}", smoked.report.table());
//! }
//!
//! // A reproducible tar beside the tree, `<dir>/tiny.tar`.
//! let exported = rootfs::export::export(&built, &ExportOptions::new(Format::Tar))?;
//! assert!(exported.path.is_file());
//! # Ok(())
//! # }
//! ```
//!
//! Nothing here prints but through the [`Console`] a command is given: a
//! stage's warnings come back as data (`Built::warnings`), which the
//! commands say on their console, and errors as `anyhow::Error`s that
//! [`render_error`] and [`exit_code`] turn into what the command line
//! shows. (A build's progress bars are drawn on the terminal only when its
//! options ask for them, as the commands' do.) From a build script,
//! [`build_script::run`] builds under `OUT_DIR` and tells cargo every input,
//! so `cargo build` reruns it exactly when one changes.

pub mod build;
pub mod build_script;
pub mod command;
pub mod export;
pub mod fsutil;
pub mod multiarch;
pub mod resolve;
pub mod run;
pub mod spec;
pub mod vocab;

pub use command::{Captured, Console, Target, Terminal};

/// The exit status for an error that reached the top: 2 for a usage or spec
/// mistake, 127 or 126 for a command `run` could not start (as a shell
/// says), 1 for anything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(not_started) = err.chain().find_map(|e| e.downcast_ref::<run::smoke::NotStarted>())
    {
        return not_started.exit_code();
    }
    let usage = |e: &(dyn std::error::Error + 'static)| {
        e.is::<UsageError>() || e.is::<spec::SpecError>() || e.is::<build::output::Refusal>()
    };
    if err.chain().any(usage) { 2 } else { 1 }
}

/// An error as shown to people: a spec mistake as a report pointing into
/// the file, anything else as `error: ` and its chain of contexts, with a
/// multi-line cause (a list of misses) on lines of its own.
pub fn render_error(err: &anyhow::Error) -> String {
    if let Some(spec_error) = err.chain().find_map(|e| e.downcast_ref::<spec::SpecError>()) {
        return spec_error.render();
    }
    let mut out = String::from("error: ");
    for (i, cause) in err.chain().enumerate() {
        let text = cause.to_string();
        if i > 0 {
            out.push_str(if text.contains('\n') { ":\n" } else { ": " });
        }
        out.push_str(&text);
    }
    out
}

/// A mistake in how the tool was called or in a spec file: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
