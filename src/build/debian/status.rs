//! The dpkg database of an unpacked package set, written as dpkg writes it after an install, so that `crate::build::dpkg` and the SBOM read a package sysroot as they read a Debian system.
//!
//! What is written (`dpkg(1)` FILES, `dpkg-query(1)`):
//! - `var/lib/dpkg/status`: each package's `control` stanza with
//!   `Status: install ok installed` after its `Package` field and, when it
//!   has conffiles, `Conffiles:` (one ` PATH MD5` line each) before its
//!   `Description`, sorted by name and architecture as dpkg sorts it;
//! - `var/lib/dpkg/info/NAME.list`, or `NAME:ARCH.list` for a
//!   `Multi-Arch: same` package (dpkg's `pkg_infodb_get_file`): every path
//!   of its data archive in archive order, `/.` first, no trailing `/`;
//! - `var/lib/dpkg/info/NAME.MEMBER` for every other member of its control
//!   archive (`md5sums`, `conffiles`, `triggers`, `shlibs`, `symbols`, and
//!   the maintainer scripts, which dpkg keeps there too: the scripts'
//!   effects are read back from them when a cached set is reused).

use std::fmt::Write as _;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use md5::{Digest, Md5};
use rustix::fs::{Mode, OFlags};

use super::unpack::{Generated, Installed, epoch, write_generated};
use crate::build::unpacked::layer::{Within, c_name, open_dir};

/// Where dpkg keeps its state, relative to the root.
pub const ADMIN: &str = "var/lib/dpkg";

/// The control archive's members that dpkg runs as programs.
pub const SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];

/// The name of a package's files in `info/`: `NAME`, or `NAME:ARCH` for a
/// `Multi-Arch: same` package.
pub fn info_name(name: &str, architecture: &str, multi_arch: Option<&str>) -> String {
    if multi_arch == Some("same") { format!("{name}:{architecture}") } else { name.to_string() }
}

/// Writes the database of `installed` into the root open at `root`.
pub(crate) fn write(root: &OwnedFd, installed: &[Installed]) -> Result<()> {
    let mtime = epoch(installed);
    let mut sorted: Vec<&Installed> = installed.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.deb.id.name, &a.deb.id.architecture).cmp(&(&b.deb.id.name, &b.deb.id.architecture))
    });
    let admin = Path::new(ADMIN);
    let mut status = String::new();
    for package in &sorted {
        let conffiles = conffile_digests(root, package)?;
        status.push_str(&stanza(package, &conffiles));
        status.push('\n');
        let stanza = &package.control.stanza;
        let name = info_name(
            &package.deb.id.name,
            stanza.get("Architecture").unwrap_or(&package.deb.id.architecture),
            stanza.get("Multi-Arch"),
        );
        let info = admin.join("info");
        let list: String = package.list.iter().map(|p| format!("{p}\n")).collect();
        let file = Generated::File { bytes: list.as_bytes(), mode: 0o644 };
        write_generated(root, &info.join(format!("{name}.list")), file, mtime)?;
        for (member, bytes) in &package.control.members {
            let mode = if SCRIPTS.contains(&member.as_str()) { 0o755 } else { 0o644 };
            let file = Generated::File { bytes, mode };
            write_generated(root, &info.join(format!("{name}.{member}")), file, mtime)?;
        }
    }
    let file = Generated::File { bytes: status.as_bytes(), mode: 0o644 };
    write_generated(root, &admin.join("status"), file, mtime)
}

/// A package's stanza as dpkg's status file has it.
fn stanza(package: &Installed, conffiles: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut conffiles_written = conffiles.is_empty();
    for (name, value) in &package.control.stanza.fields {
        if name.eq_ignore_ascii_case("Description") && !conffiles_written {
            out.push_str(&conffiles_field(conffiles));
            conffiles_written = true;
        }
        let sep = if value.starts_with('\n') { "" } else { " " };
        let _ = writeln!(out, "{name}:{sep}{value}");
        if name.eq_ignore_ascii_case("Package") {
            out.push_str("Status: install ok installed\n");
        }
    }
    if !conffiles_written {
        out.push_str(&conffiles_field(conffiles));
    }
    out
}

fn conffiles_field(conffiles: &[(String, String)]) -> String {
    let mut out = "Conffiles:\n".to_string();
    for (path, md5) in conffiles {
        let _ = writeln!(out, " {path} {md5}");
    }
    out
}

/// Each conffile the package lists (`deb-conffiles(5)`: one absolute path
/// a line; `remove-on-upgrade` lines name files not shipped) with the MD5
/// of the file as unpacked.
fn conffile_digests(root: &OwnedFd, package: &Installed) -> Result<Vec<(String, String)>> {
    let Some(text) = package.control.text("conffiles") else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("remove-on-upgrade") {
            continue;
        }
        let path = line.strip_prefix("/").unwrap_or(line);
        let md5 = md5_in_root(root, Path::new(path)).with_context(|| {
            format!("reading the conffile `{line}` of `{}`", package.deb.id.name)
        })?;
        out.push((line.to_string(), md5));
    }
    Ok(out)
}

/// The MD5 of the file at `rel` in the root, read through the confined
/// directory walk.
fn md5_in_root(root: &OwnedFd, rel: &Path) -> Result<String> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().context("no file name")?;
    let dir = open_dir(root, parent, false, Within::Beneath)?.context("no such directory")?;
    let fd = rustix::fs::openat(
        &dir,
        c_name(name)?.as_c_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("opening the file")?;
    let mut file = std::fs::File::from(fd);
    let mut hasher = Md5::new();
    let mut buf = [0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).context("reading the file")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The maintainer scripts and trigger files kept in the `info/` of an
/// unpacked sysroot at `dir` (a host path): (package, member, text),
/// sorted.
pub fn kept_scripts(dir: &Path) -> Result<Vec<(String, String, String)>> {
    let info: PathBuf = dir.join(ADMIN).join("info");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&info) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("failed to list `{}`", info.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list `{}`", info.display()))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some((package, member)) = file.rsplit_once('.') else { continue };
        if !(SCRIPTS.contains(&member) || member == "triggers") {
            continue;
        }
        let path = entry.path();
        let text =
            std::fs::read(&path).with_context(|| format!("failed to read `{}`", path.display()))?;
        let package = package.split(':').next().unwrap_or(package).to_string();
        out.push((package, member.to_string(), String::from_utf8_lossy(&text).into_owned()));
    }
    out.sort();
    Ok(out)
}
