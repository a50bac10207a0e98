//! What the recorders copy out for a scrape: plain values, read by the rendering.

/// A point-in-time copy of a [`Histogram`](crate::metrics::Histogram), buckets cumulative as the exposition wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

/// What [`Metrics::snapshot`](crate::metrics::Metrics::snapshot) copies out.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// The request counters that are not zero.
    pub requests: Vec<RequestSeries>,
    /// The request latency by `route` label, every route (and `""`, no route) listed.
    pub latency: Vec<(String, HistogramSnapshot)>,
    pub reloads: u64,
    pub reload_failures: u64,
}

/// One `cachegate_requests_total` series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSeries {
    pub route: String,
    pub method: &'static str,
    pub status_class: &'static str,
    pub outcome: &'static str,
    pub count: u64,
}
