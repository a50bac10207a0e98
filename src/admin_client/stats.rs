//! `cachegate stats`: the rendering of the server's `/stats` answer, [`Report`], which the
//! client reads as the server's own type. `Report` ignores unknown fields and reads missing ones
//! as zero, so the client keeps working against a server one version apart.

use super::render::{human_size, percent, ratio_of, table, tenant_label, Column};
use crate::stats::{Report, SharedCounts, StoreCounts, TenantCounts, TenantMemory};
use std::collections::BTreeMap;

/// How many tenants `stats` lists.
const TOP_TENANTS: usize = 20;

/// The readable summary: totals, then the per-route table, then the busiest tenants, then what
/// routes and tenants hold in memory (when the server reports it).
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
    // Only when stale windows or revalidation were used: most routes configure none.
    let stale = stats.stale_while_revalidate + stats.stale_soft_purged + stats.stale_if_error;
    let stale_by: std::collections::BTreeMap<String, u64> = [
        ("while-revalidate", stats.stale_while_revalidate),
        ("soft-purged", stats.stale_soft_purged),
        ("if-error", stats.stale_if_error),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if stale > 0 {
        counters.push(("stale served", stale, Some(&stale_by)));
    }
    if stats.revalidated > 0 {
        counters.push(("revalidated", stats.revalidated, None));
    }
    let evicted_by = evictions_by_cause(store);
    counters.extend([
        ("collapsed", stats.collapsed, None),
        ("bypassed", stats.bypassed, Some(&stats.bypass)),
        ("evictions", store.evictions, Some(&evicted_by)),
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
    if let Some(shared) = &report.shared {
        render_shared(shared, stats.shared_hits, &mut out);
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
    render_memory(report, &mut out);
    out
}

/// Evictions by what chose them; empty (so not shown) when the tier alone chose every one.
fn evictions_by_cause(store: &StoreCounts) -> BTreeMap<String, u64> {
    let limits = store.share_evictions.saturating_add(store.route_evictions);
    if limits == 0 {
        return BTreeMap::new();
    }
    BTreeMap::from([
        ("tenant share".to_string(), store.share_evictions),
        ("route bound".to_string(), store.route_evictions),
        (
            "tier full".to_string(),
            store.evictions.saturating_sub(limits),
        ),
    ])
}

/// What each route and the tenants holding the most hold, with their limits.
fn render_memory(report: &Report, out: &mut String) {
    let store = &report.store;
    if !store.route_memory.is_empty() {
        out.push_str(
            "
memory by route
",
        );
        let rows = store
            .route_memory
            .iter()
            .map(|r| {
                vec![
                    r.route.to_string(),
                    r.path.clone(),
                    r.entries.to_string(),
                    human_size(r.bytes),
                    r.max_memory.map_or("-".to_string(), human_size),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                Column::right("#"),
                Column::left("path"),
                Column::right("entries"),
                Column::right("bytes"),
                Column::right("bound"),
            ],
            rows,
        ));
    }
    if store.tenant_memory.is_empty() {
        return;
    }
    let held: u64 = store.tenant_memory.iter().map(|t| t.tenants).sum();
    let shown: Vec<&TenantMemory> = store.tenant_memory.iter().take(TOP_TENANTS).collect();
    let listed: u64 = shown.iter().map(|t| t.tenants).sum();
    let share = store
        .tenant_share
        .map_or(String::new(), |b| format!(", share {}", human_size(b)));
    if listed < held {
        out.push_str(&format!(
            "
top {} tenants by memory (of {held}){share}
",
            shown.len()
        ));
    } else {
        out.push_str(&format!(
            "
tenants by memory{share}
"
        ));
    }
    let rows = shown
        .iter()
        .map(|t| {
            let mut row = vec![
                tenant_label(&t.tenant).to_string(),
                t.entries.to_string(),
                human_size(t.bytes),
            ];
            if let Some(share) = store.tenant_share {
                // A row summing several tenants has no share of its own.
                row.push(if t.tenants == 1 && share > 0 {
                    percent(t.bytes as f64 / share as f64)
                } else {
                    "-".to_string()
                });
            }
            row
        })
        .collect();
    let mut columns = vec![
        Column::left("tenant"),
        Column::right("entries"),
        Column::right("bytes"),
    ];
    if store.tenant_share.is_some() {
        columns.push(Column::right("of share"));
    }
    out.push_str(&table(&columns, rows));
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

/// The shared (Redis) tier: its traffic, its health and what Redis reports.
fn render_shared(shared: &SharedCounts, served: u64, out: &mut String) {
    out.push_str("\nshared tier (redis)\n");
    out.push_str(&format!(
        "  breaker        {}{}\n",
        shared.breaker,
        if shared.subscribed {
            ", subscribed"
        } else {
            ", not subscribed (memory tier not trusted)"
        }
    ));
    out.push_str(&format!(
        "  lookups        {} hits, {} misses ({} answered requests), {} errors ({} timeouts)\n",
        shared.hits, shared.misses, served, shared.errors, shared.timeouts
    ));
    out.push_str(&format!(
        "  stores         {} ({} fenced), {} purges, {} waiting for replay\n",
        shared.stores, shared.fenced, shared.purges, shared.replay_pending
    ));
    out.push_str(&format!(
        "  pub/sub        {} invalidations received, {} reconnects, last lag {} ms\n",
        shared.invalidations_received, shared.pubsub_reconnects, shared.pubsub_lag_ms
    ));
    out.push_str(&format!(
        "  leases         {} taken, {} waits\n",
        shared.leases_acquired, shared.lease_waits
    ));
    match &shared.redis {
        Some(redis) => out.push_str(&format!(
            "  redis          {} {}, {} used, {} entries of {} tenants\n",
            redis.mode,
            redis.version,
            human_size(redis.used_memory),
            redis.entries,
            redis.tenants
        )),
        None => out.push_str("  redis          (not reachable)\n"),
    }
}
