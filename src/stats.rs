//! Request counters: plain atomics, bumped once per request from the outcome it had, in total,
//! per route and per tenant.

use crate::policy::outcome::{Fill, Outcome};
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Tenants counted one by one; traffic of tenants beyond this is summed under [`OTHER_TENANTS`],
/// so a caller inventing tenant ids cannot grow the map without bound.
pub const MAX_TRACKED_TENANTS: usize = 10_000;
/// The name the overflow tenants are reported under.
pub const OTHER_TENANTS: &str = "(other)";

/// Counters since start. Read with [`Stats::snapshot`].
#[derive(Debug, Default)]
pub struct Stats {
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    collapsed: AtomicU64,
    bypassed: AtomicU64,
    coalesce_timeouts: AtomicU64,
    waits: AtomicU64,
    forwarded_methods: AtomicU64,
    upstream_errors: AtomicU64,
    write_purges: AtomicU64,
    webhook_purges: AtomicU64,
    webhook_refused: AtomicU64,
    auth_missing: AtomicU64,
    auth_invalid: AtomicU64,
    auth_forbidden: AtomicU64,
    auth_unavailable: AtomicU64,
    routes: Vec<Counters>,
    tenants: DashMap<Box<str>, Arc<Counters>>,
    other_tenants: Counters,
}

/// Hits, misses and bypasses of one route or tenant.
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
}

/// A copy of one [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountersSnapshot {
    pub hits: u64,
    pub misses: u64,
    pub bypassed: u64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub hits: u64,
    pub misses: u64,
    pub stored: u64,
    pub collapsed: u64,
    pub bypassed: u64,
    pub coalesce_timeouts: u64,
    /// Times a request started waiting on another request's fill (several per request when a
    /// fill's response was not shareable and it waited again).
    pub waits: u64,
    pub forwarded_methods: u64,
    pub upstream_errors: u64,
    pub write_purges: u64,
    pub webhook_purges: u64,
    pub webhook_refused: u64,
    /// Requests refused 401 for want of a credential on a route that needs one.
    pub auth_missing: u64,
    /// Credentials refused: bad signature, expired, or refused by the identity endpoint.
    pub auth_invalid: u64,
    /// Requests refused 403: a tenant named by the request differs from the verified one.
    pub auth_forbidden: u64,
    /// Requests answered 503 because the identity endpoint could not be asked.
    pub auth_unavailable: u64,
    /// By route index.
    pub routes: Vec<CountersSnapshot>,
    /// By tenant, busiest first.
    pub tenants: Vec<(String, CountersSnapshot)>,
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
            Outcome::Hit | Outcome::Collapsed => &self.hits,
            Outcome::Miss(_) | Outcome::UriMiss(_) | Outcome::CoalesceTimeout => &self.misses,
            Outcome::Bypass(_) | Outcome::Method => &self.bypassed,
        };
        counter.fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            bypassed: self.bypassed.load(Relaxed),
        }
    }
}

// === impl Stats ===

impl Stats {
    /// Counters for a route table of `routes` routes.
    pub fn new(routes: usize) -> Self {
        Self {
            routes: (0..routes).map(|_| Counters::default()).collect(),
            ..Self::default()
        }
    }

    /// Counts one request's outcome, and for its route and tenant when it has them.
    pub fn record(&self, outcome: Outcome, route: Option<usize>, tenant: Option<&str>) {
        let counter = match outcome {
            Outcome::Hit => &self.hits,
            Outcome::Miss(fill) | Outcome::UriMiss(fill) => {
                if fill == Fill::Stored {
                    self.stored.fetch_add(1, Relaxed);
                }
                &self.misses
            }
            Outcome::Collapsed => &self.collapsed,
            Outcome::Bypass(_) => &self.bypassed,
            Outcome::CoalesceTimeout => &self.coalesce_timeouts,
            Outcome::Method => &self.forwarded_methods,
        };
        counter.fetch_add(1, Relaxed);
        if let Some(route) = route.and_then(|i| self.routes.get(i)) {
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
        self.waits.fetch_add(1, Relaxed);
    }

    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Relaxed);
    }

    pub fn write_purge(&self) {
        self.write_purges.fetch_add(1, Relaxed);
    }

    pub fn webhook_purge(&self) {
        self.webhook_purges.fetch_add(1, Relaxed);
    }

    pub fn webhook_refused(&self) {
        self.webhook_refused.fetch_add(1, Relaxed);
    }

    pub fn auth_missing(&self) {
        self.auth_missing.fetch_add(1, Relaxed);
    }

    pub fn auth_invalid(&self) {
        self.auth_invalid.fetch_add(1, Relaxed);
    }

    pub fn auth_forbidden(&self) {
        self.auth_forbidden.fetch_add(1, Relaxed);
    }

    pub fn auth_unavailable(&self) {
        self.auth_unavailable.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut tenants: Vec<(String, CountersSnapshot)> = self
            .tenants
            .iter()
            .map(|e| (e.key().to_string(), e.value().snapshot()))
            .collect();
        let other = self.other_tenants.snapshot();
        if other != CountersSnapshot::default() {
            tenants.push((OTHER_TENANTS.to_string(), other));
        }
        tenants.sort_by(|a, b| {
            let load = |c: &CountersSnapshot| c.hits + c.misses + c.bypassed;
            load(&b.1).cmp(&load(&a.1)).then_with(|| a.0.cmp(&b.0))
        });
        Snapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stored: self.stored.load(Relaxed),
            collapsed: self.collapsed.load(Relaxed),
            bypassed: self.bypassed.load(Relaxed),
            coalesce_timeouts: self.coalesce_timeouts.load(Relaxed),
            waits: self.waits.load(Relaxed),
            forwarded_methods: self.forwarded_methods.load(Relaxed),
            upstream_errors: self.upstream_errors.load(Relaxed),
            write_purges: self.write_purges.load(Relaxed),
            webhook_purges: self.webhook_purges.load(Relaxed),
            webhook_refused: self.webhook_refused.load(Relaxed),
            auth_missing: self.auth_missing.load(Relaxed),
            auth_invalid: self.auth_invalid.load(Relaxed),
            auth_forbidden: self.auth_forbidden.load(Relaxed),
            auth_unavailable: self.auth_unavailable.load(Relaxed),
            routes: self.routes.iter().map(Counters::snapshot).collect(),
            tenants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cacheability::Bypass;

    #[test]
    fn outcomes_are_counted_in_total_per_route_and_per_tenant() {
        let stats = Stats::new(2);
        stats.record(Outcome::Miss(Fill::Stored), Some(0), Some("42"));
        stats.record(Outcome::Hit, Some(0), Some("42"));
        stats.record(Outcome::Hit, Some(1), Some("7"));
        stats.record(Outcome::Bypass(Bypass::NoRoute), None, None);
        let s = stats.snapshot();
        assert_eq!((s.hits, s.misses, s.stored, s.bypassed), (2, 1, 1, 1));
        assert_eq!(
            s.routes[0],
            CountersSnapshot {
                hits: 1,
                misses: 1,
                bypassed: 0
            }
        );
        assert_eq!(s.routes[1].hits, 1);
        assert_eq!(s.tenants[0].0, "42");
        assert_eq!(
            s.tenants[1],
            (
                "7".to_string(),
                CountersSnapshot {
                    hits: 1,
                    misses: 0,
                    bypassed: 0
                }
            )
        );
        assert!((s.hit_ratio() - 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn tenants_beyond_the_cap_are_summed_apart() {
        let stats = Stats::new(0);
        for i in 0..MAX_TRACKED_TENANTS + 5 {
            stats.record(Outcome::Hit, None, Some(&i.to_string()));
        }
        let s = stats.snapshot();
        assert_eq!(s.tenants.len(), MAX_TRACKED_TENANTS + 1);
        let other = s.tenants.iter().find(|t| t.0 == OTHER_TENANTS).unwrap();
        assert_eq!(other.1.hits, 5);
    }
}
