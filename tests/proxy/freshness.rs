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
    // An expired entry with validators is revalidated before it is answered (held for
    // `revalidate_for`, and here inside stale-if-error's window too).
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

#[tokio::test]
async fn stale_if_error_answers_a_backend_that_hangs_past_the_upstream_timeout() {
    let gate = Gate::new();
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (g, h) = (gate.clone(), hang.clone());
    let origin = Origin::with(move |seen| {
        let reply = Reply::ok(format!("v{}", seen.version));
        if h.load(Ordering::SeqCst) {
            reply.gate(&g)
        } else {
            reply
        }
    })
    .await;
    // A short `[upstream] timeout`, so the hanging fill gives up soon.
    let config =
        config("stale_if_error = \"10m\"").replace("timeout = \"2s\"", "timeout = \"300ms\"");
    let proxy = TestProxy::start(&config, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    assert_eq!(client.get("/api/items/1", ORG).await.text(), "v1");
    later(Duration::from_secs(11)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    hang.store(true, Ordering::SeqCst);
    origin.set_version(2);
    let answer = within(
        "the stale answer after the timeout",
        client.get("/api/items/1", ORG),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "v1");
    assert_eq!(
        answer.cache_status(),
        "cachegate; hit; fwd=stale; detail=timeout"
    );
    gate.arrivals(1).await;
    assert_eq!(proxy.proxy.stats().snapshot().stale_if_error, 1);
}

// === honour-origin mode: the origin's directives shape the stale windows ===

/// An honour-origin route whose origin answers `v<version>` with this `Cache-Control`.
async fn honour(route: &str, cache_control: &'static str) -> (Origin, TestProxy, TestClient) {
    let origin = Origin::with(move |seen| {
        Reply::ok(format!("v{}", seen.version)).header("cache-control", cache_control)
    })
    .await;
    let route = format!("honor_origin = true\n{route}");
    let proxy = TestProxy::start(&config(&route), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let first = client.get("/api/items/1", ORG).await;
    assert_eq!(
        first.cache_status(),
        "cachegate; fwd=miss; stored",
        "{cache_control}"
    );
    (origin, proxy, client)
}

/// Stops the backend, moves past the entry's one-second lifetime and asks again.
async fn after_expiry_with_the_backend_stopped(
    origin: &Origin,
    proxy: &TestProxy,
) -> crate::support::client::Answer {
    origin.stop();
    later(Duration::from_secs(2)).await;
    TestClient::new(proxy.addr).get("/api/items/1", ORG).await
}

#[tokio::test]
async fn s4_2_4_honour_origin_must_revalidate_is_never_served_stale_even_on_error() {
    for cc in [
        "max-age=1, must-revalidate",
        "max-age=1, proxy-revalidate",
        "max-age=1, s-maxage=1",
    ] {
        let (origin, proxy, _) = honour("stale_if_error = \"10m\"", cc).await;
        let answer = after_expiry_with_the_backend_stopped(&origin, &proxy).await;
        assert_eq!(answer.status, 502, "{cc}");
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=miss; detail=error",
            "{cc}"
        );
        assert_eq!(proxy.proxy.stats().snapshot().stale_if_error, 0, "{cc}");
    }
}

#[tokio::test]
async fn honour_origin_routes_keep_the_routes_stale_if_error_window() {
    let (origin, proxy, _) = honour("stale_if_error = \"10m\"", "max-age=1").await;
    let answer = after_expiry_with_the_backend_stopped(&origin, &proxy).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "v1");
    assert_eq!(
        answer.cache_status(),
        "cachegate; hit; fwd=stale; detail=backend-down"
    );
}

#[tokio::test]
async fn rfc5861_honour_origin_stale_if_error_from_the_origin() {
    let (origin, proxy, _) = honour("", "max-age=1, stale-if-error=60").await;
    let answer = after_expiry_with_the_backend_stopped(&origin, &proxy).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.cache_status(),
        "cachegate; hit; fwd=stale; detail=backend-down"
    );
}

#[tokio::test]
async fn rfc5861_honour_origin_stale_while_revalidate_from_the_origin() {
    let (origin, proxy, _) = honour("", "max-age=1, stale-while-revalidate=60").await;
    origin.set_version(2);
    later(Duration::from_secs(2)).await;
    let client = TestClient::new(proxy.addr);
    let stale = client.get("/api/items/1", ORG).await;
    assert_eq!(stale.cache_status(), "cachegate; hit; fwd=stale");
    assert_eq!(stale.text(), "v1");
    let mut hits = origin.watch_hits();
    crate::support::wait::until("the refresh", &mut hits, |n| *n >= 2).await;
    // The refreshed body shows (the test clock runs ahead of the origin's `Date`, so in
    // honour-origin mode the refresh arrives already aged, hence not asserted a plain hit).
    within("the refreshed entry", async {
        loop {
            let answer = client.get("/api/items/1", ORG).await;
            if answer.text() == "v2" {
                return answer;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    // must-revalidate closes the origin's own window too.
    let (origin, proxy, _) = honour("", "max-age=1, must-revalidate, stale-if-error=60").await;
    let answer = after_expiry_with_the_backend_stopped(&origin, &proxy).await;
    assert_eq!(answer.status, 502);
}

// === held for revalidation: entries with validators outlive their windows, never answered
// without a 304 ===

/// An origin that sends `ETag: "v1"` with `cache_control` (if any), answers `304` to
/// `If-None-Match: "v1"`, and counts the bodies it sends.
async fn validating(cache_control: Option<&'static str>) -> (Origin, Arc<AtomicU64>) {
    let bodies = Arc::new(AtomicU64::new(0));
    let b = bodies.clone();
    let origin = Origin::with(move |seen| {
        if seen.header("if-none-match") == Some("\"v1\"") {
            return Reply::ok("").status(304).header("etag", "\"v1\"");
        }
        b.fetch_add(1, Ordering::SeqCst);
        let reply = Reply::ok("the body").header("etag", "\"v1\"");
        match cache_control {
            Some(cc) => reply.header("cache-control", cc),
            None => reply,
        }
    })
    .await;
    (origin, bodies)
}

#[tokio::test]
async fn s5_2_2_4_honour_origin_no_cache_is_stored_and_revalidated_on_every_request() {
    let (origin, bodies) = validating(Some("no-cache")).await;
    let proxy = TestProxy::start(&config("honor_origin = true"), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let first = client.get("/api/items/1", ORG).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    for round in 1..=3 {
        let answer = client.get("/api/items/1", ORG).await;
        assert_eq!(answer.status, 200, "{round}");
        assert_eq!(answer.text(), "the body", "{round}");
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=stale; fwd-status=304; stored",
            "{round}"
        );
        let seen = origin.seen();
        assert_eq!(
            seen[round].header("if-none-match"),
            Some("\"v1\""),
            "{round}"
        );
    }
    assert_eq!(origin.hits(), 4, "every request asked the backend");
    assert_eq!(bodies.load(Ordering::SeqCst), 1, "one body sent");
    assert_eq!(proxy.proxy.stats().snapshot().revalidated, 3);
}

#[tokio::test]
async fn s5_2_2_4_honour_origin_no_cache_is_not_answered_when_the_backend_is_down() {
    // Even with a stale-if-error window configured: no-cache forbids serving it stale.
    let (origin, _) = validating(Some("no-cache")).await;
    let route = "honor_origin = true\nstale_if_error = \"10m\"";
    let proxy = TestProxy::start(&config(route), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/items/1", ORG).await;
    origin.stop();
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; detail=error");
}

#[tokio::test]
async fn an_expired_entry_with_validators_and_no_windows_is_revalidated_then_fresh_again() {
    let (origin, bodies) = validating(None).await;
    let proxy = TestProxy::start(&config(""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/items/1", ORG).await;
    later(Duration::from_secs(11)).await;
    // The jump outlives the server's idle timeout: new connections.
    let client = TestClient::new(proxy.addr);
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.text(), "the body");
    assert_eq!(
        answer.cache_status(),
        "cachegate; fwd=stale; fwd-status=304; stored"
    );
    assert_eq!(origin.seen()[1].header("if-none-match"), Some("\"v1\""));
    let hit = client.get("/api/items/1", ORG).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    assert_eq!(bodies.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_revalidation_period_ends_after_revalidate_for() {
    let (origin, _) = validating(None).await;
    let proxy = TestProxy::start(&config("revalidate_for = \"1m\""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/items/1", ORG).await;
    later(Duration::from_secs(71)).await;
    let client = TestClient::new(proxy.addr);
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.seen()[1].header("if-none-match"), None);
}

#[tokio::test]
async fn a_purge_removes_entries_held_for_revalidation() {
    let (origin, bodies) = validating(Some("no-cache")).await;
    let proxy = TestProxy::start(&config("honor_origin = true"), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/items/1", ORG).await;
    let purged = proxy
        .admin(
            http::Method::POST,
            "/purge",
            r#"{"tenant": "42", "paths": ["/api/items/1"]}"#,
        )
        .await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    // Nothing held any more: a plain fill, no validators sent.
    let answer = client.get("/api/items/1", ORG).await;
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.seen()[1].header("if-none-match"), None);
    assert_eq!(bodies.load(Ordering::SeqCst), 2);
}

// === the request's own Cache-Control against held entries (honour-origin routes honour it) ===

/// An honour-origin route (`route` added) whose origin validates `"v1"` and sends `cc`; the
/// entry is filled, then the clock moves five seconds on.
async fn held_entry(route: &str, cc: &'static str) -> (Origin, TestProxy, TestClient) {
    let (origin, _) = validating(Some(cc)).await;
    let route = format!("honor_origin = true\n{route}");
    let proxy = TestProxy::start(&config(&route), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let first = client.get("/api/items/1", ORG).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    later(Duration::from_secs(5)).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

fn asking(cc: &'static str) -> [(&'static str, &'static str); 2] {
    [("x-org-id", "42"), ("cache-control", cc)]
}

#[tokio::test]
async fn s5_2_1_2_max_stale_lets_an_entry_held_for_revalidation_answer() {
    let (origin, _proxy, client) = held_entry("", "max-age=1").await;
    let answer = client.get("/api/items/1", &asking("max-stale=60")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "the body");
    assert_eq!(
        answer.cache_status(),
        "cachegate; hit; fwd=stale; detail=max-stale"
    );
    // Too stale for this client: revalidated first.
    let (origin2, _proxy2, client2) = held_entry("", "max-age=1").await;
    let answer = client2.get("/api/items/1", &asking("max-stale=1")).await;
    assert_eq!(
        answer.cache_status(),
        "cachegate; fwd=stale; fwd-status=304; stored"
    );
    assert_eq!(origin2.seen()[1].header("if-none-match"), Some("\"v1\""));
    drop(origin);
}

#[tokio::test]
async fn s4_2_4_max_stale_never_answers_what_the_origin_forbids_serving_stale() {
    for cc in [
        "max-age=1, must-revalidate",
        "max-age=1, s-maxage=1",
        "no-cache",
    ] {
        let (origin, _proxy, client) = held_entry("", cc).await;
        let answer = client.get("/api/items/1", &asking("max-stale")).await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=stale; fwd-status=304; stored",
            "{cc}"
        );
        assert_eq!(origin.hits(), 2, "{cc}");
    }
}

#[tokio::test]
async fn s5_2_1_1_and_s5_2_1_3_max_age_and_min_fresh_restrict_stale_while_revalidate() {
    let window = "stale_while_revalidate = \"1m\"";
    let (_origin, _proxy, client) = held_entry(window, "max-age=1").await;
    // Without directives the window answers at once.
    assert_eq!(
        client.get("/api/items/1", ORG).await.cache_status(),
        "cachegate; hit; fwd=stale"
    );
    for cc in ["max-age=2", "min-fresh=1", "no-cache"] {
        let (origin, _proxy, client) = held_entry(window, "max-age=1").await;
        let answer = client.get("/api/items/1", &asking(cc)).await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=stale; fwd-status=304; stored",
            "{cc}"
        );
        assert_eq!(
            origin.seen()[1].header("if-none-match"),
            Some("\"v1\""),
            "{cc}"
        );
    }
    // A max-age the entry's age is within: the window answers.
    let (_origin, _proxy, client) = held_entry(window, "max-age=1").await;
    let answer = client.get("/api/items/1", &asking("max-age=3600")).await;
    assert_eq!(answer.cache_status(), "cachegate; hit; fwd=stale");
}

#[tokio::test]
async fn s5_2_1_7_only_if_cached_takes_a_stale_servable_entry_and_504_otherwise() {
    let (origin, _proxy, client) = held_entry("stale_while_revalidate = \"1m\"", "max-age=1").await;
    let answer = client.get("/api/items/1", &asking("only-if-cached")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.cache_status(), "cachegate; hit; fwd=stale");
    drop(origin);
    // Held for revalidation only: nothing usable without the backend.
    let (origin, _proxy, client) = held_entry("", "max-age=1").await;
    let answer = client.get("/api/items/1", &asking("only-if-cached")).await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.cache_status(), "cachegate; detail=only-if-cached");
    assert_eq!(origin.hits(), 1);
}

// === client conditionals and ranges on stale answers and on a fill's answer ===

#[tokio::test]
async fn a_stale_answer_honours_if_none_match_and_range() {
    let (_origin, _proxy, client) =
        held_entry("stale_while_revalidate = \"1m\"", "max-age=1").await;
    let answer = client
        .get(
            "/api/items/1",
            &[("x-org-id", "42"), ("if-none-match", "\"v1\"")],
        )
        .await;
    assert_eq!(answer.status, 304);
    assert_eq!(answer.cache_status(), "cachegate; hit; fwd=stale");
    assert!(answer.body.is_empty());
    let answer = client
        .get(
            "/api/items/1",
            &[("x-org-id", "42"), ("range", "bytes=4-7")],
        )
        .await;
    assert_eq!(answer.status, 206);
    assert_eq!(answer.text(), "body");
    assert_eq!(answer.cache_status(), "cachegate; hit; fwd=stale");
}

#[tokio::test]
async fn the_fills_own_answer_honours_if_none_match_and_range() {
    let (origin, _) = validating(None).await;
    let proxy = TestProxy::start(&config(""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let answer = client
        .get(
            "/api/items/1",
            &[("x-org-id", "42"), ("if-none-match", "\"v1\"")],
        )
        .await;
    assert_eq!(answer.status, 304);
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; stored");
    // The fill itself asked for the full body.
    assert_eq!(origin.seen()[0].header("if-none-match"), None);
    let answer = client
        .get(
            "/api/items/2",
            &[("x-org-id", "42"), ("range", "bytes=0-2")],
        )
        .await;
    assert_eq!(answer.status, 206);
    assert_eq!(answer.text(), "the");
    assert_eq!(origin.seen()[1].header("range"), None);
}
