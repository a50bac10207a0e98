//! The tier trait: what `Tiered` asks of each tier it composes, and the memory tier's side of
//! it (`Local`: the bounded memory tier, its fill fences and the variant memory).
//!
//! Each tier guards its own fills: `begin` takes the tier's fence ticket before the upstream
//! request is sent, and `store` checks it where that tier can do so atomically (the memory
//! tier after an unpublished insert, see `Tiered::store`; the shared tier inside one Redis
//! script). A fill that overlapped a purge is therefore refused by every tier it reaches.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::fence::Fences;
use super::memory::{Insert, MemoryTier};
use super::shared::{SharedError, SharedStored, SharedTicket, SharedTier};
use super::variants::VariantMemory;
use super::{CachedResponse, FillTicket, Purge, StoreOutcome, TenantScope};
use crate::clock::UnixMillis;
use crate::policy::vary::Selection;
use crate::policy::Key;

/// What a tier found for a primary key.
#[derive(Debug, Default)]
pub struct TierFound {
    /// What the primary key's responses vary on, when the tier knows they do.
    pub varies: Option<Arc<Selection>>,
    /// The key looked up: the primary key or its variant.
    pub key: Option<Key>,
    /// A fresh entry this tier may serve.
    pub entry: Option<Arc<CachedResponse>>,
    /// Without a fresh entry: the one still held under `key` (past its freshness, or marked
    /// by a soft purge, with that mark), for stale answers and revalidation.
    pub held: Option<(Arc<CachedResponse>, bool)>,
}

/// One tier of the store. Lookups and stores return `Result`: a tier that fails is a counted
/// miss for the caller, never a client error.
pub trait Tier: Send + Sync {
    /// The tier's fence ticket for one fill.
    type Ticket: Send + Sync;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Takes the fence ticket of a fill for `tenant`; before the upstream request is sent.
    fn begin(
        &self,
        tenant: &TenantScope,
    ) -> impl Future<Output = Result<Self::Ticket, Self::Error>> + Send;

    /// The fresh entry for `primary` (or the variant `variant_of` selects when the responses
    /// vary), as of `now`.
    fn lookup(
        &self,
        tenant: &TenantScope,
        primary: &Key,
        variant_of: &(dyn Fn(&Selection) -> Key + Sync),
        now: UnixMillis,
    ) -> impl Future<Output = Result<TierFound, Self::Error>> + Send;

    /// Stores `entry` under `entry.key`, servable until `until`, unless a purge covering one
    /// of its tags happened after `ticket` was taken.
    fn store(
        &self,
        ticket: &Self::Ticket,
        entry: Arc<CachedResponse>,
        until: UnixMillis,
    ) -> impl Future<Output = Result<StoreOutcome, Self::Error>> + Send;

    /// Removes (or marks stale) what `purge` selects; how many entries.
    fn purge(&self, purge: &Purge) -> impl Future<Output = Result<usize, Self::Error>> + Send;

    /// Replaces a stored entry's metadata (times, headers) keeping its body; false when the
    /// entry is gone.
    fn update_meta(
        &self,
        entry: Arc<CachedResponse>,
        until: UnixMillis,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// Whether this instance may trust what its memory tier holds, with a shared tier beside it.
///
/// Invalidations from other instances arrive over a subscription that can drop messages while
/// it is down, so the memory tier is flushed when it goes down and again when it is back; the
/// epoch counts those changes so that a fill or promotion that began before one does not
/// put into memory what an invalidation it may have missed would have removed.
#[derive(Debug)]
pub(crate) struct Trust {
    subscribed: AtomicBool,
    epoch: AtomicU64,
}

impl Trust {
    fn new(subscribed: bool) -> Self {
        Self {
            subscribed: AtomicBool::new(subscribed),
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Records a change of the subscription; returns the new epoch.
    pub(crate) fn set(&self, subscribed: bool) -> u64 {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        self.subscribed.store(subscribed, Ordering::Release);
        epoch
    }
}

/// This instance's own tier: the bounded memory tier, its fill fences and what it knows of
/// responses that vary.
pub(crate) struct Local {
    pub(crate) memory: MemoryTier,
    pub(crate) fences: Arc<Fences>,
    pub(crate) variants: VariantMemory,
    pub(crate) trust: Trust,
    /// Other instances' purges applied here.
    pub(crate) applied: AtomicU64,
}

impl Local {
    pub(crate) fn new(memory: MemoryTier, max_bytes: u64, standalone: bool) -> Self {
        Self {
            memory,
            fences: Arc::new(Fences::new()),
            variants: VariantMemory::new(max_bytes),
            trust: Trust::new(standalone),
            applied: AtomicU64::new(0),
        }
    }

    /// A fill ticket of the local fences, stamped with the trust epoch.
    pub(crate) fn ticket(&self) -> FillTicket {
        let mut ticket = Fences::begin(&self.fences);
        ticket.epoch = self.trust.epoch();
        ticket
    }

    /// Inserts unpublished, checks the fence, then publishes: race-free against a purge,
    /// which either finds the index entry (and removes the entry) or has already raised the
    /// fence this check sees. A fenced entry is never served, and is taken out only if it is
    /// still the one this call inserted. Refused as well when the trust epoch moved since
    /// `ticket` (the entry may predate an invalidation this instance missed).
    pub(crate) async fn store_fenced(
        &self,
        ticket: &FillTicket,
        entry: Arc<CachedResponse>,
        until: UnixMillis,
    ) -> StoreOutcome {
        // A cheap early out: most fenced fills are caught here without touching the cache.
        if self.fenced(ticket, &entry) {
            self.memory.count_fenced();
            return StoreOutcome::Fenced;
        }
        // Test builds widen the window in which a purge can slip between the early check and
        // the insert, so the race tests exercise the second check below.
        #[cfg(test)]
        tokio::task::yield_now().await;
        let pending = match self.memory.insert(Arc::clone(&entry), until) {
            Insert::TooLarge => return StoreOutcome::TooLarge,
            Insert::Stored(pending) => pending,
        };
        if self.fenced(ticket, &entry) {
            self.memory.withdraw(&pending);
            self.memory.count_fenced();
            return StoreOutcome::Fenced;
        }
        self.memory.publish(&pending);
        StoreOutcome::Stored
    }

    fn fenced(&self, ticket: &FillTicket, entry: &CachedResponse) -> bool {
        self.fences.is_fenced(ticket, &entry.tags()) || ticket.epoch != self.trust.epoch()
    }
}

impl Tier for Local {
    type Ticket = FillTicket;
    type Error = std::convert::Infallible;

    async fn begin(&self, _tenant: &TenantScope) -> Result<FillTicket, Self::Error> {
        Ok(self.ticket())
    }

    async fn lookup(
        &self,
        _tenant: &TenantScope,
        primary: &Key,
        variant_of: &(dyn Fn(&Selection) -> Key + Sync),
        now: UnixMillis,
    ) -> Result<TierFound, Self::Error> {
        let varies = self
            .variants
            .get(primary)
            .map(|s| Arc::clone(s.selection()));
        let key = varies.as_deref().map_or(*primary, variant_of);
        let entry = self.memory.get(&key, now);
        let held = match entry {
            Some(_) => None,
            None => self.memory.get_usable(&key, now),
        };
        Ok(TierFound {
            entry,
            held,
            varies,
            key: Some(key),
        })
    }

    async fn store(
        &self,
        ticket: &FillTicket,
        entry: Arc<CachedResponse>,
        until: UnixMillis,
    ) -> Result<StoreOutcome, Self::Error> {
        Ok(self.store_fenced(ticket, entry, until).await)
    }

    async fn purge(&self, purge: &Purge) -> Result<usize, Self::Error> {
        Ok(self.purge_memory(purge))
    }

    async fn update_meta(
        &self,
        entry: Arc<CachedResponse>,
        until: UnixMillis,
    ) -> Result<bool, Self::Error> {
        if self.memory.listed(&entry.key).is_none() {
            return Ok(false);
        }
        // Same body, new times and headers: a fill that needed no body, fenced like one.
        let ticket = self.ticket();
        Ok(self.store_fenced(&ticket, entry, until).await == StoreOutcome::Stored)
    }
}

impl Tier for SharedTier {
    type Ticket = SharedTicket;
    type Error = SharedError;

    async fn begin(&self, tenant: &TenantScope) -> Result<SharedTicket, SharedError> {
        self.ticket(tenant).await
    }

    async fn lookup(
        &self,
        tenant: &TenantScope,
        primary: &Key,
        variant_of: &(dyn Fn(&Selection) -> Key + Sync),
        now: UnixMillis,
    ) -> Result<TierFound, SharedError> {
        let found = SharedTier::lookup(self, tenant, primary, variant_of).await?;
        let (entry, held) = match found.entry {
            Some(e) if !found.stale && e.is_fresh(now) => (Some(e), None),
            Some(e) if now < e.usable_until() => (None, Some((e, found.stale))),
            _ => (None, None),
        };
        Ok(TierFound {
            varies: found.varies,
            key: found.key,
            entry,
            held,
        })
    }

    async fn store(
        &self,
        ticket: &SharedTicket,
        entry: Arc<CachedResponse>,
        until: UnixMillis,
    ) -> Result<StoreOutcome, SharedError> {
        Ok(
            match SharedTier::store(self, ticket, &entry, until).await? {
                SharedStored::Stored => StoreOutcome::Stored,
                SharedStored::Fenced => StoreOutcome::Fenced,
            },
        )
    }

    async fn purge(&self, purge: &Purge) -> Result<usize, SharedError> {
        SharedTier::purge(self, purge).await
    }

    async fn update_meta(
        &self,
        entry: Arc<CachedResponse>,
        until: UnixMillis,
    ) -> Result<bool, SharedError> {
        SharedTier::update_meta(self, &entry, until).await
    }
}
