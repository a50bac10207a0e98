//! The `/stats` answer: the request counters, the introspection calls, and what the store
//! reports of itself (each tier's usage by tenant and by route, the shared tier's counters, and
//! on request what Redis says), read when asked.

use super::Proxy;
use crate::stats::{
    RedisCounts, Report, RouteMemory, SharedCounts, StoreCounts, TenantMemory, OTHER_TENANTS,
    TOP_MEMORY_TENANTS,
};
use crate::store::shared::Breaker;
use std::sync::atomic::Ordering::Relaxed;

impl Proxy {
    /// Calls made to the introspection endpoint since start (0 without introspection).
    pub fn introspections(&self) -> u64 {
        let live = self.live.load();
        let now = live.auth.as_ref().map_or(0, |auth| auth.introspections());
        live.replaced_introspections.load(Relaxed) + now
    }

    /// The `/stats` answer: request counters, introspection calls and the store's counters.
    pub fn stats_report(&self) -> Report {
        let store = self.inner.store.stats();
        let usage = self.inner.store.usage(TOP_MEMORY_TENANTS);
        let mut tenant_memory: Vec<TenantMemory> = usage
            .tenants
            .into_iter()
            .map(|t| TenantMemory {
                tenant: t.tenant.id().unwrap_or_default().to_owned(),
                bytes: t.bytes,
                entries: t.entries,
                tenants: 1,
            })
            .collect();
        let (others, bytes, entries) = usage.other_tenants;
        if others > 0 {
            tenant_memory.push(TenantMemory {
                tenant: OTHER_TENANTS.to_owned(),
                bytes,
                entries,
                tenants: others,
            });
        }
        // The store's books are by route id; the report lists the table in force.
        let config = self.config();
        let route_memory = config
            .routes
            .routes()
            .iter()
            .enumerate()
            .map(|(position, route)| {
                let used = usage.routes.get(route.id);
                RouteMemory {
                    route: position,
                    path: route.pattern.as_str().to_owned(),
                    bytes: used.map_or(0, |u| u.bytes),
                    entries: used.map_or(0, |u| u.entries),
                    max_memory: route.max_memory,
                }
            })
            .collect();
        let store = StoreCounts {
            entries: store.entries,
            bytes: store.bytes,
            max_bytes: Some(self.inner.config.cache.max_memory),
            evictions: store.evictions,
            share_evictions: store.share_evictions,
            route_evictions: store.route_evictions,
            purged: store.purged,
            soft_purged: store.soft_purged,
            fenced: store.fenced,
            tenant_share: usage.tenant_share,
            tenant_memory,
            route_memory,
        };
        let mut report = Report::new(self.inner.stats.snapshot(), self.introspections(), store);
        report.shared = self.shared_counts();
        report
    }

    /// [`Proxy::stats_report`] with what Redis reports about itself (one bounded round trip).
    pub async fn stats_report_with_redis(&self) -> Report {
        let mut report = self.stats_report();
        if let Some(shared) = &mut report.shared {
            shared.redis = self
                .inner
                .store
                .shared_info()
                .await
                .map(|info| RedisCounts {
                    version: info.version,
                    mode: info.mode,
                    used_memory: info.used_memory,
                    entries: info.entries,
                    tenants: info.tenants,
                });
        }
        report
    }

    fn shared_counts(&self) -> Option<SharedCounts> {
        let store = &self.inner.store;
        let s = store.shared_stats()?;
        let (promoted, _failures) = store.shared_counts();
        let breaker = match s.breaker {
            Some(Breaker::Closed) | None => "closed",
            Some(Breaker::Open) => "open",
            Some(Breaker::HalfOpen) => "half_open",
        };
        Some(SharedCounts {
            hits: s.hits,
            misses: s.misses,
            errors: s.errors,
            timeouts: s.timeouts,
            stores: s.stores,
            fenced: s.fenced,
            purges: s.purges,
            replay_pending: s.replay_pending,
            breaker: breaker.to_owned(),
            breaker_opened: s.breaker_opened,
            subscribed: s.subscribed,
            pubsub_reconnects: s.pubsub_reconnects,
            invalidations_received: s.invalidations_received,
            invalidations_applied: store.invalidations_applied(),
            pubsub_lag_ms: s.pubsub_lag_ms,
            leases_acquired: s.leases_acquired,
            lease_waits: s.lease_waits,
            promoted,
            memory_trusted: store.memory_trusted_now(),
            redis: None,
        })
    }
}
