//! Tests of introspection against a real "who am I" endpoint served in-process on 127.0.0.1:0.

use super::*;
use crate::upstream::UpstreamOptions;
use http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use http::Response;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

const HOST_NAME: &str = "api.example.com";

/// The fake endpoint: counts calls and records the headers of each.
struct FakeMe {
    url: String,
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

/// The endpoint's answer for one credential, chosen by the `Authorization` or `Cookie` value.
fn answer_for(headers: &HeaderMap) -> (u16, Option<Duration>, String) {
    let credential = headers
        .get(AUTHORIZATION)
        .or_else(|| headers.get(COOKIE))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = |v: serde_json::Value| (200, None, v.to_string());
    match credential {
        "Token alice" => ok(json!({"id": 7, "organization": {"id": "acme"}})),
        "Token bob" => ok(json!({"id": "bob", "organization": {"id": 42}})),
        "Token carol" => ok(json!({"id": 8, "organization": {"id": "acme"}})),
        "sessionid=s1" => ok(json!({"id": 1, "organization": {"id": "globex"}})),
        "Token noorg" => ok(json!({"id": 9, "organization": null})),
        "Token weird" => ok(json!({"id": true, "organization": {"id": "acme"}})),
        "Token shared" => (
            200,
            Some(Duration::from_millis(200)),
            json!({"id": 5, "organization": {"id": "initech"}}).to_string(),
        ),
        "Token slow" => (200, Some(Duration::from_secs(10)), "{}".into()),
        "Token bad" => (401, None, r#"{"detail":"invalid token"}"#.into()),
        "Token forbidden" => (403, None, r#"{"detail":"no access"}"#.into()),
        "Token boom" => (500, None, "oops".into()),
        "Token garbage" => (200, None, "<html>login</html>".into()),
        _ => (401, None, r#"{"detail":"unknown"}"#.into()),
    }
}

async fn fake_me() -> FakeMe {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (count, log) = (calls.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (count, log) = (count.clone(), log.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                let (count, log) = (count.clone(), log.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    log.lock().unwrap().push(req.headers().clone());
                    let (status, delay, body) = if req.uri().path() == "/api/auth/me/" {
                        answer_for(req.headers())
                    } else {
                        (404, None, String::new())
                    };
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    let response = Response::builder()
                        .status(status)
                        .header(WWW_AUTHENTICATE, "Token")
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    Ok::<_, hyper::Error>(response)
                }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    FakeMe {
        url: format!("http://{addr}"),
        calls,
        seen,
    }
}

fn settings() -> IntrospectSettings {
    IntrospectSettings {
        path: "/api/auth/me/".into(),
        tenant_field: "organization.id".into(),
        user_field: "id".into(),
        ttl: Duration::from_secs(60),
        credential_headers: vec![AUTHORIZATION, COOKIE],
        timeout: Duration::from_millis(500),
        max_entries: 1000,
        session_cookies: Vec::new(),
    }
}

fn introspector_at(url: &str, settings: IntrospectSettings) -> Introspector {
    let upstream = Upstream::new(&UpstreamOptions {
        url: url.parse().unwrap(),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(30),
        pool_max_idle_per_host: 8,
        pool_idle_timeout: Duration::from_secs(30),
        ca_file: None,
        http2: false,
    })
    .unwrap();
    Introspector::new(settings, upstream, DigestKey::from_secret(b"test secret"))
}

fn introspector(me: &FakeMe) -> Introspector {
    introspector_at(&me.url, settings())
}

fn request(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn token(value: &str) -> HeaderMap {
    request(&[("authorization", value)])
}

fn identity(tenant: Option<&str>, user: Option<&str>) -> Identity {
    Identity {
        tenant: tenant.map(str::to_string),
        user: user.map(str::to_string),
        expires_at: None,
    }
}

async fn identify(intro: &Introspector, headers: &HeaderMap) -> Answer {
    intro.identify(headers, HOST_NAME).await
}

fn unavailable(answer: Answer) -> String {
    match answer {
        Err(IntrospectFailure::Unavailable(reason)) => reason,
        other => panic!("expected unavailable, got {other:?}"),
    }
}

// --- reading the answer ---

#[tokio::test]
async fn identity_is_read_from_nested_and_integer_fields() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let cases = [
        ("Token alice", identity(Some("acme"), Some("7"))),
        ("Token bob", identity(Some("42"), Some("bob"))),
        ("Token noorg", identity(None, Some("9"))),
    ];
    for (credential, expected) in cases {
        assert_eq!(
            identify(&intro, &token(credential)).await.unwrap(),
            expected,
            "{credential}"
        );
    }
}

#[tokio::test]
async fn a_field_of_another_type_is_unavailable() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let reason = unavailable(identify(&intro, &token("Token weird")).await);
    assert!(reason.contains("field id"), "{reason}");
}

#[tokio::test]
async fn a_non_json_answer_is_unavailable() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let reason = unavailable(identify(&intro, &token("Token garbage")).await);
    assert!(reason.contains("not json"), "{reason}");
}

fn check(answer: serde_json::Value, path: &str, expected: Result<Option<&str>, ()>) {
    let got = field(&answer, path).map_err(|_| ());
    assert_eq!(
        got,
        expected.map(|v| v.map(str::to_string)),
        "{path} in {answer}"
    );
}

#[test]
fn dotted_paths_read_strings_and_integers() {
    check(json!({"org_id": "a"}), "org_id", Ok(Some("a")));
    check(json!({"org_id": 12}), "org_id", Ok(Some("12")));
    check(json!({"org_id": -3}), "org_id", Ok(Some("-3")));
    check(
        json!({"o": {"p": {"q": "deep"}}}),
        "o.p.q",
        Ok(Some("deep")),
    );
    check(json!({"orgs": [{"id": 4}]}), "orgs.0.id", Ok(Some("4")));
}

#[test]
fn missing_null_and_empty_fields_are_none() {
    check(json!({}), "org_id", Ok(None));
    check(json!({"org_id": null}), "org_id", Ok(None));
    check(json!({"org_id": ""}), "org_id", Ok(None));
    check(json!({"o": "flat"}), "o.id", Ok(None));
    check(json!({"orgs": []}), "orgs.0.id", Ok(None));
}

#[test]
fn other_field_types_are_errors() {
    check(json!({"org_id": true}), "org_id", Err(()));
    check(json!({"org_id": 1.5}), "org_id", Err(()));
    check(json!({"org_id": {"id": 1}}), "org_id", Err(()));
    check(json!({"org_id": [1]}), "org_id", Err(()));
}

// --- remembering answers ---

#[tokio::test]
async fn a_second_identify_with_the_same_credential_is_remembered() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let first = identify(&intro, &token("Token alice")).await.unwrap();
    let second = identify(&intro, &token("Token alice")).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(intro.calls(), 1);
    assert_eq!(me.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_expires_after_its_ttl() {
    let me = fake_me().await;
    let intro = introspector(&me);
    identify(&intro, &token("Token alice")).await.unwrap();
    // The clock is paused only around the jump: the server and client do real IO.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(59)).await;
    tokio::time::resume();
    identify(&intro, &token("Token alice")).await.unwrap();
    assert_eq!(intro.calls(), 1, "still live just before the ttl");
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume();
    identify(&intro, &token("Token alice")).await.unwrap();
    assert_eq!(intro.calls(), 2, "asked again once the ttl passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_new_credential_make_one_call() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let intro = intro.clone();
        tasks.spawn(async move { identify(&intro, &token("Token shared")).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(
            result.unwrap().unwrap(),
            identity(Some("initech"), Some("5"))
        );
    }
    assert_eq!(intro.calls(), 1);
    assert_eq!(me.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn different_credentials_never_share_an_identity() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let alice = identify(&intro, &token("Token alice")).await.unwrap();
    let bob = identify(&intro, &token("Token bob")).await.unwrap();
    let session = identify(&intro, &request(&[("cookie", "sessionid=s1")]))
        .await
        .unwrap();
    assert_eq!(alice, identity(Some("acme"), Some("7")));
    assert_eq!(bob, identity(Some("42"), Some("bob")));
    assert_eq!(session, identity(Some("globex"), Some("1")));
    // Again, from the cache: each credential keeps its own answer.
    assert_eq!(identify(&intro, &token("Token bob")).await.unwrap(), bob);
    assert_eq!(
        identify(&intro, &token("Token alice")).await.unwrap(),
        alice
    );
    assert_eq!(intro.calls(), 3);
}

#[tokio::test]
async fn one_credential_under_another_host_is_asked_again() {
    let me = fake_me().await;
    let intro = introspector(&me);
    intro
        .identify(&token("Token alice"), "a.example.com")
        .await
        .unwrap();
    intro
        .identify(&token("Token alice"), "A.example.com")
        .await
        .unwrap();
    assert_eq!(intro.calls(), 1, "host names differ only in case");
    intro
        .identify(&token("Token alice"), "b.example.com")
        .await
        .unwrap();
    assert_eq!(intro.calls(), 2);
}

#[test]
fn the_digest_covers_names_values_and_order() {
    let intro = introspector_at("http://127.0.0.1:9", settings());
    let digest = |pairs: &[(&str, &str)]| intro.credential_digest(&request(pairs));
    let key = DigestKey::from_secret(b"test secret");
    assert_eq!(
        digest(&[("cookie", "a=1"), ("authorization", "Token x")]),
        Some(key.digest(&[b"authorization", b"Token x", b"cookie", b"a=1"])),
        "configured order, not request order"
    );
    assert_ne!(
        digest(&[("authorization", "x")]),
        digest(&[("cookie", "x")])
    );
    assert_ne!(
        digest(&[("authorization", "x")]),
        digest(&[("authorization", "x"), ("authorization", "y")])
    );
    assert_eq!(digest(&[("x-org-id", "42")]), None);
}

// --- refusals and failures ---

#[tokio::test]
async fn refusals_are_returned_as_is_and_not_remembered() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let cases = [
        ("Token bad", 401, r#"{"detail":"invalid token"}"#),
        ("Token forbidden", 403, r#"{"detail":"no access"}"#),
    ];
    for (credential, status, body) in cases {
        for _ in 0..2 {
            match identify(&intro, &token(credential)).await {
                Err(IntrospectFailure::Rejected {
                    status: got,
                    headers,
                    body: got_body,
                }) => {
                    assert_eq!(got.as_u16(), status, "{credential}");
                    assert_eq!(got_body, body.as_bytes(), "{credential}");
                    assert_eq!(headers[WWW_AUTHENTICATE], "Token");
                    assert!(headers.get(CONTENT_LENGTH).is_none());
                }
                other => panic!("{credential}: expected a refusal, got {other:?}"),
            }
        }
    }
    assert_eq!(intro.calls(), 4, "each refusal is asked again");
}

#[tokio::test]
async fn a_request_without_credential_is_refused_without_a_call() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let headers = request(&[("x-org-id", "42")]);
    assert!(!intro.has_credential(&headers));
    assert!(intro.has_credential(&token("Token alice")));
    match identify(&intro, &headers).await {
        Err(IntrospectFailure::Rejected { status, .. }) => {
            assert_eq!(status, StatusCode::UNAUTHORIZED)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(intro.calls(), 0);
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let intro = introspector_at(&url, settings());
    unavailable(identify(&intro, &token("Token alice")).await);
    assert_eq!(intro.calls(), 1);
}

#[tokio::test]
async fn a_server_error_is_unavailable_and_not_remembered() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let reason = unavailable(identify(&intro, &token("Token boom")).await);
    assert!(reason.contains("500"), "{reason}");
    unavailable(identify(&intro, &token("Token boom")).await);
    assert_eq!(intro.calls(), 2);
}

#[tokio::test]
async fn a_slow_endpoint_is_unavailable_after_the_timeout() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let started = std::time::Instant::now();
    let reason = unavailable(identify(&intro, &token("Token slow")).await);
    assert!(reason.contains("within"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

// --- forgetting ---

#[tokio::test]
async fn forget_all_makes_the_next_identify_call_the_endpoint() {
    let me = fake_me().await;
    let intro = introspector(&me);
    identify(&intro, &token("Token alice")).await.unwrap();
    identify(&intro, &token("Token bob")).await.unwrap();
    assert_eq!(intro.forget_all(), 2);
    assert_eq!(intro.forget_all(), 0);
    identify(&intro, &token("Token alice")).await.unwrap();
    assert_eq!(intro.calls(), 3);
}

#[tokio::test]
async fn forget_user_forgets_only_that_user() {
    let me = fake_me().await;
    let intro = introspector(&me);
    for credential in ["Token alice", "Token bob", "Token carol"] {
        identify(&intro, &token(credential)).await.unwrap();
    }
    assert_eq!(intro.forget_user(Some("globex"), "7"), 0, "other tenant");
    assert_eq!(intro.forget_user(Some("acme"), "7"), 1);
    assert_eq!(intro.forget_user(None, "bob"), 1);
    assert_eq!(intro.calls(), 3);
    identify(&intro, &token("Token carol")).await.unwrap();
    assert_eq!(intro.calls(), 3, "carol is still remembered");
    identify(&intro, &token("Token alice")).await.unwrap();
    identify(&intro, &token("Token bob")).await.unwrap();
    assert_eq!(intro.calls(), 5);
}

#[tokio::test]
async fn an_answer_to_a_call_overtaken_by_a_forget_is_not_remembered() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let early = {
        let intro = intro.clone();
        tokio::spawn(async move { identify(&intro, &token("Token shared")).await })
    };
    // The call is under way once the endpoint has been asked.
    until(|| intro.calls() == 1).await;
    intro.forget_user(None, "5");
    // The requests already waiting still get the answer.
    early.await.unwrap().unwrap();
    assert_eq!(intro.calls(), 1);
    identify(&intro, &token("Token shared")).await.unwrap();
    assert_eq!(intro.calls(), 2, "the overtaken answer was not remembered");
    identify(&intro, &token("Token shared")).await.unwrap();
    assert_eq!(intro.calls(), 2, "the later answer is remembered");
}

#[tokio::test]
async fn a_request_after_a_forget_does_not_join_an_older_call() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let early = {
        let intro = intro.clone();
        tokio::spawn(async move { identify(&intro, &token("Token shared")).await })
    };
    // The call is under way once the endpoint has been asked.
    until(|| intro.calls() == 1).await;
    intro.forget_all();
    let late = identify(&intro, &token("Token shared")).await.unwrap();
    assert_eq!(early.await.unwrap().unwrap(), late);
    assert_eq!(intro.calls(), 2);
}

// --- what is sent ---

#[tokio::test]
async fn only_credential_headers_are_forwarded() {
    let me = fake_me().await;
    let intro = introspector(&me);
    let headers = request(&[
        ("authorization", "Token alice"),
        ("cookie", "sessionid=s1"),
        ("x-org-id", "42"),
        ("x-forwarded-for", "6.6.6.6"),
        ("accept", "text/html"),
        ("host", "evil.test"),
    ]);
    identify(&intro, &headers).await.unwrap();
    let seen = me.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let sent = &seen[0];
    let mut names: Vec<&str> = sent.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["accept", "authorization", "cookie", "host"]);
    assert_eq!(sent[HOST], HOST_NAME);
    assert_eq!(sent[ACCEPT], "application/json");
    assert_eq!(sent[AUTHORIZATION], "Token alice");
    assert_eq!(sent[COOKIE], "sessionid=s1");
}

#[test]
fn only_session_cookies_count() {
    let names = ["sessionid".to_string()];
    let check = |value: &str, expected: Option<&str>| {
        let got = super::session_cookies_of(&HeaderValue::from_str(value).unwrap(), &names);
        assert_eq!(
            got.as_ref().map(|v| v.to_str().unwrap()),
            expected,
            "{value}"
        );
    };
    check("csrftoken=abc", None);
    check("csrftoken=abc; sessionid=s1", Some("sessionid=s1"));
    check("sessionid=s1;theme=dark", Some("sessionid=s1"));
    check("xsessionid=s1", None);
    check("", None);
}

/// Waits, bounded, until another task has made `cond` true.
async fn until(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never became true"
        );
        tokio::task::yield_now().await;
    }
}
