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
    _private: (),
}

impl SharedTier {
    /// Sets up the connections; never fails because Redis is down (the breaker starts open
    /// and probes), only on a malformed URL. The events of the subscriber go to the returned
    /// receiver.
    pub fn connect(
        _opts: SharedOptions,
    ) -> Result<(SharedTier, mpsc::Receiver<SharedEvent>), SharedError> {
        Err(SharedError::Unavailable)
    }

    /// The entry for `primary` of `tenant`: reads the primary key and its vary record in one
    /// round trip; when the record says the responses vary, the variant key `variant_of`
    /// computes is read too.
    pub async fn lookup(
        &self,
        _tenant: &TenantScope,
        _primary: &Key,
        _variant_of: &(dyn Fn(&Selection) -> Key + Sync),
    ) -> Result<SharedFound, SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Registers the tenant (for purges of every tenant) and reads its purge sequence. Take it
    /// before the fill's upstream request is sent.
    pub async fn ticket(&self, _tenant: &TenantScope) -> Result<SharedTicket, SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Stores `entry` (under `entry.key`, with its tags) until `entry`'s last usable instant
    /// `until`, unless a purge covering one of its tags happened after `ticket`: the fence
    /// check and the write are one atomic script.
    pub async fn store(
        &self,
        _ticket: &SharedTicket,
        _entry: &CachedResponse,
        _until: UnixMillis,
    ) -> Result<SharedStored, SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Records what `primary`'s responses vary on (until `until`), or with `None` that they
    /// do not vary.
    pub async fn store_vary(
        &self,
        _tenant: &TenantScope,
        _primary: &Key,
        _selection: Option<&Selection>,
        _until: UnixMillis,
    ) -> Result<(), SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Replaces the metadata of a stored entry (stored-at, fresh-until, headers) without
    /// sending its body again; false when the entry is gone.
    pub async fn update_meta(
        &self,
        _entry: &CachedResponse,
        _until: UnixMillis,
    ) -> Result<bool, SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Applies a purge in Redis (fences raised first, atomically with the removal, per tenant
    /// slot) and publishes it to the other instances. On failure the purge is kept for replay
    /// and replayed (and published) once Redis answers again. Returns entries removed.
    pub async fn purge(&self, _purge: &Purge) -> Result<usize, SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Tries to take the fill lease on `key` for `ttl`.
    pub async fn lease(
        &self,
        _tenant: &TenantScope,
        _key: &Key,
        _ttl: Duration,
    ) -> Result<Lease, SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Releases a lease taken by this instance and, with `filled`, announces that the key is
    /// stored, waking the other instances' waiters.
    pub async fn release(&self, _token: LeaseToken, _filled: bool) -> Result<(), SharedError> {
        Err(SharedError::Unavailable)
    }

    /// Waits until the holder of the lease on `key` announces the fill or the lease is gone
    /// (checked by short bounded polling besides the announcement), at most `timeout`.
    pub async fn wait_lease(
        &self,
        _tenant: &TenantScope,
        _key: &Key,
        _timeout: Duration,
    ) -> LeaseWait {
        LeaseWait::Released
    }

    /// The breaker lets requests through (closed, or half-open for a probe).
    pub fn available(&self) -> bool {
        false
    }

    pub fn stats(&self) -> SharedStats {
        SharedStats::default()
    }

    pub async fn info(&self) -> Result<RedisInfo, SharedError> {
        Err(SharedError::Unavailable)
    }
}
