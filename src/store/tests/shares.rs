//! Tests of tenant shares and route bounds (issue 12, part 4): who loses entries when the tier
//! is full or a route is over its bound, and the books kept on every way an entry leaves.

use super::*;

const MIB: u64 = 1 << 20;

/// A 1 KiB entry of `tenant` filled by `route` from `/items/{n}`, tagged as a fill tags it.
fn item(now: Instant, tenant: &str, route: usize, n: u64) -> Arc<CachedResponse> {
    let target = format!("/items/{n}");
    let mut e = (*entry_at(
        now,
        tenant,
        &target,
        &[],
        &format!("GET {target} t={tenant}"),
    ))
    .clone();
    e.content = compact(
        StatusCode::OK,
        &HeaderMap::new(),
        &[Bytes::from(vec![b'x'; 1024])],
    );
    e.route = route as u32;
    Arc::new(e)
}

/// Keys of different tenants and routes never collide.
fn item_key(tenant: &str, route: usize, n: u64) -> Key {
    Key(*blake3::hash(format!("{tenant}/{route}/{n}").as_bytes()).as_bytes())
}

fn limited(max_bytes: u64, share_percent: Option<u64>, routes: Vec<Option<u64>>) -> Tiered {
    Tiered::new(MemoryOptions {
        max_bytes,
        tenant_share: share_percent.map(|p| max_bytes / 100 * p),
        route_max_bytes: routes,
    })
}

fn tenant_usage(s: &Tiered, tenant: &str) -> (u64, u64) {
    s.usage(usize::MAX)
        .tenants
        .iter()
        .find(|t| t.tenant == scope(tenant))
        .map_or((0, 0), |t| (t.bytes, t.entries))
}

/// The books agree with the cache: the same bytes and entries in total, per tenant and per
/// route, and the tag index agrees too.
fn check_books(s: &Tiered) {
    check_index(s);
    let usage = s.usage(usize::MAX);
    let mut tenants: std::collections::HashMap<TenantScope, (u64, u64)> = Default::default();
    let mut routes: std::collections::HashMap<usize, (u64, u64)> = Default::default();
    for k in s.local().memory.keys() {
        let Some(e) = s.local().memory.peek(&k) else {
            continue;
        };
        let w = e.weight();
        let t = tenants.entry(e.tenant.clone()).or_default();
        *t = (t.0 + w, t.1 + 1);
        let r = routes.entry(e.route as usize).or_default();
        *r = (r.0 + w, r.1 + 1);
    }
    let booked: std::collections::HashMap<TenantScope, (u64, u64)> = usage
        .tenants
        .iter()
        .map(|t| (t.tenant.clone(), (t.bytes, t.entries)))
        .collect();
    assert_eq!(booked, tenants, "tenant books out of step with the cache");
    for r in &usage.routes {
        assert_eq!(
            (r.bytes, r.entries),
            routes.get(&r.route).copied().unwrap_or_default(),
            "route {} books out of step with the cache",
            r.route
        );
    }
    let stats = s.stats();
    let (bytes, entries) = tenants
        .values()
        .fold((0, 0), |(b, n), (tb, tn)| (b + tb, n + tn));
    assert_eq!((stats.bytes, stats.entries), (bytes, entries));
}

/// The tier's size in the tests below.
const TIER: u64 = 4 * MIB;

/// Noisy writes between two rounds of the quiet tenant's reads: about one tier's worth.
const QUIET_EVERY: u64 = 3000;

/// A noisy tenant scans its catalogue, ten times the tier's size, each entry filled and read
/// back once (so the cache sees it used, as a crawl behind a second client would), while a
/// quiet tenant reads its 100 hot keys through the cache (filling what misses) once per
/// `QUIET_EVERY` noisy writes. Returns the quiet tenant's hit ratio.
async fn quiet_hit_ratio(s: &Tiered) -> f64 {
    const QUIET_KEYS: u64 = 100;
    let now = Instant::now();
    for n in 0..QUIET_KEYS {
        fill(s, item_key("quiet", 0, n), item(now, "quiet", 0, n)).await;
    }
    let noisy_writes = 10 * TIER / item(now, "noisy", 0, 0).weight();
    let (mut hits, mut lookups) = (0u64, 0u64);
    for w in 0..noisy_writes {
        let k = item_key("noisy", 0, w);
        fill(s, k, item(now, "noisy", 0, w)).await;
        s.lookup(&k, now).await;
        if w % QUIET_EVERY == QUIET_EVERY - 1 {
            for n in 0..QUIET_KEYS {
                let k = item_key("quiet", 0, n);
                lookups += 1;
                if s.lookup(&k, now).await.is_some() {
                    hits += 1;
                } else {
                    fill(s, k, item(now, "quiet", 0, n)).await;
                }
            }
        }
    }
    hits as f64 / lookups as f64
}

#[tokio::test(start_paused = true)]
async fn a_noisy_tenant_over_its_share_loses_its_own_entries_first() {
    let shared = limited(TIER, Some(25), Vec::new());
    let ratio = quiet_hit_ratio(&shared).await;
    println!("quiet tenant's hit ratio, 25% share: {:.1}%", ratio * 100.0);
    assert!(ratio >= 0.99, "quiet tenant's hit ratio {ratio}");
    let stats = shared.stats();
    assert!(stats.share_evictions > 0);
    assert_eq!(
        stats.evictions, stats.share_evictions,
        "every eviction was of the noisy tenant's entries, chosen by its share"
    );
    assert_eq!(tenant_usage(&shared, "quiet").1, 100);
    check_books(&shared);

    // The control: the same traffic without a share, where quick_cache alone chooses. The
    // noisy entries it saw used push the quiet tenant's out between two of its rounds.
    let unshared = limited(TIER, None, Vec::new());
    let without = quiet_hit_ratio(&unshared).await;
    println!(
        "quiet tenant's hit ratio, no share: {:.1}%",
        without * 100.0
    );
    assert!(
        without < 0.5,
        "the control should lose the quiet keys: {without}"
    );
    assert_eq!(unshared.stats().share_evictions, 0);
    check_books(&unshared);
}

#[tokio::test(start_paused = true)]
async fn a_route_over_its_bound_evicts_its_own_entries_only() {
    let bound = 64 * 1024;
    let s = limited(TIER, None, vec![Some(bound), None]);
    let now = Instant::now();
    // Route 1 has no bound; two tenants' entries of route 0 share its bound.
    for n in 0..50 {
        fill(&s, item_key("a", 1, n), item(now, "a", 1, n)).await;
    }
    let weight = item(now, "a", 0, 0).weight();
    let writes = 200;
    for n in 0..writes {
        let tenant = if n % 2 == 0 { "a" } else { "b" };
        let outcome = fill(&s, item_key(tenant, 0, n), item(now, tenant, 0, n)).await;
        assert_eq!(outcome, StoreOutcome::Stored);
    }
    let usage = s.usage(usize::MAX);
    let (route0, route1) = (&usage.routes[0], &usage.routes[1]);
    assert!(route0.bytes <= bound, "{} > {bound}", route0.bytes);
    assert!(route0.bytes + weight > bound, "the bound is kept full");
    assert_eq!((route0.max_bytes, route1.max_bytes), (Some(bound), None));
    assert_eq!(route1.entries, 50, "the other route lost nothing");
    // The newest entries stay, the oldest went.
    let held = |tenant: &str, n: u64| s.local().memory.peek(&item_key(tenant, 0, n)).is_some();
    assert!(held("b", writes - 1) && held("a", writes - 2));
    assert!(!held("a", 0) && !held("b", 1));
    let stats = s.stats();
    assert_eq!(stats.route_evictions, writes - route0.entries);
    assert_eq!(stats.evictions, stats.route_evictions);
    assert_eq!(stats.share_evictions, 0);
    check_books(&s);

    // An entry heavier than its route's bound is never stored, and evicts nothing.
    let mut heavy = (*item(now, "a", 0, 999)).clone();
    heavy.content = compact(
        StatusCode::OK,
        &HeaderMap::new(),
        &[Bytes::from(vec![b'x'; bound as usize])],
    );
    let heavy_key = item_key("a", 0, 999);
    assert_eq!(
        fill(&s, heavy_key, Arc::new(heavy)).await,
        StoreOutcome::TooLarge
    );
    assert_eq!(s.usage(usize::MAX).routes[0].entries, route0.entries);
    check_books(&s);
}

#[tokio::test(start_paused = true)]
async fn the_books_follow_every_way_out() {
    let s = limited(TIER, Some(50), vec![Some(TIER / 2), None]);
    let now = Instant::now();
    for n in 0..10 {
        fill(&s, item_key("a", 0, n), item(now, "a", 0, n)).await;
        fill(&s, item_key("", 1, n), item(now, "", 1, n)).await;
    }
    check_books(&s);
    // Replaced under the same key: counted once.
    fill(&s, item_key("a", 0, 0), item(now, "a", 0, 0)).await;
    assert_eq!(tenant_usage(&s, "a").1, 10);
    // Purged, withdrawn, expired.
    s.purge(&Purge::tags(
        PurgeScope::Only(scope("a")),
        vec![Tag::path("/items/1")],
    ))
    .await;
    let pending = insert_pending(&s, item_key("a", 0, 100), item(now, "a", 0, 100));
    assert!(s.local().memory.withdraw(&pending));
    tokio::time::advance(TTL).await;
    assert!(s
        .lookup(&item_key("a", 0, 2), Instant::now())
        .await
        .is_none());
    assert_eq!(tenant_usage(&s, "a").1, 8);
    check_books(&s);
    // Everything.
    s.purge(&Purge {
        all: true,
        ..Purge::tags(PurgeScope::All, Vec::new())
    })
    .await;
    let usage = s.usage(usize::MAX);
    assert!(
        usage.tenants.is_empty(),
        "a tenant's ledger goes with its last entry"
    );
    assert!(usage.routes.iter().all(|r| (r.bytes, r.entries) == (0, 0)));
    check_books(&s);
}

#[tokio::test(start_paused = true)]
async fn eviction_queues_stay_bounded() {
    // Entries that leave by purge stay queued until they come up; the queue is compacted
    // before it holds more than twice the live entries plus a constant.
    let s = limited(TIER, Some(50), Vec::new());
    let now = Instant::now();
    for n in 0..5_000 {
        fill(&s, item_key("a", 0, n), item(now, "a", 0, n)).await;
        s.purge(&Purge::tags(
            PurgeScope::Only(scope("a")),
            vec![Tag::path(&format!("/items/{n}"))],
        ))
        .await;
        fill(
            &s,
            item_key("a", 0, 1_000_000),
            item(now, "a", 0, 1_000_000),
        )
        .await;
    }
    assert_eq!(tenant_usage(&s, "a").1, 1);
    assert!(
        s.local().memory.queued(&scope("a")) <= 2 + 64,
        "{}",
        s.local().memory.queued(&scope("a"))
    );
}

#[tokio::test(start_paused = true)]
async fn the_largest_tenants_are_listed_and_the_rest_summed() {
    let s = limited(TIER, None, Vec::new());
    let now = Instant::now();
    for (t, count) in [("a", 3), ("b", 1), ("c", 2), ("d", 1)] {
        for n in 0..count {
            fill(&s, item_key(t, 0, n), item(now, t, 0, n)).await;
        }
    }
    let usage = s.usage(2);
    let listed: Vec<(TenantScope, u64)> = usage
        .tenants
        .iter()
        .map(|t| (t.tenant.clone(), t.entries))
        .collect();
    assert_eq!(listed, [(scope("a"), 3), (scope("c"), 2)]);
    let w = item(now, "b", 0, 0).weight();
    assert_eq!(usage.other_tenants, (2, 2 * w, 2));
    assert_eq!(usage.tenant_share, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_books_hold_under_concurrent_fills_and_purges() {
    // Two tenants over a small tier with a share and a route bound, filling overlapping keys
    // (replacements), evicting each other by share and bound, while purges remove entries:
    // once quiet, the books equal what the cache holds.
    let s = Arc::new(limited(TIER, Some(30), vec![Some(TIER / 4), None]));
    let mut tasks = Vec::new();
    for task in 0..4u64 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let tenant = if task % 2 == 0 { "a" } else { "b" };
            let now = Instant::now();
            for n in 0..3_000u64 {
                let (route, k) = ((n % 2) as usize, n % 1_500);
                fill(&s, item_key(tenant, route, k), item(now, tenant, route, k)).await;
                if n % 97 == 0 {
                    s.purge(&Purge::tags(
                        PurgeScope::Only(scope(tenant)),
                        vec![Tag::path(&format!("/items/{}", k / 2))],
                    ))
                    .await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    check_books(&s);
    let stats = s.stats();
    assert!(stats.share_evictions + stats.route_evictions > 0);
}

#[tokio::test(start_paused = true)]
async fn eviction_queues_shrink_when_entries_leave_without_new_fills() {
    // A tenant that stops filling still has its queue trimmed as its entries leave (here by
    // purge; eviction by quick_cache or expiry is the same path out): otherwise every tenant
    // keeps a reference allocation per entry it ever held at its peak, outside `max_memory`.
    let s = limited(TIER, Some(50), Vec::new());
    let now = Instant::now();
    for n in 0..2_000 {
        fill(&s, item_key("a", 0, n), item(now, "a", 0, n)).await;
    }
    // The newest entry stays (share evictions may have taken the oldest already).
    for n in 0..1_999 {
        s.purge(&Purge::tags(
            PurgeScope::Only(scope("a")),
            vec![Tag::path(&format!("/items/{n}"))],
        ))
        .await;
    }
    assert_eq!(tenant_usage(&s, "a").1, 1);
    assert!(
        s.local().memory.queued(&scope("a")) <= 2 + 64,
        "{} references queued for 1 entry",
        s.local().memory.queued(&scope("a"))
    );
    check_books(&s);
}
