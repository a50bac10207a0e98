//! Issue 10, part 7: `Accept-Encoding` read into buckets (br, gzip, identity). A backend that
//! compresses has its encodings stored per bucket; a route with `compress = true` has cachegate
//! compress once per fill. Every client gets a body it decodes, with `Content-Encoding`,
//! `Content-Length` and `Vary` right, and HEAD agrees with GET.

use crate::support::client::{Answer, TestClient};
use crate::support::origin::{Origin, Reply, Seen};
use crate::support::TestProxy;
use http::Method;
use std::io::{Read, Write};

const CONFIG: &str = r#"
[upstream]
url = "{upstream}"
connect_timeout = "1s"
timeout = "2s"

[cache]
max_memory = "64MiB"
default_ttl = "5m"
coalesce_timeout = "5s"

[[route]]
path = "/api/{*rest}"

[[route]]
path = "/squeezed/{*rest}"
compress = true
"#;

/// A list-endpoint answer of about 4 KiB.
fn document(path: &str) -> String {
    let items: Vec<String> = (0..60)
        .map(|i| format!("{{\"id\":{i},\"name\":\"Faculty member {i}\",\"path\":\"{path}\"}}"))
        .collect();
    format!("{{\"results\":[{}]}}", items.join(","))
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

fn brotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 4, 22);
        encoder.write_all(body).unwrap();
    }
    out
}

/// A backend with compression on (as Django's or a framework's middleware): br when the request
/// accepts it, else gzip, else identity; `Vary: Accept-Encoding` on every answer. Paths under
/// `/api/zstd/` answer zstd whatever was asked, as a misbehaving backend would.
fn compressing(seen: &Seen) -> Reply {
    let body = document(seen.path());
    let accepted = seen.header("accept-encoding").unwrap_or("").to_owned();
    let reply = |bytes: Vec<u8>| Reply::ok(bytes).header("vary", "Accept-Encoding");
    if seen.path().starts_with("/api/zstd/") {
        let encoded = zstd::bulk::compress(body.as_bytes(), 1).unwrap();
        return reply(encoded).header("content-encoding", "zstd");
    }
    if accepted.contains("br") {
        reply(brotli(body.as_bytes())).header("content-encoding", "br")
    } else if accepted.contains("gzip") {
        reply(gzip(body.as_bytes())).header("content-encoding", "gzip")
    } else {
        reply(body.into_bytes())
    }
}

/// A backend that never compresses and says nothing about encodings; `/squeezed/small/` is short.
fn plain(seen: &Seen) -> Reply {
    if seen.path().starts_with("/squeezed/small/") {
        return Reply::ok("{\"small\":true}").header("etag", "\"s1\"");
    }
    Reply::ok(document(seen.path())).header("etag", "\"v1\"")
}

/// The body as the client reads it: decoded per `Content-Encoding`.
fn decoded(answer: &Answer) -> Vec<u8> {
    let mut out = Vec::new();
    match answer.header("content-encoding") {
        None => out.extend_from_slice(&answer.body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(&answer.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(&answer.body[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
    out
}

/// What every answer must hold: the length announced is the length sent.
fn length_is_right(answer: &Answer) {
    let announced: usize = answer
        .header("content-length")
        .expect("content-length")
        .parse()
        .unwrap();
    assert_eq!(announced, answer.body.len(), "{:?}", answer.headers);
}

fn varies_on_encoding(answer: &Answer) -> bool {
    answer.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding")
    })
}

const BROWSER: &str = "gzip, deflate, br, zstd";

#[tokio::test]
async fn issue_10_each_bucket_gets_the_encoding_it_decodes() {
    let origin = Origin::with(compressing).await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let want = document("/api/faculty/");
    for (accept, coding, sent) in [
        (Some(BROWSER), Some("br"), "br, gzip"),
        (Some("gzip"), Some("gzip"), "gzip"),
        (None, None, "identity"),
    ] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let first = client.get("/api/faculty/", &headers).await;
        assert_eq!(
            first.cache_status(),
            "cachegate; fwd=miss; stored",
            "{accept:?}"
        );
        let again = client.get("/api/faculty/", &headers).await;
        assert_eq!(again.cache_status(), "cachegate; hit", "{accept:?}");
        for answer in [&first, &again] {
            assert_eq!(answer.header("content-encoding"), coding, "{accept:?}");
            assert_eq!(decoded(answer), want.as_bytes(), "{accept:?}");
            assert!(varies_on_encoding(answer), "{accept:?}");
            length_is_right(answer);
        }
        // The fill sent the bucket's canonical Accept-Encoding, not the client's.
        let fill = origin.seen().last().unwrap().clone();
        assert_eq!(fill.header("accept-encoding"), Some(sent), "{accept:?}");
    }
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn issue_10_variants_are_bounded_by_the_buckets_however_clients_spell_the_header() {
    let origin = Origin::with(compressing).await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let want = document("/api/catalog/");
    let spellings = [
        (BROWSER, "br"),
        ("gzip, deflate, br", "br"),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", "br"),
        ("*", "br"),
        (" GZIP ,  BR ", "br"),
        ("gzip, br, identity;q=0", "br"),
        ("gzip", "gzip"),
        ("gzip, deflate", "gzip"),
        ("x-gzip", "gzip"),
        ("deflate, gzip;q=0.5", "gzip"),
        ("gzip, br;q=0", "gzip"),
        ("*, br;q=0", "gzip"),
        ("identity", "identity"),
        ("", "identity"),
        ("deflate", "identity"),
        ("gzip;q=0", "identity"),
        ("br", "identity"),
        ("zstd", "identity"),
        ("*;q=0", "identity"),
        ("gzip;q=bogus", "identity"),
    ];
    for (accept, bucket) in spellings {
        let answer = client
            .get("/api/catalog/", &[("accept-encoding", accept)])
            .await;
        let coding = answer.header("content-encoding").unwrap_or("identity");
        assert_eq!(coding, bucket, "{accept:?}");
        assert_eq!(decoded(&answer), want.as_bytes(), "{accept:?}");
        length_is_right(&answer);
    }
    // Twenty spellings, three fills: one per bucket.
    assert_eq!(origin.hits_on("/api/catalog/"), 3);
}

#[tokio::test]
async fn issue_10_head_agrees_with_get() {
    let origin = Origin::with(compressing).await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    for accept in [BROWSER, "gzip", "identity"] {
        let path = "/api/head/";
        let headers = [("accept-encoding", accept)];
        // HEAD first (a miss, filled by a GET), then GET (a hit), then HEAD again (a hit).
        let head_miss = client.send(Method::HEAD, path, &headers, "").await;
        let get = client.get(path, &headers).await;
        let head_hit = client.send(Method::HEAD, path, &headers, "").await;
        assert_eq!(get.cache_status(), "cachegate; hit");
        length_is_right(&get);
        for head in [&head_miss, &head_hit] {
            assert!(head.body.is_empty());
            assert_eq!(head.status, get.status);
            for name in [
                "content-length",
                "content-encoding",
                "vary",
                "content-type",
                "etag",
            ] {
                let of = |a: &Answer| a.headers.get_all(name).iter().cloned().collect::<Vec<_>>();
                assert_eq!(of(head), of(&get), "{accept}: {name}");
            }
        }
        assert_eq!(head_hit.cache_status(), get.cache_status());
    }
}

#[tokio::test]
async fn issue_10_a_coding_the_bucket_cannot_decode_is_not_stored() {
    let origin = Origin::with(compressing).await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    for _ in 0..2 {
        let answer = client
            .get("/api/zstd/", &[("accept-encoding", "gzip")])
            .await;
        assert_eq!(
            answer.cache_status(),
            "cachegate; fwd=miss; detail=encoding"
        );
        assert_eq!(answer.header("content-encoding"), Some("zstd"));
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn issue_10_compress_routes_compress_once_per_bucket() {
    let origin = Origin::with(plain).await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let want = document("/squeezed/list/");
    for (accept, coding) in [
        (Some(BROWSER), Some("br")),
        (Some("gzip;q=1, deflate"), Some("gzip")),
        (None, None),
    ] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let first = client.get("/squeezed/list/", &headers).await;
        assert_eq!(
            first.cache_status(),
            "cachegate; fwd=miss; stored",
            "{accept:?}"
        );
        let again = client.get("/squeezed/list/", &headers).await;
        assert_eq!(again.cache_status(), "cachegate; hit", "{accept:?}");
        let head = client
            .send(Method::HEAD, "/squeezed/list/", &headers, "")
            .await;
        for answer in [&first, &again] {
            assert_eq!(answer.header("content-encoding"), coding, "{accept:?}");
            assert_eq!(decoded(answer), want.as_bytes(), "{accept:?}");
            // Every bucket's answer says it depends on Accept-Encoding, the identity one too.
            assert!(varies_on_encoding(answer), "{accept:?}");
            length_is_right(answer);
            assert_eq!(
                head.header("content-length"),
                answer.header("content-length")
            );
            assert_eq!(
                head.header("content-encoding"),
                answer.header("content-encoding")
            );
        }
        if coding.is_some() {
            assert!(again.body.len() < want.len() / 3, "{accept:?}");
            // The encoded bytes are not those the backend's strong ETag named.
            assert_eq!(again.header("etag"), Some("W/\"v1\""));
        } else {
            assert_eq!(again.header("etag"), Some("\"v1\""));
        }
    }
    assert_eq!(origin.hits_on("/squeezed/list/"), 3);
    // A short body is not worth compressing: one entry serves every bucket.
    for accept in [BROWSER, "gzip", "identity"] {
        let answer = client
            .get("/squeezed/small/", &[("accept-encoding", accept)])
            .await;
        assert_eq!(answer.header("content-encoding"), None);
        assert!(!varies_on_encoding(&answer));
        assert_eq!(answer.text(), "{\"small\":true}");
        length_is_right(&answer);
    }
    assert_eq!(origin.hits_on("/squeezed/small/"), 1);
}

#[tokio::test]
async fn issue_10_routes_without_compress_pass_unencoded_answers_as_they_are() {
    let origin = Origin::with(plain).await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    for accept in [BROWSER, "gzip", "identity"] {
        let answer = client
            .get("/api/plain/", &[("accept-encoding", accept)])
            .await;
        assert_eq!(answer.header("content-encoding"), None);
        assert_eq!(answer.header("etag"), Some("\"v1\""));
        length_is_right(&answer);
    }
    // Not encoded and no Vary: one entry for every client.
    assert_eq!(origin.hits_on("/api/plain/"), 1);
}
