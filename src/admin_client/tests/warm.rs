//! `cachegate warm`: batches, progress, counts and warm lists.

use super::*;

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
                   "paths": ["/api/rooms/", "https://api.example.com/api/rooms/?page=2",
                             "/api/broken/"]}),
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
    // Issue 8: the count is of paths stored, not of paths sent ("warmed 4/4 (1 failed)").
    assert_eq!(
        progress,
        "warmed 2/7 (1 failed)\nwarmed 4/7 (2 failed)\nwarmed 5/7 (2 failed)\n"
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
            done: 2,
            failed: 0,
            total: 5,
        }]
    );
    assert_eq!(fake.seen().len(), 2);
}

#[test]
fn progress_rewrites_one_line_on_a_terminal() {
    let mut line = ProgressLine::new(Vec::new(), true);
    for done in [1, 3] {
        line.update(&WarmProgress {
            done,
            failed: 1,
            total: 4,
        });
    }
    line.finish();
    line.finish();
    assert_eq!(
        String::from_utf8(line.into_inner()).unwrap(),
        "\r\x1b[2Kwarmed 1/4 (1 failed)\r\x1b[2Kwarmed 3/4 (1 failed)\n"
    );
}

#[test]
fn warm_list_keeps_urls_whole_for_their_host() {
    fn check(text: &str, expected: &[&str]) {
        assert_eq!(parse_warm_list(text).unwrap(), expected, "{text:?}");
    }
    check("/api/x/\n", &["/api/x/"]);
    check("  /api/x/?b=2&a=1  \r\n", &["/api/x/?b=2&a=1"]);
    check("# comment\n\n   \n#/api/skipped/\n/api/y/", &["/api/y/"]);
    check(
        "http://localhost:8080/api/x/?q=1",
        &["http://localhost:8080/api/x/?q=1"],
    );
    check(
        "HTTPS://api.example.com/api/x/#section",
        &["HTTPS://api.example.com/api/x/"],
    );
    check("https://api.example.com", &["https://api.example.com"]);
    check("//api.example.com/api/z/", &["//api.example.com/api/z/"]);
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

#[tokio::test]
async fn warm_sends_a_route_and_its_captures_in_batches_after_the_paths() {
    let fake = serve_fake(Arc::new(|seen: &Seen| {
        let mut body = seen.body.clone();
        if let Some(captures) = body["captures"].as_array() {
            let paths: Vec<String> = captures
                .iter()
                .map(|c| format!("/api/faculty/{}/", c.as_str().unwrap_or("named")))
                .collect();
            body["paths"] = json!(paths);
        }
        (200, warm_answer(&body))
    }))
    .await;
    let list = TempFile::new("/api/a/\n");
    let (outcome, _, progress) = run_cli(
        &fake,
        &[
            "warm",
            "--file",
            list.path(),
            "--route",
            "/api/faculty/{id}/",
            "--capture",
            "1",
            "--capture",
            "2",
            "--capture",
            "id=3",
            "--batch",
            "2",
        ],
    )
    .await;
    assert_eq!(outcome.unwrap(), RunOutcome::Success);
    let bodies: Vec<serde_json::Value> = fake.seen().iter().map(|s| s.body.clone()).collect();
    assert_eq!(
        bodies,
        vec![
            json!({"tenant": null, "concurrency": 8, "paths": ["/api/a/"]}),
            json!({"tenant": null, "concurrency": 8, "route": "/api/faculty/{id}/",
                   "captures": ["1", "2"]}),
            json!({"tenant": null, "concurrency": 8, "route": "/api/faculty/{id}/",
                   "captures": [{"id": "3"}]}),
        ]
    );
    assert_eq!(
        progress,
        "warmed 1/4 (0 failed)\nwarmed 3/4 (0 failed)\nwarmed 4/4 (0 failed)\n"
    );
}

#[test]
fn captures_are_one_value_or_named_pairs() {
    fn named(pairs: &[(&str, &str)]) -> Capture {
        Capture::Named(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
    assert_eq!(parse_capture("12").unwrap(), Capture::One("12".into()));
    assert_eq!(
        parse_capture("org=7,id=3").unwrap(),
        named(&[("org", "7"), ("id", "3")])
    );
    assert_eq!(
        parse_capture("rest=a=b").unwrap(),
        named(&[("rest", "a=b")])
    );
    assert!(parse_capture("org=7,3").is_err());
    assert!(parse_capture("=3").is_err());
    assert!(parse_capture("id=1,id=2").is_err());
}

#[test]
fn captures_need_a_route_and_a_route_needs_captures() {
    for args in [
        vec!["cachegate", "warm", "--capture", "1"],
        vec!["cachegate", "warm", "--route", "/api/faculty/{id}/"],
        vec!["cachegate", "warm"],
    ] {
        assert!(TestCli::try_parse_from(&args).is_err(), "{args:?}");
    }
}

/// The warm plan of a command line, with the environment given.
fn plan_of(args: &[&str], env: &[(&str, &str)]) -> Result<WarmRequest, AdminError> {
    let AdminCommand::Warm(warm) = parse("http://127.0.0.1:9", args) else {
        panic!("{args:?}")
    };
    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    warm.plan_with(|name| env.get(name).map(std::ffi::OsString::from))
}

#[test]
fn warm_headers_come_from_flags_the_environment_and_files() {
    let token = TempFile::new("  Token ffff\n");
    let from_file = format!("Cookie={}", token.path());
    let plan = plan_of(
        &[
            "warm",
            "--route",
            "/api/faculty/{id}/",
            "--capture",
            "1",
            "--header",
            "Accept:application/json ",
            "--header-env",
            "Authorization=WARM_AUTH",
            "--header-file",
            &from_file,
        ],
        &[("WARM_AUTH", "Token aaaa")],
    )
    .unwrap();
    let headers: Vec<(&str, &str)> = plan.headers.iter().collect();
    assert_eq!(
        headers,
        [
            ("Accept", "application/json"),
            ("Authorization", "Token aaaa"),
            ("Cookie", "Token ffff"),
        ]
    );
}

/// `--header` and its kin refuse what the server would refuse, exit 64, and never print a
/// value: it may be a credential.
#[test]
fn bad_warm_headers_are_refused_without_their_values() {
    let empty = TempFile::new("\n  \n");
    let empty_file = format!("Authorization={}", empty.path());
    let base = ["warm", "--route", "/api/faculty/{id}/", "--capture", "1"];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--header", "Authorization Token s3cr3t"],
            "--header #1: expected 'Name: value'",
        ),
        (
            &[
                "--header",
                "Accept: */*",
                "--header",
                "Authorization Token: s3cr3t",
            ],
            "--header #2: a header name is not an HTTP header name",
        ),
        (
            &["--header", "Host: s3cr3t.example"],
            "--header #1: Host is not sent as a header",
        ),
        (
            &["--header", "Connection: s3cr3t"],
            "header Connection is hop-by-hop",
        ),
        (&["--header", "Transfer-Encoding: s3cr3t"], "is hop-by-hop"),
        (
            &["--header", "Authorization:   "],
            "header Authorization has an empty value",
        ),
        (
            &[
                "--header",
                "authorization: Token s3cr3t",
                "--header-env",
                "Authorization=WARM",
            ],
            "--header-env Authorization: header Authorization is given twice",
        ),
        (
            &["--header-env", "Authorization"],
            "--header-env \"Authorization\": expected NAME=VARIABLE",
        ),
        (&["--header-env", "=WARM"], "expected NAME=VARIABLE"),
        // A value given where the variable's name goes, or a whole `Name: value` line.
        (
            &["--header-env", "Authorization=Token s3cr3t"],
            "--header-env Authorization: ",
        ),
        (
            &["--header-env", "Authorization: Token s3cr3t="],
            "expected NAME=VARIABLE",
        ),
        (
            &["--header-env", "Authorization: Token s3cr3t=WARM"],
            "a header name is not an HTTP header name",
        ),
        (
            &["--header-file", "Authorization: Token s3cr3t=/tmp/x"],
            "a header name is not an HTTP header name",
        ),
        (
            &["--header-env", "Authorization=UNSET"],
            "--header-env Authorization: the environment variable UNSET is not set",
        ),
        (
            &["--header-env", "Authorization=BLANK"],
            "--header-env Authorization: the environment variable BLANK is empty",
        ),
        (
            &["--header-env", "Authorization=BROKEN"],
            "the value of header Authorization holds a line break",
        ),
        (
            &[
                "--header-file",
                "Authorization=/nonexistent/cachegate-token",
            ],
            "cannot read /nonexistent/cachegate-token",
        ),
        (&["--header-file", &empty_file], "is empty"),
    ];
    let env = [
        ("WARM", "Token s3cr3t"),
        ("BLANK", " "),
        ("BROKEN", "Token s3cr3t\r\nX-Evil: 1"),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let err = plan_of(&args, &env).unwrap_err();
        assert!(err.is_usage(), "{args:?}: {err}");
        let text = err.to_string();
        assert!(
            text.starts_with("--header") && text.contains(expected),
            "{args:?}: {text}"
        );
        assert!(!text.contains("s3cr3t"), "{args:?}: {text}");
    }
}

#[tokio::test]
async fn every_warm_batch_carries_the_headers() {
    let fake = fake_admin().await;
    let list = TempFile::new("/api/a/\n/api/b/\n/api/c/\n");
    let (outcome, _, _) = run_cli(
        &fake,
        &[
            "warm",
            "--file",
            list.path(),
            "--host",
            "api.example.com",
            "--batch",
            "2",
            "--header",
            "Accept: application/json",
        ],
    )
    .await;
    assert_eq!(outcome.unwrap(), RunOutcome::Success);
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(req.body["headers"], json!({"Accept": "application/json"}));
    }
}
