//! What a tree needs of the machine beneath it, which no file in the tree can change: the CPU level its objects declare, the oldest kernel they were built for, and the newest glibc symbol version they use.
//!
//! Every fact is read from the objects themselves (see [`crate::resolve::elf`]):
//! `GNU_PROPERTY_X86_ISA_1_NEEDED` in `.note.gnu.property`, which glibc
//! checks before it maps an object ("CPU ISA level is lower than
//! required"); the AArch64 branch-protection bits of the same note; the
//! `.note.ABI-tag`, which glibc 2.36 and later no longer compare with the
//! running kernel, so the kernel line is informational; and `DT_VERNEED`,
//! whose newest `GLIBC_x.y` is the oldest glibc the tree's programs accept.
//! The report is computed once per build and kept in the manifest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::resolve::elf::{IsaLevel, Object};

/// The report, as the manifest keeps it. Paths are paths in the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portability {
    /// The highest x86 ISA level any object needs; `None` when no object
    /// carries the note.
    pub cpu: Option<IsaLevel>,
    /// Every ELF object by the level it declares, `unmarked` for those
    /// without the note (which is not the same as baseline).
    pub cpu_levels: BTreeMap<String, Vec<PathBuf>>,
    /// AArch64 objects by the branch-protection feature they were built
    /// with (`bti`, `pac`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aarch64_features: BTreeMap<String, Vec<PathBuf>>,
    /// The newest kernel any object's ABI tag names.
    pub kernel: Option<Need>,
    /// The kernel the tree's own C library was built for (the ABI tag of
    /// `libc.so.6`), when the tree has one.
    pub libc_kernel: Option<String>,
    /// The newest `GLIBC_x.y` symbol version any object needs.
    pub glibc: Option<Need>,
}

/// A requirement and the objects that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Need {
    /// `3.2.0`, or `GLIBC_2.34`.
    pub version: String,
    pub objects: Vec<PathBuf>,
}

/// The report for the ELF objects among `files` (path in the tree, parsed
/// file), in any order.
pub fn report(objects: &[(PathBuf, Arc<Object>)]) -> Portability {
    let mut sorted: Vec<&(PathBuf, Arc<Object>)> = objects.iter().collect();
    sorted.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut report = Portability::default();
    let mut kernel: Option<([u32; 3], Vec<PathBuf>)> = None;
    let mut glibc: Option<(Vec<u32>, String, Vec<PathBuf>)> = None;
    for (path, object) in sorted {
        let level = object.machine.isa.map_or("unmarked", IsaLevel::name);
        report.cpu_levels.entry(level.to_string()).or_default().push(path.clone());
        report.cpu = report.cpu.max(object.machine.isa);
        for feature in &object.machine.aarch64_features {
            report.aarch64_features.entry(feature.to_string()).or_default().push(path.clone());
        }
        if let Some(tag) = object.machine.abi_tag {
            if object.soname.as_deref() == Some("libc.so.6") {
                report.libc_kernel = Some(dotted(&tag));
            }
            keep_newest(&mut kernel, tag, path);
        }
        if let Some((numbers, name)) = newest_glibc(object) {
            match &mut glibc {
                Some((best, _, paths)) if *best == numbers => paths.push(path.clone()),
                Some((best, ..)) if *best > numbers => {}
                _ => glibc = Some((numbers, name, vec![path.clone()])),
            }
        }
    }
    report.kernel = kernel.map(|(tag, objects)| Need { version: dotted(&tag), objects });
    report.glibc = glibc.map(|(_, version, objects)| Need { version, objects });
    report
}

fn keep_newest(best: &mut Option<([u32; 3], Vec<PathBuf>)>, tag: [u32; 3], path: &Path) {
    match best {
        Some((newest, paths)) if *newest == tag => paths.push(path.to_path_buf()),
        Some((newest, _)) if *newest > tag => {}
        _ => *best = Some((tag, vec![path.to_path_buf()])),
    }
}

fn dotted(tag: &[u32; 3]) -> String {
    format!("{}.{}.{}", tag[0], tag[1], tag[2])
}

/// The newest `GLIBC_x.y[.z]` an object needs, as numbers to compare and
/// as its name. `GLIBC_PRIVATE` and markers such as `GLIBC_ABI_DT_RELR`
/// are not releases and are left out.
fn newest_glibc(object: &Object) -> Option<(Vec<u32>, String)> {
    object
        .version_needs
        .iter()
        .flat_map(|n| &n.versions)
        .filter_map(|v| {
            let numbers = v.name.strip_prefix("GLIBC_")?;
            let parsed: Option<Vec<u32>> = numbers.split('.').map(|n| n.parse().ok()).collect();
            Some((parsed?, v.name.clone()))
        })
        .max()
}

impl Portability {
    /// The whole report as pretty JSON, every object named.
    pub fn to_json(&self) -> anyhow::Result<String> {
        use anyhow::Context;
        let mut text =
            serde_json::to_string_pretty(self).context("writing the portability report as JSON")?;
        text.push('\n');
        Ok(text)
    }

    /// One line for after a build:
    /// `needs: x86-64-v2 CPU, Linux >= 3.2.0, glibc symbols up to GLIBC_2.34`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        match self.cpu {
            Some(level) => parts.push(format!("{} CPU", level.name())),
            None if self.cpu_levels.contains_key("unmarked") => {
                parts.push("a CPU level no object declares".to_string())
            }
            None => {}
        }
        if !self.aarch64_features.is_empty() {
            let features: Vec<&str> = self.aarch64_features.keys().map(String::as_str).collect();
            parts.push(format!("AArch64 {}", features.join("+")));
        }
        if let Some(kernel) = &self.kernel {
            parts.push(format!("Linux >= {}", kernel.version));
        }
        if let Some(glibc) = &self.glibc {
            parts.push(format!("glibc symbols up to {}", glibc.version));
        }
        if parts.is_empty() {
            return "needs: nothing the tree's objects declare".to_string();
        }
        format!("needs: {}", parts.join(", "))
    }

    /// The whole report for people, with at most `limit` objects named per
    /// group (all of them in the JSON).
    pub fn render(&self, limit: usize) -> String {
        let mut out = String::new();
        let level = self.cpu.map_or("not declared by any object", IsaLevel::name);
        let _ = writeln!(out, "cpu: {level}");
        for (level, objects) in self.cpu_levels.iter().rev() {
            list(&mut out, &format!("{level}: {} objects", objects.len()), objects, limit);
        }
        for (feature, objects) in &self.aarch64_features {
            list(
                &mut out,
                &format!("aarch64 {feature}: {} objects", objects.len()),
                objects,
                limit,
            );
        }
        match &self.kernel {
            Some(kernel) => {
                let _ = writeln!(
                    out,
                    "kernel: Linux >= {} (from .note.ABI-tag; glibc 2.36 and later no longer check it, so this is informational)",
                    kernel.version
                );
                list(&mut out, "named by", &kernel.objects, limit);
            }
            None => out.push_str("kernel: no object carries a .note.ABI-tag\n"),
        }
        if let Some(libc) = &self.libc_kernel {
            let _ = writeln!(out, "the tree's libc.so.6 was built for Linux >= {libc}");
        }
        match &self.glibc {
            Some(glibc) => {
                let _ = writeln!(out, "glibc: symbols up to {}", glibc.version);
                list(&mut out, "needed by", &glibc.objects, limit);
            }
            None => out.push_str("glibc: no object needs a versioned glibc symbol\n"),
        }
        out
    }
}

fn list(out: &mut String, title: &str, objects: &[PathBuf], limit: usize) {
    let _ = writeln!(out, "  {title}");
    for path in objects.iter().take(limit) {
        let _ = writeln!(out, "    {}", path.display());
    }
    if objects.len() > limit {
        let _ = writeln!(out, "    ... {} more, see --json", objects.len() - limit);
    }
}
