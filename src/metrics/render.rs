//! The text exposition of `GET /metrics`: a [`Scrape`] (the `/stats` report, the per-request
//! series and latencies, the backend's latency, each tier's figures) rendered as Prometheus
//! text through `prometheus-client`, at scrape time.

use super::encode::{counter, family, histogram, Labels};
use super::shared::shared_tier;
use super::snapshot::{HistogramSnapshot, MetricsSnapshot};
use crate::policy::cacheability::{Bypass, NotStored};
use crate::policy::outcome::{Failure, Refusal};
use crate::stats::Report;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// What one cache tier holds and has evicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierFigures {
    /// The `tier` label: `memory`, and `shared` for the Redis tier.
    pub tier: &'static str,
    pub entries: u64,
    pub bytes: u64,
    pub evictions: u64,
}

/// Everything one scrape renders.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The `/stats` answer: request totals by reason, purges, the store's counters.
    pub report: Report,
    pub metrics: MetricsSnapshot,
    /// Time to the backend's response head, for every request sent to it.
    pub backend_latency: HistogramSnapshot,
    pub tiers: Vec<TierFigures>,
    /// The `version` label of `cachegate_build_info`.
    pub version: &'static str,
}

/// Renders a scrape as Prometheus text exposition.
pub fn render(scrape: Scrape) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ScrapeCollector(scrape)));
    let mut text = String::new();
    // Writing to a String cannot fail, and the collector's own encoding only fails with it.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

#[derive(Debug)]
struct ScrapeCollector(Scrape);

fn reason<'a>(
    labels: impl IntoIterator<Item = (&'static str, u64)> + 'a,
) -> impl Iterator<Item = (Labels, u64)> + 'a {
    labels
        .into_iter()
        .map(|(reason, n)| (vec![("reason", reason.to_string())], n))
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Scrape {
            report,
            metrics,
            backend_latency,
            tiers,
            version,
        } = &self.0;
        let requests = &report.requests;
        let e = &mut encoder;
        encoder_info(e, version)?;
        family(
            e,
            "cachegate_requests",
            "Requests answered, by route pattern, method, status class and cache outcome (series that are still zero are left out).",
            MetricType::Counter,
            metrics.requests.iter().map(|s| {
                (
                    vec![
                        ("route", s.route.clone()),
                        ("method", s.method.to_string()),
                        ("status_class", s.status_class.to_string()),
                        ("outcome", s.outcome.to_string()),
                    ],
                    s.count,
                )
            }),
        )?;
        let latency: Vec<(Labels, &HistogramSnapshot)> = metrics
            .latency
            .iter()
            .map(|(route, h)| (vec![("route", route.clone())], h))
            .collect();
        histogram(
            e,
            "cachegate_request_duration_seconds",
            "Time from a request's arrival to its response head, by route pattern (\"\" for no route).",
            &latency,
        )?;
        histogram(
            e,
            "cachegate_backend_duration_seconds",
            "Time from sending a request to the backend to its response head (fills, pass-through, writes, introspection).",
            &[(Vec::new(), backend_latency)],
        )?;
        counter(
            e,
            "cachegate_hits",
            "Requests answered from a stored entry.",
            requests.hits,
        )?;
        counter(
            e,
            "cachegate_misses",
            "Requests fetched from the backend by their own fill.",
            requests.misses,
        )?;
        counter(
            e,
            "cachegate_stored",
            "Fills whose response was stored.",
            requests.stored,
        )?;
        counter(
            e,
            "cachegate_collapsed",
            "Requests answered with the response another request's fill fetched (coalesced waiters served).",
            requests.collapsed,
        )?;
        counter(
            e,
            "cachegate_stale_while_revalidate",
            "Expired entries answered at once while one background request refreshed them (also in cachegate_hits).",
            requests.stale_while_revalidate,
        )?;
        counter(
            e,
            "cachegate_stale_soft_purged",
            "Soft-purged entries answered while one background request refreshed them (also in cachegate_hits).",
            requests.stale_soft_purged,
        )?;
        counter(
            e,
            "cachegate_stale_if_error",
            "Stale entries answered instead of a backend failure (also in cachegate_hits).",
            requests.stale_if_error,
        )?;
        counter(
            e,
            "cachegate_revalidated",
            "Expired entries the backend confirmed with 304, refreshed without a body (also in cachegate_misses).",
            requests.revalidated,
        )?;
        counter(
            e,
            "cachegate_coalesce_waits",
            "Times a request started waiting on another request's fill.",
            requests.waits,
        )?;
        counter(
            e,
            "cachegate_coalesce_timeouts",
            "Waiters that gave up on another request's fill and went to the backend alone.",
            requests.coalesce_timeouts,
        )?;
        counter(
            e,
            "cachegate_stale_served",
            "Stale entries served, for every reason (the sum of the three cachegate_stale_* counters).",
            requests.stale_while_revalidate + requests.stale_soft_purged + requests.stale_if_error,
        )?;
        family(
            e,
            "cachegate_bypassed",
            "Requests passed through uncached, by reason.",
            MetricType::Counter,
            reason(Bypass::ALL.iter().map(|r| {
                (
                    r.as_str(),
                    requests.bypass.get(r.as_str()).copied().unwrap_or(0),
                )
            })),
        )?;
        family(
            e,
            "cachegate_not_stored",
            "Fetched responses that were not stored, by reason.",
            MetricType::Counter,
            reason(NotStored::ALL.iter().map(|r| {
                (
                    r.as_str(),
                    requests.not_stored.get(r.as_str()).copied().unwrap_or(0),
                )
            })),
        )?;
        family(
            e,
            "cachegate_refused",
            "Requests cachegate refused itself, by reason.",
            MetricType::Counter,
            reason(Refusal::ALL.iter().map(|r| {
                let n = match r {
                    Refusal::BadRequest => requests.bad_requests,
                    Refusal::Misdirected => requests.misdirected,
                    Refusal::Unauthenticated => requests.auth_missing,
                    Refusal::InvalidCredential => requests.auth_invalid,
                    Refusal::Forbidden => requests.auth_forbidden,
                    Refusal::AuthUnavailable => requests.auth_unavailable,
                    Refusal::HeadersTooLarge => requests.headers_too_large,
                    Refusal::BodyTooLarge => requests.body_too_large,
                };
                (r.as_str(), n)
            })),
        )?;
        family(
            e,
            "cachegate_failed",
            "Requests answered with an error because the backend (upstream) or cachegate (internal) failed.",
            MetricType::Counter,
            reason(Failure::ALL.iter().map(|f| {
                let n = match f {
                    Failure::Upstream => requests.upstream_errors,
                    Failure::Internal => requests.internal_errors,
                };
                (f.as_str(), n)
            })),
        )?;
        counter(
            e,
            "cachegate_forwarded_methods",
            "Writes and other methods forwarded to the backend.",
            requests.forwarded_methods,
        )?;
        family(
            e,
            "cachegate_purges",
            "Purges applied, by source: the signed webhook, the admin API, writes through the proxy.",
            MetricType::Counter,
            [
                ("webhook", requests.webhook_purges),
                ("admin", requests.admin_purges),
                ("write", requests.write_purges),
            ]
            .map(|(source, n)| (vec![("source", source.to_string())], n)),
        )?;
        family(
            e,
            "cachegate_connections_closed",
            "Connections closed by a protection limit, by reason.",
            MetricType::Counter,
            [
                ("header-timeout", requests.header_timeouts),
                ("request-limit", requests.request_limit_closes),
                ("tls-handshake", requests.tls_handshake_failures),
            ]
            .map(|(reason, n)| (vec![("reason", reason.to_string())], n)),
        )?;
        counter(
            e,
            "cachegate_webhook_refused",
            "Webhooks refused (signature, time window, no secret).",
            requests.webhook_refused,
        )?;
        counter(
            e,
            "cachegate_purged_entries",
            "Entries removed by purges.",
            report.store.purged,
        )?;
        counter(
            e,
            "cachegate_soft_purged_entries",
            "Entries marked stale by soft purges.",
            report.store.soft_purged,
        )?;
        counter(
            e,
            "cachegate_fenced_fills",
            "Fills not stored because a purge overlapped them.",
            report.store.fenced,
        )?;
        let tier = |t: &TierFigures| vec![("tier", t.tier.to_string())];
        family(
            e,
            "cachegate_tier_entries",
            "Entries held, by cache tier.",
            MetricType::Gauge,
            tiers.iter().map(|t| (tier(t), t.entries)),
        )?;
        family(
            e,
            "cachegate_tier_bytes",
            "Bytes held (entry weights), by cache tier.",
            MetricType::Gauge,
            tiers.iter().map(|t| (tier(t), t.bytes)),
        )?;
        family(
            e,
            "cachegate_tier_evictions",
            "Entries evicted to make room, by cache tier.",
            MetricType::Counter,
            tiers.iter().map(|t| (tier(t), t.evictions)),
        )?;
        if let Some(shared) = &report.shared {
            shared_tier(e, shared)?;
        }
        counter(
            e,
            "cachegate_introspections",
            "Calls made to the introspection endpoint.",
            report.introspections,
        )?;
        counter(
            e,
            "cachegate_config_reloads",
            "Configurations applied after start.",
            metrics.reloads,
        )?;
        counter(
            e,
            "cachegate_config_reload_failures",
            "Configurations refused after start (the previous one stayed).",
            metrics.reload_failures,
        )?;
        Ok(())
    }
}

fn encoder_info(encoder: &mut DescriptorEncoder<'_>, version: &str) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        "cachegate_build",
        "The running build; always 1.",
        None,
        MetricType::Info,
    )?;
    metric.encode_info(&vec![("version", version.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Finished, Histogram, Metrics, RouteId};
    use crate::policy::outcome::Outcome;
    use crate::stats::{Snapshot, StoreCounts};
    use http::{Method, StatusCode};
    use std::time::Duration;

    fn id(pattern: &str) -> RouteId {
        RouteId {
            pattern: pattern.to_string(),
            methods: None,
        }
    }

    #[test]
    fn a_scrape_renders_every_reason_and_the_build() {
        let metrics = Metrics::new(vec![id("/a/{id}")], true);
        let text = render(Scrape {
            report: Report::new(Snapshot::default(), 0, StoreCounts::default()),
            metrics: metrics.snapshot(),
            backend_latency: Histogram::default().snapshot(),
            tiers: vec![TierFigures {
                tier: "memory",
                entries: 3,
                bytes: 300,
                evictions: 1,
            }],
            version: "1.2.3",
        });
        assert!(
            text.contains("cachegate_build_info{version=\"1.2.3\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE cachegate_requests_total counter\n"));
        for r in Bypass::ALL {
            let line = format!("cachegate_bypassed_total{{reason=\"{}\"}} 0\n", r.as_str());
            assert!(text.contains(&line), "{line}");
        }
        for r in NotStored::ALL {
            assert!(text.contains(&format!(
                "cachegate_not_stored_total{{reason=\"{}\"}}",
                r.as_str()
            )));
        }
        assert!(text.contains("cachegate_tier_bytes{tier=\"memory\"} 300\n"));
        assert!(
            text.contains(
                "cachegate_request_duration_seconds_bucket{route=\"/a/{id}\",le=\"+Inf\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.contains("cachegate_purges_total{source=\"admin\"} 0\n"));
        assert!(text.contains("cachegate_stale_served_total 0\n"));
    }

    #[test]
    fn histogram_buckets_are_rendered_cumulative() {
        let metrics = Metrics::new(vec![id("/a")], true);
        for ms in [1, 1, 30] {
            metrics.record(&Finished {
                route: Some(0),
                method: &Method::GET,
                status: StatusCode::OK,
                outcome: Some(Outcome::Hit),
                elapsed: Duration::from_millis(ms),
            });
        }
        let text = render(Scrape {
            report: Report::default(),
            metrics: metrics.snapshot(),
            backend_latency: Histogram::default().snapshot(),
            tiers: Vec::new(),
            version: "0",
        });
        let bucket = |le: &str| {
            format!("cachegate_request_duration_seconds_bucket{{route=\"/a\",le=\"{le}\"}}")
        };
        for (le, n) in [
            ("0.0005", 0),
            ("0.001", 2),
            ("0.025", 2),
            ("0.05", 3),
            ("+Inf", 3),
        ] {
            let line = format!("{} {n}\n", bucket(le));
            assert!(text.contains(&line), "{line}{text}");
        }
    }
}
