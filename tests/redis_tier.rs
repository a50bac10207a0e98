//! The shared tier against a real `redis-server` (and a real local Redis Cluster).

#![allow(clippy::unwrap_used)]

#[path = "support/redis.rs"]
mod redis_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachegate::clock::UnixMillis;
use cachegate::policy::freshness::Lifetimes;
use cachegate::policy::vary::Selection;
use cachegate::store::shared::{
    Breaker, Lease, LeaseWait, SharedError, SharedEvent, SharedOptions, SharedStored, SharedTier,
};
use cachegate::store::{
    compact, extra_tags, stored, CachedResponse, EntryParts, EntryText, Key, Purge, PurgeScope,
    Tag, TenantScope,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use redis_support::{RedisCluster, RedisServer};
use tokio::sync::mpsc;

/// The longest any wait for an event lasts.
const LIMIT: Duration = Duration::from_secs(10);

fn options(urls: Vec<String>, cluster: bool) -> SharedOptions {
    SharedOptions {
        urls,
        cluster,
        prefix: "cgtest".to_string(),
        command_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        compress_above: 256,
        breaker_failures: 2,
        breaker_cooldown: Duration::from_millis(100),
        fence_retention: Duration::from_secs(60),
        replay_limit: 8,
    }
}

/// A tier that Redis answered, and its events after the first `Subscribed`.
async fn connect(opts: SharedOptions) -> (SharedTier, mpsc::Receiver<SharedEvent>) {
    let (tier, mut events) = SharedTier::connect(opts).unwrap();
    assert!(tier.ready(LIMIT).await, "redis did not answer");
    expect(&mut events, "subscribed", |e| {
        matches!(e, SharedEvent::Subscribed)
    })
    .await;
    (tier, events)
}

async fn single(server: &RedisServer) -> (SharedTier, mpsc::Receiver<SharedEvent>) {
    connect(options(vec![server.url()], false)).await
}

/// Waits for the first event matching `want`, skipping others; fails after [`LIMIT`].
async fn expect(
    events: &mut mpsc::Receiver<SharedEvent>,
    what: &str,
    want: impl Fn(&SharedEvent) -> bool,
) -> SharedEvent {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) if want(&e) => return e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event channel closed waiting for {what}"),
            Err(_) => panic!("waited {LIMIT:?} for {what}, in vain"),
        }
    }
}

fn tenant(id: &str) -> TenantScope {
    TenantScope::one(id)
}

fn key(name: &str) -> Key {
    Key(*blake3::hash(name.as_bytes()).as_bytes())
}

/// An entry of `tenant` filled from `target` (`path?query`), with extra named `tags`.
fn entry(tenant: &TenantScope, target: &str, tags: &[&str], body: &[u8]) -> CachedResponse {
    let extra: Vec<Tag> = tags.iter().map(|t| Tag::parse(t)).collect();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    let content = compact(
        StatusCode::OK,
        &headers,
        [Bytes::copy_from_slice(body)].iter(),
    );
    let now = UnixMillis::now();
    CachedResponse::from(EntryParts {
        content,
        stored_at: now,
        lifetimes: Lifetimes {
            fresh_until: now.plus(Duration::from_secs(60)),
            stale_while_revalidate_until: now.plus(Duration::from_secs(60)),
            stale_if_error_until: now.plus(Duration::from_secs(60)),
            revalidate_until: now.plus(Duration::from_secs(60)),
        },
        extra_tags: extra_tags(&extra),
        tenant: tenant.clone(),
        text: EntryText::new(target, &format!("GET {target}")),
        key: key(&format!("{tenant:?} {target}")),
        variant: None,
        route: 0,
    })
}

fn until() -> UnixMillis {
    UnixMillis::now().plus(Duration::from_secs(60))
}

async fn fill(tier: &SharedTier, e: &CachedResponse) {
    let ticket = tier.ticket(&e.tenant).await.unwrap();
    assert_eq!(
        tier.store(&ticket, e, until()).await.unwrap(),
        SharedStored::Stored
    );
}

async fn held(tier: &SharedTier, e: &CachedResponse) -> bool {
    let found = tier
        .lookup(&e.tenant, &e.key, &|_: &Selection| unreachable!())
        .await
        .unwrap();
    found.entry.is_some()
}

#[tokio::test]
async fn store_and_lookup_roundtrip_with_a_variant() {
    let server = RedisServer::start();
    let (tier, _events) = single(&server).await;
    let t = tenant("acme");

    // Plain entry, with a body large enough to be compressed.
    let body = b"hello world ".repeat(100);
    let plain = entry(&t, "/items/1", &["items"], &body);
    fill(&tier, &plain).await;
    let found = tier
        .lookup(&t, &plain.key, &|_: &Selection| unreachable!())
        .await
        .unwrap();
    let got = found.entry.unwrap();
    assert_eq!(got.body(), plain.body());
    assert_eq!(got.headers(), plain.headers());
    assert_eq!(got.tags(), plain.tags());
    assert_eq!(found.key, Some(plain.key));
    assert!(found.varies.is_none() && !found.stale);

    // A varying primary key: the record says what it varies on, the entry is the variant's.
    let primary = key("primary");
    let selection = Selection {
        headers: vec![HeaderName::from_static("accept-language")],
        by_user: false,
    };
    let mut variant = entry(&t, "/items/2", &[], b"bonjour");
    variant.key = key("variant-fr");
    variant.variant = Some(Arc::new(selection.clone()));
    fill(&tier, &variant).await;
    tier.store_vary(&t, &primary, Some(&selection), until())
        .await
        .unwrap();
    let seen = selection.clone();
    let found = tier
        .lookup(&t, &primary, &move |s: &Selection| {
            assert_eq!(*s, seen);
            key("variant-fr")
        })
        .await
        .unwrap();
    assert_eq!(found.varies.as_deref(), Some(&selection));
    assert_eq!(found.key, Some(key("variant-fr")));
    assert_eq!(found.entry.unwrap().body(), Bytes::from_static(b"bonjour"));

    // No longer varying.
    tier.store_vary(&t, &primary, None, until()).await.unwrap();
    let found = tier
        .lookup(&t, &primary, &|_: &Selection| unreachable!())
        .await
        .unwrap();
    assert!(found.varies.is_none() && found.entry.is_none());

    // Metadata update keeps the body.
    let mut fresher = plain.clone();
    let mut lifetimes = plain.lifetimes();
    lifetimes.fresh_until = plain.fresh_until().plus(Duration::from_secs(30));
    lifetimes.stale_while_revalidate_until = lifetimes.fresh_until.plus(Duration::from_secs(20));
    lifetimes.stale_if_error_until = lifetimes.fresh_until.plus(Duration::from_secs(40));
    lifetimes.revalidate_until = lifetimes.fresh_until.plus(Duration::from_secs(50));
    fresher.set_lifetimes(lifetimes);
    let mut headers = fresher.headers().to_map();
    headers.insert("etag", HeaderValue::from_static("\"v2\""));
    // Headers only: the update keeps the stored body.
    fresher.content = stored(&headers);
    assert!(tier.update_meta(&fresher, until()).await.unwrap());
    let got = tier
        .lookup(&t, &plain.key, &|_: &Selection| unreachable!())
        .await
        .unwrap()
        .entry
        .unwrap();
    assert_eq!(got.body(), plain.body());
    assert_eq!(
        got.lifetimes(),
        fresher.lifetimes(),
        "the stale windows start again too"
    );
    assert_eq!(got.headers().get(&http::header::ETAG).unwrap(), "\"v2\"");
    let gone = entry(&t, "/never", &[], b"");
    assert!(!tier.update_meta(&gone, until()).await.unwrap());

    let stats = tier.stats();
    assert_eq!(stats.breaker, Some(Breaker::Closed));
    assert!(
        stats.hits >= 3 && stats.misses >= 1 && stats.stores == 2,
        "{stats:?}"
    );

    let info = tier.info().await.unwrap();
    assert!(info.version.starts_with('7'), "{info:?}");
    assert_eq!(info.mode, "standalone");
    assert!(info.used_memory > 0);
    assert_eq!((info.tenants, info.entries), (1, 2));
}

#[tokio::test]
async fn a_tag_purge_on_one_instance_removes_the_entry_and_reaches_the_other() {
    let server = RedisServer::start();
    let (a, mut a_events) = single(&server).await;
    let (b, mut b_events) = single(&server).await;
    let t = tenant("acme");
    let tagged = entry(&t, "/items/1", &["items"], b"one");
    let other = entry(&t, "/users/1", &["users"], b"two");
    fill(&a, &tagged).await;
    fill(&a, &other).await;
    assert!(held(&b, &tagged).await, "shared between instances");

    let purge = Purge::tags(PurgeScope::Only(t.clone()), vec![Tag::parse("items")]);
    assert_eq!(b.purge(&purge).await.unwrap(), 1);
    assert!(!held(&a, &tagged).await);
    assert!(held(&a, &other).await);
    match expect(&mut a_events, "the purge", |e| {
        matches!(e, SharedEvent::Purged(_))
    })
    .await
    {
        SharedEvent::Purged(p) => assert_eq!(p, purge),
        _ => unreachable!(),
    }
    assert!(a.stats().invalidations_received >= 1);
    // Its own purge does not come back to b: a purge from a does, and is the first b sees.
    let second = Purge::tags(PurgeScope::Only(t.clone()), vec![Tag::parse("users")]);
    assert_eq!(a.purge(&second).await.unwrap(), 1);
    match expect(&mut b_events, "a's purge", |e| {
        matches!(e, SharedEvent::Purged(_))
    })
    .await
    {
        SharedEvent::Purged(p) => assert_eq!(p, second),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn prefix_and_uri_purges() {
    let server = RedisServer::start();
    let (tier, _events) = single(&server).await;
    let t = tenant("acme");
    let q1 = entry(&t, "/api/items/1?a=1", &[], b"1");
    let q2 = entry(&t, "/api/items/1?a=2", &[], b"2");
    let sub = entry(&t, "/api/items/2", &[], b"3");
    let outside = entry(&t, "/api/other", &[], b"4");
    let also_outside = entry(&t, "/api/items", &[], b"5");
    for e in [&q1, &q2, &sub, &outside, &also_outside] {
        fill(&tier, e).await;
    }

    let mut by_uri = Purge::tags(PurgeScope::Only(t.clone()), vec![]);
    by_uri.uris = vec![Arc::from("/api/items/1?a=1")];
    assert_eq!(tier.purge(&by_uri).await.unwrap(), 1);
    assert!(!held(&tier, &q1).await);
    assert!(held(&tier, &q2).await);

    let mut by_prefix = Purge::tags(PurgeScope::Only(t.clone()), vec![]);
    by_prefix.prefixes = vec![Arc::from("/api/items/")];
    assert_eq!(tier.purge(&by_prefix).await.unwrap(), 2);
    assert!(!held(&tier, &q2).await && !held(&tier, &sub).await);
    assert!(held(&tier, &outside).await && held(&tier, &also_outside).await);

    let mut by_path = Purge::tags(PurgeScope::Only(t.clone()), vec![]);
    by_path.paths = vec![Arc::from("/api/other")];
    assert_eq!(tier.purge(&by_path).await.unwrap(), 1);

    let mut everything = Purge::tags(PurgeScope::Only(t.clone()), vec![]);
    everything.prefixes = vec![Arc::from("")];
    assert_eq!(tier.purge(&everything).await.unwrap(), 1);
    assert!(!held(&tier, &also_outside).await);
}

#[tokio::test]
async fn a_purge_of_one_tenant_never_removes_another_tenants_entries() {
    let server = RedisServer::start();
    let (tier, _events) = single(&server).await;
    let (a, b) = (tenant("a"), tenant("b"));
    let ea = entry(&a, "/items/1", &["items"], b"a");
    let eb = entry(&b, "/items/1", &["items"], b"b");
    let es = entry(&TenantScope::Shared, "/items/1", &["items"], b"s");
    for e in [&ea, &eb, &es] {
        fill(&tier, e).await;
    }
    let mut all_of_a = Purge::tags(PurgeScope::Only(a.clone()), vec![Tag::parse("items")]);
    all_of_a.all = true;
    all_of_a.prefixes = vec![Arc::from("")];
    assert_eq!(tier.purge(&all_of_a).await.unwrap(), 1);
    assert!(!held(&tier, &ea).await);
    assert!(held(&tier, &eb).await && held(&tier, &es).await);
}

#[tokio::test]
async fn a_fill_that_overlapped_a_purge_of_its_tags_is_fenced() {
    let server = RedisServer::start();
    let (a, _ea) = single(&server).await;
    let (b, _eb) = single(&server).await;
    let t = tenant("acme");
    let e = entry(&t, "/items/1", &["items"], b"old");

    // A purge of an unrelated tag after the ticket does not fence.
    let ticket = a.ticket(&t).await.unwrap();
    b.purge(&Purge::tags(
        PurgeScope::Only(t.clone()),
        vec![Tag::parse("users")],
    ))
    .await
    .unwrap();
    assert_eq!(
        a.store(&ticket, &e, until()).await.unwrap(),
        SharedStored::Stored
    );

    // A purge of one of its tags, on another instance, does.
    let ticket = a.ticket(&t).await.unwrap();
    b.purge(&Purge::tags(
        PurgeScope::Only(t.clone()),
        vec![Tag::parse("items")],
    ))
    .await
    .unwrap();
    assert_eq!(
        a.store(&ticket, &e, until()).await.unwrap(),
        SharedStored::Fenced
    );
    assert!(!held(&a, &e).await);

    // So does a purge of its path, or of every tenant.
    let ticket = a.ticket(&t).await.unwrap();
    let mut by_path = Purge::tags(PurgeScope::Only(t.clone()), vec![]);
    by_path.paths = vec![Arc::from("/items/1")];
    b.purge(&by_path).await.unwrap();
    assert_eq!(
        a.store(&ticket, &e, until()).await.unwrap(),
        SharedStored::Fenced
    );
    let ticket = a.ticket(&t).await.unwrap();
    let mut everything = Purge::tags(PurgeScope::All, vec![]);
    everything.all = true;
    b.purge(&everything).await.unwrap();
    assert_eq!(
        a.store(&ticket, &e, until()).await.unwrap(),
        SharedStored::Fenced
    );

    // A ticket taken after the purge stores.
    let ticket = a.ticket(&t).await.unwrap();
    assert_eq!(
        a.store(&ticket, &e, until()).await.unwrap(),
        SharedStored::Stored
    );
    assert_eq!(a.stats().fenced, 3);
}

#[tokio::test]
async fn a_purge_of_all_tenants_reaches_every_registered_tenant() {
    let server = RedisServer::start();
    let (tier, _events) = single(&server).await;
    let entries: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| entry(&tenant(id), "/x", &["items"], id.as_bytes()))
        .chain([entry(&TenantScope::Shared, "/x", &["items"], b"s")])
        .collect();
    for e in &entries {
        fill(&tier, e).await;
    }
    let purge = Purge::tags(PurgeScope::All, vec![Tag::parse("items")]);
    assert_eq!(tier.purge(&purge).await.unwrap(), 4);
    for e in &entries {
        assert!(!held(&tier, e).await);
    }
}

#[tokio::test]
async fn a_soft_purge_marks_entries_stale_until_refilled() {
    let server = RedisServer::start();
    let (tier, _events) = single(&server).await;
    let t = tenant("acme");
    let e = entry(&t, "/items/1", &["items", "more"], b"x");
    fill(&tier, &e).await;
    let mut soft = Purge::tags(
        PurgeScope::Only(t.clone()),
        vec![Tag::parse("items"), Tag::parse("more")],
    );
    soft.soft = true;
    assert_eq!(
        tier.purge(&soft).await.unwrap(),
        1,
        "each entry counted once"
    );
    let found = tier
        .lookup(&t, &e.key, &|_: &Selection| unreachable!())
        .await
        .unwrap();
    assert!(found.stale && found.entry.is_some());
    assert_eq!(tier.purge(&soft).await.unwrap(), 0, "already stale");
    fill(&tier, &e).await;
    let found = tier
        .lookup(&t, &e.key, &|_: &Selection| unreachable!())
        .await
        .unwrap();
    assert!(!found.stale && found.entry.is_some());
}

#[tokio::test]
async fn redis_down_fails_fast_opens_the_breaker_and_replays_purges_when_back() {
    let mut server = RedisServer::start();
    // a's cooldown outlasts b's resubscription after the restart, so b hears the replay.
    let mut a_opts = options(vec![server.url()], false);
    a_opts.breaker_failures = 1;
    a_opts.breaker_cooldown = Duration::from_secs(2);
    let (a, _a_events) = connect(a_opts).await;
    let (b, mut b_events) = single(&server).await;
    let t = tenant("acme");

    server.stop();
    expect(&mut b_events, "b's disconnection", |e| {
        matches!(e, SharedEvent::Disconnected)
    })
    .await;
    let started = Instant::now();
    let purge = Purge::tags(PurgeScope::Only(t.clone()), vec![Tag::parse("items")]);
    let err = a.purge(&purge).await.unwrap_err();
    assert!(
        matches!(
            err,
            SharedError::Redis(_) | SharedError::Timeout(_) | SharedError::Unavailable
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.stats().breaker, Some(Breaker::Open));
    assert!(!a.available());
    assert_eq!(a.stats().replay_pending, 1);
    // While open, everything fails at once.
    let started = Instant::now();
    assert!(matches!(
        a.lookup(&t, &key("k"), &|_: &Selection| unreachable!())
            .await,
        Err(SharedError::Unavailable)
    ));
    assert!(matches!(a.ticket(&t).await, Err(SharedError::Unavailable)));
    assert_eq!(
        a.wait_lease(&t, &key("k"), Duration::from_secs(5)).await,
        LeaseWait::Released
    );
    assert!(started.elapsed() < Duration::from_millis(100));

    server.restart();
    expect(&mut b_events, "b's resubscription", |e| {
        matches!(e, SharedEvent::Subscribed)
    })
    .await;
    assert!(
        a.stats().replay_pending == 1,
        "a's breaker still cooling down"
    );
    match expect(&mut b_events, "the replayed purge", |e| {
        matches!(e, SharedEvent::Purged(_))
    })
    .await
    {
        SharedEvent::Purged(p) => assert_eq!(p, purge),
        _ => unreachable!(),
    }
    assert!(a.ready(LIMIT).await);
    assert_eq!(a.stats().replay_pending, 0);
    assert!(a.stats().breaker_opened >= 1);
    // The replayed purge bumped the restarted server's sequence.
    assert!(b.ready(LIMIT).await);
    assert_eq!(b.ticket(&t).await.unwrap().seq, 1);
}

#[tokio::test]
async fn a_replay_queue_beyond_its_limit_becomes_one_purge_of_everything() {
    let mut server = RedisServer::start();
    let mut opts = options(vec![server.url()], false);
    opts.replay_limit = 2;
    opts.breaker_failures = 1;
    let (a, _events) = connect(opts).await;
    server.stop();
    for tag in ["a", "b", "c", "d"] {
        let purge = Purge::tags(PurgeScope::Only(tenant("t")), vec![Tag::parse(tag)]);
        assert!(a.purge(&purge).await.is_err());
    }
    assert_eq!(a.stats().replay_pending, 1);
}

#[tokio::test]
async fn a_killed_subscription_is_reported_and_restored() {
    let server = RedisServer::start();
    let (tier, mut events) = single(&server).await;
    assert!(tier.subscribed());
    assert!(server.kill_pubsub() >= 1);
    expect(&mut events, "disconnected", |e| {
        matches!(e, SharedEvent::Disconnected)
    })
    .await;
    expect(&mut events, "subscribed again", |e| {
        matches!(e, SharedEvent::Subscribed)
    })
    .await;
    assert!(tier.subscribed());
    assert_eq!(tier.stats().pubsub_reconnects, 1);
    // And purges arrive again.
    let (other, _e) = single(&server).await;
    let purge = Purge::tags(PurgeScope::Only(tenant("t")), vec![Tag::parse("x")]);
    other.purge(&purge).await.unwrap();
    expect(&mut events, "a purge", |e| {
        matches!(e, SharedEvent::Purged(_))
    })
    .await;
}

#[tokio::test]
async fn leases_let_one_instance_fill_and_wake_the_waiters() {
    let server = RedisServer::start();
    let (a, _ea) = single(&server).await;
    let (b, _eb) = single(&server).await;
    let t = tenant("acme");
    let k = key("cold");
    let ttl = Duration::from_secs(5);

    let Lease::Acquired(token) = a.lease(&t, &k, ttl).await.unwrap() else {
        panic!("first lease")
    };
    assert!(matches!(b.lease(&t, &k, ttl).await.unwrap(), Lease::Held));
    let waiter = {
        let b = b.clone();
        let t = t.clone();
        tokio::spawn(async move { b.wait_lease(&t, &k, LIMIT).await })
    };
    let started = Instant::now();
    a.release(token, true).await.unwrap();
    assert_eq!(waiter.await.unwrap(), LeaseWait::Filled);
    assert!(started.elapsed() < Duration::from_secs(1));

    // A filled marker does not hold the next lease; a release without a fill wakes as Released.
    let Lease::Acquired(token) = b.lease(&t, &k, ttl).await.unwrap() else {
        panic!("lease after a fill")
    };
    let waiter = {
        let a = a.clone();
        let t = t.clone();
        tokio::spawn(async move { a.wait_lease(&t, &k, LIMIT).await })
    };
    b.release(token, false).await.unwrap();
    assert_eq!(waiter.await.unwrap(), LeaseWait::Released);

    // A holder that dies: the lease expires and the waiter fills itself.
    let short = Duration::from_millis(150);
    let Lease::Acquired(_dead) = a.lease(&t, &k, short).await.unwrap() else {
        panic!("lease")
    };
    assert_eq!(b.wait_lease(&t, &k, LIMIT).await, LeaseWait::Released);
    // And a wait that outlasts its bound times out.
    let Lease::Acquired(_slow) = a.lease(&t, &k, ttl).await.unwrap() else {
        panic!("lease")
    };
    assert_eq!(
        b.wait_lease(&t, &k, Duration::from_millis(100)).await,
        LeaseWait::TimedOut
    );
    assert_eq!(a.stats().leases_acquired, 3);
}

#[tokio::test]
async fn a_cluster_shares_and_purges_across_slots() {
    let cluster = RedisCluster::start(3);
    let (a, mut a_events) = connect(options(cluster.urls(), true)).await;
    let (b, _b_events) = connect(options(cluster.urls(), true)).await;
    let tenants: Vec<TenantScope> = (0..8).map(|i| tenant(&format!("t{i}"))).collect();
    let entries: Vec<_> = tenants
        .iter()
        .map(|t| entry(t, "/items/1", &["items"], b"x"))
        .collect();
    for e in &entries {
        fill(&a, e).await;
        assert!(held(&b, e).await);
    }
    // A variant in a cluster: record and entry share the tenant's slot.
    let t0 = &tenants[0];
    let sel = Selection {
        headers: vec![HeaderName::from_static("accept")],
        by_user: false,
    };
    b.store_vary(t0, &key("p"), Some(&sel), until())
        .await
        .unwrap();
    let mut v = entry(t0, "/v", &[], b"v");
    v.key = key("p-variant");
    fill(&b, &v).await;
    let found = a
        .lookup(t0, &key("p"), &|_: &Selection| key("p-variant"))
        .await
        .unwrap();
    assert!(found.entry.is_some() && found.varies.is_some());

    // One tenant's purge.
    let purge = Purge::tags(
        PurgeScope::Only(tenants[1].clone()),
        vec![Tag::parse("items")],
    );
    assert_eq!(b.purge(&purge).await.unwrap(), 1);
    assert!(!held(&a, &entries[1]).await && held(&a, &entries[2]).await);
    expect(&mut a_events, "the purge", |e| {
        matches!(e, SharedEvent::Purged(_))
    })
    .await;

    // Fenced across instances.
    let ticket = a.ticket(&tenants[2]).await.unwrap();
    b.purge(&Purge::tags(
        PurgeScope::Only(tenants[2].clone()),
        vec![Tag::parse("items")],
    ))
    .await
    .unwrap();
    assert_eq!(
        a.store(&ticket, &entries[2], until()).await.unwrap(),
        SharedStored::Fenced
    );

    // Every tenant.
    let mut all = Purge::tags(PurgeScope::All, vec![]);
    all.all = true;
    let purged = b.purge(&all).await.unwrap();
    assert_eq!(purged, entries.len() - 2 + 1);
    for e in &entries {
        assert!(!held(&a, e).await);
    }
    let info = a.info().await.unwrap();
    assert_eq!(info.mode, "cluster");
    assert_eq!(info.tenants, tenants.len() as u64);
}

#[tokio::test]
async fn urls_are_checked_but_redis_being_down_is_not_an_error() {
    assert!(SharedTier::connect(options(vec!["nonsense://x".to_string()], false)).is_err());
    assert!(SharedTier::connect(options(vec![], false)).is_err());
    // rediss:// is accepted (TLS through rustls); nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (tier, _events) =
        SharedTier::connect(options(vec![format!("rediss://127.0.0.1:{port}/0")], false)).unwrap();
    assert!(!tier.ready(Duration::from_millis(300)).await);
    assert!(tier
        .lookup(&tenant("t"), &key("k"), &|_: &Selection| unreachable!())
        .await
        .is_err());
    let (tier, _events) =
        SharedTier::connect(options(vec![format!("redis://127.0.0.1:{port}/0")], false)).unwrap();
    assert!(!tier.ready(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn a_fill_older_than_the_fence_retention_is_fenced_once_purges_happened() {
    let server = RedisServer::start();
    let mut opts = options(vec![server.url()], false);
    opts.fence_retention = Duration::from_millis(1);
    let (tier, _events) = connect(opts).await;
    let t = tenant("acme");
    let e = entry(&t, "/items/1", &["items"], b"x");

    // No purge since the ticket: however old, it stores.
    let ticket = tier.ticket(&t).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        tier.store(&ticket, &e, until()).await.unwrap(),
        SharedStored::Stored
    );

    // A purge of another tag, but the records that could tell are no longer kept.
    let ticket = tier.ticket(&t).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    tier.purge(&Purge::tags(
        PurgeScope::Only(t.clone()),
        vec![Tag::parse("other")],
    ))
    .await
    .unwrap();
    assert_eq!(
        tier.store(&ticket, &e, until()).await.unwrap(),
        SharedStored::Fenced
    );
}
