use crate::support::client::TestClient;
use crate::support::origin::{Origin, Reply};
use crate::support::{TestProxy, BASE_CONFIG};
use std::time::Duration;

async fn setup() -> (Origin, TestProxy, TestClient) {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

const ORG42: &[(&str, &str)] = &[("x-org-id", "42")];
const ORG7: &[(&str, &str)] = &[("x-org-id", "7")];

#[tokio::test]
async fn second_get_is_a_hit_with_age_and_one_backend_request() {
    let (origin, _proxy, client) = setup().await;
    let first = client.get("/api/faculty/?b=2&a=1", ORG42).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    assert!(first.header("age").is_none());
    let second = client.get("/api/faculty/?b=2&a=1", ORG42).await;
    assert_eq!(second.cache_status(), "cachegate; hit");
    assert!(second.header("age").is_some());
    assert_eq!(second.body, first.body);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn sorted_params_share_an_entry_and_the_backend_sees_the_sorted_form() {
    let (origin, _proxy, client) = setup().await;
    client.get("/api/faculty/?b=2&a=1", ORG42).await;
    let other_order = client.get("/api/faculty/?a=1&b=2", ORG42).await;
    assert_eq!(other_order.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 1);
    assert_eq!(origin.seen()[0].target, "/api/faculty/?a=1&b=2");
}

#[tokio::test]
async fn repeated_params_keep_their_order_in_the_key() {
    let (origin, _proxy, client) = setup().await;
    client.get("/api/faculty/?a=1&a=2", ORG42).await;
    let swapped = client.get("/api/faculty/?a=2&a=1", ORG42).await;
    assert_eq!(swapped.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn equivalent_encodings_share_an_entry() {
    let (origin, _proxy, client) = setup().await;
    client.get("/api/faculty/?q=a%7Eb&s=x+y", ORG42).await;
    let same = client.get("/api/faculty/?s=x%20y&q=a~b", ORG42).await;
    assert_eq!(same.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn tenants_never_share_an_entry() {
    let (origin, _proxy, client) = setup().await;
    let a = client.get("/api/faculty/", ORG42).await;
    let b = client.get("/api/faculty/", ORG7).await;
    assert_eq!(b.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(a.json()["org"], "42");
    assert_eq!(b.json()["org"], "7");
    // Both are now cached, each for its own tenant only.
    for _ in 0..3 {
        assert_eq!(client.get("/api/faculty/", ORG42).await.json()["org"], "42");
        assert_eq!(client.get("/api/faculty/", ORG7).await.json()["org"], "7");
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn missing_or_invalid_tenant_passes_through_uncached() {
    let (origin, _proxy, client) = setup().await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "no-tenant"),
        (&[("x-org-id", "42,7")], "invalid-tenant"),
        (&[("x-org-id", "4 2")], "invalid-tenant"),
        (&[("x-org-id", "42"), ("x-org-id", "7")], "invalid-tenant"),
    ];
    for (headers, detail) in cases {
        for _ in 0..2 {
            let answer = client.get("/api/faculty/", headers).await;
            assert_eq!(
                answer.cache_status(),
                format!("cachegate; fwd=bypass; detail={detail}"),
                "{headers:?}"
            );
        }
    }
    assert_eq!(origin.hits(), 8);
}

#[tokio::test]
async fn unmatched_paths_pass_through_uncached() {
    let (origin, _proxy, client) = setup().await;
    for _ in 0..2 {
        let answer = client.get("/api/unknown/", ORG42).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=bypass; detail=no-route"
        );
    }
    let auth = client.get("/api/auth/me/", ORG42).await;
    assert_eq!(
        auth.cache_status(),
        "cachegate; fwd=bypass; detail=route-no-cache"
    );
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn ambiguous_paths_pass_through_uncached() {
    let (origin, _proxy, client) = setup().await;
    for path in [
        "/api/faculty/%2e%2e/",
        "/api//faculty/",
        "/api/faculty/%zz/",
    ] {
        let answer = client.get(path, ORG42).await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=bypass; detail=ambiguous-path",
            "{path}"
        );
    }
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn responses_that_may_not_be_shared_are_never_stored() {
    let origin = Origin::with(|seen| match seen.path() {
        "/api/faculty/1/" => Reply::ok("a").header("set-cookie", "sid=1"),
        "/api/faculty/2/" => Reply::ok("b").header("cache-control", "private, max-age=60"),
        "/api/faculty/3/" => Reply::ok("c").header("cache-control", "no-store"),
        "/api/faculty/4/" => Reply::ok("d").status(500),
        "/api/faculty/5/" => Reply::ok("e").header("vary", "accept-language, *"),
        _ => Reply::ok("x"),
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let cases = [
        ("/api/faculty/1/", "set-cookie"),
        ("/api/faculty/2/", "private"),
        ("/api/faculty/3/", "no-store"),
        ("/api/faculty/4/", "status"),
        ("/api/faculty/5/", "vary-star"),
    ];
    for (path, detail) in cases {
        for _ in 0..2 {
            let answer = client.get(path, ORG42).await;
            assert_eq!(
                answer.cache_status(),
                format!("cachegate; fwd=miss; detail={detail}"),
                "{path}"
            );
        }
    }
    assert_eq!(origin.hits(), 10);
}

#[tokio::test]
async fn request_no_cache_and_no_store_go_to_the_backend() {
    let (origin, _proxy, client) = setup().await;
    client.get("/api/faculty/", ORG42).await;
    let no_cache = client
        .get(
            "/api/faculty/",
            &[("x-org-id", "42"), ("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(
        no_cache.cache_status(),
        "cachegate; fwd=request; detail=request-no-cache"
    );
    let no_store = client
        .get(
            "/api/faculty/",
            &[("x-org-id", "42"), ("cache-control", "no-store")],
        )
        .await;
    assert_eq!(
        no_store.cache_status(),
        "cachegate; fwd=request; detail=request-no-store"
    );
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn credentials_without_a_tenant_key_are_not_stored() {
    let (origin, _proxy, client) = setup().await;
    // `/api/public/...` is shared by every caller, so a credential must not pick what is stored.
    for _ in 0..2 {
        let answer = client
            .get("/api/public/news/", &[("authorization", "Bearer secret")])
            .await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=bypass; detail=credentials"
        );
    }
    // The same request without a credential is cached for everybody.
    client.get("/api/public/news/", &[]).await;
    assert_eq!(
        client.get("/api/public/news/", &[]).await.cache_status(),
        "cachegate; hit"
    );
    // On a tenant-keyed route the credential is fine.
    client
        .get(
            "/api/faculty/",
            &[("x-org-id", "42"), ("authorization", "Bearer s")],
        )
        .await;
    let hit = client
        .get(
            "/api/faculty/",
            &[("x-org-id", "42"), ("authorization", "Bearer s")],
        )
        .await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 4);
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry_without_a_body() {
    let (origin, _proxy, client) = setup().await;
    let get = client.get("/api/faculty/", ORG42).await;
    let head = client
        .send(http::Method::HEAD, "/api/faculty/", ORG42, "")
        .await;
    assert_eq!(head.cache_status(), "cachegate; hit");
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
    // And a HEAD miss fills the entry with a GET, so the next GET is a hit.
    let head = client
        .send(http::Method::HEAD, "/api/faculty/9/", ORG42, "")
        .await;
    assert_eq!(head.cache_status(), "cachegate; fwd=miss; stored");
    assert!(head.body.is_empty());
    let get = client.get("/api/faculty/9/", ORG42).await;
    assert_eq!(get.cache_status(), "cachegate; hit");
    assert!(!get.body.is_empty());
    assert_eq!(
        origin
            .seen()
            .iter()
            .filter(|s| s.method == http::Method::HEAD)
            .count(),
        0
    );
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn entries_expire_after_their_route_ttl() {
    let (origin, _proxy, client) = setup().await;
    client.get("/api/faculty/", ORG42).await;
    assert_eq!(
        client.get("/api/faculty/", ORG42).await.cache_status(),
        "cachegate; hit"
    );
    // Move the runtime's clock past the list route's 5m TTL without waiting for it.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(5 * 60 + 1)).await;
    tokio::time::resume();
    // A new connection: the jump in time also expired the idle keep-alive one.
    let client = TestClient::new(_proxy.addr);
    let after = client.get("/api/faculty/", ORG42).await;
    assert_eq!(after.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn a_get_with_a_body_passes_through() {
    let (origin, _proxy, client) = setup().await;
    for _ in 0..2 {
        let answer = client
            .send(http::Method::GET, "/api/faculty/", ORG42, "{\"q\":1}")
            .await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=bypass; detail=request-body"
        );
    }
    assert_eq!(origin.seen()[0].body.as_ref(), b"{\"q\":1}");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn vary_headers_select_the_variant_and_a_first_miss_is_a_uri_miss() {
    let (origin, _proxy, client) = setup().await;
    let fr = &[("x-org-id", "42"), ("accept-language", "fr")];
    let de = &[("x-org-id", "42"), ("accept-language", "de")];
    assert_eq!(
        client.get("/api/courses/", fr).await.cache_status(),
        "cachegate; fwd=uri-miss; stored"
    );
    // The path is known now, so a second language is an ordinary miss (a variant the cache lacks).
    assert_eq!(
        client.get("/api/courses/", de).await.cache_status(),
        "cachegate; fwd=miss; stored"
    );
    assert_eq!(
        client.get("/api/courses/", fr).await.cache_status(),
        "cachegate; hit"
    );
    assert_eq!(
        client.get("/api/courses/", de).await.cache_status(),
        "cachegate; hit"
    );
    assert_eq!(origin.hits(), 2);
    assert_eq!(origin.seen()[1].header("accept-language"), Some("de"));
}
