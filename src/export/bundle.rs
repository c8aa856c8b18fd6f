//! An OCI runtime bundle (runtime-spec 1.x): `config.json` as `runc spec` writes it (or `runc spec --rootless` when not run as root), with the process from `[image]`, and `rootfs/`, a copy of the tree written by the installer.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::process::Process;
use super::tree::{Kind, Tree};
use super::{Exported, Job, place};
use crate::build::install::{self, InstallOptions, LinkMode};
use crate::build::plan::{self, EntryKind, Plan};
use crate::vocab::FileState;

/// The runtime-spec version `runc spec` 1.1 writes.
const OCI_VERSION: &str = "1.0.2-dev";
/// `runc spec`'s limit on open files, lowered to the host's hard limit.
const NOFILE: u64 = 1024;
/// What `runc spec` gives the process.
const CAPABILITIES: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];
const READONLY: &[&str] =
    &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeSpec {
    oci_version: &'static str,
    process: RuntimeProcess,
    root: Root,
    hostname: String,
    mounts: Vec<Mount>,
    linux: Linux,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeProcess {
    terminal: bool,
    user: Ids,
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    capabilities: Capabilities,
    rlimits: Vec<Rlimit>,
    no_new_privileges: bool,
}

#[derive(Serialize)]
struct Ids {
    uid: u32,
    gid: u32,
}

#[derive(Serialize)]
struct Capabilities {
    bounding: Vec<&'static str>,
    effective: Vec<&'static str>,
    permitted: Vec<&'static str>,
    ambient: Vec<&'static str>,
}

#[derive(Serialize)]
struct Rlimit {
    #[serde(rename = "type")]
    kind: &'static str,
    hard: u64,
    soft: u64,
}

#[derive(Serialize)]
struct Root {
    path: &'static str,
    readonly: bool,
}

#[derive(Serialize)]
struct Mount {
    destination: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    options: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    #[serde(skip_serializing_if = "Option::is_none")]
    uid_mappings: Option<Vec<IdMapping>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gid_mappings: Option<Vec<IdMapping>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
    namespaces: Vec<Namespace>,
    masked_paths: Vec<&'static str>,
    readonly_paths: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdMapping {
    #[serde(rename = "containerID")]
    container_id: u32,
    #[serde(rename = "hostID")]
    host_id: u32,
    size: u32,
}

#[derive(Serialize)]
struct Resources {
    devices: Vec<DeviceRule>,
}

#[derive(Serialize)]
struct DeviceRule {
    allow: bool,
    access: &'static str,
}

#[derive(Serialize)]
struct Namespace {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Writes the runtime bundle of the job's tree.
pub fn write(job: &Job) -> Result<Exported> {
    let process = Process::of_spec(&job.built.spec, &job.built.manifest)?;
    let rootless = !rustix::process::geteuid().is_root();
    let staging = place::staging_dir(&job.output)?;
    let written = (|| {
        copy_tree(&job.tree, &staging.join("rootfs"), !rootless)?;
        let config = runtime_spec(job, &process, rootless);
        let mut text = serde_json::to_string_pretty(&config).context("writing config.json")?;
        text.push('\n');
        let path = staging.join("config.json");
        std::fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))
    })();
    if let Err(e) = written {
        place::discard(&staging);
        return Err(e);
    }
    place::commit_dir(&staging, &job.output)?;
    Ok(Exported::new(job, place::size_of(&job.output)))
}

/// `config.json`: `runc spec`'s defaults (or `--rootless`'s), with the
/// image's process.
fn runtime_spec(job: &Job, process: &Process, rootless: bool) -> RuntimeSpec {
    let mut args = process.args();
    if args.is_empty() {
        // A spec with no command at all: the runtime needs a program.
        args = vec!["/bin/sh".to_string()];
    }
    let (uid, gid) = if rootless { (0, 0) } else { process.user.unwrap_or((0, 0)) };
    let hard =
        rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.unwrap_or(u64::MAX);
    let nofile = NOFILE.min(hard);
    let caps = CAPABILITIES.to_vec();
    RuntimeSpec {
        oci_version: OCI_VERSION,
        process: RuntimeProcess {
            terminal: false,
            user: Ids { uid, gid },
            args,
            env: process.env.clone(),
            cwd: process.workdir.as_ref().map_or("/".to_string(), |w| w.display().to_string()),
            capabilities: Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps.clone(),
                ambient: caps,
            },
            rlimits: vec![Rlimit { kind: "RLIMIT_NOFILE", hard: nofile, soft: nofile }],
            no_new_privileges: true,
        },
        root: Root { path: "rootfs", readonly: true },
        hostname: job.built.spec.name.clone(),
        mounts: mounts(rootless),
        linux: linux(rootless),
    }
}

fn mounts(rootless: bool) -> Vec<Mount> {
    let mount = |destination, kind, source, options: &[&'static str]| Mount {
        destination,
        kind,
        source,
        options: options.to_vec(),
    };
    let devpts: &[&str] = if rootless {
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    } else {
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    };
    let sys = if rootless {
        mount("/sys", "none", "/sys", &["rbind", "nosuid", "noexec", "nodev", "ro"])
    } else {
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])
    };
    vec![
        mount("/proc", "proc", "proc", &[]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount("/dev/pts", "devpts", "devpts", devpts),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        sys,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]
}

/// Namespaces and the rest of `linux`: the rootless form maps the invoking
/// user to root in a user namespace and keeps the host's network, as
/// `runc spec --rootless` does.
fn linux(rootless: bool) -> Linux {
    let namespace = |kind| Namespace { kind };
    let map = |host_id| Some(vec![IdMapping { container_id: 0, host_id, size: 1 }]);
    let (namespaces, uid_mappings, gid_mappings, resources) = if rootless {
        let kinds = ["pid", "ipc", "uts", "mount", "user"];
        (
            kinds.map(namespace).into(),
            map(rustix::process::geteuid().as_raw()),
            map(rustix::process::getegid().as_raw()),
            None,
        )
    } else {
        let kinds = ["pid", "network", "ipc", "uts", "mount"];
        let devices = vec![DeviceRule { allow: false, access: "rwm" }];
        (kinds.map(namespace).into(), None, None, Some(Resources { devices }))
    };
    Linux {
        uid_mappings,
        gid_mappings,
        resources,
        namespaces,
        masked_paths: MASKED.to_vec(),
        readonly_paths: READONLY.to_vec(),
    }
}

/// Copies the tree to `dest` with the installer (a plan of the tree's own
/// entries; the manifest's digests spare hashing the copies again), then
/// gives the paths their owners when run as root.
fn copy_tree(tree: &Tree, dest: &Path, chown: bool) -> Result<()> {
    let mut entries = HashMap::new();
    let mut known = HashMap::new();
    for entry in &tree.entries {
        let source = match entry.kind {
            Kind::HardLink { to } => &tree.entries[to],
            _ => entry,
        };
        let kind = match &source.kind {
            Kind::Dir => EntryKind::Dir { mode: entry.mode },
            Kind::File { size, sha256 } => {
                let host = tree.root.join(source.relative());
                if let Some(state) = FileState::read(&host) {
                    known.insert(host.clone(), (state, *sha256));
                }
                EntryKind::File { host, mode: entry.mode, size: *size }
            }
            Kind::Symlink { target } => EntryKind::Symlink { target: target.clone(), host: None },
            Kind::HardLink { .. } | Kind::CharDevice { .. } => {
                bail!("`{}` cannot be copied into a bundle", entry.path.display())
            }
        };
        entries.insert(entry.path.clone(), plan::Entry { kind, why: Vec::new() });
    }
    let plan = Plan { entries, ..Plan::empty("") };
    let options = InstallOptions {
        epoch: tree.epoch,
        link: LinkMode::Copy,
        progress: false,
        known_digests: known,
    };
    let staged = install::stage(&plan, dest, &options)
        .with_context(|| format!("writing `{}`", dest.display()))?;
    if chown {
        set_owners(tree, &staged.path)?;
    }
    install::swap_in(&staged.path, dest)?;
    Ok(())
}

/// `lchown(2)` of every path not owned by root, then its mode again
/// (`chown(2)` clears the setuid and setgid bits).
fn set_owners(tree: &Tree, root: &Path) -> Result<()> {
    use rustix::fs::{AtFlags, Gid, Mode, Uid};
    for entry in tree.entries.iter().filter(|e| (e.uid, e.gid) != (0, 0)) {
        let path = root.join(entry.relative());
        let owner = (Some(Uid::from_raw(entry.uid)), Some(Gid::from_raw(entry.gid)));
        rustix::fs::chownat(rustix::fs::CWD, &path, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("failed to set the owner of `{}`", path.display()))?;
        if !matches!(entry.kind, Kind::Symlink { .. }) {
            rustix::fs::chmod(&path, Mode::from_raw_mode(entry.mode))
                .with_context(|| format!("failed to set the mode of `{}`", path.display()))?;
        }
    }
    Ok(())
}
