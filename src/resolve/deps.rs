//! `rootfs deps`: resolve a list of programs and render the result, with the exit status the command promises.

use anyhow::{Context, Result};

use crate::resolve::{self, Options, Resolver};

/// What `deps` prints and how it exits.
pub struct Report {
    pub stdout: String,
    /// Notes and a summary of what is missing, for people.
    pub stderr: String,
    /// 0 when every input resolved completely, 1 otherwise.
    pub exit: u8,
}

/// Resolves `inputs`: paths inside the sysroot, or command names (without a
/// slash) found on [`resolve::DEFAULT_PATH`] as the spec's commands are.
pub fn run(options: &Options, inputs: &[String], json: bool) -> Result<Report> {
    let sysroot = &options.sysroot;
    anyhow::ensure!(sysroot.is_dir(), "sysroot `{}` is not a directory", sysroot.display());
    let resolver = Resolver::new(options.clone())
        .with_context(|| format!("reading the loader configuration of `{}`", sysroot.display()))?;
    let closures = resolver.resolve_all(inputs);
    let stdout =
        if json { resolve::render_json(&closures) } else { resolve::render_tree(&closures) };
    let mut stderr = String::new();
    for note in resolver.notes() {
        stderr.push_str(&format!("note: {note}\n"));
    }
    let incomplete = closures.iter().filter(|c| !c.is_complete()).count();
    if incomplete > 0 {
        stderr.push_str(&format!(
            "{incomplete} of {} inputs did not resolve completely\n",
            closures.len()
        ));
    }
    Ok(Report { stdout, stderr, exit: u8::from(incomplete > 0) })
}
