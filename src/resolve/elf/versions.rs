//! Symbol versions as the loader checks them: the versions an object needs of each library (`DT_VERNEED`) and the versions it defines (`DT_VERDEF`), read with `pread` like the rest of the dynamic section.
//!
//! The layouts are the same for both classes (`Elf32_Verneed` and
//! `Elf64_Verneed` are both 16 bytes, `Elf*_Verdef` 20), in the file's
//! byte order; see `elf.h` and glibc's `elf/dl-version.c`, whose
//! `_dl_check_map_versions` is what the resolver emulates with them.

use anyhow::{Context, Result, ensure};
use goblin::container::Ctx;
use goblin::elf::program_header::ProgramHeader;

use super::{DynStrings, Source, exact, vm_to_offset};

/// `VER_FLG_WEAK`: a weak reference, which the loader only warns about.
const VER_FLG_WEAK: u16 = 0x2;

/// The most entries read from either table: far more than any real object
/// has (glibc's libc.so.6 defines about 45 versions), and a bound on what
/// a corrupt count can make us read.
const MAX_ENTRIES: u64 = 4096;

/// The versions an object needs of one library (`Elf*_Verneed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needed {
    /// `vn_file`: the library's name as `DT_NEEDED` gives it.
    pub file: String,
    pub versions: Vec<NeededVersion>,
}

/// One `Elf*_Vernaux`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeededVersion {
    pub name: String,
    /// `VER_FLG_WEAK`: a missing weak version is not an error.
    pub weak: bool,
}

/// Where the tables are, from the dynamic section.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Tables {
    pub verneed: Option<u64>,
    pub verneednum: u64,
    pub verdef: Option<u64>,
    pub verdefnum: u64,
}

impl Tables {
    /// Keeps a dynamic entry that locates a table; false for any other.
    pub(super) fn take(&mut self, tag: u64, value: u64) -> bool {
        use goblin::elf::dynamic::{DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM};
        match tag {
            DT_VERNEED => self.verneed = Some(value),
            DT_VERNEEDNUM => self.verneednum = value,
            DT_VERDEF => self.verdef = Some(value),
            DT_VERDEFNUM => self.verdefnum = value,
            _ => return false,
        }
        true
    }
}

fn u16_at(bytes: &[u8], at: usize, ctx: Ctx) -> u16 {
    let b = [bytes[at], bytes[at + 1]];
    if ctx.le.is_little() { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) }
}

fn u32_at(bytes: &[u8], at: usize, ctx: Ctx) -> u32 {
    let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    if ctx.le.is_little() { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) }
}

/// Reads both tables into `object`; a table that cannot be read is a
/// warning on it, since the object stays usable otherwise.
pub(super) fn read_into<S: Source + ?Sized>(
    src: &S,
    phdrs: &[ProgramHeader],
    ctx: Ctx,
    tables: Tables,
    strings: &DynStrings<'_, S>,
    object: &mut super::Object,
) {
    match read(src, phdrs, ctx, tables, strings) {
        Ok((needs, defs)) => (object.version_needs, object.version_defs) = (needs, defs),
        Err(e) => object.warnings.push(format!("reading its symbol versions: {e:#}")),
    }
}

/// Reads both tables. Entries are chained by byte offsets (`vn_next`,
/// `vna_next`, `vd_next`), each checked against the file's size.
fn read<S: Source + ?Sized>(
    src: &S,
    phdrs: &[ProgramHeader],
    ctx: Ctx,
    tables: Tables,
    strings: &DynStrings<'_, S>,
) -> Result<(Vec<Needed>, Vec<String>)> {
    let mut needed = Vec::new();
    if let Some(addr) = tables.verneed {
        let mut at = vm_to_offset(phdrs, addr).context("DT_VERNEED is not inside any PT_LOAD")?;
        for _ in 0..tables.verneednum.min(MAX_ENTRIES) {
            let entry = exact(src, at, 16, "a version need (Elf_Verneed)")?;
            let count = u16_at(&entry, 2, ctx);
            let file = strings.get(u64::from(u32_at(&entry, 4, ctx)))?;
            let mut aux_at = at + u64::from(u32_at(&entry, 8, ctx));
            let mut versions = Vec::new();
            for _ in 0..count {
                let aux = exact(src, aux_at, 16, "a needed version (Elf_Vernaux)")?;
                let weak = u16_at(&aux, 4, ctx) & VER_FLG_WEAK != 0;
                versions.push(NeededVersion {
                    name: strings.get(u64::from(u32_at(&aux, 8, ctx)))?,
                    weak,
                });
                let next = u32_at(&aux, 12, ctx);
                if next == 0 {
                    break;
                }
                aux_at += u64::from(next);
            }
            needed.push(Needed { file, versions });
            let next = u32_at(&entry, 12, ctx);
            if next == 0 {
                break;
            }
            at += u64::from(next);
        }
    }
    let mut defined = Vec::new();
    if let Some(addr) = tables.verdef {
        let mut at = vm_to_offset(phdrs, addr).context("DT_VERDEF is not inside any PT_LOAD")?;
        for _ in 0..tables.verdefnum.min(MAX_ENTRIES) {
            let entry = exact(src, at, 20, "a version definition (Elf_Verdef)")?;
            ensure!(u16_at(&entry, 0, ctx) == 1, "a version definition of an unknown revision");
            // The first auxiliary entry names the version; the others
            // name its parents, which matching does not use.
            if u16_at(&entry, 6, ctx) > 0 {
                let aux = exact(src, at + u64::from(u32_at(&entry, 12, ctx)), 8, "Elf_Verdaux")?;
                defined.push(strings.get(u64::from(u32_at(&aux, 0, ctx)))?);
            }
            let next = u32_at(&entry, 16, ctx);
            if next == 0 {
                break;
            }
            at += u64::from(next);
        }
    }
    Ok((needed, defined))
}
