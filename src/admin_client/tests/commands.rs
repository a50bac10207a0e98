//! Purge, stats and entries against the fake admin API; errors; arguments; renderings.

use super::*;
use crate::stats::{
    RouteCounts, RouteMemory, Snapshot, Stats, StoreCounts, TenantCounts, TenantMemory,
};

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
    assert_eq!(render_purge(&PurgeAnswer { purged: 1 }), "purged 1 entry\n");
    assert_eq!(
        render_purge(&PurgeAnswer { purged: 0 }),
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
        .map(|i| TenantCounts {
            tenant: format!("t{i:02}"),
            hits: i,
            misses: 1,
            bypassed: 0,
        })
        .collect();
    let out = render_stats(&Report {
        requests: Snapshot {
            tenants,
            ..Snapshot::default()
        },
        ..Report::default()
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
fn stats_tolerates_missing_and_extra_fields() {
    fn check(text: &str, expected: Report) {
        let parsed: Report = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, expected, "{text}");
    }
    check("{}", Report::default());
    check(
        r#"{"hits": 3, "entries": 2, "new_field": [1], "routes": [{"route": 2}]}"#,
        Report {
            requests: Snapshot {
                hits: 3,
                routes: vec![RouteCounts {
                    route: 2,
                    ..RouteCounts::default()
                }],
                ..Snapshot::default()
            },
            store: StoreCounts {
                entries: 2,
                ..StoreCounts::default()
            },
            ..Report::default()
        },
    );
}

/// The server's own answer, counted and serialized as the admin API does, read and rendered by
/// the command: the reasons behind bypasses and unstored misses show beside their totals.
#[tokio::test]
async fn a_report_from_the_server_renders_through_the_cli() {
    use crate::policy::cacheability::{Bypass, NotStored};
    use crate::policy::outcome::{Fill, Outcome};
    let stats = Stats::new(vec!["/api/rooms/".to_string()]);
    let record = |outcome, times| {
        for _ in 0..times {
            stats.record(outcome, Some(0), Some("42"));
        }
    };
    record(Outcome::Hit, 3);
    record(Outcome::Miss(Fill::Stored), 1);
    record(Outcome::Miss(Fill::NotStored(NotStored::SetCookie)), 2);
    record(Outcome::Miss(Fill::NotStored(NotStored::Private)), 2);
    record(Outcome::Bypass(Bypass::Credentials), 3);
    record(Outcome::Bypass(Bypass::RequestNoCache), 1);
    let store = StoreCounts {
        entries: 1,
        bytes: 2048,
        ..StoreCounts::default()
    };
    let json = serde_json::to_string(&Report::new(stats.snapshot(), 0, store)).unwrap();
    let fake = serve_fake(Arc::new(move |_: &Seen| (200, json.clone()))).await;
    let (outcome, out, _) = run_cli(&fake, &["stats"]).await;
    assert_eq!(outcome.unwrap(), RunOutcome::Success);
    let expected = "\
hit ratio        37.5%  (3 hits, 5 misses)
entries          1  (2.0 KiB)
stored           1
not stored       4  (private 2, set-cookie 2)
collapsed        0
bypassed         4  (credentials 3, request-no-cache 1)
evictions        0
purged           0
fenced           0
upstream errors  0

routes
#  path         hits  misses  bypassed  hit ratio
0  /api/rooms/     3       5         4      37.5%

tenants by traffic
tenant  hits  misses  hit ratio
42         3       5      37.5%
";
    assert_eq!(out, expected);
}

/// What routes and tenants hold in memory, with the route bounds, the tenant share and the
/// evictions they chose (issue 12, part 4).
#[test]
fn stats_shows_memory_by_route_and_tenant() {
    let tenant = |name: &str, bytes: u64, entries: u64, tenants: u64| TenantMemory {
        tenant: name.to_string(),
        bytes,
        entries,
        tenants,
    };
    let out = render_stats(&Report {
        store: StoreCounts {
            entries: 30,
            bytes: 3 << 20,
            evictions: 10,
            share_evictions: 6,
            route_evictions: 3,
            tenant_share: Some(1 << 20),
            tenant_memory: vec![
                tenant("noisy", 2 << 20, 20, 1),
                tenant("", 512 << 10, 6, 1),
                tenant("(other)", 512 << 10, 4, 3),
            ],
            route_memory: vec![
                RouteMemory {
                    route: 0,
                    path: "/api/".to_string(),
                    bytes: 2 << 20,
                    entries: 24,
                    max_memory: None,
                },
                RouteMemory {
                    route: 1,
                    path: "/search/".to_string(),
                    bytes: 1 << 20,
                    entries: 6,
                    max_memory: Some(1 << 20),
                },
            ],
            ..StoreCounts::default()
        },
        ..Report::default()
    });
    let evictions = out.lines().find(|l| l.starts_with("evictions")).unwrap();
    assert_eq!(
        evictions,
        "evictions        10  (tenant share 6, route bound 3, tier full 1)"
    );
    let memory = &out[out.find("\nmemory by route").unwrap()..];
    let expected = "
memory by route
#  path      entries    bytes    bound
0  /api/          24  2.0 MiB        -
1  /search/        6  1.0 MiB  1.0 MiB

tenants by memory, share 1.0 MiB
tenant    entries      bytes  of share
noisy          20    2.0 MiB    200.0%
(shared)        6  512.0 KiB     50.0%
(other)         4  512.0 KiB         -
";
    assert_eq!(memory, expected, "{out}");
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

// === errors ===

#[tokio::test]
async fn a_wrong_token_is_refused_with_401() {
    let fake = fake_admin().await;
    let client = AdminClient::new(&fake.url, "wrong", Duration::from_secs(5)).unwrap();
    let err = stats(&client).await.unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::Unauthorized {
                refusal: Some(Refusal::WrongToken),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the admin API at {} refused the token (401): it is not this instance's admin token",
            fake.url
        )
    );
    assert!(!err.is_usage());
    assert_eq!(
        fake.seen()[0].authorization.as_deref(),
        Some("Bearer wrong")
    );
}

/// Issue 8: an instance without a token used to be reported as refusing the token.
#[tokio::test]
async fn an_instance_without_a_token_is_told_apart_from_a_wrong_token() {
    async fn check(detail: &'static str, message: &str) {
        let fake = serve_fake(Arc::new(move |_: &Seen| {
            let body = serde_json::to_string(&ErrorBody::new("unauthorized", detail)).unwrap();
            (401, body)
        }))
        .await;
        let err = stats(&fake.client()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            message.replace("{url}", &fake.url),
            "{detail}"
        );
    }
    check(
        Refusal::NoTokenConfigured.detail(),
        "the instance at {url} has no admin token configured, so its admin API refuses every request (401): set [admin] token_env or token_file there and restart it",
    )
    .await;
    check(
        Refusal::WrongToken.detail(),
        "the admin API at {url} refused the token (401): it is not this instance's admin token",
    )
    .await;
    check(
        "something else",
        "the admin API at {url} refused the token (401): unauthorized: something else",
    )
    .await;
}

#[tokio::test]
async fn an_error_answer_shows_its_detail() {
    async fn check(status: u16, body: &'static str, message: &str) {
        let fake = serve_fake(Arc::new(move |_: &Seen| (status, body.to_string()))).await;
        let err = purge(&fake.client(), &PurgeBody::default())
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

#[test]
fn a_request_the_server_calls_bad_is_a_usage_error() {
    let status = |status: u16| AdminError::Status {
        status,
        detail: String::new(),
    };
    assert!(status(400).is_usage());
    assert!(!status(500).is_usage());
    assert!(!status(503).is_usage());
}
