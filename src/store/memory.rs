//! The in-memory tier: a byte-bounded quick_cache plus the tag index that purges go through.
//!
//! quick_cache has no per-entry TTL, so freshness is checked on every get. An entry is kept
//! past its freshness until its last usable instant (the end of its widest stale window, see
//! `policy::freshness`), for stale answers and revalidation; a get after that removes it. Entries pushed out by byte pressure (or replaced under the same key) are
//! collected by a custom lifecycle while the shard lock is held and handed to the tag index
//! after it is released, so the index never waits on the cache and the cache never waits on it.
//!
//! An inserted entry is not served until it is published: a fill publishes only after its
//! fence check passed, so an entry that a purge fenced is never visible, not even briefly
//! between its insert and its removal.
//!
//! A soft purge marks entries stale instead of removing them: a stale entry is a miss for
//! [`MemoryTier::get`] but stays readable through [`MemoryTier::get_stale`] until a new fill
//! replaces it, a hard purge removes it or byte pressure evicts it.
//!
//! Every entry is charged to its tenant and its route in `shares`' books, counted in before it
//! enters the cache and out once it has left, on every path out (eviction, replacement,
//! refusal, expiry, purge, withdrawal). Before an insert the tier first evicts what those
//! books name: the route's own oldest entries when the insert would take it over its
//! `max_memory`, and when the tier is full, the oldest entries of a tenant over its share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock::UnixMillis;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use super::index::{short, Short, TagIndex};
use super::shares::{Books, Charge, Limits, MemoryUsage, Reason};
use super::{CachedResponse, Key, MemoryOptions, PurgeScope, StoreStats, Tag, TenantScope};

/// quick_cache's share of a shard kept for its main ("hot") queue; an entry heavier than this
/// share of one shard is never admitted.
const HOT_ALLOCATION: f64 = 0.97;

/// Shards are kept at least this large so that the largest admissible entry stays close to
/// the shard size rather than shrinking with the number of cores.
const MIN_SHARD_BYTES: u64 = 8 * 1024 * 1024;

/// The typical entry size assumed when estimating how many entries fit (it sizes the tables
/// and the ghost queue that remembers recently evicted keys).
const TYPICAL_ENTRY_BYTES: u64 = 4 * 1024;

/// With several shards, the tier counts as full for tenant shares this fraction below its
/// capacity: each shard evicts on its own once it is full, and hashing spreads entries over
/// the shards only about evenly, so trimming an over-share tenant a little early keeps most
/// shards from reaching their own bound (where quick_cache, not the share, would choose).
const SHARD_ROOM_DIVISOR: u64 = 32;

/// The most entries one insert evicts for limits before leaving the rest to quick_cache.
const MAX_VICTIMS: usize = 4096;

/// What the cache holds, in place: cloning it (on every get) costs one reference count. The
/// tier's state for the entry (published, soft-purged, hits) is a word of the entry itself
/// (`CachedResponse::slot`), and its weight is computed from it, so holding an entry costs no
/// allocation beyond the entry's own.
#[derive(Clone)]
struct Slot {
    /// The entry; its `key` is the one it is stored under (the cache holds it by the
    /// [`Short`] form of that key). An entry is held by one slot only: `insert` claims it.
    entry: Arc<CachedResponse>,
    /// The tier holds the entry before this instant only: its last usable instant, or earlier
    /// for a copy of a shared entry (see `Tiered`). It is fresh before the earlier of this and
    /// its `fresh_until`.
    until: UnixMillis,
}

impl Slot {
    fn entry(&self) -> &Arc<CachedResponse> {
        &self.entry
    }

    /// Whether the slot holds the entry of `key` itself (not one whose key shares its
    /// [`Short`] form).
    fn holds_key(&self, key: &Key) -> bool {
        self.entry.key == *key
    }

    fn is(&self, other: &Arc<CachedResponse>) -> bool {
        Arc::ptr_eq(&self.entry, other)
    }

    fn is_published(&self) -> bool {
        self.entry.slot.is_published()
    }

    fn is_stale(&self) -> bool {
        self.entry.slot.is_stale()
    }

    /// Marks the entry stale; true when this call is the one that marked it.
    fn mark_stale(&self) -> bool {
        self.entry.slot.mark_stale()
    }

    /// What the entry is charged to in the books.
    fn charge(&self) -> Charge<'_> {
        self.charged(self.entry.weight())
    }

    /// What the entry is charged to, with its weight already computed.
    fn charged(&self, weight: u64) -> Charge<'_> {
        Charge {
            tenant: &self.entry.tenant,
            route: self.entry.route as usize,
            weight,
        }
    }
}

/// A published entry as the listing sees it.
pub(crate) struct Listed {
    pub(crate) entry: Arc<CachedResponse>,
    pub(crate) weight: u64,
    pub(crate) stale: bool,
    /// Lookups this tier answered with the entry since it was stored here.
    pub(crate) hits: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct SlotWeighter;

impl Weighter<Short, Slot> for SlotWeighter {
    fn weight(&self, _key: &Short, slot: &Slot) -> u64 {
        slot.entry.weight()
    }
}

/// Collects every value that leaves the cache during an insert (evicted, replaced or refused)
/// so the caller can clean the tag index once the shard lock is released.
#[derive(Clone, Copy, Debug, Default)]
struct CollectEvicted;

impl Lifecycle<Short, Slot> for CollectEvicted {
    type RequestState = Vec<(Short, Slot)>;

    fn on_evict(&self, state: &mut Self::RequestState, key: Short, slot: Slot) {
        state.push((key, slot));
    }
}

/// The result of [`MemoryTier::insert`].
pub(crate) enum Insert {
    /// In the cache but not yet served: see [`MemoryTier::publish`].
    Stored(Pending),
    TooLarge,
}

/// An inserted entry that lookups skip until it is published.
pub(crate) struct Pending(Slot);

/// The byte-bounded memory tier with its tag index and counters.
pub(crate) struct MemoryTier {
    cache: Cache<Short, Slot, SlotWeighter, DefaultHashBuilder, CollectEvicted>,
    index: TagIndex,
    books: Books<CachedResponse>,
    max_entry_weight: u64,
    evictions: AtomicU64,
    share_evictions: AtomicU64,
    route_evictions: AtomicU64,
    purged: AtomicU64,
    soft_purged: AtomicU64,
    fenced: AtomicU64,
}

impl MemoryTier {
    pub(crate) fn new(opts: &MemoryOptions) -> Self {
        let max_bytes = opts.max_bytes;
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as u64;
        let shards = (max_bytes / MIN_SHARD_BYTES).clamp(1, cores * 4);
        let items = usize::try_from((max_bytes / TYPICAL_ENTRY_BYTES).max(1)).unwrap_or(usize::MAX);
        let built = OptionsBuilder::new()
            .shards(usize::try_from(shards).unwrap_or(1))
            .hot_allocation(HOT_ALLOCATION)
            .estimated_items_capacity(items)
            .weight_capacity(max_bytes)
            .build();
        let cache = match built {
            Ok(options) => Cache::with_options(
                options,
                SlotWeighter,
                DefaultHashBuilder::default(),
                CollectEvicted,
            ),
            // Every option is set above, so building cannot fail; the defaults are a safe net.
            Err(_) => Cache::with(
                items,
                max_bytes,
                SlotWeighter,
                DefaultHashBuilder::default(),
                CollectEvicted,
            ),
        };
        // quick_cache refuses an entry heavier than the hot share of one shard; computing the
        // same bound here lets `insert` refuse it before touching the index.
        let shard_capacity = cache.shard_capacity();
        let max_entry_weight =
            ((shard_capacity as f64 * HOT_ALLOCATION) as u64).min(shard_capacity);
        let full_at = if shards > 1 {
            max_bytes - max_bytes / SHARD_ROOM_DIVISOR
        } else {
            max_bytes
        };
        let books = Books::new(Limits {
            full_at,
            tenant_share: opts.tenant_share,
            routes: opts.route_max_bytes.clone(),
        });
        Self {
            cache,
            index: TagIndex::default(),
            books,
            max_entry_weight,
            evictions: AtomicU64::new(0),
            share_evictions: AtomicU64::new(0),
            route_evictions: AtomicU64::new(0),
            purged: AtomicU64::new(0),
            soft_purged: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
        }
    }

    /// The copy of `tenant`'s id this tier's entries share, when it holds some of them.
    pub(crate) fn interned(&self, tenant: TenantScope) -> TenantScope {
        self.books.interned(tenant)
    }

    /// The largest entry weight this tier admits.
    pub(crate) fn max_entry_weight(&self) -> u64 {
        self.max_entry_weight
    }

    /// A fresh, published entry under `key`; an expired one is removed (with its index
    /// entries). An entry whose fill is still checking its fence counts as a miss, and so does
    /// a stale-marked one, which is kept for [`MemoryTier::get_stale`].
    pub(crate) fn get(&self, key: &Key, now: UnixMillis) -> Option<Arc<CachedResponse>> {
        let slot = self.cache.get(&short(key))?;
        if !slot.holds_key(key) || !slot.is_published() || slot.is_stale() {
            return None;
        }
        if now < slot.until {
            // Kept for its stale windows, but no longer fresh: not a hit.
            if now >= slot.entry().fresh_until() {
                return None;
            }
            slot.entry.slot.hit();
            return Some(Arc::clone(slot.entry()));
        }
        // Only this expired entry goes: a fresh one stored meanwhile under the key stays.
        self.remove_slot(&slot);
        None
    }

    /// The published entry under `key` while the tier still holds it (fresh, stale or marked
    /// by a soft purge), with whether a soft purge marked it; what it may be used for is
    /// `policy::freshness`'s decision. One past its last usable instant is removed.
    pub(crate) fn get_usable(
        &self,
        key: &Key,
        now: UnixMillis,
    ) -> Option<(Arc<CachedResponse>, bool)> {
        let slot = self.cache.get(&short(key))?;
        if !slot.holds_key(key) || !slot.is_published() {
            return None;
        }
        if now < slot.until {
            return Some((Arc::clone(slot.entry()), slot.is_stale()));
        }
        self.remove_slot(&slot);
        None
    }

    /// The published entry under `key` if a soft purge marked it stale, whatever its age.
    pub(crate) fn get_stale(&self, key: &Key) -> Option<Arc<CachedResponse>> {
        let slot = self.cache.get(&short(key))?;
        (slot.holds_key(key) && slot.is_published() && slot.is_stale())
            .then(|| Arc::clone(slot.entry()))
    }

    /// Indexes then inserts `entry` unpublished under its key, replacing any entry held under
    /// that key (or under another key of the same [`Short`] form). An entry another insert
    /// already claimed is inserted as a copy, so each slot's state is its own.
    ///
    /// The index entries go in before the cache entry so that a purge which can see the entry
    /// can also find it. Before the insert, the entries its route's bound or its tenant's
    /// share name are evicted (see `shares`), so that quick_cache has to choose only when no
    /// limit does.
    pub(crate) fn insert(&self, mut entry: Arc<CachedResponse>, until: UnixMillis) -> Insert {
        if !entry.slot.claim() {
            entry = Arc::new(CachedResponse::clone(&entry));
            entry.slot.claim();
        }
        let key = short(&entry.key);
        let weight = entry.weight();
        let over_route = self
            .books
            .route_limit(entry.route as usize)
            .is_some_and(|limit| weight > limit);
        if weight > self.max_entry_weight || over_route {
            return Insert::TooLarge;
        }
        self.index.add(key, &entry);
        let slot = Slot { entry, until };
        // Weighed once here: the weight is computed from the entry, not kept.
        let charge = slot.charged(weight);
        self.make_room(charge);
        self.books.count_in(charge);
        let mut left: Vec<(Short, Slot)> = Vec::new();
        self.cache
            .insert_with_lifecycle(key, slot.clone(), &mut left);
        // The shard lock is released: settle the index and the books for everything that left
        // the cache.
        let mut refused = false;
        for (gone_key, gone) in &left {
            self.index.remove(gone_key, gone.entry());
            if gone.is(&slot.entry) {
                refused = true;
            } else if *gone_key != key {
                // A value leaving under the inserted key was replaced, not evicted.
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count_out_released(left);
        if !refused {
            self.books.enqueue(charge, &slot.entry);
        }
        if refused {
            Insert::TooLarge
        } else {
            Insert::Stored(Pending(slot))
        }
    }

    /// Evicts, oldest first, the entries the books name before an insert charged `charge`:
    /// its route's while the route would exceed its bound, then, while the tier would be
    /// over full, its tenant's if it would hold more than its share, else the entries of the
    /// tenant furthest over its share.
    fn make_room(&self, charge: Charge<'_>) {
        for _ in 0..MAX_VICTIMS {
            let Some((victim, reason)) = self.books.victim(charge) else {
                return;
            };
            // An entry that has left the cache (or been replaced) meanwhile is skipped: what
            // removed it has counted it out.
            let Some((gone_key, gone)) =
                self.cache.remove_if(&short(&victim.key), |h| h.is(&victim))
            else {
                continue;
            };
            self.index.remove(&gone_key, gone.entry());
            self.books.count_out([gone.charge()]);
            self.evictions.fetch_add(1, Ordering::Relaxed);
            let counter = match reason {
                Reason::Route => &self.route_evictions,
                Reason::Share => &self.share_evictions,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts out a batch of entries that have left the cache, releasing them first: the books
    /// trim a queue by dropping the references whose entry is gone, and a batch still held
    /// here would keep its references alive through every trim while it is counted out.
    fn count_out_released(&self, gone: Vec<(Short, Slot)>) {
        let charges: Vec<(TenantScope, usize, u64)> = gone
            .iter()
            .map(|(_, slot)| {
                (
                    slot.entry.tenant.clone(),
                    slot.entry.route as usize,
                    slot.entry.weight(),
                )
            })
            .collect();
        drop(gone);
        self.books
            .count_out(charges.iter().map(|(tenant, route, weight)| Charge {
                tenant,
                route: *route,
                weight: *weight,
            }));
    }

    /// Makes an inserted entry servable.
    pub(crate) fn publish(&self, pending: &Pending) {
        let Pending(slot) = pending;
        slot.entry.slot.publish();
    }

    /// Takes an inserted entry out again, unless another entry has replaced it under `key`;
    /// true when it was removed.
    pub(crate) fn withdraw(&self, pending: &Pending) -> bool {
        self.remove_slot(&pending.0)
    }

    /// Removes whatever entry is held under `key` (with its index entries); true when one was.
    pub(crate) fn remove(&self, key: &Key) -> bool {
        match self.cache.peek(&short(key)) {
            Some(slot) if slot.holds_key(key) => self.remove_slot(&slot),
            _ => false,
        }
    }

    /// Removes the entry under its key only if it is `slot` itself, so a newer entry stays.
    fn remove_slot(&self, slot: &Slot) -> bool {
        match self
            .cache
            .remove_if(&short(&slot.entry.key), |held| held.is(&slot.entry))
        {
            Some((gone_key, slot)) => {
                self.index.remove(&gone_key, slot.entry());
                self.books.count_out([slot.charge()]);
                true
            }
            None => false,
        }
    }

    /// Removes (or with `soft`, marks stale) every entry carrying `tag` within `scope`;
    /// returns how many were removed or newly marked.
    pub(crate) fn purge_tag(&self, scope: &PurgeScope, tag: &Tag, soft: bool) -> usize {
        let keys = self.index.keys(scope, tag);
        self.purge_keys(keys, |entry| entry.carries(scope, tag), soft)
    }

    /// Like [`MemoryTier::purge_tag`] for the path tag `path_tag`, but only for the entries
    /// filled from exactly `uri` (their `target`).
    pub(crate) fn purge_uri(
        &self,
        scope: &PurgeScope,
        path_tag: &Tag,
        uri: &str,
        soft: bool,
    ) -> usize {
        let keys = self.index.keys(scope, path_tag);
        self.purge_keys(
            keys,
            |entry| entry.target() == uri && entry.carries(scope, path_tag),
            soft,
        )
    }

    /// Removes (or marks stale) the entries under `keys` for which `matches` holds.
    ///
    /// The index may name a key whose current entry no longer matches (it was replaced); such
    /// an entry is left alone. Removal re-checks `matches` under the shard lock so that an
    /// entry replaced meanwhile is never taken out by mistake.
    fn purge_keys(
        &self,
        keys: Vec<Short>,
        matches: impl Fn(&CachedResponse) -> bool,
        soft: bool,
    ) -> usize {
        let mut count = 0;
        for key in keys {
            if soft {
                // Marking needs no lock: a slot that leaves the cache right after is simply
                // marked in vain, and one that replaced it is a fill the fence already judged.
                if let Some(slot) = self.cache.peek(&key) {
                    if matches(slot.entry()) && slot.mark_stale() {
                        count += 1;
                    }
                }
            } else if let Some((gone_key, slot)) =
                self.cache.remove_if(&key, |slot| matches(slot.entry()))
            {
                self.index.remove(&gone_key, slot.entry());
                self.books.count_out([slot.charge()]);
                count += 1;
            }
        }
        self.count_purged(count, soft);
        count
    }

    /// Removes (or marks stale) every entry of every tenant; returns how many.
    ///
    /// This walks the cache rather than the index so that it also reaches entries without
    /// the whole-tenant tag. Entries inserted while it runs may or may not be reached; those
    /// that began their fill before the purge are fenced by it anyway (through the
    /// whole-tenant tag, which every fill carries).
    pub(crate) fn purge_everything(&self, soft: bool) -> usize {
        let mut count = 0;
        if soft {
            for (_, slot) in self.cache.iter() {
                if slot.mark_stale() {
                    count += 1;
                }
            }
        } else {
            let gone: Vec<(Short, Slot)> = self.cache.drain().collect();
            for (gone_key, slot) in &gone {
                self.index.remove(gone_key, slot.entry());
            }
            count = gone.len();
            self.count_out_released(gone);
        }
        self.count_purged(count, soft);
        count
    }

    /// Drops every entry without counting a purge: the tier can no longer vouch for what it
    /// holds (a shared tier's invalidations may have been missed). Returns how many.
    pub(crate) fn flush(&self) -> usize {
        let gone: Vec<(Short, Slot)> = self.cache.drain().collect();
        for (gone_key, slot) in &gone {
            self.index.remove(gone_key, slot.entry());
        }
        let count = gone.len();
        self.count_out_released(gone);
        count
    }

    fn count_purged(&self, count: usize, soft: bool) {
        let counter = if soft {
            &self.soft_purged
        } else {
            &self.purged
        };
        counter.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// The published entry under `key` with its listing details, without touching hotness.
    pub(crate) fn listed(&self, key: &Key) -> Option<Listed> {
        self.cache
            .peek(&short(key))
            .filter(|slot| slot.holds_key(key) && slot.is_published())
            .map(|slot| listed(&slot))
    }

    /// The published entry held under the [`Short`] form of a key (which the index names),
    /// whatever its whole key.
    pub(crate) fn listed_short(&self, key: Short) -> Option<Listed> {
        self.cache
            .peek(&key)
            .filter(Slot::is_published)
            .map(|slot| listed(&slot))
    }

    /// Up to `limit` published entries in the cache's own order.
    pub(crate) fn list_any(&self, limit: usize) -> Vec<Listed> {
        self.cache
            .iter()
            .filter(|(_, slot)| slot.is_published())
            .take(limit)
            .map(|(_, slot)| listed(&slot))
            .collect()
    }

    /// The `limit` published entries with the most hits, most first (ties: any order). Walks
    /// every entry, keeping only `limit` of them at a time.
    pub(crate) fn busiest(&self, limit: usize) -> Vec<Listed> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        if limit == 0 {
            return Vec::new();
        }
        // A min-heap of (hits, walk position): the least busy of those kept is the one dropped.
        let mut kept: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::with_capacity(limit + 1);
        let mut slots: Vec<Option<Slot>> = Vec::with_capacity(limit + 1);
        let mut free: Vec<usize> = Vec::new();
        for (_, slot) in self.cache.iter() {
            if !slot.is_published() {
                continue;
            }
            let hits = u64::from(slot.entry.slot.hits());
            if kept.len() == limit {
                match kept.peek() {
                    Some(Reverse((least, _))) if hits > *least => {}
                    _ => continue,
                }
                if let Some(Reverse((_, at))) = kept.pop() {
                    slots[at] = None;
                    free.push(at);
                }
            }
            let at = match free.pop() {
                Some(at) => {
                    slots[at] = Some(slot);
                    at
                }
                None => {
                    slots.push(Some(slot));
                    slots.len() - 1
                }
            };
            kept.push(Reverse((hits, at)));
        }
        // Ascending `Reverse`: the most hits first (as counted during the walk; `listed` reads
        // them again, and they may have grown meanwhile).
        kept.into_sorted_vec()
            .into_iter()
            .filter_map(|Reverse((_, at))| slots[at].take())
            .map(|slot| listed(&slot))
            .collect()
    }

    /// Counts a fill refused or undone by a fence.
    pub(crate) fn count_fenced(&self) {
        self.fenced.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            entries: self.cache.len() as u64,
            bytes: self.cache.weight(),
            evictions: self.evictions.load(Ordering::Relaxed),
            share_evictions: self.share_evictions.load(Ordering::Relaxed),
            route_evictions: self.route_evictions.load(Ordering::Relaxed),
            purged: self.purged.load(Ordering::Relaxed),
            soft_purged: self.soft_purged.load(Ordering::Relaxed),
            fenced: self.fenced.load(Ordering::Relaxed),
            tenants: self.index.tenants() as u64,
        }
    }

    /// Puts a new route table's `max_memory` bounds in force, by route id.
    pub(crate) fn set_route_limits(&self, routes: Vec<Option<u64>>) {
        self.books.set_route_limits(routes);
    }

    /// What each tenant (the `top` holding the most bytes) and each route holds.
    pub(crate) fn usage(&self, top: usize) -> MemoryUsage {
        self.books.usage(top)
    }

    /// Queued references of `tenant`'s entries, live or dead.
    #[cfg(test)]
    pub(crate) fn queued(&self, tenant: &TenantScope) -> usize {
        self.books.queued(tenant)
    }

    pub(crate) fn index(&self) -> &TagIndex {
        &self.index
    }

    /// Whether `key` holds an entry a request could still be served: fresh and not marked
    /// stale, or a fill still checking its fence. Does not touch hotness.
    pub(crate) fn servable(&self, key: &Key, now: UnixMillis) -> bool {
        self.cache.peek(&short(key)).is_some_and(|slot| {
            slot.holds_key(key)
                && !slot.is_stale()
                && (!slot.is_published() || (now < slot.until && now < slot.entry().fresh_until()))
        })
    }

    /// The entry under `key` regardless of freshness, without touching its hotness.
    #[cfg(test)]
    pub(crate) fn peek(&self, key: &Key) -> Option<Arc<CachedResponse>> {
        self.cache
            .peek(&short(key))
            .filter(|slot| slot.holds_key(key))
            .map(|slot| Arc::clone(slot.entry()))
    }

    /// Every key held, for tests that compare the cache with the index.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.cache.iter().map(|(_, slot)| slot.entry.key).collect()
    }
}

fn listed(slot: &Slot) -> Listed {
    Listed {
        entry: Arc::clone(slot.entry()),
        weight: slot.entry.weight(),
        stale: slot.is_stale(),
        hits: u64::from(slot.entry.slot.hits()),
    }
}
