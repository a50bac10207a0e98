use super::*;

#[test]
fn query_parameters_are_decoded() {
    assert_eq!(
        query_pairs("tenant=42&prefix=%2Fapi%2Fx+y&limit=5&&x"),
        vec![
            ("tenant".to_string(), "42".to_string()),
            ("prefix".to_string(), "/api/x y".to_string()),
            ("limit".to_string(), "5".to_string()),
            ("x".to_string(), String::new()),
        ]
    );
    assert_eq!(decode("%zz%4"), "%zz%4");
    assert_eq!(decode("a%41"), "aA");
}

#[test]
fn entries_queries_round_trip() {
    fn check(query: EntriesQuery, expected: &str) {
        let text = query.path_and_query();
        assert_eq!(text, expected);
        let back = EntriesQuery::from_query(text.split_once('?').map_or("", |(_, q)| q));
        assert_eq!(back.unwrap(), query, "{expected}");
    }
    check(EntriesQuery::default(), "/entries");
    check(
        EntriesQuery {
            tenant: Some("a b&c".into()),
            prefix: Some("/api/ünï/".into()),
            limit: Some(5),
        },
        "/entries?tenant=a%20b%26c&prefix=/api/%C3%BCn%C3%AF/&limit=5",
    );
    assert!(EntriesQuery::from_query("limit=x").is_err());
    assert!(EntriesQuery::from_query("colour=red").is_err());
}

#[test]
fn warm_targets_keep_the_host_clients_send() {
    fn check(item: &str, host: Option<&str>, path: &str) {
        let target = WarmTarget::parse(item).unwrap();
        assert_eq!(target.host.as_deref(), host, "{item}");
        assert_eq!(target.path, path, "{item}");
    }
    check("/api/x/?b=2", None, "/api/x/?b=2");
    check("/api/x/#frag", None, "/api/x/");
    check(
        "http://localhost:8080/api/x/?q=1",
        Some("localhost:8080"),
        "/api/x/?q=1",
    );
    check(
        "HTTPS://API.Example.com/api/x/#s",
        Some("api.example.com"),
        "/api/x/",
    );
    check(
        "https://api.example.com:443/x",
        Some("api.example.com"),
        "/x",
    );
    check("http://api.example.com:80/x", Some("api.example.com"), "/x");
    check(
        "https://api.example.com:80/x",
        Some("api.example.com:80"),
        "/x",
    );
    check(
        "https://u:p@api.example.com./x",
        Some("api.example.com"),
        "/x",
    );
    check("https://api.example.com", Some("api.example.com"), "/");
    check(
        "https://api.example.com?q=1",
        Some("api.example.com"),
        "/?q=1",
    );
    check(
        "//api.example.com/api/z/",
        Some("api.example.com"),
        "/api/z/",
    );
    for bad in ["api/x/", "ftp://host/x", "https:///x", ""] {
        assert!(WarmTarget::parse(bad).is_err(), "{bad}");
    }
}

fn headers(pairs: &[(&str, &str)]) -> WarmHeaders {
    WarmHeaders(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn warm_headers_are_checked_without_quoting_their_values() {
    let secret = "Token s3cr3t";
    assert!(check_warm_headers(&headers(&[
        ("Authorization", secret),
        ("Accept", "application/json; indent=2"),
        ("X-Custom_1", "tab\tok"),
    ]))
    .is_ok());
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("Host", secret)], "Host is not sent as a header"),
        (&[("connection", secret)], "header connection is hop-by-hop"),
        (&[("Transfer-Encoding", secret)], "is hop-by-hop"),
        (&[("Proxy-Authorization", secret)], "is hop-by-hop"),
        (&[("Content-Length", "0")], "a warm request has no body"),
        (&[("", secret)], "a header name is empty"),
        (
            &[("Authorization Token", secret)],
            "not an HTTP header name",
        ),
        (
            &[("Authorization", "  ")],
            "header Authorization has an empty value",
        ),
        (&[("Authorization", "Token s3cr3t\r\nX: y")], "line break"),
        (&[("Authorization", "Token s3cr3t\0")], "control character"),
        (
            &[("Authorization", secret), ("authorization", secret)],
            "is given twice",
        ),
    ];
    for (pairs, expected) in cases {
        let err = check_warm_headers(&headers(pairs)).unwrap_err();
        assert!(err.contains(expected), "{pairs:?}: {err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    let many: Vec<(String, String)> = (0..=MAX_WARM_HEADERS)
        .map(|i| (format!("x-{i}"), "1".to_string()))
        .collect();
    assert!(check_warm_headers(&WarmHeaders(many.into_iter().collect())).is_err());
}

#[test]
fn warm_header_values_are_never_shown() {
    let request = WarmRequest {
        headers: headers(&[("Authorization", "Token s3cr3t")]),
        ..WarmRequest::default()
    };
    let shown = format!("{request:?}");
    assert!(
        shown.contains("Authorization") && !shown.contains("s3cr3t"),
        "{shown}"
    );
    for body in [
        r#"{"headers": "Token s3cr3t"}"#,
        r#"{"headers": ["Authorization", "Token s3cr3t"]}"#,
        r#"{"headers": {"Authorization": ["Token s3cr3t"]}}"#,
    ] {
        let err = serde_json::from_str::<WarmRequest>(body)
            .unwrap_err()
            .to_string();
        assert!(err.contains("field \"headers\""), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    let read: WarmRequest =
        serde_json::from_str(r#"{"headers": {"Authorization": "Token s3cr3t"}}"#).unwrap();
    assert_eq!(read.headers, headers(&[("Authorization", "Token s3cr3t")]));
    // No headers, no field: bodies written before `headers` existed stay as they were.
    let text = serde_json::to_string(&WarmRequest::default()).unwrap();
    assert!(!text.contains("headers"), "{text}");
}

#[test]
fn refusals_are_told_apart_by_their_detail() {
    for refusal in Refusal::ALL {
        assert_eq!(Refusal::from_detail(refusal.detail()), Some(refusal));
    }
    assert_eq!(Refusal::from_detail("bad token"), None);
}

#[test]
fn warm_reports_count_what_failed() {
    let ok = Warmed {
        path: "/a".into(),
        status: 200,
        ..Warmed::default()
    };
    let bad = Warmed {
        path: "/b".into(),
        status: 502,
        ..Warmed::default()
    };
    let report = WarmReport::of(vec![ok.clone(), bad, ok]);
    assert_eq!((report.done, report.failed), (2, 1));
}

#[test]
fn top_query_reads_a_limit_and_refuses_the_rest() {
    assert_eq!(TopQuery::from_query(""), Ok(TopQuery { limit: None }));
    assert_eq!(
        TopQuery::from_query("limit=7"),
        Ok(TopQuery { limit: Some(7) })
    );
    assert!(TopQuery::from_query("limit=-1").is_err());
    assert!(TopQuery::from_query("tenant=4").is_err());
}
