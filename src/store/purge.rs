//! Purges: what a purge selects (tags, paths, exact URIs, path prefixes, a whole tenant or
//! everything), how it fences the fills it could have covered, and hard versus soft removal.

use std::sync::Arc;

use super::{PurgeScope, Tag, Tiered};

/// A purge: every entry matching any listed selector within the tenant scope.
///
/// Paths, URIs and prefixes are expected in normalized form (as the cache key builds them);
/// the store compares them as plain strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purge {
    /// The tenants the purge applies to.
    pub tenant: PurgeScope,
    /// Entries carrying any of these tags.
    pub tags: Vec<Tag>,
    /// Normalized paths without a query: every variant of each path (its `path:` tag).
    pub paths: Vec<Arc<str>>,
    /// Normalized `path?query` targets: only the entries filled from exactly that target.
    pub uris: Vec<Arc<str>>,
    /// Path prefixes: every entry whose path starts with one of them ("" matches every path).
    pub prefixes: Vec<Arc<str>>,
    /// Everything in the tenant scope; with [`PurgeScope::All`], everything in the store.
    pub all: bool,
    /// Mark the matching entries stale instead of removing them.
    pub soft: bool,
}

impl Purge {
    /// A hard purge of `tags` within `tenant`, with no other selector.
    pub fn tags(tenant: PurgeScope, tags: Vec<Tag>) -> Purge {
        Purge {
            tenant,
            tags,
            paths: Vec::new(),
            uris: Vec::new(),
            prefixes: Vec::new(),
            all: false,
            soft: false,
        }
    }

    /// True when the purge selects nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.all
            && self.tags.is_empty()
            && self.paths.is_empty()
            && self.uris.is_empty()
            && self.prefixes.is_empty()
    }

    /// The tags whose fence covers every in-flight fill this purge could have matched.
    ///
    /// Paths and URIs fence their path tag (every variant of the path, which over-covers a
    /// URI, harmlessly). A prefix may cover paths that have no entry yet, so it and `all`
    /// fence the whole-tenant tag, which every fill carries: conservative, and O(1).
    pub(crate) fn fence_tags(&self) -> Vec<Tag> {
        let mut tags = self.tags.clone();
        tags.extend(self.paths.iter().map(|p| Tag::path(p)));
        tags.extend(self.uris.iter().map(|u| Tag::path(uri_path(u))));
        if self.all || !self.prefixes.is_empty() {
            tags.push(Tag::Tenant);
        }
        tags
    }
}

/// What a purge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeResult {
    /// Entries removed, or for a soft purge newly marked stale; each counted once.
    pub purged: usize,
}

impl Tiered {
    /// Removes (or with `soft`, marks stale) every entry matching the purge, after fencing
    /// the in-flight fills it could have covered.
    pub async fn purge(&self, purge: &Purge) -> PurgeResult {
        // The fence goes up before any entry is looked for; see `store` for why.
        self.fences.raise(&purge.tenant, &purge.fence_tags());
        let (scope, soft, memory) = (&purge.tenant, purge.soft, &self.memory);
        let mut purged = 0;
        if purge.all {
            match scope {
                PurgeScope::All => {
                    // Nothing is left for the other selectors to find.
                    return PurgeResult {
                        purged: memory.purge_everything(soft),
                    };
                }
                PurgeScope::Only(_) => purged += memory.purge_tag(scope, &Tag::Tenant, soft),
            }
        }
        for tag in &purge.tags {
            purged += memory.purge_tag(scope, tag, soft);
        }
        for path in &purge.paths {
            purged += memory.purge_tag(scope, &Tag::path(path), soft);
        }
        for uri in &purge.uris {
            purged += memory.purge_uri(scope, &Tag::path(uri_path(uri)), uri, soft);
        }
        for prefix in &purge.prefixes {
            for (tenant, path) in memory.index().paths(scope, prefix) {
                purged += memory.purge_tag(&PurgeScope::Only(tenant), &Tag::Path(path), soft);
            }
        }
        PurgeResult { purged }
    }
}

/// The path part of a `path?query` target.
fn uri_path(uri: &str) -> &str {
    uri.split_once('?').map_or(uri, |(path, _)| path)
}
