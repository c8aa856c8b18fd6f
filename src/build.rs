//! `rootfs build`: spec -> resolve -> plan -> install, skipped when the stamp says nothing changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::install::{self, InstallOptions, LinkMode};
use crate::manifest::{self, Manifest};
use crate::plan;
use crate::resolve::{self, Resolver};
use crate::spec::{self, Spec};
use crate::stamp::{self, FileState, Stamp};

/// The timestamp given to every file when `SOURCE_DATE_EPOCH` is not set.
pub const DEFAULT_EPOCH: i64 = 0;

/// How to build.
#[derive(Clone, Debug)]
pub struct Options {
    /// The spec file.
    pub spec: PathBuf,
    /// The output folder; `None` for `<out_root>/<name>`.
    pub out: Option<PathBuf>,
    /// Where outputs go by default (`target/rootfs`).
    pub out_root: PathBuf,
    /// The host directory whose programs and libraries are copied.
    pub sysroot: PathBuf,
    pub link: LinkMode,
    /// Timestamp of every file (`SOURCE_DATE_EPOCH`).
    pub epoch: i64,
    /// Rebuild even when nothing changed.
    pub force: bool,
    pub progress: bool,
}

impl Options {
    /// Options for `spec` with everything else at its default.
    pub fn new(spec: impl Into<PathBuf>, out_root: impl Into<PathBuf>) -> Options {
        Options {
            spec: spec.into(),
            out: None,
            out_root: out_root.into(),
            sysroot: PathBuf::from("/"),
            link: LinkMode::Copy,
            epoch: DEFAULT_EPOCH,
            force: false,
            progress: false,
        }
    }
}

/// What a build did.
#[derive(Debug)]
pub struct Built {
    pub spec: Spec,
    pub out: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    /// Regular files and their total size.
    pub files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Nothing changed since the last build, so nothing was written.
    pub up_to_date: bool,
    /// Why the build ran (the first change seen), when it did.
    pub reason: Option<String>,
    /// What went wrong without making the tree wrong, for people.
    pub warnings: Vec<String>,
}

impl Built {
    /// One line for people.
    pub fn summary(&self) -> String {
        let size = human_bytes(self.bytes);
        if self.up_to_date {
            format!(
                "{} is up to date ({} files, {size}), checked in {:.3} s",
                self.out.display(),
                self.files,
                self.elapsed.as_secs_f64()
            )
        } else {
            let because = self.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            format!(
                "built {}: {} files, {size}, in {:.3} s{because}",
                self.out.display(),
                self.files,
                self.elapsed.as_secs_f64()
            )
        }
    }
}

pub fn human_bytes(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1.0 { format!("{mib:.1} MiB") } else { format!("{:.1} KiB", bytes as f64 / 1024.0) }
}

/// The output folder of a spec.
pub fn out_dir(options: &Options, spec: &Spec) -> PathBuf {
    options.out.clone().unwrap_or_else(|| options.out_root.join(&spec.name))
}

/// Builds the rootfs a spec describes, or says it is up to date.
pub fn build(options: &Options) -> Result<Built> {
    let started = Instant::now();
    let spec = spec::load(&options.spec)?;
    let out = out_dir(options, &spec);
    let manifest_path = manifest::path_for(&out);
    let stamp_path = stamp::path_for(&out);
    let key = stamp_key(options, &spec)?;
    let specs: BTreeMap<PathBuf, String> = spec
        .sources
        .iter()
        .map(|s| (absolute(&s.path), stamp::sha256_hex(s.text.as_bytes())))
        .collect();

    let previous = Stamp::read(&stamp_path);
    let reason = match &previous {
        _ if options.force => Some("--force".to_string()),
        None => Some("no previous build".to_string()),
        Some(stamp) => stamp.stale_reason(&key, &specs, &out),
    };
    if reason.is_none()
        && let Ok(manifest) = Manifest::read(&manifest_path)
    {
        let (files, bytes) = totals(&manifest);
        return Ok(Built {
            spec,
            out,
            manifest_path,
            manifest,
            files,
            bytes,
            elapsed: started.elapsed(),
            up_to_date: true,
            reason: None,
            warnings: Vec::new(),
        });
    }

    anyhow::ensure!(
        options.sysroot.is_dir(),
        "sysroot `{}` is not a directory",
        options.sysroot.display()
    );
    let resolver = Resolver::new(resolve::Options {
        sysroot: options.sysroot.clone(),
        ..resolve::Options::default()
    })
    .with_context(|| {
        format!("reading the loader configuration of `{}`", options.sysroot.display())
    })?;
    let plan = plan::plan(&spec, &resolver)
        .with_context(|| format!("planning `{}`", options.spec.display()))?;

    // Input states are taken before anything is copied: a file that changes
    // during the build then differs from its recorded state next time.
    // The output's own folder is written by this build: it is not an input
    // even when a command lives beside it.
    let own = |p: &Path| p.starts_with(&out) || Some(p) == out.parent();
    let inputs =
        plan.inputs.iter().filter(|p| !own(p)).map(|p| (p.clone(), FileState::read(p))).collect();
    let install_options = InstallOptions {
        epoch: options.epoch,
        link: options.link,
        progress: options.progress,
        known_digests: crate::digest_cache::read(&crate::digest_cache::path_for(&out)),
    };
    let installed = install::install(&plan, &out, &install_options)
        .with_context(|| format!("writing `{}`", out.display()))?;
    install::write_file_atomically(&manifest_path, installed.manifest.to_json()?.as_bytes())?;

    let stamp = Stamp {
        key,
        specs,
        inputs,
        outputs: stamp::outputs(&out, &installed.manifest),
        manifest: FileState::read(&manifest_path),
    };
    stamp.write(&stamp_path)?;
    crate::digest_cache::update(
        &crate::digest_cache::path_for(&out),
        install_options.known_digests,
        installed.digests,
    )?;
    // The previous tree goes last: failing to remove it cannot leave the
    // new one without its manifest and stamp.
    let mut warnings = installed.warnings;
    if let Some(previous) = &installed.previous
        && let Err(e) = install::remove_tree(previous)
    {
        warnings.push(format!("the previous tree was kept at `{}`: {e:#}", previous.display()));
    }

    let (files, bytes) = totals(&installed.manifest);
    Ok(Built {
        spec,
        out,
        manifest_path,
        manifest: installed.manifest,
        files,
        bytes,
        elapsed: started.elapsed(),
        up_to_date: false,
        reason,
        warnings,
    })
}

fn totals(manifest: &Manifest) -> (usize, u64) {
    manifest
        .entries
        .iter()
        .filter(|e| e.kind == "file")
        .fold((0, 0), |(n, b), e| (n + 1, b + e.size.unwrap_or(0)))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Everything besides the inputs that decides the output: the tool's own
/// binary, and the options.
fn stamp_key(options: &Options, spec: &Spec) -> Result<String> {
    let exe = std::env::current_exe().context("finding the running program")?;
    let exe_state = FileState::read(&exe)
        .map(|s| format!("{}:{}:{}", s.size, s.mtime_ns, s.ino))
        .unwrap_or_default();
    Ok(format!(
        "rootfs {} exe={exe_state} sysroot={} link={:?} epoch={} spec={} cpu={}",
        env!("CARGO_PKG_VERSION"),
        absolute(&options.sysroot).display(),
        options.link,
        options.epoch,
        spec.name,
        // The hwcaps subdirectories searched depend on the CPU.
        crate::ldso::host_cpu()
    ))
}
