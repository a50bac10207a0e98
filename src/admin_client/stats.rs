//! `cachegate stats`: the answer of `GET /stats` as the client reads it, and its rendering.

use super::render::{human_size, percent, ratio_of, table, tenant_label, Column};
use serde::{Deserialize, Deserializer, Serialize};

/// How many tenants `stats` lists.
const TOP_TENANTS: usize = 20;

/// The answer of `GET /stats`. Unknown fields are ignored and missing ones read as zero, so the
/// client keeps working against a server one version apart.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    #[serde(deserialize_with = "null_as_zero")]
    pub hit_ratio: f64,
    pub stored: u64,
    pub collapsed: u64,
    pub bypassed: u64,
    pub entries: u64,
    pub bytes: u64,
    pub evictions: u64,
    pub purged: u64,
    pub fenced: u64,
    pub upstream_errors: u64,
    pub routes: Vec<RouteStats>,
    pub tenants: Vec<TenantStats>,
}

/// One route's traffic in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteStats {
    pub route: usize,
    pub path: String,
    pub hits: u64,
    pub misses: u64,
    pub bypassed: u64,
}

/// One tenant's traffic in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TenantStats {
    pub tenant: String,
    pub hits: u64,
    pub misses: u64,
}

/// A ratio of 0/0 is NaN, which JSON encoders write as `null`; that reads as zero here.
fn null_as_zero<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(0.0))
}

/// The readable summary: totals, then the per-route table, then the busiest tenants.
pub fn render_stats(stats: &Stats) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "hit ratio        {}  ({} hits, {} misses)\n",
        percent(stats.hit_ratio),
        stats.hits,
        stats.misses
    ));
    out.push_str(&format!(
        "entries          {}  ({})\n",
        stats.entries,
        human_size(stats.bytes)
    ));
    let counters = [
        ("stored", stats.stored),
        ("collapsed", stats.collapsed),
        ("bypassed", stats.bypassed),
        ("evictions", stats.evictions),
        ("purged", stats.purged),
        ("fenced", stats.fenced),
        ("upstream errors", stats.upstream_errors),
    ];
    for (name, value) in counters {
        out.push_str(&format!("{name:<17}{value}\n"));
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

    let mut tenants: Vec<&TenantStats> = stats.tenants.iter().collect();
    // Busiest first; ties by name so the listing is stable between runs.
    tenants.sort_by(|a, b| {
        let traffic = |t: &TenantStats| t.hits.saturating_add(t.misses);
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
