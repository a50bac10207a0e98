//! Every request the server accepts can be built from the command line: each field of the purge
//! and warm bodies is set by some invocation, and the server's own parser reads the body the
//! command line sends exactly as it reads a body written by hand with that field.

use super::*;
use crate::admin_api::WarmHeaders;
use crate::invalidation::PurgeRequest;
use std::collections::BTreeSet;

/// The fields of a body type, as the keys of a value with every field set.
fn fields(full: &impl serde::Serialize) -> BTreeSet<String> {
    match serde_json::to_value(full).unwrap() {
        serde_json::Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

fn command(args: &[&str]) -> AdminCommand {
    let mut argv = vec!["cachegate"];
    argv.extend_from_slice(args);
    TestCli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .command
}

/// The keys of a JSON object written by hand.
fn keys(json: &str) -> BTreeSet<String> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn every_purge_field_the_server_reads_can_be_sent_from_the_command_line() {
    const RESOURCES: &[&str] = &["faculty"];
    // Not for operators: `nonce` only makes two signed webhook bodies differ, and the legacy
    // shape is what existing backends send to the webhook.
    let exempt = ["nonce", "organization_id", "resource_type"];
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "purge",
                "--tenant",
                "42",
                "--tag",
                "faculty",
                "--tag",
                "faculty:12",
            ],
            r#"{"tenant": "42", "tags": ["faculty", "faculty:12"]}"#,
        ),
        (
            &["purge", "--path", "/api/x/", "--path", "/api/y/?page=2"],
            r#"{"paths": ["/api/x/", "/api/y/?page=2"]}"#,
        ),
        (
            &["purge", "--tenant", "*", "--prefix", "/api/"],
            r#"{"tenant": "*", "prefixes": ["/api/"]}"#,
        ),
        (&["purge", "--all"], r#"{"tenant": "*", "all": true}"#),
        (
            &["purge", "--all", "--tenant", "42", "--soft"],
            r#"{"tenant": "42", "all": true, "soft": true}"#,
        ),
        (
            &["purge", "--user", "alice"],
            r#"{"tenant": "*", "user": "alice"}"#,
        ),
        (
            &["purge", "--user", "alice", "--tenant", "42"],
            r#"{"tenant": "42", "user": "alice"}"#,
        ),
        (
            &["purge", "--forget-credentials"],
            r#"{"credential_cache": "all"}"#,
        ),
    ];
    let mut covered = BTreeSet::new();
    for (args, by_hand) in cases {
        let AdminCommand::Purge(purge) = command(args) else {
            panic!("{args:?}")
        };
        let sent = serde_json::to_vec(&purge.body()).unwrap();
        let read = PurgeRequest::from_json(&sent, RESOURCES);
        let expected = PurgeRequest::from_json(by_hand.as_bytes(), RESOURCES);
        assert!(expected.is_ok(), "{by_hand}: {expected:?}");
        assert_eq!(read, expected, "{args:?}");
        assert_eq!(
            keys(std::str::from_utf8(&sent).unwrap()),
            keys(by_hand),
            "{args:?}"
        );
        covered.extend(keys(by_hand));
    }
    let full = PurgeBody {
        tenant: Some(String::new()),
        tags: Some(Vec::new()),
        paths: Some(Vec::new()),
        prefixes: Some(Vec::new()),
        all: Some(true),
        soft: Some(true),
        nonce: Some(String::new()),
        credential_cache: Some(String::new()),
        user: Some(String::new()),
        organization_id: Some(crate::admin_api::OrgId::Number(1)),
        resource_type: Some(String::new()),
    };
    covered.extend(exempt.map(String::from));
    assert_eq!(covered, fields(&full), "a purge field has no flag");
}

#[test]
fn every_warm_field_the_server_reads_can_be_sent_from_the_command_line() {
    let list = TempFile::new("/api/a/\nhttps://api.example.com/api/b/?page=2\n");
    let file = list.path();
    let token = TempFile::new("Token aaaa\n");
    let from_file = format!("Authorization={}", token.path());
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["warm", "--file", file],
            r#"{"tenant": null, "concurrency": 8,
                "paths": ["/api/a/", "https://api.example.com/api/b/?page=2"]}"#
                .to_string(),
        ),
        (
            vec![
                "warm",
                "--file",
                file,
                "--tenant",
                "42",
                "--host",
                "api.example.com",
            ],
            r#"{"tenant": "42", "host": "api.example.com", "concurrency": 8,
                "paths": ["/api/a/", "https://api.example.com/api/b/?page=2"]}"#
                .to_string(),
        ),
        (
            vec![
                "warm",
                "--route",
                "/o/{org}/f/{id}/",
                "--capture",
                "org=7,id=3",
                "--capture",
                "5",
                "--concurrency",
                "2",
            ],
            r#"{"tenant": null, "concurrency": 2, "route": "/o/{org}/f/{id}/",
                "captures": [{"org": "7", "id": "3"}, "5"]}"#
                .to_string(),
        ),
        (
            vec![
                "warm",
                "--file",
                file,
                "--header",
                "Accept: application/json; indent=2",
                "--header-file",
                &from_file,
            ],
            r#"{"tenant": null, "concurrency": 8,
                "paths": ["/api/a/", "https://api.example.com/api/b/?page=2"],
                "headers": {"Accept": "application/json; indent=2",
                            "Authorization": "Token aaaa"}}"#
                .to_string(),
        ),
    ];
    let mut covered = BTreeSet::new();
    for (args, by_hand) in &cases {
        let AdminCommand::Warm(warm) = command(args) else {
            panic!("{args:?}")
        };
        let sent = serde_json::to_vec(&warm.plan().unwrap()).unwrap();
        // What `admin` does with a `POST /warm` body before `Proxy::warm` checks it.
        let read: WarmRequest = serde_json::from_slice(&sent).unwrap();
        let expected: WarmRequest = serde_json::from_str(by_hand).unwrap();
        assert_eq!(read, expected, "{args:?}");
        assert_eq!(
            keys(std::str::from_utf8(&sent).unwrap()),
            keys(by_hand),
            "{args:?}"
        );
        covered.extend(keys(by_hand));
    }
    let full = WarmRequest {
        tenant: Some(String::new()),
        paths: vec![String::new()],
        route: Some(String::new()),
        captures: vec![Capture::One(String::new())],
        host: Some(String::new()),
        concurrency: Some(1),
        headers: WarmHeaders([(String::new(), String::new())].into_iter().collect()),
    };
    assert_eq!(covered, fields(&full), "a warm field has no flag");
}

#[test]
fn every_entries_filter_round_trips() {
    let command = command(&[
        "entries", "--tenant", "a b", "--prefix", "/api/", "--limit", "5",
    ]);
    let AdminCommand::Entries(entries) = command else {
        panic!()
    };
    let query = entries.query();
    let sent = query.path_and_query();
    let read = EntriesQuery::from_query(sent.split_once('?').unwrap().1).unwrap();
    assert_eq!(read, query);
    assert!(read.tenant.is_some() && read.prefix.is_some() && read.limit.is_some());
}
