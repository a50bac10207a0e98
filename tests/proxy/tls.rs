//! TLS: the listener (ALPN h2 and http/1.1, certificates reloaded without a restart), https
//! upstreams trusted through `ca_file`, and the config errors of both.

use crate::support::origin::Origin;
use crate::support::tls::{connect, served, toml_path, TestCa, TlsDir};
use crate::support::wait::poll_until;
use crate::support::{TestProxy, BASE_CONFIG};
use bytes::Bytes;
use cachegate::config::Config;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::Duration;

fn with_server_tls(dir: &TlsDir, extra: &str) -> String {
    format!(
        "[server]\ntls_cert = {}\ntls_key = {}\n{extra}\n{BASE_CONFIG}",
        toml_path(&dir.file("cert.pem")),
        toml_path(&dir.file("key.pem")),
    )
}

/// One GET over HTTP/1.1 on a TLS connection that negotiated it: status, body.
async fn get_h1(
    addr: SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
    path: &str,
) -> (StatusCode, String) {
    let tls = connect(addr, config).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", format!("localhost:{}", addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = send.send_request(req).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_11);
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_listener_speaks_tls_with_alpn_h2_and_http1() {
    let ca = TestCa::new("test CA");
    let dir = TlsDir::new("listener");
    dir.write_leaf(&ca.leaf("cachegate"));
    let origin = Origin::start().await;
    let proxy = TestProxy::start(&with_server_tls(&dir, ""), &origin.url()).await;

    // HTTP/1.1, chosen through ALPN.
    let (status, body) = get_h1(
        proxy.addr,
        ca.client_config(&[b"http/1.1"]),
        "/api/public/a",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/api/public/a"), "{body}");
    let seen = origin.seen();
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
    assert!(seen[0].header("forwarded").unwrap().contains("proto=https"));

    // h2, chosen through ALPN (the client offers both and prefers h2).
    let tls = connect(proxy.addr, ca.client_config(&[b"h2", b"http/1.1"])).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!(
        "https://localhost:{}/api/public/a",
        proxy.addr.port()
    ))
    .body(Empty::<Bytes>::new())
    .unwrap();
    let response = send.send_request(req).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let cache_status = response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(cache_status, "cachegate; hit", "the h1 request filled it");

    // Plain text on a TLS port is no request at all.
    let answer = crate::support::client::raw(
        proxy.addr,
        "GET /api/public/a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!answer.contains("200 OK"), "{answer}");
    poll_until("the failed handshake is counted", || {
        proxy.proxy.stats().snapshot().tls_handshake_failures == 1
    })
    .await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_restart_and_a_bad_one_is_not() {
    let ca = TestCa::new("test CA");
    let dir = TlsDir::new("reload");
    let first = ca.leaf("first");
    dir.write_leaf(&first);
    let origin = Origin::start().await;
    let config = with_server_tls(&dir, "tls_reload_interval = \"20ms\"");
    let proxy = TestProxy::start(&config, &origin.url()).await;
    let client = ca.client_config(&[b"http/1.1"]);
    assert_eq!(
        served(&connect(proxy.addr, client.clone()).await),
        first.der()
    );

    // Replaced on disk: the watcher picks it up, new handshakes get it.
    let second = ca.leaf("second");
    dir.write_leaf(&second);
    let mut now_second = false;
    for _ in 0..500 {
        if served(&connect(proxy.addr, client.clone()).await) == second.der() {
            now_second = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(now_second, "the new certificate was never served");

    // A broken replacement (a key of another certificate, then no PEM at all): the reload
    // says why and the listener keeps the certificate it had.
    let third = ca.leaf("third");
    dir.write("cert.pem", &third.cert_pem);
    let err = proxy.tls.reload().unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    assert_eq!(
        served(&connect(proxy.addr, client.clone()).await),
        second.der()
    );
    dir.write("cert.pem", "not a certificate\n");
    let err = proxy.tls.server.as_ref().unwrap().reload().unwrap_err();
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
    assert_eq!(
        served(&connect(proxy.addr, client.clone()).await),
        second.der()
    );
    let (status, _) = get_h1(proxy.addr, client.clone(), "/api/public/b").await;
    assert_eq!(status, 200);

    // Put right, through the public reload: served at once.
    dir.write_leaf(&third);
    proxy.tls.reload().unwrap();
    assert_eq!(served(&connect(proxy.addr, client).await), third.der());
}

fn https_upstream(ca_file: &std::path::Path, extra: &str) -> String {
    BASE_CONFIG.replace(
        "timeout = \"2s\"\n",
        &format!(
            "timeout = \"2s\"\nca_file = {}\n{extra}\n",
            toml_path(ca_file)
        ),
    )
}

#[tokio::test]
async fn an_https_upstream_is_trusted_through_ca_file_with_h2_when_asked() {
    let ca = TestCa::new("internal CA");
    let dir = TlsDir::new("upstream");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let origin = Origin::with_tls(ca.leaf("origin").server_config(&[b"h2", b"http/1.1"])).await;
    let url = format!("https://127.0.0.1:{}", origin.addr.port());

    let proxy = TestProxy::start(&https_upstream(&ca_file, ""), &url).await;
    let client = crate::support::client::TestClient::new(proxy.addr);
    let answer = client.get("/api/public/x", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.text().contains("/api/public/x"));
    assert_eq!(
        origin.seen()[0].http,
        Version::HTTP_11,
        "HTTP/1.1 unless asked"
    );
    assert_eq!(
        client.get("/api/public/x", &[]).await.cache_status(),
        "cachegate; hit"
    );

    let proxy = TestProxy::start(&https_upstream(&ca_file, "http2 = true"), &url).await;
    let client = crate::support::client::TestClient::new(proxy.addr);
    let answer = client.get("/api/public/y", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(origin.seen()[1].http, Version::HTTP_2, "h2 through ALPN");
}

#[tokio::test]
async fn an_upstream_with_an_untrusted_certificate_is_a_502_saying_so() {
    let trusted = TestCa::new("internal CA");
    let other = TestCa::new("someone else");
    let dir = TlsDir::new("untrusted");
    let ca_file = dir.write("ca.pem", &trusted.pem());
    let origin = Origin::with_tls(other.leaf("impostor").server_config(&[b"http/1.1"])).await;
    let url = format!("https://127.0.0.1:{}", origin.addr.port());
    let proxy = TestProxy::start(&https_upstream(&ca_file, ""), &url).await;
    let client = crate::support::client::TestClient::new(proxy.addr);
    let answer = client.get("/api/public/x", &[]).await;
    assert_eq!(answer.status, 502);
    let body = answer.json();
    assert_eq!(body["error"], "upstream_tls");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("certificate"), "{detail}");
    assert_eq!(origin.hits(), 0);
    assert_eq!(proxy.proxy.stats().snapshot().upstream_errors, 1);
}

#[test]
fn tls_config_errors_name_the_file_line_and_key() {
    let ca = TestCa::new("test CA");
    let dir = TlsDir::new("config");
    let leaf = ca.leaf("a");
    let (cert, key) = dir.write_leaf(&leaf);
    let other = dir.write("other-key.pem", &ca.leaf("b").key_pem);
    let ca_file = dir.write("ca.pem", &ca.pem());
    let junk = dir.write("junk.pem", "hello\n");
    let missing = dir.file("missing.pem");
    let check = |server: String, upstream: &str| {
        let text = format!(
            "[server]\n{server}\n[upstream]\nurl = \"{upstream}\"\n{}",
            ""
        );
        Config::from_toml(&text, "proxy.toml")
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let pair = |c: &std::path::Path, k: &std::path::Path| {
        format!("tls_cert = {}\ntls_key = {}", toml_path(c), toml_path(k))
    };
    check(pair(&cert, &key), "http://127.0.0.1:1").unwrap();

    let err = check(pair(&missing, &key), "http://127.0.0.1:1").unwrap_err();
    assert!(
        err.starts_with("proxy.toml:2:12: server.tls_cert: cannot read "),
        "{err}"
    );
    let err = check(pair(&cert, &missing), "http://127.0.0.1:1").unwrap_err();
    assert!(
        err.starts_with("proxy.toml:3:11: server.tls_key: cannot read "),
        "{err}"
    );
    let err = check(pair(&junk, &key), "http://127.0.0.1:1").unwrap_err();
    assert!(
        err.contains("server.tls_cert: ") && err.contains("holds no PEM certificate"),
        "{err}"
    );
    let err = check(pair(&cert, &junk), "http://127.0.0.1:1").unwrap_err();
    assert!(
        err.contains("server.tls_key: ") && err.contains("no usable PEM private key"),
        "{err}"
    );
    let err = check(pair(&cert, &other), "http://127.0.0.1:1").unwrap_err();
    assert!(
        err.contains("proxy.toml:3:11: server.tls_key: the private key"),
        "{err}"
    );
    assert!(err.contains("does not match the certificate"), "{err}");
    let err = check(
        format!("tls_cert = {}", toml_path(&cert)),
        "http://127.0.0.1:1",
    )
    .unwrap_err();
    assert!(
        err.contains("server.tls_cert: is set without server.tls_key"),
        "{err}"
    );

    let upstream = |ca: &std::path::Path, url: &str| {
        let text = format!("[upstream]\nurl = \"{url}\"\nca_file = {}\n", toml_path(ca));
        Config::from_toml(&text, "proxy.toml")
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    upstream(&ca_file, "https://127.0.0.1:1").unwrap();
    let err = upstream(&junk, "https://127.0.0.1:1").unwrap_err();
    assert!(
        err.starts_with("proxy.toml:3:11: upstream.ca_file: "),
        "{err}"
    );
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let err = upstream(&missing, "https://127.0.0.1:1").unwrap_err();
    assert!(err.contains("upstream.ca_file: cannot read "), "{err}");
    let err = upstream(&ca_file, "http://127.0.0.1:1").unwrap_err();
    assert!(
        err.contains("upstream.ca_file: is set, but upstream.url is not https://"),
        "{err}"
    );

    // `[admin]` takes the same pair.
    let text = format!(
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n[admin]\n{}",
        pair(&cert, &other)
    );
    let err = Config::from_toml(&text, "proxy.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin.tls_key: the private key"), "{err}");
}
