//! container-structure-test files run against a tree or an exported image: command tests as checks of the one check driver (standard output and error kept apart), file, metadata and license tests read from the root, the image configuration and the SBOM; each test one row of the report, named as in its file.
//!
//! What container-structure-test does, and we do the same way: patterns
//! are Go regular expressions matched anywhere in the whole output (or
//! file), unanchored, `.` not matching a newline; `$VAR` and `${VAR}` in a
//! command line and a path are replaced from the image's environment
//! (`os.Expand`); the command runs with the image's environment, then
//! `globalEnvVars`, then the test's `envVars`, in the image's working
//! directory, on a writable layer discarded when it ends (a container's
//! filesystem). What differs: each `setup` and `teardown` command runs in a
//! fresh container of its own, so what a setup writes is not seen by the
//! test (container-structure-test's docker driver commits it; its tar
//! driver runs no command at all); a setup that fails makes the test an
//! error, a teardown that fails a failure.

mod command;
mod files;
mod image;
mod license;
mod metadata;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::{Check, Expect, Opens, Outcome, Outcomes, Report};
use crate::build::manifest::Manifest;
use crate::run::sandbox::Access;
use crate::spec::Spec;
pub use crate::spec::structure::{StructureTests, load};

pub(super) use self::command::judge;

/// What structure tests are run against.
pub struct Subject {
    /// The folder that is `/`: the tree, or the exported image's root.
    pub root: PathBuf,
    /// The image configuration's `config` object, as an OCI image holds it.
    pub config: ImageConfig,
    /// Who owns each path: a tree is owned by whoever built it, its image
    /// by root and the users.
    pub owners: Owners,
    /// The SBOM the license tests read.
    pub sbom: Option<PathBuf>,
}

/// Where the owner of a path is read.
pub enum Owners {
    /// As an export of the spec's tree gives them.
    Spec(crate::export::Owners),
    /// As an image's layers list them, by real root path.
    Listed(BTreeMap<PathBuf, (u32, u32)>),
    /// As the files on disk have them.
    OnDisk,
}

impl Owners {
    /// The uid and gid of the root path `real`, whose file on disk has
    /// `meta`.
    fn of(&self, real: &Path, meta: &std::fs::Metadata) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        match self {
            Owners::Spec(owners) => owners.of(real),
            Owners::Listed(listed) => listed.get(real).copied().unwrap_or((meta.uid(), meta.gid())),
            Owners::OnDisk => (meta.uid(), meta.gid()),
        }
    }
}

/// The image configuration as container-structure-test reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: BTreeMap<String, String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub volumes: Vec<String>,
    pub workdir: String,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub user: String,
}

impl ImageConfig {
    /// From an OCI image configuration's `config` object.
    pub fn of_oci(config: &serde_json::Value) -> ImageConfig {
        let strings = |key: &str| -> Vec<String> {
            let list = config[key].as_array().into_iter().flatten();
            list.filter_map(|v| v.as_str().map(str::to_string)).collect()
        };
        let keys = |key: &str| -> Vec<String> {
            config[key].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
        };
        let text = |key: &str| config[key].as_str().unwrap_or("").to_string();
        let env = strings("Env")
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (pair, String::new()),
            })
            .collect();
        let labels = config["Labels"].as_object().into_iter().flatten();
        let labels = labels.map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()));
        ImageConfig {
            env,
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            volumes: keys("Volumes"),
            workdir: text("WorkingDir"),
            exposed_ports: keys("ExposedPorts"),
            labels: labels.collect(),
            user: text("User"),
        }
    }
}

impl Subject {
    /// The tree built from `spec` at `tree`, with the configuration its
    /// image would have.
    pub fn of_tree(spec: &Spec, manifest: &Manifest, tree: &Path) -> Result<Subject> {
        Ok(Subject {
            root: tree.to_path_buf(),
            config: ImageConfig::of_oci(&crate::export::run_config(spec, manifest, tree)?),
            owners: Owners::Spec(crate::export::Owners::of_spec(spec, tree)),
            sbom: Some(crate::build::sbom::path_for(tree)).filter(|p| p.is_file()),
        })
    }
}

/// A check for each command test of `files`, with the timeout and limits
/// of `[smoke]`.
pub fn checks(
    files: &[Arc<StructureTests>],
    subject: &Subject,
    smoke: &crate::spec::Smoke,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for file in files {
        let global = expanded_env(&file.global_env, &subject.config.env);
        for test in &file.commands {
            let mut env: BTreeMap<String, String> = subject.config.env.clone();
            env.extend(global.iter().cloned());
            env.extend(test.env_vars.iter().map(|v| (v.key.clone(), v.value.clone())));
            let argv = test.argv().iter().map(|a| expand(a, &subject.config.env)).collect();
            let workdir = Some(PathBuf::from(&subject.config.workdir)).filter(|w| w.is_absolute());
            checks.push(Check {
                name: test.name.clone(),
                argv,
                expect: Expect::Structure(Arc::new(test.clone())),
                timeout: Duration::from_secs_f64(smoke.timeout),
                limits: smoke.limits,
                opens: Opens::Resolved(Access {
                    writable: true,
                    workdir,
                    user: user_ids(&subject.config.user),
                    ..Access::default()
                }),
                env: env.into_iter().collect(),
            });
        }
    }
    checks
}

/// The image's `User` as ids: `uid:gid` or `uid` (what exports write);
/// root when empty or a name, which an image of ours never holds.
fn user_ids(user: &str) -> crate::run::sandbox::Ids {
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    match (uid.parse(), gid.parse()) {
        (Ok(uid), Ok(gid)) => crate::run::sandbox::Ids { uid, gid },
        _ => crate::run::sandbox::Ids::default(),
    }
}

/// `globalEnvVars`, each value expanded from the image's environment.
fn expanded_env(
    vars: &[crate::spec::structure::EnvVar],
    env: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    vars.iter().map(|v| (v.key.clone(), expand(&v.value, env))).collect()
}

/// A row for each file existence, file content, metadata and license test
/// of `files`, in container-structure-test's order.
pub fn rows(files: &[Arc<StructureTests>], subject: &Subject) -> Vec<Outcomes> {
    let mut rows = Vec::new();
    for file in files {
        for test in &file.file_content {
            rows.push(row(&test.name, || files::content(subject, test)));
        }
        for test in &file.file_existence {
            rows.push(row(&test.name, || files::existence(subject, test)));
        }
        for test in &file.licenses {
            rows.push(row("License Test", || license::judge(subject, test)));
        }
        if let Some(test) = &file.metadata {
            rows.push(row("Metadata Test", || metadata::judge(&subject.config, test)));
        }
    }
    rows
}

/// The spec's `checks` and the tests of `files`, run against `subject`
/// (whose root is where the checks run): one report.
pub fn run(
    checks: &[Check],
    files: &[Arc<StructureTests>],
    subject: &Subject,
    smoke: &crate::spec::Smoke,
    options: &super::Options,
) -> Result<Report> {
    let mut all = checks.to_vec();
    all.extend(self::checks(files, subject, smoke));
    let mut report = super::run(&subject.root, &all, options)?;
    report.results.extend(rows(files, subject));
    Ok(report)
}

/// `export --structure-test`: the tests of `files` against the image
/// `exported` of `built` (unpacked once into `.rootfs/images/` beside the
/// tree), with `jobs` checks at a time.
pub fn run_on_export(
    built: &crate::build::Built,
    exported: &crate::export::Exported,
    files: &[Arc<StructureTests>],
    jobs: usize,
) -> Result<Report> {
    let cache = crate::fsutil::side_dir(&built.out).join("images");
    let subject = Subject::of_export(exported, &cache)?;
    let options = super::Options { jobs, hostname: built.spec.name.clone(), reference: None };
    run(&[], files, &subject, &built.spec.smoke, &options)
}

/// One row of the report for a test that runs nothing: its failures,
/// one per line, or a pass.
fn row(name: &str, judge: impl FnOnce() -> Vec<String>) -> Outcomes {
    let started = std::time::Instant::now();
    let failures = judge();
    let outcome =
        if failures.is_empty() { Outcome::Pass } else { Outcome::Fail(failures.join("; ")) };
    let check = Check { name: name.to_string(), ..Check::exits_zero(&[], Duration::ZERO) };
    Outcomes {
        output: failures.join("\n"),
        elapsed: started.elapsed(),
        ..Outcomes::bare(check, outcome)
    }
}

/// `$NAME` and `${NAME}` replaced from `env` (an unset name is empty), as
/// Go's `os.Expand` does; `$` before anything else stays.
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if used == 0 {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(env.get(name).map_or("", String::as_str));
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

/// Text shown for what was seen: at most 300 characters, quoted.
fn seen(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut:?}... ({} bytes in all)", text.len())
    }
}

/// `path` resolved inside `root` as a chroot would, its last component
/// followed or not: its real root path, and that path on the host.
fn locate(
    root: &Path,
    path: &Path,
    follow: bool,
) -> Result<(PathBuf, PathBuf), crate::resolve::rootpath::WalkError> {
    use crate::resolve::rootpath::Walk;
    let how = if follow { Walk::FOLLOW } else { Walk::NO_FOLLOW };
    let sysroot = crate::resolve::sysroot::Sysroot::new(root);
    let walked = sysroot.walk(path, how)?;
    let host = sysroot.host(&walked.real);
    Ok((walked.real, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_expanded_as_go_does() {
        let env: BTreeMap<String, String> =
            [("A".to_string(), "1".to_string()), ("B_2".to_string(), "two".to_string())].into();
        assert_eq!(expand("$A/${B_2}/$C/x", &env), "1/two//x");
        assert_eq!(expand("cost $ 5 ${", &env), "cost $ 5 ${");
        assert_eq!(expand("no vars", &env), "no vars");
    }
}
