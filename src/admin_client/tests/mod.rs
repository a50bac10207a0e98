//! Tests of the admin client against a small admin API served in-process on 127.0.0.1:0.

use super::client::base_url;
use super::*;
use crate::admin_api::{Capture, ErrorBody, Refusal};
use bytes::Bytes;
use clap::Parser;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod commands;
mod contract;
mod warm;

const TOKEN: &str = "s3cret";

/// One request the fake admin API received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
}

type Answer = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

struct FakeAdmin {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeAdmin {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn client(&self) -> AdminClient {
        AdminClient::new(&self.url, TOKEN, Duration::from_secs(5)).unwrap()
    }
}

/// Serves `answer` over real HTTP/1.1 and records every request.
async fn serve_fake(answer: Arc<Answer>) -> FakeAdmin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            let answer = answer.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let log = log.clone();
                let answer = answer.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect().await?.to_bytes();
                    let header = |name: http::header::HeaderName| {
                        parts
                            .headers
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_string())
                    };
                    let seen = Seen {
                        method: parts.method.to_string(),
                        target: parts.uri.to_string(),
                        authorization: header(AUTHORIZATION),
                        content_type: header(CONTENT_TYPE),
                        body: if bytes.is_empty() {
                            serde_json::Value::Null
                        } else {
                            serde_json::from_slice(&bytes).unwrap()
                        },
                    };
                    let (status, text) = answer(&seen);
                    log.lock().unwrap().push(seen);
                    let response = Response::builder()
                        .status(status)
                        .header(CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(text)))
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
    FakeAdmin {
        url: format!("http://{addr}"),
        seen,
    }
}

/// The admin contract in miniature: bearer check, then canned answers per endpoint. Warming a
/// path containing `broken` answers 502, one containing `hang` reports a request error.
async fn fake_admin() -> FakeAdmin {
    serve_fake(Arc::new(|seen: &Seen| {
        if seen.authorization.as_deref() != Some("Bearer s3cret") {
            return (
                401,
                r#"{"error":"unauthorized","detail":"wrong bearer token"}"#.into(),
            );
        }
        match (seen.method.as_str(), seen.target.split('?').next()) {
            ("POST", Some("/purge")) => (200, r#"{"purged":3}"#.into()),
            ("GET", Some("/stats")) => (200, STATS.into()),
            ("GET", Some("/entries")) => (200, ENTRIES.into()),
            ("POST", Some("/warm")) => (200, warm_answer(&seen.body)),
            _ => (
                404,
                r#"{"error":"not_found","detail":"no such endpoint"}"#.into(),
            ),
        }
    }))
    .await
}

fn warm_answer(body: &serde_json::Value) -> String {
    let results: Vec<serde_json::Value> = body["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|path| {
            let path = path.as_str().unwrap();
            if path.contains("broken") {
                json!({"path": path, "status": 502, "cache": "cachegate; fwd=miss"})
            } else if path.contains("hang") {
                json!({"path": path, "status": 0, "cache": "", "error": "timed out"})
            } else {
                json!({"path": path, "status": 200, "cache": "cachegate; fwd=miss; stored"})
            }
        })
        .collect();
    let failed = results
        .iter()
        .filter(|r| r["status"].as_u64().unwrap() >= 400 || r.get("error").is_some())
        .count();
    json!({"done": results.len() - failed, "failed": failed, "results": results}).to_string()
}

const STATS: &str = r#"{
  "hits": 900, "misses": 100, "hit_ratio": 0.9, "stored": 95, "collapsed": 4, "bypassed": 12,
  "entries": 80, "bytes": 1572864, "evictions": 2, "purged": 7, "fenced": 1, "upstream_errors": 3,
  "some_future_counter": 5,
  "routes": [
    {"route": 0, "path": "/api/faculty/{id}/", "hits": 600, "misses": 50, "bypassed": 0},
    {"route": 1, "path": "/api/rooms/", "hits": 300, "misses": 50, "bypassed": 12}
  ],
  "tenants": [
    {"tenant": "7", "hits": 100, "misses": 50},
    {"tenant": "", "hits": 5, "misses": 0},
    {"tenant": "42", "hits": 795, "misses": 50}
  ]
}"#;

const ENTRIES: &str = r#"{"entries": [
  {"key": "9f2c4e1a7b3d5f6e8a9b0c1d2e3f4a5b", "tenant": "42", "target": "/api/rooms/?page=2",
   "status": 200, "ttl_left_secs": 270, "age_secs": 30, "size": 2048, "tags": ["rooms", "*"],
   "stale": false},
  {"key": "00aa", "tenant": "", "target": "/api/public/", "status": 404, "ttl_left_secs": 0,
   "age_secs": 3700, "size": 10, "tags": [], "stale": true}
]}"#;

/// Parses a command line the way `main` does.
#[derive(Parser)]
struct TestCli {
    #[command(subcommand)]
    command: AdminCommand,
}

fn parse(url: &str, args: &[&str]) -> AdminCommand {
    let mut argv = vec!["cachegate"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--admin", url, "--token", TOKEN]);
    TestCli::try_parse_from(argv).unwrap().command
}

/// Runs a command line against `fake` and returns its outcome, stdout and progress output.
async fn run_cli(
    fake: &FakeAdmin,
    args: &[&str],
) -> (Result<RunOutcome, AdminError>, String, String) {
    let command = parse(&fake.url, args);
    let client = AdminClient::new(&fake.url, TOKEN, command.admin().timeout).unwrap();
    let mut out = Vec::new();
    let mut progress = ProgressLine::new(Vec::new(), false);
    let outcome = run(&client, &command, &mut out, &mut progress).await;
    (
        outcome,
        String::from_utf8(out).unwrap(),
        String::from_utf8(progress.into_inner()).unwrap(),
    )
}

/// A file under the system temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "cachegate-admin-client-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
