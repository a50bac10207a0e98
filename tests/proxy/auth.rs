use crate::support::client::TestClient;
use crate::support::origin::{Origin, Reply};
use crate::support::{TestProxy, JWT_SECRET};
use jsonwebtoken::{encode, EncodingKey, Header};
use tokio::task::JoinSet;

/// Routes of every scope, with callers verified by HS256 JWTs.
const JWT_CONFIG: &str = r#"
[upstream]
url = "{upstream}"
timeout = "2s"

[auth]
trusted_proxies = ["10.0.0.0/8"]

[auth.jwt]
hs256_secret_env = "CACHEGATE_JWT_SECRET"
tenant_claim = "org"
user_claim = "sub"

[cache]
tenant = { header = "X-Org-Id" }

[[route]]
path = "/api/orgs/{org}/faculty/"
tenant = { path = "org" }

[[route]]
path = "/api/faculty/"
scope = "tenant"

[[route]]
path = "/api/me/"
scope = "user"

[[route]]
path = "/api/news/"
scope = "public"
tenant = "none"

[[route]]
path = "/api/catalog/"
anonymous = "pass"

[[route]]
path = "/api/rooms/"
resource = "rooms"
scope = "tenant"
tenant = "none"

[[route]]
path = "/api/rooms/{id}/"
resource = "rooms"
scope = "tenant"
tenant = "none"
"#;

/// The same routes, with callers verified by asking the backend who a session belongs to.
const INTROSPECT_CONFIG: &str = r#"
[upstream]
url = "{upstream}"
timeout = "2s"

[auth.introspect]
path = "/api/auth/me/"
tenant_field = "org_id"
user_field = "id"
ttl = "60s"
timeout = "1s"
session_cookies = ["sessionid"]

[[route]]
path = "/api/auth/{*rest}"
cache = false

[[route]]
path = "/api/faculty/"
scope = "tenant"

[[route]]
path = "/api/me/"
scope = "user"

[[route]]
path = "/api/catalog/"
scope = "tenant"
anonymous = "pass"
"#;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(org: &str, sub: &str, exp: u64) -> String {
    let claims = serde_json::json!({ "org": org, "sub": sub, "exp": exp });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An origin that says who it thinks is asking: the caller's Authorization and Cookie.
async fn origin() -> Origin {
    Origin::with(|seen| match seen.path() {
        "/api/auth/me/" => match seen.header("cookie") {
            Some("sessionid=alice") => Reply::ok(r#"{"id": "alice", "org_id": 42}"#)
                .delay(std::time::Duration::from_millis(100)),
            Some("sessionid=bob") => Reply::ok(r#"{"id": "bob", "org_id": 42}"#),
            Some("sessionid=down") => Reply::ok("oops").status(500),
            _ => Reply::ok(r#"{"detail": "not logged in"}"#).status(403),
        },
        _ => Reply::ok(
            serde_json::json!({
                "target": seen.target,
                "auth": seen.header("authorization"),
                "cookie": seen.header("cookie"),
                "version": seen.version,
            })
            .to_string(),
        ),
    })
    .await
}

async fn setup(config: &str) -> (Origin, TestProxy, TestClient) {
    let origin = origin().await;
    let proxy = TestProxy::start(config, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

#[tokio::test]
async fn a_token_for_one_tenant_cannot_read_another_tenants_path() {
    let (origin, _proxy, client) = setup(JWT_CONFIG).await;
    let t42 = bearer(&token("42", "alice", now() + 600));
    let t7 = bearer(&token("7", "carol", now() + 600));
    // Tenant 7's list is cached...
    client
        .get("/api/orgs/7/faculty/", &[("authorization", &t7)])
        .await;
    assert_eq!(
        client
            .get("/api/orgs/7/faculty/", &[("authorization", &t7)])
            .await
            .cache_status(),
        "cachegate; hit"
    );
    let hits = origin.hits();
    // ...and tenant 42's token asking for it is refused before any lookup.
    let answer = client
        .get("/api/orgs/7/faculty/", &[("authorization", &t42)])
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["error"], "forbidden");
    // Refused before any lookup and never forwarded, so no `fwd` (issue 7: it said
    // `fwd=miss; detail=error`).
    assert_eq!(answer.cache_status(), "cachegate; detail=forbidden");
    // A tenant header naming another tenant is refused the same way.
    let answer = client
        .get(
            "/api/faculty/",
            &[("authorization", &t42), ("x-org-id", "7")],
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(origin.hits(), hits);
}

#[tokio::test]
async fn missing_expired_and_tampered_tokens_get_401_even_when_an_entry_is_cached() {
    let (origin, proxy, client) = setup(JWT_CONFIG).await;
    let good = bearer(&token("42", "alice", now() + 600));
    client
        .get("/api/faculty/", &[("authorization", &good)])
        .await;
    assert_eq!(
        client
            .get("/api/faculty/", &[("authorization", &good)])
            .await
            .cache_status(),
        "cachegate; hit"
    );
    let hits = origin.hits();
    let expired = bearer(&token("42", "alice", now() - 3600));
    let mut tampered = token("42", "alice", now() + 600);
    tampered.insert(tampered.find('.').unwrap() + 3, 'x');
    let wrong_key = bearer(
        &encode(
            &Header::default(),
            &serde_json::json!({ "org": "42", "sub": "alice", "exp": now() + 600 }),
            &EncodingKey::from_secret(b"another secret"),
        )
        .unwrap(),
    );
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "unauthenticated"),
        (vec![("x-org-id", "42".to_string())], "unauthenticated"),
        (vec![("authorization", expired)], "invalid_credential"),
        (
            vec![("authorization", bearer(&tampered))],
            "invalid_credential",
        ),
        (vec![("authorization", wrong_key)], "invalid_credential"),
        (
            vec![("authorization", "Basic YWxpY2U6cHc=".to_string())],
            "invalid_credential",
        ),
    ];
    for (headers, code) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = client.get("/api/faculty/", &headers).await;
        assert_eq!(answer.status, 401, "{headers:?}");
        assert_eq!(answer.json()["error"], code, "{headers:?}");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(origin.hits(), hits, "nothing reached the backend");
    let stats = proxy.proxy.stats().snapshot();
    assert_eq!(stats.auth_missing, 2);
    assert_eq!(stats.auth_invalid, 4);
}

/// Issue 7: a refusal is one outcome, so its `Cache-Status`, its counter and the log line
/// agree, and a request cachegate never forwarded does not claim `fwd=miss`.
#[tokio::test]
async fn refusals_say_so_in_cache_status_and_are_counted_by_reason() {
    let (origin, proxy, client) = setup(JWT_CONFIG).await;
    let missing = client.get("/api/faculty/", &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.cache_status(), "cachegate; detail=unauthenticated");
    let expired = bearer(&token("42", "alice", now() - 3600));
    let refused = client
        .get("/api/faculty/", &[("authorization", &expired)])
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.cache_status(),
        "cachegate; detail=invalid-credential"
    );
    let t42 = bearer(&token("42", "alice", now() + 600));
    let forbidden = client
        .get("/api/orgs/7/faculty/", &[("authorization", &t42)])
        .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.cache_status(), "cachegate; detail=forbidden");
    assert_eq!(origin.hits(), 0, "no refusal reached the backend");
    let stats = proxy.proxy.stats().snapshot();
    assert_eq!(
        (stats.auth_missing, stats.auth_invalid, stats.auth_forbidden),
        (1, 1, 1)
    );
    assert_eq!((stats.hits, stats.misses, stats.bypassed), (0, 0, 0));
}

#[tokio::test]
async fn two_users_on_a_user_route_never_see_each_others_answers() {
    let (origin, _proxy, client) = setup(JWT_CONFIG).await;
    let alice = bearer(&token("42", "alice", now() + 600));
    let bob = bearer(&token("42", "bob", now() + 600));
    for _ in 0..3 {
        let a = client.get("/api/me/", &[("authorization", &alice)]).await;
        let b = client.get("/api/me/", &[("authorization", &bob)]).await;
        assert_eq!(a.json()["auth"], alice.as_str());
        assert_eq!(b.json()["auth"], bob.as_str());
    }
    assert_eq!(origin.hits(), 2);
    // On a tenant route the two share the tenant's entry.
    client
        .get("/api/faculty/", &[("authorization", &alice)])
        .await;
    let shared = client
        .get("/api/faculty/", &[("authorization", &bob)])
        .await;
    assert_eq!(shared.cache_status(), "cachegate; hit");
}

#[tokio::test]
async fn public_routes_share_one_entry_and_anonymous_pass_routes_forward_uncached() {
    let (origin, _proxy, client) = setup(JWT_CONFIG).await;
    let alice = bearer(&token("42", "alice", now() + 600));
    client.get("/api/news/", &[("authorization", &alice)]).await;
    let anonymous = client.get("/api/news/", &[]).await;
    assert_eq!(anonymous.cache_status(), "cachegate; hit");
    // `anonymous = "pass"`: without a credential the backend decides, and nothing is stored.
    for _ in 0..2 {
        let answer = client.get("/api/catalog/", &[]).await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=bypass; detail=anonymous"
        );
    }
    // With one, the route caches per tenant as usual.
    client
        .get("/api/catalog/", &[("authorization", &alice)])
        .await;
    let hit = client
        .get("/api/catalog/", &[("authorization", &alice)])
        .await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 4);
}

#[tokio::test]
async fn a_tenant_header_from_an_untrusted_peer_is_not_a_credential() {
    // The test client is 127.0.0.1, outside trusted_proxies (10.0.0.0/8).
    let (origin, _proxy, client) = setup(JWT_CONFIG).await;
    let answer = client.get("/api/faculty/", &[("x-org-id", "42")]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(origin.hits(), 0);
    // From a trusted peer, the same header is the verified tenant.
    let trusted = JWT_CONFIG.replace("10.0.0.0/8", "127.0.0.1/32");
    let (origin, _proxy, client) = setup(&trusted).await;
    client.get("/api/faculty/", &[("x-org-id", "42")]).await;
    let hit = client.get("/api/faculty/", &[("x-org-id", "42")]).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    let other = client.get("/api/faculty/", &[("x-org-id", "7")]).await;
    assert_eq!(other.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn a_hundred_requests_with_one_new_session_cost_one_introspection() {
    let (origin, proxy, client) = setup(INTROSPECT_CONFIG).await;
    let mut set = JoinSet::new();
    for _ in 0..100 {
        let client = client.clone();
        set.spawn(async move {
            client
                .get("/api/faculty/", &[("cookie", "sessionid=alice")])
                .await
        });
    }
    while let Some(answer) = set.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    assert_eq!(origin.hits_on("/api/auth/me/"), 1);
    assert_eq!(origin.hits_on("/api/faculty/"), 1);
    assert!(proxy.proxy.stats().snapshot().hits + proxy.proxy.stats().snapshot().collapsed >= 99);
    // Bob is another user of the same tenant: a new introspection, the tenant's entry.
    let bob = client
        .get("/api/faculty/", &[("cookie", "sessionid=bob")])
        .await;
    assert_eq!(bob.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits_on("/api/auth/me/"), 2);
}

#[tokio::test]
async fn introspection_refusals_pass_through_and_outages_are_503_never_a_hit() {
    let (origin, _proxy, client) = setup(INTROSPECT_CONFIG).await;
    client
        .get("/api/faculty/", &[("cookie", "sessionid=alice")])
        .await;
    let refused = client
        .get("/api/faculty/", &[("cookie", "sessionid=mallory")])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["detail"], "not logged in");
    let down = client
        .get("/api/faculty/", &[("cookie", "sessionid=down")])
        .await;
    assert_eq!(down.status, 503);
    assert_eq!(down.json()["error"], "auth_unavailable");
    assert!(down.header("retry-after").is_some());
    let anonymous = client.get("/api/faculty/", &[]).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(origin.hits_on("/api/faculty/"), 1);
}

#[tokio::test]
async fn logout_purges_the_users_entries_and_forgets_the_session() {
    let (origin, proxy, client) = setup(INTROSPECT_CONFIG).await;
    let alice = [("cookie", "sessionid=alice")];
    client.get("/api/me/", &alice).await;
    assert_eq!(
        client.get("/api/me/", &alice).await.cache_status(),
        "cachegate; hit"
    );
    assert_eq!(origin.hits_on("/api/auth/me/"), 1);
    let answer = proxy
        .invalidate(r#"{"tenant": "42", "user": "alice"}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["purged"], 1);
    let after = client.get("/api/me/", &alice).await;
    assert_eq!(after.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(
        origin.hits_on("/api/auth/me/"),
        2,
        "the session was verified again"
    );
    // `credential_cache: all` forgets every session at once.
    let answer = proxy.invalidate(r#"{"credential_cache": "all"}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    client.get("/api/me/", &alice).await;
    assert_eq!(origin.hits_on("/api/auth/me/"), 3);
}

/// Entries are keyed by the verified tenant, so a write must evict under that same tenant: the
/// writer's own when its credential verifies, every tenant's when it does not.
#[tokio::test]
async fn writes_evict_under_the_verified_tenant() {
    let (_origin, _proxy, client) = setup(JWT_CONFIG).await;
    let t42 = bearer(&token("42", "alice", now() + 600));
    let t7 = bearer(&token("7", "carol", now() + 600));
    let state = |answer: crate::support::client::Answer| answer.cache_status().to_string();
    for t in [&t42, &t7] {
        client.get("/api/rooms/", &[("authorization", t)]).await;
        assert_eq!(
            state(client.get("/api/rooms/", &[("authorization", t)]).await),
            "cachegate; hit"
        );
    }
    let put = client
        .send(
            http::Method::PUT,
            "/api/rooms/5/",
            &[("authorization", &t42)],
            "{}",
        )
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(
        state(client.get("/api/rooms/", &[("authorization", &t42)]).await),
        "cachegate; fwd=miss; stored"
    );
    assert_eq!(
        state(client.get("/api/rooms/", &[("authorization", &t7)]).await),
        "cachegate; hit"
    );
    // A write whose credential cannot be verified may have changed any tenant's data.
    client.get("/api/rooms/", &[("authorization", &t42)]).await;
    client
        .send(http::Method::PUT, "/api/rooms/5/", &[], "{}")
        .await;
    for t in [&t42, &t7] {
        assert_eq!(
            state(client.get("/api/rooms/", &[("authorization", t)]).await),
            "cachegate; fwd=miss; stored"
        );
    }
}

/// cachegate never refuses a write, so the backend may accept one whose path names another
/// tenant than the writer's credential (a staff account, an org admin acting on a sister org).
/// The entries of the tenant the write changed are the ones keyed under the tenant its path
/// names; a read by that tenant afterwards must not be served from before the write.
#[tokio::test]
async fn a_write_naming_another_tenant_than_its_credential_evicts_that_tenants_entries() {
    let (origin, _proxy, client) = setup(JWT_CONFIG).await;
    let t42 = bearer(&token("42", "alice", now() + 600));
    let t7 = bearer(&token("7", "carol", now() + 600));
    let path = "/api/orgs/7/faculty/";
    client.get(path, &[("authorization", &t7)]).await;
    let cached = client.get(path, &[("authorization", &t7)]).await;
    assert_eq!(cached.cache_status(), "cachegate; hit");
    assert_eq!(cached.json()["version"], 1);
    // The backend accepts tenant 42's credential writing to org 7, and acknowledges it.
    origin.set_version(2);
    let post = client
        .send(http::Method::POST, path, &[("authorization", &t42)], "{}")
        .await;
    assert_eq!(post.status, 200);
    let after = client.get(path, &[("authorization", &t7)]).await;
    assert_eq!(
        after.json()["version"],
        2,
        "org 7 read data older than an acknowledged write to org 7 ({})",
        after.cache_status()
    );
}

/// A logged-out browser still sends `csrftoken`; with `session_cookies` it is anonymous, not a
/// credential to introspect.
#[tokio::test]
async fn cookies_without_a_session_are_anonymous() {
    let (origin, _proxy, client) = setup(INTROSPECT_CONFIG).await;
    for _ in 0..2 {
        let answer = client
            .get("/api/catalog/", &[("cookie", "csrftoken=abc")])
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=bypass; detail=anonymous"
        );
    }
    assert_eq!(
        client
            .get("/api/faculty/", &[("cookie", "csrftoken=abc")])
            .await
            .status,
        401
    );
    assert_eq!(origin.hits_on("/api/auth/me/"), 0);
    // The session cookie is the credential, whatever other cookies come with it.
    let with_session = [("cookie", "csrftoken=abc; sessionid=alice")];
    client.get("/api/catalog/", &with_session).await;
    let hit = client
        .get(
            "/api/catalog/",
            &[("cookie", "sessionid=alice; theme=dark")],
        )
        .await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits_on("/api/auth/me/"), 1);
}
