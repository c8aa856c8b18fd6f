//! Build minimal, reproducible Linux root filesystems from a declarative spec.
//!
//! Data flows through the modules in this order: `spec` (what the user asks
//! for) -> `resolve` (what the loader needs, using `elf`, `sysroot`, `ldso`,
//! `ldcache`, `ldconf`) -> `plan` -> `install` -> `smoke` -> `report`.
//! See ARCHITECTURE.md for the bird's-eye view.

pub mod deps;
pub mod digest_cache;
pub mod dpkg;
pub mod elf;
pub mod export;
pub mod findings;
pub mod fsutil;
pub mod image_sysroot;
pub mod ldcache;
pub mod ldconf;
pub mod ldso;
pub mod lock;
pub mod resolve;
pub mod rootpath;
pub mod sandbox;
pub mod sbom;
pub mod sha1_cache;
pub mod sysroot;
pub mod terminfo;

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
pub mod devenv;
pub mod install;
pub mod manifest;
pub mod output;
pub mod plan;
pub mod smoke;
pub mod spec;
pub mod stamp;
pub mod trace;
