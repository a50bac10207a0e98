//! `cachegate stats`: the rendering of the server's `/stats` answer, [`Report`], which the
//! client reads as the server's own type. `Report` ignores unknown fields and reads missing ones
//! as zero, so the client keeps working against a server one version apart.

use super::render::{human_size, percent, ratio_of, table, tenant_label, Column};
use crate::stats::{Report, TenantCounts};
use std::collections::BTreeMap;

/// How many tenants `stats` lists.
const TOP_TENANTS: usize = 20;

/// The readable summary: totals, then the per-route table, then the busiest tenants.
pub fn render_stats(report: &Report) -> String {
    let stats = &report.requests;
    let store = &report.store;
    let mut out = String::new();
    out.push_str(&format!(
        "hit ratio        {}  ({} hits, {} misses)\n",
        percent(report.hit_ratio),
        stats.hits,
        stats.misses
    ));
    out.push_str(&format!(
        "entries          {}  ({})\n",
        store.entries,
        human_size(store.bytes)
    ));
    let mut counters = vec![("stored", stats.stored, None)];
    // Only when some miss went unstored: on a healthy cache the line would always read 0.
    let not_stored: u64 = stats.not_stored.values().sum();
    if not_stored > 0 {
        counters.push(("not stored", not_stored, Some(&stats.not_stored)));
    }
    counters.extend([
        ("collapsed", stats.collapsed, None),
        ("bypassed", stats.bypassed, Some(&stats.bypass)),
        ("evictions", store.evictions, None),
        ("purged", store.purged, None),
        ("fenced", store.fenced, None),
        ("upstream errors", stats.upstream_errors, None),
    ]);
    for (name, value, reasons) in counters {
        out.push_str(&format!("{name:<17}{value}"));
        if let Some(reasons) = reasons.map(by_reason).filter(|r| !r.is_empty()) {
            out.push_str(&format!("  ({reasons})"));
        }
        out.push('\n');
    }

    out.push_str("\nroutes\n");
    if stats.routes.is_empty() {
        out.push_str("  (none reported)\n");
    } else {
        let rows = stats
            .routes
            .iter()
            .map(|r| {
                vec![
                    r.route.to_string(),
                    r.path.clone(),
                    r.hits.to_string(),
                    r.misses.to_string(),
                    r.bypassed.to_string(),
                    ratio_of(r.hits, r.misses),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                Column::right("#"),
                Column::left("path"),
                Column::right("hits"),
                Column::right("misses"),
                Column::right("bypassed"),
                Column::right("hit ratio"),
            ],
            rows,
        ));
    }

    let mut tenants: Vec<&TenantCounts> = stats.tenants.iter().collect();
    // Busiest first; ties by name so the listing is stable between runs.
    tenants.sort_by(|a, b| {
        let traffic = |t: &TenantCounts| t.hits.saturating_add(t.misses);
        traffic(b)
            .cmp(&traffic(a))
            .then_with(|| a.tenant.cmp(&b.tenant))
    });
    if tenants.len() > TOP_TENANTS {
        out.push_str(&format!(
            "\ntop {TOP_TENANTS} tenants by traffic (of {})\n",
            tenants.len()
        ));
        tenants.truncate(TOP_TENANTS);
    } else {
        out.push_str("\ntenants by traffic\n");
    }
    if tenants.is_empty() {
        out.push_str("  (none reported)\n");
    } else {
        let rows = tenants
            .iter()
            .map(|t| {
                vec![
                    tenant_label(&t.tenant).to_string(),
                    t.hits.to_string(),
                    t.misses.to_string(),
                    ratio_of(t.hits, t.misses),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                Column::left("tenant"),
                Column::right("hits"),
                Column::right("misses"),
                Column::right("hit ratio"),
            ],
            rows,
        ));
    }
    out
}

/// The reasons that counted, busiest first: `credentials 10, no-route 2`.
fn by_reason(counts: &BTreeMap<String, u64>) -> String {
    let mut counted: Vec<(&String, &u64)> = counts.iter().filter(|(_, n)| **n > 0).collect();
    // Busiest first; ties keep the map's order (by label), so the line is stable.
    counted.sort_by(|a, b| b.1.cmp(a.1));
    counted
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
