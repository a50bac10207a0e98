//! Prometheus metrics: per-request series and latency histograms kept in atomics; the text
//! exposition of `GET /metrics` is rendered from them at scrape time (`render`, with the shared
//! tier's families in `shared`, the encoding blocks in `encode` and the values copied out for a
//! scrape in `snapshot`).
//!
//! Recording a request costs a few relaxed atomic adds into arrays indexed by position (route,
//! method, status class, outcome; the histogram bucket found by a binary search over fixed
//! bounds): no label is looked up, formatted or allocated on the request path. Labels are only
//! spelled out when a scrape renders a [`Scrape`], which also carries the `/stats` counters
//! ([`Report`](crate::stats::Report)) so both answers read the same numbers. Knows nothing of caching beyond the
//! outcome labels.

mod encode;
mod render;
mod shared;
mod snapshot;

pub use render::{render, Scrape, TierFigures};
pub use snapshot::{HistogramSnapshot, MetricsSnapshot, RequestSeries};

use crate::policy::outcome::{Fill, Outcome, StaleServed};
use arc_swap::ArcSwap;
use http::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The `Content-Type` of the answer (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds (the `+Inf` bucket is implied).
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The same bounds in nanoseconds, so that an observation compares integers.
const BUCKET_NANOS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The `method` label values; any other method is counted as `other`.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];
/// The `status_class` label values; a status outside 100-599 is counted as `5xx`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The `outcome` label values: [`Outcome::as_str`] of every outcome, and `reserved` for what
/// cachegate answers under its reserved prefix (the webhook), which has no cache outcome.
pub const OUTCOMES: [&str; 18] = [
    "hit",
    "miss-stored",
    "miss",
    "uri-miss-stored",
    "uri-miss",
    "collapsed",
    "bypass",
    "coalesce-timeout",
    "method",
    "refused",
    "failed",
    "hit-shared",
    "stale-while-revalidate",
    "stale-soft-purged",
    "stale-if-error",
    "revalidated",
    "stale-max-stale",
    "reserved",
];
/// Counters per route: one for each (method, status class, outcome).
const SERIES_PER_ROUTE: usize = METHODS.len() * STATUS_CLASSES.len() * OUTCOMES.len();

/// A latency histogram over [`BUCKETS`]: a counter per bucket and the sum, all atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Not cumulative: an observation lands in one bucket; the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = BUCKET_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(BUCKETS.len());
        for (bound, counter) in BUCKETS.iter().zip(&self.buckets) {
            total += counter.load(Relaxed);
            buckets.push((*bound, total));
        }
        total += self.buckets[BUCKETS.len()].load(Relaxed);
        HistogramSnapshot {
            buckets,
            count: total,
            sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// A route as its series are labelled: its pattern and the methods it is limited to. Series
/// are kept by the route's id (`Route::id`), which a reload keeps for a route of the same
/// identity, so a table rebuilt with a route moved or added keeps the series of the routes it
/// keeps (see [`Metrics::set_routes`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteId {
    pub pattern: String,
    /// `None` matches every method.
    pub methods: Option<Vec<String>>,
}

/// The series of one route (or of the requests that matched none).
#[derive(Debug)]
struct RouteSeries {
    /// By [`series_index`].
    requests: Box<[AtomicU64]>,
    latency: Histogram,
}

impl RouteSeries {
    fn new() -> RouteSeries {
        RouteSeries {
            requests: (0..SERIES_PER_ROUTE).map(|_| AtomicU64::new(0)).collect(),
            latency: Histogram::default(),
        }
    }
}

/// Every route's series since start, by route id (ids are never reused, so the list only
/// grows), and the table in force: ids with their `route` labels, in table order.
#[derive(Debug, Default)]
struct SeriesBook {
    by_id: Vec<Arc<RouteSeries>>,
    table: Vec<(usize, String)>,
}

/// One finished request, as the metrics count it.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// Its route's id (`Route::id`), when it matched one.
    pub route: Option<usize>,
    pub method: &'a Method,
    pub status: StatusCode,
    /// `None` for answers under the reserved prefix.
    pub outcome: Option<Outcome>,
    /// From the request's arrival to its response head.
    pub elapsed: Duration,
}

/// The per-request metrics and the counters no `/stats` field holds.
#[derive(Debug)]
pub struct Metrics {
    enabled: bool,
    /// Requests that matched no route.
    unrouted: RouteSeries,
    /// By route id, and the table in force (see [`Metrics::set_routes`]).
    routes: ArcSwap<SeriesBook>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl Metrics {
    /// Series for a route table whose routes are `routes`, in order, with the ids 0, 1, ....
    /// With `enabled` false nothing is recorded per request (the `/stats` counters are kept
    /// elsewhere, always).
    pub fn new(routes: Vec<RouteId>, enabled: bool) -> Metrics {
        let table: Vec<(usize, RouteId)> = routes.into_iter().enumerate().collect();
        let metrics = Metrics {
            enabled,
            unrouted: RouteSeries::new(),
            routes: ArcSwap::default(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        };
        metrics.set_routes(&table);
        metrics
    }

    /// Puts a new route table in force: `(id, route)` in table order. An id seen before keeps
    /// its series (whatever its position now); a new id starts at zero; the series of routes
    /// no longer in the table are kept, unlisted, should they come back. The `route` label is
    /// the pattern, with the methods when another route of the table has the same pattern.
    /// Called by one reload at a time.
    pub fn set_routes(&self, table: &[(usize, RouteId)]) {
        let mut patterns: HashMap<&str, usize> = HashMap::new();
        for (_, route) in table {
            *patterns.entry(route.pattern.as_str()).or_default() += 1;
        }
        let mut by_id = self.routes.load().by_id.clone();
        let mut labels = Vec::with_capacity(table.len());
        for (id, route) in table {
            while by_id.len() <= *id {
                by_id.push(Arc::new(RouteSeries::new()));
            }
            let label = match (&route.methods, patterns[route.pattern.as_str()]) {
                (Some(methods), n) if n > 1 => {
                    format!("{} {}", route.pattern, methods.join(","))
                }
                (None, n) if n > 1 => format!("{} *", route.pattern),
                _ => route.pattern.clone(),
            };
            labels.push((*id, label));
        }
        self.routes.store(Arc::new(SeriesBook {
            by_id,
            table: labels,
        }));
    }

    /// Whether requests are recorded and `/metrics` is served.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counts one request and its latency.
    pub fn record(&self, request: &Finished<'_>) {
        if !self.enabled {
            return;
        }
        let index = series_index(request.method, request.status, request.outcome);
        let book;
        let series = match request.route {
            Some(id) => {
                book = self.routes.load();
                match book.by_id.get(id) {
                    Some(series) => series.as_ref(),
                    None => &self.unrouted,
                }
            }
            None => &self.unrouted,
        };
        series.requests[index].fetch_add(1, Relaxed);
        series.latency.observe(request.elapsed);
    }

    /// The `route` labels of the table in force, in table order.
    pub fn route_labels(&self) -> Vec<String> {
        let book = self.routes.load();
        book.table.iter().map(|(_, label)| label.clone()).collect()
    }

    /// A new config was applied.
    pub fn reload_applied(&self) {
        self.reloads.fetch_add(1, Relaxed);
    }

    /// A new config was refused; the old one stays.
    pub fn reload_failed(&self) {
        self.reload_failures.fetch_add(1, Relaxed);
    }

    /// The per-request series and the counters kept here, for a [`Scrape`].
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut requests = Vec::new();
        let book = self.routes.load();
        let mut latency = Vec::with_capacity(book.table.len() + 1);
        let listed = book
            .table
            .iter()
            .filter_map(|(id, label)| Some((book.by_id.get(*id)?.as_ref(), label)));
        let unrouted = (&self.unrouted, &String::new());
        for (series, label) in listed.chain([unrouted]) {
            for (index, counter) in series.requests.iter().enumerate() {
                let count = counter.load(Relaxed);
                if count > 0 {
                    let (method, class, outcome) = series_labels(index);
                    requests.push(RequestSeries {
                        route: label.clone(),
                        method,
                        status_class: class,
                        outcome,
                        count,
                    });
                }
            }
            latency.push((label.clone(), series.latency.snapshot()));
        }
        MetricsSnapshot {
            requests,
            latency,
            reloads: self.reloads.load(Relaxed),
            reload_failures: self.reload_failures.load(Relaxed),
        }
    }
}

/// The position of a (method, status class, outcome) counter in a route's series.
fn series_index(method: &Method, status: StatusCode, outcome: Option<Outcome>) -> usize {
    let method = match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    };
    let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
    (method * STATUS_CLASSES.len() + class) * OUTCOMES.len() + outcome_index(outcome)
}

fn series_labels(index: usize) -> (&'static str, &'static str, &'static str) {
    let outcome = index % OUTCOMES.len();
    let rest = index / OUTCOMES.len();
    (
        METHODS[rest / STATUS_CLASSES.len()],
        STATUS_CLASSES[rest % STATUS_CLASSES.len()],
        OUTCOMES[outcome],
    )
}

/// The position of an outcome's label in [`OUTCOMES`].
fn outcome_index(outcome: Option<Outcome>) -> usize {
    let Some(outcome) = outcome else {
        return 17;
    };
    match outcome {
        Outcome::Hit => 0,
        Outcome::Miss(Fill::Stored) => 1,
        Outcome::Miss(_) => 2,
        Outcome::UriMiss(Fill::Stored) => 3,
        Outcome::UriMiss(_) => 4,
        Outcome::Collapsed => 5,
        Outcome::Bypass(_) => 6,
        Outcome::CoalesceTimeout => 7,
        Outcome::Method => 8,
        Outcome::Refused(_) => 9,
        Outcome::Failed(_) => 10,
        Outcome::SharedHit => 11,
        Outcome::Stale(StaleServed::WhileRevalidate) => 12,
        Outcome::Stale(StaleServed::SoftPurged) => 13,
        Outcome::Stale(StaleServed::IfError(_)) => 14,
        Outcome::Revalidated(_) => 15,
        Outcome::Stale(StaleServed::MaxStale) => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cacheability::{Bypass, NotStored};
    use crate::policy::outcome::{Failure, Refusal};

    #[test]
    fn every_outcome_has_its_label() {
        let outcomes = [
            Outcome::Hit,
            Outcome::SharedHit,
            Outcome::Miss(Fill::Stored),
            Outcome::Miss(Fill::Fenced),
            Outcome::Miss(Fill::NotStored(NotStored::SetCookie)),
            Outcome::UriMiss(Fill::Stored),
            Outcome::UriMiss(Fill::Fenced),
            Outcome::Collapsed,
            Outcome::Bypass(Bypass::NoRoute),
            Outcome::CoalesceTimeout,
            Outcome::Method,
            Outcome::Refused(Refusal::Forbidden),
            Outcome::Failed(Failure::Upstream),
            Outcome::Stale(StaleServed::WhileRevalidate),
            Outcome::Stale(StaleServed::SoftPurged),
            Outcome::Stale(StaleServed::IfError(
                crate::policy::outcome::BackendFault::Timeout,
            )),
            Outcome::Revalidated(Fill::Stored),
            Outcome::Revalidated(Fill::Fenced),
            Outcome::Stale(StaleServed::MaxStale),
        ];
        for outcome in outcomes {
            assert_eq!(OUTCOMES[outcome_index(Some(outcome))], outcome.as_str());
        }
        assert_eq!(OUTCOMES[outcome_index(None)], "reserved");
    }

    #[test]
    fn series_indexes_read_back_as_their_labels() {
        let index = series_index(
            &Method::DELETE,
            StatusCode::NOT_FOUND,
            Some(Outcome::Method),
        );
        assert_eq!(series_labels(index), ("DELETE", "4xx", "method"));
        let last = series_index(
            &Method::from_bytes(b"PURGE").unwrap(),
            StatusCode::from_u16(599).unwrap(),
            None,
        );
        assert_eq!(last, SERIES_PER_ROUTE - 1);
        assert_eq!(series_labels(last), ("other", "5xx", "reserved"));
    }

    #[test]
    fn a_histogram_counts_at_or_below_each_bound() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(
            s.buckets[0],
            (0.0005, 1),
            "the bound itself is in its bucket"
        );
        assert_eq!(s.buckets[1], (0.001, 2));
        assert_eq!(s.buckets.last(), Some(&(10.0, 2)), "60 s is only in +Inf");
        assert!((s.sum_seconds - 60.001001).abs() < 1e-9);
    }

    fn id(pattern: &str, methods: Option<&[&str]>) -> RouteId {
        RouteId {
            pattern: pattern.to_string(),
            methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn routes_sharing_a_pattern_are_told_apart_by_their_methods() {
        let metrics = Metrics::new(
            vec![
                id("/a", None),
                id("/b", Some(&["GET", "HEAD"])),
                id("/b", Some(&["POST"])),
            ],
            true,
        );
        assert_eq!(metrics.route_labels(), ["/a", "/b GET,HEAD", "/b POST"]);
    }

    #[test]
    fn series_follow_the_route_id_across_a_new_table() {
        let metrics = Metrics::new(vec![id("/a", None), id("/b", None)], true);
        let hit = |route| Finished {
            route,
            method: &Method::GET,
            status: StatusCode::OK,
            outcome: Some(Outcome::Hit),
            elapsed: Duration::from_millis(1),
        };
        metrics.record(&hit(Some(1)));
        // /b moves first, and /b POST (a new id) shares its pattern.
        metrics.set_routes(&[
            (1, id("/b", None)),
            (2, id("/b", Some(&["POST"]))),
            (0, id("/a", None)),
        ]);
        metrics.record(&hit(Some(1)));
        metrics.record(&hit(Some(7)));
        assert_eq!(metrics.route_labels(), ["/b *", "/b POST", "/a"]);
        let s = metrics.snapshot();
        let count = |route: &str| {
            s.requests
                .iter()
                .filter(|r| r.route == route)
                .map(|r| r.count)
                .sum::<u64>()
        };
        assert_eq!(
            (count("/b *"), count("/b POST"), count("/a"), count("")),
            (2, 0, 0, 1)
        );
    }

    #[test]
    fn requests_are_counted_by_route_method_class_and_outcome() {
        let metrics = Metrics::new(vec![id("/a", None)], true);
        let finished = |route, status: u16, outcome| Finished {
            route,
            method: &Method::GET,
            status: StatusCode::from_u16(status).unwrap(),
            outcome,
            elapsed: Duration::from_millis(3),
        };
        metrics.record(&finished(Some(0), 200, Some(Outcome::Hit)));
        metrics.record(&finished(Some(0), 200, Some(Outcome::Hit)));
        metrics.record(&finished(None, 404, Some(Outcome::Bypass(Bypass::NoRoute))));
        let s = metrics.snapshot();
        assert_eq!(
            s.requests,
            [
                RequestSeries {
                    route: "/a".into(),
                    method: "GET",
                    status_class: "2xx",
                    outcome: "hit",
                    count: 2
                },
                RequestSeries {
                    route: String::new(),
                    method: "GET",
                    status_class: "4xx",
                    outcome: "bypass",
                    count: 1
                },
            ]
        );
        assert_eq!(s.latency[0].1.count, 2);
        let off = Metrics::new(vec![id("/a", None)], false);
        off.record(&finished(Some(0), 200, Some(Outcome::Hit)));
        assert!(off.snapshot().requests.is_empty());
    }
}
