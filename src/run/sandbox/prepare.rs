//! Preparing a [`Sandbox`] before any fork: every path as a C string, the user namespace's maps, the `/dev` content.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::access::{self, Access};
use super::{DEV_NODES, Options, RootKind, Sandbox};

fn c(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("`{}` contains a NUL byte", path.display()))
}

pub(super) fn sandbox(options: &Options, access: &Access) -> Result<Sandbox> {
    let root = std::path::absolute(&options.root)
        .with_context(|| format!("failed to resolve `{}`", options.root.display()))?;
    require_mount_dirs(&root)?;
    layer_allowed(options, &root, access)?;
    let access = access::prepare(&root, access)?;
    // `/` cannot be pivoted onto itself: it is bind-mounted on its own
    // `/tmp` instead, which the check's own tmpfs then covers. A writable
    // layer is mounted in a scratch folder that covers the tree.
    let mount_point = match &access.layer {
        Some(layer) => layer.root.clone(),
        None if root == Path::new("/") => root.join("tmp"),
        None => root.clone(),
    };
    let inside = |p: &str| mount_point.join(p);
    let dev = inside("dev");
    let (dev_nodes, dev_links) = dev_entries(&dev)?;
    let masked = match options.kind {
        RootKind::Tree => Vec::new(),
        RootKind::Reference => ["run"]
            .iter()
            .filter(|d| root.join(d).is_dir())
            .map(|d| c(&inside(d)))
            .collect::<Result<Vec<_>>>()?,
    };
    // Both sides of a probe get the same fresh, read-only `/sys`, where
    // the root has the folder (a built tree has it from the skeleton).
    let sys_dir = root.join("sys").is_dir().then(|| c(&inside("sys"))).transpose()?;
    let proc_read_only = ["sys", "sysrq-trigger", "irq", "bus", "fs"]
        .iter()
        .map(|p| c(&inside("proc").join(p)))
        .collect::<Result<Vec<_>>>()?;
    let binfmt = inside("proc/sys/fs/binfmt_misc");
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    Ok(Sandbox {
        root: c(&root)?,
        proc_dir: c(&inside("proc"))?,
        proc_read_only,
        dev_dir: c(&dev)?,
        tmp_dir: c(&inside("tmp"))?,
        binfmt_dir: (c(&binfmt.clone())?, c(&binfmt.join("register"))?),
        masked,
        sys_dir,
        dev_nodes,
        dev_links,
        dev_dirs: vec![c(&dev.join("shm"))?, c(&dev.join("pts"))?],
        hostname: options.hostname.as_bytes().to_vec(),
        user_maps: (format!("0 {uid} 1\n").into_bytes(), format!("0 {gid} 1\n").into_bytes()),
        interactive: options.interactive,
        mount_point: c(&mount_point)?,
        access,
        emulation: super::binfmt::prepare(&root, &inside("proc/sys/fs/binfmt_misc"))?,
    })
}

/// The folders every sandbox mounts on: a root without them cannot be
/// entered.
fn require_mount_dirs(root: &Path) -> Result<()> {
    for dir in ["proc", "dev", "tmp"] {
        let path = root.join(dir);
        anyhow::ensure!(
            path.is_dir() && !path.is_symlink(),
            "`{}` is missing: the root needs a /{dir} directory to mount on",
            path.display()
        );
    }
    Ok(())
}

/// The host's device nodes bound into `dev` (host path, mount point), and
/// the links `/dev/fd`, `stdin`, `stdout` and `stderr` (target, path).
#[allow(clippy::type_complexity)]
fn dev_entries(dev: &Path) -> Result<(Vec<(CString, CString)>, Vec<(CString, CString)>)> {
    let nodes = DEV_NODES
        .iter()
        .map(|n| Ok((c(&Path::new("/dev").join(n))?, c(&dev.join(n))?)))
        .collect::<Result<Vec<_>>>()?;
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ]
    .iter()
    .map(|(target, name)| Ok((c(Path::new(target))?, c(&dev.join(name))?)))
    .collect::<Result<Vec<_>>>()?;
    Ok((nodes, links))
}

/// An overlay's lower layer is one filesystem: over the host's `/` (or a
/// sysroot with mounts inside) it would hide every mount below it, so only
/// a built tree gets one.
fn layer_allowed(options: &Options, root: &Path, access: &Access) -> Result<()> {
    if !access.needs_layer() || (options.kind == RootKind::Tree && root != Path::new("/")) {
        return Ok(());
    }
    match access.lacking_mount_point() {
        Some(bind) => anyhow::bail!(
            "`{}` has no `{}` to mount `{}` on: on a sysroot, a bind must land on a path it has",
            root.display(),
            bind.target.display(),
            bind.source.display()
        ),
        None => anyhow::bail!("a writable layer is for a built tree, not `{}`", root.display()),
    }
}
