//! Tests for purge body parsing: every accepted shape and every refusal.

use super::*;

const RESOURCES: &[&str] = &["rooms", "courses"];

/// What a body is expected to become: the fields of the request, or the start of the error.
enum Want<'a> {
    Ok(Expect<'a>),
    Err(&'a str),
}

/// The expected fields of an accepted request.
struct Expect<'a> {
    tenant: TenantSel,
    tags: &'a [&'a str],
    paths: &'a [&'a str],
    prefixes: &'a [&'a str],
    all: bool,
    soft: bool,
}

fn ok<'a>(tenant: TenantSel) -> Expect<'a> {
    Expect {
        tenant,
        tags: &[],
        paths: &[],
        prefixes: &[],
        all: false,
        soft: false,
    }
}

fn one(id: &str) -> TenantSel {
    TenantSel::One(id.to_owned())
}

fn check(body: &str, want: Want<'_>) {
    let got = PurgeRequest::from_json(body.as_bytes(), RESOURCES);
    match want {
        Want::Ok(Expect {
            tenant,
            tags,
            paths,
            prefixes,
            all,
            soft,
        }) => {
            let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            let want = PurgeRequest {
                tenant,
                tags: owned(tags),
                paths: owned(paths),
                prefixes: owned(prefixes),
                all,
                soft,
                forget_credentials: false,
                user: None,
            };
            assert_eq!(got, Ok(want), "body {body}");
        }
        Want::Err(start) => match got {
            Ok(req) => panic!("body {body}: accepted as {req:?}, want error {start:?}"),
            Err(BadPurge(msg)) => assert!(
                msg.starts_with(start),
                "body {body}: error {msg:?} does not start with {start:?}"
            ),
        },
    }
}

#[test]
fn tenant_star_selects_all_tenants() {
    check(
        r#"{"tenant":"*","all":true}"#,
        Want::Ok(Expect {
            all: true,
            ..ok(TenantSel::All)
        }),
    );
}

#[test]
fn tenant_id_selects_one_tenant() {
    check(
        r#"{"tenant":"42","tags":["rooms"]}"#,
        Want::Ok(Expect {
            tags: &["rooms"],
            ..ok(one("42"))
        }),
    );
    check(
        r#"{"tenant":"acme.eu_1-b","all":true,"soft":true}"#,
        Want::Ok(Expect {
            all: true,
            soft: true,
            ..ok(one("acme.eu_1-b"))
        }),
    );
}

#[test]
fn no_tenant_is_the_shared_scope() {
    check(
        r#"{"tags":["config"]}"#,
        Want::Ok(Expect {
            tags: &["config"],
            ..ok(TenantSel::Shared)
        }),
    );
}

#[test]
fn all_without_tenant_is_refused() {
    check(r#"{"all":true}"#, Want::Err("\"all\": true needs a tenant"));
    check(
        r#"{"all":true,"tags":["x"]}"#,
        Want::Err("\"all\": true needs a tenant"),
    );
}

#[test]
fn bad_tenant_is_refused() {
    check(
        r#"{"tenant":"4 2","all":true}"#,
        Want::Err("tenant \"4 2\": bad character"),
    );
    check(
        r#"{"tenant":"","all":true}"#,
        Want::Err("tenant \"\": empty"),
    );
    let long = "a".repeat(65);
    check(
        &format!(r#"{{"tenant":"{long}","all":true}}"#),
        Want::Err("tenant \"aaaa"),
    );
    check(
        r#"{"tenant":"a,b","all":true}"#,
        Want::Err("tenant \"a,b\": bad character"),
    );
    check(
        r#"{"tenant":"**","all":true}"#,
        Want::Err("tenant \"**\": bad character"),
    );
    check(
        r#"{"tenant":42,"all":true}"#,
        Want::Err("field \"tenant\": invalid type"),
    );
}

#[test]
fn null_is_refused() {
    check(
        r#"{"tenant":null,"tags":["x"]}"#,
        Want::Err("field \"tenant\": invalid type: null"),
    );
    check(
        r#"{"tags":null,"all":true,"tenant":"1"}"#,
        Want::Err("field \"tags\": invalid type: null"),
    );
    check(
        r#"{"organization_id":null,"resource_type":"rooms"}"#,
        Want::Err("field \"organization_id\""),
    );
}

#[test]
fn empty_request_is_refused() {
    check("{}", Want::Err("nothing to purge"));
    check(r#"{"tenant":"42"}"#, Want::Err("nothing to purge"));
    check(
        r#"{"tenant":"42","soft":true}"#,
        Want::Err("nothing to purge"),
    );
    check(
        r#"{"tenant":"42","all":false,"tags":[]}"#,
        Want::Err("nothing to purge"),
    );
}

#[test]
fn malformed_json_is_refused_with_position() {
    check("", Want::Err("malformed json at line 1 column 0"));
    check(
        "{\"tags\":[\"a\",]}",
        Want::Err("malformed json at line 1 column 14: "),
    );
    check("[]", Want::Err("the body must be a json object"));
    check(
        r#"["42",["rooms"]]"#,
        Want::Err("the body must be a json object"),
    );
    check("\"x\"", Want::Err("the body must be a json object"));
    check("null", Want::Err("the body must be a json object"));
    check(
        r#"{"tags":["a"]} x"#,
        Want::Err("malformed json at line 1 column 16: trailing characters"),
    );
}

#[test]
fn unknown_field_is_named() {
    check(
        r#"{"tenant":"1","tagz":["a"]}"#,
        Want::Err("unknown field \"tagz\", expected one of \"tenant\", \"tags\""),
    );
}

#[test]
fn duplicate_field_is_refused() {
    check(
        r#"{"tenant":"1","tenant":"2","all":true}"#,
        Want::Err("duplicate field \"tenant\""),
    );
}

#[test]
fn wrong_type_names_the_field() {
    check(
        r#"{"tags":"rooms"}"#,
        Want::Err("field \"tags\": invalid type: string \"rooms\", expected a sequence"),
    );
    check(
        r#"{"tags":[1]}"#,
        Want::Err("field \"tags\": invalid type: integer"),
    );
    check(
        r#"{"tenant":"1","all":"yes"}"#,
        Want::Err("field \"all\": invalid type"),
    );
    check(
        r#"{"tenant":"1","all":true,"soft":1}"#,
        Want::Err("field \"soft\": invalid type"),
    );
}

#[test]
fn tags_are_kept_in_order_without_duplicates() {
    check(
        r#"{"tenant":"7","tags":["rooms","rooms:12","rooms:*","rooms"]}"#,
        Want::Ok(Expect {
            tags: &["rooms", "rooms:12", "rooms:*"],
            ..ok(one("7"))
        }),
    );
}

#[test]
fn bad_tag_is_refused() {
    check(
        r#"{"tags":[""]}"#,
        Want::Err("field \"tags\": \"\": empty tag"),
    );
    check(
        r#"{"tags":["a b"]}"#,
        Want::Err("field \"tags\": \"a b\": whitespace"),
    );
    check(
        r#"{"tags":["a\tb"]}"#,
        Want::Err("field \"tags\": \"a\\tb\": whitespace"),
    );
    check(
        r#"{"tags":["a,b"]}"#,
        Want::Err("field \"tags\": \"a,b\": whitespace"),
    );
    check(
        r#"{"tags":["a\u0000b"]}"#,
        Want::Err("field \"tags\": \"a\\0b\": whitespace"),
    );
    check(
        &format!(r#"{{"tags":["{}"]}}"#, "t".repeat(257)),
        Want::Err("field \"tags\": \"tttt"),
    );
    check(
        r#"{"tenant":"1","tags":["*"]}"#,
        Want::Err("field \"tags\": \"*\": use \"all\""),
    );
    check(
        r#"{"tags":["path:/a"]}"#,
        Want::Err("field \"tags\": \"path:/a\": use \"paths\""),
    );
}

#[test]
fn longest_tag_is_accepted() {
    let tag = "t".repeat(MAX_TAG_LEN);
    let body = format!(r#"{{"tags":["{tag}"]}}"#);
    let req = PurgeRequest::from_json(body.as_bytes(), RESOURCES);
    assert_eq!(req.map(|r| r.tags), Ok(vec![tag]));
}

#[test]
fn at_most_1000_items_per_list() {
    let items = |n: usize| {
        (0..n)
            .map(|i| format!("\"t{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let body = format!(r#"{{"tags":[{}]}}"#, items(MAX_ITEMS));
    let req = PurgeRequest::from_json(body.as_bytes(), RESOURCES);
    assert_eq!(req.map(|r| r.tags.len()), Ok(MAX_ITEMS));
    check(
        &format!(r#"{{"tags":[{}]}}"#, items(MAX_ITEMS + 1)),
        Want::Err("field \"tags\": 1001 items, at most 1000 allowed"),
    );
}

#[test]
fn path_without_query_is_kept_bare() {
    check(
        r#"{"tenant":"1","paths":["/api/rooms/12","/api/rooms/"]}"#,
        Want::Ok(Expect {
            paths: &["/api/rooms/12", "/api/rooms/"],
            ..ok(one("1"))
        }),
    );
}

#[test]
fn path_query_is_canonical() {
    check(
        r#"{"tenant":"1","paths":["/api/rooms?page=2&b=x+y","/api/rooms?b=x%20y&page=2"]}"#,
        Want::Ok(Expect {
            paths: &["/api/rooms?b=x%20y&page=2"],
            ..ok(one("1"))
        }),
    );
}

#[test]
fn path_escapes_are_normalized() {
    check(
        r#"{"tenant":"1","paths":["/%7Euser/a%3fb"]}"#,
        Want::Ok(Expect {
            paths: &["/~user/a%3Fb"],
            ..ok(one("1"))
        }),
    );
}

#[test]
fn ambiguous_path_is_refused() {
    check(
        r#"{"paths":["/a/../b"]}"#,
        Want::Err("field \"paths\": \"/a/../b\": dot-segment"),
    );
    check(
        r#"{"paths":["/a//b"]}"#,
        Want::Err("field \"paths\": \"/a//b\": empty-segment"),
    );
    check(
        r#"{"paths":["a/b"]}"#,
        Want::Err("field \"paths\": \"a/b\": not-origin"),
    );
    check(
        r#"{"paths":["/a#x"]}"#,
        Want::Err("field \"paths\": \"/a#x\": not-origin"),
    );
    check(
        r#"{"paths":["/a%zz"]}"#,
        Want::Err("field \"paths\": \"/a%zz\": bad-percent"),
    );
    check(
        r#"{"paths":["/a?b=%"]}"#,
        Want::Err("field \"paths\": \"/a?b=%\": bad-percent"),
    );
    check(
        r#"{"paths":["/a\\b"]}"#,
        Want::Err("field \"paths\": \"/a\\\\b\": backslash"),
    );
    check(
        r#"{"paths":["/a b"]}"#,
        Want::Err("field \"paths\": \"/a b\": control-or-non-ascii"),
    );
    check(
        r#"{"paths":[""]}"#,
        Want::Err("field \"paths\": \"\": not-origin"),
    );
}

#[test]
fn empty_query_is_refused() {
    check(
        r#"{"paths":["/a?"]}"#,
        Want::Err("field \"paths\": \"/a?\": empty query"),
    );
}

#[test]
fn prefixes_are_normalized_paths() {
    check(
        r#"{"tenant":"*","prefixes":["/api/courses/","/api/%7Eold"]}"#,
        Want::Ok(Expect {
            prefixes: &["/api/courses/", "/api/~old"],
            ..ok(TenantSel::All)
        }),
    );
}

#[test]
fn ambiguous_prefix_is_refused() {
    check(
        r#"{"prefixes":["/a?x=1"]}"#,
        Want::Err("field \"prefixes\": \"/a?x=1\": a prefix cannot hold a query"),
    );
    check(
        r#"{"prefixes":["/a/./"]}"#,
        Want::Err("field \"prefixes\": \"/a/./\": dot-segment"),
    );
    check(
        r#"{"prefixes":["api/"]}"#,
        Want::Err("field \"prefixes\": \"api/\": not-origin"),
    );
    check(
        r#"{"prefixes":["/a%2"]}"#,
        Want::Err("field \"prefixes\": \"/a%2\": bad-percent"),
    );
}

#[test]
fn every_native_field_together() {
    check(
        r#"{"tenant":"9","tags":["rooms:*"],"paths":["/a"],"prefixes":["/b/"],"all":true,"soft":true}"#,
        Want::Ok(Expect {
            tenant: one("9"),
            tags: &["rooms:*"],
            paths: &["/a"],
            prefixes: &["/b/"],
            all: true,
            soft: true,
        }),
    );
}

#[test]
fn legacy_resource_becomes_whole_resource_tag() {
    check(
        r#"{"organization_id":"42","resource_type":"rooms"}"#,
        Want::Ok(Expect {
            tags: &["rooms:*"],
            ..ok(one("42"))
        }),
    );
}

#[test]
fn legacy_numeric_organization_is_accepted() {
    check(
        r#"{"organization_id":42,"resource_type":"courses"}"#,
        Want::Ok(Expect {
            tags: &["courses:*"],
            ..ok(one("42"))
        }),
    );
    check(
        r#"{"organization_id":-1,"resource_type":"rooms"}"#,
        Want::Err("field \"organization_id\""),
    );
    check(
        r#"{"organization_id":1.5,"resource_type":"rooms"}"#,
        Want::Err("field \"organization_id\""),
    );
}

#[test]
fn legacy_all_is_everything_for_the_tenant() {
    check(
        r#"{"organization_id":"42","resource_type":"all"}"#,
        Want::Ok(Expect {
            all: true,
            ..ok(one("42"))
        }),
    );
}

#[test]
fn legacy_without_organization_is_shared() {
    check(
        r#"{"resource_type":"rooms"}"#,
        Want::Ok(Expect {
            tags: &["rooms:*"],
            ..ok(TenantSel::Shared)
        }),
    );
    check(
        r#"{"resource_type":"all"}"#,
        Want::Err("\"all\": true needs a tenant"),
    );
}

#[test]
fn legacy_unknown_resource_names_the_known_ones() {
    check(
        r#"{"organization_id":"42","resource_type":"roomz"}"#,
        Want::Err(
            "field \"resource_type\": unknown resource \"roomz\", expected one of \"rooms\", \"courses\", \"all\"",
        ),
    );
}

#[test]
fn legacy_organization_needs_resource_type() {
    check(
        r#"{"organization_id":"42"}"#,
        Want::Err("field \"organization_id\" needs \"resource_type\""),
    );
}

#[test]
fn legacy_organization_follows_the_tenant_rule() {
    check(
        r#"{"organization_id":"*","resource_type":"all"}"#,
        Want::Err("organization_id \"*\": bad character"),
    );
    check(
        r#"{"organization_id":"","resource_type":"rooms"}"#,
        Want::Err("organization_id \"\": empty"),
    );
}

#[test]
fn mixing_shapes_is_refused() {
    check(
        r#"{"organization_id":"42","resource_type":"rooms","tenant":"42"}"#,
        Want::Err("field \"tenant\" cannot be mixed"),
    );
    check(
        r#"{"resource_type":"rooms","tags":["x"]}"#,
        Want::Err("field \"tags\" cannot be mixed"),
    );
    check(
        r#"{"organization_id":"42","resource_type":"rooms","soft":true}"#,
        Want::Err("field \"soft\" cannot be mixed"),
    );
}

#[test]
fn nonce_is_accepted_and_ignored() {
    check(
        r#"{"tenant":"1","tags":["a"],"nonce":"3f9a0c"}"#,
        Want::Ok(Expect {
            tags: &["a"],
            ..ok(one("1"))
        }),
    );
    check(
        r#"{"organization_id":"1","resource_type":"rooms","nonce":"x"}"#,
        Want::Ok(Expect {
            tags: &["rooms:*"],
            ..ok(one("1"))
        }),
    );
    check(
        &format!(r#"{{"tags":["a"],"nonce":"{}"}}"#, "n".repeat(129)),
        Want::Err("field \"nonce\": longer than 128 bytes"),
    );
    check(
        r#"{"tags":["a"],"nonce":1}"#,
        Want::Err("field \"nonce\": invalid type"),
    );
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "x".repeat(5000);
    let body = format!(r#"{{"{long}":1}}"#);
    let Err(BadPurge(msg)) = PurgeRequest::from_json(body.as_bytes(), RESOURCES) else {
        panic!("accepted an unknown field");
    };
    assert!(msg.len() < 400, "message of {} bytes", msg.len());
    assert!(msg.starts_with("unknown field \"xxx"), "{msg}");
}

#[test]
fn is_empty_follows_the_lists_and_all() {
    let mut req = PurgeRequest {
        tenant: TenantSel::Shared,
        tags: Vec::new(),
        paths: Vec::new(),
        prefixes: Vec::new(),
        all: false,
        soft: true,
        forget_credentials: false,
        user: None,
    };
    assert!(req.is_empty());
    req.prefixes.push("/a".to_owned());
    assert!(!req.is_empty());
}

#[test]
fn positions_are_stripped_once_or_more() {
    assert_eq!(strip_positions("a at line 1 column 2"), "a");
    assert_eq!(
        strip_positions("a at line 1 column 2 at line 3 column 44"),
        "a"
    );
    assert_eq!(strip_positions("keep at line x"), "keep at line x");
}

#[test]
fn identity_purges_are_accepted_and_checked() {
    let ok = PurgeRequest::from_json(br#"{"credential_cache": "all"}"#, &[]).unwrap();
    assert!(ok.forget_credentials && !ok.is_empty());
    let ok =
        PurgeRequest::from_json(br#"{"tenant": "42", "user": "alice@example.com"}"#, &[]).unwrap();
    assert_eq!(ok.user.as_deref(), Some("alice@example.com"));
    assert_eq!(ok.tenant, TenantSel::One("42".into()));
    for (body, start) in [
        (
            r#"{"credential_cache": "some"}"#,
            "field \"credential_cache\": expected \"all\"",
        ),
        (r#"{"user": ""}"#, "field \"user\""),
        (r#"{"tags": ["user:alice"]}"#, "field \"tags\""),
        (
            r#"{"organization_id": "1", "resource_type": "all", "user": "a"}"#,
            "field \"user\" cannot be mixed",
        ),
    ] {
        let err = PurgeRequest::from_json(body.as_bytes(), &[]).unwrap_err();
        assert!(err.0.starts_with(start), "{body}: {}", err.0);
    }
}

#[test]
fn describe_is_short_and_names_the_scope() {
    let read = |body: &str| {
        PurgeRequest::from_json(body.as_bytes(), RESOURCES)
            .unwrap()
            .describe()
    };
    assert_eq!(
        read(r#"{"tenant": "42", "tags": ["rooms", "course:7"], "soft": true}"#),
        "tenant=42 tags=[rooms, course:7] soft"
    );
    assert_eq!(
        read(r#"{"prefixes": ["/api/"]}"#),
        "shared prefixes=[/api/]"
    );
    assert_eq!(
        read(r#"{"tenant": "*", "paths": ["/a", "/b", "/c", "/d", "/e"]}"#),
        "tenant=* paths=[/a, /b, /c, +2 more]"
    );
    assert_eq!(read(r#"{"tenant": "7", "all": true}"#), "tenant=7 all");
}
