//! Request counters: plain atomics, bumped once per request from the outcome it had.

use crate::policy::outcome::{Fill, Outcome};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
}

impl Stats {
    pub fn record(&self, outcome: Outcome) {
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

    pub fn snapshot(&self) -> Snapshot {
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
        }
    }
}
