//! A `binfmt_misc` entry of the sandbox's own that runs every native x86-64 program under an emulator, children included: how a smoke check runs on another CPU model (`binfmt.rs` does the same for foreign architectures).
//!
//! Since Linux 6.7 a user namespace may mount `binfmt_misc` and gets an
//! instance of its own, seen by it and the namespaces it creates
//! (`Documentation/admin-guide/binfmt-misc.rst`); PID 1 mounts one on the
//! sandbox's `/proc/sys/fs/binfmt_misc` and writes the entry before the
//! program is executed, so the program and everything it executes go
//! through the emulator. The instance lives as long as that mount (an
//! unmounted instance forgets its entries, measured on 6.18), and the mount
//! lives as long as the namespace. The `F` flag opens the emulator when the
//! entry is written, on the host, so it need not be in the tree.
//!
//! An entry matching every native ELF program would also match the
//! emulator itself, and the kernel gives up with `ELOOP` after a few rounds
//! (`exec_binprm` in `fs/exec.c`; measured: `cat: Too many levels of symbolic
//! links`). The emulator used here is a copy whose last `e_ident` padding
//! byte is 1: the kernel's ELF loader ignores padding (`EI_PAD`), and the
//! entry's mask asks for those bytes to be 0, so the copy is the one native
//! program the entry does not match.

use std::ffi::CStr;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::super::SAFE;

/// `e_ident[15]`, the last padding byte, set to 1 in the emulator's copy.
pub const MARK_OFFSET: u64 = 15;

/// A 64-bit little-endian ELF executable or shared object for x86-64,
/// with zero padding: the first 20 bytes of the header, and which bits of
/// each must match (`EI_OSABI` may be anything, `e_type` 2 or 3).
const MAGIC: [u8; 20] = [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x3e, 0];
const MASK: [u8; 20] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xfe, 0xff, 0xff, 0xff,
];

/// The line written to `register`, prepared before any fork.
#[derive(Debug)]
pub struct Entry {
    line: Vec<u8>,
    /// The emulator's marked copy.
    pub interpreter: PathBuf,
}

impl Entry {
    /// The entry that runs native programs with `interpreter`, a copy of
    /// the emulator marked with [`mark`].
    pub fn new(interpreter: &Path) -> Result<Entry> {
        let path = interpreter.to_str().filter(|p| !p.contains(':')).with_context(|| {
            format!(
                "the emulator's path `{}` cannot be a binfmt_misc entry's",
                interpreter.display()
            )
        })?;
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("\\x{b:02x}")).collect::<String>();
        let line = format!(":rootfs-cpu:M:0:{}:{}:{path}:F", hex(&MAGIC), hex(&MASK));
        Ok(Entry { line: line.into_bytes(), interpreter: interpreter.to_path_buf() })
    }
}

/// Copies the emulator at `from` to `to` with the mark that keeps the
/// entry from matching it.
pub fn mark(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::FileExt;
    std::fs::copy(from, to)
        .with_context(|| format!("copying `{}` to `{}`", from.display(), to.display()))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(to)
        .with_context(|| format!("opening `{}`", to.display()))?;
    let mut header = [0u8; 20];
    file.read_exact_at(&mut header, 0)
        .with_context(|| format!("reading the ELF header of `{}`", to.display()))?;
    anyhow::ensure!(
        header.iter().zip(MAGIC).zip(MASK).all(|((h, m), k)| h & k == m & k),
        "`{}` is not a native x86-64 ELF program",
        from.display()
    );
    file.write_all_at(&[1], MARK_OFFSET).with_context(|| format!("marking `{}`", to.display()))
}

/// Mounts a `binfmt_misc` of this namespace on `dirs.0` and writes the
/// entry to its `register` file (`dirs.1`); async-signal-safe.
pub(in crate::run::sandbox) fn register(
    dirs: &(std::ffi::CString, std::ffi::CString),
    entry: &Entry,
) -> io::Result<()> {
    let (dir, register): (&CStr, &CStr) = (&dirs.0, &dirs.1);
    rustix::mount::mount(c"binfmt_misc", dir, c"binfmt_misc", SAFE, None)?;
    let fd = rustix::fs::open(
        register,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    rustix::io::write(&fd, &entry.line)?;
    Ok(())
}
