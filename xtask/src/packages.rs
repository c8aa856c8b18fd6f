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
    "runc",
    "zstd",
];

/// The peers the benchmark compares against, and the export floor's
/// compressors.
pub const FOR_BENCH: &[&str] =
    &["pax-utils", "dracut-core", "jailkit", "hyperfine", "pigz", "zstd"];

/// Installs whichever of `packages` is missing.
pub fn ensure(sh: &Shell, packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(sh, p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        bail!(
            "these Debian packages are needed and missing: {}\nhelp: run `sudo apt-get install -y {}`, then try again",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("installing {}", missing.join(" "));
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "apt-get update -qq").run().context("running apt-get update")?;
    cmd!(sh, "apt-get install -y -qq --no-install-recommends {missing...}")
        .run()
        .context("running apt-get install")?;
    Ok(())
}

fn installed(sh: &Shell, package: &str) -> bool {
    let format = "-f=${Status}";
    cmd!(sh, "dpkg-query -W {format} {package}")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|status| status.ends_with("install ok installed"))
}
