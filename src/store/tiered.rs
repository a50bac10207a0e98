//! The store the request pipeline talks to: this instance's memory tier, in front of the
//! shared Redis tier when one is configured.
//!
//! Reads go memory → shared → (the caller's) backend; a shared hit is copied into memory for
//! what is left of its freshness, at most `local_ttl`. Fills write the shared tier first (its
//! script refuses a fill that overlapped a purge on any instance), then memory. Purges raise
//! this instance's fences, purge the shared tier (which publishes the purge to the other
//! instances), then purge memory, all before they return: the instance that acknowledges a
//! write has purged Redis first.
//!
//! A shared tier that fails is a counted miss, never a client error: lookups and stores go on
//! with the memory tier and the backend, and purges are replayed there once it answers again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::memory::MemoryTier;
use super::shared::{
    Lease, LeaseToken, LeaseWait, RedisInfo, SharedError, SharedEvent, SharedStats, SharedTicket,
    SharedTier,
};
use super::tier::{Local, Tier};
use super::{
    CachedResponse, FillTicket, MemoryOptions, MemoryUsage, Purge, PurgeResult, StoreOutcome,
    StoreStats, TagKey, TenantScope, VariantLimit, VaryState,
};
use crate::clock::UnixMillis;
use crate::policy::vary::Selection;
use crate::policy::Key;

/// How this instance uses a shared tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedSettings {
    /// The longest a memory copy of a shared entry is served: the bound on how stale an
    /// instance can be if an invalidation message is lost without the subscription dropping.
    pub local_ttl: Duration,
    /// Cross-instance single-flight: the lease a fill takes on its key, `None` for off.
    pub lease_ttl: Option<Duration>,
}

/// Which tier answered a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Memory,
    Shared,
}

/// An entry a lookup found held but not fresh: past its freshness, or marked by a soft
/// purge. Whether it may answer is `policy::freshness`'s decision.
#[derive(Debug, Clone)]
pub struct Held {
    pub entry: Arc<CachedResponse>,
    /// A soft purge marked it.
    pub soft_purged: bool,
    pub source: Source,
}

/// What a lookup found.
#[derive(Debug)]
pub struct Found {
    /// A fresh entry, and the tier it came from.
    pub entry: Option<(Arc<CachedResponse>, Source)>,
    /// Without a fresh entry: the entry still held under the key, if any (the newer of the
    /// memory tier's and the shared tier's).
    pub held: Option<Held>,
    /// What the key's responses vary on, when known.
    pub varies: Option<Arc<VaryState>>,
    /// The key looked up (and to fill on a miss): the primary key or its variant.
    pub lookup: Key,
}

struct Shared {
    tier: SharedTier,
    settings: SharedSettings,
    /// Shared hits copied into memory, and shared-tier failures seen by the store.
    promoted: AtomicU64,
    failures: AtomicU64,
}

/// The tiered store: memory, and the shared tier when configured.
pub struct Tiered {
    local: Arc<Local>,
    shared: Option<Shared>,
}

impl Tiered {
    /// A memory-only store bounded by `opts.max_bytes`.
    pub fn new(opts: MemoryOptions) -> Self {
        Self {
            local: Arc::new(Local::new(MemoryTier::new(&opts), opts.max_bytes, true)),
            shared: None,
        }
    }

    /// Memory in front of `tier`. The shared tier's events (other instances' purges, the
    /// subscription going down and coming back) are applied by a task spawned here, which
    /// ends when the tier closes its channel.
    pub fn with_shared(
        opts: MemoryOptions,
        tier: SharedTier,
        events: mpsc::Receiver<SharedEvent>,
        settings: SharedSettings,
    ) -> Self {
        let local = Arc::new(Local::new(MemoryTier::new(&opts), opts.max_bytes, false));
        tokio::spawn(apply_events(Arc::clone(&local), events));
        Self {
            local,
            shared: Some(Shared {
                tier,
                settings,
                promoted: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// Whether memory may answer: always without a shared tier; with one, while subscribed
    /// to its invalidations, or while it is unreachable altogether (the instance then runs on
    /// its own, each memory copy bounded by `local_ttl`).
    fn memory_trusted(&self) -> bool {
        match &self.shared {
            None => true,
            Some(shared) => self.local.trust.subscribed() || !shared.tier.available(),
        }
    }

    /// The fresh entry for `primary` (its variant, when its responses vary): memory first,
    /// then the shared tier, whose hit is copied into memory. `tenant` is the entry's tenant
    /// id, `None` for the shared scope (a plain string, so a memory hit allocates nothing).
    pub async fn find(
        &self,
        tenant: Option<&str>,
        primary: &Key,
        variant_of: &(dyn Fn(&Selection) -> Key + Sync),
        now: UnixMillis,
    ) -> Found {
        let local = &self.local;
        let mut varies = local.variants.get(primary);
        let mut lookup = varies
            .as_ref()
            .map_or(*primary, |state| variant_of(state.selection()));
        let mut held = None;
        if self.memory_trusted() {
            if let Some(entry) = local.memory.get(&lookup, now) {
                return Found {
                    entry: Some((entry, Source::Memory)),
                    held: None,
                    varies,
                    lookup,
                };
            }
            held = local
                .memory
                .get_usable(&lookup, now)
                .map(|(entry, soft_purged)| Held {
                    entry,
                    soft_purged,
                    source: Source::Memory,
                });
        }
        let miss = |varies, lookup: Key, held: Option<Held>| Found {
            entry: None,
            held: held.filter(|h| h.entry.key == lookup),
            varies,
            lookup,
        };
        let Some(shared) = self.shared.as_ref().filter(|s| s.tier.available()) else {
            return miss(varies, lookup, held);
        };
        // A promotion is a fill of the memory tier: fenced like one.
        let ticket = local.ticket();
        let tenant = tenant.map_or(TenantScope::Shared, TenantScope::one);
        let found = match Tier::lookup(&shared.tier, &tenant, primary, variant_of, now).await {
            Ok(found) => found,
            Err(err) => {
                self.shared_failed(&err);
                return miss(varies, lookup, held);
            }
        };
        if let Some(selection) = &found.varies {
            for key in local.variants.note(*primary, selection) {
                local.memory.remove(&key);
            }
            varies = local.variants.get(primary);
        }
        if let Some(key) = found.key {
            lookup = key;
        }
        if let Some((entry, soft_purged)) = found.held {
            // The newer of the two copies: another instance may have refreshed it.
            if held
                .as_ref()
                .is_none_or(|h| h.entry.stored_at < entry.stored_at)
            {
                held = Some(Held {
                    entry,
                    soft_purged,
                    source: Source::Shared,
                });
            }
        }
        let Some(entry) = found.entry else {
            return miss(varies, lookup, held);
        };
        let entry = if self.memory_trusted() {
            // The copy shares the tier's copy of its tenant id, as a fill's entry does (the
            // decoded entry is not shared yet, so this moves rather than copies it).
            let mut copy = Arc::unwrap_or_clone(entry);
            copy.tenant = local.memory.interned(copy.tenant);
            let entry = Arc::new(copy);
            // Kept for its stale windows too, but never past `local_ttl`: the bound on how
            // long an instance trusts a copy whose invalidation it might have missed.
            let until = entry
                .usable_until()
                .min(now.plus(shared.settings.local_ttl));
            let outcome = local.store_fenced(&ticket, Arc::clone(&entry), until).await;
            if outcome == StoreOutcome::Stored {
                shared.promoted.fetch_add(1, Ordering::Relaxed);
            }
            entry
        } else {
            entry
        };
        Found {
            entry: Some((entry, Source::Shared)),
            held: None,
            varies,
            lookup,
        }
    }

    /// The memory tier's fresh entry under `key`, if any (no shared lookup).
    pub async fn lookup(&self, key: &Key, now: UnixMillis) -> Option<Arc<CachedResponse>> {
        self.local.memory.get(key, now)
    }

    /// The entry under `key` if a soft purge marked it stale, whether or not its TTL has
    /// passed (so a caller may serve it while one request refreshes it); None otherwise.
    pub async fn lookup_stale(&self, key: &Key, _now: UnixMillis) -> Option<Arc<CachedResponse>> {
        self.local.memory.get_stale(key)
    }

    /// Call before sending the upstream request of a fill (it never waits: it is taken under
    /// the single-flight map's lock). See [`Tiered::shared_ticket`] for the shared tier's.
    pub fn begin_fill(&self) -> FillTicket {
        self.local.ticket()
    }

    /// True when a purge on this instance that covers any of `tags` happened after `ticket`.
    pub fn is_fenced(&self, ticket: &FillTicket, tags: &[TagKey]) -> bool {
        self.local.fences.is_fenced(ticket, tags)
    }

    /// The shared tier's fence ticket for a fill of `tenant`; `None` without a shared tier or
    /// when it cannot be reached (the fill then goes to memory only). Take it after
    /// [`Tiered::begin_fill`] and before the upstream request is sent.
    pub async fn shared_ticket(&self, tenant: &TenantScope) -> Option<SharedTicket> {
        let shared = self.shared.as_ref().filter(|s| s.tier.available())?;
        match Tier::begin(&shared.tier, tenant).await {
            Ok(ticket) => Some(ticket),
            Err(err) => {
                self.shared_failed(&err);
                None
            }
        }
    }

    /// Stores `entry` under `entry.key` unless fenced: in the shared tier first (with
    /// `shared_ticket`), then in memory (with `ticket`). Race-free against concurrent purges
    /// on any instance; see `tier` for how each tier checks its fence.
    pub async fn store(
        &self,
        ticket: &FillTicket,
        shared_ticket: Option<&SharedTicket>,
        entry: Arc<CachedResponse>,
    ) -> StoreOutcome {
        let local = &self.local;
        // A cheap early out, before any round trip.
        if local.fences.is_fenced(ticket, &entry.tags()) {
            local.memory.count_fenced();
            return StoreOutcome::Fenced;
        }
        let mut in_shared = false;
        // Kept until its last usable instant (the end of its widest stale window).
        let usable = entry.usable_until();
        let mut until = usable;
        if let Some(shared) = &self.shared {
            until = until.min(UnixMillis::now().plus(shared.settings.local_ttl));
            if let Some(shared_ticket) = shared_ticket {
                let stored =
                    Tier::store(&shared.tier, shared_ticket, Arc::clone(&entry), usable).await;
                match stored {
                    Ok(StoreOutcome::Fenced) => {
                        local.memory.count_fenced();
                        return StoreOutcome::Fenced;
                    }
                    Ok(_) => in_shared = true,
                    Err(err) => self.shared_failed(&err),
                }
            }
            if !self.memory_trusted() {
                return if in_shared {
                    StoreOutcome::Stored
                } else {
                    StoreOutcome::TooLarge
                };
            }
        }
        match local.store_fenced(ticket, entry, until).await {
            StoreOutcome::TooLarge if in_shared => StoreOutcome::Stored,
            outcome => outcome,
        }
    }

    /// Removes (or with `soft`, marks stale) every entry matching the purge, in every tier,
    /// after fencing the in-flight fills it could have covered.
    pub async fn purge(&self, purge: &Purge) -> PurgeResult {
        // This instance's fills are fenced before anything else, so none that began before
        // the purge lands in memory while the shared tier is being purged.
        self.local.fences.raise(&purge.tenant, &purge.fence_tags());
        let shared = match &self.shared {
            None => None,
            Some(shared) => match Tier::purge(&shared.tier, purge).await {
                Ok(count) => Some(count),
                Err(err) => {
                    self.shared_failed(&err);
                    None
                }
            },
        };
        let memory = self.local.purge_memory(purge);
        PurgeResult {
            purged: memory.max(shared.unwrap_or(0)),
            memory,
            shared,
        }
    }

    /// Whether the store may hold an entry carrying `tag`: `Some(false)` is certain,
    /// `Some(true)` may be stale (the index over-approximates); `None` when only a shared
    /// tier could tell, which is not asked (use it for reporting only).
    pub async fn holds(&self, tag: &TagKey) -> Option<bool> {
        let held = self.local.memory.index().holds(tag);
        (held || self.shared.is_none()).then_some(held)
    }

    /// What the responses stored under `primary` vary on, as this instance knows it; None
    /// when they do not vary or nothing is known here ([`Tiered::find`] asks the shared tier).
    pub async fn vary_state(&self, primary: &Key) -> Option<Arc<VaryState>> {
        self.local.variants.get(primary)
    }

    /// Records that `variant` of `primary`, selected by `selection`, is about to be stored;
    /// refused when the URI already holds `max` live variants here. A variant that expired or
    /// that a soft purge marked stale is not live: it can serve no request, so it holds no
    /// place. The shared tier learns the selection, so other instances look up the variant.
    pub async fn admit_variant(
        &self,
        tenant: &TenantScope,
        primary: Key,
        selection: &Arc<Selection>,
        variant: Key,
        max: usize,
        until: UnixMillis,
    ) -> Result<(), VariantLimit> {
        let now = UnixMillis::now();
        let local = &self.local;
        let unreachable = local
            .variants
            .admit(primary, selection, variant, max, |key| {
                local.memory.servable(key, now)
            })?;
        // Stored under a `Vary` the backend no longer sends: no lookup computes these keys.
        for key in unreachable {
            local.memory.remove(&key);
        }
        if let Some(shared) = self.shared.as_ref().filter(|s| s.tier.available()) {
            let recorded = shared
                .tier
                .store_vary(tenant, &primary, Some(selection), until)
                .await;
            if let Err(err) = recorded {
                self.shared_failed(&err);
            }
        }
        Ok(())
    }

    /// Forgets what `primary` varied on: its latest response does not vary. The variants
    /// stored for it can no longer be looked up, so they go too.
    pub async fn forget_variants(&self, tenant: &TenantScope, primary: &Key) {
        let known = self.local.variants.get(primary).is_some();
        for key in self.local.variants.forget(primary) {
            self.local.memory.remove(&key);
        }
        if !known {
            return;
        }
        if let Some(shared) = self.shared.as_ref().filter(|s| s.tier.available()) {
            let forgotten = shared
                .tier
                .store_vary(tenant, primary, None, UnixMillis::now())
                .await;
            if let Err(err) = forgotten {
                self.shared_failed(&err);
            }
        }
    }

    /// Takes the cross-instance fill lease on `key`: fill (holding the lease, or without one
    /// when there is no shared tier, leases are off or Redis cannot be reached), or wait for
    /// the instance that holds it.
    pub async fn lease(&self, tenant: &TenantScope, key: &Key) -> LeaseDecision {
        let Some(shared) = self.shared.as_ref().filter(|s| s.tier.available()) else {
            return LeaseDecision::Fill(None);
        };
        let Some(ttl) = shared.settings.lease_ttl else {
            return LeaseDecision::Fill(None);
        };
        match shared.tier.lease(tenant, key, ttl).await {
            Ok(Lease::Acquired(token)) => LeaseDecision::Fill(Some(token)),
            Ok(Lease::Held) => LeaseDecision::Wait,
            Err(err) => {
                self.shared_failed(&err);
                LeaseDecision::Fill(None)
            }
        }
    }

    /// Waits, at most `timeout`, for the instance holding the lease on `key` to fill it.
    pub async fn wait_lease(
        &self,
        tenant: &TenantScope,
        key: &Key,
        timeout: Duration,
    ) -> LeaseWait {
        match &self.shared {
            Some(shared) => shared.tier.wait_lease(tenant, key, timeout).await,
            None => LeaseWait::Released,
        }
    }

    /// Releases a lease this instance took; `filled` wakes the other instances' waiters.
    pub async fn release_lease(&self, token: LeaseToken, filled: bool) {
        if let Some(shared) = &self.shared {
            if let Err(err) = shared.tier.release(token, filled).await {
                self.shared_failed(&err);
            }
        }
    }

    fn shared_failed(&self, err: &SharedError) {
        if let Some(shared) = &self.shared {
            shared.failures.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(error = %err, "shared tier unavailable; going on without it");
    }

    /// Other instances' purges applied to this instance's memory tier since start.
    pub fn invalidations_applied(&self) -> u64 {
        self.local.applied.load(Ordering::Acquire)
    }

    /// Primary keys whose responses are known (here) to vary.
    pub fn varying_keys(&self) -> usize {
        self.local.variants.len()
    }

    /// A snapshot of the memory tier's counters.
    pub fn stats(&self) -> StoreStats {
        self.local.memory.stats()
    }

    /// The shared tier's counters, `None` without one.
    pub fn shared_stats(&self) -> Option<SharedStats> {
        self.shared.as_ref().map(|s| s.tier.stats())
    }

    /// Shared hits copied into memory, and shared-tier failures, since start.
    pub fn shared_counts(&self) -> (u64, u64) {
        self.shared.as_ref().map_or((0, 0), |s| {
            (
                s.promoted.load(Ordering::Relaxed),
                s.failures.load(Ordering::Relaxed),
            )
        })
    }

    /// What Redis reports about itself; `None` without a shared tier or when unreachable.
    pub async fn shared_info(&self) -> Option<RedisInfo> {
        let shared = self.shared.as_ref()?;
        shared.tier.info().await.ok()
    }

    /// Whether memory is answering: false while a shared tier's subscription is down.
    pub fn memory_trusted_now(&self) -> bool {
        self.memory_trusted()
    }

    /// What each tenant and each route holds in memory: the `top` tenants holding the most
    /// bytes (the rest summed) and every route.
    pub fn usage(&self, top: usize) -> MemoryUsage {
        self.local.memory.usage(top)
    }

    /// Puts a new route table's `max_memory` bounds in force, by route id (a reload).
    pub fn set_route_limits(&self, routes: Vec<Option<u64>>) {
        self.local.memory.set_route_limits(routes);
    }

    /// The scope to build an entry of `tenant` with: the memory tier's copy of the id when it
    /// holds entries of the tenant, so that they share one allocation.
    pub fn interned_tenant(&self, tenant: TenantScope) -> TenantScope {
        self.local.memory.interned(tenant)
    }

    /// The largest entry weight the memory tier admits; heavier entries are not kept in
    /// memory (a shared tier still takes them).
    pub fn memory_max_entry_weight(&self) -> u64 {
        self.local.memory.max_entry_weight()
    }

    pub(crate) fn local(&self) -> &Local {
        &self.local
    }
}

/// Whether a fill goes to the backend.
#[derive(Debug)]
pub enum LeaseDecision {
    /// Fill: with the lease's token to release afterwards, or `None` when no lease is taken.
    Fill(Option<LeaseToken>),
    /// Another instance is filling the key: wait for it, then look up.
    Wait,
}

/// Applies the shared tier's events to this instance's memory tier.
async fn apply_events(local: Arc<Local>, mut events: mpsc::Receiver<SharedEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            SharedEvent::Purged(purge) => {
                local.purge_memory(&purge);
                local.applied.fetch_add(1, Ordering::Release);
            }
            SharedEvent::Disconnected => {
                // Invalidations may be lost from here on: what memory holds can no longer be
                // vouched for. Fills in flight are kept out by the new epoch.
                local.trust.set(false);
                let flushed = local.memory.flush();
                tracing::warn!(
                    flushed,
                    "shared tier subscription lost; memory tier flushed"
                );
            }
            SharedEvent::Subscribed => {
                // What memory took while unsubscribed may have missed invalidations. The
                // epoch moves before the flush, so nothing filled before it lands after it.
                local.trust.set(false);
                local.memory.flush();
                local.trust.set(true);
                tracing::info!("shared tier subscription established");
            }
        }
    }
}

impl std::fmt::Debug for Tiered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiered")
            .field("stats", &self.stats())
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}
