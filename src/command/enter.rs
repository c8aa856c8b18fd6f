//! `rootfs shell` and `rootfs run`: the tree built when missing or stale (after checking what the request opens, so a mistake costs no build), the shell chosen or the command given, the `TERM` the tree has, and the command attached to this terminal.

use anyhow::Result;

use super::Console;
use super::target::{self, Target};
use crate::build::Built;
use crate::run::devenv::{self, Request};

/// What `rootfs shell` and `rootfs run` take.
#[derive(Clone, Debug)]
pub struct EnterOptions {
    pub target: Target,
    /// What the command opens (binds, working directory, environment,
    /// network, user, writable layer), over the spec's `[shell]`.
    pub request: Request,
    /// The command and its arguments; empty for the shell `shell` opens.
    pub command: Vec<String>,
    /// The caller's `TERM`: given to the command when the tree has its
    /// entry, else the closest one it has.
    pub host_term: Option<String>,
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entered {
    /// Its exit status, or 128 + N for signal N, as a shell says.
    pub code: i32,
}

/// Runs the command (or opens the shell) in the tree, attached to this
/// terminal; says which shell it opens and which `TERM` it gives.
pub fn enter(options: &EnterOptions, console: &mut dyn Console) -> Result<Entered> {
    let built = checked_build(options, console)?;
    let shell = options.command.is_empty();
    let argv = match shell {
        true => {
            let choice = devenv::shell_to_open(&built.spec, &built.out, &options.request)?;
            console.note(&choice.describe());
            vec![choice.path.display().to_string()]
        }
        false => options.command.clone(),
    };
    let (term, note) =
        crate::run::terminfo::term_for(&built.manifest, options.host_term.as_deref());
    if let Some(note) = note.filter(|_| shell) {
        console.note(&note);
    }
    let devenv = devenv::prepare(&built.spec, &built.out, &options.request, &term)?;
    let code = crate::run::smoke::run_attached(
        &built.out,
        &built.spec.name,
        &devenv.access,
        &argv,
        &devenv.env,
    )?;
    Ok(Entered { code })
}

/// Builds the tree when missing or stale, after checking what the request
/// and the spec's `[shell]` ask for.
fn checked_build(options: &EnterOptions, console: &mut dyn Console) -> Result<Built> {
    let build_options = target::build_options(&options.target, console)?;
    let spec = crate::spec::load(&build_options.spec)?;
    devenv::check(&spec, &options.request)?;
    target::built(&options.target, &build_options, console)
}
