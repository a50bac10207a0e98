//! Protection limits: each answered with its status and a JSON body (or, where no answer can
//! be given, the connection closed), and counted.

use crate::support::client::{raw, TestClient};
use crate::support::origin::{Origin, Reply};
use crate::support::wait::{poll_until, within};
use crate::support::{TestProxy, BASE_CONFIG};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_server(settings: &str) -> String {
    format!("[server]\n{settings}\n{BASE_CONFIG}")
}

#[tokio::test]
async fn a_head_over_max_header_bytes_is_431() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(&with_server("max_header_bytes = \"8KiB\""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let big = "x".repeat(9 << 10);
    let answer = client.get("/api/public/a", &[("x-big", &big)]).await;
    assert_eq!(answer.status, 431);
    assert_eq!(answer.json()["error"], "headers_too_large");
    assert_eq!(answer.cache_status(), "cachegate; detail=headers-too-large");
    assert_eq!(origin.hits(), 0);
    assert_eq!(client.get("/api/public/a", &[]).await.status, 200);
    assert_eq!(proxy.proxy.stats().snapshot().headers_too_large, 1);
    // Far beyond the limit, hyper's own backstop answers before the handler can.
    let huge = "x".repeat(20 << 10);
    let answer = raw(
        proxy.addr,
        &format!("GET /api/public/a HTTP/1.1\r\nHost: h\r\nX-Big: {huge}\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_body_over_max_request_body_is_413_announced_or_streamed() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(&with_server("max_request_body = \"1KiB\""), &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    // Announced by Content-Length: refused before anything is forwarded.
    let answer = client
        .send(Method::POST, "/api/faculty/", &[], "x".repeat(2048))
        .await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json()["error"], "payload_too_large");
    assert_eq!(origin.hits(), 0);
    // Within the limit: forwarded.
    let answer = client
        .send(Method::POST, "/api/faculty/", &[], "x".repeat(1024))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(origin.seen()[0].body.len(), 1024);
    // Chunked, no length announced: counted while it streams, the backend request aborted.
    let chunk = "y".repeat(1500);
    let answer = raw(
        proxy.addr,
        &format!(
            "POST /api/faculty/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert!(
        origin.seen().iter().all(|s| s.body.len() <= 1024),
        "no backend request got the whole body"
    );
    assert_eq!(proxy.proxy.stats().snapshot().body_too_large, 2);
}

#[tokio::test]
async fn a_connection_is_closed_after_max_requests_per_connection() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(
        &with_server("max_requests_per_connection = 2"),
        &origin.url(),
    )
    .await;
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let get = || {
        Request::get("/api/public/a")
            .header("host", "h")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let first = send.send_request(get()).await.unwrap();
    assert!(first.headers().get("connection").is_none());
    first.into_body().collect().await.unwrap();
    let second = send.send_request(get()).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["connection"], "close");
    second.into_body().collect().await.unwrap();
    within("the connection to close", conn)
        .await
        .unwrap()
        .unwrap();
    poll_until("the close is counted", || {
        proxy.proxy.stats().snapshot().request_limit_closes == 1
    })
    .await;
}

#[tokio::test]
async fn a_head_not_sent_within_header_read_timeout_closes_the_connection() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(
        &with_server("header_read_timeout = \"200ms\""),
        &origin.url(),
    )
    .await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"GET /api/public/a HTTP/1.1\r\nHost: h\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    within(
        "the server to close the connection",
        tcp.read_to_end(&mut out),
    )
    .await
    .unwrap();
    // hyper gives no answer to a half-read head: the connection is closed, and counted.
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    poll_until("the timeout is counted", || {
        proxy.proxy.stats().snapshot().header_timeouts == 1
    })
    .await;
    assert_eq!(origin.hits(), 0);
}

/// The h2 limit is announced in the server's SETTINGS frame; conforming clients queue beyond it
/// (and the server refuses extra streams with `REFUSED_STREAM`).
#[tokio::test]
async fn http2_max_concurrent_streams_is_announced() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(
        &with_server("http2_max_concurrent_streams = 7"),
        &origin.url(),
    )
    .await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut head = [0u8; 9];
    within("the server's SETTINGS", tcp.read_exact(&mut head))
        .await
        .unwrap();
    assert_eq!(head[3], 4, "the first frame is SETTINGS");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    within("the SETTINGS payload", tcp.read_exact(&mut payload))
        .await
        .unwrap();
    let max_streams = payload.chunks(6).find_map(|s| {
        (u16::from_be_bytes([s[0], s[1]]) == 3)
            .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
    });
    assert_eq!(max_streams, Some(7));
}

#[tokio::test]
async fn an_upstream_that_does_not_accept_in_connect_timeout_is_504() {
    // A listener that never accepts, its backlog filled: further connections hang in SYN.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let mut hangs = false;
    for _ in 0..64 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(err)) => panic!("connect failed: {err}"),
            Err(_) => {
                hangs = true;
                break;
            }
        }
    }
    assert!(hangs, "the backlog never filled");
    let config = BASE_CONFIG.replace("connect_timeout = \"1s\"", "connect_timeout = \"300ms\"");
    let proxy = TestProxy::start(&config, &format!("http://{addr}")).await;
    let answer = TestClient::new(proxy.addr).get("/api/public/a", &[]).await;
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert_eq!(answer.json()["error"], "upstream_connect_timeout");
    assert_eq!(proxy.proxy.stats().snapshot().upstream_errors, 1);
    drop(listener);
}

#[tokio::test]
async fn an_upstream_slower_than_timeout_is_504_and_a_refused_connect_502() {
    let origin = Origin::with(|_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let config = BASE_CONFIG.replace("timeout = \"2s\"", "timeout = \"200ms\"");
    let proxy = TestProxy::start(&config, &origin.url()).await;
    let answer = TestClient::new(proxy.addr).get("/api/public/a", &[]).await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.json()["error"], "upstream_timeout");

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let proxy = TestProxy::start(BASE_CONFIG, &format!("http://{addr}")).await;
    let answer = TestClient::new(proxy.addr).get("/api/public/a", &[]).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.json()["error"], "upstream_unreachable");
}
