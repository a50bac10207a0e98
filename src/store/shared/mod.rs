//! The shared tier: entries, tags, purges, fences and fill leases in Redis (or a Redis
//! Cluster), so several instances share one cache and one invalidation stream.
//!
//! CONTRACT (the orchestration in `store::Tiered` is written against exactly these
//! signatures; implementations live in the submodules).
//!
//! Every operation is bounded by the command timeout and goes through the circuit breaker:
//! while the breaker is open an operation fails at once with [`SharedError::Unavailable`].
//! No operation ever panics on what Redis returns; a value that does not decode is a miss
//! (and is counted as an error).
//!
//! Key names (never a raw client-supplied string): `{prefix}:v{FORMAT_VERSION}:{<T>}:...`
//! where `<T>` is a digest of the tenant scope, so one tenant's entries, tag sets, fences
//! and leases share one cluster slot and a tenant's purge is one atomic script.

mod background;
mod breaker;
mod conn;
mod encode;
mod keys;
mod ops;
mod scripts;
mod tier;
mod wire;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{CachedResponse, Purge, TenantScope};
use crate::clock::UnixMillis;
use crate::policy::vary::Selection;
use crate::policy::Key;

/// How to reach Redis and how to treat it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedOptions {
    /// `redis://` or `rediss://` URLs (with user, password, database). One URL for a single
    /// server; with `cluster`, the seed nodes of a Redis Cluster.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// First part of every key name and of the channel name.
    pub prefix: String,
    /// Bound on every command, round trip included.
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    /// Bodies longer than this are stored zstd-compressed.
    pub compress_above: usize,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses before letting one probe through.
    pub breaker_cooldown: Duration,
    /// How long fence records are kept; a fill that takes longer than this, while purges of
    /// its tenant happened, is treated as fenced.
    pub fence_retention: Duration,
    /// Purges kept for replay while Redis is unreachable; beyond it, they collapse into one
    /// purge of everything.
    pub replay_limit: usize,
}

/// Why a shared-tier operation did not happen. Never shown to a client: the caller counts it
/// and carries on as on a miss.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("redis is unavailable (circuit open)")]
    Unavailable,
    #[error("redis command timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(String),
    #[error("stored value does not decode: {0}")]
    Decode(String),
}

/// What a shared lookup found for a primary key.
#[derive(Debug, Default)]
pub struct SharedFound {
    /// What the primary key's responses vary on, when they do (then `entry` is the variant's).
    pub varies: Option<Arc<Selection>>,
    /// The key looked up: the primary key, or the variant key `variant_of` gave.
    pub key: Option<Key>,
    /// The entry under `key`, decoded; whether or not it is still fresh (the caller decides).
    pub entry: Option<Arc<CachedResponse>>,
    /// A soft purge marked the entry stale.
    pub stale: bool,
}

/// Proof of the shared purge sequence of one tenant at the start of a fill.
#[derive(Clone, Debug)]
pub struct SharedTicket {
    pub tenant: TenantScope,
    pub seq: u64,
    /// When the ticket was taken, for `fence_retention`.
    pub taken: UnixMillis,
}

/// What a shared store did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedStored {
    Stored,
    /// A purge of one of the entry's tags (on any instance) happened after the ticket.
    Fenced,
}

/// A fill lease on one key, across instances.
#[derive(Debug)]
pub enum Lease {
    /// This instance fills; release the token when done.
    Acquired(LeaseToken),
    /// Another instance holds it.
    Held,
}

#[derive(Debug)]
pub struct LeaseToken {
    pub tenant: TenantScope,
    pub key: Key,
    /// Random value the lease is set to, so only its holder deletes it.
    pub value: u64,
}

/// What a wait on another instance's lease ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseWait {
    /// The holder announced that it stored the key (look it up).
    Filled,
    /// The lease is gone without an announcement (uncacheable answer, holder died): fill.
    Released,
    TimedOut,
}

/// What the subscriber hands to the tier.
#[derive(Debug)]
pub enum SharedEvent {
    /// Another instance purged: apply it to this instance's memory tier and fences.
    Purged(Purge),
    /// The subscription was lost: invalidations may be missed until `Subscribed`.
    Disconnected,
    /// Subscribed (again): invalidations from here on arrive.
    Subscribed,
}

/// Circuit breaker state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breaker {
    Closed,
    Open,
    HalfOpen,
}

/// Counters of the shared tier since start.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SharedStats {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub stores: u64,
    pub fenced: u64,
    pub purges: u64,
    /// Purges waiting for Redis to come back.
    pub replay_pending: u64,
    pub breaker: Option<Breaker>,
    pub breaker_opened: u64,
    pub subscribed: bool,
    pub pubsub_reconnects: u64,
    pub invalidations_received: u64,
    /// Publish-to-receipt delay of the last invalidation received, in milliseconds.
    pub pubsub_lag_ms: u64,
    pub leases_acquired: u64,
    pub lease_waits: u64,
}

/// What Redis says about itself, for `/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedisInfo {
    pub version: String,
    pub mode: String,
    pub used_memory: u64,
    /// Entries held in our namespace (summed over the tenants' whole-tenant tag sets).
    pub entries: u64,
    pub tenants: u64,
}

/// The shared tier. Cheap to clone.
#[derive(Clone)]
pub struct SharedTier {
    inner: Arc<tier::Inner>,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("urls", &self.inner.opts.urls.len())
            .field("cluster", &self.inner.opts.cluster)
            .field("breaker", &self.inner.breaker.state())
            .finish_non_exhaustive()
    }
}

/// Capacity of the event channel; the subscriber waits when it is full.
const EVENTS: usize = 1024;

impl SharedTier {
    /// Sets up the connections; never fails because Redis is down (the breaker starts open
    /// and probes), only on a malformed URL. The events of the subscriber go to the returned
    /// receiver.
    ///
    /// Must be called within a tokio runtime: the connections, the probe and the subscriber
    /// run as background tasks, which end when the last clone of the tier is dropped.
    pub fn connect(
        opts: SharedOptions,
    ) -> Result<(SharedTier, mpsc::Receiver<SharedEvent>), SharedError> {
        // rediss:// needs a process-wide crypto provider; another may be installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let endpoints = conn::endpoints(&opts, push_tx)?;
        let single = endpoints.single.map(conn::Conn::Single);
        let inner = Arc::new(tier::Inner::new(opts, single, endpoints.cluster));
        let (events_tx, events_rx) = mpsc::channel(EVENTS);
        background::spawn(&inner, endpoints.pubsub, push_rx, events_tx);
        Ok((SharedTier { inner }, events_rx))
    }

    /// The entry for `primary` of `tenant`: reads the primary key and its vary record in one
    /// round trip; when the record says the responses vary, the variant key `variant_of`
    /// computes is read too.
    pub async fn lookup(
        &self,
        tenant: &TenantScope,
        primary: &Key,
        variant_of: &(dyn Fn(&Selection) -> Key + Sync),
    ) -> Result<SharedFound, SharedError> {
        ops::lookup(&self.inner, tenant, primary, variant_of).await
    }

    /// Registers the tenant (for purges of every tenant) and reads its purge sequence. Take it
    /// before the fill's upstream request is sent.
    pub async fn ticket(&self, tenant: &TenantScope) -> Result<SharedTicket, SharedError> {
        ops::ticket(&self.inner, tenant).await
    }

    /// Stores `entry` (under `entry.key`, with its tags) until `entry`'s last usable instant
    /// `until`, unless a purge covering one of its tags happened after `ticket`: the fence
    /// check and the write are one atomic script. An entry whose `until` has passed is not
    /// written (and reported stored). A ticket of another tenant than the entry's fences it.
    pub async fn store(
        &self,
        ticket: &SharedTicket,
        entry: &CachedResponse,
        until: UnixMillis,
    ) -> Result<SharedStored, SharedError> {
        ops::store(&self.inner, ticket, entry, until).await
    }

    /// Records what `primary`'s responses vary on (until `until`), or with `None` that they
    /// do not vary.
    pub async fn store_vary(
        &self,
        tenant: &TenantScope,
        primary: &Key,
        selection: Option<&Selection>,
        until: UnixMillis,
    ) -> Result<(), SharedError> {
        ops::store_vary(&self.inner, tenant, primary, selection, until).await
    }

    /// Replaces the metadata of a stored entry (stored-at, lifetimes, headers) without
    /// sending its body again; false when the entry is gone. A soft purge's stale mark stays.
    pub async fn update_meta(
        &self,
        entry: &CachedResponse,
        until: UnixMillis,
    ) -> Result<bool, SharedError> {
        ops::update_meta(&self.inner, entry, until).await
    }

    /// Applies a purge in Redis (fences raised first, atomically with the removal, per tenant
    /// slot) and publishes it to the other instances. On failure the purge is kept for replay
    /// and replayed (and published) once Redis answers again. Returns entries removed.
    pub async fn purge(&self, purge: &Purge) -> Result<usize, SharedError> {
        ops::purge(&self.inner, purge).await
    }

    /// Tries to take the fill lease on `key` for `ttl`.
    pub async fn lease(
        &self,
        tenant: &TenantScope,
        key: &Key,
        ttl: Duration,
    ) -> Result<Lease, SharedError> {
        ops::lease(&self.inner, tenant, key, ttl).await
    }

    /// Releases a lease taken by this instance and, with `filled`, announces that the key is
    /// stored, waking the other instances' waiters.
    pub async fn release(&self, token: LeaseToken, filled: bool) -> Result<(), SharedError> {
        ops::release(&self.inner, token, filled).await
    }

    /// Waits until the holder of the lease on `key` announces the fill or the lease is gone
    /// (checked by short bounded polling besides the announcement), at most `timeout`.
    pub async fn wait_lease(
        &self,
        tenant: &TenantScope,
        key: &Key,
        timeout: Duration,
    ) -> LeaseWait {
        ops::wait_lease(&self.inner, tenant, key, timeout).await
    }

    /// The breaker lets requests through (closed, or half-open for a probe).
    pub fn available(&self) -> bool {
        self.inner.breaker.available()
    }

    /// Waits (at most `timeout`) until the breaker is closed: Redis answered. True when it is.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let mut watch = self.inner.breaker.watch();
        tokio::time::timeout(timeout, watch.wait_for(|b| *b == Breaker::Closed))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the subscriber is subscribed to the invalidation channel.
    pub fn subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> SharedStats {
        let c = &self.inner.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        SharedStats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            errors: get(&c.errors),
            timeouts: get(&c.timeouts),
            stores: get(&c.stores),
            fenced: get(&c.fenced),
            purges: get(&c.purges),
            replay_pending: self.inner.replay_pending() as u64,
            breaker: Some(self.inner.breaker.state()),
            breaker_opened: self.inner.breaker.times_opened(),
            subscribed: self.subscribed(),
            pubsub_reconnects: get(&c.pubsub_reconnects),
            invalidations_received: get(&c.invalidations_received),
            pubsub_lag_ms: get(&c.pubsub_lag_ms),
            leases_acquired: get(&c.leases_acquired),
            lease_waits: get(&c.lease_waits),
        }
    }

    pub async fn info(&self) -> Result<RedisInfo, SharedError> {
        ops::info(&self.inner).await
    }
}
