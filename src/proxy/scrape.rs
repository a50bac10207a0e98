//! What one `GET /metrics` scrape renders: the `/stats` report, the per-request series and
//! latencies, the backend's latency and each cache tier's figures, read at scrape time.

use super::Proxy;
use crate::metrics::{Scrape, TierFigures};

impl Proxy {
    /// Everything `/metrics` renders, read now.
    pub fn scrape(&self) -> Scrape {
        Scrape {
            report: self.stats_report(),
            metrics: self.inner.metrics.snapshot(),
            backend_latency: self.inner.upstream.latency().snapshot(),
            tiers: self.tier_figures(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// Entries, bytes and evictions of each tier, `tier="memory"` first.
    fn tier_figures(&self) -> Vec<TierFigures> {
        let memory = self.inner.store.stats();
        let mut tiers = vec![TierFigures {
            tier: "memory",
            entries: memory.entries,
            bytes: memory.bytes,
            evictions: memory.evictions,
        }];
        tiers.extend(self.shared_tier_figures());
        tiers
    }

    /// The shared (Redis) tier's figures as `tier="shared"`: not reported (see below).
    fn shared_tier_figures(&self) -> Option<TierFigures> {
        // What Redis holds is Redis's to say, in one round trip a scrape should not wait on:
        // `/stats` asks it. The shared tier's own families (`cachegate_shared_*`) come from
        // the report.
        None
    }
}
