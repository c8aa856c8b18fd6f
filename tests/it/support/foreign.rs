//! Package sysroots of other architectures and the qemu-user emulator that runs their programs, for the parity and smoke tests of foreign trees.

use std::path::{Path, PathBuf};

use rootfs::build::debian::DebianRequest;
use rootfs::build::image_sysroot::{SysrootSource, prepare};
use rootfs::resolve::arch::Arch;
use rootfs::run::sandbox::binfmt::MissingEmulator;

/// The packages of every foreign sysroot: the default spec's commands
/// (bash, coreutils, procps, iproute2, hostname, mount, vim) with the
/// terminal descriptions its vim check draws with (ncurses-base, which
/// nothing depends on), and enough more that the closure holds over a
/// hundred packages (about 150).
pub const PACKAGES: &[&str] = &[
    "bash",
    "coreutils",
    "curl",
    "file",
    "findutils",
    "git",
    "gnupg",
    "grep",
    "gzip",
    "hostname",
    "iproute2",
    "less",
    "libc-bin",
    "mount",
    "ncurses-base",
    "ncurses-bin",
    "openssh-client",
    "perl",
    "procps",
    "python3",
    "sed",
    "tar",
    "util-linux",
    "vim",
];

/// The suite an architecture is taken from: riscv64 became a release
/// architecture with trixie; the others come from bookworm.
pub fn suite(arch: &Arch) -> &'static str {
    if arch.debian == "riscv64" { "trixie" } else { "bookworm" }
}

/// The package sysroot of `arch`, fetched through the apt sources' mirror
/// into the shared package cache and unpacked once under the tests'
/// target folder (later runs reuse it).
pub fn sysroot(arch: &Arch) -> PathBuf {
    let request = DebianRequest {
        suite: suite(arch).into(),
        architecture: Some(arch.debian.into()),
        packages: PACKAGES.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    let source = SysrootSource::Debian { request, lock: None, locked: false };
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("foreign-sysroots");
    prepare(&source, &root).unwrap_or_else(|e| panic!("{}: {e:#}", arch.debian)).dir
}

/// The number of packages dpkg's status file of a sysroot lists.
pub fn package_count(sysroot: &Path) -> usize {
    let status = std::fs::read_to_string(sysroot.join("var/lib/dpkg/status")).unwrap();
    status.lines().filter(|l| l.starts_with("Package: ")).count()
}

/// How this machine runs `arch`'s programs: `Ok(None)` natively,
/// `Ok(Some(emulator))` through qemu-user, or `Err` saying what to install.
pub fn runner(arch: &'static Arch) -> Result<Option<PathBuf>, MissingEmulator> {
    if arch.runs_natively() {
        return Ok(None);
    }
    let path = Path::new("/usr/bin").join(arch.qemu_static());
    if path.is_file() { Ok(Some(path)) } else { Err(MissingEmulator { arch, path }) }
}

/// A copy of `sysroot` at `copy` made of hard links (so it costs no data),
/// which a test may add files to without touching the shared sysroot: each
/// directory is the copy's own, and a file is only ever replaced by a new
/// one, never written through a link.
pub fn linked_copy(sysroot: &Path, copy: &Path) {
    if copy.exists() {
        std::fs::remove_dir_all(copy).unwrap();
    }
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let status =
        std::process::Command::new("cp").arg("-al").arg(sysroot).arg(copy).status().unwrap();
    assert!(status.success(), "cp -al {} {}", sysroot.display(), copy.display());
}

/// Puts `emulator` in `root` as `/.qemu-static`, for runs chrooted there.
pub fn place_emulator(root: &Path, emulator: &Path) -> &'static str {
    const INSIDE: &str = "/.qemu-static";
    std::fs::copy(emulator, root.join(&INSIDE[1..])).unwrap();
    INSIDE
}

/// [`crate::support::in_chroot`], for a root whose emulator was just
/// copied in: another test thread forking while the copy was open for
/// writing can hold it open in its child for a moment, and the exec then
/// fails with `ETXTBSY` (the known race of writing and running a file in
/// one multithreaded process); that exec is tried again.
pub fn in_chroot(root: &Path, argv: &[&str]) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    for _ in 0..100 {
        let root = root.to_path_buf();
        let mut command = std::process::Command::new(argv[0]);
        command.args(&argv[1..]).env_clear();
        // SAFETY: chroot and chdir are async-signal-safe system calls.
        unsafe {
            command.pre_exec(move || {
                rustix::process::chroot(&root)?;
                rustix::process::chdir("/")?;
                Ok(())
            });
        }
        match command.output() {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                return (out.status.code().unwrap_or(-1), text);
            }
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{}: {e}", argv[0]),
        }
    }
    panic!("{}: still busy", argv[0]);
}

/// Held by a test while it looks at or changes the host's binfmt_misc
/// registrations: [`host_binfmt`] adds one, which another test checking
/// that the host has none of ours must not see half-way.
pub static HOST_BINFMT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A registration of `arch`'s emulator in the host's binfmt_misc, made by
/// a test for a program the sandbox does not start (podman's containers),
/// and removed when dropped, with the binfmt_misc mount when the test made
/// it. None is made when the host has one for the architecture already.
pub struct HostBinfmt {
    entry: Option<PathBuf>,
    mounted: bool,
    _held: std::sync::MutexGuard<'static, ()>,
}

const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Registers `arch`'s emulator on the host with the `F` flag (as root).
pub fn host_binfmt(arch: &'static Arch) -> HostBinfmt {
    let held = HOST_BINFMT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(BINFMT_MISC);
    let mounted = !dir.join("register").exists();
    if mounted {
        let status = std::process::Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT_MISC])
            .status()
            .unwrap();
        assert!(status.success(), "mounting binfmt_misc on {BINFMT_MISC}");
    }
    let taken = std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.contains(arch.qemu)
            && std::fs::read_to_string(e.path()).is_ok_and(|t| t.starts_with("enabled"))
    });
    let mut entry = None;
    if !taken {
        let emulator =
            rootfs::run::sandbox::binfmt::emulator(arch).unwrap_or_else(|m| panic!("{m}"));
        let line =
            String::from_utf8(rootfs::run::sandbox::binfmt::registration(&emulator)).unwrap();
        // Not the sandbox's `rootfs-` prefix: foreign_smoke checks that
        // the host never holds one of those.
        let line = line.replacen(":rootfs-qemu-", ":test-qemu-", 1);
        std::fs::write(dir.join("register"), line).unwrap();
        entry = Some(dir.join(format!("test-qemu-{}", arch.qemu)));
    }
    HostBinfmt { entry, mounted, _held: held }
}

impl Drop for HostBinfmt {
    fn drop(&mut self) {
        if let Some(entry) = &self.entry {
            let _ = std::fs::write(entry, "-1");
        }
        if self.mounted {
            let _ = std::process::Command::new("umount").arg(BINFMT_MISC).status();
        }
    }
}
