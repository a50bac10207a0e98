//! Request counters: plain atomics, bumped once per request from the outcome it had, in total,
//! per route and per tenant; and the typed `/stats` answer built from them.
//!
//! Every reason has its own counter: the arrays are indexed by the reason enums' discriminants
//! (`Bypass::index` and friends), so counting costs one relaxed add, with no allocation, lock or
//! formatting on the hit path. Labels are only spelled out when a snapshot is taken.

use crate::policy::cacheability::{Bypass, NotStored};
use crate::policy::outcome::{Failure, Fill, Outcome, Refusal, StaleServed};
use crate::server::ConnectionCounters;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Tenants counted one by one; traffic of tenants beyond this is summed under [`OTHER_TENANTS`],
/// so a caller inventing tenant ids cannot grow the map without bound.
pub const MAX_TRACKED_TENANTS: usize = 10_000;
/// The name the overflow tenants are reported under.
pub const OTHER_TENANTS: &str = "(other)";
/// Tenants whose memory `/stats` lists one by one, those holding the most bytes; the others
/// are summed under [`OTHER_TENANTS`].
pub const TOP_MEMORY_TENANTS: usize = 100;
/// Purges `/stats` lists in `recent_purges`, the newest first; older ones are forgotten.
pub const RECENT_PURGES: usize = 50;

/// Who asked for a purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeSource {
    /// `POST /purge` on the admin API.
    Admin,
    /// The signed invalidation webhook.
    Webhook,
    /// A write passing through the proxy.
    Write,
}

impl PurgeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeSource::Admin => "admin",
            PurgeSource::Webhook => "webhook",
            PurgeSource::Write => "write",
        }
    }
}

/// One purge as `/stats` lists it in `recent_purges`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PurgeRecord {
    /// When it was applied, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `admin`, `webhook` or `write` ([`PurgeSource`]).
    pub source: String,
    /// What it covered, for people: `tenant=42 tags=[rooms]`, or a write's method and path.
    pub scope: String,
    /// Entries removed (or marked stale).
    pub purged: u64,
}

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
    /// Stale answers by why (also counted in `hits`), and `304` revalidations (in `misses`).
    stale_while_revalidate: AtomicU64,
    stale_soft_purged: AtomicU64,
    stale_if_error: AtomicU64,
    revalidated: AtomicU64,
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
    /// By route id (`Route::id`), with the route's pattern, and the current table's order.
    routes: ArcSwap<RouteBook>,
    tenants: DashMap<Box<str>, Arc<Counters>>,
    other_tenants: Counters,
    /// The last [`RECENT_PURGES`] purges, the oldest first. Taken on purges only, never on
    /// the read path.
    recent_purges: Mutex<VecDeque<PurgeRecord>>,
    /// Bumped by the accept loop (`server`), not per request.
    connections: Arc<ConnectionCounters>,
}

/// Every route counted since start, by id, and which of them make the table in force.
///
/// Ids are never reused, so the list only grows (by the routes a reload adds): a request
/// counted under the table it started with lands on the same route's counters after a
/// reload, wherever the route has moved.
#[derive(Debug, Default)]
struct RouteBook {
    by_id: Vec<Arc<(String, Counters)>>,
    /// The ids of the table in force, in table order.
    table: Vec<usize>,
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
    /// Expired entries answered at once while one background request refreshed them (also
    /// counted in `hits`).
    pub stale_while_revalidate: u64,
    /// Soft-purged entries answered while one background request refreshed them (in `hits`).
    pub stale_soft_purged: u64,
    /// Stale entries answered instead of a backend failure (in `hits`).
    pub stale_if_error: u64,
    /// Expired entries the backend confirmed with `304` (their metadata refreshed, no body
    /// sent; counted in `misses`).
    pub revalidated: u64,
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
    /// The routes of the table in force, in table order (counters since start, kept by route
    /// identity across reloads).
    pub routes: Vec<RouteCounts>,
    /// By tenant, busiest first.
    pub tenants: Vec<TenantCounts>,
    /// The last purges, newest first, at most [`RECENT_PURGES`]: every admin and webhook
    /// purge, and the writes that removed entries.
    pub recent_purges: Vec<PurgeRecord>,
}

/// One route's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteCounts {
    /// The route's position in the configuration in force, 0-based.
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
    /// The memory tier's bound in bytes (`[cache] max_memory`); absent where it is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
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
            Outcome::Hit | Outcome::SharedHit | Outcome::Collapsed | Outcome::Stale(_) => {
                &self.hits
            }
            Outcome::Miss(_)
            | Outcome::UriMiss(_)
            | Outcome::CoalesceTimeout
            | Outcome::Revalidated(_) => &self.misses,
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
    /// Counters for a route table whose patterns are `routes`, in order, with the ids 0, 1, ....
    pub fn new(routes: Vec<String>) -> Self {
        let book = RouteBook {
            table: (0..routes.len()).collect(),
            by_id: routes
                .into_iter()
                .map(|path| Arc::new((path, Counters::default())))
                .collect(),
        };
        Self {
            routes: ArcSwap::from_pointee(book),
            ..Self::default()
        }
    }

    /// Puts a new route table in force: `(id, pattern)` in table order. Routes whose id was
    /// counted before keep their counters; a new id starts at zero. Called by one reload at a
    /// time.
    pub fn set_routes(&self, table: &[(usize, String)]) {
        let old = self.routes.load();
        let mut by_id = old.by_id.clone();
        for (id, path) in table {
            while by_id.len() <= *id {
                by_id.push(Arc::new((path.clone(), Counters::default())));
            }
        }
        self.routes.store(Arc::new(RouteBook {
            by_id,
            table: table.iter().map(|(id, _)| *id).collect(),
        }));
    }

    /// Counts one request's outcome, and for its route (by id) and tenant when it has them.
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
            Outcome::Stale(why) => {
                let by_why = match why {
                    // Answered at once while one request refreshes it, like the window's.
                    StaleServed::WhileRevalidate | StaleServed::MaxStale => {
                        &self.stale_while_revalidate
                    }
                    StaleServed::SoftPurged => &self.stale_soft_purged,
                    StaleServed::IfError(_) => &self.stale_if_error,
                };
                by_why.fetch_add(1, Relaxed);
                &self.hits
            }
            Outcome::Revalidated(fill) => {
                self.revalidated.fetch_add(1, Relaxed);
                if fill == Fill::Stored {
                    self.stored.fetch_add(1, Relaxed);
                }
                &self.misses
            }
        };
        counter.fetch_add(1, Relaxed);
        if let Some(route) = route {
            if let Some(entry) = self.routes.load().by_id.get(route) {
                entry.1.record(outcome);
            }
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

    /// Counts a purge by its source and remembers it among the recent ones; a write that
    /// removed nothing is counted but not remembered (every write runs its purges, and those
    /// would push the purges people asked for out of the list). `scope` is only called for a
    /// purge that is remembered.
    pub fn purge_done(&self, source: PurgeSource, purged: u64, scope: impl FnOnce() -> String) {
        let counter = match source {
            PurgeSource::Admin => &self.admin_purges,
            PurgeSource::Webhook => &self.webhook_purges,
            PurgeSource::Write => &self.write_purges,
        };
        counter.fetch_add(1, Relaxed);
        if source == PurgeSource::Write && purged == 0 {
            return;
        }
        let record = PurgeRecord {
            at_ms: crate::clock::UnixMillis::now().0,
            source: source.as_str().to_owned(),
            scope: scope(),
            purged,
        };
        let mut recent = self
            .recent_purges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() == RECENT_PURGES {
            recent.pop_front();
        }
        recent.push_back(record);
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
        let book = self.routes.load();
        let routes = book
            .table
            .iter()
            .filter_map(|&id| book.by_id.get(id))
            .enumerate()
            .map(|(route, entry)| {
                let (path, counters) = entry.as_ref();
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
            stale_while_revalidate: self.stale_while_revalidate.load(Relaxed),
            stale_soft_purged: self.stale_soft_purged.load(Relaxed),
            stale_if_error: self.stale_if_error.load(Relaxed),
            revalidated: self.revalidated.load(Relaxed),
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
            recent_purges: self
                .recent_purges
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .rev()
                .cloned()
                .collect(),
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
    fn route_counters_follow_the_route_id_across_a_new_table() {
        let stats = Stats::new(vec!["/a".into(), "/b".into()]);
        stats.record(Outcome::Hit, Some(0), None);
        stats.record(Outcome::Hit, Some(1), None);
        stats.record(Outcome::Hit, Some(1), None);
        // /b moves first, /a is removed, /c (a new id) is added.
        stats.set_routes(&[(1, "/b".into()), (2, "/c".into())]);
        // A request that started under the old table counts for /b still.
        stats.record(Outcome::Hit, Some(1), None);
        stats.record(Outcome::Hit, Some(2), None);
        let routes = stats.snapshot().routes;
        let seen: Vec<(usize, &str, u64)> = routes
            .iter()
            .map(|r| (r.route, r.path.as_str(), r.hits))
            .collect();
        assert_eq!(seen, [(0, "/b", 3), (1, "/c", 1)]);
        // /a comes back under its old id, with its counters.
        stats.set_routes(&[(0, "/a".into()), (1, "/b".into())]);
        assert_eq!(stats.snapshot().routes[0].hits, 1);
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
    fn recent_purges_are_bounded_newest_first_and_skip_writes_that_removed_nothing() {
        let stats = Stats::new(Vec::new());
        stats.purge_done(PurgeSource::Write, 0, || unreachable!("not remembered"));
        stats.purge_done(PurgeSource::Write, 2, || "PUT /a".to_string());
        stats.purge_done(PurgeSource::Webhook, 0, || "tenant=42 tags=[x]".to_string());
        let s = stats.snapshot();
        assert_eq!(
            (s.write_purges, s.webhook_purges, s.admin_purges),
            (2, 1, 0)
        );
        let listed: Vec<(&str, &str, u64)> = s
            .recent_purges
            .iter()
            .map(|p| (p.source.as_str(), p.scope.as_str(), p.purged))
            .collect();
        assert_eq!(
            listed,
            vec![("webhook", "tenant=42 tags=[x]", 0), ("write", "PUT /a", 2)]
        );
        assert!(s.recent_purges[0].at_ms > 0);
        for i in 0..RECENT_PURGES + 3 {
            stats.purge_done(PurgeSource::Admin, i as u64, || format!("n={i}"));
        }
        let s = stats.snapshot();
        assert_eq!(s.admin_purges, RECENT_PURGES as u64 + 3);
        assert_eq!(s.recent_purges.len(), RECENT_PURGES);
        assert_eq!(s.recent_purges[0].scope, format!("n={}", RECENT_PURGES + 2));
        assert_eq!(s.recent_purges[RECENT_PURGES - 1].scope, "n=3");
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
