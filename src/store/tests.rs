//! Tests of the store: freshness, the tag index, purges, eviction, fences and weights.
//!
//! Purges by path, URI, prefix and tenant, soft purges and listings are in [`selectors`]; tenant
//! shares and route bounds in [`shares`].

mod selectors;
mod shares;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::UnixMillis as Instant;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;

const TTL: Duration = Duration::from_secs(60);

fn key(n: u64) -> Key {
    Key(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// The tables below write the shared scope as "".
fn scope(tenant: &str) -> TenantScope {
    match tenant {
        "" => TenantScope::Shared,
        id => TenantScope::one(id),
    }
}

fn tags(pairs: &[(&str, &str)]) -> Vec<TagKey> {
    pairs
        .iter()
        .map(|(t, g)| TagKey::new(scope(t), Tag::parse(g)))
        .collect()
}

fn entry(now: Instant, body: usize, tag_pairs: &[(&str, &str)]) -> Arc<CachedResponse> {
    entry_named(now, body, tag_pairs, "GET /items")
}

fn entry_named(
    now: Instant,
    body: usize,
    tag_pairs: &[(&str, &str)],
    readable_key: &str,
) -> Arc<CachedResponse> {
    let tags: Vec<Tag> = tag_pairs.iter().map(|(_, g)| Tag::parse(g)).collect();
    Arc::new(CachedResponse::from(EntryParts {
        content: compact(
            StatusCode::OK,
            &HeaderMap::new(),
            &[Bytes::from(vec![b'x'; body])],
        ),
        stored_at: now,
        lifetimes: Lifetimes {
            fresh_until: now.plus(TTL),
            stale_while_revalidate_until: now.plus(TTL),
            stale_if_error_until: now.plus(TTL),
            revalidate_until: now.plus(TTL),
        },
        extra_tags: extra_tags(&tags),
        tenant: scope(tag_pairs.first().map_or("", |(t, _)| *t)),
        text: EntryText::new("/items", readable_key),
        key: Key([0; 32]),
        variant: None,
        route: 0,
    }))
}

/// An entry of `tenant` filled from `target`, with the tags a fill gives it: `route_tags`,
/// the whole-tenant tag and the path tag.
pub(crate) fn entry_at(
    now: Instant,
    tenant: &str,
    target: &str,
    route_tags: &[&str],
    readable_key: &str,
) -> Arc<CachedResponse> {
    let tags: Vec<Tag> = route_tags.iter().map(|t| Tag::parse(t)).collect();
    Arc::new(CachedResponse::from(EntryParts {
        content: compact(
            StatusCode::OK,
            &HeaderMap::new(),
            &[Bytes::from_static(b"{}")],
        ),
        stored_at: now,
        lifetimes: Lifetimes {
            fresh_until: now.plus(TTL),
            stale_while_revalidate_until: now.plus(TTL),
            stale_if_error_until: now.plus(TTL),
            revalidate_until: now.plus(TTL),
        },
        extra_tags: extra_tags(&tags),
        tenant: scope(tenant),
        text: EntryText::new(target, readable_key),
        key: Key([0; 32]),
        variant: None,
        route: 0,
    }))
}

fn store(max_bytes: u64) -> Tiered {
    Tiered::new(MemoryOptions {
        max_bytes,
        ..MemoryOptions::default()
    })
}

/// A fill with a ticket taken just before the store.
async fn fill(s: &Tiered, k: Key, e: Arc<CachedResponse>) -> StoreOutcome {
    let ticket = s.begin_fill();
    s.store(&ticket, None, keyed(k, e)).await
}

/// The entry stored under `k`.
fn keyed(k: Key, e: Arc<CachedResponse>) -> Arc<CachedResponse> {
    let mut e = Arc::unwrap_or_clone(e);
    e.key = k;
    Arc::new(e)
}

fn purge_one(tenant: &str, tag: &str) -> Purge {
    Purge::tags(PurgeScope::Only(scope(tenant)), vec![Tag::parse(tag)])
}

fn purge_all(tag: &str) -> Purge {
    Purge::tags(PurgeScope::All, vec![Tag::parse(tag)])
}

/// Inserts without a fence check or publication, as `store` does before its second check.
fn insert_pending(s: &Tiered, k: Key, e: Arc<CachedResponse>) -> memory::Pending {
    let e = keyed(k, e);
    let until = e.fresh_until();
    match s.local().memory.insert(e, until) {
        memory::Insert::Stored(p) => p,
        memory::Insert::TooLarge => panic!("a small entry was refused"),
    }
}

/// Checks that the tag index names exactly the (tag, key) pairs of the entries held and that
/// the path index counts exactly their (tenant, path tag) pairs: a missing pair would let a
/// purge miss an entry, an extra one is a leak.
fn check_index(s: &Tiered) {
    let mut pairs = 0;
    let mut paths: std::collections::HashMap<(TenantScope, Arc<str>), u32> = Default::default();
    for k in s.local().memory.keys() {
        let Some(e) = s.local().memory.peek(&k) else {
            continue;
        };
        for t in &e.tags() {
            assert!(
                s.local().memory.index().contains(t, &k),
                "{k:?} not indexed under {t:?}"
            );
            // The whole-tenant tag is answered from the path index: no place of its own.
            if t.tag != Tag::Tenant {
                pairs += 1;
            }
            if let Tag::Path(path) = &t.tag {
                *paths
                    .entry((t.tenant.clone(), Arc::clone(path)))
                    .or_default() += 1;
            }
        }
    }
    assert_eq!(
        s.local().memory.index().len(),
        pairs,
        "index holds keys the cache does not"
    );
    assert_eq!(
        s.local().memory.index().path_counts(),
        paths,
        "path index out of step"
    );
}

#[tokio::test(start_paused = true)]
async fn fresh_until_ttl_then_removed() {
    let s = store(1 << 20);
    let t0 = Instant::now();
    assert_eq!(
        fill(&s, key(1), entry(t0, 10, &[("a", "x")])).await,
        StoreOutcome::Stored
    );
    tokio::time::advance(TTL - Duration::from_millis(1)).await;
    let hit = s.lookup(&key(1), Instant::now()).await;
    assert_eq!(
        hit.map(|e| e.age(Instant::now())),
        Some(TTL - Duration::from_millis(1))
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(s.lookup(&key(1), Instant::now()).await.is_none());
    assert_eq!(s.stats().entries, 0);
    assert_eq!(s.local().memory.index().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn zero_ttl_is_never_fresh() {
    let now = Instant::now();
    let mut e = (*entry(now, 1, &[])).clone();
    let mut lifetimes = e.lifetimes();
    lifetimes.fresh_until = e.stored_at();
    e.set_lifetimes(lifetimes);
    assert!(!e.is_fresh(now));
}

#[tokio::test(start_paused = true)]
async fn replace_moves_index_to_new_tags() {
    let s = store(1 << 20);
    let now = Instant::now();
    fill(&s, key(1), entry(now, 10, &[("a", "old")])).await;
    fill(&s, key(1), entry(now, 10, &[("a", "new")])).await;
    check_index(&s);
    assert!(!s
        .local()
        .memory
        .index()
        .contains(&TagKey::new(scope("a"), Tag::parse("old")), &key(1)));
    assert_eq!(s.purge(&purge_one("a", "old")).await.purged, 0);
    assert_eq!(s.purge(&purge_one("a", "new")).await.purged, 1);
    assert_eq!(s.stats().evictions, 0, "a replacement is not an eviction");
}

#[tokio::test(start_paused = true)]
async fn purge_one_tenant_leaves_other_tenants() {
    let s = store(1 << 20);
    let now = Instant::now();
    fill(&s, key(1), entry(now, 10, &[("a", "x")])).await;
    fill(&s, key(2), entry(now, 10, &[("b", "x")])).await;
    fill(&s, key(3), entry(now, 10, &[("", "x")])).await;
    fill(&s, key(4), entry(now, 10, &[("a", "y")])).await;
    assert_eq!(s.purge(&purge_one("a", "x")).await.purged, 1);
    assert!(s.lookup(&key(1), now).await.is_none());
    for k in [2, 3, 4] {
        assert!(s.lookup(&key(k), now).await.is_some(), "key {k} was purged");
    }
    check_index(&s);
    assert_eq!(s.stats().purged, 1);
}

#[tokio::test(start_paused = true)]
async fn purge_all_covers_every_tenant() {
    let s = store(1 << 20);
    let now = Instant::now();
    fill(&s, key(1), entry(now, 10, &[("a", "x")])).await;
    fill(&s, key(2), entry(now, 10, &[("b", "x"), ("b", "z")])).await;
    fill(&s, key(3), entry(now, 10, &[("", "x")])).await;
    fill(&s, key(4), entry(now, 10, &[("a", "y")])).await;
    assert_eq!(s.purge(&purge_all("x")).await.purged, 3);
    assert!(s.lookup(&key(4), now).await.is_some());
    check_index(&s);
    // Key 4's tag `y` and its place in the path index.
    assert_eq!(s.local().memory.index().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn purge_of_several_tags_counts_each_entry_once() {
    let s = store(1 << 20);
    let now = Instant::now();
    fill(&s, key(1), entry(now, 10, &[("a", "x"), ("a", "y")])).await;
    fill(&s, key(2), entry(now, 10, &[("a", "y")])).await;
    let p = Purge::tags(
        PurgeScope::Only(scope("a")),
        vec![Tag::parse("x"), Tag::parse("y")],
    );
    assert_eq!(s.purge(&p).await.purged, 2);
    assert_eq!(s.stats().entries, 0);
    check_index(&s);
}

#[tokio::test(start_paused = true)]
async fn eviction_under_byte_pressure_cleans_index() {
    let s = store(64 * 1024);
    let now = Instant::now();
    for n in 0..500 {
        let tenant = if n % 2 == 0 { "a" } else { "b" };
        fill(&s, key(n), entry(now, 1024, &[(tenant, "x")])).await;
    }
    let stats = s.stats();
    assert!(stats.evictions > 0);
    assert!(stats.bytes <= 64 * 1024, "{stats:?}");
    assert_eq!(stats.entries + stats.evictions, 500);
    check_index(&s);
    assert_eq!(s.purge(&purge_all("x")).await.purged as u64, stats.entries);
}

#[tokio::test(start_paused = true)]
async fn fill_overlapping_purge_is_fenced() {
    let s = store(1 << 20);
    let now = Instant::now();
    let ticket = s.begin_fill();
    s.purge(&purge_one("a", "x")).await;
    let e = entry(now, 10, &[("a", "x")]);
    assert_eq!(
        s.store(&ticket, None, keyed(key(1), e)).await,
        StoreOutcome::Fenced
    );
    assert!(s.lookup(&key(1), now).await.is_none());
    assert_eq!(s.local().memory.index().len(), 0);
    assert_eq!(s.stats().fenced, 1);
}

#[tokio::test(start_paused = true)]
async fn ticket_after_purge_stores() {
    let s = store(1 << 20);
    let now = Instant::now();
    s.purge(&purge_one("a", "x")).await;
    assert_eq!(
        fill(&s, key(1), entry(now, 10, &[("a", "x")])).await,
        StoreOutcome::Stored
    );
    assert!(s.lookup(&key(1), now).await.is_some());
}

/// Which fills a purge fences: (purge tenant or None for all, entry tags, fenced?).
fn check_fence(purge_tenant: Option<&str>, entry_tags: &[(&str, &str)], fenced: bool) {
    let s = store(1 << 20);
    let ticket = s.begin_fill();
    let scope = match purge_tenant {
        Some(t) => PurgeScope::Only(scope(t)),
        None => PurgeScope::All,
    };
    s.local().fences.raise(&scope, &["x".into()]);
    assert_eq!(
        s.is_fenced(&ticket, &tags(entry_tags)),
        fenced,
        "purge {purge_tenant:?} vs {entry_tags:?}"
    );
}

#[test]
fn fence_is_scoped_to_tenant_and_tag() {
    check_fence(Some("a"), &[("a", "x")], true);
    check_fence(Some("a"), &[("b", "x")], false);
    check_fence(Some("a"), &[("a", "y")], false);
    check_fence(Some("a"), &[("a", "y"), ("a", "x")], true);
    check_fence(Some(""), &[("", "x")], true);
    check_fence(Some(""), &[("a", "x")], false);
    check_fence(None, &[("b", "x")], true);
    check_fence(None, &[("", "x")], true);
    check_fence(None, &[("b", "y")], false);
    check_fence(None, &[], false);
}

#[tokio::test(start_paused = true)]
async fn fenced_undo_keeps_newer_fill() {
    let s = store(1 << 20);
    let now = Instant::now();
    // The same response stored twice: only the slot, not the response, identifies a fill.
    let shared = entry(now, 10, &[("a", "x")]);
    let older = insert_pending(&s, key(1), Arc::clone(&shared));
    let newer = insert_pending(&s, key(1), Arc::clone(&shared));
    assert!(!s.local().memory.withdraw(&older));
    assert!(s.local().memory.peek(&key(1)).is_some());
    check_index(&s);
    assert!(s.local().memory.withdraw(&newer));
    assert_eq!(s.local().memory.index().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn expired_lookup_keeps_fresh_replacement() {
    let s = store(1 << 20);
    let t0 = Instant::now();
    fill(&s, key(1), entry(t0, 10, &[("a", "x")])).await;
    tokio::time::advance(TTL).await;
    fill(&s, key(1), entry(Instant::now(), 10, &[("a", "x")])).await;
    assert!(s.lookup(&key(1), Instant::now()).await.is_some());
    check_index(&s);
}

#[tokio::test(start_paused = true)]
async fn too_large_is_refused_without_trace() {
    let s = store(64 * 1024);
    let now = Instant::now();
    let max = s.memory_max_entry_weight();
    assert!(max > 0 && max <= 64 * 1024);
    fill(&s, key(1), entry(now, 10, &[("a", "x")])).await;
    let big = entry(now, max as usize, &[("a", "x")]);
    assert_eq!(fill(&s, key(2), big).await, StoreOutcome::TooLarge);
    assert!(s.lookup(&key(2), now).await.is_none());
    assert_eq!(s.stats().entries, 1);
    check_index(&s);
}

/// Weight of an entry built from parts, its headers and body in the stored form.
fn weight_of(
    body: usize,
    headers: &[(&str, &str)],
    readable: &str,
    tag_pairs: &[(&str, &str)],
) -> u64 {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name: http::HeaderName = name.parse().unwrap();
        map.append(name, HeaderValue::from_str(value).unwrap());
    }
    let mut e = (*entry_named(Instant::now(), 0, tag_pairs, readable)).clone();
    e.content = compact(StatusCode::OK, &map, &[Bytes::from(vec![b'x'; body])]);
    e.weight()
}

#[tokio::test(start_paused = true)]
async fn weight_is_the_cost_of_each_part() {
    let base = weight_of(0, &[], "", &[]);
    let entry = allocation(16 + std::mem::size_of::<CachedResponse>());
    assert_eq!(
        base,
        entry + SLOT_OVERHEAD + PATH_INDEX_OVERHEAD + allocation(16 + "/items\n".len()),
        "an empty entry: its struct, its slot, its place in the path index and its text"
    );
    let block = |len: usize| allocation(len) + allocation(24);
    let body = weight_of(1000, &[], "", &[]);
    let etag = weight_of(0, &[("etag", "\"abc\"")], "", &[]);
    let vary = weight_of(0, &[("vary", "a"), ("vary", "b")], "", &[]);
    let custom = weight_of(0, &[("x-app-version", "abc")], "", &[]);
    let key = weight_of(0, &[], "GET /x", &[]);
    let tag = weight_of(0, &[], "", &[("acme", "orders")]);
    let cases = [
        (
            "a body: its block and the block's handle",
            body,
            block(1000),
        ),
        (
            "a standard header: its value and three bytes in the block",
            etag,
            block(5 + 2),
        ),
        ("two values of one name", vary, block(2 * (1 + 2))),
        (
            "a header of another name: the name too",
            custom,
            block(3 + 13 + 3),
        ),
        (
            "the readable key, in the text",
            key,
            allocation(16 + 7 + 6) - allocation(16 + 7),
        ),
        (
            "a tag: its name, its index slot, the tag list (the tenant's id is shared)",
            tag,
            allocation(16 + 6) + TAG_OVERHEAD + allocation(16 + std::mem::size_of::<Tag>()),
        ),
    ];
    for (what, weight, extra) in cases {
        assert_eq!(weight - base, extra, "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn stats_bytes_is_sum_of_weights() {
    let s = store(1 << 20);
    let now = Instant::now();
    let mut want = 0;
    for n in 0..20 {
        let e = entry(now, 100 * n as usize, &[("a", "x")]);
        want += e.weight();
        fill(&s, key(n), e).await;
    }
    // Replacing an entry swaps its weight rather than adding to it.
    let replaced = s.local().memory.peek(&key(3)).map_or(0, |e| e.weight());
    let e = entry(now, 7, &[]);
    want = want - replaced + e.weight();
    fill(&s, key(3), e).await;
    assert_eq!(s.stats().bytes, want);
    assert_eq!(s.stats().entries, 20);
}

#[tokio::test(start_paused = true)]
async fn purge_cost_is_proportional_to_what_is_purged() {
    let s = store(64 << 20);
    let now = Instant::now();
    // 2000 entries under a tag nobody purges, 5 under the purged tag for tenant a, and one
    // under the purged tag for each of 10 other tenants.
    for n in 0..2000 {
        fill(&s, key(n), entry(now, 10, &[("a", "big")])).await;
    }
    for n in 2000..2005 {
        fill(&s, key(n), entry(now, 10, &[("a", "small")])).await;
    }
    for n in 0..10 {
        let tenant = format!("t{n}");
        fill(
            &s,
            key(3000 + n),
            entry(now, 10, &[(tenant.as_str(), "small")]),
        )
        .await;
    }
    let before = s.local().memory.index().visits();
    assert_eq!(s.purge(&purge_one("a", "small")).await.purged, 5);
    // One tenant bucket and its five keys.
    assert_eq!(s.local().memory.index().visits() - before, 1 + 5);
    let before = s.local().memory.index().visits();
    assert_eq!(s.purge(&purge_all("small")).await.purged, 10);
    // Ten tenant buckets and one key each; tenant a's bucket is gone.
    assert_eq!(s.local().memory.index().visits() - before, 10 + 10);
    assert_eq!(s.stats().entries, 2000);
}

#[test]
fn purge_records_are_pruned() {
    let s = store(1 << 20);
    let ticket = s.begin_fill();
    for n in 0..3000 {
        s.local().fences.raise(
            &PurgeScope::Only(scope("a")),
            &[Tag::parse(&format!("tag{n}"))],
        );
    }
    // The live ticket predates every record, so none may go, and the oldest still fences it.
    assert_eq!(s.local().fences.record_count(), 3000);
    assert!(s.is_fenced(&ticket, &tags(&[("a", "tag0")])));
    drop(ticket);
    assert_eq!(s.local().fences.live_ticket_seqs(), 0);
    for n in 3000..6000 {
        s.local()
            .fences
            .raise(&PurgeScope::All, &[Tag::parse(&format!("tag{n}"))]);
    }
    assert!(
        s.local().fences.record_count() < 3000,
        "{}",
        s.local().fences.record_count()
    );
    // Pruning keeps every record a live ticket can still be fenced by.
    let ticket = s.begin_fill();
    s.local()
        .fences
        .raise(&PurgeScope::Only(scope("a")), &[Tag::parse("late")]);
    for n in 6000..9000 {
        s.local()
            .fences
            .raise(&PurgeScope::All, &[Tag::parse(&format!("tag{n}"))]);
    }
    assert!(s.is_fenced(&ticket, &tags(&[("a", "late")])));
}

/// The promise under test: no read returns data older than an acknowledged write.
///
/// The origin's data is a version number. A writer bumps it, purges the tag and then counts
/// the write as acknowledged. Fills take their ticket, then read the version (their upstream
/// request) and store it. Readers note the acknowledged version before each lookup; a hit
/// older than that is a stale read. Fills race on a few keys so replacements happen too.
///
/// Every purge kind given must cover the fills' entries (tenant "a", tag "x", target
/// `/api/x?v=1`).
async fn check_no_stale_reads(purge: Purge) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const FILLERS: u64 = 3;
    const FILLS: u64 = 3000;
    const WRITES: u64 = 500;
    const KEYS: u64 = 8;
    let s = Arc::new(store(1 << 20));
    let version = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for f in 0..FILLERS {
        let (s, version) = (Arc::clone(&s), Arc::clone(&version));
        writers.push(tokio::spawn(async move {
            for n in 0..FILLS {
                let ticket = s.begin_fill();
                tokio::task::yield_now().await;
                let seen = version.load(Ordering::SeqCst).to_string();
                tokio::task::yield_now().await;
                let e = entry_at(Instant::now(), "a", "/api/x?v=1", &["x"], &seen);
                s.store(&ticket, None, keyed(key((f + n) % KEYS), e)).await;
            }
        }));
    }
    {
        let (s, version, acked) = (Arc::clone(&s), Arc::clone(&version), Arc::clone(&acked));
        writers.push(tokio::spawn(async move {
            for _ in 0..WRITES {
                let v = version.fetch_add(1, Ordering::SeqCst) + 1;
                s.purge(&purge).await;
                acked.store(v, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2 {
        let (s, acked, done) = (Arc::clone(&s), Arc::clone(&acked), Arc::clone(&done));
        readers.push(tokio::spawn(async move {
            let (mut hits, mut stale) = (0u64, Vec::new());
            let mut n = r;
            while !done.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst);
                if let Some(e) = s.lookup(&key(n % KEYS), Instant::now()).await {
                    hits += 1;
                    let v: u64 = e.readable_key().parse().unwrap_or(0);
                    if v < floor {
                        stale.push((v, floor));
                    }
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            (hits, stale)
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let mut hits = 0;
    for r in readers {
        let (h, stale) = r.await.unwrap();
        assert!(
            stale.is_empty(),
            "stale reads (version, acknowledged): {stale:?}"
        );
        hits += h;
    }
    assert!(hits > 0, "the readers never hit, so they checked nothing");
    // Soft-purged entries stay behind, but only as stale ones, which lookups never serve.
    for k in s.local().memory.keys() {
        let Some(e) = s.lookup(&k, Instant::now()).await else {
            continue;
        };
        let v: u64 = e.readable_key().parse().unwrap_or(0);
        assert!(v >= WRITES, "entry of version {v} survived write {WRITES}");
    }
    check_index(&s);
    let left = s.stats().entries as usize;
    assert_eq!(s.purge(&purge_one("a", "x")).await.purged, left);
    assert_eq!(s.stats().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_fills_never_outlive_an_overlapping_purge() {
    let one = || PurgeScope::Only(scope("a"));
    let none = || Purge::tags(one(), Vec::new());
    check_no_stale_reads(purge_one("a", "x")).await;
    check_no_stale_reads(Purge {
        paths: vec!["/api/x".into()],
        ..none()
    })
    .await;
    check_no_stale_reads(Purge {
        uris: vec!["/api/x?v=1".into()],
        ..none()
    })
    .await;
    check_no_stale_reads(Purge {
        prefixes: vec!["/api/".into()],
        ..none()
    })
    .await;
    check_no_stale_reads(Purge {
        all: true,
        ..none()
    })
    .await;
    check_no_stale_reads(Purge {
        all: true,
        ..Purge::tags(PurgeScope::All, Vec::new())
    })
    .await;
    check_no_stale_reads(Purge {
        soft: true,
        ..purge_one("a", "x")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn unpublished_entry_is_not_served() {
    let s = store(1 << 20);
    let now = Instant::now();
    let pending = insert_pending(&s, key(1), entry(now, 10, &[("a", "x")]));
    assert!(s.lookup(&key(1), now).await.is_none());
    s.local().memory.publish(&pending);
    assert!(s.lookup(&key(1), now).await.is_some());
}

/// The entry's struct, in its `Arc`, fits jemalloc's 160-byte class: each field counts for a
/// small entry (issue 12).
#[test]
fn the_entry_struct_stays_in_its_size_class() {
    assert!(
        16 + std::mem::size_of::<CachedResponse>() <= 160,
        "{} bytes",
        std::mem::size_of::<CachedResponse>()
    );
}

#[test]
fn entry_text_keeps_a_target_its_readable_key_names_once() {
    let readable = "cg:v1 api.example.com t=42 GET /items?a=1&b=2 accept-language=\"fr\"";
    let text = EntryText::new("/items?a=1&b=2", readable);
    assert_eq!(
        text.len(),
        readable.len(),
        "the target is read from the key"
    );
    assert_eq!(text.target(), "/items?a=1&b=2");
    assert_eq!(text.path(), "/items");
    assert_eq!(text.readable_key(), readable);

    // A key that does not name the target as given: both are kept.
    for (target, readable) in [
        ("/items", "cg:v1 h t=42 GET /other"),
        ("/items", "free text"),
        ("/a\nb", "cg:v1 h GET /a\nb"),
        ("/items", ""),
    ] {
        let text = EntryText::new(target, readable);
        assert_eq!(text.target(), target.replace('\n', "%0A"));
        assert_eq!(text.readable_key(), readable);
    }
}

/// The tier's state for an entry is a word of the entry: the same `Arc` inserted twice is held
/// as a copy the second time, so each insert publishes, withdraws and counts hits on its own.
#[tokio::test(start_paused = true)]
async fn one_response_inserted_twice_has_two_states() {
    let s = store(1 << 20);
    let now = Instant::now();
    let shared = keyed(key(1), entry(now, 10, &[("a", "x")]));
    let memory = &s.local().memory;
    let memory::Insert::Stored(first) = memory.insert(Arc::clone(&shared), now.plus(TTL)) else {
        panic!("refused");
    };
    memory.publish(&first);
    assert!(memory.get(&key(1), now).is_some());
    let memory::Insert::Stored(second) = memory.insert(Arc::clone(&shared), now.plus(TTL)) else {
        panic!("refused");
    };
    // The second insert replaced the first and is not published yet: a miss.
    assert!(memory.get(&key(1), now).is_none());
    assert!(
        !memory.withdraw(&first),
        "the first insert no longer holds the key"
    );
    memory.publish(&second);
    let held = memory.get(&key(1), now).unwrap();
    assert!(
        !Arc::ptr_eq(&held, &shared),
        "the second insert holds a copy"
    );
    assert_eq!(memory.listed(&key(1)).unwrap().hits, 1);
    check_index(&s);
    assert!(memory.withdraw(&second));
    assert_eq!(memory.index().len(), 0);
}

/// Instants are packed as offsets from `stored_at`: a year's TTL is kept to the second and
/// never lengthened; "never" stays never.
#[test]
fn long_lifetimes_survive_their_packing() {
    let now = Instant(1_800_000_000_123);
    let year = Duration::from_secs(365 * 86_400);
    let mut e = (*entry(now, 1, &[])).clone();
    e.set_times(
        now,
        Lifetimes {
            fresh_until: now.plus(year + Duration::from_millis(456)),
            stale_while_revalidate_until: now.plus(Duration::from_millis(1_500)),
            stale_if_error_until: Instant::MAX,
            revalidate_until: now.plus(year * 2),
        },
    );
    let l = e.lifetimes();
    assert_eq!(l.fresh_until, now.plus(year), "rounded down to the second");
    assert_eq!(
        l.stale_while_revalidate_until,
        now.plus(Duration::from_millis(1_500))
    );
    assert_eq!(l.stale_if_error_until, Instant::MAX);
    assert_eq!(l.revalidate_until, now.plus(year * 2));
    assert_eq!(e.ttl(), year);
}
