//! Request counters: plain atomics, bumped once per request from the outcome it had, in total,
//! per route and per tenant; and the typed `/stats` answer built from them.
//!
//! Every reason has its own counter: the arrays are indexed by the reason enums' discriminants
//! (`Bypass::index` and friends), so counting costs one relaxed add, with no allocation, lock or
//! formatting on the hit path. Labels are only spelled out when a snapshot is taken.

use crate::policy::cacheability::{Bypass, NotStored};
use crate::policy::outcome::{Failure, Fill, Outcome, Refusal};
use crate::server::ConnectionCounters;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio::sync::watch;

/// Tenants counted one by one; traffic of tenants beyond this is summed under [`OTHER_TENANTS`],
/// so a caller inventing tenant ids cannot grow the map without bound.
pub const MAX_TRACKED_TENANTS: usize = 10_000;
/// The name the overflow tenants are reported under.
pub const OTHER_TENANTS: &str = "(other)";
/// Tenants whose memory `/stats` lists one by one, those holding the most bytes; the others
/// are summed under [`OTHER_TENANTS`].
pub const TOP_MEMORY_TENANTS: usize = 100;

/// Counters since start. Read with [`Stats::snapshot`].
#[derive(Debug, Default)]
pub struct Stats {
    hits: AtomicU64,
    /// Of the hits, those answered from the shared tier.
    shared_hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    collapsed: AtomicU64,
    coalesce_timeouts: AtomicU64,
    /// A watch rather than an atomic, so tests can wait for a request to start waiting. It is
    /// bumped on the waiting path only, never on a hit.
    waits: watch::Sender<u64>,
    forwarded_methods: AtomicU64,
    write_purges: AtomicU64,
    webhook_purges: AtomicU64,
    admin_purges: AtomicU64,
    webhook_refused: AtomicU64,
    webhook_repeats: AtomicU64,
    /// By [`Bypass::index`].
    bypassed: [AtomicU64; Bypass::ALL.len()],
    /// By [`NotStored::index`].
    not_stored: [AtomicU64; NotStored::ALL.len()],
    /// By [`Refusal::index`].
    refused: [AtomicU64; Refusal::ALL.len()],
    /// By [`Failure::index`].
    failed: [AtomicU64; Failure::ALL.len()],
    /// By route index, with the route's pattern.
    routes: Vec<(String, Counters)>,
    tenants: DashMap<Box<str>, Arc<Counters>>,
    other_tenants: Counters,
    /// Bumped by the accept loop (`server`), not per request.
    connections: Arc<ConnectionCounters>,
}

/// Hits, misses and bypasses of one route or tenant.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
}

/// A point-in-time copy of [`Stats`], as the `/stats` answer carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// Every hit, from memory or the shared tier.
    pub hits: u64,
    /// Of the hits, those the shared (Redis) tier answered.
    pub shared_hits: u64,
    pub misses: u64,
    pub stored: u64,
    pub collapsed: u64,
    /// Every bypass; by reason in `bypass`.
    pub bypassed: u64,
    /// Bypasses by reason label (`no-route`, `credentials`, ...), every reason listed.
    pub bypass: BTreeMap<String, u64>,
    /// Misses whose response was not stored, by reason label (`set-cookie`, ...).
    pub not_stored: BTreeMap<String, u64>,
    pub coalesce_timeouts: u64,
    /// Times a request started waiting on another request's fill (several per request when a
    /// fill's response was not shareable and it waited again).
    pub waits: u64,
    pub forwarded_methods: u64,
    /// Requests answered 502 or 504.
    pub upstream_errors: u64,
    /// Requests answered 500.
    pub internal_errors: u64,
    pub write_purges: u64,
    pub webhook_purges: u64,
    /// Purges asked for through the admin API's `POST /purge`.
    pub admin_purges: u64,
    pub webhook_refused: u64,
    /// Webhooks applied that repeat a message already accepted within the window (also counted
    /// in `webhook_purges`).
    pub webhook_repeats: u64,
    /// Requests refused 400 (a malformed Host, a write's ambiguous path).
    pub bad_requests: u64,
    /// Requests refused 421 (a Host not served here).
    pub misdirected: u64,
    /// Requests refused 401 for want of a credential on a route that needs one.
    pub auth_missing: u64,
    /// Credentials refused: bad signature, expired, or refused by the identity endpoint.
    pub auth_invalid: u64,
    /// Requests refused 403: a tenant named by the request differs from the verified one.
    pub auth_forbidden: u64,
    /// Requests answered 503 because the identity endpoint could not be asked.
    pub auth_unavailable: u64,
    /// Requests refused 431: a head over `[server] max_header_bytes`.
    pub headers_too_large: u64,
    /// Requests refused 413: a body over `[server] max_request_body`.
    pub body_too_large: u64,
    /// Connections closed because a request head did not arrive within `header_read_timeout`.
    pub header_timeouts: u64,
    /// Connections closed after `max_requests_per_connection` requests.
    pub request_limit_closes: u64,
    /// TLS handshakes that failed or did not finish in time.
    pub tls_handshake_failures: u64,
    /// By route index.
    pub routes: Vec<RouteCounts>,
    /// By tenant, busiest first.
    pub tenants: Vec<TenantCounts>,
}

/// One route's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteCounts {
    /// The route's position in the configuration, 0-based.
    pub route: usize,
    /// Its path pattern.
    pub path: String,
    pub hits: u64,
    pub misses: u64,
    pub bypassed: u64,
}

/// One tenant's traffic ([`OTHER_TENANTS`] sums the tenants beyond the cap).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantCounts {
    pub tenant: String,
    pub hits: u64,
    pub misses: u64,
    pub bypassed: u64,
}

/// The store's counters, as the `/stats` answer carries them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreCounts {
    pub entries: u64,
    pub bytes: u64,
    /// Every eviction, those for shares and route bounds included.
    pub evictions: u64,
    /// Evictions of a tenant's own entries because it held more than its share of a full tier.
    pub share_evictions: u64,
    /// Evictions of a route's own entries because it would have gone over its `max_memory`.
    pub route_evictions: u64,
    pub purged: u64,
    pub soft_purged: u64,
    pub fenced: u64,
    /// Bytes one tenant may hold before its own entries go first (`[cache] max_tenant_share`);
    /// absent when no share applies.
    pub tenant_share: Option<u64>,
    /// What the tenants holding the most bytes hold, most first, at most
    /// [`TOP_MEMORY_TENANTS`] of them and [`OTHER_TENANTS`] for the rest; the shared scope is
    /// the empty tenant.
    pub tenant_memory: Vec<TenantMemory>,
    /// What each route's entries hold, in table order.
    pub route_memory: Vec<RouteMemory>,
}

/// What one tenant's entries hold in memory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantMemory {
    pub tenant: String,
    pub bytes: u64,
    pub entries: u64,
    /// How many tenants the row sums: 1, or more for [`OTHER_TENANTS`].
    pub tenants: u64,
}

/// What one route's entries hold in memory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteMemory {
    /// The route's position in the configuration, 0-based.
    pub route: usize,
    /// Its path pattern.
    pub path: String,
    pub bytes: u64,
    pub entries: u64,
    /// The route's `max_memory`; absent when it has none.
    pub max_memory: Option<u64>,
}

/// The answer of the admin API's `GET /stats`: the request counters, the hit ratio, the
/// introspection calls and the store's counters, in one flat JSON object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    #[serde(flatten)]
    pub requests: Snapshot,
    /// See [`Snapshot::hit_ratio`].
    pub hit_ratio: f64,
    /// Calls made to the introspection endpoint since start.
    pub introspections: u64,
    #[serde(flatten)]
    pub store: StoreCounts,
    /// The shared (Redis) tier; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedCounts>,
}

impl Report {
    pub fn new(requests: Snapshot, introspections: u64, store: StoreCounts) -> Report {
        Report {
            hit_ratio: requests.hit_ratio(),
            requests,
            introspections,
            store,
            shared: None,
        }
    }
}

/// The shared tier's counters and Redis's own figures, as `/stats` carries them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SharedCounts {
    pub hits: u64,
    pub misses: u64,
    /// Commands that failed or timed out (each a counted miss, never a client error).
    pub errors: u64,
    pub timeouts: u64,
    pub stores: u64,
    pub fenced: u64,
    pub purges: u64,
    /// Purges waiting to be replayed once Redis answers again.
    pub replay_pending: u64,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    pub breaker_opened: u64,
    /// Subscribed to the other instances' invalidations.
    pub subscribed: bool,
    pub pubsub_reconnects: u64,
    pub invalidations_received: u64,
    /// Of those, applied to this instance's memory tier.
    pub invalidations_applied: u64,
    /// Publish-to-receipt delay of the last invalidation received, in milliseconds.
    pub pubsub_lag_ms: u64,
    pub leases_acquired: u64,
    pub lease_waits: u64,
    /// Shared hits copied into this instance's memory tier.
    pub promoted: u64,
    /// Whether the memory tier answers (not while the subscription is down).
    pub memory_trusted: bool,
    /// What Redis reports; absent when it could not be asked.
    pub redis: Option<RedisCounts>,
}

/// What Redis says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisCounts {
    pub version: String,
    /// `standalone` or `cluster`.
    pub mode: String,
    pub used_memory: u64,
    /// Entries held in this deployment's namespace.
    pub entries: u64,
    pub tenants: u64,
}

impl Snapshot {
    /// Hits over cacheable lookups (hits, misses and collapsed waits), 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits + self.collapsed;
        let total = served + self.misses;
        if total == 0 {
            0.0
        } else {
            served as f64 / total as f64
        }
    }
}

// === impl Counters ===

impl Counters {
    fn record(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Hit | Outcome::SharedHit | Outcome::Collapsed => &self.hits,
            Outcome::Miss(_) | Outcome::UriMiss(_) | Outcome::CoalesceTimeout => &self.misses,
            Outcome::Bypass(_) | Outcome::Method => &self.bypassed,
            Outcome::Refused(_) | Outcome::Failed(_) => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    fn load(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Relaxed),
            self.misses.load(Relaxed),
            self.bypassed.load(Relaxed),
        )
    }
}

fn tenant_counts(tenant: String, (hits, misses, bypassed): (u64, u64, u64)) -> TenantCounts {
    TenantCounts {
        tenant,
        hits,
        misses,
        bypassed,
    }
}

// === impl Stats ===

impl Stats {
    /// Counters for a route table whose patterns are `routes`, in order.
    pub fn new(routes: Vec<String>) -> Self {
        Self {
            routes: routes
                .into_iter()
                .map(|path| (path, Counters::default()))
                .collect(),
            ..Self::default()
        }
    }

    /// Counts one request's outcome, and for its route and tenant when it has them.
    pub fn record(&self, outcome: Outcome, route: Option<usize>, tenant: Option<&str>) {
        let counter = match outcome {
            Outcome::Hit => &self.hits,
            Outcome::SharedHit => {
                self.shared_hits.fetch_add(1, Relaxed);
                &self.hits
            }
            Outcome::Miss(fill) | Outcome::UriMiss(fill) => {
                match fill {
                    Fill::Stored => self.stored.fetch_add(1, Relaxed),
                    Fill::NotStored(reason) => {
                        self.not_stored[reason.index()].fetch_add(1, Relaxed)
                    }
                    Fill::Fenced => 0,
                };
                &self.misses
            }
            Outcome::Collapsed => &self.collapsed,
            Outcome::Bypass(reason) => &self.bypassed[reason.index()],
            Outcome::CoalesceTimeout => &self.coalesce_timeouts,
            Outcome::Method => &self.forwarded_methods,
            Outcome::Refused(reason) => &self.refused[reason.index()],
            Outcome::Failed(failure) => &self.failed[failure.index()],
        };
        counter.fetch_add(1, Relaxed);
        if let Some((_, route)) = route.and_then(|i| self.routes.get(i)) {
            route.record(outcome);
        }
        if let Some(tenant) = tenant {
            self.record_tenant(tenant, outcome);
        }
    }

    fn record_tenant(&self, tenant: &str, outcome: Outcome) {
        if let Some(counters) = self.tenants.get(tenant) {
            counters.record(outcome);
            return;
        }
        if self.tenants.len() >= MAX_TRACKED_TENANTS {
            self.other_tenants.record(outcome);
            return;
        }
        let counters = Arc::clone(&self.tenants.entry(Box::from(tenant)).or_default());
        counters.record(outcome);
    }

    pub fn wait_started(&self) {
        self.waits.send_modify(|waits| *waits += 1);
    }

    /// The number of times a request started waiting on another request's fill, as it changes.
    pub fn watch_waits(&self) -> watch::Receiver<u64> {
        self.waits.subscribe()
    }

    pub fn write_purge(&self) {
        self.write_purges.fetch_add(1, Relaxed);
    }

    pub fn webhook_purge(&self) {
        self.webhook_purges.fetch_add(1, Relaxed);
    }

    pub fn admin_purge(&self) {
        self.admin_purges.fetch_add(1, Relaxed);
    }

    pub fn webhook_refused(&self) {
        self.webhook_refused.fetch_add(1, Relaxed);
    }

    /// The connection-level counters the accept loop bumps.
    pub fn connections(&self) -> Arc<ConnectionCounters> {
        self.connections.clone()
    }

    pub fn webhook_repeat(&self) {
        self.webhook_repeats.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut tenants: Vec<TenantCounts> = self
            .tenants
            .iter()
            .map(|e| tenant_counts(e.key().to_string(), e.value().load()))
            .collect();
        let other = self.other_tenants.load();
        if other != (0, 0, 0) {
            tenants.push(tenant_counts(OTHER_TENANTS.to_string(), other));
        }
        tenants.sort_by(|a, b| {
            let load = |c: &TenantCounts| c.hits + c.misses + c.bypassed;
            load(b).cmp(&load(a)).then_with(|| a.tenant.cmp(&b.tenant))
        });
        let routes = self
            .routes
            .iter()
            .enumerate()
            .map(|(route, (path, counters))| {
                let (hits, misses, bypassed) = counters.load();
                RouteCounts {
                    route,
                    path: path.clone(),
                    hits,
                    misses,
                    bypassed,
                }
            })
            .collect();
        let refused = |reason: Refusal| self.refused[reason.index()].load(Relaxed);
        let failed = |failure: Failure| self.failed[failure.index()].load(Relaxed);
        let bypass: BTreeMap<String, u64> = Bypass::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str().to_owned(),
                    self.bypassed[r.index()].load(Relaxed),
                )
            })
            .collect();
        Snapshot {
            hits: self.hits.load(Relaxed),
            shared_hits: self.shared_hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stored: self.stored.load(Relaxed),
            collapsed: self.collapsed.load(Relaxed),
            bypassed: bypass.values().sum(),
            bypass,
            not_stored: NotStored::ALL
                .iter()
                .map(|r| {
                    (
                        r.as_str().to_owned(),
                        self.not_stored[r.index()].load(Relaxed),
                    )
                })
                .collect(),
            coalesce_timeouts: self.coalesce_timeouts.load(Relaxed),
            waits: *self.waits.borrow(),
            forwarded_methods: self.forwarded_methods.load(Relaxed),
            upstream_errors: failed(Failure::Upstream),
            internal_errors: failed(Failure::Internal),
            write_purges: self.write_purges.load(Relaxed),
            webhook_purges: self.webhook_purges.load(Relaxed),
            admin_purges: self.admin_purges.load(Relaxed),
            webhook_refused: self.webhook_refused.load(Relaxed),
            webhook_repeats: self.webhook_repeats.load(Relaxed),
            bad_requests: refused(Refusal::BadRequest),
            misdirected: refused(Refusal::Misdirected),
            auth_missing: refused(Refusal::Unauthenticated),
            auth_invalid: refused(Refusal::InvalidCredential),
            auth_forbidden: refused(Refusal::Forbidden),
            auth_unavailable: refused(Refusal::AuthUnavailable),
            headers_too_large: refused(Refusal::HeadersTooLarge),
            body_too_large: refused(Refusal::BodyTooLarge),
            header_timeouts: self.connections.header_timeouts.load(Relaxed),
            request_limit_closes: self.connections.request_limit_closes.load(Relaxed),
            tls_handshake_failures: self.connections.tls_handshake_failures.load(Relaxed),
            routes,
            tenants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(hits: u64, misses: u64, bypassed: u64) -> (u64, u64, u64) {
        (hits, misses, bypassed)
    }

    #[test]
    fn outcomes_are_counted_in_total_per_route_and_per_tenant() {
        let stats = Stats::new(vec!["/a".into(), "/b".into()]);
        stats.record(Outcome::Miss(Fill::Stored), Some(0), Some("42"));
        stats.record(Outcome::Hit, Some(0), Some("42"));
        stats.record(Outcome::Hit, Some(1), Some("7"));
        stats.record(Outcome::Bypass(Bypass::NoRoute), None, None);
        let s = stats.snapshot();
        assert_eq!((s.hits, s.misses, s.stored, s.bypassed), (2, 1, 1, 1));
        let route = &s.routes[0];
        assert_eq!(
            (route.route, route.path.as_str()),
            (0, "/a"),
            "routes carry their index and pattern"
        );
        assert_eq!(
            counts(route.hits, route.misses, route.bypassed),
            counts(1, 1, 0)
        );
        assert_eq!(s.routes[1].hits, 1);
        assert_eq!(s.tenants[0].tenant, "42");
        assert_eq!(
            s.tenants[1],
            TenantCounts {
                tenant: "7".to_string(),
                hits: 1,
                misses: 0,
                bypassed: 0
            }
        );
        assert!((s.hit_ratio() - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn every_reason_has_its_own_counter() {
        let stats = Stats::new(Vec::new());
        stats.record(Outcome::Bypass(Bypass::NoRoute), None, None);
        stats.record(Outcome::Bypass(Bypass::Credentials), None, None);
        stats.record(Outcome::Bypass(Bypass::Credentials), None, None);
        stats.record(
            Outcome::Miss(Fill::NotStored(NotStored::SetCookie)),
            None,
            None,
        );
        stats.record(
            Outcome::UriMiss(Fill::NotStored(NotStored::TooLarge)),
            None,
            None,
        );
        stats.record(Outcome::Refused(Refusal::Misdirected), None, None);
        stats.record(Outcome::Refused(Refusal::Forbidden), None, None);
        stats.record(Outcome::Failed(Failure::Upstream), None, None);
        let s = stats.snapshot();
        assert_eq!(s.bypassed, 3);
        assert_eq!(s.bypass["no-route"], 1);
        assert_eq!(s.bypass["credentials"], 2);
        assert_eq!(s.bypass["anonymous"], 0);
        assert_eq!(s.bypass.len(), Bypass::ALL.len());
        assert_eq!(s.not_stored["set-cookie"], 1);
        assert_eq!(s.not_stored["too-large"], 1);
        assert_eq!(s.not_stored.len(), NotStored::ALL.len());
        assert_eq!((s.misses, s.stored), (2, 0));
        assert_eq!((s.misdirected, s.auth_forbidden, s.auth_missing), (1, 1, 0));
        assert_eq!((s.upstream_errors, s.internal_errors), (1, 0));
    }

    #[test]
    fn the_report_is_one_flat_object_that_reads_back() {
        let stats = Stats::new(vec!["/a".into()]);
        stats.record(Outcome::Hit, Some(0), Some("42"));
        let store = StoreCounts {
            entries: 3,
            fenced: 1,
            share_evictions: 2,
            tenant_share: Some(1024),
            tenant_memory: vec![TenantMemory {
                tenant: "42".to_string(),
                bytes: 900,
                entries: 3,
                tenants: 1,
            }],
            route_memory: vec![RouteMemory {
                route: 0,
                path: "/a".to_string(),
                bytes: 900,
                entries: 3,
                max_memory: None,
            }],
            ..StoreCounts::default()
        };
        let report = Report::new(stats.snapshot(), 5, store);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["hits"], 1);
        assert_eq!(json["hit_ratio"], 1.0);
        assert_eq!(json["introspections"], 5);
        assert_eq!(json["entries"], 3);
        assert_eq!(json["fenced"], 1);
        assert_eq!(json["bypass"]["no-route"], 0);
        assert_eq!(json["routes"][0]["path"], "/a");
        assert_eq!(json["tenants"][0]["tenant"], "42");
        assert_eq!(json["share_evictions"], 2);
        assert_eq!(json["tenant_share"], 1024);
        assert_eq!(json["tenant_memory"][0]["bytes"], 900);
        assert_eq!(json["route_memory"][0]["path"], "/a");
        assert!(json["route_memory"][0]["max_memory"].is_null());
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn tenants_beyond_the_cap_are_summed_apart() {
        let stats = Stats::new(Vec::new());
        for i in 0..MAX_TRACKED_TENANTS + 5 {
            stats.record(Outcome::Hit, None, Some(&i.to_string()));
        }
        let s = stats.snapshot();
        assert_eq!(s.tenants.len(), MAX_TRACKED_TENANTS + 1);
        let other = s
            .tenants
            .iter()
            .find(|t| t.tenant == OTHER_TENANTS)
            .unwrap();
        assert_eq!(other.hits, 5);
    }
}
