//! Warming routes whose callers are verified before any hit: a warm request carries a service
//! user's credential and is read like that user's request.

use crate::support::client::TestClient;
use crate::support::origin::{Origin, Reply};
use crate::support::{TestProxy, ADMIN_TOKEN, BASE_CONFIG};
use http::Method;
use serde_json::{json, Value};

/// The Django example's setup in miniature: every caller introspected against the backend's
/// "who am I", entries keyed by the verified organization.
const CONFIG: &str = r#"
[upstream]
url = "{upstream}"
timeout = "2s"

[auth.introspect]
path = "/api/auth/me/"
tenant_field = "org_id"
user_field = "id"
ttl = "60s"
timeout = "1s"
credential_headers = ["Authorization"]

[[route]]
path = "/api/auth/{*rest}"
cache = false

[[route]]
path = "/api/departments/"
resource = "department"
scope = "tenant"

[[route]]
path = "/api/departments/{id}/"
resource = "department"
scope = "tenant"
"#;

/// The users of the backend: token, user, organization.
const USERS: &[(&str, &str, &str)] = &[
    ("Token svc1", "svc1", "1"),
    ("Token alice", "alice", "1"),
    ("Token dave", "dave", "1"),
    ("Token svc2", "svc2", "2"),
    ("Token bob", "bob", "2"),
];

fn org_of(authorization: Option<&str>) -> Option<(&'static str, &'static str)> {
    let authorization = authorization?;
    USERS
        .iter()
        .find(|(token, _, _)| *token == authorization)
        .map(|(_, user, org)| (*user, *org))
}

/// A DRF-like backend: it answers for the organization of the token's user, says
/// `Vary: Accept`, and refuses a request without a valid token.
async fn backend() -> Origin {
    Origin::with(|seen| {
        let Some((user, org)) = org_of(seen.header("authorization")) else {
            return Reply::ok(r#"{"detail": "Authentication credentials were not provided."}"#)
                .status(401);
        };
        if seen.path() == "/api/auth/me/" {
            return Reply::ok(json!({ "id": user, "org_id": org }).to_string());
        }
        Reply::ok(json!({ "org": org, "target": seen.target }).to_string()).header("vary", "Accept")
    })
    .await
}

async fn setup() -> (Origin, TestProxy, TestClient) {
    let origin = backend().await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    (origin, proxy, client)
}

/// Requests the backend answered other than "who am I".
fn reads(origin: &Origin) -> usize {
    origin
        .seen()
        .iter()
        .filter(|s| s.path() != "/api/auth/me/")
        .count()
}

const PATHS: [&str; 3] = [
    "/api/departments/",
    "/api/departments/?page=2",
    "/api/departments/3/",
];

fn warm_body(proxy: &TestProxy, headers: Value) -> String {
    json!({ "host": proxy.addr.to_string(), "paths": PATHS, "headers": headers }).to_string()
}

async fn entries_of(proxy: &TestProxy, tenant: &str) -> Vec<String> {
    let answer = proxy
        .admin(Method::GET, &format!("/entries?tenant={tenant}"), "")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut targets: Vec<String> = answer.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_string())
        .collect();
    targets.sort();
    targets
}

#[tokio::test]
async fn a_warm_as_a_service_user_fills_the_entries_its_organization_hits() {
    let (origin, proxy, client) = setup().await;
    let headers = json!({"Authorization": "Token svc1", "Accept": "application/json"});
    let answer = proxy
        .admin(Method::POST, "/warm", &warm_body(&proxy, headers))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // The credential is not in the report.
    assert!(!answer.text().contains("svc1"), "{}", answer.text());
    let report = answer.json();
    assert_eq!(
        (report["done"].as_u64(), report["failed"].as_u64()),
        (Some(3), Some(0))
    );
    for result in report["results"].as_array().unwrap() {
        assert_eq!(result["cache"], "cachegate; fwd=miss; stored", "{result}");
    }
    let mut expected: Vec<String> = PATHS.map(String::from).to_vec();
    expected.sort();
    assert_eq!(entries_of(&proxy, "1").await, expected);
    assert!(entries_of(&proxy, "2").await.is_empty());

    // A member of organization 1, with a token of her own and the Accept warmed, hits.
    let filled = reads(&origin);
    for path in PATHS {
        let answer = client
            .get(
                path,
                &[
                    ("authorization", "Token dave"),
                    ("accept", "application/json"),
                ],
            )
            .await;
        assert_eq!(answer.cache_status(), "cachegate; hit", "{path}");
        assert_eq!(answer.json()["org"], "1");
    }
    assert_eq!(reads(&origin), filled);

    // Another Accept is another variant: warm with the Accept your clients send.
    let other = client
        .get(
            PATHS[0],
            &[("authorization", "Token dave"), ("accept", "*/*")],
        )
        .await;
    assert_eq!(other.cache_status(), "cachegate; fwd=miss; stored");
}

#[tokio::test]
async fn a_warm_as_one_organization_never_fills_another() {
    let (origin, proxy, client) = setup().await;
    let answer = proxy
        .admin(
            Method::POST,
            "/warm",
            &warm_body(&proxy, json!({"Authorization": "Token svc2"})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["done"], 3);
    assert_eq!(entries_of(&proxy, "2").await.len(), 3);
    assert!(entries_of(&proxy, "1").await.is_empty());

    // Organization 1's members get their own organization's answers, fetched for them.
    for path in PATHS {
        let answer = client.get(path, &[("authorization", "Token alice")]).await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=miss; stored",
            "{path}"
        );
        assert_eq!(answer.json()["org"], "1", "{path}");
    }
    // Organization 2's members hit what the warm filled.
    let bob = client
        .get(PATHS[2], &[("authorization", "Token bob")])
        .await;
    assert_eq!(bob.cache_status(), "cachegate; hit");
    assert_eq!(bob.json()["org"], "2");

    // "tenant" cannot point a credential at another organization's entries.
    let hits_before = origin.hits();
    let body = json!({
        "tenant": "1",
        "host": proxy.addr.to_string(),
        "paths": PATHS,
        "headers": {"Authorization": "Token svc2"},
    });
    let answer = proxy.admin(Method::POST, "/warm", &body.to_string()).await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    let detail = answer.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("a credential names its own tenant"),
        "{detail}"
    );
    assert!(!detail.contains("svc2"), "{detail}");
    assert_eq!(origin.hits(), hits_before);
}

#[tokio::test]
async fn a_warm_without_a_valid_credential_reports_401_per_path() {
    let (origin, proxy, _client) = setup().await;
    let body = json!({ "host": proxy.addr.to_string(), "paths": PATHS }).to_string();
    let answer = proxy.admin(Method::POST, "/warm", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let report = answer.json();
    assert_eq!(
        (report["done"].as_u64(), report["failed"].as_u64()),
        (Some(0), Some(3))
    );
    for result in report["results"].as_array().unwrap() {
        assert_eq!(result["status"], 401, "{result}");
        let error = result["error"].as_str().unwrap();
        assert!(error.contains("needs a credential"), "{error}");
        assert!(error.contains("warm with one"), "{error}");
    }
    // Refused before any lookup or fill: the backend was not asked.
    assert_eq!(origin.hits(), 0);

    // A token the backend does not know: its own 401, reported per path, nothing stored.
    let answer = proxy
        .admin(
            Method::POST,
            "/warm",
            &warm_body(&proxy, json!({"Authorization": "Token nobody"})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!answer.text().contains("nobody"), "{}", answer.text());
    let report = answer.json();
    assert_eq!(report["failed"], 3);
    for result in report["results"].as_array().unwrap() {
        assert_eq!(result["status"], 401, "{result}");
        assert_eq!(result["error"], "unauthorized: the credential was refused");
    }
    assert_eq!(reads(&origin), 0);
    assert!(entries_of(&proxy, "1").await.is_empty());
}

/// Headers a warm request may not carry are refused whole, before anything is fetched, and the
/// answer never quotes a value.
#[tokio::test]
async fn bad_warm_headers_are_refused_without_their_values() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let host = proxy.addr.to_string();
    for (headers, expected) in [
        (
            json!({"Host": "s3cr3t.test"}),
            "Host is not sent as a header",
        ),
        (
            json!({"Connection": "s3cr3t"}),
            "header Connection is hop-by-hop",
        ),
        (json!({"Transfer-Encoding": "s3cr3t"}), "is hop-by-hop"),
        (json!({"Content-Length": "0"}), "a warm request has no body"),
        (json!({"Bad Name": "s3cr3t"}), "not an HTTP header name"),
        (
            json!({"Authorization": "Token s3cr3t\r\nX-Org-Id: 7"}),
            "line break",
        ),
        (json!({"Authorization": ""}), "has an empty value"),
        (json!({"Authorization": 5}), "field \"headers\""),
        (json!("Token s3cr3t"), "field \"headers\""),
        (json!({"a": "s3cr3t", "A": "s3cr3t"}), "is given twice"),
        // The route's tenant header: the tenant is given as "tenant".
        (
            json!({"X-Org-Id": "7"}),
            "header x-org-id is the tenant header of route /api/faculty/",
        ),
    ] {
        let body =
            json!({"tenant": "42", "host": host, "paths": ["/api/faculty/"], "headers": headers});
        let answer = proxy.admin(Method::POST, "/warm", &body.to_string()).await;
        assert_eq!(answer.status, 400, "{headers}: {}", answer.text());
        let detail = answer.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(expected), "{headers}: {detail}");
        assert!(!answer.text().contains("s3cr3t"), "{}", answer.text());
    }
    assert_eq!(origin.hits(), 0);
    // Without [auth], a header is taken as sent, as from any client: a credential goes with
    // "tenant" to a backend that needs both.
    let body = json!({
        "tenant": "42",
        "host": host,
        "paths": ["/api/faculty/"],
        "headers": {"Authorization": "Token s3cr3t"},
    });
    let answer = proxy.admin(Method::POST, "/warm", &body.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["done"], 1);
    assert_eq!(
        origin.seen()[0].header("authorization"),
        Some("Token s3cr3t")
    );
}

/// `cachegate warm --header-env` against a running instance: the token stays off the command
/// line, and the organization's members hit what it filled.
#[tokio::test]
async fn the_command_line_warms_with_a_token_from_the_environment() {
    let (_origin, proxy, client) = setup().await;
    let admin = proxy.admin_url();
    let host = proxy.addr.to_string();
    let run = move |var: Option<&'static str>| {
        let (admin, host) = (admin.clone(), host.clone());
        tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cachegate"));
            command
                .args(["warm", "--admin", &admin, "--host", &host])
                .args(["--route", "/api/departments/{id}/", "--capture", "3"])
                .args(["--header-env", "Authorization=CACHEGATE_WARM_AUTHORIZATION"])
                .env("CACHEGATE_ADMIN_TOKEN", ADMIN_TOKEN)
                .env_remove("CACHEGATE_CONFIG")
                .env_remove("CACHEGATE_WARM_AUTHORIZATION");
            if let Some(value) = var {
                command.env("CACHEGATE_WARM_AUTHORIZATION", value);
            }
            command.output().unwrap()
        })
    };
    let out = run(Some("Token svc1")).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "warmed 1/1 (0 failed)\n");
    let hit = client
        .get("/api/departments/3/", &[("authorization", "Token alice")])
        .await;
    assert_eq!(hit.cache_status(), "cachegate; hit");

    // The variable unset: a usage error, before anything is sent.
    let out = run(None).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("the environment variable CACHEGATE_WARM_AUTHORIZATION is not set"),
        "{stderr}"
    );
}

/// A `--header` the command line cannot use exits 64 without printing the value.
#[test]
fn a_malformed_header_flag_is_a_usage_error_that_does_not_print_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cachegate"))
        .args(["warm", "--admin", "http://127.0.0.1:9", "--token", "x"])
        .args(["--route", "/api/departments/{id}/", "--capture", "3"])
        .args(["--header", "Authorization Token s3cr3t"])
        .env_remove("CACHEGATE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("--header #1: expected 'Name: value'"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
}
