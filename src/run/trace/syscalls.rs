//! The system calls the tracer stops at, as data for each ABI of an x86_64 or aarch64 host, and the seccomp filter built from them.
//!
//! Each entry says where the call's path is (an argument holding a string
//! pointer, relative to a directory descriptor in another argument, or a
//! descriptor on its own), which flags decide whether a final symbolic link
//! is followed, and what kind of access it is. The supervisor decodes a
//! notification with [`find`]; the filter is a classic BPF program
//! (`seccomp(2)`, "Filter return values") that sends exactly these calls to
//! the supervisor and lets every other call through.

use super::Access;

/// Where a call names the file it works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathArg {
    /// A path string in argument `path`, relative to the directory
    /// descriptor in argument `dirfd` (`None`: the working directory, as for
    /// the calls older than `openat`).
    At { dirfd: Option<usize>, path: usize },
    /// The file a descriptor in this argument refers to (`getdents`).
    Fd(usize),
}

/// Which flags a call has, deciding whether its final component is followed
/// when it is a symbolic link, and for an open whether it needs a
/// directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flags {
    /// Follows a final symbolic link (`stat`, `access`, `chdir`, `execve`).
    Follow,
    /// Never follows a final symbolic link (`lstat`, `readlink`).
    NoFollow,
    /// `open(2)` flags in this argument (`O_NOFOLLOW`, `O_DIRECTORY`).
    Open(usize),
    /// A pointer to a `struct open_how` in this argument (`openat2(2)`),
    /// whose `flags` are `open(2)` flags and whose `resolve` may make the
    /// directory descriptor the root (`RESOLVE_IN_ROOT`).
    OpenHow(usize),
    /// `AT_*` flags in this argument (`AT_SYMLINK_NOFOLLOW`,
    /// `AT_EMPTY_PATH`).
    At(usize),
}

/// The `open(2)` flag bits the supervisor reads, which differ between
/// ABIs: x86 uses `<asm-generic/fcntl.h>`'s, arm64 (like 32-bit arm) its
/// own `<asm/fcntl.h>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenBits {
    pub directory: u64,
    pub nofollow: u64,
}

/// `O_DIRECTORY` and `O_NOFOLLOW` of `<asm-generic/fcntl.h>` (x86_64, i386).
pub const GENERIC_OPEN: OpenBits = OpenBits { directory: 0o200000, nofollow: 0o400000 };
/// `O_DIRECTORY` and `O_NOFOLLOW` of `arch/arm64/include/uapi/asm/fcntl.h`.
pub const ARM64_OPEN: OpenBits = OpenBits { directory: 0o40000, nofollow: 0o100000 };

/// One system call of one ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub name: &'static str,
    pub nr: u32,
    pub access: Access,
    pub path: PathArg,
    pub flags: Flags,
    /// What `Flags::Open` and `Flags::OpenHow` bits mean on this ABI.
    pub open: OpenBits,
}

const fn at(dirfd: usize, path: usize) -> PathArg {
    PathArg::At { dirfd: Some(dirfd), path }
}

const fn cwd(path: usize) -> PathArg {
    PathArg::At { dirfd: None, path }
}

const fn call(name: &'static str, nr: u32, access: Access, path: PathArg, flags: Flags) -> Syscall {
    Syscall { name, nr, access, path, flags, open: GENERIC_OPEN }
}

const fn call_arm64(
    name: &'static str,
    nr: u32,
    access: Access,
    path: PathArg,
    flags: Flags,
) -> Syscall {
    Syscall { name, nr, access, path, flags, open: ARM64_OPEN }
}

/// `AUDIT_ARCH_X86_64` (`<linux/audit.h>`: `EM_X86_64 | __AUDIT_ARCH_64BIT |
/// __AUDIT_ARCH_LE`). The x32 ABI shares it and sets bit 30 of the number
/// (`__X32_SYSCALL_BIT`), so its calls match no entry below and are allowed
/// through untraced (x32 is rarely enabled: not on this project's hosts).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386` (`EM_386 | __AUDIT_ARCH_LE`): 32-bit programs, and
/// `int $0x80` from 64-bit ones.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// The x86_64 ABI (`arch/x86/entry/syscalls/syscall_64.tbl`), the numbers
/// written out as for the other ABIs, so the table builds on any host (a
/// unit test compares them with the `libc` crate's on x86_64). Argument
/// positions are those of the kernel's entry points (`fs/open.c`,
/// `fs/stat.c`, `fs/exec.c`, `fs/readdir.c`).
#[rustfmt::skip]
pub const X86_64: &[Syscall] = &[
    call("open", 2, Access::Open, cwd(0), Flags::Open(1)),
    call("openat", 257, Access::Open, at(0, 1), Flags::Open(2)),
    call("openat2", 437, Access::Open, at(0, 1), Flags::OpenHow(2)),
    call("creat", 85, Access::Open, cwd(0), Flags::Follow),
    call("execve", 59, Access::Exec, cwd(0), Flags::Follow),
    call("execveat", 322, Access::Exec, at(0, 1), Flags::At(4)),
    call("stat", 4, Access::Stat, cwd(0), Flags::Follow),
    call("lstat", 6, Access::Stat, cwd(0), Flags::NoFollow),
    call("newfstatat", 262, Access::Stat, at(0, 1), Flags::At(3)),
    call("statx", 332, Access::Stat, at(0, 1), Flags::At(2)),
    call("access", 21, Access::Stat, cwd(0), Flags::Follow),
    call("faccessat", 269, Access::Stat, at(0, 1), Flags::Follow),
    call("faccessat2", 439, Access::Stat, at(0, 1), Flags::At(3)),
    call("readlink", 89, Access::Readlink, cwd(0), Flags::NoFollow),
    call("readlinkat", 267, Access::Readlink, at(0, 1), Flags::NoFollow),
    call("getdents", 78, Access::List, PathArg::Fd(0), Flags::Follow),
    call("getdents64", 217, Access::List, PathArg::Fd(0), Flags::Follow),
    call("chdir", 80, Access::Chdir, cwd(0), Flags::Follow),
];

/// The i386 ABI, with the numbers of the kernel's
/// `arch/x86/entry/syscalls/syscall_32.tbl` (the `libc` crate defines them
/// only when building for i386). `oldstat`, `oldlstat` and `readdir` are
/// the pre-1.0 forms that old binaries still use; `stat64` and friends are
/// what glibc's 32-bit `stat` calls.
#[rustfmt::skip]
pub const I386: &[Syscall] = &[
    call("open", 5, Access::Open, cwd(0), Flags::Open(1)),
    call("creat", 8, Access::Open, cwd(0), Flags::Follow),
    call("execve", 11, Access::Exec, cwd(0), Flags::Follow),
    call("chdir", 12, Access::Chdir, cwd(0), Flags::Follow),
    call("oldstat", 18, Access::Stat, cwd(0), Flags::Follow),
    call("access", 33, Access::Stat, cwd(0), Flags::Follow),
    call("oldlstat", 84, Access::Stat, cwd(0), Flags::NoFollow),
    call("readlink", 85, Access::Readlink, cwd(0), Flags::NoFollow),
    call("readdir", 89, Access::List, PathArg::Fd(0), Flags::Follow),
    call("stat", 106, Access::Stat, cwd(0), Flags::Follow),
    call("lstat", 107, Access::Stat, cwd(0), Flags::NoFollow),
    call("getdents", 141, Access::List, PathArg::Fd(0), Flags::Follow),
    call("stat64", 195, Access::Stat, cwd(0), Flags::Follow),
    call("lstat64", 196, Access::Stat, cwd(0), Flags::NoFollow),
    call("getdents64", 220, Access::List, PathArg::Fd(0), Flags::Follow),
    call("openat", 295, Access::Open, at(0, 1), Flags::Open(2)),
    call("fstatat64", 300, Access::Stat, at(0, 1), Flags::At(3)),
    call("readlinkat", 305, Access::Readlink, at(0, 1), Flags::NoFollow),
    call("faccessat", 307, Access::Stat, at(0, 1), Flags::Follow),
    call("execveat", 358, Access::Exec, at(0, 1), Flags::At(4)),
    call("statx", 383, Access::Stat, at(0, 1), Flags::At(2)),
    call("openat2", 437, Access::Open, at(0, 1), Flags::OpenHow(2)),
    call("faccessat2", 439, Access::Stat, at(0, 1), Flags::At(3)),
];

/// `AUDIT_ARCH_AARCH64` (`EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
/// 32-bit arm programs on an arm64 host (`AUDIT_ARCH_ARM`) are not tabled:
/// their calls pass untraced.
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

/// The arm64 ABI: the generic table of `include/uapi/asm-generic/unistd.h`,
/// which has only the `*at` forms (no `open`, `stat`, `access`,
/// `readlink`, `getdents`). The numbers are written out, as the `libc` crate
/// defines them only when building for aarch64 (a unit test compares them
/// there).
#[rustfmt::skip]
pub const AARCH64: &[Syscall] = &[
    call_arm64("faccessat", 48, Access::Stat, at(0, 1), Flags::Follow),
    call_arm64("chdir", 49, Access::Chdir, cwd(0), Flags::Follow),
    call_arm64("openat", 56, Access::Open, at(0, 1), Flags::Open(2)),
    call_arm64("getdents64", 61, Access::List, PathArg::Fd(0), Flags::Follow),
    call_arm64("readlinkat", 78, Access::Readlink, at(0, 1), Flags::NoFollow),
    call_arm64("newfstatat", 79, Access::Stat, at(0, 1), Flags::At(3)),
    call_arm64("execve", 221, Access::Exec, cwd(0), Flags::Follow),
    call_arm64("execveat", 281, Access::Exec, at(0, 1), Flags::At(4)),
    call_arm64("statx", 291, Access::Stat, at(0, 1), Flags::At(2)),
    call_arm64("openat2", 437, Access::Open, at(0, 1), Flags::OpenHow(2)),
    call_arm64("faccessat2", 439, Access::Stat, at(0, 1), Flags::At(3)),
];

/// Every ABI the filter and the supervisor know, by its audit architecture.
pub const ABIS: &[(u32, &[Syscall])] =
    &[(AUDIT_ARCH_X86_64, X86_64), (AUDIT_ARCH_I386, I386), (AUDIT_ARCH_AARCH64, AARCH64)];

/// The `AT_*` flags the supervisor reads (`<linux/fcntl.h>`, the same on
/// every ABI).
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
pub const AT_EMPTY_PATH: u64 = 0x1000;
/// `AT_FDCWD` as the low 32 bits of an argument (`int` in the kernel).
pub const AT_FDCWD: i32 = -100;
/// `RESOLVE_IN_ROOT` in `struct open_how`'s `resolve` (`<linux/openat2.h>`).
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// The entry for a notification's ABI and number, if it is one we stop at.
pub fn find(arch: u32, nr: i32) -> Option<&'static Syscall> {
    let (_, table) = ABIS.iter().find(|(a, _)| *a == arch)?;
    table.iter().find(|s| s.nr as i32 == nr)
}

// Classic BPF opcodes (`<linux/bpf_common.h>`; the `libc` crate has them
// only for other systems).
/// `BPF_LD | BPF_W | BPF_ABS`: load the 32-bit word at offset k.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`: jump by jt when the word equals k, else by jf.
const BPF_JMP_JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`: return k.
const BPF_RET_K: u16 = 0x06;
/// Offsets in `struct seccomp_data` (`<linux/seccomp.h>`).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump_if_equal(k: u32, jt: usize, jf: usize) -> libc::sock_filter {
    let jt = u8::try_from(jt).expect("the filter is short enough for 8-bit jumps");
    let jf = u8::try_from(jf).expect("the filter is short enough for 8-bit jumps");
    libc::sock_filter { code: BPF_JMP_JEQ_K, jt, jf, k }
}

/// The filter: `SECCOMP_RET_USER_NOTIF` for every call of each table of
/// [`ABIS`] on its own ABI, `SECCOMP_RET_ALLOW` for all else. Laid out as
///
/// ```text
///  0      load arch
///  1..=n  arch == ABI k ? -> block k : next   (one test per ABI)
///  n+1    allow
///         block k: load nr; one "nr == m ? -> notify" per entry; allow
///         notify
/// ```
///
/// A jump's offset counts the instructions it skips.
pub fn program() -> Vec<libc::sock_filter> {
    let first_block = 2 + ABIS.len();
    let mut starts = Vec::new();
    let mut next = first_block;
    for (_, table) in ABIS {
        starts.push(next);
        next += table.len() + 2;
    }
    let notify = next;
    let mut prog = vec![stmt(BPF_LD_W_ABS, DATA_ARCH)];
    for ((arch, _), start) in ABIS.iter().zip(&starts) {
        let pc = prog.len();
        prog.push(jump_if_equal(*arch, start - pc - 1, 0));
    }
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    for (_, table) in ABIS {
        prog.push(stmt(BPF_LD_W_ABS, DATA_NR));
        for syscall in *table {
            let pc = prog.len();
            prog.push(jump_if_equal(syscall.nr, notify - pc - 1, 0));
        }
        prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    }
    debug_assert_eq!(prog.len(), notify);
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter on one (arch, nr) as the kernel's BPF interpreter
    /// would, for the few opcodes the program uses.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let insn = prog[pc];
            match insn.code {
                BPF_LD_W_ABS => acc = if insn.k == DATA_ARCH { arch } else { nr },
                BPF_JMP_JEQ_K => {
                    pc += usize::from(if acc == insn.k { insn.jt } else { insn.jf });
                }
                BPF_RET_K => return insn.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn the_filter_notifies_exactly_the_tabled_calls_of_each_abi() {
        let prog = program();
        for &(arch, table) in ABIS {
            for nr in 0..500 {
                let expected = if table.iter().any(|s| s.nr == nr) {
                    libc::SECCOMP_RET_USER_NOTIF
                } else {
                    libc::SECCOMP_RET_ALLOW
                };
                assert_eq!(run(&prog, arch, nr), expected, "arch {arch:#x} nr {nr}");
            }
        }
        // x32 (bit 30 set) and unknown architectures pass.
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 0x4000_0000 | 2), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&prog, 0x4000_0028, 5), libc::SECCOMP_RET_ALLOW, "32-bit arm");
    }

    #[test]
    fn every_entry_is_found_by_its_own_abi() {
        for &(arch, table) in ABIS {
            for syscall in table {
                assert_eq!(find(arch, syscall.nr as i32), Some(syscall));
            }
        }
        assert_eq!(find(AUDIT_ARCH_I386, 2), None, "2 is fork on i386");
    }

    /// The written-out numbers and open bits of the running machine's own
    /// ABI agree with the `libc` crate's (run on an arm64 host, or under
    /// `qemu-aarch64` with `--target aarch64-unknown-linux-gnu`).
    #[test]
    fn the_native_table_agrees_with_libc() {
        #[cfg(target_arch = "aarch64")]
        let (table, expected) = (
            AARCH64,
            [
                ("faccessat", libc::SYS_faccessat),
                ("chdir", libc::SYS_chdir),
                ("openat", libc::SYS_openat),
                ("getdents64", libc::SYS_getdents64),
                ("readlinkat", libc::SYS_readlinkat),
                ("newfstatat", libc::SYS_newfstatat),
                ("execve", libc::SYS_execve),
                ("execveat", libc::SYS_execveat),
                ("statx", libc::SYS_statx),
                ("openat2", libc::SYS_openat2),
                ("faccessat2", libc::SYS_faccessat2),
            ],
        );
        #[cfg(target_arch = "x86_64")]
        let (table, expected) = (
            X86_64,
            [
                ("open", libc::SYS_open),
                ("openat", libc::SYS_openat),
                ("openat2", libc::SYS_openat2),
                ("creat", libc::SYS_creat),
                ("execve", libc::SYS_execve),
                ("execveat", libc::SYS_execveat),
                ("stat", libc::SYS_stat),
                ("lstat", libc::SYS_lstat),
                ("newfstatat", libc::SYS_newfstatat),
                ("statx", libc::SYS_statx),
                ("access", libc::SYS_access),
                ("faccessat", libc::SYS_faccessat),
                ("faccessat2", libc::SYS_faccessat2),
                ("readlink", libc::SYS_readlink),
                ("readlinkat", libc::SYS_readlinkat),
                ("getdents", libc::SYS_getdents),
                ("getdents64", libc::SYS_getdents64),
                ("chdir", libc::SYS_chdir),
            ],
        );
        assert_eq!(table.len(), expected.len(), "every entry is compared");
        for (name, nr) in expected {
            let entry = table.iter().find(|s| s.name == name).expect(name);
            assert_eq!(i64::from(entry.nr), nr, "{name}");
            assert_eq!(entry.open.directory, libc::O_DIRECTORY as u64, "{name}");
            assert_eq!(entry.open.nofollow, libc::O_NOFOLLOW as u64, "{name}");
        }
        assert_eq!(
            table.len(),
            table.iter().map(|s| s.nr).collect::<std::collections::BTreeSet<_>>().len()
        );
    }
}
