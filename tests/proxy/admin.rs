use crate::support::client::TestClient;
use crate::support::origin::Origin;
use crate::support::{TestProxy, ADMIN_TOKEN, BASE_CONFIG};
use http::Method;

const ORG42: &[(&str, &str)] = &[("x-org-id", "42")];

async fn setup() -> (Origin, TestProxy, TestClient) {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

#[tokio::test]
async fn every_endpoint_but_healthz_needs_the_token() {
    let (_origin, proxy, client) = setup().await;
    client.get("/api/faculty/", ORG42).await;
    let admin = TestClient::new(proxy.admin_addr);
    assert_eq!(admin.get("/healthz", &[]).await.status, 200);
    for (method, path) in [
        (Method::GET, "/stats"),
        (Method::GET, "/readyz"),
        (Method::POST, "/purge"),
        (Method::POST, "/warm"),
        (Method::GET, "/entries"),
    ] {
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong")],
            vec![("authorization", ADMIN_TOKEN)],
        ] {
            let answer = admin
                .send(
                    method.clone(),
                    path,
                    &headers,
                    r#"{"tenant": "*", "all": true}"#,
                )
                .await;
            assert_eq!(answer.status, 401, "{method} {path} {headers:?}");
            assert_eq!(answer.json()["error"], "unauthorized");
        }
    }
    // Nothing was purged by the refused calls.
    assert_eq!(
        client.get("/api/faculty/", ORG42).await.cache_status(),
        "cachegate; hit"
    );
}

#[tokio::test]
async fn stats_count_hits_misses_per_route_and_tenant() {
    let (_origin, proxy, client) = setup().await;
    client.get("/api/faculty/", ORG42).await;
    client.get("/api/faculty/", ORG42).await;
    client.get("/api/faculty/", &[("x-org-id", "7")]).await;
    client.get("/api/unknown/", ORG42).await;
    let stats = proxy.admin(Method::GET, "/stats", "").await;
    assert_eq!(stats.status, 200);
    let s = stats.json();
    assert_eq!(s["hits"], 1);
    assert_eq!(s["misses"], 2);
    assert_eq!(s["bypassed"], 1);
    // Each bypass reason is counted on its own (issue 7).
    assert_eq!(s["bypass"]["no-route"], 1);
    assert_eq!(s["bypass"]["credentials"], 0);
    assert_eq!(s["entries"], 2);
    assert!(s["bytes"].as_u64().unwrap() > 0);
    assert!((s["hit_ratio"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let route = &s["routes"][0];
    assert_eq!(route["path"], "/api/faculty/");
    assert_eq!(
        (route["hits"].as_u64(), route["misses"].as_u64()),
        (Some(1), Some(2))
    );
    let tenants = s["tenants"].as_array().unwrap();
    let t42 = tenants.iter().find(|t| t["tenant"] == "42").unwrap();
    assert_eq!(
        (t42["hits"].as_u64(), t42["misses"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn admin_purge_takes_the_webhook_body() {
    let (_origin, proxy, client) = setup().await;
    client.get("/api/faculty/", ORG42).await;
    let answer = proxy
        .admin(
            Method::POST,
            "/purge",
            r#"{"tenant": "42", "tags": ["faculty"]}"#,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["purged"], 1);
    let bad = proxy
        .admin(Method::POST, "/purge", r#"{"tenant": 42}"#)
        .await;
    assert_eq!(bad.status, 400);
    let all = proxy
        .admin(Method::POST, "/purge", r#"{"tenant": "*", "all": true}"#)
        .await;
    assert_eq!(all.status, 200);
}

#[tokio::test]
async fn warm_then_hit() {
    let (origin, proxy, client) = setup().await;
    // The host is part of the key, so warm for the name clients use.
    let body = format!(
        r#"{{"tenant": "42", "host": "{}", "paths": ["/api/faculty/", "/api/faculty/1/", "/api/faculty/2/", "/api/unknown/"], "concurrency": 2}}"#,
        proxy.addr
    );
    let answer = proxy.admin(Method::POST, "/warm", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let report = answer.json();
    assert_eq!(report["done"], 3);
    assert_eq!(report["failed"], 1);
    assert_eq!(report["results"][3]["path"], "/api/unknown/");
    assert!(report["results"][3]["error"]
        .as_str()
        .unwrap()
        .contains("no-route"));
    let hits_before = origin.hits();
    for path in ["/api/faculty/", "/api/faculty/1/", "/api/faculty/2/"] {
        let answer = client.get(path, ORG42).await;
        assert_eq!(answer.cache_status(), "cachegate; hit", "{path}");
        assert_eq!(answer.json()["org"], "42");
    }
    assert_eq!(origin.hits(), hits_before);
}

#[tokio::test]
async fn entries_list_readable_keys_by_tenant_and_prefix() {
    let (_origin, proxy, client) = setup().await;
    client.get("/api/faculty/", ORG42).await;
    client.get("/api/faculty/12/", ORG42).await;
    client.get("/api/departments/", ORG42).await;
    client.get("/api/faculty/", &[("x-org-id", "7")]).await;
    let answer = proxy
        .admin(Method::GET, "/entries?tenant=42&prefix=/api/faculty/", "")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let entries = answer.json()["entries"].as_array().unwrap().clone();
    let targets: Vec<&str> = entries
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["/api/faculty/", "/api/faculty/12/"]);
    let detail = &entries[1];
    assert_eq!(detail["tenant"], "42");
    assert!(detail["key"].as_str().unwrap().contains("/api/faculty/12/"));
    assert!(detail["ttl_left_secs"].as_u64().unwrap() > 3000);
    assert!(detail["size"].as_u64().unwrap() > 0);
    assert!(detail["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "faculty:12"));
    let all = proxy.admin(Method::GET, "/entries?limit=2", "").await;
    assert_eq!(all.json()["entries"].as_array().unwrap().len(), 2);
    let bad = proxy.admin(Method::GET, "/entries?colour=red", "").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn warm_a_route_from_a_list_of_captures() {
    let (origin, proxy, client) = setup().await;
    let body = format!(
        r#"{{"tenant": "42", "host": "{}", "route": "/api/faculty/{{id}}/", "captures": ["5", "6", {{"id": "7"}}]}}"#,
        proxy.addr
    );
    let answer = proxy.admin(Method::POST, "/warm", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["done"], 3);
    for id in [5, 6, 7] {
        let path = format!("/api/faculty/{id}/");
        assert_eq!(
            client.get(&path, ORG42).await.cache_status(),
            "cachegate; hit",
            "{path}"
        );
    }
    assert_eq!(origin.hits(), 3);
    for bad in [
        r#"{"route": "/api/nope/{id}/", "captures": ["1"]}"#,
        r#"{"route": "/api/faculty/{id}/", "captures": ["a/b"]}"#,
        r#"{"captures": ["1"]}"#,
        r#"{"tenant": "42"}"#,
        r#"{"paths": ["no-slash"]}"#,
    ] {
        let answer = proxy.admin(Method::POST, "/warm", bad).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text());
    }
}
