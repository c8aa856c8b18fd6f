//! The GNU notes that say what an object needs of the machine: the x86 ISA level and the AArch64 branch-protection features (`NT_GNU_PROPERTY_TYPE_0`), and the oldest kernel it was built for (`NT_GNU_ABI_TAG`).
//!
//! The property note's layout is in the x86-64 psABI ("Program Property")
//! and the Linux Extensions to gABI: an array of `pr_type`, `pr_datasz`,
//! data, each padded to 8 bytes in a 64-bit object and 4 in a 32-bit one.
//! glibc refuses to load an object whose `GNU_PROPERTY_X86_ISA_1_NEEDED`
//! asks for more than the CPU supports ("CPU ISA level is lower than
//! required", `sysdeps/x86/dl-prop.h`).

use goblin::container::Ctx;
use serde::{Deserialize, Serialize};

/// `GNU_PROPERTY_X86_ISA_1_NEEDED` (binutils 2.36 and later).
const X86_ISA_1_NEEDED: u32 = 0xc000_8002;
/// `GNU_PROPERTY_AARCH64_FEATURE_1_AND`.
const AARCH64_FEATURE_1_AND: u32 = 0xc000_0000;
/// Its bits: branch target identification, pointer authentication.
const AARCH64_FEATURE_1_BTI: u32 = 1;
const AARCH64_FEATURE_1_PAC: u32 = 2;

/// The x86-64 micro-architecture levels of the psABI, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IsaLevel {
    #[serde(rename = "x86-64-v1")]
    V1,
    #[serde(rename = "x86-64-v2")]
    V2,
    #[serde(rename = "x86-64-v3")]
    V3,
    #[serde(rename = "x86-64-v4")]
    V4,
}

impl IsaLevel {
    pub fn name(self) -> &'static str {
        match self {
            IsaLevel::V1 => "x86-64-v1",
            IsaLevel::V2 => "x86-64-v2",
            IsaLevel::V3 => "x86-64-v3",
            IsaLevel::V4 => "x86-64-v4",
        }
    }

    /// The level a name such as `x86-64-v2` names.
    pub fn parse(name: &str) -> Option<IsaLevel> {
        [IsaLevel::V1, IsaLevel::V2, IsaLevel::V3, IsaLevel::V4]
            .into_iter()
            .find(|l| l.name() == name)
    }

    /// The `glibc-hwcaps` subdirectory names a CPU of this level searches
    /// (none for the baseline).
    pub fn allows_hwcaps(self, subdir: &str) -> bool {
        IsaLevel::parse(subdir).is_none_or(|level| level <= self)
    }

    /// The highest level whose bit is set in an `ISA_1_NEEDED` value
    /// (`GNU_PROPERTY_X86_ISA_1_BASELINE` is bit 0, `V2` bit 1, and so on).
    pub(crate) fn from_bits(bits: u32) -> Option<IsaLevel> {
        [(8, IsaLevel::V4), (4, IsaLevel::V3), (2, IsaLevel::V2), (1, IsaLevel::V1)]
            .into_iter()
            .find(|(bit, _)| bits & bit != 0)
            .map(|(_, level)| level)
    }
}

/// What the notes of one object say about the machine it needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineNeeds {
    /// The x86 ISA level it needs; `None` when it carries no such note
    /// (unmarked, which is not the same as baseline).
    pub isa: Option<IsaLevel>,
    /// AArch64 features every part of it was built with: `bti`, `pac`.
    pub aarch64_features: Vec<&'static str>,
    /// The oldest Linux it was built for, from `.note.ABI-tag`.
    pub abi_tag: Option<[u32; 3]>,
}

/// Adds what one `NT_GNU_PROPERTY_TYPE_0` descriptor says.
pub(super) fn read_properties(desc: &[u8], ctx: Ctx, needs: &mut MachineNeeds) {
    let align = if ctx.container.is_big() { 8 } else { 4 };
    let mut at = 0usize;
    while at + 8 <= desc.len() {
        let pr_type = word(desc, at, ctx);
        let size = word(desc, at + 4, ctx) as usize;
        let data = at + 8;
        if data + size > desc.len() {
            return;
        }
        if size >= 4 {
            let value = word(desc, data, ctx);
            match pr_type {
                X86_ISA_1_NEEDED => needs.isa = needs.isa.max(IsaLevel::from_bits(value)),
                AARCH64_FEATURE_1_AND => {
                    if value & AARCH64_FEATURE_1_BTI != 0 {
                        needs.aarch64_features.push("bti");
                    }
                    if value & AARCH64_FEATURE_1_PAC != 0 {
                        needs.aarch64_features.push("pac");
                    }
                }
                _ => {}
            }
        }
        at = (data + size).next_multiple_of(align);
    }
}

/// Reads an `NT_GNU_ABI_TAG` descriptor: the OS (0 is Linux), then the
/// major, minor and patch level of the oldest kernel.
pub(super) fn read_abi_tag(desc: &[u8], ctx: Ctx, needs: &mut MachineNeeds) {
    if desc.len() >= 16 && word(desc, 0, ctx) == 0 {
        needs.abi_tag = Some([word(desc, 4, ctx), word(desc, 8, ctx), word(desc, 12, ctx)]);
    }
}

fn word(bytes: &[u8], at: usize, ctx: Ctx) -> u32 {
    let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    if ctx.le.is_little() { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::container::{Container, Endian};

    #[test]
    fn the_highest_needed_level_wins_and_other_properties_are_skipped() {
        let ctx = Ctx::new(Container::Big, Endian::Little);
        let mut desc = Vec::new();
        // GNU_PROPERTY_X86_FEATURE_1_AND (IBT, SHSTK), then ISA_1_NEEDED = baseline | v2.
        for (pr_type, value) in [(0xc000_0002u32, 3u32), (X86_ISA_1_NEEDED, 3)] {
            desc.extend(pr_type.to_le_bytes());
            desc.extend(4u32.to_le_bytes());
            desc.extend(value.to_le_bytes());
            desc.extend([0; 4]);
        }
        let mut needs = MachineNeeds::default();
        read_properties(&desc, ctx, &mut needs);
        assert_eq!(needs.isa, Some(IsaLevel::V2));
        read_properties(&desc[..10], ctx, &mut needs);
        assert_eq!(needs.isa, Some(IsaLevel::V2), "a cut descriptor adds nothing");
    }
}
