//! Tests of the admin client against a small admin API served in-process on 127.0.0.1:0.

use super::*;
use clap::Parser;
use http::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::sync::{Arc, Mutex};

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
                r#"{"error":"unauthorized","detail":"bad token"}"#.into(),
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

// === purge ===

#[tokio::test]
async fn purge_posts_the_flags_as_json_with_the_token() {
    async fn check(fake: &FakeAdmin, args: &[&str], body: serde_json::Value) {
        let before = fake.seen().len();
        let (outcome, out, _) = run_cli(fake, args).await;
        assert_eq!(outcome.unwrap(), RunOutcome::Success, "{args:?}");
        assert_eq!(out, "purged 3 entries\n", "{args:?}");
        let seen = fake.seen();
        assert_eq!(seen.len(), before + 1, "{args:?}");
        let req = &seen[before];
        assert_eq!(req.method, "POST", "{args:?}");
        assert_eq!(req.target, "/purge", "{args:?}");
        assert_eq!(req.authorization.as_deref(), Some("Bearer s3cret"));
        assert_eq!(req.content_type.as_deref(), Some("application/json"));
        assert_eq!(req.body, body, "{args:?}");
    }
    let fake = fake_admin().await;
    check(
        &fake,
        &[
            "purge",
            "--tenant",
            "42",
            "--tag",
            "faculty",
            "--tag",
            "faculty:12",
        ],
        json!({"tenant": "42", "tags": ["faculty", "faculty:12"]}),
    )
    .await;
    check(
        &fake,
        &[
            "purge",
            "--path",
            "/api/x/",
            "--prefix",
            "/api/courses/",
            "--soft",
        ],
        json!({"paths": ["/api/x/"], "prefixes": ["/api/courses/"], "soft": true}),
    )
    .await;
    check(
        &fake,
        &["purge", "--all"],
        json!({"tenant": "*", "all": true}),
    )
    .await;
    check(
        &fake,
        &["purge", "--all", "--tenant", "42"],
        json!({"tenant": "42", "all": true}),
    )
    .await;
}

#[test]
fn purge_without_anything_to_purge_is_a_usage_error() {
    for args in [
        vec!["cachegate", "purge"],
        vec!["cachegate", "purge", "--soft"],
    ] {
        let err = match TestCli::try_parse_from(&args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(err) => err,
        };
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{args:?}"
        );
    }
}

#[test]
fn one_purged_entry_is_singular() {
    assert_eq!(
        render_purge(&PurgeResponse { purged: 1 }),
        "purged 1 entry\n"
    );
    assert_eq!(
        render_purge(&PurgeResponse { purged: 0 }),
        "purged 0 entries\n"
    );
}

// === stats ===

#[tokio::test]
async fn stats_prints_ratio_counts_sizes_routes_and_tenants() {
    let fake = fake_admin().await;
    let (outcome, out, _) = run_cli(&fake, &["stats"]).await;
    assert_eq!(outcome.unwrap(), RunOutcome::Success);
    let seen = fake.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/stats");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer s3cret"));
    let expected = "\
hit ratio        90.0%  (900 hits, 100 misses)
entries          80  (1.5 MiB)
stored           95
collapsed        4
bypassed         12
evictions        2
purged           7
fenced           1
upstream errors  3

routes
#  path                hits  misses  bypassed  hit ratio
0  /api/faculty/{id}/   600      50         0      92.3%
1  /api/rooms/          300      50        12      85.7%

tenants by traffic
tenant    hits  misses  hit ratio
42         795      50      94.1%
7          100      50      66.7%
(shared)     5       0     100.0%
";
    assert_eq!(out, expected);
}

#[test]
fn stats_lists_the_top_20_tenants_by_traffic() {
    let tenants = (0..25)
        .map(|i| TenantStats {
            tenant: format!("t{i:02}"),
            hits: i,
            misses: 1,
        })
        .collect();
    let out = render_stats(&Stats {
        tenants,
        ..Stats::default()
    });
    assert!(out.contains("top 20 tenants by traffic (of 25)"), "{out}");
    // The busiest (t24) is first and the five quietest (t00..t04) are left out.
    let listed: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with('t') && line[1..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed.len(), 20, "{out}");
    assert_eq!(listed[0], "t24");
    assert_eq!(listed[19], "t05");
}

#[test]
fn stats_tolerates_missing_extra_and_null_fields() {
    fn check(text: &str, expected: Stats) {
        let parsed: Stats = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, expected, "{text}");
    }
    check("{}", Stats::default());
    check(
        r#"{"hits": 3, "hit_ratio": null, "new_field": [1], "routes": [{"route": 2}]}"#,
        Stats {
            hits: 3,
            routes: vec![RouteStats {
                route: 2,
                ..RouteStats::default()
            }],
            ..Stats::default()
        },
    );
}

#[tokio::test]
async fn json_flag_prints_the_raw_answer() {
    let fake = fake_admin().await;
    let (outcome, out, _) = run_cli(&fake, &["stats", "--json"]).await;
    assert_eq!(outcome.unwrap(), RunOutcome::Success);
    assert_eq!(out, format!("{STATS}\n"));
    let (_, out, _) = run_cli(&fake, &["purge", "--tag", "x", "--json"]).await;
    assert_eq!(out, "{\"purged\":3}\n");
}

// === entries ===

#[tokio::test]
async fn entries_sends_the_filters_and_prints_a_table() {
    let fake = fake_admin().await;
    let (outcome, out, _) = run_cli(
        &fake,
        &[
            "entries",
            "--tenant",
            "42",
            "--prefix",
            "/api/rooms/",
            "--limit",
            "5",
        ],
    )
    .await;
    assert_eq!(outcome.unwrap(), RunOutcome::Success);
    let seen = fake.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].target,
        "/entries?tenant=42&prefix=/api/rooms/&limit=5"
    );
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer s3cret"));
    let expected = "\
key           tenant    status      age  ttl left     size  target              tags
9f2c4e1a7b3d  42           200      30s     4m30s  2.0 KiB  /api/rooms/?page=2  rooms,*
00aa          (shared)     404  1h1m40s     stale     10 B  /api/public/
2 entries
";
    assert_eq!(out, expected);
}

#[test]
fn entries_query_encodes_its_values() {
    fn check(query: EntriesQuery, expected: &str) {
        assert_eq!(query.path_and_query(), expected, "{query:?}");
    }
    check(EntriesQuery::default(), "/entries");
    check(
        EntriesQuery {
            limit: Some(10),
            ..EntriesQuery::default()
        },
        "/entries?limit=10",
    );
    check(
        EntriesQuery {
            tenant: Some("a b&c".into()),
            prefix: Some("/api/x/?q=1#f".into()),
            limit: None,
        },
        "/entries?tenant=a%20b%26c&prefix=/api/x/%3Fq%3D1%23f",
    );
}

#[test]
fn no_entries_says_so() {
    assert_eq!(render_entries(&[]), "no entries\n");
}

// === warm ===

#[tokio::test]
async fn warm_sends_batches_and_reports_progress_after_each() {
    let fake = fake_admin().await;
    let list = TempFile::new(
        "# rooms first\n/api/rooms/\n\nhttps://api.example.com/api/rooms/?page=2\n\
         /api/broken/\n/api/a/\n/api/b/\n/api/hang/\n/api/c/\n",
    );
    let (outcome, out, progress) = run_cli(
        &fake,
        &[
            "warm",
            "--tenant",
            "42",
            "--file",
            list.path(),
            "--batch",
            "3",
        ],
    )
    .await;
    assert_eq!(outcome.unwrap(), RunOutcome::Partial);
    let seen = fake.seen();
    let batches: Vec<serde_json::Value> = seen.iter().map(|s| s.body.clone()).collect();
    assert_eq!(
        batches,
        vec![
            json!({"tenant": "42", "concurrency": 8,
                   "paths": ["/api/rooms/", "/api/rooms/?page=2", "/api/broken/"]}),
            json!({"tenant": "42", "concurrency": 8,
                   "paths": ["/api/a/", "/api/b/", "/api/hang/"]}),
            json!({"tenant": "42", "concurrency": 8, "paths": ["/api/c/"]}),
        ]
    );
    for req in &seen {
        assert_eq!(
            (req.method.as_str(), req.target.as_str()),
            ("POST", "/warm")
        );
        assert_eq!(req.authorization.as_deref(), Some("Bearer s3cret"));
    }
    assert_eq!(
        progress,
        "warmed 3/7 (1 failed)\nwarmed 6/7 (2 failed)\nwarmed 7/7 (2 failed)\n"
    );
    assert_eq!(
        out,
        "failed /api/broken/: status 502\nfailed /api/hang/: timed out\n"
    );
}

#[tokio::test]
async fn warm_without_failures_succeeds_and_sends_a_null_tenant() {
    let fake = fake_admin().await;
    let list = TempFile::new("/api/a/\n/api/b/\n");
    let (outcome, out, progress) = run_cli(
        &fake,
        &[
            "warm",
            "--file",
            list.path(),
            "--host",
            "acme.example.com",
            "--concurrency",
            "2",
        ],
    )
    .await;
    assert_eq!(outcome.unwrap(), RunOutcome::Success);
    assert_eq!(out, "");
    assert_eq!(progress, "warmed 2/2 (0 failed)\n");
    assert_eq!(
        fake.seen()[0].body,
        json!({"tenant": null, "paths": ["/api/a/", "/api/b/"],
               "host": "acme.example.com", "concurrency": 2})
    );
}

#[tokio::test]
async fn warm_json_sums_the_batches() {
    let fake = fake_admin().await;
    let list = TempFile::new("/api/a/\n/api/broken/\n/api/b/\n");
    let (outcome, out, _) = run_cli(
        &fake,
        &["warm", "--file", list.path(), "--batch", "2", "--json"],
    )
    .await;
    assert_eq!(outcome.unwrap(), RunOutcome::Partial);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["done"], 2);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["results"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_failed_batch_stops_the_warm_run() {
    let fake = serve_fake(Arc::new(|seen: &Seen| {
        if seen.body["paths"][0] == "/api/c/" {
            (
                500,
                r#"{"error":"internal","detail":"store unavailable"}"#.into(),
            )
        } else {
            (200, warm_answer(&seen.body))
        }
    }))
    .await;
    let plan = WarmRequest {
        paths: ["/api/a/", "/api/b/", "/api/c/", "/api/d/", "/api/e/"]
            .map(String::from)
            .to_vec(),
        ..WarmRequest::default()
    };
    let mut updates = Vec::new();
    let err = warm(&fake.client(), &plan, 2, |p| updates.push(p))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the admin API answered 500: internal: store unavailable"
    );
    assert_eq!(
        updates,
        vec![WarmProgress {
            sent: 2,
            total: 5,
            failed: 0
        }]
    );
    assert_eq!(fake.seen().len(), 2);
}

#[test]
fn progress_rewrites_one_line_on_a_terminal() {
    let mut line = ProgressLine::new(Vec::new(), true);
    for sent in [2, 4] {
        line.update(&WarmProgress {
            sent,
            total: 4,
            failed: 1,
        });
    }
    line.finish();
    line.finish();
    assert_eq!(
        String::from_utf8(line.into_inner()).unwrap(),
        "\r\x1b[2Kwarmed 2/4 (1 failed)\r\x1b[2Kwarmed 4/4 (1 failed)\n"
    );
}

#[test]
fn warm_list_keeps_path_and_query_only() {
    fn check(text: &str, expected: &[&str]) {
        assert_eq!(parse_warm_list(text).unwrap(), expected, "{text:?}");
    }
    check("/api/x/\n", &["/api/x/"]);
    check("  /api/x/?b=2&a=1  \r\n", &["/api/x/?b=2&a=1"]);
    check("# comment\n\n   \n#/api/skipped/\n/api/y/", &["/api/y/"]);
    check("http://localhost:8080/api/x/?q=1", &["/api/x/?q=1"]);
    check("HTTPS://api.example.com/api/x/#section", &["/api/x/"]);
    check("https://api.example.com", &["/"]);
    check("https://api.example.com?q=1", &["/?q=1"]);
    check("//api.example.com/api/z/", &["/api/z/"]);
}

#[test]
fn warm_list_rejects_what_is_not_a_path_with_its_line() {
    fn check(text: &str, message: &str) {
        let err = parse_warm_list(text).unwrap_err();
        assert_eq!(err.to_string(), message, "{text:?}");
        assert!(err.is_usage());
    }
    check(
        "/ok/\napi/x/\n",
        "line 2: \"api/x/\" is neither a path (/...) nor an http(s) URL",
    );
    check(
        "ftp://host/x",
        "line 1: \"ftp://host/x\" is neither a path (/...) nor an http(s) URL",
    );
}

#[test]
fn an_empty_warm_list_is_refused() {
    let list = TempFile::new("# nothing yet\n\n");
    let err = read_warm_list(Path::new(list.path())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} lists no paths to warm", list.path())
    );
}

// === errors ===

#[tokio::test]
async fn a_wrong_token_is_refused_with_401() {
    let fake = fake_admin().await;
    let client = AdminClient::new(&fake.url, "wrong", Duration::from_secs(5)).unwrap();
    let err = stats(&client).await.unwrap_err();
    assert!(matches!(err, AdminError::Unauthorized), "{err:?}");
    assert_eq!(err.to_string(), "the admin API refused the token (401)");
    assert!(!err.is_usage());
    assert_eq!(
        fake.seen()[0].authorization.as_deref(),
        Some("Bearer wrong")
    );
}

#[tokio::test]
async fn an_error_answer_shows_its_detail() {
    async fn check(status: u16, body: &'static str, message: &str) {
        let fake = serve_fake(Arc::new(move |_: &Seen| (status, body.to_string()))).await;
        let err = purge(&fake.client(), &PurgeRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), message, "{status} {body}");
    }
    check(
        400,
        r#"{"error":"bad_request","detail":"unknown field `tagz`"}"#,
        "the admin API answered 400: bad_request: unknown field `tagz`",
    )
    .await;
    check(
        503,
        "<html>busy</html>",
        "the admin API answered 503: <html>busy</html>",
    )
    .await;
    check(500, "", "the admin API answered 500: no details given").await;
    check(
        200,
        "not json",
        "unexpected answer from the admin API: /purge: expected ident at line 1 column 2",
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_server_names_the_url() {
    // A port that was just free: bound, read, released.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");
    let client = AdminClient::new(&url, TOKEN, Duration::from_secs(5)).unwrap();
    let err = stats(&client).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot reach the admin API at {url}: ")),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts connections and never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let url = format!("http://{addr}");
    let client = AdminClient::new(&url, TOKEN, Duration::from_millis(200)).unwrap();
    let err = stats(&client).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the admin API at {url} did not answer within 200ms")
    );
}

#[tokio::test]
async fn a_path_prefix_in_the_url_is_kept() {
    let fake = fake_admin().await;
    let client = AdminClient::new(
        &format!("{}/admin/", fake.url),
        TOKEN,
        Duration::from_secs(5),
    )
    .unwrap();
    // The fake only knows the bare paths, so the prefixed request is a 404 that shows its target.
    let _ = stats(&client).await;
    assert_eq!(fake.seen()[0].target, "/admin/stats");
}

// === arguments ===

#[test]
fn admin_urls_are_checked_and_normalized() {
    fn check(url: &str, expected: Result<&str, &str>) {
        let got = base_url(url).map_err(|err| err.to_string());
        assert_eq!(
            got.as_deref(),
            expected.map_err(|e| e.to_string()).as_deref(),
            "{url}"
        );
    }
    check("http://127.0.0.1:9090", Ok("http://127.0.0.1:9090"));
    check("127.0.0.1:9090", Ok("http://127.0.0.1:9090"));
    check(
        "http://admin.internal:9090/cachegate/",
        Ok("http://admin.internal:9090/cachegate"),
    );
    check(
        "https://127.0.0.1:9090",
        Err("invalid admin URL \"https://127.0.0.1:9090\": only http:// is supported"),
    );
    check(
        "http://127.0.0.1:9090/?x=1",
        Err("invalid admin URL \"http://127.0.0.1:9090/?x=1\": a query string is not allowed"),
    );
    check(
        "ftp://h",
        Err("invalid admin URL \"ftp://h\": expected e.g. http://127.0.0.1:9090"),
    );
}

#[test]
fn wildcard_listen_addresses_become_loopback() {
    fn check(listen: &str, expected: &str) {
        assert_eq!(
            admin_url_for_listen(listen.parse().unwrap()),
            expected,
            "{listen}"
        );
    }
    check("0.0.0.0:9090", "http://127.0.0.1:9090");
    check("[::]:9090", "http://[::1]:9090");
    check("10.0.0.5:9000", "http://10.0.0.5:9000");
}

#[test]
fn token_file_wins_and_is_trimmed() {
    let file = TempFile::new("  from-file\n");
    let args = |token: Option<&str>, file: Option<&str>| AdminArgs {
        url: None,
        token: token.map(String::from),
        token_file: file.map(PathBuf::from),
        json: false,
        timeout: Duration::from_secs(30),
    };
    let check = |token: Option<&str>, path: Option<&str>, expected: Result<&str, &str>| {
        let got = resolve_token(&args(token, path)).map_err(|err| err.to_string());
        assert_eq!(
            got.as_deref(),
            expected.map_err(String::from).as_deref(),
            "{token:?} {path:?}"
        );
    };
    check(Some("flag"), None, Ok("flag"));
    check(Some("flag"), Some(file.path()), Ok("from-file"));
    check(
        None,
        None,
        Err("no admin token: pass --token or --token-file, or set CACHEGATE_ADMIN_TOKEN"),
    );
    check(
        Some(""),
        None,
        Err("no admin token: pass --token or --token-file, or set CACHEGATE_ADMIN_TOKEN"),
    );
    let empty = TempFile::new("\n");
    let message = format!("the token file {} is empty", empty.path());
    check(None, Some(empty.path()), Err(&message));
}

#[test]
fn a_token_that_cannot_be_a_header_is_refused() {
    let err = AdminClient::new(DEFAULT_ADMIN_URL, "bad\ntoken", Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(matches!(err, AdminError::BadToken), "{err:?}");
}

#[test]
fn human_size_uses_binary_units() {
    fn check(bytes: u64, expected: &str) {
        assert_eq!(human_size(bytes), expected, "{bytes}");
    }
    check(0, "0 B");
    check(1023, "1023 B");
    check(1024, "1.0 KiB");
    check(1536, "1.5 KiB");
    check(12 << 20, "12.0 MiB");
    check(3 << 30, "3.0 GiB");
}
