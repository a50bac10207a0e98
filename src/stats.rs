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

mod report;

pub use report::{
    RedisCounts, Report, RouteCounts, RouteMemory, SharedCounts, Snapshot, StoreCounts,
    TenantCounts, TenantMemory,
};

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
