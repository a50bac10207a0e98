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
async fn every_endpoint_but_the_probes_needs_the_token() {
    let (_origin, proxy, client) = setup().await;
    client.get("/api/faculty/", ORG42).await;
    let admin = TestClient::new(proxy.admin_addr);
    assert_eq!(admin.get("/healthz", &[]).await.status, 200);
    assert_eq!(admin.get("/readyz", &[]).await.status, 200);
    for (method, path) in [
        (Method::GET, "/stats"),
        (Method::GET, "/metrics"),
        (Method::POST, "/purge"),
        (Method::POST, "/warm"),
        (Method::GET, "/entries"),
        (Method::GET, "/entries/top"),
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

/// Issue 8, part 5: warming under a host no client sends produced no hits. Each path is warmed
/// under the host its clients use, and a request that does not say which one is refused.
#[tokio::test]
async fn warming_uses_the_host_clients_send() {
    // Without "host", a URL is warmed under its own host and is then a hit for that Host only.
    let (origin, proxy, client) = setup().await;
    let url = format!("http://{}/api/faculty/1/", proxy.addr);
    let body =
        format!(r#"{{"tenant": "42", "paths": ["{url}", "http://other.test/api/faculty/2/"]}}"#);
    let answer = proxy.admin(Method::POST, "/warm", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["done"], 2);
    assert_eq!(answer.json()["results"][0]["path"], url.as_str());
    let hits_before = origin.hits();
    let hit = client.get("/api/faculty/1/", ORG42).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    let other = client
        .get(
            "/api/faculty/2/",
            &[("host", "other.test"), ("x-org-id", "42")],
        )
        .await;
    assert_eq!(other.cache_status(), "cachegate; hit");
    let unwarmed_host = client.get("/api/faculty/2/", ORG42).await;
    assert_eq!(unwarmed_host.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits(), hits_before + 1);

    // A plain path with no "host" and no single [server] hosts entry: refused, nothing fetched.
    let hits_before = origin.hits();
    let answer = proxy
        .admin(
            Method::POST,
            "/warm",
            r#"{"tenant": "42", "paths": ["/api/faculty/3/"]}"#,
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    let detail = answer.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.starts_with("no host to warm for"), "{detail}");
    assert!(detail.contains("[server] hosts is not set"), "{detail}");
    assert_eq!(origin.hits(), hits_before);
}

#[tokio::test]
async fn warming_defaults_to_the_single_configured_host_and_refuses_others() {
    let origin = Origin::start().await;
    let config = format!("[server]\nhosts = [\"api.test\"]\n{BASE_CONFIG}");
    let proxy = TestProxy::start(&config, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let answer = proxy
        .admin(
            Method::POST,
            "/warm",
            r#"{"tenant": "42", "paths": ["/api/faculty/1/"]}"#,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["done"], 1);
    let hit = client
        .get(
            "/api/faculty/1/",
            &[("host", "API.test"), ("x-org-id", "42")],
        )
        .await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    // A host the listener refuses (421) is never warmed: nothing would read it.
    for body in [
        r#"{"tenant": "42", "host": "evil.test", "paths": ["/api/faculty/1/"]}"#,
        r#"{"tenant": "42", "paths": ["http://evil.test/api/faculty/1/"]}"#,
    ] {
        let answer = proxy.admin(Method::POST, "/warm", body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text());
        assert!(answer.json()["detail"]
            .as_str()
            .unwrap()
            .contains("not in [server] hosts"));
    }
    assert_eq!(origin.hits(), 1);
}

/// Every request body the command line builds is accepted by the server (the admin_client
/// contract tests check each field is read as sent; this sends them to a running instance).
#[tokio::test]
async fn requests_built_by_the_command_line_are_accepted() {
    use cachegate::admin_client::AdminCommand;
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AdminCommand,
    }
    let parse = |args: &[&str]| {
        let mut argv = vec!["cachegate"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().command
    };
    let (_origin, proxy, client) = setup().await;
    client.get("/api/faculty/", ORG42).await;
    let host = proxy.addr.to_string();
    for args in [
        &["purge", "--tenant", "42", "--tag", "faculty", "--soft"][..],
        &[
            "purge",
            "--path",
            "/api/public/x",
            "--prefix",
            "/api/public/",
        ],
        &["purge", "--all"],
        &["purge", "--user", "alice"],
        &["purge", "--forget-credentials"],
        &[
            "warm",
            "--tenant",
            "42",
            "--host",
            &host,
            "--route",
            "/api/faculty/{id}/",
            "--capture",
            "5",
            "--capture",
            "id=6",
            "--concurrency",
            "2",
        ],
    ] {
        let (path, body) = match parse(args) {
            AdminCommand::Purge(purge) => ("/purge", serde_json::to_string(&purge.body())),
            AdminCommand::Warm(warm) => ("/warm", serde_json::to_string(&warm.plan().unwrap())),
            _ => unreachable!(),
        };
        let answer = proxy.admin(Method::POST, path, &body.unwrap()).await;
        assert_eq!(answer.status, 200, "{args:?}: {}", answer.text());
    }
    assert_eq!(
        client.get("/api/faculty/6/", ORG42).await.cache_status(),
        "cachegate; hit"
    );
}

#[tokio::test]
async fn the_dashboard_page_loads_without_the_token_and_holds_no_data() {
    let (_origin, proxy, client) = setup().await;
    client
        .get("/api/faculty/", &[("x-org-id", "tenant-zeta")])
        .await;
    let admin = TestClient::new(proxy.admin_addr);
    let page = admin.get("/ui", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let csp = page.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    let html = page.text();
    assert!(html.contains("<title>cachegate dashboard</title>"));
    // Nothing the API would only tell a token holder: no tenant, no key, no token.
    for secret in ["/api/faculty/", "tenant-zeta", ADMIN_TOKEN] {
        assert!(!html.contains(secret), "the page holds {secret:?}");
    }
    // The same page with a token: the token changes nothing.
    let with_token = proxy.admin(Method::GET, "/ui", "").await;
    assert_eq!(with_token.body, page.body);
    let post = admin.send(Method::POST, "/ui", &[], "").await;
    assert_eq!(post.status, 401, "only GET is open");
    let post = proxy.admin(Method::POST, "/ui", "").await;
    assert_eq!(post.status, 405);
}

#[tokio::test]
async fn top_entries_are_the_busiest_and_stats_list_recent_purges() {
    let (_origin, proxy, client) = setup().await;
    for _ in 0..3 {
        client.get("/api/faculty/1/", ORG42).await;
    }
    client.get("/api/faculty/2/", ORG42).await;
    client.get("/api/faculty/2/", ORG42).await;
    client.get("/api/departments/", ORG42).await;
    let top = proxy.admin(Method::GET, "/entries/top?limit=2", "").await;
    assert_eq!(top.status, 200, "{}", top.text());
    let top = top.json();
    let listed: Vec<(String, u64)> = top["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_owned(),
                e["hits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("/api/faculty/1/".to_owned(), 2),
            ("/api/faculty/2/".to_owned(), 1)
        ]
    );
    let bad = proxy.admin(Method::GET, "/entries/top?limit=x", "").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "bad_request");

    let purged = proxy
        .admin(
            Method::POST,
            "/purge",
            r#"{"tenant": "42", "paths": ["/api/faculty/1/"]}"#,
        )
        .await;
    assert_eq!(purged.json()["purged"], 1);
    let write = client
        .send(Method::PUT, "/api/faculty/2/", ORG42, "{}")
        .await;
    assert_eq!(write.status, 200);
    let stats = proxy.admin(Method::GET, "/stats", "").await.json();
    assert_eq!(stats["max_bytes"], 64 << 20);
    let recent: Vec<(String, String, u64)> = stats["recent_purges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["at_ms"].as_u64().unwrap() > 0);
            (
                p["source"].as_str().unwrap().to_owned(),
                p["scope"].as_str().unwrap().to_owned(),
                p["purged"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        recent,
        vec![
            // The entry itself, and the department list its `invalidates` tag names.
            ("write".to_owned(), "PUT /api/faculty/2/".to_owned(), 2),
            (
                "admin".to_owned(),
                "tenant=42 paths=[/api/faculty/1/]".to_owned(),
                1
            ),
        ]
    );
}
