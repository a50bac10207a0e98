//! HTTP caching: conditional requests and ranges answered from stored entries, digest ETags,
//! the honour-origin mode (RFC 9111 as a shared cache) and the request's own Cache-Control.

use crate::support::client::TestClient;
use crate::support::origin::{Origin, Reply, Seen};
use crate::support::TestProxy;
use http::Method;

const CONFIG: &str = r#"
[upstream]
url = "{upstream}"
connect_timeout = "1s"
timeout = "2s"

[cache]
default_ttl = "5m"
coalesce_timeout = "5s"

[[route]]
path = "/ttl/{*rest}"

[[route]]
path = "/digest/{*rest}"
etag = "digest"

[[route]]
path = "/origin/{*rest}"
honor_origin = true

[[route]]
path = "/tenant/{*rest}"
honor_origin = true
tenant = { header = "X-Org-Id" }
"#;

const LAST_MODIFIED: &str = "Wed, 01 Jan 2020 00:00:00 GMT";
const BODY: &str = "0123456789";

/// What the origin answers, by path: each path shows one header combination.
fn reply(seen: &Seen) -> Reply {
    let name = seen.path().rsplit('/').next().unwrap_or("");
    let ok = Reply::ok(BODY).header("content-type", "text/plain");
    let cc = |value: &str| Reply::ok(BODY).header("cache-control", value);
    match name {
        "strong" => ok.header("etag", "\"v1\""),
        "weak" => ok.header("etag", "W/\"w1\""),
        "lm" => ok.header("last-modified", LAST_MODIFIED),
        "max-age" => cc("max-age=60"),
        "max-age-zero" => cc("max-age=0"),
        "s-maxage" => cc("max-age=0, s-maxage=60"),
        "no-store" => cc("no-store, max-age=60"),
        "private" => cc("private, max-age=60"),
        "no-cache" => cc("no-cache, max-age=600").header("etag", "\"nc\""),
        "vary-star" => cc("max-age=60").header("vary", "*"),
        "aged" => cc("max-age=60").header("age", "50"),
        "aged-out" => cc("max-age=60").header("age", "100"),
        "heuristic" => ok.header("last-modified", LAST_MODIFIED),
        "expires-zero" => ok.header("expires", "0"),
        "found" => Reply::ok("").status(302).header("location", "/ttl/strong"),
        "found-max-age" => Reply::ok("")
            .status(302)
            .header("location", "/ttl/strong")
            .header("cache-control", "max-age=60"),
        "public" => cc("public, max-age=60"),
        "private-field" => cc("max-age=60, private=\"x-user\"").header("x-user", "alice"),
        // A body of exactly `len` bytes: 1024, 8192 and 65536 fill an allocator size class,
        // so the entry keeps its header records in an allocation of their own.
        len if seen.path().starts_with("/ttl/class/") => {
            let len: usize = len.parse().unwrap_or(0);
            let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            Reply::ok(body)
                .header("etag", "\"class\"")
                .header("x-custom", "kept")
        }
        "vary" => Reply::ok(seen.header("accept-language").unwrap_or("none").to_string())
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language"),
        _ => ok,
    }
}

async fn setup() -> (Origin, TestProxy, TestClient) {
    let origin = Origin::with(reply).await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

/// Fills `path` and checks it was stored.
async fn fill(client: &TestClient, path: &str) {
    let first = client.get(path, &[]).await;
    assert_eq!(
        first.cache_status(),
        "cachegate; fwd=miss; stored",
        "{path}"
    );
}

// === client conditionals answered from a fresh entry ===

#[tokio::test]
async fn if_none_match_with_the_strong_etag_gets_304_from_a_hit() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/strong").await;
    for sent in ["\"v1\"", "W/\"v1\"", "\"x\", \"v1\"", "*"] {
        let answer = client.get("/ttl/strong", &[("if-none-match", sent)]).await;
        assert_eq!(answer.status, 304, "{sent}");
        assert_eq!(answer.cache_status(), "cachegate; hit");
        assert_eq!(answer.header("etag"), Some("\"v1\""));
        assert!(answer.header("date").is_some());
        assert!(answer.header("age").is_some());
        assert!(answer.header("content-type").is_none());
        assert!(answer.body.is_empty());
    }
    let other = client
        .get("/ttl/strong", &[("if-none-match", "\"v2\"")])
        .await;
    assert_eq!(
        (other.status.as_u16(), other.text()),
        (200, BODY.to_string())
    );
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn if_none_match_uses_weak_comparison_for_a_weak_etag() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/weak").await;
    for sent in ["W/\"w1\"", "\"w1\""] {
        let answer = client.get("/ttl/weak", &[("if-none-match", sent)]).await;
        assert_eq!(answer.status, 304, "{sent}");
        assert_eq!(answer.header("etag"), Some("W/\"w1\""));
    }
    let head = client
        .send(
            Method::HEAD,
            "/ttl/weak",
            &[("if-none-match", "W/\"w1\"")],
            "",
        )
        .await;
    assert_eq!(head.status, 304);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn if_modified_since_gets_304_unless_if_none_match_is_sent() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/lm").await;
    let later = "Thu, 02 Jan 2020 00:00:00 GMT";
    let answer = client.get("/ttl/lm", &[("if-modified-since", later)]).await;
    assert_eq!(answer.status, 304);
    assert_eq!(answer.header("last-modified"), Some(LAST_MODIFIED));
    let same = client
        .get("/ttl/lm", &[("if-modified-since", LAST_MODIFIED)])
        .await;
    assert_eq!(same.status, 304);
    let earlier = "Tue, 31 Dec 2019 00:00:00 GMT";
    let changed = client
        .get("/ttl/lm", &[("if-modified-since", earlier)])
        .await;
    assert_eq!(changed.status, 200);
    let invalid = client
        .get("/ttl/lm", &[("if-modified-since", "soon")])
        .await;
    assert_eq!(invalid.status, 200);
    // If-None-Match wins: no entity tag matches, so the full answer.
    let both = client
        .get(
            "/ttl/lm",
            &[("if-none-match", "\"x\""), ("if-modified-since", later)],
        )
        .await;
    assert_eq!(both.status, 200);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn s4_3_2_if_match_goes_to_the_backend() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/strong").await;
    let answer = client.get("/ttl/strong", &[("if-match", "\"v1\"")]).await;
    assert_eq!(
        answer.cache_status(),
        "cachegate; fwd=request; detail=precondition"
    );
    assert_eq!(origin.hits(), 2);
    assert_eq!(origin.seen()[1].header("if-match"), Some("\"v1\""));
}

#[tokio::test]
async fn a_digest_etag_is_added_when_the_backend_sends_none_and_validates() {
    let (origin, _proxy, client) = setup().await;
    let first = client.get("/digest/plain", &[]).await;
    let tag = first.header("etag").expect("a digest etag").to_string();
    assert!(tag.starts_with("\"b3-") && tag.ends_with('"'), "{tag}");
    let again = client
        .get("/digest/plain", &[("if-none-match", &tag)])
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    // The backend's own tag is kept.
    let own = client.get("/digest/strong", &[]).await;
    assert_eq!(own.header("etag"), Some("\"v1\""));
    // Routes without the option add none.
    assert!(client.get("/ttl/plain", &[]).await.header("etag").is_none());
    assert_eq!(origin.hits(), 3);
}

// === ranges from a stored entry ===

/// Entries whose body fills its size class keep their headers apart from it: hits, `304`s
/// and ranges answer them the same as any other.
#[tokio::test]
async fn bodies_that_fill_a_size_class_answer_every_hit_whole() {
    let (origin, _proxy, client) = setup().await;
    for len in [1024usize, 8192, 65536, 1000] {
        let path = format!("/ttl/class/{len}");
        let first = client.get(&path, &[]).await;
        assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored", "{len}");
        assert_eq!(first.body.len(), len);
        for _ in 0..2 {
            let hit = client.get(&path, &[]).await;
            assert_eq!(hit.cache_status(), "cachegate; hit", "{len}");
            assert_eq!(hit.body, first.body, "{len}");
            assert_eq!(hit.header("etag"), Some("\"class\""), "{len}");
            assert_eq!(hit.header("x-custom"), Some("kept"), "{len}");
            assert_eq!(
                hit.header("content-type"),
                Some("application/json"),
                "{len}"
            );
            let expected_len = len.to_string();
            assert_eq!(hit.header("content-length"), Some(expected_len.as_str()));
        }
        let not_modified = client.get(&path, &[("if-none-match", "\"class\"")]).await;
        assert_eq!(not_modified.status, 304, "{len}");
        assert_eq!(not_modified.header("etag"), Some("\"class\""), "{len}");
        let part = client.get(&path, &[("range", "bytes=26-51")]).await;
        assert_eq!(part.status, 206, "{len}");
        assert_eq!(part.text(), "abcdefghijklmnopqrstuvwxyz", "{len}");
        assert_eq!(part.header("x-custom"), Some("kept"), "{len}");
    }
    assert_eq!(origin.hits(), 4);
}

#[tokio::test]
async fn a_single_byte_range_is_answered_206_from_the_entry() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/strong").await;
    let part = client.get("/ttl/strong", &[("range", "bytes=2-5")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.text(), "2345");
    assert_eq!(part.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(part.header("content-length"), Some("4"));
    assert_eq!(part.cache_status(), "cachegate; hit");
    let suffix = client.get("/ttl/strong", &[("range", "bytes=-3")]).await;
    assert_eq!(
        (suffix.status.as_u16(), suffix.text()),
        (206, "789".to_string())
    );
    let unsatisfiable = client.get("/ttl/strong", &[("range", "bytes=20-")]).await;
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(unsatisfiable.header("content-range"), Some("bytes */10"));
    let several = client
        .get("/ttl/strong", &[("range", "bytes=0-1,4-5")])
        .await;
    assert_eq!(
        (several.status.as_u16(), several.text()),
        (200, BODY.to_string())
    );
    let if_range_other = client
        .get(
            "/ttl/strong",
            &[("range", "bytes=0-1"), ("if-range", "\"v0\"")],
        )
        .await;
    assert_eq!(if_range_other.status, 200);
    let if_range_same = client
        .get(
            "/ttl/strong",
            &[("range", "bytes=0-1"), ("if-range", "\"v1\"")],
        )
        .await;
    assert_eq!(
        (if_range_same.status.as_u16(), if_range_same.text()),
        (206, "01".to_string())
    );
    // Fills never forward Range: the backend saw one plain GET.
    assert_eq!(origin.hits(), 1);
    assert!(origin.seen()[0].header("range").is_none());
}

// === honour-origin mode ===

#[tokio::test]
async fn s4_2_1_honor_origin_max_age_and_s_maxage_make_entries_fresh() {
    let (origin, _proxy, client) = setup().await;
    for path in ["/origin/max-age", "/origin/s-maxage"] {
        fill(&client, path).await;
        let hit = client.get(path, &[]).await;
        assert_eq!(hit.cache_status(), "cachegate; hit", "{path}");
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn s4_2_honor_origin_entries_without_freshness_are_not_served() {
    let (origin, _proxy, client) = setup().await;
    for path in [
        "/origin/max-age-zero",
        "/origin/expires-zero",
        "/origin/aged-out",
    ] {
        client.get(path, &[]).await;
        let second = client.get(path, &[]).await;
        assert_eq!(
            second.cache_status(),
            "cachegate; fwd=miss; stored",
            "{path}"
        );
    }
    assert_eq!(origin.hits(), 6);
}

#[tokio::test]
async fn s4_2_3_honor_origin_age_counts_the_age_the_response_arrived_with() {
    let (_origin, _proxy, client) = setup().await;
    fill(&client, "/origin/aged").await;
    let hit = client.get("/origin/aged", &[]).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!((50..60).contains(&age), "age {age}");
}

#[tokio::test]
async fn s4_a_response_served_from_the_cache_carries_age() {
    let (_origin, _proxy, client) = setup().await;
    fill(&client, "/origin/max-age").await;
    let hit = client.get("/origin/max-age", &[]).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    assert!(hit.header("age").is_some());
}

#[tokio::test]
async fn s4_1_honor_origin_vary_selects_by_the_nominated_request_headers() {
    let (origin, _proxy, client) = setup().await;
    let en = client
        .get("/origin/vary", &[("accept-language", "en")])
        .await;
    assert_eq!(en.text(), "en");
    let de = client
        .get("/origin/vary", &[("accept-language", "de")])
        .await;
    assert_eq!(de.text(), "de");
    let en_again = client
        .get("/origin/vary", &[("accept-language", "en")])
        .await;
    assert_eq!(
        (en_again.cache_status(), en_again.text().as_str()),
        ("cachegate; hit", "en")
    );
    let de_again = client
        .get("/origin/vary", &[("accept-language", "de")])
        .await;
    assert_eq!(
        (de_again.cache_status(), de_again.text().as_str()),
        ("cachegate; hit", "de")
    );
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn s4_2_2_honor_origin_heuristic_freshness_from_last_modified() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/origin/heuristic").await;
    assert_eq!(
        client.get("/origin/heuristic", &[]).await.cache_status(),
        "cachegate; hit"
    );
    // Nothing explicit and no Last-Modified: no heuristic, stale at once.
    client.get("/origin/plain", &[]).await;
    let again = client.get("/origin/plain", &[]).await;
    assert_eq!(again.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn s3_honor_origin_no_store_private_and_vary_star_are_never_stored() {
    let (origin, _proxy, client) = setup().await;
    for (path, detail) in [
        ("/origin/no-store", "no-store"),
        ("/origin/private", "private"),
        ("/origin/vary-star", "vary-star"),
        ("/origin/found", "no-freshness"),
    ] {
        for _ in 0..2 {
            let answer = client.get(path, &[]).await;
            assert_eq!(
                answer.cache_status(),
                format!("cachegate; fwd=miss; detail={detail}"),
                "{path}"
            );
        }
    }
    assert_eq!(origin.hits(), 8);
}

#[tokio::test]
async fn s3_honor_origin_stores_other_statuses_with_explicit_freshness() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/origin/found-max-age").await;
    let hit = client.get("/origin/found-max-age", &[]).await;
    assert_eq!(
        (hit.status.as_u16(), hit.cache_status()),
        (302, "cachegate; hit")
    );
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn s5_2_2_4_honor_origin_no_cache_is_stored_and_never_served_without_the_backend() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/origin/no-cache").await;
    let second = client.get("/origin/no-cache", &[]).await;
    assert_eq!(second.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn s5_2_2_7_honor_origin_fields_named_by_private_are_not_stored() {
    let (_origin, _proxy, client) = setup().await;
    client.get("/origin/private-field", &[]).await;
    let hit = client.get("/origin/private-field", &[]).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    assert!(hit.header("x-user").is_none());
}

#[tokio::test]
async fn s3_5_honor_origin_answers_to_authorized_fills_need_public_must_revalidate_or_s_maxage() {
    let (origin, _proxy, client) = setup().await;
    let caller = &[("x-org-id", "42"), ("authorization", "Bearer t")];
    for _ in 0..2 {
        let answer = client.get("/tenant/max-age", caller).await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=miss; detail=authorization"
        );
    }
    assert_eq!(origin.seen()[0].header("authorization"), Some("Bearer t"));
    let first = client.get("/tenant/public", caller).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    let again = client.get("/tenant/public", caller).await;
    assert_eq!(again.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn without_honor_origin_route_ttls_rule_but_no_store_and_private_still_prevent_storing() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/max-age-zero").await;
    let hit = client.get("/ttl/max-age-zero", &[]).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    for (path, detail) in [("/ttl/no-store", "no-store"), ("/ttl/private", "private")] {
        let answer = client.get(path, &[]).await;
        assert_eq!(
            answer.cache_status(),
            format!("cachegate; fwd=miss; detail={detail}")
        );
    }
    assert_eq!(origin.hits(), 3);
}

// === the request's Cache-Control ===

#[tokio::test]
async fn s5_2_1_honor_origin_routes_honour_request_directives() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/origin/max-age").await;
    fill(&client, "/origin/aged").await;
    // max-age=10: the entry (which arrived 50 seconds old) is too old for this client.
    let fresh = client
        .get("/origin/aged", &[("cache-control", "max-age=10")])
        .await;
    assert_eq!(fresh.cache_status(), "cachegate; fwd=miss; stored");
    // min-fresh beyond what is left: to the backend.
    let min = client
        .get("/origin/max-age", &[("cache-control", "min-fresh=120")])
        .await;
    assert_eq!(min.cache_status(), "cachegate; fwd=miss; stored");
    // no-cache: to the backend, and the answer is stored.
    let no_cache = client
        .get("/origin/max-age", &[("cache-control", "no-cache")])
        .await;
    assert_eq!(no_cache.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), 5);
    let plain = client
        .get("/origin/max-age", &[("cache-control", "max-age=30")])
        .await;
    assert_eq!(plain.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 5);
}

#[tokio::test]
async fn s5_2_1_7_only_if_cached_gets_504_when_nothing_is_stored() {
    let (origin, _proxy, client) = setup().await;
    let answer = client
        .get("/origin/max-age", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.cache_status(), "cachegate; detail=only-if-cached");
    assert_eq!(origin.hits(), 0);
    fill(&client, "/origin/max-age").await;
    let hit = client
        .get("/origin/max-age", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
}

#[tokio::test]
async fn route_ttl_routes_pass_no_cache_requests_through_by_default() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/strong").await;
    let answer = client
        .get("/ttl/strong", &[("cache-control", "no-cache")])
        .await;
    assert_eq!(
        answer.cache_status(),
        "cachegate; fwd=request; detail=request-no-cache"
    );
    let max_age = client
        .get("/ttl/strong", &[("cache-control", "max-age=0")])
        .await;
    assert_eq!(max_age.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 2);
}

// === invalidation (RFC 9111 §4.4) ===

#[tokio::test]
async fn s4_4_an_unknown_unsafe_method_invalidates_the_target() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/strong").await;
    let method = Method::from_bytes(b"LINK").unwrap();
    let answer = client.send(method, "/ttl/strong", &[], "").await;
    assert_eq!(answer.cache_status(), "cachegate; fwd=method");
    let after = client.get("/ttl/strong", &[]).await;
    assert_eq!(after.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn s4_4_a_safe_method_invalidates_nothing() {
    let (origin, _proxy, client) = setup().await;
    fill(&client, "/ttl/strong").await;
    client.send(Method::OPTIONS, "/ttl/strong", &[], "").await;
    assert_eq!(
        client.get("/ttl/strong", &[]).await.cache_status(),
        "cachegate; hit"
    );
    assert_eq!(origin.hits(), 2);
}
