//! The indexes of the memory tier: tag -> tenant -> keys of the entries carrying that tag, and
//! tenant -> ordered path tags, which prefix purges walk.
//!
//! A purge looks its tag up here instead of scanning the cache, so purging (tenant, tag) costs
//! O(entries of that tag) and purging a tag for all tenants costs O(tenants of that tag plus
//! their entries). A prefix purge finds the paths under its prefix in the ordered path index,
//! in O(log paths + matched paths) per tenant, and then purges their path tags.
//!
//! The index may over-approximate (name a key whose entry no longer carries the tag) but must
//! never miss a stored entry, or a purge would leave stale data servable. Every key is therefore
//! reference-counted: each entry adds one count per tag before it enters the cache and takes it
//! away exactly once, after it has left the cache (evicted, replaced, expired, purged or removed).
//! A plain set would lose a key when an old entry's late cleanup runs after a newer entry under
//! the same key has registered the same tag. The path index counts entries per (tenant, path
//! tag) the same way and is updated in the same calls, so the two never disagree for long.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::{Key, PurgeScope, Tag, TagKey, TenantScope};

/// Tenant -> key -> number of live entries under that key that carry the tag.
///
/// Most tags are carried by the entries of one tenant, and many (a path, a detail's own tag)
/// by one entry: those are kept inline, since a table of their own would cost an entry
/// several hundred bytes of bookkeeping (issue 12).
#[derive(Debug)]
enum TenantKeys {
    One(TenantScope, Keys),
    Many(HashMap<TenantScope, Keys>),
}

/// Key -> number of live entries under that key that carry one (tag, tenant).
#[derive(Debug)]
enum Keys {
    /// One key (a count of zero: none).
    One(Key, u32),
    Many(HashMap<Key, u32>),
}

/// Path (of a [`Tag::Path`]) -> number of live entries carrying its tag, in path order.
///
/// The map key shares the allocation of the entries' own path tags.
type PathTags = BTreeMap<Arc<str>, u32>;

#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    by_tag: DashMap<Tag, TenantKeys>,
    /// Tenant -> the paths of the path tags its entries carry.
    paths: DashMap<TenantScope, PathTags>,
    /// Tenant buckets, paths and keys looked at by purges and listings, so tests can pin the
    /// cost of a purge.
    visits: AtomicU64,
}

impl TagIndex {
    /// Counts one more entry under `key` for each of `tags`. Call before the entry is inserted.
    pub(crate) fn add(&self, key: Key, tags: &[TagKey]) {
        for t in tags {
            // Each guard is dropped before the next map is locked, so no two index locks are
            // ever held at once and the two maps cannot deadlock against each other.
            self.by_tag
                .entry(t.tag.clone())
                .and_modify(|tenants| tenants.add(&t.tenant, key))
                .or_insert_with(|| TenantKeys::One(t.tenant.clone(), Keys::One(key, 1)));
            if let Tag::Path(path) = &t.tag {
                let mut paths = self.paths.entry(t.tenant.clone()).or_default();
                *paths.entry(Arc::clone(path)).or_insert(0) += 1;
            }
        }
    }

    /// Takes away the counts added for an entry under `key`. Call once the entry has left the
    /// cache, with the same tags it was added with.
    pub(crate) fn remove(&self, key: &Key, tags: &[TagKey]) {
        for t in tags {
            let tag_empty = {
                let Some(mut tenants) = self.by_tag.get_mut(&t.tag) else {
                    continue;
                };
                tenants.remove(&t.tenant, key);
                tenants.is_empty()
            };
            // The guard is released above; the emptiness is checked again under the new lock
            // because an entry may have registered the tag in between.
            if tag_empty {
                self.by_tag
                    .remove_if(&t.tag, |_, tenants| tenants.is_empty());
            }
            if let Tag::Path(path) = &t.tag {
                self.remove_path(&t.tenant, path);
            }
        }
    }

    /// Takes one count away from `path` in `tenant`'s path index.
    fn remove_path(&self, tenant: &TenantScope, path: &str) {
        let tenant_empty = {
            let Some(mut paths) = self.paths.get_mut(tenant) else {
                return;
            };
            if let Some(count) = paths.get_mut(path) {
                *count -= 1;
                if *count == 0 {
                    paths.remove(path);
                }
            }
            paths.is_empty()
        };
        // Checked again under the new lock, as for the tag index above.
        if tenant_empty {
            self.paths.remove_if(tenant, |_, paths| paths.is_empty());
        }
    }

    /// A snapshot of the (tenant, path) pairs within `scope` whose path starts with `prefix`.
    ///
    /// The walk starts at the first path not below the prefix and stops at the first one that
    /// does not start with it, so it only looks at what it returns plus one path per tenant.
    pub(crate) fn paths(&self, scope: &PurgeScope, prefix: &str) -> Vec<(TenantScope, Arc<str>)> {
        let mut out = Vec::new();
        let mut visits = 0;
        let mut walk = |tenant: &TenantScope, paths: &PathTags| {
            visits += 1;
            let from = (Bound::Included(prefix), Bound::Unbounded);
            for path in paths
                .range::<str, _>(from)
                .map(|(path, _)| path)
                .take_while(|path| path.starts_with(prefix))
            {
                visits += 1;
                out.push((tenant.clone(), Arc::clone(path)));
            }
        };
        match scope {
            PurgeScope::Only(tenant) => {
                if let Some(paths) = self.paths.get(tenant) {
                    walk(tenant, &paths);
                }
            }
            PurgeScope::All => {
                for bucket in &self.paths {
                    walk(bucket.key(), bucket.value());
                }
            }
        }
        self.visits.fetch_add(visits as u64, Ordering::Relaxed);
        out
    }

    /// Number of tenants with at least one entry carrying a path tag.
    pub(crate) fn tenants(&self) -> usize {
        self.paths.len()
    }

    /// A snapshot of the keys that may carry `tag` within `scope`.
    ///
    /// The keys are copied out so that no index lock is held while the caller touches the
    /// cache (whose removals update this index).
    pub(crate) fn keys(&self, scope: &PurgeScope, tag: &Tag) -> Vec<Key> {
        let Some(tenants) = self.by_tag.get(tag) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut visits = 0;
        let mut take = |keys: &Keys| {
            visits += 1 + keys.len();
            keys.extend_into(&mut out);
        };
        match scope {
            PurgeScope::Only(tenant) => {
                if let Some(keys) = tenants.get(tenant) {
                    take(keys);
                }
            }
            PurgeScope::All => tenants.for_each(|_, keys| take(keys)),
        }
        self.visits.fetch_add(visits as u64, Ordering::Relaxed);
        out
    }

    /// Whether any entry of `tag.tenant` may carry `tag.tag` (over-approximates like the index).
    pub(crate) fn holds(&self, tag: &TagKey) -> bool {
        self.by_tag
            .get(&tag.tag)
            .is_some_and(|tenants| tenants.get(&tag.tenant).is_some())
    }

    /// Number of (tag, tenant, key) triples held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_tag
            .iter()
            .map(|tenants| {
                let mut n = 0;
                tenants.for_each(|_, keys| n += keys.len());
                n
            })
            .sum()
    }

    /// Whether `key` is indexed under `tag`.
    #[cfg(test)]
    pub(crate) fn contains(&self, tag: &TagKey, key: &Key) -> bool {
        self.by_tag.get(&tag.tag).is_some_and(|tenants| {
            tenants
                .get(&tag.tenant)
                .is_some_and(|keys| keys.contains(key))
        })
    }

    /// Every (tenant, path) pair of the path index with its count.
    #[cfg(test)]
    pub(crate) fn path_counts(&self) -> HashMap<(TenantScope, Arc<str>), u32> {
        self.paths
            .iter()
            .flat_map(|bucket| {
                let tenant = bucket.key().clone();
                bucket
                    .value()
                    .iter()
                    .map(|(path, &n)| ((tenant.clone(), Arc::clone(path)), n))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Tenant buckets, paths and keys looked at since start.
    #[cfg(test)]
    pub(crate) fn visits(&self) -> u64 {
        self.visits.load(Ordering::Relaxed)
    }
}

// === impl TenantKeys ===

impl TenantKeys {
    /// Counts one more entry under `key` for `tenant`.
    fn add(&mut self, tenant: &TenantScope, key: Key) {
        match self {
            TenantKeys::One(held, keys) if held == tenant => keys.add(key),
            // An emptied bucket waiting for its removal is taken over.
            TenantKeys::One(_, keys) if keys.is_empty() => {
                *self = TenantKeys::One(tenant.clone(), Keys::One(key, 1));
            }
            TenantKeys::One(held, keys) => {
                let mut map = HashMap::with_capacity(2);
                map.insert(held.clone(), std::mem::replace(keys, Keys::One(key, 0)));
                map.insert(tenant.clone(), Keys::One(key, 1));
                *self = TenantKeys::Many(map);
            }
            TenantKeys::Many(map) => match map.get_mut(tenant) {
                Some(keys) => keys.add(key),
                None => {
                    map.insert(tenant.clone(), Keys::One(key, 1));
                }
            },
        }
    }

    /// Takes one count away from `key` under `tenant`.
    fn remove(&mut self, tenant: &TenantScope, key: &Key) {
        match self {
            TenantKeys::One(held, keys) => {
                if held == tenant {
                    keys.remove(key);
                }
            }
            TenantKeys::Many(map) => {
                if let Some(keys) = map.get_mut(tenant) {
                    keys.remove(key);
                    if keys.is_empty() {
                        map.remove(tenant);
                    }
                }
                if map.len() == 1 {
                    let last = map.drain().next();
                    if let Some((held, keys)) = last {
                        *self = TenantKeys::One(held, keys);
                    }
                }
            }
        }
    }

    /// The keys of `tenant`, if it has any.
    fn get(&self, tenant: &TenantScope) -> Option<&Keys> {
        match self {
            TenantKeys::One(held, keys) => (held == tenant && !keys.is_empty()).then_some(keys),
            TenantKeys::Many(map) => map.get(tenant),
        }
    }

    fn for_each(&self, mut f: impl FnMut(&TenantScope, &Keys)) {
        match self {
            TenantKeys::One(held, keys) => {
                if !keys.is_empty() {
                    f(held, keys);
                }
            }
            TenantKeys::Many(map) => map.iter().for_each(|(tenant, keys)| f(tenant, keys)),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            TenantKeys::One(_, keys) => keys.is_empty(),
            TenantKeys::Many(map) => map.is_empty(),
        }
    }
}

// === impl Keys ===

impl Keys {
    fn add(&mut self, key: Key) {
        match self {
            Keys::One(held, count) if *held == key || *count == 0 => {
                *held = key;
                *count += 1;
            }
            Keys::One(held, count) => {
                let mut map = HashMap::with_capacity(2);
                map.insert(*held, *count);
                map.insert(key, 1);
                *self = Keys::Many(map);
            }
            Keys::Many(map) => *map.entry(key).or_insert(0) += 1,
        }
    }

    fn remove(&mut self, key: &Key) {
        match self {
            Keys::One(held, count) => {
                if held == key {
                    *count = count.saturating_sub(1);
                }
            }
            Keys::Many(map) => {
                if let Some(count) = map.get_mut(key) {
                    *count -= 1;
                    if *count == 0 {
                        map.remove(key);
                    }
                }
                // Back inline, so a tag's bookkeeping shrinks with its entries.
                if map.len() == 1 {
                    let last = map.drain().next();
                    if let Some((held, count)) = last {
                        *self = Keys::One(held, count);
                    }
                }
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Keys::One(_, count) => usize::from(*count > 0),
            Keys::Many(map) => map.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn extend_into(&self, out: &mut Vec<Key>) {
        match self {
            Keys::One(key, count) => {
                if *count > 0 {
                    out.push(*key);
                }
            }
            Keys::Many(map) => out.extend(map.keys().copied()),
        }
    }

    #[cfg(test)]
    fn contains(&self, key: &Key) -> bool {
        match self {
            Keys::One(held, count) => *count > 0 && held == key,
            Keys::Many(map) => map.contains_key(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    fn tag(tenant: &str, tag: &str) -> TagKey {
        TagKey::new(TenantScope::one(tenant), Tag::parse(tag))
    }

    /// Inline buckets (issue 12) grow into tables and shrink back without losing a count.
    #[test]
    fn inline_buckets_keep_every_count() {
        let index = TagIndex::default();
        let (a, b) = (tag("a", "x"), tag("b", "x"));
        index.add(key(1), std::slice::from_ref(&a));
        index.add(key(1), std::slice::from_ref(&a)); // a replaced entry's late cleanup pending
        index.add(key(2), std::slice::from_ref(&a));
        index.add(key(3), std::slice::from_ref(&b));
        assert_eq!(index.len(), 3);
        let all = |t: &Tag| {
            let mut keys = index.keys(&PurgeScope::All, t);
            keys.sort_by_key(|k| k.0);
            keys
        };
        assert_eq!(all(&a.tag), vec![key(1), key(2), key(3)]);
        index.remove(&key(2), std::slice::from_ref(&a));
        index.remove(&key(3), std::slice::from_ref(&b));
        assert!(!index.holds(&b));
        index.remove(&key(1), std::slice::from_ref(&a));
        assert!(index.contains(&a, &key(1)), "one of two counts is left");
        index.remove(&key(1), std::slice::from_ref(&a));
        assert_eq!(index.len(), 0);
        assert!(!index.holds(&a));
        // An emptied tag is gone; the next tenant starts it anew.
        index.add(key(4), std::slice::from_ref(&b));
        assert_eq!(all(&b.tag), vec![key(4)]);
        assert!(!index.holds(&a));
    }
}
