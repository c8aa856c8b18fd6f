//! Build minimal, reproducible Linux root filesystems from a declarative spec.
//!
//! Data flows through the modules in this order: `spec` (what the user asks
//! for) -> `resolve` (what the loader needs, using `elf`, `sysroot`, `ldso`,
//! `ldcache`, `ldconf`) -> `plan` -> `install` -> `smoke` -> `report`.
//! See ARCHITECTURE.md for the bird's-eye view.
//!
//! # Use it from your project
//!
//! Each command of `cargo xtask rootfs` is one call here, taking one
//! options struct whose `new` sets every default. Build a spec into a
//! folder of your choosing, smoke-test the tree, and ship it:
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
//! if rootfs::smoke::cannot_enter_reason().is_none() {
//!     let smoked = rootfs::smoke::smoke_tree(&built, std::path::Path::new("/"))?;
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
//! Nothing here prints: warnings come back as data (`Built::warnings`), and
//! errors as `anyhow::Error`s that [`render_error`] and [`exit_code`] turn
//! into what the command line shows. From a build script,
//! [`build_script::run`] builds under `OUT_DIR` and tells cargo every input,
//! so `cargo build` reruns it exactly when one changes.

pub mod arch;
pub mod debian;
pub mod deps;
pub mod digest_cache;
pub mod dpkg;
pub mod elf;
pub mod elsewhere;
pub mod export;
pub mod findings;
pub mod fsutil;
pub mod image_sysroot;
pub mod ldcache;
pub mod ldconf;
pub mod ldso;
pub mod lock;
pub mod portability;
pub mod resolve;
pub mod rootpath;
pub mod sandbox;
pub mod sbom;
pub mod sha1_cache;
pub mod side_file;
pub mod sysroot;
pub mod terminfo;
pub mod unpacked;

/// The exit status for an error that reached the top: 2 for a usage or spec
/// mistake, 127 or 126 for a command `run` could not start (as a shell
/// says), 1 for anything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(not_started) = err.chain().find_map(|e| e.downcast_ref::<smoke::NotStarted>()) {
        return not_started.exit_code();
    }
    let usage = |e: &(dyn std::error::Error + 'static)| {
        e.is::<UsageError>() || e.is::<spec::SpecError>() || e.is::<output::Refusal>()
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
pub mod build;
pub mod build_script;
pub mod cpu_smoke;
pub mod devenv;
pub mod install;
pub mod kernel_smoke;
pub mod manifest;
pub mod multiarch;
pub mod output;
pub mod plan;
pub mod smoke;
pub mod spec;
pub mod stamp;
pub mod trace;
