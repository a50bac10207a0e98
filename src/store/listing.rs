//! Listing entries for the admin API: by tenant, by path prefix, or a bounded sample of all.

use std::collections::HashSet;
use std::time::Duration;

use crate::clock::UnixMillis;

use super::index::Short;
use super::memory::Listed;
use super::{PurgeScope, Tag, TagKey, TenantScope, Tiered};

/// One stored entry as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub readable_key: String,
    pub tenant: TenantScope,
    /// The normalized `path` or `path?query` the entry was filled from.
    pub target: String,
    pub status: u16,
    /// Zero once the entry has expired (it stays listed until it is looked up or evicted).
    pub ttl_left: Duration,
    pub age: Duration,
    /// The entry's weight in bytes (see [`super::CachedResponse::weight`]).
    pub size: u64,
    /// Tag names, without their tenant (which is `tenant` for every tag).
    pub tags: Vec<String>,
    /// Marked stale by a soft purge.
    pub stale: bool,
    /// Lookups the memory tier answered with this entry since it was stored there.
    pub hits: u64,
}

impl Tiered {
    /// Published entries of `tenant` (every tenant when None) whose path starts with `prefix`
    /// (any path when None), sorted by target then readable key, at most `limit` of them.
    ///
    /// A tenant or prefix is answered from the indexes, so the cost follows what matches;
    /// with neither, the cache is walked and the walk stops after `limit` entries, so which
    /// entries are shown is then arbitrary.
    pub async fn entries(
        &self,
        tenant: Option<&TenantScope>,
        prefix: Option<&str>,
        limit: usize,
        now: UnixMillis,
    ) -> Vec<EntryInfo> {
        if limit == 0 {
            return Vec::new();
        }
        let index = self.local().memory.index();
        // Each candidate key comes with the tag it was found under; the index may name a key
        // whose entry has since been replaced, so the entry must still carry that tag.
        let tags: Vec<TagKey> = match (tenant, prefix) {
            (Some(tenant), None) => vec![TagKey::new(tenant.clone(), Tag::Tenant)],
            (_, Some(prefix)) => {
                let scope = tenant.map_or(PurgeScope::All, |t| PurgeScope::Only(t.clone()));
                index
                    .paths(&scope, prefix)
                    .into_iter()
                    .map(|(tenant, path)| TagKey::new(tenant, Tag::Path(path)))
                    .collect()
            }
            (None, None) => {
                let listed = self.local().memory.list_any(limit);
                return sorted(listed.iter().map(|l| info(l, now)).collect(), limit);
            }
        };
        let mut seen: HashSet<Short> = HashSet::new();
        let mut out = Vec::new();
        for tag in &tags {
            let scope = PurgeScope::Only(tag.tenant.clone());
            for key in index.keys(&scope, &tag.tag) {
                if !seen.insert(key) {
                    continue;
                }
                let Some(listed) = self.local().memory.listed_short(key) else {
                    continue;
                };
                if listed.entry.carries(&scope, &tag.tag) {
                    out.push(info(&listed, now));
                }
            }
        }
        sorted(out, limit)
    }
}

impl Tiered {
    /// The `limit` entries of the memory tier with the most hits, most first. Walks every
    /// entry (keeping `limit` at a time), so it costs in proportion to what is stored.
    pub async fn busiest_entries(&self, limit: usize, now: UnixMillis) -> Vec<EntryInfo> {
        let listed = self.local().memory.busiest(limit);
        let mut out: Vec<EntryInfo> = listed.iter().map(|l| info(l, now)).collect();
        out.sort_by(|a, b| {
            b.hits
                .cmp(&a.hits)
                .then_with(|| (&a.target, &a.readable_key).cmp(&(&b.target, &b.readable_key)))
        });
        out
    }
}

fn sorted(mut out: Vec<EntryInfo>, limit: usize) -> Vec<EntryInfo> {
    out.sort_by(|a, b| {
        (&a.target, &a.readable_key, &a.tenant).cmp(&(&b.target, &b.readable_key, &b.tenant))
    });
    out.truncate(limit);
    out
}

fn info(listed: &Listed, now: UnixMillis) -> EntryInfo {
    let entry = &listed.entry;
    let age = entry.age(now);
    EntryInfo {
        readable_key: entry.readable_key().to_owned(),
        tenant: entry.tenant.clone(),
        target: entry.target().to_owned(),
        status: entry.status().as_u16(),
        ttl_left: now.until(entry.fresh_until()),
        age,
        size: listed.weight,
        tags: entry.tags().iter().map(|t| t.tag.to_string()).collect(),
        stale: listed.stale,
        hits: listed.hits,
    }
}
