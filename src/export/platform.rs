//! The platform of an image (`architecture`, `variant`, `os`), read from the ELF headers of the tree's commands and named as the OCI image spec and Go's `GOARCH` name them.

use std::io::Read;
use std::path::Path;

use anyhow::{Result, bail};
use goblin::elf::header::{
    ELFCLASS64, ELFDATA2LSB, EM_386, EM_AARCH64, EM_ARM, EM_LOONGARCH, EM_MIPS, EM_PPC64, EM_RISCV,
    EM_S390, EM_X86_64,
};

use crate::build::manifest::CommandEntry;
use crate::resolve::elf::{self, Ident};
use crate::resolve::sysroot::Sysroot;

/// What runs the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    pub architecture: &'static str,
    pub variant: Option<&'static str>,
    pub os: &'static str,
}

/// The OCI name of an ELF machine, class and byte order.
pub fn of_ident(ident: Ident) -> Option<Platform> {
    let wide = ident.class == ELFCLASS64;
    let little = ident.data == ELFDATA2LSB;
    let (architecture, variant) = match ident.machine {
        EM_X86_64 if wide => ("amd64", None),
        EM_386 => ("386", None),
        EM_AARCH64 if wide => ("arm64", Some("v8")),
        // Debian's one glibc port to 32-bit ARM in `crate::resolve::arch` is armhf,
        // which needs ARMv7 (as containerd's `linux/arm/v7`).
        EM_ARM => ("arm", Some("v7")),
        EM_PPC64 if little => ("ppc64le", None),
        EM_PPC64 => ("ppc64", None),
        EM_S390 if wide => ("s390x", None),
        EM_RISCV if wide => ("riscv64", None),
        EM_LOONGARCH if wide => ("loong64", None),
        EM_MIPS => match (wide, little) {
            (true, true) => ("mips64le", None),
            (true, false) => ("mips64", None),
            (false, true) => ("mipsle", None),
            (false, false) => ("mips", None),
        },
        _ => return None,
    };
    Some(Platform { architecture, variant, os: "linux" })
}

/// The OCI `variant` of an amd64 image whose objects need `level`: `v2`,
/// `v3` or `v4` as containerd and podman read it. The baseline is left
/// unnamed, as containerd normalises `v1` away.
pub fn amd64_variant(level: crate::resolve::elf::IsaLevel) -> Option<&'static str> {
    use crate::resolve::elf::IsaLevel;
    match level {
        IsaLevel::V1 => None,
        IsaLevel::V2 => Some("v2"),
        IsaLevel::V3 => Some("v3"),
        IsaLevel::V4 => Some("v4"),
    }
}

/// The platform of the ELF commands of the tree at `tree` (found through
/// the tree's own symlinks, never the host's). They must all agree.
pub fn of_tree(tree: &Path, commands: &[CommandEntry]) -> Result<Platform> {
    let sysroot = Sysroot::new(tree);
    let mut found: Vec<(Platform, &CommandEntry)> = Vec::new();
    for command in commands {
        let Ok(located) = sysroot.locate(&command.path) else { continue };
        let Some(ident) = ident_of(&sysroot.host(&located.real)) else { continue };
        let Some(platform) = of_ident(ident) else {
            bail!(
                "`{}` is an {} program, which has no OCI architecture name",
                command.path.display(),
                ident.describe()
            );
        };
        if let Some((first, other)) = found.first()
            && *first != platform
        {
            bail!(
                "the commands are for different machines: `{}` is {} and `{}` is {}",
                other.path.display(),
                first.architecture,
                command.path.display(),
                platform.architecture
            );
        }
        found.push((platform, command));
    }
    match found.first() {
        Some((platform, _)) => Ok(*platform),
        None => {
            bail!("cannot tell the image's architecture: no command of the spec is an ELF program")
        }
    }
}

/// The ELF identity of a file, from its first 64 bytes alone (the ELF
/// header): one read per command, where `elf::read` would also read the
/// program headers and the dynamic section.
fn ident_of(path: &Path) -> Option<Ident> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).ok()?;
    if !head[..n].starts_with(goblin::elf::header::ELFMAG) {
        return None;
    }
    elf::parse(&head[..n]).ident
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_have_their_oci_names() {
        let ident = |class, data, machine| Ident { class, data, machine };
        assert_eq!(of_ident(ident(2, 1, EM_X86_64)).unwrap().architecture, "amd64");
        assert_eq!(of_ident(ident(2, 1, EM_AARCH64)).unwrap().variant, Some("v8"));
        assert_eq!(of_ident(ident(1, 1, EM_386)).unwrap().architecture, "386");
        assert_eq!(of_ident(ident(1, 1, EM_ARM)).unwrap().variant, Some("v7"));
        assert_eq!(of_ident(ident(2, 1, EM_PPC64)).unwrap().architecture, "ppc64le");
        assert_eq!(of_ident(ident(2, 2, EM_S390)).unwrap().architecture, "s390x");
        assert_eq!(of_ident(ident(2, 1, 0xffff)), None);
    }
}
