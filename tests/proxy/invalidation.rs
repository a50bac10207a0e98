use crate::support::client::TestClient;
use crate::support::origin::{default_body, Gate, Origin, Reply};
use crate::support::{sign, TestProxy, BASE_CONFIG, WEBHOOK_SECRET};
use http::Method;

const ORG42: &[(&str, &str)] = &[("x-org-id", "42")];
const ORG7: &[(&str, &str)] = &[("x-org-id", "7")];

async fn setup() -> (Origin, TestProxy, TestClient) {
    let origin = Origin::with(|seen| {
        let reply = Reply::ok(default_body(seen));
        if seen.path().starts_with("/api/faculty/") {
            reply.header("cache-tag", "dept-physics, campus-north")
        } else {
            reply
        }
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

async fn state(client: &TestClient, path: &str, headers: &[(&str, &str)]) -> &'static str {
    if client.get(path, headers).await.cache_status() == "cachegate; hit" {
        "hit"
    } else {
        "miss"
    }
}

async fn warm(client: &TestClient, paths: &[&str], headers: &[(&str, &str)]) {
    for path in paths {
        client.get(path, headers).await;
        assert_eq!(state(client, path, headers).await, "hit", "{path}");
    }
}

#[tokio::test]
async fn a_signed_webhook_purges_tags_of_one_tenant() {
    let (_origin, proxy, client) = setup().await;
    let paths = ["/api/faculty/", "/api/faculty/12/", "/api/faculty/13/"];
    warm(&client, &paths, ORG42).await;
    warm(&client, &paths, ORG7).await;
    let answer = proxy
        .invalidate(r#"{"tenant": "42", "tags": ["faculty", "faculty:12"]}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["purged"], 2);
    assert_eq!(state(&client, "/api/faculty/", ORG42).await, "miss");
    assert_eq!(state(&client, "/api/faculty/12/", ORG42).await, "miss");
    assert_eq!(state(&client, "/api/faculty/13/", ORG42).await, "hit");
    for path in paths {
        assert_eq!(state(&client, path, ORG7).await, "hit", "tenant 7 {path}");
    }
}

#[tokio::test]
async fn unsigned_forged_and_expired_webhooks_are_refused_and_purge_nothing() {
    let (_origin, proxy, client) = setup().await;
    warm(&client, &["/api/faculty/"], ORG42).await;
    let body = r#"{"tenant": "42", "tags": ["faculty"]}"#;
    let send = |headers: Vec<(&'static str, String)>| {
        let client = TestClient::new(proxy.addr);
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            client
                .send(
                    Method::POST,
                    "/_cachegate/invalidate",
                    &headers,
                    body.to_string(),
                )
                .await
        }
    };
    let unsigned = send(vec![]).await;
    assert_eq!(unsigned.status, 401);
    assert_eq!(unsigned.json()["error"], "unauthorized");
    let forged = send(vec![(
        "cachegate-signature",
        "t=1700000000,v1=00ff".to_string(),
    )])
    .await;
    assert_eq!(forged.status, 401);
    let tampered = sign(r#"{"tenant": "7", "tags": ["faculty"]}"#);
    assert_eq!(
        send(vec![("cachegate-signature", tampered)]).await.status,
        401
    );
    // A good signature from an hour ago is outside the window.
    let old = unix_now() - 3600;
    let expired = cachegate::webhook::sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes(), old);
    let expired = send(vec![("cachegate-signature", expired)]).await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.json()["detail"]
            .as_str()
            .unwrap()
            .contains("window"),
        "{}",
        expired.text()
    );
    assert_eq!(state(&client, "/api/faculty/", ORG42).await, "hit");
    let stats = proxy.admin(Method::GET, "/stats", "").await.json();
    assert_eq!(stats["webhook_refused"], 4, "{stats}");
    assert_eq!(stats["webhook_purges"], 0, "{stats}");
}

/// Issue 8, "Invalidations were lost": a backend sending the legacy body for two saves of the
/// same tenant and resource within one second sends the same signed message twice (the timestamp
/// has one-second resolution). The second was refused as a replay, so the second write's purge
/// never happened and reads were stale until the TTL. A purge is idempotent: a repeat inside the
/// window is applied, and counted as a repeat.
#[tokio::test]
async fn issue_8_an_identical_webhook_sent_again_is_applied() {
    let (origin, proxy, client) = setup().await;
    let path = "/api/faculty/12/";
    origin.set_version(1);
    warm(&client, &[path], ORG42).await;
    let body = r#"{"organization_id": "42", "resource_type": "faculty"}"#;
    // Both saves fall in the same second: one timestamp, so one identical signed message.
    let signature =
        cachegate::webhook::sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes(), unix_now());
    let send = || {
        let client = TestClient::new(proxy.addr);
        let headers = [
            ("cachegate-signature", signature.as_str()),
            ("content-type", "application/json"),
        ];
        async move {
            client
                .send(
                    Method::POST,
                    "/_cachegate/invalidate",
                    &headers,
                    body.to_string(),
                )
                .await
        }
    };

    // The first save, its webhook, and a read that refills the entry with it.
    origin.set_version(2);
    let first = send().await;
    assert_eq!(first.status, 200, "{}", first.text());
    let refill = client.get(path, ORG42).await;
    assert_ne!(refill.cache_status(), "cachegate; hit");
    assert_eq!(refill.json()["version"], 2);
    assert_eq!(state(&client, path, ORG42).await, "hit");

    // The second save within the same second sends the identical message.
    origin.set_version(3);
    let second = send().await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.json()["purged"], 1, "{}", second.text());
    let read = client.get(path, ORG42).await;
    assert_ne!(
        read.cache_status(),
        "cachegate; hit",
        "stale hit after the second save"
    );
    assert_eq!(read.json()["version"], 3);

    let stats = proxy.admin(Method::GET, "/stats", "").await.json();
    assert_eq!(stats["webhook_purges"], 2, "{stats}");
    assert_eq!(stats["webhook_repeats"], 1, "{stats}");
    assert_eq!(stats["webhook_refused"], 0, "{stats}");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn malformed_purges_are_400_and_purge_nothing() {
    let (_origin, proxy, client) = setup().await;
    warm(&client, &["/api/faculty/"], ORG42).await;
    for body in [
        "{not json",
        r#"{"tenant": "42", "tagz": ["faculty"]}"#,
        r#"{"tenant": "42"}"#,
        r#"{"all": true}"#,
        r#"{"organization_id": "42", "resource_type": "nope"}"#,
    ] {
        let answer = proxy.invalidate(body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text());
        assert_eq!(answer.json()["error"], "bad_request");
        assert!(!answer.json()["detail"].as_str().unwrap().is_empty());
    }
    assert_eq!(state(&client, "/api/faculty/", ORG42).await, "hit");
}

#[tokio::test]
async fn the_cache_manager_shape_maps_resource_type_to_the_route_resource() {
    let (_origin, proxy, client) = setup().await;
    warm(
        &client,
        &["/api/faculty/", "/api/faculty/12/", "/api/departments/"],
        ORG42,
    )
    .await;
    let answer = proxy
        .invalidate(r#"{"organization_id": "42", "resource_type": "faculty"}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(state(&client, "/api/faculty/", ORG42).await, "miss");
    assert_eq!(state(&client, "/api/faculty/12/", ORG42).await, "miss");
    assert_eq!(state(&client, "/api/departments/", ORG42).await, "hit");
    // "all" is everything of that tenant.
    let answer = proxy
        .invalidate(r#"{"organization_id": "42", "resource_type": "all"}"#)
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(state(&client, "/api/departments/", ORG42).await, "miss");
}

#[tokio::test]
async fn star_purges_every_tenant() {
    let (_origin, proxy, client) = setup().await;
    warm(&client, &["/api/faculty/12/"], ORG42).await;
    warm(&client, &["/api/faculty/12/"], ORG7).await;
    let answer = proxy
        .invalidate(r#"{"tenant": "*", "tags": ["faculty:12"]}"#)
        .await;
    assert_eq!(answer.json()["purged"], 2);
    assert_eq!(state(&client, "/api/faculty/12/", ORG42).await, "miss");
    assert_eq!(state(&client, "/api/faculty/12/", ORG7).await, "miss");
}

#[tokio::test]
async fn tags_declared_by_the_origin_are_purgeable_and_hidden_from_clients() {
    let (_origin, proxy, client) = setup().await;
    let first = client.get("/api/faculty/12/", ORG42).await;
    assert!(first.header("cache-tag").is_none());
    let hit = client.get("/api/faculty/12/", ORG42).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    assert!(hit.header("cache-tag").is_none());
    warm(&client, &["/api/departments/"], ORG42).await;
    let answer = proxy
        .invalidate(r#"{"tenant": "42", "tags": ["dept-physics"]}"#)
        .await;
    assert_eq!(answer.json()["purged"], 1);
    assert_eq!(state(&client, "/api/faculty/12/", ORG42).await, "miss");
    assert_eq!(state(&client, "/api/departments/", ORG42).await, "hit");
}

#[tokio::test]
async fn paths_and_prefixes_purge_what_they_name() {
    let (_origin, proxy, client) = setup().await;
    let all = [
        "/api/faculty/12/",
        "/api/faculty/12/?x=1",
        "/api/faculty/",
        "/api/faculty/?page=2",
        "/api/departments/",
    ];
    warm(&client, &all, ORG42).await;
    // A path with a query purges that URI only.
    proxy
        .invalidate(r#"{"tenant": "42", "paths": ["/api/faculty/?page=2"]}"#)
        .await;
    assert_eq!(state(&client, "/api/faculty/?page=2", ORG42).await, "miss");
    assert_eq!(state(&client, "/api/faculty/", ORG42).await, "hit");
    // A path without one purges every query variant of it.
    proxy
        .invalidate(r#"{"tenant": "42", "paths": ["/api/faculty/12/"]}"#)
        .await;
    assert_eq!(state(&client, "/api/faculty/12/", ORG42).await, "miss");
    assert_eq!(state(&client, "/api/faculty/12/?x=1", ORG42).await, "miss");
    // A prefix purges everything under it and nothing beside it.
    warm(&client, &all, ORG42).await;
    let answer = proxy
        .invalidate(r#"{"tenant": "42", "prefixes": ["/api/faculty/"]}"#)
        .await;
    assert_eq!(answer.json()["purged"], 4);
    for path in &all[..4] {
        assert_eq!(state(&client, path, ORG42).await, "miss", "{path}");
    }
    assert_eq!(state(&client, "/api/departments/", ORG42).await, "hit");
}

#[tokio::test]
async fn a_soft_purge_makes_the_next_read_go_to_the_origin() {
    let (origin, proxy, client) = setup().await;
    warm(&client, &["/api/faculty/"], ORG42).await;
    origin.set_version(2);
    let answer = proxy
        .invalidate(r#"{"tenant": "42", "tags": ["faculty"], "soft": true}"#)
        .await;
    assert_eq!(answer.json()["purged"], 1);
    let next = client.get("/api/faculty/", ORG42).await;
    assert_eq!(next.json()["version"], 2);
    assert_eq!(state(&client, "/api/faculty/", ORG42).await, "hit");
}

/// The stale-set race with a webhook: the fill read old data, the invalidation arrives, the
/// fill returns the old body. The next read must go to the origin.
#[tokio::test]
async fn a_fill_overtaken_by_a_webhook_is_not_stored() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |seen| {
        if seen.header("user-agent") == Some("hold") {
            Reply::ok(default_body(seen)).gate(&g)
        } else {
            Reply::ok(default_body(seen))
        }
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get(
                    "/api/faculty/12/",
                    &[("x-org-id", "42"), ("user-agent", "hold")],
                )
                .await
        })
    };
    gate.arrivals(1).await;
    origin.set_version(2);
    let answer = proxy
        .invalidate(r#"{"tenant": "42", "tags": ["faculty:12"]}"#)
        .await;
    assert_eq!(answer.status, 200);
    gate.open();
    let old = held.await.unwrap();
    assert_eq!(old.json()["version"], 1);
    assert_eq!(old.cache_status(), "cachegate; fwd=miss; detail=fenced");
    let before = origin.hits();
    let next = client.get("/api/faculty/12/", ORG42).await;
    assert_eq!(next.json()["version"], 2);
    assert_eq!(origin.hits(), before + 1);
}

#[tokio::test]
async fn the_reserved_prefix_is_never_forwarded() {
    let (origin, _proxy, client) = setup().await;
    for (method, path) in [
        (Method::GET, "/_cachegate/invalidate"),
        (Method::GET, "/_cachegate/anything"),
        (Method::POST, "/_cachegate/other"),
        (Method::GET, "/%5Fcachegate/invalidate"),
    ] {
        let answer = client.send(method.clone(), path, ORG42, "").await;
        assert!(
            answer.status == 404 || answer.status == 405,
            "{method} {path}: {}",
            answer.status
        );
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
    assert_eq!(origin.hits(), 0);
}

/// The dependency-free Python client the Django and FastAPI integrations use, against the real
/// endpoint: its signature is accepted, and a tampered one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_purges_through_the_webhook() {
    let (_origin, proxy, client) = setup().await;
    warm(&client, &["/api/faculty/12/"], ORG42).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/integrations/cachegate_client.py"
    );
    let url = proxy.url("/_cachegate/invalidate");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, "send", "--url", &url, "--secret-env", "HOOK_SECRET"])
            .args(["--json", r#"{"tenant": "42", "tags": ["faculty:12"]}"#])
            .env("HOOK_SECRET", crate::support::WEBHOOK_SECRET)
            .env("NO_PROXY", "*")
            .output()
            .expect("python3 is needed for the integration tests")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&client, "/api/faculty/12/", ORG42).await, "miss");

    // The same client with the wrong secret is refused and purges nothing.
    warm(&client, &["/api/faculty/12/"], ORG42).await;
    let url = proxy.url("/_cachegate/invalidate");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, "send", "--url", &url, "--secret-env", "HOOK_SECRET"])
            .args(["--json", r#"{"tenant": "42", "tags": ["faculty:12"]}"#])
            .env("HOOK_SECRET", "not-the-secret")
            .env("NO_PROXY", "*")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert_eq!(state(&client, "/api/faculty/12/", ORG42).await, "hit");
}

/// A tag the origin declares (`Cache-Tag`) is only known once the response arrives, so the join
/// check cannot see it. A read that starts after a webhook purge of that tag was acknowledged
/// must still never receive the body the overtaken fill read before the purge.
#[tokio::test]
async fn a_read_after_a_declared_tag_purge_never_gets_the_overtaken_fill() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |seen| {
        let reply = Reply::ok(default_body(seen)).header("cache-tag", "room-12");
        if seen.header("user-agent") == Some("hold") {
            reply.gate(&g)
        } else {
            reply
        }
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get(
                    "/api/faculty/12/",
                    &[("x-org-id", "42"), ("user-agent", "hold")],
                )
                .await
        })
    };
    gate.arrivals(1).await;
    // The backend changes room 12 and acknowledges only after its webhook was accepted.
    origin.set_version(2);
    let answer = proxy
        .invalidate(r#"{"tenant": "42", "tags": ["room-12"]}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // A read that starts now, after the acknowledged purge.
    let after = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/api/faculty/12/", ORG42).await })
    };
    // Let it reach the proxy: it either joins the held fill or leads its own (which the
    // origin answers at once, without the gate).
    let (mut waits, mut hits) = (proxy.watch_waits(), origin.watch_hits());
    crate::support::wait::within(
        "the read to join the held fill or reach the origin",
        async {
            tokio::select! {
                _ = waits.wait_for(|n| *n >= 1) => {}
                _ = hits.wait_for(|n| *n >= 2) => {}
            }
        },
    )
    .await;
    gate.open();
    let old = held.await.unwrap();
    assert_eq!(old.json()["version"], 1);
    let after = after.await.unwrap();
    assert_eq!(
        after.json()["version"],
        2,
        "a read begun after the purge was acknowledged got pre-purge data ({})",
        after.cache_status()
    );
}

/// Spellings that a backend resolving dot segments or collapsing `//` reads as the reserved
/// prefix are ambiguous to cachegate, which then forwards them as received: they reach the
/// backend although nothing under the reserved prefix may, whichever way it is spelled.
#[tokio::test]
async fn ambiguous_spellings_of_the_reserved_prefix_are_never_forwarded() {
    let (origin, proxy, _client) = setup().await;
    for path in [
        "/api/../_cachegate/invalidate",
        "//_cachegate/invalidate",
        "/./_cachegate/invalidate",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: localhost\r\nx-org-id: 42\r\nconnection: close\r\n\r\n"
        );
        let answer = crate::support::client::raw(proxy.addr, &request).await;
        assert!(!answer.is_empty(), "{path}: no answer");
    }
    let forwarded: Vec<String> = origin
        .seen()
        .iter()
        .map(|seen| seen.path().to_string())
        .collect();
    assert!(
        forwarded.is_empty(),
        "forwarded to the backend: {forwarded:?}"
    );
}
