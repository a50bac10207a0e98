//! The indexes of the memory tier: tenant -> ordered paths -> keys of the entries filled from
//! each path, which whole-tenant, path and prefix purges go through, and tag -> tenant -> keys
//! for the other tags (a route's, a user's).
//!
//! A purge looks its tag up here instead of scanning the cache, so purging (tenant, tag) costs
//! O(entries of that tag), a whole tenant O(its entries), and a tag for all tenants O(tenants of
//! that tag plus their entries). A prefix purge finds the paths under its prefix in the ordered
//! path index, in O(log paths + matched paths) per tenant, and then purges them.
//!
//! The index may over-approximate (name a key whose entry no longer carries the tag) but must
//! never miss a stored entry, or a purge would leave stale data servable. Every key is therefore
//! reference-counted: each entry adds one count per tag (and one under its path) before it
//! enters the cache and takes it away exactly once, after it has left the cache (evicted,
//! replaced, expired, purged or removed). A plain set would lose a key when an old entry's late
//! cleanup runs after a newer entry under the same key has registered the same tag.

use std::borrow::Borrow;
use std::cmp::Ordering as Order;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::{CachedResponse, EntryText, Key, PurgeScope, Tag, TagKey, TenantScope};

/// What the memory tier's cache is keyed by: the first eight bytes of a key's digest. Two keys
/// that share them cannot both be held (the later replaces the earlier), and every lookup
/// compares the whole key of the entry it finds, so a shared prefix costs a miss, never a
/// wrong answer.
pub(crate) type Short = u64;

/// The [`Short`] form of `key`.
pub(crate) fn short(key: &Key) -> Short {
    let mut first = [0u8; 8];
    first.copy_from_slice(&key.0[..8]);
    u64::from_le_bytes(first)
}

/// Tenant -> key -> number of live entries under that key that carry the tag.
///
/// Most tags are carried by the entries of one tenant, and many (a detail's own tag) by one
/// entry: those are kept inline, since a table of their own would cost an entry several
/// hundred bytes of bookkeeping (issue 12).
#[derive(Debug)]
enum TenantKeys {
    One(TenantScope, Keys),
    // Boxed on purpose: the enum stays small for the common inline case (see `Keys`).
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<TenantScope, Keys>>),
}

/// Key -> number of live entries under that key that carry one (tag, tenant).
///
/// The table is boxed: most tags of a tenant have one key, and a table inline would make every
/// bucket three times its size.
#[derive(Debug)]
enum Keys {
    /// One key (a count of zero: none).
    One(Short, u32),
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Short, u32>>),
}

/// A path in the path index: the path of the entry that first brought it, whose text
/// ([`EntryText`]) it shares rather than copies. It may outlive that entry while other
/// entries of the path are held (a few bytes, until the path's last entry leaves).
#[derive(Debug)]
struct PathKey(EntryText);

impl PathKey {
    fn path(&self) -> &str {
        self.0.path()
    }
}

impl Borrow<str> for PathKey {
    fn borrow(&self) -> &str {
        self.path()
    }
}

impl PartialEq for PathKey {
    fn eq(&self, other: &Self) -> bool {
        self.path() == other.path()
    }
}

impl Eq for PathKey {}

impl PartialOrd for PathKey {
    fn partial_cmp(&self, other: &Self) -> Option<Order> {
        Some(self.cmp(other))
    }
}

impl Ord for PathKey {
    fn cmp(&self, other: &Self) -> Order {
        self.path().cmp(other.path())
    }
}

impl std::hash::Hash for PathKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As its `Borrow<str>` form hashes.
        self.path().hash(state);
    }
}

/// In [`TenantPaths::one`]: the path's keys are in [`TenantPaths::many`].
const IN_MANY: Short = Short::MAX;

/// One tenant's paths, in path order, with the keys of the entries filled from each (their
/// query and `Vary` variants).
///
/// A path is usually held by one entry: its key is then the path's value in the ordered map,
/// eight bytes beside the path (a map of key tables there cost about 17 bytes more per entry,
/// issue 12). A path with several keys (or one key counted twice, while a replaced entry's
/// cleanup is pending) is marked [`IN_MANY`] there and has its table in `many`; it goes back
/// to `one` when a single key counted once is left.
#[derive(Debug, Default)]
struct TenantPaths {
    one: BTreeMap<PathKey, Short>,
    many: HashMap<PathKey, HashMap<Short, u32>>,
}

impl TenantPaths {
    /// Counts one more entry of `text`'s path under `key`.
    fn add(&mut self, text: &EntryText, key: Short) {
        let path = text.path();
        if let Some(keys) = self.many.get_mut(path) {
            *keys.entry(key).or_insert(0) += 1;
            return;
        }
        match self.one.get_mut(path) {
            None if key != IN_MANY => {
                self.one.insert(PathKey(text.clone()), key);
            }
            None => {
                self.one.insert(PathKey(text.clone()), IN_MANY);
                self.many
                    .insert(PathKey(text.clone()), HashMap::from([(key, 1)]));
            }
            Some(held) => {
                let mut keys = HashMap::with_capacity(2);
                keys.insert(*held, 1);
                *keys.entry(key).or_insert(0) += 1;
                *held = IN_MANY;
                self.many.insert(PathKey(text.clone()), keys);
            }
        }
    }

    /// Takes one count of `key` away from `path`, and the path once it has no key left.
    fn remove(&mut self, path: &str, key: &Short) {
        let Some(keys) = self.many.get_mut(path) else {
            if self.one.get(path) == Some(key) {
                self.one.remove(path);
            }
            return;
        };
        if let Some(count) = keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                keys.remove(key);
            }
        }
        let last = match keys.len() {
            0 => None,
            1 => match keys.iter().next() {
                Some((&last, &1)) if last != IN_MANY => Some(last),
                _ => return,
            },
            _ => return,
        };
        self.many.remove(path);
        match last {
            Some(last) => {
                if let Some(held) = self.one.get_mut(path) {
                    *held = last;
                }
            }
            None => {
                self.one.remove(path);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.one.is_empty()
    }

    fn contains_path(&self, path: &str) -> bool {
        self.one.contains_key(path)
    }

    /// Appends the keys of `path` to `out`; returns how many.
    fn keys_of(&self, path: &str, out: &mut Vec<Short>) -> usize {
        if let Some(keys) = self.many.get(path) {
            out.extend(keys.keys().copied());
            return keys.len();
        }
        match self.one.get(path) {
            Some(&key) => {
                out.push(key);
                1
            }
            None => 0,
        }
    }

    /// Appends the keys of every path to `out`; returns how many paths and keys were looked
    /// at.
    fn all_keys(&self, out: &mut Vec<Short>) -> usize {
        let before = out.len();
        out.extend(self.one.values().copied().filter(|key| *key != IN_MANY));
        for keys in self.many.values() {
            out.extend(keys.keys().copied());
        }
        self.one.len() + (out.len() - before)
    }

    /// The paths from the first not below `prefix` on, in order.
    fn paths_from<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.one
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(path, _)| path.path())
    }

    /// Every path with its keys and their counts.
    #[cfg(test)]
    fn each(&self) -> impl Iterator<Item = (&str, Vec<(Short, u32)>)> + '_ {
        self.one.iter().map(|(path, &key)| {
            let keys = match self.many.get(path.path()) {
                Some(keys) => keys.iter().map(|(k, n)| (*k, *n)).collect(),
                None => vec![(key, 1)],
            };
            (path.path(), keys)
        })
    }
}

/// The memory tier's indexes.
///
/// Every entry carries the whole-tenant tag and its path tag (see [`CachedResponse::tags`]);
/// both are answered from the per-tenant path index, which holds each entry once. The other
/// tags (a route's, a user's) are in the tag index.
#[derive(Debug, Default)]
pub(crate) struct TagIndex {
    by_tag: DashMap<Tag, TenantKeys>,
    /// Tenant -> the paths its entries were filled from, with their keys.
    paths: DashMap<TenantScope, TenantPaths>,
    /// Tenant buckets, paths and keys looked at by purges and listings, so tests can pin the
    /// cost of a purge.
    visits: AtomicU64,
}

impl TagIndex {
    /// Counts one more entry under `key` for each tag `entry` carries. Call before the entry
    /// is inserted.
    pub(crate) fn add(&self, key: Short, entry: &CachedResponse) {
        // Each guard is dropped before the next map is locked, so no two index locks are
        // ever held at once and the two maps cannot deadlock against each other.
        for tag in entry.extra_tags.iter() {
            self.by_tag
                .entry(tag.clone())
                .and_modify(|tenants| tenants.add(&entry.tenant, key))
                .or_insert_with(|| TenantKeys::One(entry.tenant.clone(), Keys::One(key, 1)));
        }
        let mut paths = self.paths.entry(entry.tenant.clone()).or_default();
        paths.add(&entry.text, key);
    }

    /// Takes away the counts added for `entry` under `key`. Call once the entry has left the
    /// cache.
    pub(crate) fn remove(&self, key: &Short, entry: &CachedResponse) {
        for tag in entry.extra_tags.iter() {
            let tag_empty = {
                let Some(mut tenants) = self.by_tag.get_mut(tag) else {
                    continue;
                };
                tenants.remove(&entry.tenant, key);
                tenants.is_empty()
            };
            // The guard is released above; the emptiness is checked again under the new lock
            // because an entry may have registered the tag in between.
            if tag_empty {
                self.by_tag.remove_if(tag, |_, tenants| tenants.is_empty());
            }
        }
        let tenant_empty = {
            let Some(mut paths) = self.paths.get_mut(&entry.tenant) else {
                return;
            };
            paths.remove(entry.path(), key);
            paths.is_empty()
        };
        // Checked again under the new lock, as for the tag index above.
        if tenant_empty {
            self.paths
                .remove_if(&entry.tenant, |_, paths| paths.is_empty());
        }
    }

    /// A snapshot of the (tenant, path) pairs within `scope` whose path starts with `prefix`.
    ///
    /// The walk starts at the first path not below the prefix and stops at the first one that
    /// does not start with it, so it only looks at what it returns plus one path per tenant.
    pub(crate) fn paths(&self, scope: &PurgeScope, prefix: &str) -> Vec<(TenantScope, Arc<str>)> {
        let mut out = Vec::new();
        let mut visits = 0;
        let mut walk = |tenant: &TenantScope, paths: &TenantPaths| {
            visits += 1;
            for path in paths
                .paths_from(prefix)
                .take_while(|path| path.starts_with(prefix))
            {
                visits += 1;
                out.push((tenant.clone(), Arc::from(path)));
            }
        };
        self.each_tenant(scope, |tenant, paths| walk(tenant, paths));
        self.visits.fetch_add(visits as u64, Ordering::Relaxed);
        out
    }

    /// Calls `f` with the path index of each tenant within `scope`.
    fn each_tenant(&self, scope: &PurgeScope, mut f: impl FnMut(&TenantScope, &TenantPaths)) {
        match scope {
            PurgeScope::Only(tenant) => {
                if let Some(paths) = self.paths.get(tenant) {
                    f(tenant, &paths);
                }
            }
            PurgeScope::All => {
                for bucket in &self.paths {
                    f(bucket.key(), bucket.value());
                }
            }
        }
    }

    /// Number of tenants with at least one entry.
    pub(crate) fn tenants(&self) -> usize {
        self.paths.len()
    }

    /// A snapshot of the keys that may carry `tag` within `scope`.
    ///
    /// The keys are copied out so that no index lock is held while the caller touches the
    /// cache (whose removals update this index). The whole-tenant tag costs a walk of the
    /// tenant's paths, so it is proportional to the entries it names.
    pub(crate) fn keys(&self, scope: &PurgeScope, tag: &Tag) -> Vec<Short> {
        let mut out = Vec::new();
        let mut visits = 0;
        let mut take = |keys: &Keys| {
            visits += 1 + keys.len();
            keys.extend_into(&mut out);
        };
        match tag {
            Tag::Tenant => self.each_tenant(scope, |_, paths| {
                visits += paths.all_keys(&mut out);
            }),
            Tag::Path(path) => self.each_tenant(scope, |_, paths| {
                let found = paths.keys_of(path, &mut out);
                if found > 0 {
                    visits += 1 + found;
                }
            }),
            _ => {
                if let Some(tenants) = self.by_tag.get(tag) {
                    match scope {
                        PurgeScope::Only(tenant) => {
                            if let Some(keys) = tenants.get(tenant) {
                                take(keys);
                            }
                        }
                        PurgeScope::All => tenants.for_each(|_, keys| take(keys)),
                    }
                }
            }
        }
        self.visits.fetch_add(visits as u64, Ordering::Relaxed);
        out
    }

    /// Whether any entry of `tag.tenant` may carry `tag.tag` (over-approximates like the index).
    pub(crate) fn holds(&self, tag: &TagKey) -> bool {
        match &tag.tag {
            Tag::Tenant => self.paths.contains_key(&tag.tenant),
            Tag::Path(path) => self
                .paths
                .get(&tag.tenant)
                .is_some_and(|paths| paths.contains_path(path)),
            other => self
                .by_tag
                .get(other)
                .is_some_and(|tenants| tenants.get(&tag.tenant).is_some()),
        }
    }

    /// Number of (tag, tenant, key) triples held, the implied tags counted once per path key.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let tagged: usize = self
            .by_tag
            .iter()
            .map(|tenants| {
                let mut n = 0;
                tenants.for_each(|_, keys| n += keys.len());
                n
            })
            .sum();
        let pathed: usize = self
            .paths
            .iter()
            .map(|paths| paths.each().map(|(_, keys)| keys.len()).sum::<usize>())
            .sum();
        tagged + pathed
    }

    /// Whether `key` is indexed under `tag`.
    #[cfg(test)]
    pub(crate) fn contains(&self, tag: &TagKey, key: &Key) -> bool {
        let key = short(key);
        match &tag.tag {
            Tag::Tenant => self.paths.get(&tag.tenant).is_some_and(|paths| {
                paths
                    .each()
                    .any(|(_, keys)| keys.iter().any(|(k, _)| *k == key))
            }),
            Tag::Path(path) => self.paths.get(&tag.tenant).is_some_and(|paths| {
                paths
                    .each()
                    .any(|(p, keys)| p == &**path && keys.iter().any(|(k, _)| *k == key))
            }),
            other => self.by_tag.get(other).is_some_and(|tenants| {
                tenants
                    .get(&tag.tenant)
                    .is_some_and(|keys| keys.contains(&key))
            }),
        }
    }

    /// Every (tenant, path) pair of the path index with its number of entries.
    #[cfg(test)]
    pub(crate) fn path_counts(&self) -> HashMap<(TenantScope, Arc<str>), u32> {
        self.paths
            .iter()
            .flat_map(|bucket| {
                let tenant = bucket.key().clone();
                bucket
                    .value()
                    .each()
                    .map(|(path, keys)| {
                        let total = keys.iter().map(|(_, n)| n).sum();
                        ((tenant.clone(), Arc::from(path)), total)
                    })
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
    fn add(&mut self, tenant: &TenantScope, key: Short) {
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
                *self = TenantKeys::Many(Box::new(map));
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
    fn remove(&mut self, tenant: &TenantScope, key: &Short) {
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
    fn add(&mut self, key: Short) {
        match self {
            Keys::One(held, count) if *held == key || *count == 0 => {
                *held = key;
                *count += 1;
            }
            Keys::One(held, count) => {
                let mut map = HashMap::with_capacity(2);
                map.insert(*held, *count);
                map.insert(key, 1);
                *self = Keys::Many(Box::new(map));
            }
            Keys::Many(map) => *map.entry(key).or_insert(0) += 1,
        }
    }

    fn remove(&mut self, key: &Short) {
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

    fn extend_into(&self, out: &mut Vec<Short>) {
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
    fn contains(&self, key: &Short) -> bool {
        match self {
            Keys::One(held, count) => *count > 0 && held == key,
            Keys::Many(map) => map.contains_key(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::entry_at;

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
        let now = crate::clock::UnixMillis::now();
        let a1 = entry_at(now, "a", "/p/1", &["x"], "1");
        let a2 = entry_at(now, "a", "/p/2", &["x"], "2");
        let b3 = entry_at(now, "b", "/p/3", &["x"], "3");
        let (ka, kb) = (tag("a", "x"), tag("b", "x"));
        index.add(short(&key(1)), &a1);
        index.add(short(&key(1)), &a1); // a replaced entry's late cleanup pending
        index.add(short(&key(2)), &a2);
        index.add(short(&key(3)), &b3);
        assert_eq!(index.len(), 6);
        let all = |t: &Tag| {
            let mut keys = index.keys(&PurgeScope::All, t);
            keys.sort();
            keys
        };
        let mut expected = vec![short(&key(1)), short(&key(2)), short(&key(3))];
        expected.sort();
        assert_eq!(all(&ka.tag), expected);
        assert_eq!(all(&Tag::Tenant), expected);
        assert_eq!(all(&Tag::path("/p/3")), vec![short(&key(3))]);
        index.remove(&short(&key(2)), &a2);
        index.remove(&short(&key(3)), &b3);
        assert!(!index.holds(&kb));
        assert!(!index.holds(&TagKey::new(TenantScope::one("b"), Tag::Tenant)));
        index.remove(&short(&key(1)), &a1);
        assert!(index.contains(&ka, &key(1)), "one of two counts is left");
        assert!(index.contains(&tag("a", "path:/p/1"), &key(1)));
        index.remove(&short(&key(1)), &a1);
        assert_eq!(index.len(), 0);
        assert!(!index.holds(&ka));
        assert_eq!(index.tenants(), 0);
        // An emptied tag is gone; the next tenant starts it anew.
        index.add(short(&key(4)), &b3);
        assert_eq!(all(&kb.tag), vec![short(&key(4))]);
        assert!(!index.holds(&ka));
    }
    /// A path's keys move between the ordered map (one key counted once) and the tables, and
    /// back, without losing a count; the key that marks a table is held in a table too.
    #[test]
    fn a_path_moves_between_one_key_and_a_table() {
        let now = crate::clock::UnixMillis::now();
        let text = entry_at(now, "a", "/p?x=1", &[], "1").text.clone();
        let other = entry_at(now, "a", "/q", &[], "2").text.clone();
        let mut paths = TenantPaths::default();
        let keys = |paths: &TenantPaths, path: &str| {
            let mut out = Vec::new();
            paths.keys_of(path, &mut out);
            out.sort();
            out
        };
        paths.add(&text, 1);
        assert!(paths.many.is_empty());
        paths.add(&text, 2);
        paths.add(&text, 2); // a replaced entry's cleanup pending
        assert_eq!(keys(&paths, "/p"), vec![1, 2]);
        paths.add(&other, 3);
        let mut all = Vec::new();
        assert_eq!(paths.all_keys(&mut all), 2 + 3);
        all.sort();
        assert_eq!(all, vec![1, 2, 3]);
        paths.remove("/p", &1);
        assert_eq!(
            keys(&paths, "/p"),
            vec![2],
            "2 is counted twice: still a table"
        );
        assert!(!paths.many.is_empty());
        paths.remove("/p", &2);
        assert!(
            paths.many.is_empty(),
            "one key counted once: back in the ordered map"
        );
        assert_eq!(paths.one.get("/p"), Some(&2));
        paths.remove("/p", &7); // not held: nothing happens
        paths.remove("/p", &2);
        assert!(!paths.contains_path("/p"));
        paths.add(&text, IN_MANY);
        assert_eq!(keys(&paths, "/p"), vec![IN_MANY]);
        paths.add(&text, 5);
        paths.remove("/p", &5);
        assert_eq!(
            keys(&paths, "/p"),
            vec![IN_MANY],
            "the marking key stays in its table"
        );
        paths.remove("/p", &IN_MANY);
        paths.remove("/q", &3);
        assert!(paths.is_empty() && paths.many.is_empty());
    }
}
