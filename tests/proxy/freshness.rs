//! Freshness past the TTL: stale-while-revalidate (one background refresh under a stampede),
//! stale-if-error (backend stopped, 5xx), revalidation with the backend's 304, soft purges
//! served while refreshed, and negative caching. Time moves by pausing the runtime's clock,
//! advancing it past the TTL and resuming it.

use crate::support::client::TestClient;
use crate::support::origin::{Gate, Origin, Reply};
use crate::support::wait::within;
use crate::support::TestProxy;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ORG: &[(&str, &str)] = &[("x-org-id", "42")];

fn config(route: &str) -> String {
    format!(
        r#"
[upstream]
url = "{{upstream}}"
connect_timeout = "1s"
timeout = "2s"

[cache]
max_memory = "64MiB"
tenant = {{ header = "X-Org-Id" }}
coalesce_timeout = "5s"

[[route]]
path = "/api/items/{{*rest}}"
ttl = "10s"
{route}
"#
    )
}

/// Moves the clock past `by` and lets it run on from there.
async fn later(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// An origin whose body is `v<version>` and whose status the test sets.
async fn versioned(status: Arc<AtomicU16>) -> Origin {
    Origin::with(move |seen| {
        Reply::ok(format!("v{}", seen.version)).status(status.load(Ordering::SeqCst))
    })
    .await
}

#[tokio::test]
async fn concurrent_stale_hits_send_one_refresh_and_are_answered_at_once() {
    let gate = Gate::new();
    let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (g, h) = (gate.clone(), held.clone());
    let origin = Origin::with(move |seen| {
        let reply = Reply::ok(format!("v{}", seen.version));
        if h.load(Ordering::SeqCst) {
            reply.gate(&g)
        } else {
            reply
        }
    })
    .await;
    let proxy = TestProxy::start(&config("stale_while_revalidate = \"30s\""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let first = client.get("/api/items/1", ORG).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(first.text(), "v1");

    origin.set_version(2);
    held.store(true, Ordering::SeqCst);
    later(Duration::from_secs(11)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    // Twenty concurrent requests for the expired entry: each answered at once with the stale
    // body while the one refresh is held at the gate.
    let answers = within("stale answers", async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let client = TestClient::new(proxy.addr);
            set.spawn(async move { client.get("/api/items/1", ORG).await });
        }
        set.join_all().await
    })
    .await;
    for answer in &answers {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.cache_status(), "cachegate; hit; fwd=stale");
        assert_eq!(answer.text(), "v1");
        assert!(answer.header("age").is_some());
    }
    gate.arrivals(1).await;
    assert_eq!(origin.hits(), 2, "exactly one background refresh");
    gate.open();
    // Once the refresh is stored, the fresh body is a plain hit.
    let mut hits = origin.watch_hits();
    crate::support::wait::until("the refresh", &mut hits, |n| *n >= 2).await;
    let refreshed = within("the refreshed entry", async {
        loop {
            let answer = client.get("/api/items/1", ORG).await;
            if answer.cache_status() == "cachegate; hit" {
                return answer;
            }
            assert_eq!(answer.cache_status(), "cachegate; hit; fwd=stale");
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(refreshed.text(), "v2");
    assert_eq!(origin.hits(), 2);
    let stats = proxy.proxy.stats().snapshot();
    assert!(stats.stale_while_revalidate >= 20, "{stats:?}");
}

#[tokio::test]
async fn without_windows_an_expired_entry_is_a_miss_as_before() {
    let status = Arc::new(AtomicU16::new(200));
    let origin = versioned(status.clone()).await;
    let proxy = TestProxy::start(&config(""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/items/1", ORG).await;
    later(Duration::from_secs(11)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    status.store(503, Ordering::SeqCst);
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; detail=status");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn stale_if_error_answers_while_the_backend_is_stopped() {
    let status = Arc::new(AtomicU16::new(200));
    let origin = versioned(status).await;
    let proxy = TestProxy::start(&config("stale_if_error = \"10m\""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    assert_eq!(client.get("/api/items/1", ORG).await.text(), "v1");
    origin.stop();
    later(Duration::from_secs(11)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "v1");
    assert_eq!(
        answer.cache_status(),
        "cachegate; hit; fwd=stale; detail=backend-down"
    );
    // Past the window, the failure shows.
    later(Duration::from_secs(10 * 60)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; detail=error");
    let stats = proxy.proxy.stats().snapshot();
    assert_eq!(stats.stale_if_error, 1);
}

#[tokio::test]
async fn stale_if_error_answers_a_5xx_and_the_origins_own_window_counts() {
    let status = Arc::new(AtomicU16::new(200));
    let s = status.clone();
    // The route has no window; the origin grants one (RFC 5861).
    let origin = Origin::with(move |seen| {
        Reply::ok(format!("v{}", seen.version))
            .status(s.load(Ordering::SeqCst))
            .header("cache-control", "max-age=60, stale-if-error=300")
    })
    .await;
    let proxy = TestProxy::start(&config(""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/items/1", ORG).await;
    later(Duration::from_secs(11)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    status.store(503, Ordering::SeqCst);
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "v1");
    assert_eq!(
        answer.cache_status(),
        "cachegate; hit; fwd=stale; detail=status-503"
    );
    // The backend recovers: the next request fills again.
    status.store(200, Ordering::SeqCst);
    origin.set_version(2);
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(answer.text(), "v2");
}

#[tokio::test]
async fn a_304_refreshes_the_entry_without_a_body() {
    let bodies = Arc::new(AtomicU64::new(0));
    let b = bodies.clone();
    let origin = Origin::with(move |seen| {
        if seen.header("if-none-match") == Some("\"v1\"") {
            return Reply::ok("")
                .status(304)
                .header("etag", "\"v1\"")
                .header("x-refreshed", "yes");
        }
        b.fetch_add(1, Ordering::SeqCst);
        Reply::ok("the body")
            .header("etag", "\"v1\"")
            .header("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT")
    })
    .await;
    // An entry is held past its TTL only inside a stale window: here stale-if-error's, in
    // which an expired entry is revalidated before it is answered.
    let proxy = TestProxy::start(&config("stale_if_error = \"1m\""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    // A client's own conditional headers never go on a fill.
    let first = client
        .get(
            "/api/items/1",
            &[("x-org-id", "42"), ("if-none-match", "\"zzz\"")],
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(origin.seen()[0].header("if-none-match"), None);
    later(Duration::from_secs(11)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "the body");
    assert_eq!(
        answer.cache_status(),
        "cachegate; fwd=stale; fwd-status=304; stored"
    );
    assert_eq!(answer.header("x-refreshed"), Some("yes"));
    assert_eq!(answer.header("content-length"), Some("8"));
    let seen = origin.seen();
    assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(
        seen[1].header("if-modified-since"),
        Some("Tue, 01 Dec 2026 10:00:00 GMT")
    );
    assert_eq!(bodies.load(Ordering::SeqCst), 1, "one body sent");
    // Fresh again for a whole TTL.
    let hit = client.get("/api/items/1", ORG).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    assert_eq!(hit.text(), "the body");
    assert_eq!(origin.hits(), 2);
    assert_eq!(proxy.proxy.stats().snapshot().revalidated, 1);
}

#[tokio::test]
async fn soft_purged_entries_are_served_while_refreshed_where_the_route_allows() {
    let status = Arc::new(AtomicU16::new(200));
    let origin = versioned(status).await;
    let proxy = TestProxy::start(&config("stale_while_revalidate = \"30s\""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/items/1", ORG).await;
    origin.set_version(2);
    let purged = proxy
        .admin(
            http::Method::POST,
            "/purge",
            r#"{"tenant": "42", "paths": ["/api/items/1"], "soft": true}"#,
        )
        .await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(
        answer.cache_status(),
        "cachegate; hit; fwd=stale; detail=soft-purged"
    );
    assert_eq!(answer.text(), "v1");
    let mut hits = origin.watch_hits();
    crate::support::wait::until("the refresh", &mut hits, |n| *n >= 2).await;
    let refreshed = within("the refreshed entry", async {
        loop {
            let answer = client.get("/api/items/1", ORG).await;
            if answer.cache_status() == "cachegate; hit" {
                return answer;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(refreshed.text(), "v2");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn negative_answers_are_cached_for_their_own_ttl() {
    let status = Arc::new(AtomicU16::new(404));
    let origin = versioned(status.clone()).await;
    let proxy = TestProxy::start(
        &config("negative_ttl = \"2s\"\nnegative_statuses = [404, 410]"),
        &origin.url(),
    )
    .await;
    let client = TestClient::new(proxy.addr);
    let first = client.get("/api/items/gone", ORG).await;
    assert_eq!(first.status, 404);
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    let second = client.get("/api/items/gone", ORG).await;
    assert_eq!(second.status, 404);
    assert_eq!(second.cache_status(), "cachegate; hit");
    // A 403 is not among them.
    status.store(403, Ordering::SeqCst);
    let forbidden = client.get("/api/items/other", ORG).await;
    assert_eq!(
        forbidden.cache_status(),
        "cachegate; fwd=miss; detail=status"
    );
    // Past the negative TTL (far below the route's 10s), the 404 is asked for again.
    status.store(200, Ordering::SeqCst);
    later(Duration::from_secs(3)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    let now_there = client.get("/api/items/gone", ORG).await;
    assert_eq!(now_there.status, 200);
    assert_eq!(now_there.cache_status(), "cachegate; fwd=miss; stored");
}

#[tokio::test]
async fn a_background_refresh_that_overlapped_a_purge_is_not_stored() {
    let gate = Gate::new();
    let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (g, h) = (gate.clone(), held.clone());
    let origin = Origin::with(move |seen| {
        let reply = Reply::ok(format!("v{}", seen.version));
        if h.swap(false, Ordering::SeqCst) {
            reply.gate(&g)
        } else {
            reply
        }
    })
    .await;
    let proxy = TestProxy::start(&config("stale_while_revalidate = \"30s\""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/items/1", ORG).await;
    held.store(true, Ordering::SeqCst);
    later(Duration::from_secs(11)).await;
    let client = TestClient::new(proxy.addr);
    let stale = client.get("/api/items/1", ORG).await;
    assert_eq!(stale.cache_status(), "cachegate; hit; fwd=stale");
    gate.arrivals(1).await;
    // The data changes and is purged while the refresh (which read v1) is held.
    let purged = proxy
        .admin(
            http::Method::POST,
            "/purge",
            r#"{"tenant": "42", "paths": ["/api/items/1"]}"#,
        )
        .await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    origin.set_version(2);
    gate.open();
    crate::support::wait::poll_until("the fenced refresh", || {
        proxy.proxy.store().stats().fenced > 0
    })
    .await;
    let after = client.get("/api/items/1", ORG).await;
    assert_eq!(after.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(after.text(), "v2");
}
