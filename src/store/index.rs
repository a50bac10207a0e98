//! The tag index of the memory tier: tag -> tenant -> keys of the entries carrying that tag.
//!
//! A purge looks its tag up here instead of scanning the cache, so purging (tenant, tag) costs
//! O(entries of that tag) and purging a tag for all tenants costs O(tenants of that tag plus
//! their entries).
//!
//! The index may over-approximate (name a key whose entry no longer carries the tag) but must
//! never miss a stored entry, or a purge would leave stale data servable. Every key is therefore
//! reference-counted: each entry adds one count per tag before it enters the cache and takes it
//! away exactly once, after it has left the cache (evicted, replaced, expired, purged or removed).
//! A plain set would lose a key when an old entry's late cleanup runs after a newer entry under
//! the same key has registered the same tag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::{Key, TagKey, TenantScope};

/// Tenant -> key -> number of live entries under that key that carry the tag.
type TenantKeys = HashMap<Arc<str>, HashMap<Key, u32>>;

#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    by_tag: DashMap<Arc<str>, TenantKeys>,
    /// Tenant buckets and keys looked at by purges, so tests can pin the cost of a purge.
    visits: AtomicU64,
}

impl TagIndex {
    /// Counts one more entry under `key` for each of `tags`. Call before the entry is inserted.
    pub(crate) fn add(&self, key: Key, tags: &[TagKey]) {
        for t in tags {
            let mut tenants = self.by_tag.entry(Arc::clone(&t.tag)).or_default();
            let keys = tenants.entry(Arc::clone(&t.tenant)).or_default();
            *keys.entry(key).or_insert(0) += 1;
        }
    }

    /// Takes away the counts added for an entry under `key`. Call once the entry has left the
    /// cache, with the same tags it was added with.
    pub(crate) fn remove(&self, key: &Key, tags: &[TagKey]) {
        for t in tags {
            let tag_empty = {
                let Some(mut tenants) = self.by_tag.get_mut(&*t.tag) else {
                    continue;
                };
                if let Some(keys) = tenants.get_mut(&*t.tenant) {
                    if let Some(count) = keys.get_mut(key) {
                        *count -= 1;
                        if *count == 0 {
                            keys.remove(key);
                        }
                    }
                    if keys.is_empty() {
                        tenants.remove(&*t.tenant);
                    }
                }
                tenants.is_empty()
            };
            // The guard is released above; the emptiness is checked again under the new lock
            // because an entry may have registered the tag in between.
            if tag_empty {
                self.by_tag
                    .remove_if(&*t.tag, |_, tenants| tenants.is_empty());
            }
        }
    }

    /// A snapshot of the keys that may carry `tag` within `scope`.
    ///
    /// The keys are copied out so that no index lock is held while the caller touches the
    /// cache (whose removals update this index).
    pub(crate) fn keys(&self, scope: &TenantScope, tag: &str) -> Vec<Key> {
        let Some(tenants) = self.by_tag.get(tag) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut visits = 0;
        match scope {
            TenantScope::One(tenant) => {
                if let Some(keys) = tenants.get(&**tenant) {
                    visits += 1 + keys.len();
                    out.extend(keys.keys().copied());
                }
            }
            TenantScope::All => {
                for keys in tenants.values() {
                    visits += 1 + keys.len();
                    out.extend(keys.keys().copied());
                }
            }
        }
        self.visits.fetch_add(visits as u64, Ordering::Relaxed);
        out
    }

    /// Whether any entry of `tag.tenant` may carry `tag.tag` (over-approximates like the index).
    pub(crate) fn holds(&self, tag: &TagKey) -> bool {
        self.by_tag
            .get(&*tag.tag)
            .is_some_and(|tenants| tenants.contains_key(&*tag.tenant))
    }

    /// Number of (tag, tenant, key) triples held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_tag
            .iter()
            .map(|tenants| tenants.values().map(HashMap::len).sum::<usize>())
            .sum()
    }

    /// Whether `key` is indexed under `tag`.
    #[cfg(test)]
    pub(crate) fn contains(&self, tag: &TagKey, key: &Key) -> bool {
        self.by_tag.get(&*tag.tag).is_some_and(|tenants| {
            tenants
                .get(&*tag.tenant)
                .is_some_and(|keys| keys.contains_key(key))
        })
    }

    /// Tenant buckets and keys looked at by purges since start.
    #[cfg(test)]
    pub(crate) fn visits(&self) -> u64 {
        self.visits.load(Ordering::Relaxed)
    }
}
