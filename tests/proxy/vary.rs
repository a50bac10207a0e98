//! Issue 8: responses that vary (as DRF's `Vary: Accept`, Django's `Vary: Cookie`) are stored as
//! variants, and a fill request carries only what the key accounts for.

use crate::support::client::TestClient;
use crate::support::origin::{Gate, Origin, Reply, Seen};
use crate::support::wait::until;
use crate::support::TestProxy;

/// Routes as a DRF user writes them: a declared tenant scope, a public one, an inferred one.
const CONFIG: &str = r#"
[upstream]
url = "{upstream}"
connect_timeout = "1s"
timeout = "2s"

[cache]
max_memory = "64MiB"
default_ttl = "5m"
tenant = { header = "X-Org-Id" }
coalesce_timeout = "5s"

[[route]]
path = "/api/departments/"
resource = "department"
scope = "tenant"

[[route]]
path = "/api/departments/{id}/"
resource = "department"
scope = "tenant"
max_variants = 2

[[route]]
path = "/api/inferred/"
resource = "inferred"

[[route]]
path = "/api/news/"
tenant = "none"
scope = "public"

[[route]]
path = "/api/short/"
resource = "short"
scope = "tenant"
ttl = "1s"
max_variants = 1

[[route]]
path = "/api/catalog/"
scope = "public"

[[route]]
path = "/api/versioned/"
resource = "versioned"
scope = "tenant"
forward_headers = ["X-Api-Version"]
"#;

/// The origin answers like DRF: `Vary` as the test asks, the body naming what it saw.
fn drf_like(vary: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| {
        let body = serde_json::json!({
            "path": seen.path(),
            "accept": seen.header("accept"),
            "org": seen.header("x-org-id"),
            "api_version": seen.header("x-api-version"),
            "authorization": seen.header("authorization"),
            "cookie": seen.header("cookie"),
        });
        Reply::ok(body.to_string()).header("vary", vary)
    }
}

async fn setup(vary: &'static str) -> (Origin, TestProxy, TestClient) {
    let origin = Origin::with(drf_like(vary)).await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

fn as_org<'a>(org: &'a str, accept: &'a str) -> [(&'a str, &'a str); 2] {
    [("x-org-id", org), ("accept", accept)]
}

#[tokio::test]
async fn issue_8_drf_vary_accept_is_stored_per_accept_value() {
    let (origin, _proxy, client) = setup("Accept").await;
    let json = as_org("42", "application/json");
    let html = as_org("42", "text/html");
    let first = client.get("/api/departments/", &json).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(first.json()["accept"], "application/json");
    let again = client.get("/api/departments/", &json).await;
    assert_eq!(again.cache_status(), "cachegate; hit");
    // Another Accept is another variant, never the JSON one.
    let other = client.get("/api/departments/", &html).await;
    assert_eq!(other.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(other.json()["accept"], "text/html");
    let other_again = client.get("/api/departments/", &html).await;
    assert_eq!(other_again.cache_status(), "cachegate; hit");
    assert_eq!(other_again.json()["accept"], "text/html");
    // Values equal after normalising (case, whitespace) share a variant.
    let spelled = client
        .get("/api/departments/", &as_org("42", "  Application/JSON "))
        .await;
    assert_eq!(spelled.cache_status(), "cachegate; hit");
    assert_eq!(spelled.json()["accept"], "application/json");
    // No Accept at all is a variant of its own.
    let none = client.get("/api/departments/", &[("x-org-id", "42")]).await;
    assert_eq!(none.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(none.json()["accept"], serde_json::Value::Null);
    assert_eq!(origin.hits(), 3);
    // And tenants still never share.
    let seven = client
        .get("/api/departments/", &as_org("7", "application/json"))
        .await;
    assert_eq!(seven.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(seven.json()["org"], "7");
}

#[tokio::test]
async fn issue_8_vary_cookie_on_a_declared_tenant_route_is_shared_by_the_tenant() {
    let (origin, _proxy, client) = setup("Accept, Cookie").await;
    let alice = [
        ("x-org-id", "42"),
        ("accept", "application/json"),
        ("cookie", "sessionid=alice"),
    ];
    let dave = [
        ("x-org-id", "42"),
        ("accept", "application/json"),
        ("cookie", "sessionid=dave"),
    ];
    let first = client.get("/api/departments/", &alice).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    let shared = client.get("/api/departments/", &dave).await;
    assert_eq!(shared.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn issue_8_vary_cookie_where_the_scope_is_inferred_is_not_stored() {
    let (origin, _proxy, client) = setup("Accept, Cookie").await;
    let alice = [("x-org-id", "42"), ("cookie", "sessionid=alice")];
    for _ in 0..2 {
        let answer = client.get("/api/inferred/", &alice).await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=miss; detail=vary-credential"
        );
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn vary_star_is_never_stored() {
    let (origin, _proxy, client) = setup("*").await;
    for _ in 0..2 {
        let answer = client.get("/api/departments/", &as_org("42", "a/b")).await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=miss; detail=vary-star"
        );
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn variants_per_uri_are_capped() {
    let (origin, _proxy, client) = setup("Accept").await;
    // The detail route allows two variants.
    for accept in ["a/1", "a/2"] {
        let answer = client
            .get("/api/departments/5/", &as_org("42", accept))
            .await;
        assert!(answer.cache_status().ends_with("stored"), "{accept}");
    }
    let third = client
        .get("/api/departments/5/", &as_org("42", "a/3"))
        .await;
    assert_eq!(
        third.cache_status(),
        "cachegate; fwd=miss; detail=vary-limit"
    );
    assert_eq!(third.json()["accept"], "a/3");
    for accept in ["a/1", "a/2"] {
        let answer = client
            .get("/api/departments/5/", &as_org("42", accept))
            .await;
        assert_eq!(answer.cache_status(), "cachegate; hit", "{accept}");
        assert_eq!(answer.json()["accept"], accept);
    }
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn a_path_purge_removes_every_variant() {
    let (origin, proxy, client) = setup("Accept").await;
    for accept in ["a/1", "a/2"] {
        client.get("/api/departments/", &as_org("42", accept)).await;
    }
    let purge = proxy
        .invalidate(r#"{"tenant": "42", "paths": ["/api/departments/"]}"#)
        .await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    for accept in ["a/1", "a/2"] {
        let answer = client.get("/api/departments/", &as_org("42", accept)).await;
        assert!(
            answer.cache_status().contains("fwd="),
            "{accept}: {}",
            answer.cache_status()
        );
    }
    assert_eq!(origin.hits(), 4);
}

#[tokio::test]
async fn issue_8_waiters_with_another_accept_never_get_the_leaders_variant() {
    let gate = Gate::new();
    let held = gate.clone();
    let origin = Origin::with(move |seen: &Seen| {
        let body = serde_json::json!({ "accept": seen.header("accept") }).to_string();
        Reply::ok(body).header("vary", "Accept").gate(&held)
    })
    .await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let mut waits = proxy.watch_waits();
    let leader = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get("/api/departments/", &as_org("42", "application/json"))
                .await
        })
    };
    gate.arrivals(1).await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get("/api/departments/", &as_org("42", "text/html"))
                .await
        })
    };
    // The second request knows nothing of the Vary yet, so it waits on the first one's fill...
    until("the html request to wait", &mut waits, |n| *n >= 1).await;
    gate.open();
    let leader = leader.await.unwrap();
    let waiter = waiter.await.unwrap();
    assert_eq!(leader.json()["accept"], "application/json");
    // ...and, seeing a variant for another Accept, goes round again for its own.
    assert_eq!(waiter.json()["accept"], "text/html");
    assert_eq!(origin.hits(), 2);
}

/// Headers frameworks honour that change the method, the path or the scheme, and conditionals.
const NOT_KEYED: &[(&str, &str)] = &[
    ("x-http-method-override", "DELETE"),
    ("x-http-method", "PUT"),
    ("x-method-override", "PATCH"),
    ("x-original-url", "/api/admin/"),
    ("x-rewrite-url", "/api/admin/"),
    ("x-forwarded-prefix", "/evil"),
    ("x-forwarded-scheme", "https"),
    ("x-forwarded-ssl", "on"),
    ("if-none-match", "\"v1\""),
    ("if-modified-since", "Sun, 29 Nov 2026 00:00:00 GMT"),
    ("range", "bytes=0-3"),
    ("x-debug", "1"),
];

#[tokio::test]
async fn issue_8_a_fill_carries_only_what_the_key_accounts_for() {
    let (origin, _proxy, client) = setup("Accept").await;
    let mut headers = vec![
        ("x-org-id", "42"),
        ("accept", "application/json"),
        ("user-agent", "tests"),
        ("authorization", "Token t"),
    ];
    headers.extend_from_slice(NOT_KEYED);
    let answer = client.get("/api/departments/", &headers).await;
    // The fill asked for the whole body; the client's own Range is answered from the entry.
    assert_eq!(answer.status, 206);
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; stored");
    let seen = &origin.seen()[0];
    for (name, _) in NOT_KEYED {
        assert_eq!(
            seen.header(name),
            None,
            "{name} reached the backend on a fill"
        );
    }
    // What the key accounts for, and the harmless standard headers, go with the fill.
    assert_eq!(seen.header("x-org-id"), Some("42"));
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.header("user-agent"), Some("tests"));
    // The tenant keys the credential on a tenant route, so it goes too.
    assert_eq!(seen.header("authorization"), Some("Token t"));
    // The plain GET everybody shares was stored.
    let plain = client
        .get("/api/departments/", &as_org("42", "application/json"))
        .await;
    assert_eq!(plain.cache_status(), "cachegate; hit");
}

#[tokio::test]
async fn issue_8_a_public_fill_carries_no_credential() {
    let (origin, _proxy, client) = setup("Accept").await;
    let answer = client
        .get(
            "/api/news/",
            &[
                ("authorization", "Token alice"),
                ("cookie", "sessionid=alice"),
            ],
        )
        .await;
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; stored");
    let seen = &origin.seen()[0];
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("cookie"), None);
}

#[tokio::test]
async fn forward_headers_are_forwarded_and_keyed() {
    let (origin, _proxy, client) = setup("Accept").await;
    let v1 = [("x-org-id", "42"), ("x-api-version", "1")];
    let v2 = [("x-org-id", "42"), ("x-api-version", "2")];
    assert_eq!(
        client.get("/api/versioned/", &v1).await.json()["api_version"],
        "1"
    );
    assert_eq!(
        client.get("/api/versioned/", &v2).await.json()["api_version"],
        "2"
    );
    let again = client.get("/api/versioned/", &v1).await;
    assert_eq!(again.cache_status(), "cachegate; hit");
    assert_eq!(again.json()["api_version"], "1");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn writes_pass_through_with_their_headers() {
    let (origin, _proxy, client) = setup("Accept").await;
    let answer = client
        .send(
            http::Method::PUT,
            "/api/departments/5/",
            &[("x-org-id", "42"), ("if-match", "\"v1\""), ("x-debug", "1")],
            "{}",
        )
        .await;
    assert_eq!(answer.status, 200);
    let seen = &origin.seen()[0];
    assert_eq!(seen.header("if-match"), Some("\"v1\""));
    assert_eq!(seen.header("x-debug"), Some("1"));
}

/// A declared public route that keeps `[cache]`'s tenant header as its source: the tenant is not
/// in the key, so the header must neither go with the fill nor be taken as keyed when the
/// backend's `Vary` names it.
#[tokio::test]
async fn a_public_fill_carries_no_tenant_header_and_a_vary_on_it_is_honoured() {
    let (origin, _proxy, client) = setup("Accept, X-Org-Id").await;
    let first = client
        .get("/api/catalog/", &as_org("42", "application/json"))
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(
        origin.seen()[0].header("x-org-id"),
        None,
        "the tenant header reached the backend on a public fill"
    );
    let other = client
        .get("/api/catalog/", &as_org("7", "application/json"))
        .await;
    assert_ne!(other.json()["org"], "42", "tenant 7 got tenant 42's answer");
}

/// The cap counts variants a request could be served: after a soft purge (entries kept, marked
/// stale) the URI's places are free for other values, not held until eviction.
#[tokio::test]
async fn a_soft_purge_frees_the_variant_places_it_made_unservable() {
    let (origin, proxy, client) = setup("Accept").await;
    for accept in ["a/1", "a/2"] {
        let answer = client
            .get("/api/departments/5/", &as_org("42", accept))
            .await;
        assert!(answer.cache_status().ends_with("stored"), "{accept}");
    }
    let purge = proxy
        .invalidate(r#"{"tenant": "42", "paths": ["/api/departments/5/"], "soft": true}"#)
        .await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    let third = client
        .get("/api/departments/5/", &as_org("42", "a/3"))
        .await;
    assert_eq!(third.cache_status(), "cachegate; fwd=miss; stored");
    let again = client
        .get("/api/departments/5/", &as_org("42", "a/3"))
        .await;
    assert_eq!(again.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 3);
}

/// An expired variant nobody asked for again holds no place either.
#[tokio::test(flavor = "current_thread")]
async fn an_expired_variant_frees_its_place() {
    let (origin, proxy, client) = setup("Accept").await;
    let first = client.get("/api/short/", &as_org("42", "a/1")).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    // Move the runtime's clock past the route's 1s TTL without waiting for it.
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_millis(1100)).await;
    tokio::time::resume();
    // A new connection: the jump in time also expired the idle keep-alive one.
    let client = TestClient::new(proxy.addr);
    let second = client.get("/api/short/", &as_org("42", "a/2")).await;
    assert_eq!(second.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), 2);
}

/// A `Vary` on a header cachegate sets on every fill from what it saw (the host, the scheme, the
/// peer address) cannot be matched against what a client sends: the host and scheme are in the
/// key already, and the peer address is per caller, so naming it in a request must not fetch
/// the variant stored for that peer.
#[tokio::test]
async fn a_vary_on_the_forwarding_headers_cachegate_sets() {
    let (origin, _proxy, client) = setup("Accept, X-Forwarded-Host, X-Forwarded-Proto").await;
    let json = as_org("42", "application/json");
    let first = client.get("/api/departments/", &json).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    let again = client.get("/api/departments/", &json).await;
    assert_eq!(again.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 1);

    let (origin, _proxy, client) = setup("Accept, X-Forwarded-For").await;
    let first = client.get("/api/departments/", &json).await;
    assert_eq!(first.status, 200);
    // The variant stored for peer 127.0.0.1 (if any) is not handed to whoever names it.
    let claims = [
        ("x-org-id", "42"),
        ("accept", "application/json"),
        ("x-forwarded-for", "127.0.0.1"),
    ];
    let claimed = client.get("/api/departments/", &claims).await;
    assert_ne!(claimed.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 2);
}

/// The first fill of a URI does not know its `Vary` yet, so it forwards no header outside the
/// key and negotiation (`Origin` here, as CORS middlewares vary on it). The request that led it
/// must still get the answer to its own headers, not the variant for a request without them.
#[tokio::test]
async fn the_first_request_gets_the_variant_of_its_own_headers() {
    let origin = Origin::with(|seen: &Seen| {
        let body = serde_json::json!({ "origin": seen.header("origin") }).to_string();
        Reply::ok(body).header("vary", "Accept, Origin")
    })
    .await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let cors = [
        ("x-org-id", "42"),
        ("accept", "application/json"),
        ("origin", "https://app.example"),
    ];
    let first = client.get("/api/departments/", &cors).await;
    assert_eq!(first.json()["origin"], "https://app.example");
    let again = client.get("/api/departments/", &cors).await;
    assert_eq!(again.cache_status(), "cachegate; hit");
    assert_eq!(again.json()["origin"], "https://app.example");
}

#[tokio::test]
async fn variants_of_a_vary_the_backend_no_longer_sends_are_dropped() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let switched = Arc::new(AtomicBool::new(false));
    let s = switched.clone();
    let origin = Origin::with(move |seen: &Seen| {
        let body = serde_json::json!({ "accept": seen.header("accept") }).to_string();
        let vary = if s.load(Ordering::SeqCst) {
            "Accept-Language"
        } else {
            "Accept"
        };
        Reply::ok(body).header("vary", vary)
    })
    .await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    for accept in ["a/1", "a/2", "a/3"] {
        client.get("/api/departments/", &as_org("42", accept)).await;
    }
    assert_eq!(proxy.proxy.stats_report().store.entries, 3);
    // The backend now varies on another header: the next stored answer replaces what the URI
    // was known to vary on, and the variants stored under the old Vary, which no lookup can
    // reach any more, are dropped rather than left to hold memory outside the variant cap.
    switched.store(true, Ordering::SeqCst);
    let answer = client.get("/api/departments/", &as_org("42", "a/4")).await;
    assert_eq!(answer.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(proxy.proxy.stats_report().store.entries, 1);
    let again = client.get("/api/departments/", &as_org("42", "a/1")).await;
    assert_eq!(again.cache_status(), "cachegate; hit");
    assert_eq!(again.json()["accept"], "a/4");
}
