use crate::support::client::TestClient;
use crate::support::origin::{default_body, Gate, Origin, Reply};
use crate::support::{TestProxy, BASE_CONFIG};
use http::Method;

const ORG42: &[(&str, &str)] = &[("x-org-id", "42")];
const ORG7: &[(&str, &str)] = &[("x-org-id", "7")];

async fn setup() -> (Origin, TestProxy, TestClient) {
    let origin = Origin::with(|seen| match seen.method {
        Method::GET => Reply::ok(default_body(seen)),
        _ => match seen.header("x-answer") {
            Some(status) => Reply::ok("{}").status(status.parse().unwrap()),
            None => Reply::ok("{}"),
        },
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

async fn warm(client: &TestClient, paths: &[&str], headers: &[(&str, &str)]) {
    for path in paths {
        client.get(path, headers).await;
        assert_eq!(
            client.get(path, headers).await.cache_status(),
            "cachegate; hit",
            "{path}"
        );
    }
}

fn status_of(answer: &crate::support::client::Answer) -> &str {
    if answer.cache_status() == "cachegate; hit" {
        "hit"
    } else {
        "miss"
    }
}

#[tokio::test]
async fn a_detail_write_evicts_the_detail_and_every_list_variant_of_its_tenant_only() {
    let (_origin, _proxy, client) = setup().await;
    let paths = [
        "/api/faculty/12/",
        "/api/faculty/",
        "/api/faculty/?page=2",
        "/api/faculty/?b=2&a=1",
        "/api/faculty/13/",
    ];
    warm(&client, &paths, ORG42).await;
    warm(&client, &paths, ORG7).await;
    let put = client
        .send(Method::PUT, "/api/faculty/12/", ORG42, "{\"name\":\"x\"}")
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(put.cache_status(), "cachegate; fwd=method");
    // Detail 13 goes too: the detail route declares `tags = ["department"]` and
    // `invalidates = ["department"]`, so a write on any detail evicts every detail.
    let expected_42 = ["miss", "miss", "miss", "miss", "miss"];
    for (path, expected) in paths.iter().zip(expected_42) {
        assert_eq!(
            status_of(&client.get(path, ORG42).await),
            expected,
            "tenant 42 {path}"
        );
    }
    for path in paths {
        assert_eq!(
            status_of(&client.get(path, ORG7).await),
            "hit",
            "tenant 7 {path}"
        );
    }
}

#[tokio::test]
async fn a_create_on_a_list_route_evicts_the_lists_but_not_the_details() {
    let (_origin, _proxy, client) = setup().await;
    warm(
        &client,
        &["/api/faculty/", "/api/faculty/?page=2", "/api/faculty/12/"],
        ORG42,
    )
    .await;
    client
        .send(Method::POST, "/api/faculty/", ORG42, "{}")
        .await;
    assert_eq!(status_of(&client.get("/api/faculty/", ORG42).await), "miss");
    assert_eq!(
        status_of(&client.get("/api/faculty/?page=2", ORG42).await),
        "miss"
    );
    assert_eq!(
        status_of(&client.get("/api/faculty/12/", ORG42).await),
        "hit"
    );
}

#[tokio::test]
async fn declared_invalidates_purge_other_resources() {
    let (_origin, _proxy, client) = setup().await;
    warm(&client, &["/api/departments/"], ORG42).await;
    // The detail route declares `invalidates = ["department"]`.
    client
        .send(Method::PATCH, "/api/faculty/12/", ORG42, "{}")
        .await;
    assert_eq!(
        status_of(&client.get("/api/departments/", ORG42).await),
        "miss"
    );
}

#[tokio::test]
async fn a_rejected_write_evicts_nothing_but_a_failed_one_does() {
    let (_origin, _proxy, client) = setup().await;
    warm(&client, &["/api/faculty/12/"], ORG42).await;
    let rejected = client
        .send(
            Method::PUT,
            "/api/faculty/12/",
            &[("x-org-id", "42"), ("x-answer", "400")],
            "{}",
        )
        .await;
    assert_eq!(rejected.status, 400);
    assert_eq!(
        status_of(&client.get("/api/faculty/12/", ORG42).await),
        "hit"
    );
    // A 5xx may have changed data half-way: the outcome is unknown, so evict.
    let failed = client
        .send(
            Method::PUT,
            "/api/faculty/12/",
            &[("x-org-id", "42"), ("x-answer", "503")],
            "{}",
        )
        .await;
    assert_eq!(failed.status, 503);
    assert_eq!(
        status_of(&client.get("/api/faculty/12/", ORG42).await),
        "miss"
    );
}

#[tokio::test]
async fn location_of_a_created_resource_is_evicted() {
    let origin = Origin::with(|seen| match seen.method {
        Method::GET => Reply::ok(default_body(seen)),
        _ => Reply::ok("{}")
            .status(201)
            .header("location", "/api/faculty/99/"),
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    // A negative answer cached before the create (a 200 here for simplicity) must go.
    warm(
        &client,
        &["/api/faculty/99/", "/api/faculty/99/?x=1"],
        ORG42,
    )
    .await;
    // POST to an unrelated, uncached path whose response points at the detail.
    client
        .send(Method::POST, "/api/auth/import/", ORG42, "{}")
        .await;
    assert_eq!(
        status_of(&client.get("/api/faculty/99/", ORG42).await),
        "miss"
    );
    assert_eq!(
        status_of(&client.get("/api/faculty/99/?x=1", ORG42).await),
        "miss"
    );
}

#[tokio::test]
async fn a_write_without_a_tenant_evicts_for_every_tenant() {
    let (_origin, _proxy, client) = setup().await;
    warm(&client, &["/api/faculty/12/"], ORG42).await;
    warm(&client, &["/api/faculty/12/"], ORG7).await;
    client
        .send(Method::DELETE, "/api/faculty/12/", &[], "")
        .await;
    assert_eq!(
        status_of(&client.get("/api/faculty/12/", ORG42).await),
        "miss"
    );
    assert_eq!(
        status_of(&client.get("/api/faculty/12/", ORG7).await),
        "miss"
    );
}

/// The stale-set race: a fill reads old data, a write lands and evicts, then the fill returns.
/// The old body must not be stored, and reads after the write must not join the old fill.
#[tokio::test]
async fn a_fill_overtaken_by_a_write_is_not_stored() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(
        move |seen| match (seen.method.clone(), seen.header("user-agent")) {
            (Method::GET, Some("hold")) => Reply::ok(default_body(seen)).gate(&g),
            (Method::GET, _) => Reply::ok(default_body(seen)),
            _ => Reply::ok("{}"),
        },
    )
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
    // The fill has read version 1 and is held at the origin.
    gate.arrivals(1).await;
    origin.set_version(2);
    let put = client
        .send(Method::PUT, "/api/faculty/12/", ORG42, "{}")
        .await;
    assert_eq!(put.status, 200);
    // A read that starts after the write was acknowledged must not join the old fill.
    let after = client.get("/api/faculty/12/", ORG42).await;
    assert_eq!(after.json()["version"], 2);
    gate.open();
    let old = held.await.unwrap();
    assert_eq!(old.json()["version"], 1);
    assert_eq!(old.cache_status(), "cachegate; fwd=miss; detail=fenced");
    // And the next read is answered with the new data (from the origin or the entry the
    // post-write read stored), never the held fill's old body.
    let next = client.get("/api/faculty/12/", ORG42).await;
    assert_eq!(next.json()["version"], 2);
}

#[tokio::test]
async fn a_fill_overtaken_by_a_write_goes_to_the_origin_next_time() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |seen| match seen.method {
        Method::GET => Reply::ok(default_body(seen)).gate(&g),
        _ => Reply::ok("{}"),
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let held = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/api/faculty/", ORG42).await })
    };
    gate.arrivals(1).await;
    origin.set_version(2);
    // A create on the list route evicts the lists while the list fill is held.
    client
        .send(Method::POST, "/api/faculty/", ORG42, "{}")
        .await;
    gate.open();
    assert_eq!(held.await.unwrap().json()["version"], 1);
    let gets_before = origin.hits_on("/api/faculty/");
    let next = client.get("/api/faculty/", ORG42).await;
    assert_eq!(next.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(next.json()["version"], 2);
    assert_eq!(origin.hits_on("/api/faculty/"), gets_before + 1);
}

#[tokio::test]
async fn a_relative_location_is_resolved_against_the_request_path() {
    let origin = Origin::with(|seen| match seen.method {
        Method::GET => Reply::ok(default_body(seen)),
        _ => Reply::ok("{}").status(201).header("location", "99/"),
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    warm(&client, &["/api/faculty/99/"], ORG42).await;
    // The list route's own purge does not cover details; only the Location does.
    client
        .send(Method::POST, "/api/faculty/", ORG42, "{}")
        .await;
    assert_eq!(
        status_of(&client.get("/api/faculty/99/", ORG42).await),
        "miss"
    );
}

#[tokio::test]
async fn a_tenant_write_also_evicts_public_entries_of_the_same_resource() {
    let config = BASE_CONFIG.replace(
        "path = \"/api/public/{*rest}\"\ntenant = \"none\"",
        "path = \"/api/public/faculty/\"\nresource = \"faculty\"\ntenant = \"none\"",
    );
    assert_ne!(config, BASE_CONFIG);
    let origin = Origin::start().await;
    let proxy = TestProxy::start(&config, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    warm(&client, &["/api/public/faculty/"], &[]).await;
    client
        .send(Method::PUT, "/api/faculty/12/", ORG42, "{}")
        .await;
    assert_eq!(
        status_of(&client.get("/api/public/faculty/", &[]).await),
        "miss"
    );
}

/// Django (WSGI `PATH_INFO`) and FastAPI (ASGI `path`) decode `%2F` before routing, so
/// `/api/public/docs%2Fintro` and `/api/public/docs/intro` are one resource at the backend.
/// The escaped spelling is therefore never cached (a write to the other could not evict it),
/// and a write through the escaped spelling evicts the decoded one.
#[tokio::test]
async fn encoded_slashes_never_let_a_read_outlive_a_write() {
    let (origin, _proxy, client) = setup().await;
    let encoded = "/api/public/docs%2Fintro";
    let decoded = "/api/public/docs/intro";
    for _ in 0..2 {
        assert_eq!(
            client.get(encoded, &[]).await.cache_status(),
            "cachegate; fwd=bypass; detail=ambiguous-path"
        );
    }
    // A write to the decoded spelling: the escaped read sees it at once.
    origin.set_version(2);
    let put = client.send(Method::PUT, decoded, &[], "{}").await;
    assert_eq!(put.status, 200);
    assert_eq!(client.get(encoded, &[]).await.json()["version"], 2);
    // A write through the escaped spelling evicts the decoded one's entry.
    warm(&client, &[decoded], &[]).await;
    origin.set_version(3);
    let put = client.send(Method::PUT, encoded, &[], "{}").await;
    assert_eq!(put.status, 200);
    assert_eq!(
        origin.seen().last().unwrap().target,
        encoded,
        "forwarded as sent"
    );
    let after = client.get(decoded, &[]).await;
    assert_eq!(after.json()["version"], 3, "{}", after.cache_status());
}
