//! Tests of purges by path, URI, prefix and tenant, soft purges, their fences, the path index
//! and listings.

use std::collections::BTreeSet;

use super::*;

/// The entries every table below starts from: (key number, tenant, target, route tags).
const POPULATION: &[(u64, &str, &str, &[&str])] = &[
    (1, "a", "/api/courses/", &["courses"]),
    (2, "a", "/api/courses/7/", &["courses", "course:7"]),
    (3, "a", "/api/courses/7/?page=2", &["courses", "course:7"]),
    (4, "a", "/api/course", &[]),
    (5, "a", "/api/coursesx", &[]),
    (6, "b", "/api/courses/7/", &["courses", "course:7"]),
    (7, "", "/api/courses/", &["courses"]),
    (8, "b", "/api/rooms/?floor=1", &["rooms"]),
];

fn readable(tenant: &str, target: &str) -> String {
    format!("GET {target} tenant={tenant}")
}

async fn populated() -> Tiered {
    let s = store(1 << 20);
    let now = Instant::now();
    for &(n, tenant, target, route_tags) in POPULATION {
        let e = entry_at(now, tenant, target, route_tags, &readable(tenant, target));
        assert_eq!(fill(&s, key(n), e).await, StoreOutcome::Stored);
    }
    s
}

fn one(tenant: &str) -> PurgeScope {
    PurgeScope::Only(scope(tenant))
}

fn nothing(scope: PurgeScope) -> Purge {
    Purge::tags(scope, Vec::new())
}

fn tag_list(items: &[&str]) -> Vec<Tag> {
    items.iter().map(|t| Tag::parse(t)).collect()
}

fn strs(items: &[&str]) -> Vec<Arc<str>> {
    items.iter().map(|s| Arc::from(*s)).collect()
}

/// Runs `purge` on the population, hard and then soft, and checks that exactly the entries
/// numbered in `hit` are removed (or marked stale) and counted, and that the rest are served.
async fn check(purge: Purge, hit: &[u64]) {
    for soft in [false, true] {
        let s = populated().await;
        let now = Instant::now();
        let purge = Purge {
            soft,
            ..purge.clone()
        };
        let result = s.purge(&purge).await;
        assert_eq!(result.purged, hit.len(), "{purge:?}");
        for &(n, ..) in POPULATION {
            let served = s.lookup(&key(n), now).await.is_some();
            let stale = s.lookup_stale(&key(n), now).await.is_some();
            let held = s.local().memory.peek(&key(n)).is_some();
            let want_hit = hit.contains(&n);
            assert_eq!(served, !want_hit, "key {n} served, {purge:?}");
            assert_eq!(stale, soft && want_hit, "key {n} stale, {purge:?}");
            assert_eq!(held, soft || !want_hit, "key {n} held, {purge:?}");
        }
        let stats = s.stats();
        let count = hit.len() as u64;
        assert_eq!(
            (stats.purged, stats.soft_purged),
            if soft { (0, count) } else { (count, 0) }
        );
        check_index(&s);
    }
}

#[tokio::test(start_paused = true)]
async fn prefix_stays_under_prefix_and_tenant() {
    let prefixes = |scope, p: &[&str]| Purge {
        prefixes: strs(p),
        ..nothing(scope)
    };
    check(prefixes(one("a"), &["/api/courses/"]), &[1, 2, 3]).await;
    check(prefixes(one("a"), &["/api/course"]), &[1, 2, 3, 4, 5]).await;
    check(prefixes(one("a"), &["/api/courses/7/"]), &[2, 3]).await;
    check(prefixes(one("b"), &["/api/courses/"]), &[6]).await;
    check(prefixes(one(""), &["/api/courses/"]), &[7]).await;
    check(prefixes(one("c"), &["/api/"]), &[]).await;
    check(prefixes(one("b"), &[""]), &[6, 8]).await;
    check(
        prefixes(PurgeScope::All, &["/api/courses/"]),
        &[1, 2, 3, 6, 7],
    )
    .await;
    check(
        prefixes(one("a"), &["/api/courses/", "/api/coursesx"]),
        &[1, 2, 3, 5],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn path_takes_every_variant_and_uri_only_its_own() {
    let paths = |scope, p: &[&str]| Purge {
        paths: strs(p),
        ..nothing(scope)
    };
    let uris = |scope, u: &[&str]| Purge {
        uris: strs(u),
        ..nothing(scope)
    };
    check(paths(one("a"), &["/api/courses/7/"]), &[2, 3]).await;
    check(paths(one("a"), &["/api/courses"]), &[]).await;
    check(paths(PurgeScope::All, &["/api/courses/7/"]), &[2, 3, 6]).await;
    check(uris(one("a"), &["/api/courses/7/?page=2"]), &[3]).await;
    check(uris(one("a"), &["/api/courses/7/"]), &[2]).await;
    check(uris(one("a"), &["/api/courses/7/?page=3"]), &[]).await;
    check(uris(one("b"), &["/api/courses/7/?page=2"]), &[]).await;
    check(uris(PurgeScope::All, &["/api/courses/7/"]), &[2, 6]).await;
    check(uris(one("b"), &["/api/rooms/?floor=1"]), &[8]).await;
}

#[tokio::test(start_paused = true)]
async fn all_takes_one_tenant_or_everything() {
    let all = |scope| Purge {
        all: true,
        ..nothing(scope)
    };
    check(all(one("a")), &[1, 2, 3, 4, 5]).await;
    check(all(one("")), &[7]).await;
    check(all(one("c")), &[]).await;
    check(all(PurgeScope::All), &[1, 2, 3, 4, 5, 6, 7, 8]).await;
    // Other selectors beside `all` find nothing more and count nothing twice.
    check(
        Purge {
            tags: tag_list(&["courses"]),
            ..all(one("b"))
        },
        &[6, 8],
    )
    .await;
    check(
        Purge {
            tags: tag_list(&["rooms"]),
            ..all(PurgeScope::All)
        },
        &[1, 2, 3, 4, 5, 6, 7, 8],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn selectors_combine_and_count_each_entry_once() {
    check(
        Purge {
            tags: tag_list(&["course:7"]),
            paths: strs(&["/api/courses/7/"]),
            uris: strs(&["/api/courses/7/?page=2"]),
            prefixes: strs(&["/api/courses/", "/api/"]),
            ..nothing(one("a"))
        },
        &[1, 2, 3, 4, 5],
    )
    .await;
    check(nothing(one("a")), &[]).await;
}

#[test]
fn empty_purge_selects_nothing() {
    assert!(nothing(PurgeScope::All).is_empty());
    let selectors = [
        Purge {
            all: true,
            ..nothing(one("a"))
        },
        Purge::tags(one("a"), tag_list(&["x"])),
        Purge {
            paths: strs(&["/x"]),
            ..nothing(one("a"))
        },
        Purge {
            uris: strs(&["/x?y=1"]),
            ..nothing(one("a"))
        },
        Purge {
            prefixes: strs(&["/x"]),
            ..nothing(one("a"))
        },
    ];
    for purge in selectors {
        assert!(!purge.is_empty(), "{purge:?}");
    }
    assert!(Purge {
        soft: true,
        ..nothing(one("a"))
    }
    .is_empty());
}

#[tokio::test(start_paused = true)]
async fn prefix_cost_is_proportional_to_what_it_matches() {
    let s = store(64 << 20);
    let now = Instant::now();
    for n in 0..2000 {
        let target = format!("/api/other/{n}/");
        fill(&s, key(n), entry_at(now, "a", &target, &[], "")).await;
    }
    for n in 0..5 {
        let target = format!("/api/courses/{n}/");
        fill(&s, key(2000 + n), entry_at(now, "a", &target, &[], "")).await;
    }
    for n in 0..10 {
        let tenant = format!("t{n}");
        let e = entry_at(now, &tenant, "/api/courses/1/", &[], "");
        fill(&s, key(3000 + n), e).await;
    }
    let prefix = |scope| Purge {
        prefixes: strs(&["/api/courses/"]),
        ..nothing(scope)
    };
    let before = s.local().memory.index().visits();
    assert_eq!(s.purge(&prefix(one("a"))).await.purged, 5);
    // The walk: one tenant bucket and five paths; then per path, its tag's bucket and key.
    assert_eq!(s.local().memory.index().visits() - before, 1 + 5 + 5 * 2);
    let before = s.local().memory.index().visits();
    assert_eq!(s.purge(&prefix(PurgeScope::All)).await.purged, 10);
    // Eleven tenant buckets (a's holds no match any more), ten paths, ten tag lookups.
    assert_eq!(s.local().memory.index().visits() - before, 11 + 10 + 10 * 2);
    assert_eq!(s.stats().entries, 2000);
    check_index(&s);
}

#[tokio::test(start_paused = true)]
async fn soft_purge_counts_an_entry_once() {
    let s = populated().await;
    let soft = Purge {
        soft: true,
        ..Purge::tags(one("a"), tag_list(&["courses"]))
    };
    assert_eq!(s.purge(&soft).await.purged, 3);
    assert_eq!(s.purge(&soft).await.purged, 0);
    // A hard purge still removes the stale entries, and counts them.
    let hard = Purge::tags(one("a"), tag_list(&["courses"]));
    assert_eq!(s.purge(&hard).await.purged, 3);
    assert!(s.lookup_stale(&key(1), Instant::now()).await.is_none());
    assert_eq!(s.stats().soft_purged, 3);
    assert_eq!(s.stats().purged, 3);
    check_index(&s);
}

#[tokio::test(start_paused = true)]
async fn stale_entry_is_kept_past_ttl_and_replaced_by_a_new_fill() {
    let s = populated().await;
    let soft = Purge {
        soft: true,
        paths: strs(&["/api/courses/"]),
        ..nothing(one("a"))
    };
    s.purge(&soft).await;
    tokio::time::advance(TTL * 2).await;
    let now = Instant::now();
    // A stale entry is a miss but stays, whatever its age, until something replaces it.
    assert!(s.lookup(&key(1), now).await.is_none());
    assert!(s.lookup_stale(&key(1), now).await.is_some());
    let e = entry_at(now, "a", "/api/courses/", &[], "new");
    assert_eq!(fill(&s, key(1), e).await, StoreOutcome::Stored);
    assert_eq!(
        s.lookup(&key(1), now)
            .await
            .map(|e| e.readable_key().to_owned()),
        Some("new".into())
    );
    assert!(s.lookup_stale(&key(1), now).await.is_none());
    check_index(&s);
}

/// Takes a fill ticket, runs `purge`, then stores an entry of `tenant` from `target` with it.
async fn check_fence(purge: Purge, tenant: &str, target: &str, fenced: bool) {
    let s = store(1 << 20);
    let ticket = s.begin_fill();
    s.purge(&purge).await;
    let e = entry_at(Instant::now(), tenant, target, &["courses"], "");
    let want = if fenced {
        StoreOutcome::Fenced
    } else {
        StoreOutcome::Stored
    };
    assert_eq!(
        s.store(&ticket, None, super::keyed(key(1), e)).await,
        want,
        "{purge:?} vs {tenant:?} {target}"
    );
    assert_eq!(s.stats().entries, u64::from(!fenced));
    check_index(&s);
}

#[tokio::test(start_paused = true)]
async fn every_purge_kind_fences_what_it_covers() {
    let a = || nothing(one("a"));
    let tags = Purge::tags(one("a"), tag_list(&["courses"]));
    check_fence(tags.clone(), "a", "/api/courses/", true).await;
    check_fence(tags.clone(), "b", "/api/courses/", false).await;
    let paths = Purge {
        paths: strs(&["/api/courses/7/"]),
        ..a()
    };
    check_fence(paths.clone(), "a", "/api/courses/7/?page=2", true).await;
    check_fence(paths, "a", "/api/courses/", false).await;
    // A URI fences its whole path: the fill's query may not be known to match in advance.
    let uris = Purge {
        uris: strs(&["/api/courses/7/?page=2"]),
        ..a()
    };
    check_fence(uris.clone(), "a", "/api/courses/7/", true).await;
    check_fence(uris, "a", "/api/courses/8/", false).await;
    // A prefix fences the whole tenant: a path under it may have no entry yet.
    let prefixes = Purge {
        prefixes: strs(&["/api/courses/"]),
        ..a()
    };
    check_fence(prefixes.clone(), "a", "/api/rooms/", true).await;
    check_fence(prefixes, "b", "/api/courses/", false).await;
    let all = Purge { all: true, ..a() };
    check_fence(all.clone(), "a", "/x", true).await;
    check_fence(all, "", "/x", false).await;
    let everything = Purge {
        all: true,
        ..nothing(PurgeScope::All)
    };
    check_fence(everything.clone(), "", "/x", true).await;
    check_fence(everything, "b", "/x", true).await;
    let soft = Purge { soft: true, ..tags };
    check_fence(soft, "a", "/api/courses/", true).await;
    check_fence(a(), "a", "/api/courses/", false).await;
}

#[tokio::test(start_paused = true)]
async fn path_index_follows_replace_expiry_and_eviction() {
    let s = store(64 * 1024);
    let t0 = Instant::now();
    // Replacing an entry moves its path.
    fill(&s, key(1), entry_at(t0, "a", "/old/", &[], "")).await;
    fill(&s, key(1), entry_at(t0, "a", "/new/?x=1", &[], "")).await;
    check_index(&s);
    let prefix = |p: &str| Purge {
        prefixes: strs(&[p]),
        ..nothing(one("a"))
    };
    assert_eq!(s.purge(&prefix("/old/")).await.purged, 0);
    assert_eq!(s.purge(&prefix("/new/")).await.purged, 1);
    // Expiry on lookup takes the path out with the entry.
    fill(&s, key(2), entry_at(t0, "b", "/gone/", &[], "")).await;
    assert_eq!(s.stats().tenants, 1);
    tokio::time::advance(TTL).await;
    assert!(s.lookup(&key(2), Instant::now()).await.is_none());
    check_index(&s);
    assert_eq!(s.stats().tenants, 0);
    // Eviction under byte pressure, across tenants and shared paths.
    let now = Instant::now();
    for n in 0..500 {
        let tenant = ["a", "b", ""][n as usize % 3];
        let target = format!("/api/{}/?page={n}", n % 7);
        fill(&s, key(100 + n), entry_at(now, tenant, &target, &[], "")).await;
    }
    assert!(s.stats().evictions > 0);
    check_index(&s);
    let left = s.stats().entries as usize;
    let everything = Purge {
        all: true,
        ..nothing(PurgeScope::All)
    };
    assert_eq!(s.purge(&everything).await.purged, left);
    check_index(&s);
    assert_eq!(s.local().memory.index().len(), 0);
    assert_eq!(s.stats().tenants, 0);
}

/// Lists the population and checks the keys listed, in order.
async fn check_list(tenant: Option<&str>, prefix: Option<&str>, limit: usize, want: &[u64]) {
    let s = populated().await;
    let listed: Vec<String> = s
        .entries(tenant.map(scope).as_ref(), prefix, limit, Instant::now())
        .await
        .into_iter()
        .map(|e| e.readable_key)
        .collect();
    let want: Vec<String> = want
        .iter()
        .filter_map(|n| POPULATION.iter().find(|p| p.0 == *n))
        .map(|&(_, tenant, target, _)| readable(tenant, target))
        .collect();
    assert_eq!(
        listed, want,
        "tenant {tenant:?} prefix {prefix:?} limit {limit}"
    );
}

#[tokio::test(start_paused = true)]
async fn listing_by_tenant_prefix_and_limit_sorted_by_target() {
    check_list(Some("a"), None, 100, &[4, 1, 2, 3, 5]).await;
    check_list(Some("a"), None, 2, &[4, 1]).await;
    check_list(Some("a"), Some("/api/courses/"), 100, &[1, 2, 3]).await;
    check_list(None, Some("/api/courses/"), 100, &[7, 1, 2, 6, 3]).await;
    check_list(Some(""), None, 100, &[7]).await;
    check_list(Some("c"), None, 100, &[]).await;
    check_list(None, None, 100, &[4, 7, 1, 2, 6, 3, 5, 8]).await;
    check_list(Some("a"), None, 0, &[]).await;
    check_list(None, None, 0, &[]).await;
    let s = populated().await;
    assert_eq!(s.entries(None, None, 3, Instant::now()).await.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn listing_shows_details_and_skips_unpublished() {
    let s = store(1 << 20);
    let t0 = Instant::now();
    let e = entry_at(t0, "a", "/api/x/?p=1", &["x"], "GET x");
    let size = e.weight();
    fill(&s, key(1), e).await;
    insert_pending(&s, key(2), entry_at(t0, "a", "/api/y/", &[], "pending"));
    let soft = Purge {
        soft: true,
        uris: strs(&["/api/x/?p=1"]),
        ..nothing(one("a"))
    };
    s.purge(&soft).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let listed = s.entries(Some(&scope("a")), None, 10, Instant::now()).await;
    let want = EntryInfo {
        readable_key: "GET x".to_owned(),
        tenant: scope("a"),
        target: "/api/x/?p=1".to_owned(),
        status: 200,
        ttl_left: TTL - Duration::from_secs(10),
        age: Duration::from_secs(10),
        size,
        tags: vec!["x".to_owned(), "*".to_owned(), "path:/api/x/".to_owned()],
        stale: true,
        hits: 0,
    };
    assert_eq!(listed, vec![want]);
    assert_eq!(s.entries(None, None, 10, Instant::now()).await.len(), 1);
    assert_eq!(
        s.entries(None, Some("/api/"), 10, Instant::now())
            .await
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn weight_counts_target() {
    let now = Instant::now();
    let bare = entry_at(now, "a", "", &[], "");
    let with = entry_at(now, "a", "/api/x?y=1", &[], "");
    // The target's bytes in the entry's text (which the path index shares).
    let grown = allocation(16 + 10 + 1) - allocation(16 + 1);
    assert_eq!(with.weight() - bare.weight(), grown);
}

#[tokio::test(start_paused = true)]
async fn stats_count_tenants_with_entries() {
    let s = populated().await;
    let tenants: BTreeSet<&str> = POPULATION.iter().map(|p| p.1).collect();
    assert_eq!(s.stats().tenants, tenants.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn busiest_lists_the_entries_with_the_most_hits_first() {
    let s = populated().await;
    let now = Instant::now();
    for (n, times) in [(2, 5), (8, 3), (1, 1), (6, 4)] {
        for _ in 0..times {
            assert!(s.lookup(&key(n), now).await.is_some());
        }
    }
    let busiest = |limit| {
        let s = &s;
        async move {
            s.busiest_entries(limit, now)
                .await
                .into_iter()
                .map(|e| (e.readable_key, e.hits))
                .collect::<Vec<_>>()
        }
    };
    let top = busiest(3).await;
    assert_eq!(
        top,
        vec![
            (readable("a", "/api/courses/7/"), 5),
            (readable("b", "/api/courses/7/"), 4),
            (readable("b", "/api/rooms/?floor=1"), 3),
        ]
    );
    assert_eq!(busiest(100).await.len(), POPULATION.len());
    assert_eq!(busiest(100).await[3].1, 1);
    assert!(busiest(0).await.is_empty());
    // A miss (a key never stored) counts for no entry; an unpublished entry is not listed.
    assert!(s.lookup(&key(99), now).await.is_none());
    insert_pending(&s, key(42), entry_at(now, "a", "/api/p/", &[], "pending"));
    assert_eq!(busiest(100).await.len(), POPULATION.len());
}
