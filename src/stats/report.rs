//! The typed `/stats` answer: a [`Snapshot`] of the counters and the [`Report`] around it,
//! which the admin API serves and the CLI reads.

use super::PurgeRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A point-in-time copy of [`Stats`](super::Stats), as the `/stats` answer carries it.
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
    /// The last purges, newest first, at most [`RECENT_PURGES`](super::RECENT_PURGES): every admin and webhook
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

/// One tenant's traffic ([`OTHER_TENANTS`](super::OTHER_TENANTS) sums the tenants beyond the cap).
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
    /// [`TOP_MEMORY_TENANTS`](super::TOP_MEMORY_TENANTS) of them and [`OTHER_TENANTS`](super::OTHER_TENANTS) for the rest; the shared scope is
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
    /// How many tenants the row sums: 1, or more for [`OTHER_TENANTS`](super::OTHER_TENANTS).
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
