//! The benchmark origin: a bare hyper server answering a fixed JSON body from memory.
//!
//! It is both the backend cachegate forwards to and the ceiling cachegate's hits are compared with.
//! Paths under `/slow/` answer after `--slow-ms` (the stampede check); `GET /__count?path=P`
//! answers how many requests P has received. For bench/compress.sh: `/api/kib/` and `/api/big/`
//! answer a 1 KiB and a 16 KiB JSON list, and `/api/gz/` the 16 KiB one gzip-encoded to clients
//! that accept gzip (with `Vary: Accept-Encoding`), as a backend with compression on does.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct State {
    body: Bytes,
    kib: Bytes,
    big: Bytes,
    big_gzip: Bytes,
    slow: Duration,
    counts: Mutex<HashMap<String, u64>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:18000".to_owned();
    let mut slow_ms = 200u64;
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs a value")?,
            "--slow-ms" => slow_ms = args.next().ok_or("--slow-ms needs a value")?.parse()?,
            "--threads" => threads = args.next().ok_or("--threads needs a value")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    // A typical list-endpoint answer: about 1 KiB of JSON.
    let items: Vec<String> = (0..12)
        .map(|i| format!("{{\"id\":{i},\"name\":\"Faculty member {i}\",\"dept\":\"physics\"}}"))
        .collect();
    let body = format!("{{\"count\":12,\"results\":[{}]}}", items.join(","));
    let big = Bytes::from(json_list(208));
    let state = Arc::new(State {
        body: Bytes::from(body),
        kib: Bytes::from(json_list(13)),
        big_gzip: cachegate::compress::gzip([&big[..]], 6),
        big,
        slow: Duration::from_millis(slow_ms),
        counts: Mutex::new(HashMap::new()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        eprintln!("bench origin listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(&state, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/__count" {
        let wanted = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("path="))
            .unwrap_or("");
        let n = state
            .counts
            .lock()
            .map(|c| c.get(wanted).copied().unwrap_or(0))
            .unwrap_or(0);
        return Response::new(Full::new(Bytes::from(n.to_string())));
    }
    if path.starts_with("/slow/") {
        if let Ok(mut counts) = state.counts.lock() {
            *counts.entry(path.to_owned()).or_default() += 1;
        }
        tokio::time::sleep(state.slow).await;
    }
    let gzip_ok = req
        .headers()
        .get(http::header::ACCEPT_ENCODING)
        .is_some_and(|v| v.to_str().unwrap_or("").contains("gzip"));
    let (body, gzip) = if path.starts_with("/api/kib/") {
        (state.kib.clone(), false)
    } else if path.starts_with("/api/big/") {
        (state.big.clone(), false)
    } else if path.starts_with("/api/gz/") && gzip_ok {
        (state.big_gzip.clone(), true)
    } else if path.starts_with("/api/gz/") {
        (state.big.clone(), false)
    } else {
        (state.body.clone(), false)
    };
    let mut response = Response::new(Full::new(body));
    if path.starts_with("/api/gz/") {
        response.headers_mut().insert(
            http::header::VARY,
            http::HeaderValue::from_static("Accept-Encoding"),
        );
    }
    if gzip {
        response.headers_mut().insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
    }
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A list-endpoint answer of `n` items of about 85 bytes (ids, names, departments, dates): 13
/// items make about 1 KiB, 208 about 16 KiB. bench/compress.rs compresses the same bodies.
fn json_list(n: usize) -> String {
    const DEPTS: [&str; 5] = ["physics", "chemistry", "history", "mathematics", "biology"];
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{\"id\":{},\"name\":\"Faculty member {i}\",\"dept\":\"{}\",\"since\":\"20{:02}-0{}-1{}\"}}",
                1000 + i * 7,
                DEPTS[i % DEPTS.len()],
                i % 25,
                1 + i % 9,
                i % 10
            )
        })
        .collect();
    format!("{{\"count\":{n},\"results\":[{}]}}", items.join(","))
}
