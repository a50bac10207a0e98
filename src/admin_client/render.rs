//! Readable renderings of the admin API's answers: tables, sizes, ratios.

use crate::admin_api::{Entry, PurgeAnswer, ReloadAnswer};
use crate::notation::format_duration;
use std::time::Duration;

/// `purged N entries`.
pub fn render_purge(answer: &PurgeAnswer) -> String {
    format!("purged {}\n", plural(answer.purged, "entry", "entries"))
}

/// What a reload changed, and what waits for a restart.
pub fn render_reload(answer: &ReloadAnswer) -> String {
    let mut text = if answer.changed.is_empty() {
        "reloaded: nothing changed\n".to_string()
    } else {
        format!("reloaded: {}\n", answer.changed.join(", "))
    };
    if !answer.restart_required.is_empty() {
        text.push_str(&format!(
            "restart required to apply: {}\n",
            answer.restart_required.join(", ")
        ));
    }
    text
}

/// The entries as a table, the long columns (target, tags) last.
pub fn render_entries(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "no entries\n".to_string();
    }
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                // The full key is 64 hex digits; its start tells entries apart on screen.
                e.key.chars().take(12).collect(),
                tenant_label(&e.tenant).to_string(),
                e.status.to_string(),
                format_duration(Duration::from_secs(e.age_secs)),
                if e.stale {
                    "stale".to_string()
                } else {
                    format_duration(Duration::from_secs(e.ttl_left_secs))
                },
                human_size(e.size),
                e.target.clone(),
                e.tags.join(","),
            ]
        })
        .collect();
    let mut out = table(
        &[
            Column::left("key"),
            Column::left("tenant"),
            Column::right("status"),
            Column::right("age"),
            Column::right("ttl left"),
            Column::right("size"),
            Column::left("target"),
            Column::left("tags"),
        ],
        rows,
    );
    out.push_str(&format!(
        "{}\n",
        plural(entries.len() as u64, "entry", "entries")
    ));
    out
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A 0..=1 ratio as a percentage with one decimal.
pub(super) fn percent(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.1}%", ratio * 100.0)
    } else {
        "-".to_string()
    }
}

/// hits / (hits + misses) as a percentage, `-` without traffic.
pub(super) fn ratio_of(hits: u64, misses: u64) -> String {
    let lookups = hits.saturating_add(misses);
    if lookups == 0 {
        "-".to_string()
    } else {
        percent(hits as f64 / lookups as f64)
    }
}

/// The shared scope has the empty tenant id, which would print as nothing.
pub(super) fn tenant_label(tenant: &str) -> &str {
    if tenant.is_empty() {
        "(shared)"
    } else {
        tenant
    }
}

/// A byte count in binary units with one decimal: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A table column: its heading and which side its values hug.
pub(super) struct Column {
    heading: &'static str,
    right: bool,
}

impl Column {
    pub(super) fn left(heading: &'static str) -> Column {
        Column {
            heading,
            right: false,
        }
    }
    pub(super) fn right(heading: &'static str) -> Column {
        Column {
            heading,
            right: true,
        }
    }
}

/// Aligned columns separated by two spaces, headings first, no trailing blanks.
pub(super) fn table(columns: &[Column], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.heading.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let headings = columns.iter().map(|c| c.heading.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(headings).chain(rows) {
        let mut line = String::new();
        for (i, (cell, column)) in row.iter().zip(columns).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if column.right {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
