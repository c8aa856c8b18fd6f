//! Debian packages the tests and the benchmark need on the host, installed with apt-get when missing (as root) or named in the error (otherwise).

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// What the integration tests use besides the toolchain: the programs of
/// the shipped specs, the C compiler for fixtures, the tools compared
/// against, and the tools that consume exports (skopeo, umoci, podman,
/// runc, tar, cpio, pigz, zstd, and qemu with a stock kernel for the
/// initramfs).
pub const FOR_TESTS: &[&str] = &[
    "bash",
    "busybox-static",
    "coreutils",
    "gcc",
    // `cc -m32`, for the fixture that mixes 32-bit and 64-bit programs.
    "gcc-multilib",
    "grep",
    "gzip",
    "hostname",
    "iproute2",
    "libc6-dev",
    "mount",
    "procps",
    "sed",
    "tar",
    // Drives `shell` on a real terminal.
    "tmux",
    "util-linux",
    "vim",
    "findutils",
    // clear and infocmp, which the probe test compares with the host.
    "ncurses-bin",
    // chattr.
    "e2fsprogs",
    // The c preset, and the C project of the fixtures built in a tree.
    "make",
    // What the presets and the workloads test run, and compare with.
    "ca-certificates",
    "curl",
    "git",
    "openjdk-17-jdk-headless",
    "openssl",
    "perl",
    "python3",
    // Image layouts for the SBOM artifact and image sysroot tests, and the
    // virtual environment that holds the SPDX validator.
    "umoci",
    "skopeo",
    "python3-venv",
    // The real tools the export tests drive.
    "cpio",
    "linux-image-amd64",
    "pigz",
    "podman",
    "qemu-system-x86",
    // qemu-ARCH-static: the loader parity of foreign architectures, the
    // smoke checks of foreign trees, and smoke on other x86-64 CPU levels.
    "qemu-user-static",
    "runc",
    "zstd",
    // The reference registry a multi-architecture image is pushed to and
    // pulled back from, on loopback.
    "docker-registry",
];

/// The peers the benchmark compares against, and the export floor's
/// compressors.
pub const FOR_BENCH: &[&str] =
    &["pax-utils", "dracut-core", "jailkit", "hyperfine", "pigz", "zstd"];

/// Packages that would replace an installed one (Debian's `Conflicts` and
/// `Replaces`): `busybox-static` removes `busybox`. Each is left out when
/// the other is installed, so that the tests never remove a package; the
/// busybox spec then takes the installed busybox.
const REPLACES: &[(&str, &str)] = &[("busybox-static", "busybox")];

/// What to install, and what is left out and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Choice<'a> {
    pub install: Vec<&'a str>,
    /// A package left out, and the installed package it would replace.
    pub left_out: Vec<(&'a str, &'a str)>,
}

/// The packages of `packages` that are missing, less those that would
/// replace an installed one.
pub fn choose<'a>(packages: &[&'a str], installed: impl Fn(&str) -> bool) -> Choice<'a> {
    let mut choice = Choice::default();
    for &package in packages.iter().filter(|p| !installed(p)) {
        let replaced = REPLACES.iter().find(|(p, other)| *p == package && installed(other));
        match replaced {
            Some(&(_, other)) => choice.left_out.push((package, other)),
            None => choice.install.push(package),
        }
    }
    choice
}

/// What `apt-get install -s` says it would do: packages installed (with
/// their dependencies) and packages removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Simulated {
    pub installs: Vec<String>,
    pub removals: Vec<String>,
}

/// Reads the `Inst NAME ...` and `Remv NAME ...` lines of a simulation.
pub fn simulated(text: &str) -> Simulated {
    let mut result = Simulated::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Inst"), Some(name)) => result.installs.push(name.to_string()),
            (Some("Remv"), Some(name)) => result.removals.push(name.to_string()),
            _ => {}
        }
    }
    result.installs.sort();
    result.removals.sort();
    result
}

/// Installs whichever of `packages` is missing, after saying what it will
/// install; never removes a package (a package that would replace an
/// installed one is left out, one installed from outside the archive that
/// would be removed is replaced by the archive's version instead, and any
/// removal apt-get would still make stops everything before a change).
pub fn ensure(sh: &Shell, packages: &[&str]) -> Result<()> {
    let choice = choose(packages, |p| installed(sh, p));
    for (package, other) in &choice.left_out {
        eprintln!("note: leaving out {package}, which would replace the installed {other}");
    }
    let missing = choice.install;
    if missing.is_empty() {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        bail!(
            "these Debian packages are needed and missing: {}\nhelp: run `sudo apt-get install -y --no-remove {}`, then try again",
            missing.join(" "),
            missing.join(" ")
        );
    }
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "apt-get update -qq").run().context("running apt-get update")?;
    let mut wanted: Vec<String> = missing.iter().map(|p| p.to_string()).collect();
    let mut plan = simulate(sh, &wanted)?;
    // A package installed from outside the archive (a backport, say) that
    // the new ones conflict with is replaced by the archive's version of
    // it, never removed: `qemu-system-x86` needs bookworm's `qemu-utils`.
    let mut replaced = Vec::new();
    if !plan.removals.is_empty() {
        for package in &plan.removals {
            if let Some(version) = archive_version(sh, package) {
                wanted.push(format!("{package}={version}"));
                replaced.push(format!("{package} (by the archive's {version})"));
            }
        }
        plan = simulate(sh, &wanted)?;
    }
    if !plan.removals.is_empty() {
        bail!(
            "installing {} would remove {}: nothing was changed\nhelp: install them yourself if that is what you want",
            missing.join(" "),
            plan.removals.join(" ")
        );
    }
    eprintln!(
        "installing with apt-get: {} ({} packages with their dependencies: {})",
        missing.join(" "),
        plan.installs.len(),
        plan.installs.join(" ")
    );
    if !replaced.is_empty() {
        eprintln!("replacing, so that nothing is removed: {}", replaced.join(", "));
    }
    cmd!(
        sh,
        "apt-get install -y -qq --no-remove --allow-downgrades --no-install-recommends {wanted...}"
    )
    .run()
    .context("running apt-get install")?;
    Ok(())
}

/// What `apt-get install` of `packages` would do, asked without changing
/// anything.
fn simulate(sh: &Shell, packages: &[String]) -> Result<Simulated> {
    let text =
        cmd!(sh, "apt-get install -s --allow-downgrades --no-install-recommends {packages...}")
            .quiet()
            .read()
            .context("asking apt-get what it would install")?;
    Ok(simulated(&text))
}

/// The newest version of `package` that a repository serves (the first
/// line of `apt-cache madison`), as opposed to one installed from a file.
fn archive_version(sh: &Shell, package: &str) -> Option<String> {
    let text = cmd!(sh, "apt-cache madison {package}").quiet().ignore_stderr().read().ok()?;
    text.lines().next()?.split('|').nth(1).map(|v| v.trim().to_string())
}

fn installed(sh: &Shell, package: &str) -> bool {
    let format = "-f=${Status}";
    cmd!(sh, "dpkg-query -W {format} {package}")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|status| status.ends_with("install ok installed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_that_would_replace_an_installed_one_is_left_out() {
        let wanted = ["busybox-static", "tmux", "vim"];
        let with_busybox = choose(&wanted, |p| p == "busybox" || p == "vim");
        assert_eq!(
            with_busybox,
            Choice { install: vec!["tmux"], left_out: vec![("busybox-static", "busybox")] }
        );
        let without = choose(&wanted, |p| p == "vim");
        assert_eq!(without, Choice { install: vec!["busybox-static", "tmux"], left_out: vec![] });
    }

    #[test]
    fn a_simulation_names_what_would_be_installed_and_removed() {
        let text = "Reading package lists...\nRemv busybox [1:1.35.0-4+deb12u1+b1]\nInst busybox-static (1:1.35.0-4+deb12u1 Debian:12.8/stable [amd64])\nInst libc6-i386 (2.36-9 Debian [amd64])\nConf busybox-static (1:1.35.0-4+deb12u1 Debian:12.8/stable [amd64])\n";
        assert_eq!(
            simulated(text),
            Simulated {
                installs: vec!["busybox-static".into(), "libc6-i386".into()],
                removals: vec!["busybox".into()],
            }
        );
    }
}
