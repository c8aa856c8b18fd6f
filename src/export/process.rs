//! What a container of the tree runs: `[image]`'s entrypoint and cmd, environment, workdir and user, with the user resolved to a uid and gid through `[[users]]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::build::manifest::Manifest;
use crate::spec::{Spec, SpecError};

/// Where the command of an image whose `[image]` names none comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultCmd {
    /// `[shell] shell`.
    Shell,
    /// The spec's first command.
    FirstCommand,
}

/// The command an image runs when `[image]` gives neither `entrypoint`
/// nor `cmd`, so that `podman run IMAGE` runs something: the spec's
/// `[shell] shell`, else its first command (its path in the tree).
pub fn default_cmd(spec: &Spec, manifest: &Manifest) -> Option<(String, DefaultCmd)> {
    if spec.image.entrypoint.is_some() || spec.image.cmd.is_some() {
        return None;
    }
    if let Some(shell) = &spec.shell.shell {
        return Some((shell.value.display().to_string(), DefaultCmd::Shell));
    }
    let first = manifest.commands.first()?;
    Some((first.path.display().to_string(), DefaultCmd::FirstCommand))
}

/// The words an export's summary adds when it chose the command.
pub fn describe_default(spec: &Spec, manifest: &Manifest) -> Option<String> {
    let (program, source) = default_cmd(spec, manifest)?;
    let from = match source {
        DefaultCmd::Shell => "the spec's [shell] shell",
        DefaultCmd::FirstCommand => "the spec's first command",
    };
    Some(format!("cmd `{program}`, {from}: set [image] cmd to choose"))
}

/// The process of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `NAME=value`, sorted by name; `PATH` is always set (to the smoke
    /// tests' `PATH` unless `[image.env]` gives one).
    pub env: Vec<String>,
    pub workdir: Option<PathBuf>,
    /// uid and gid, when `[image] user` is given.
    pub user: Option<(u32, u32)>,
}

impl Process {
    /// The process a spec describes (with [`default_cmd`] when `[image]`
    /// names no command). A user name that is neither `root` nor a
    /// `[[users]]` entry is a mistake in the spec.
    pub fn of_spec(spec: &Spec, manifest: &Manifest) -> Result<Process, SpecError> {
        let image = &spec.image;
        let path = crate::resolve::default_path_var();
        let mut env: BTreeMap<&str, &str> =
            image.env.iter().map(|(k, v)| (k.as_str(), v.value.as_str())).collect();
        env.entry("PATH").or_insert(path.as_str());
        let user = image.user.as_ref().map(|item| crate::spec::image::user_ids(spec, item));
        Ok(Process {
            entrypoint: image.entrypoint.as_ref().map(|e| e.value.clone()),
            cmd: image
                .cmd
                .as_ref()
                .map(|c| c.value.clone())
                .or_else(|| default_cmd(spec, manifest).map(|(program, _)| vec![program])),
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            workdir: image.workdir.as_ref().map(|w| w.value.clone()),
            user: user.transpose()?,
        })
    }

    /// The command line a runtime runs: entrypoint, then cmd.
    pub fn args(&self) -> Vec<String> {
        let entrypoint = self.entrypoint.iter().flatten();
        entrypoint.chain(self.cmd.iter().flatten()).cloned().collect()
    }

    /// `uid:gid`, as the image configuration's `User` writes it.
    pub fn user_field(&self) -> Option<String> {
        self.user.map(|(uid, gid)| format!("{uid}:{gid}"))
    }
}
