//! The in-memory tier: a byte-bounded quick_cache plus the tag index that purges go through.
//!
//! quick_cache has no per-entry TTL, so freshness is checked on every get and an expired entry
//! is removed then. Entries pushed out by byte pressure (or replaced under the same key) are
//! collected by a custom lifecycle while the shard lock is held and handed to the tag index
//! after it is released, so the index never waits on the cache and the cache never waits on it.
//!
//! An inserted entry is not served until it is published: a fill publishes only after its
//! fence check passed, so an entry that a purge fenced is never visible, not even briefly
//! between its insert and its removal.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};
use tokio::time::Instant;

use super::index::TagIndex;
use super::{CachedResponse, Key, MemoryOptions, StoreStats, TenantScope};

/// quick_cache's share of a shard kept for its main ("hot") queue; an entry heavier than this
/// share of one shard is never admitted.
const HOT_ALLOCATION: f64 = 0.97;

/// Shards are kept at least this large so that the largest admissible entry stays close to
/// the shard size rather than shrinking with the number of cores.
const MIN_SHARD_BYTES: u64 = 8 * 1024 * 1024;

/// The typical entry size assumed when estimating how many entries fit (it sizes the tables
/// and the ghost queue that remembers recently evicted keys).
const TYPICAL_ENTRY_BYTES: u64 = 4 * 1024;

/// What the cache holds; cloning it (on every get) costs one reference count.
#[derive(Clone)]
struct Slot(Arc<SlotInner>);

struct SlotInner {
    entry: Arc<CachedResponse>,
    /// Computed once at insert so the weighter is a plain load.
    weight: u64,
    /// Set once the fill that inserted the entry has passed its fence check.
    published: AtomicBool,
}

impl Slot {
    fn entry(&self) -> &Arc<CachedResponse> {
        &self.0.entry
    }

    fn is(&self, other: &Slot) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct SlotWeighter;

impl Weighter<Key, Slot> for SlotWeighter {
    fn weight(&self, _key: &Key, slot: &Slot) -> u64 {
        slot.0.weight
    }
}

/// Collects every value that leaves the cache during an insert (evicted, replaced or refused)
/// so the caller can clean the tag index once the shard lock is released.
#[derive(Clone, Copy, Debug, Default)]
struct CollectEvicted;

impl Lifecycle<Key, Slot> for CollectEvicted {
    type RequestState = Vec<(Key, Slot)>;

    fn on_evict(&self, state: &mut Self::RequestState, key: Key, slot: Slot) {
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
    cache: Cache<Key, Slot, SlotWeighter, DefaultHashBuilder, CollectEvicted>,
    index: TagIndex,
    max_entry_weight: u64,
    evictions: AtomicU64,
    purged: AtomicU64,
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
        Self {
            cache,
            index: TagIndex::default(),
            max_entry_weight,
            evictions: AtomicU64::new(0),
            purged: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
        }
    }

    /// The largest entry weight this tier admits.
    pub(crate) fn max_entry_weight(&self) -> u64 {
        self.max_entry_weight
    }

    /// A fresh, published entry under `key`; an expired one is removed (with its index
    /// entries). An entry whose fill is still checking its fence counts as a miss.
    pub(crate) fn get(&self, key: &Key, now: Instant) -> Option<Arc<CachedResponse>> {
        let slot = self.cache.get(key)?;
        if !slot.0.published.load(Ordering::Acquire) {
            return None;
        }
        if slot.entry().is_fresh(now) {
            return Some(Arc::clone(slot.entry()));
        }
        // Only this expired entry goes: a fresh one stored meanwhile under the key stays.
        self.remove_slot(key, &slot);
        None
    }

    /// Indexes then inserts `entry` unpublished, replacing any entry under `key`.
    ///
    /// The index entries go in before the cache entry so that a purge which can see the entry
    /// can also find it.
    pub(crate) fn insert(&self, key: Key, entry: Arc<CachedResponse>) -> Insert {
        let weight = entry.weight();
        if weight > self.max_entry_weight {
            return Insert::TooLarge;
        }
        self.index.add(key, &entry.tags);
        let slot = Slot(Arc::new(SlotInner {
            entry,
            weight,
            published: AtomicBool::new(false),
        }));
        let mut left: Vec<(Key, Slot)> = Vec::new();
        self.cache
            .insert_with_lifecycle(key, slot.clone(), &mut left);
        // The shard lock is released: settle the index for everything that left the cache.
        let mut refused = false;
        for (gone_key, gone) in left {
            self.index.remove(&gone_key, &gone.entry().tags);
            if gone.is(&slot) {
                refused = true;
            } else if gone_key != key {
                // A value leaving under the inserted key was replaced, not evicted.
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        if refused {
            Insert::TooLarge
        } else {
            Insert::Stored(Pending(slot))
        }
    }

    /// Makes an inserted entry servable.
    pub(crate) fn publish(&self, pending: &Pending) {
        let Pending(slot) = pending;
        slot.0.published.store(true, Ordering::Release);
    }

    /// Takes an inserted entry out again, unless another entry has replaced it under `key`;
    /// true when it was removed.
    pub(crate) fn withdraw(&self, key: &Key, pending: &Pending) -> bool {
        self.remove_slot(key, &pending.0)
    }

    /// Removes the entry under `key` only if it is `slot` itself, so a newer entry stays.
    fn remove_slot(&self, key: &Key, slot: &Slot) -> bool {
        match self.cache.remove_if(key, |held| held.is(slot)) {
            Some((gone_key, slot)) => {
                self.index.remove(&gone_key, &slot.entry().tags);
                true
            }
            None => false,
        }
    }

    /// Removes every entry carrying `tag` within `scope`; returns how many were removed.
    pub(crate) fn purge_tag(&self, scope: &TenantScope, tag: &str) -> usize {
        let mut removed = 0;
        for key in self.index.keys(scope, tag) {
            // The index may name a key whose current entry no longer carries the tag; such an
            // entry is left alone.
            let carries = |slot: &Slot| {
                slot.entry().tags.iter().any(|t| {
                    &*t.tag == tag
                        && match scope {
                            TenantScope::All => true,
                            TenantScope::One(tenant) => t.tenant == *tenant,
                        }
                })
            };
            if let Some((gone_key, slot)) = self.cache.remove_if(&key, carries) {
                self.index.remove(&gone_key, &slot.entry().tags);
                removed += 1;
            }
        }
        self.purged.fetch_add(removed as u64, Ordering::Relaxed);
        removed
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
            purged: self.purged.load(Ordering::Relaxed),
            fenced: self.fenced.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn index(&self) -> &TagIndex {
        &self.index
    }

    /// The entry under `key` regardless of freshness, without touching its hotness.
    #[cfg(test)]
    pub(crate) fn peek(&self, key: &Key) -> Option<Arc<CachedResponse>> {
        self.cache.peek(key).map(|slot| Arc::clone(slot.entry()))
    }

    /// Every key held, for tests that compare the cache with the index.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.cache.iter().map(|(k, _)| k).collect()
    }
}
