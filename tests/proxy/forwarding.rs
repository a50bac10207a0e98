use crate::support::client::{raw, TestClient};
use crate::support::origin::{default_body, Gate, Origin, Reply};
use crate::support::{TestProxy, BASE_CONFIG};
use bytes::Bytes;
use http::Method;

const ORG42: &[(&str, &str)] = &[("x-org-id", "42")];

#[tokio::test]
async fn forwarding_headers_are_set_by_cachegate_not_the_client() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client
        .get(
            "/api/auth/me/",
            &[
                ("x-forwarded-host", "evil.test"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "host=evil.test"),
                ("connection", "x-drop-me"),
                ("x-drop-me", "1"),
            ],
        )
        .await;
    let seen = &origin.seen()[0];
    let host = proxy.addr.to_string();
    assert_eq!(seen.header("x-forwarded-host"), Some(host.as_str()));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("forwarded"),
        Some(format!("for=127.0.0.1;proto=http;host=\"{host}\"").as_str())
    );
    assert_eq!(seen.header("x-drop-me"), None);
}

#[tokio::test]
async fn missing_or_repeated_host_is_a_400_with_json() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let repeated = raw(
        proxy.addr,
        "GET /api/faculty/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(repeated.starts_with("HTTP/1.1 400"), "{repeated}");
    assert!(repeated.contains("\"error\":\"bad_request\""), "{repeated}");
    let missing = raw(proxy.addr, "GET /api/faculty/ HTTP/1.0\r\n\r\n").await;
    assert!(
        missing.starts_with("HTTP/1.0 400") || missing.starts_with("HTTP/1.1 400"),
        "{missing}"
    );
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn hosts_outside_the_allow_list_get_421() {
    let origin = Origin::start().await;
    let config = format!("[server]\nhosts = [\"api.test\"]\n{BASE_CONFIG}");
    let proxy = TestProxy::start(&config, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let other = client
        .get(
            "/api/faculty/",
            &[("host", "evil.test"), ("x-org-id", "42")],
        )
        .await;
    assert_eq!(other.status, 421);
    assert_eq!(other.json()["error"], "misdirected_request");
    // Refused, never forwarded: no `fwd` (issue 7: it said `fwd=miss; detail=error`).
    assert_eq!(other.cache_status(), "cachegate; detail=misdirected");
    assert_eq!(proxy.proxy.stats().snapshot().misdirected, 1);
    let ok = client
        .get("/api/faculty/", &[("host", "API.test"), ("x-org-id", "42")])
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn a_large_body_streams_through_and_is_not_stored() {
    let big = Bytes::from(vec![b'x'; 5 * 1024 * 1024]);
    let b = big.clone();
    let origin = Origin::with(move |seen| {
        if seen.header("x-chunked").is_some() {
            // Same size, but the proxy only learns it while reading.
            Reply::ok(b.clone()).header("x-origin", "1")
        } else {
            Reply::ok(b.clone())
        }
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    for _ in 0..2 {
        let answer = client.get("/api/faculty/", ORG42).await;
        assert_eq!(answer.body.len(), big.len());
        assert_eq!(answer.body, big);
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=miss; detail=too-large"
        );
    }
    // Uploads stream the other way.
    let upload = client
        .send(Method::POST, "/api/auth/upload/", ORG42, big.clone())
        .await;
    assert_eq!(upload.status, 200);
    assert_eq!(origin.seen().last().unwrap().body.len(), big.len());
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn upstream_errors_are_json_502_and_504() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = TestProxy::start(BASE_CONFIG, &format!("http://127.0.0.1:{port}")).await;
    let answer = TestClient::new(down.addr).get("/api/unknown/", &[]).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.json()["error"], "upstream_unreachable");

    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |seen| Reply::ok(default_body(seen)).gate(&g)).await;
    let slow = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let answer = TestClient::new(slow.addr).get("/api/unknown/", &[]).await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.json()["error"], "upstream_timeout");
    assert!(answer.json()["detail"].as_str().unwrap().contains("2s"));
    gate.open();
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |seen| Reply::ok(default_body(seen)).gate(&g)).await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let in_flight = tokio::spawn(async move { client.get("/api/auth/slow/", &[]).await });
    gate.arrivals(1).await;
    let (addr, mut closed) = (proxy.addr, proxy.closed.clone());
    let stopping = tokio::spawn(proxy.shutdown());
    // New connections are refused once the listener has stopped accepting...
    crate::support::wait::until("the listener to close", &mut closed, |closed| *closed).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a new connection was accepted after the listener closed"
    );
    // ...while the request in flight still completes.
    gate.open();
    assert_eq!(in_flight.await.unwrap().status, 200);
    stopping.await.unwrap();
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    for expected in ["cachegate; fwd=miss; stored", "cachegate; hit"] {
        let req = http::Request::get(proxy.url("/api/faculty/"))
            .header("x-org-id", "42")
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(req).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.headers()["cache-status"], expected);
    }
    assert_eq!(origin.hits(), 1);
}

/// `max_connections` slots are held until a connection closes. An idle HTTP/1.1 connection is
/// closed after `header_read_timeout`, but an h2c connection that sent its preface and then
/// stays idle is never closed: nothing bounds it. A client can open `max_connections` of them
/// and every other client waits in the backlog forever.
#[tokio::test]
async fn an_idle_h2c_connection_does_not_hold_a_connection_slot_forever() {
    use tokio::io::AsyncWriteExt;
    let origin = Origin::start().await;
    let config = BASE_CONFIG.replace(
        "[upstream]",
        "[server]\nmax_connections = 1\nheader_read_timeout = \"1s\"\n\n[upstream]",
    );
    let proxy = TestProxy::start(&config, &origin.url()).await;
    // The only slot: an h2c connection with its preface and an empty SETTINGS frame, then idle.
    let mut idle = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    // Well past header_read_timeout, another client must have been served.
    let client = TestClient::new(proxy.addr);
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        client.get("/api/faculty/", ORG42),
    )
    .await;
    assert!(
        answer.is_ok(),
        "an idle h2c connection kept the only connection slot for 8s"
    );
    drop(idle);
}
