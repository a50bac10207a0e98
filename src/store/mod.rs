//! Where cached responses live: the stored form, tags, purges, fill fences and the tiered store.
//!
//! Entries live in a bounded in-memory tier (`memory`). A shared tier may later sit behind the
//! same [`Tiered`] API, which is why lookup, store and purge are `async` even though the memory
//! tier never waits: nothing outside this module may assume that entries are local.
//!
//! Two promises shape this module. A tag is always scoped to a tenant, so a purge for one tenant
//! never removes (or keeps) another tenant's entries. And a fill that overlapped a purge of one
//! of its tags is never left servable: see `fence` for the ordering that makes this race-free.
//!
//! Purges select entries by tag, path, exact URI, path prefix or whole tenant ([`Purge`]); the
//! admin API lists entries through [`Tiered::entries`].

pub mod alloc_size;
mod compact;
mod fence;
mod index;
mod listing;
mod memory;
mod packed;
mod purge;
pub mod shared;
mod shares;
mod tier;
mod tiered;
mod variants;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use arcstr::ArcStr;
use std::time::Duration;
use thin_vec::ThinVec;

use crate::clock::UnixMillis;
use crate::policy::freshness::Lifetimes;

pub use crate::policy::tag::Tag;
pub use crate::policy::Key;
pub use compact::{compact, stored, Content, StoredHeaders};
pub(crate) use packed::SlotState;

pub use fence::FillTicket;
pub use listing::EntryInfo;
pub use purge::{Purge, PurgeResult};
pub use shares::{MemoryUsage, RouteUsage, TenantUsage};
pub use variants::{VariantLimit, VaryState};

pub use shared::{LeaseToken, LeaseWait};
pub use tier::{Tier, TierFound};
pub use tiered::{Found, Held, LeaseDecision, SharedSettings, Source, Tiered};

/// Version of the [`CachedResponse`] layout; bump it whenever a field is added, removed or
/// changes meaning, so a shared tier never decodes an entry written by an incompatible build.
///
/// 2: entries carry their `tenant` and the `target` they were filled from.
/// 3: entries carry the `key` they are stored under and the `variant` selection of their `Vary`.
/// 4: entries carry the `route` that filled them.
/// 5: entries carry the ends of their stale windows (`stale_while_revalidate_until`,
///    `stale_if_error_until`), and a shared entry lives until the later of them.
/// 6: entries carry the end of their revalidation period (`revalidate_until`).
pub const FORMAT_VERSION: u32 = 6;

/// Whose entry: the entries shared by every caller, or one tenant's.
///
/// Every entry and every tag belongs to exactly one scope; a purge names the scopes it
/// reaches ([`PurgeScope`]), so one tenant's purge never touches (or spares) another's entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TenantScope {
    /// Entries of routes that are not keyed by tenant (public routes, `tenant = "none"`).
    Shared,
    /// One tenant's entries, by its validated id (a thin shared string: eight bytes in every
    /// entry).
    One(ArcStr),
}

impl TenantScope {
    /// The scope of one tenant id.
    pub fn one(id: &str) -> TenantScope {
        TenantScope::One(ArcStr::from(id))
    }

    /// The tenant id, `None` for the shared scope.
    pub fn id(&self) -> Option<&str> {
        match self {
            TenantScope::Shared => None,
            TenantScope::One(id) => Some(id),
        }
    }
}

/// A tag scoped to a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TagKey {
    pub tenant: TenantScope,
    pub tag: Tag,
}

impl TagKey {
    pub fn new(tenant: TenantScope, tag: Tag) -> Self {
        Self { tenant, tag }
    }
}

/// The stored form of a response (a compatibility surface: see [`FORMAT_VERSION`]).
///
/// Kept small, since a small entry's bookkeeping costs more than its body (issue 12): the
/// headers are encoded after the body in one block ([`Content`]), the instants are offsets
/// from `stored_at`, the text holds the target once, the whole-tenant and path tags every
/// entry carries are implied by `tenant` and `target` rather than listed (see
/// [`CachedResponse::tags`]), and the memory tier's state for the entry is one word of it.
/// Built from [`EntryParts`].
#[derive(Clone, Debug)]
pub struct CachedResponse {
    /// Status, end-to-end headers (the caller has already filtered out hop-by-hop headers) and
    /// body. A hit clones the body's handle (a reference count), never the body itself.
    pub content: Content,
    /// When the response was stored, by the wall clock (the same instant in every process).
    stored_at: UnixMillis,
    /// The entry's [`Lifetimes`], packed: see [`CachedResponse::lifetimes`].
    offsets: packed::Offsets,
    /// The tags the entry carries beyond the two every entry carries (the whole-tenant tag
    /// and its path tag): the route's tags and the user tag, all scoped to `tenant`. Use
    /// [`CachedResponse::tags`] for the whole list.
    pub extra_tags: ThinVec<Tag>,
    /// The tenant the entry belongs to.
    pub tenant: TenantScope,
    /// The target the entry was filled from and the readable form of its key.
    pub text: EntryText,
    /// The key the entry is stored under: the request's key, or the variant key when the
    /// response varies (see `variant`).
    pub key: Key,
    /// The request headers (and whether the verified user) that selected this response, from
    /// its `Vary`; `None` when it is the same for every request with the key.
    pub variant: Option<Arc<crate::policy::vary::Selection>>,
    /// The id (`Route::id`) of the route that filled the entry, which it is charged to in the
    /// memory tier's per-route books (see [`MemoryOptions::route_max_bytes`]). An id, not a
    /// position: a reload that moves routes keeps each route's id, so the entry stays charged
    /// to the route that filled it; an id no table names any more is charged to nothing.
    pub route: u32,
    /// The memory tier's state for this entry (published, soft-purged, hits); a clone starts
    /// with none.
    pub(crate) slot: SlotState,
}

/// What a [`CachedResponse`] is made of, as a fill or a shared tier has it.
#[derive(Clone, Debug)]
pub struct EntryParts {
    pub content: Content,
    pub stored_at: UnixMillis,
    /// The entry is fresh before `fresh_until`, and once expired is answered at once (while
    /// one request refreshes it) before `stale_while_revalidate_until`, instead of a backend
    /// error before `stale_if_error_until`, and held for revalidation only before
    /// `revalidate_until` (see `policy::freshness`). Kept to the millisecond for 24 days past
    /// `stored_at`, to the second (never later) beyond.
    pub lifetimes: Lifetimes,
    pub extra_tags: ThinVec<Tag>,
    pub tenant: TenantScope,
    pub text: EntryText,
    pub key: Key,
    pub variant: Option<Arc<crate::policy::vary::Selection>>,
    pub route: u32,
}

impl From<EntryParts> for CachedResponse {
    fn from(p: EntryParts) -> CachedResponse {
        CachedResponse {
            content: p.content,
            stored_at: p.stored_at,
            offsets: packed::Offsets::new(p.stored_at, &p.lifetimes),
            extra_tags: p.extra_tags,
            tenant: p.tenant,
            text: p.text,
            key: p.key,
            variant: p.variant,
            route: p.route,
            slot: SlotState::default(),
        }
    }
}

/// An entry's target (the normalized `path` or `path?query` it was filled from, whose path is
/// its path tag) and the human-readable form of its key (for logs and the admin API), in one
/// allocation that the memory tier's path index shares.
///
/// The readable key names the target (`cg:v1 host t=42 GET /items?a=1 ...`), so when the
/// target can be read back from it, as it can for every key `policy::cache_key::readable`
/// writes, only the readable key is kept; otherwise the text is the target, a line break and
/// the readable key.
#[derive(Clone, PartialEq, Eq)]
pub struct EntryText(ArcStr);

/// Between the target and the readable key: a request target cannot hold a line break.
const TEXT_SEPARATOR: char = '\n';

/// The target a readable key names: the word after its method class (words are separated by
/// single spaces, which no word of a readable key holds).
fn named_target(readable_key: &str) -> Option<&str> {
    let mut words = readable_key.split(' ');
    words.find(|word| *word == "GET")?;
    words.next()
}

impl EntryText {
    /// The text of `target` and `readable_key`. A line break in the target (which no request
    /// target can hold) is written percent-encoded, as a request would carry it.
    pub fn new(target: &str, readable_key: &str) -> EntryText {
        if !readable_key.contains(TEXT_SEPARATOR) && named_target(readable_key) == Some(target) {
            return EntryText(ArcStr::from(readable_key));
        }
        let mut text = String::with_capacity(target.len() + 1 + readable_key.len());
        if target.contains(TEXT_SEPARATOR) {
            text.push_str(&target.replace(TEXT_SEPARATOR, "%0A"));
        } else {
            text.push_str(target);
        }
        text.push(TEXT_SEPARATOR);
        text.push_str(readable_key);
        EntryText(ArcStr::from(text))
    }

    /// The normalized `path` or `path?query` the entry was filled from.
    pub fn target(&self) -> &str {
        match self.0.split_once(TEXT_SEPARATOR) {
            Some((target, _)) => target,
            None => named_target(&self.0).unwrap_or(""),
        }
    }

    /// The human-readable form of the entry's key.
    pub fn readable_key(&self) -> &str {
        self.0
            .split_once(TEXT_SEPARATOR)
            .map_or(&*self.0, |(_, readable)| readable)
    }

    /// The path part (up to the `?`) of the target.
    pub fn path(&self) -> &str {
        path_of(self.target())
    }

    /// Bytes of the text.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for EntryText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryText")
            .field("target", &self.target())
            .field("readable_key", &self.readable_key())
            .finish()
    }
}

/// Splits a list of tags as a fill or a shared tier gives them into what an entry lists: the
/// whole-tenant and path tags are implied by the entry's tenant and target, so they are left
/// out, and so is a repeated tag.
pub fn extra_tags<'a>(tags: impl IntoIterator<Item = &'a Tag>) -> ThinVec<Tag> {
    let mut out: ThinVec<Tag> = ThinVec::new();
    for tag in tags {
        if !matches!(tag, Tag::Tenant | Tag::Path(_)) && !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    out.shrink_to_fit();
    out
}

/// The path part (up to the `?`) of a target.
pub fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

// The weight model. An entry's weight is what storing it adds to the process's resident
// memory: every allocation the entry and the store's bookkeeping for it make, as the allocator
// rounds it (`allocation`). The sizes of the entry's own allocations are computed from the
// entry; what cannot be seen from here (the tier's slot and quick_cache's tables, the path
// index, the tag index) is a constant measured with `cachegate-bench-memory calibrate` (see
// docs/benchmarks.md): each constant is the growth of RSS per entry between two scenarios
// that differ by that part only, minus what the formula already counts. Hash tables and
// B-trees grow in steps, so a table's cost per entry is taken at an average load.
// `cachegate-bench-memory weight --check` (run by `.ci/run`) fails when the weights of entries
// filled through the proxy differ from the measured RSS growth by more than 10 %.

/// Per entry, beside its `Arc`'d struct: the memory tier's slot in quick_cache (held in place),
/// quick_cache's hash table and queue bookkeeping for it, and the tenant queue's weak
/// reference. Measured.
pub const SLOT_OVERHEAD: u64 = 40;

/// Per entry, its place in the tenant's path index (which whole-tenant, path and prefix
/// purges go through): a path is usually carried by one entry, whose key is the path's value
/// in the ordered map, so each entry is charged a place of its own (the variants of one path
/// share a table instead, about as much). The path's text is the entry's own. Measured.
pub const PATH_INDEX_OVERHEAD: u64 = 45;

/// Per extra tag, in the tag index: the key's slot under a (tag, tenant) that other entries
/// carry too (a route's tag, a user's tag). Measured.
pub const TAG_OVERHEAD: u64 = 40;

/// The bytes the allocator takes for a request of `len` bytes: jemalloc's size classes (see
/// `alloc_size`), the global allocator of the `cachegate` binary.
#[cfg(feature = "jemalloc")]
pub use alloc_size::allocation;

/// The bytes the allocator takes for a request of `len` bytes, in a build without jemalloc:
/// glibc's malloc adds an 8-byte header, rounds up to 16 bytes and hands out at least 32;
/// nothing for 0.
#[cfg(not(feature = "jemalloc"))]
pub fn allocation(len: usize) -> u64 {
    if len == 0 {
        0
    } else {
        (len.saturating_add(8 + 15) / 16 * 16).max(32) as u64
    }
}

/// The shared handle a `Bytes` block gets once it is sliced (see `compact`).
pub(crate) const SHARED_BYTES_HANDLE: usize = 24;

/// Bytes of an `Arc` header (strong and weak counts), or of an `ArcStr`'s (count and length).
const ARC_HEADER: usize = 16;

/// Bytes of a `ThinVec`'s header (length and capacity).
const THIN_HEADER: usize = 16;

impl CachedResponse {
    /// The response's status.
    pub fn status(&self) -> http::StatusCode {
        self.content.status()
    }

    /// The body: a reference count, never a copy.
    pub fn body(&self) -> bytes::Bytes {
        self.content.body()
    }

    /// The stored headers (a view: nothing is copied until a value is taken).
    pub fn headers(&self) -> StoredHeaders<'_> {
        self.content.headers()
    }

    /// When the response was stored, by the wall clock (the same instant in every process).
    pub fn stored_at(&self) -> UnixMillis {
        self.stored_at
    }

    /// The entry is fresh before this instant and expired from it on.
    pub fn fresh_until(&self) -> UnixMillis {
        self.offsets.fresh_until(self.stored_at)
    }

    /// The path the entry was filled from: its target up to the `?`.
    pub fn path(&self) -> &str {
        self.text.path()
    }

    /// The normalized `path` or `path?query` the entry was filled from.
    pub fn target(&self) -> &str {
        self.text.target()
    }

    /// The human-readable form of the entry's key.
    pub fn readable_key(&self) -> &str {
        self.text.readable_key()
    }

    /// Every tag the entry carries, scoped to its tenant: [`CachedResponse::extra_tags`], then
    /// the whole-tenant tag and its path tag. Fences, shared tiers and listings read this; the
    /// memory tier indexes the two implied tags through its path index.
    pub fn tags(&self) -> Vec<TagKey> {
        let mut out: Vec<TagKey> = Vec::with_capacity(self.extra_tags.len() + 2);
        out.extend(
            self.extra_tags
                .iter()
                .map(|t| TagKey::new(self.tenant.clone(), t.clone())),
        );
        out.push(TagKey::new(self.tenant.clone(), Tag::Tenant));
        out.push(TagKey::new(self.tenant.clone(), Tag::path(self.path())));
        out
    }

    /// Whether the entry carries `tag` for a tenant within `scope`.
    pub fn carries(&self, scope: &PurgeScope, tag: &Tag) -> bool {
        scope.covers(&self.tenant)
            && match tag {
                Tag::Tenant => true,
                Tag::Path(path) => **path == *self.path(),
                _ => self.extra_tags.contains(tag),
            }
    }

    /// True before `fresh_until`; an entry is stale from that instant on, so a zero TTL is
    /// never fresh.
    pub fn is_fresh(&self, now: UnixMillis) -> bool {
        now < self.fresh_until()
    }

    /// The entry's fresh and stale instants, as `policy::freshness` reads them.
    pub fn lifetimes(&self) -> Lifetimes {
        self.offsets.lifetimes(self.stored_at)
    }

    /// The last instant the entry is of any use (the end of its widest window or of its
    /// revalidation period): the tiers keep it until then.
    pub fn usable_until(&self) -> UnixMillis {
        self.lifetimes().usable_until()
    }

    /// Sets the entry's fresh and stale instants.
    pub fn set_lifetimes(&mut self, lifetimes: Lifetimes) {
        self.offsets = packed::Offsets::new(self.stored_at, &lifetimes);
    }

    /// Sets when the entry was stored and its fresh and stale instants.
    pub fn set_times(&mut self, stored_at: UnixMillis, lifetimes: Lifetimes) {
        self.stored_at = stored_at;
        self.set_lifetimes(lifetimes);
    }

    /// Time since the entry was stored; zero when `now` is before `stored_at`.
    pub fn age(&self, now: UnixMillis) -> Duration {
        now.since(self.stored_at)
    }

    /// How long the entry was fresh for when stored.
    pub fn ttl(&self) -> Duration {
        self.fresh_until().since(self.stored_at)
    }

    /// The memory this entry costs once stored, bookkeeping included, which bounds the memory
    /// tier by bytes (see the weight model above).
    ///
    /// It assumes the stored form [`compact`] makes: the body and header records in one
    /// block (or two), strings and the tag list of their exact length. The result only depends on
    /// immutable fields, so it is constant for an entry.
    pub fn weight(&self) -> u64 {
        let block = self.content.cost();
        let tags: u64 = self
            .extra_tags
            .iter()
            .map(|tag| match tag {
                Tag::User(name) | Tag::Named(name) | Tag::Path(name) => {
                    allocation(ARC_HEADER + name.len()) + TAG_OVERHEAD
                }
                Tag::Tenant => TAG_OVERHEAD,
            })
            .sum();
        // A thin list: its length and capacity live in its allocation; an empty one has none.
        let tag_list = match self.extra_tags.len() {
            0 => 0,
            n => allocation(THIN_HEADER + n * std::mem::size_of::<Tag>()),
        };
        allocation(ARC_HEADER + std::mem::size_of::<CachedResponse>())
            + SLOT_OVERHEAD
            + PATH_INDEX_OVERHEAD
            + block
            + allocation(ARC_HEADER + self.text.len())
            + tag_list
            + tags
    }
}

/// Which tenants a purge applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PurgeScope {
    /// One scope: a tenant's entries, or the shared ones.
    Only(TenantScope),
    /// Every tenant, including the shared scope.
    All,
}

impl PurgeScope {
    /// Whether a tag of `tenant` is within the purge.
    pub fn covers(&self, tenant: &TenantScope) -> bool {
        match self {
            PurgeScope::All => true,
            PurgeScope::Only(scope) => scope == tenant,
        }
    }
}

/// What happened to an entry handed to [`Tiered::store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// The entry is stored and servable.
    Stored,
    /// A purge covering one of the entry's tags happened after the fill began; nothing is kept.
    Fenced,
    /// The entry is larger than the memory tier admits ([`Tiered::memory_max_entry_weight`]).
    TooLarge,
}

/// Counters for the admin API and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Entries currently held (expired entries count until they are looked up or evicted).
    pub entries: u64,
    /// Sum of the weights of the entries held.
    pub bytes: u64,
    /// Entries pushed out by byte pressure since start, including those below.
    pub evictions: u64,
    /// Entries evicted because their tenant held more than its share of a full tier.
    pub share_evictions: u64,
    /// Entries evicted because their route would have gone over its `max_memory`.
    pub route_evictions: u64,
    /// Entries removed by purges since start.
    pub purged: u64,
    /// Entries marked stale by soft purges since start.
    pub soft_purged: u64,
    /// Fills refused (or undone) because a purge overlapped them, since start.
    pub fenced: u64,
    /// Tenants (counting the shared scope) with at least one entry held, as the path index
    /// sees them (an entry without a path tag is not counted).
    pub tenants: u64,
}

/// Sizing of the memory tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryOptions {
    /// Upper bound on the sum of entry weights (see [`CachedResponse::weight`]).
    pub max_bytes: u64,
    /// Bytes one tenant (the shared scope counting as one) may hold before, once the tier is
    /// full, its own oldest entries are evicted first; `None` for no share.
    pub tenant_share: Option<u64>,
    /// By route id ([`CachedResponse::route`]): the bytes that route's entries may hold
    /// together before its own oldest entries are evicted first. Entries of a route beyond
    /// the list are bounded by the tier only. A reload replaces the list
    /// ([`Tiered::set_route_limits`]).
    pub route_max_bytes: Vec<Option<u64>>,
}
