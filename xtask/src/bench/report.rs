//! The build benchmark's results in Markdown, ready for BENCHMARKS.md: per list, a table of medians, spreads and peak memory, which programs load in each tree, and the ratios the targets are about.

use std::fmt::Write as _;

use super::build::Row;
use super::timing::Measured;

/// The build section of the results.
pub fn render(rows: &[Row], runs: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Medians of {runs} runs (after one warm-up), wall time of the whole process; peak RSS in MiB.\n"
    );
    for row in rows {
        table(&mut out, row);
        broken(&mut out, row);
        resolution_ratios(&mut out, row);
        build_ratios(&mut out, row);
    }
    out
}

fn table(out: &mut String, row: &Row) {
    let _ = writeln!(
        out,
        "### {} ({} programs, {} files, {:.1} MiB)\n",
        row.list, row.programs, row.files, row.mib
    );
    timing_table(out, row.ours.iter().chain(&row.peers));
}

/// A table of timed contenders: median, range, CPU time (user + system,
/// which holds when the machine is busy and wall time does not) and peak
/// RSS, or why a contender has no figures.
pub fn timing_table<'a>(
    out: &mut String,
    measured: impl Iterator<Item = &'a (&'static str, Measured)>,
) {
    let _ = writeln!(out, "| what | median | min–max | CPU | peak RSS |\n|---|---|---|---|---|");
    for (label, m) in measured {
        let cells = match m {
            Ok(t) => format!(
                "{:.3} s | {:.3}–{:.3} s | {:.3} s | {:.0}",
                t.median.as_secs_f64(),
                t.min.as_secs_f64(),
                t.max.as_secs_f64(),
                t.cpu.as_secs_f64(),
                t.max_rss_kib as f64 / 1024.0
            ),
            Err(e) => format!("({e}) | | | "),
        };
        let _ = writeln!(out, "| {label} | {cells} |");
    }
    let _ = writeln!(out);
}

fn broken(out: &mut String, row: &Row) {
    for (label, count) in &row.broken {
        if let Some(count) = count {
            let _ = writeln!(
                out,
                "- {label}: {count} of {} programs fail to load inside the tree",
                row.programs
            );
        }
    }
}

/// The median of `name` in `list`, in seconds, when it was measured.
fn median(list: &[(&'static str, Measured)], name: &str) -> Option<f64> {
    list.iter()
        .find(|(l, _)| *l == name)
        .and_then(|(_, m)| m.as_ref().ok())
        .map(|t| t.median.as_secs_f64())
}

fn resolution_ratios(out: &mut String, row: &Row) {
    let Some(ours) = median(&row.ours, "resolution") else { return };
    for peer in ["resolution: ldd per program", "resolution: lddtree -l"] {
        if let Some(t) = median(&row.peers, peer) {
            let _ = writeln!(
                out,
                "- {} / our resolution: {:.0}x",
                peer.trim_start_matches("resolution: "),
                t / ours
            );
        }
    }
}

/// The cold build against the copy floor, and the fastest peer against
/// the cold build.
fn build_ratios(out: &mut String, row: &Row) {
    let cold = median(&row.ours, "cold build");
    let floor = median(&row.peers, "copy floor (cp -a)");
    let fastest_peer = row
        .peers
        .iter()
        .filter(|(l, _)| !l.contains("floor") && !l.starts_with("resolution"))
        .filter_map(|(l, m)| m.as_ref().ok().map(|t| (*l, t.median.as_secs_f64())))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let _ = writeln!(out);
    if let (Some(cold), Some(floor)) = (cold, floor) {
        let _ = writeln!(out, "- cold build / copy floor: {:.2}x", cold / floor);
    }
    if let (Some(cold), Some((peer, t))) = (cold, fastest_peer) {
        let _ = writeln!(out, "- fastest peer ({peer}) / cold build: {:.1}x", t / cold);
    }
    let _ = writeln!(out);
}
