//! Tests for request-target normalization and key derivation.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::*;

/// Normalizes and compares with the expected `(path, query)` or error.
fn check(path: &str, query: Option<&str>, want: Result<(&str, &str), Ambiguous>) {
    let got = normalize(path, query).map(|t| (t.path.into_owned(), t.query.into_owned()));
    let want = want.map(|(p, q)| (p.to_owned(), q.to_owned()));
    assert_eq!(got, want, "normalize({path:?}, {query:?})");
}

#[test]
fn canonical_path_is_kept() {
    check("/", None, Ok(("/", "")));
    check("/api/faculty/", None, Ok(("/api/faculty/", "")));
    check("/api/faculty/12", None, Ok(("/api/faculty/12", "")));
    check("/a:b@c!$&'()*+,;=", None, Ok(("/a:b@c!$&'()*+,;=", "")));
}

#[test]
fn trailing_slash_is_significant() {
    check("/api/faculty", None, Ok(("/api/faculty", "")));
    check("/api/faculty/", None, Ok(("/api/faculty/", "")));
}

#[test]
fn percent_7e_is_tilde() {
    check("/%7Euser", None, Ok(("/~user", "")));
    check("/%7euser", None, Ok(("/~user", "")));
}

#[test]
fn unreserved_escapes_are_decoded() {
    check("/%41%62%30", None, Ok(("/Ab0", "")));
    check("/a%2Db%5Fc%2Ed", None, Ok(("/a-b_c.d", "")));
}

#[test]
fn reserved_escapes_stay_escaped_upper_case() {
    check("/a%3fb", None, Ok(("/a%3Fb", "")));
    check("/a%20b", None, Ok(("/a%20b", "")));
    check("/caf%c3%a9", None, Ok(("/caf%C3%A9", "")));
    check("/a%0ab", None, Ok(("/a%0Ab", "")));
}

/// `%2F` never becomes `/` here, and backends that decode it before routing would read
/// `/a%2Fb` as `/a/b`: neither guessed, both refused (reads pass through uncached).
#[test]
fn encoded_separators_are_ambiguous() {
    for path in ["/a%2fb", "/a%2Fb", "/a%5Cb", "/a%5cb", "/%2F"] {
        check(path, None, Err(Ambiguous::EncodedSeparator));
    }
    // In the query a `%2F` is data, and stays.
    check("/a", Some("p=%2F"), Ok(("/a", "p=%2F")));
}

#[test]
fn dot_segments_are_rejected() {
    for path in [
        "/.", "/..", "/a/./b", "/a/../b", "/a/..", "/a/.", "/./", "/../",
    ] {
        check(path, None, Err(Ambiguous::DotSegment));
    }
}

#[test]
fn encoded_dot_segments_are_rejected() {
    for path in ["/%2E", "/%2e", "/%2E%2E", "/%2e%2E", "/.%2e/x", "/a/%2E/b"] {
        check(path, None, Err(Ambiguous::DotSegment));
    }
}

#[test]
fn dots_inside_segments_are_fine() {
    check("/...", None, Ok(("/...", "")));
    check("/.well-known/x", None, Ok(("/.well-known/x", "")));
    check("/a..b/file.json", None, Ok(("/a..b/file.json", "")));
    check("/%2E%2E%2E", None, Ok(("/...", "")));
}

#[test]
fn empty_segments_are_rejected() {
    for path in ["//", "//a", "/a//b", "/a//"] {
        check(path, None, Err(Ambiguous::EmptySegment));
    }
}

#[test]
fn malformed_escapes_are_rejected() {
    for path in ["/%", "/a%", "/%2", "/%G1", "/%1G", "/%%41", "/a%2/b"] {
        check(path, None, Err(Ambiguous::BadPercent));
    }
}

#[test]
fn backslash_is_rejected() {
    check("/a\\b", None, Err(Ambiguous::Backslash));
    check("\\a", None, Err(Ambiguous::NotOrigin));
}

#[test]
fn control_and_non_ascii_bytes_are_rejected() {
    for path in ["/a b", "/a\tb", "/a\nb", "/a\u{7f}", "/caf\u{e9}", "/\u{0}"] {
        check(path, None, Err(Ambiguous::ControlOrNonAscii));
    }
}

#[test]
fn percent_00_is_rejected() {
    check("/a%00", None, Err(Ambiguous::EncodedNul));
}

#[test]
fn only_origin_form_is_accepted() {
    for path in ["", "a/b", "*", "http://x/a", "/a?b", "/a#b"] {
        check(path, None, Err(Ambiguous::NotOrigin));
    }
}

#[test]
fn absent_and_empty_query_are_the_same() {
    check("/a", None, Ok(("/a", "")));
    check("/a", Some(""), Ok(("/a", "")));
    check("/a", Some("&&"), Ok(("/a", "")));
}

#[test]
fn query_pairs_are_sorted_by_name() {
    check("/a", Some("b=2&a=1"), Ok(("/a", "a=1&b=2")));
    check("/a", Some("z=&m=x&a=y"), Ok(("/a", "a=y&m=x&z=")));
}

#[test]
fn repeated_names_keep_their_order() {
    check("/a", Some("a=2&b=0&a=1"), Ok(("/a", "a=2&a=1&b=0")));
    check("/a", Some("a=1&a=2"), Ok(("/a", "a=1&a=2")));
    check("/a", Some("a=2&a=1"), Ok(("/a", "a=2&a=1")));
}

#[test]
fn empty_pieces_are_dropped() {
    check("/a", Some("&a=1&&b=2&"), Ok(("/a", "a=1&b=2")));
}

#[test]
fn name_alone_means_empty_value() {
    check("/a", Some("flag"), Ok(("/a", "flag=")));
    check("/a", Some("flag="), Ok(("/a", "flag=")));
}

#[test]
fn plus_and_percent_20_are_the_same() {
    check("/a", Some("q=a+b"), Ok(("/a", "q=a%20b")));
    check("/a", Some("q=a%20b"), Ok(("/a", "q=a%20b")));
    check("/a", Some("my+name=1"), Ok(("/a", "my%20name=1")));
}

#[test]
fn encoded_plus_stays_a_plus() {
    check("/a", Some("q=a%2Bb"), Ok(("/a", "q=a%2Bb")));
    check("/a", Some("q=a%2bb"), Ok(("/a", "q=a%2Bb")));
}

#[test]
fn reserved_query_characters_are_encoded() {
    check("/a", Some("t=10:30"), Ok(("/a", "t=10%3A30")));
    check("/a", Some("t=10%3a30"), Ok(("/a", "t=10%3A30")));
    check("/a", Some("a=b=c"), Ok(("/a", "a=b%3Dc")));
    check("/a", Some("a=1;b=2"), Ok(("/a", "a=1%3Bb%3D2")));
    check("/a", Some("p=/x/y"), Ok(("/a", "p=%2Fx%2Fy")));
}

#[test]
fn unreserved_query_escapes_are_decoded() {
    check("/a", Some("%61=%7E%2D"), Ok(("/a", "a=~-")));
}

#[test]
fn non_ascii_query_bytes_are_encoded() {
    check("/a", Some("q=caf\u{e9}"), Ok(("/a", "q=caf%C3%A9")));
    check("/a", Some("q=caf%c3%a9"), Ok(("/a", "q=caf%C3%A9")));
}

#[test]
fn malformed_query_escapes_are_rejected() {
    for query in ["a=%", "a=%2", "a=%G1", "%zz=1", "a=1&b=%"] {
        check("/a", Some(query), Err(Ambiguous::BadPercent));
    }
}

#[test]
fn sort_uses_the_encoded_name() {
    // `%20` sorts before letters once encoded, wherever the space came from.
    check("/a", Some("b=1&+=2"), Ok(("/a", "%20=2&b=1")));
    check("/a", Some("B=1&a=2"), Ok(("/a", "B=1&a=2")));
}

#[test]
fn canonical_input_is_borrowed() {
    let t = normalize("/api/faculty/", Some("a=1&b=%2F")).expect("valid target");
    assert!(matches!(t.path, Cow::Borrowed(_)));
    assert!(matches!(t.query, Cow::Borrowed(_)));
    let t = normalize("/a%7E", Some("b=1&a=1")).expect("valid target");
    assert!(matches!(t.path, Cow::Owned(_)));
    assert!(matches!(t.query, Cow::Owned(_)));
}

#[test]
fn path_and_query_joins_with_question_mark() {
    let t = normalize("/a", Some("b=1")).expect("valid target");
    assert_eq!(t.path_and_query(), "/a?b=1");
    let t = normalize("/a", Some("")).expect("valid target");
    assert_eq!(t.path_and_query(), "/a");
}

#[test]
fn ambiguous_labels_are_kebab_case() {
    let table = [
        (Ambiguous::NotOrigin, "not-origin"),
        (Ambiguous::DotSegment, "dot-segment"),
        (Ambiguous::EmptySegment, "empty-segment"),
        (Ambiguous::BadPercent, "bad-percent"),
        (Ambiguous::Backslash, "backslash"),
        (Ambiguous::ControlOrNonAscii, "control-or-non-ascii"),
        (Ambiguous::EncodedNul, "encoded-nul"),
    ];
    for (reason, label) in table {
        assert_eq!(reason.as_str(), label);
    }
}

// Key derivation.

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
            HeaderValue::from_str(value).expect("valid value"),
        );
    }
    map
}

fn names(list: &[&str]) -> Vec<HeaderName> {
    list.iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()).expect("valid name"))
        .collect()
}

/// Builds the key parts for a request and hands them to `f`.
struct Req {
    namespace: &'static str,
    version: u32,
    host: String,
    tenant: Option<String>,
    path: String,
    query: String,
    vary: Vec<HeaderName>,
    headers: HeaderMap,
}

impl Req {
    fn new() -> Self {
        Self {
            namespace: "cg",
            version: 1,
            host: "api.example.com".into(),
            tenant: Some("42".into()),
            path: "/api/faculty/".into(),
            query: "a=1&b=2".into(),
            vary: names(&["accept-language"]),
            headers: headers(&[("accept-language", "fr")]),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&KeyParts<'_>) -> T) -> T {
        let target = normalize(&self.path, Some(&self.query)).expect("valid target");
        let parts = KeyParts {
            namespace: self.namespace,
            version: self.version,
            host: &self.host,
            tenant: self.tenant.as_deref(),
            user: None,
            credential_key: &[7; 32],
            target: &target,
            vary: &self.vary,
            headers: &self.headers,
        };
        f(&parts)
    }

    fn digest(&self) -> Key {
        self.with(digest)
    }

    fn readable(&self) -> String {
        self.with(readable)
    }
}

/// Compares the digests of a base request and a changed one.
fn check_key(change: impl FnOnce(&mut Req), same: bool) {
    let base = Req::new();
    let mut changed = Req::new();
    change(&mut changed);
    assert_eq!(base.digest() == changed.digest(), same);
}

#[test]
fn host_case_trailing_dot_and_port_80_do_not_matter() {
    check_key(|r| r.host = "API.Example.COM".into(), true);
    check_key(|r| r.host = "api.example.com.".into(), true);
    check_key(|r| r.host = "api.example.com:80".into(), true);
    check_key(|r| r.host = "api.example.com:8080".into(), false);
    check_key(|r| r.host = "other.example.com".into(), false);
}

#[test]
fn every_field_is_keyed() {
    check_key(|r| r.namespace = "other", false);
    check_key(|r| r.version = 2, false);
    check_key(|r| r.tenant = Some("43".into()), false);
    check_key(|r| r.tenant = None, false);
    check_key(|r| r.path = "/api/faculty".into(), false);
    check_key(|r| r.query = "a=1".into(), false);
    check_key(|r| r.vary = Vec::new(), false);
    check_key(|r| r.headers = headers(&[("accept-language", "en")]), false);
}

#[test]
fn missing_and_empty_vary_header_differ() {
    check_key(|r| r.headers = HeaderMap::new(), false);
    let mut missing = Req::new();
    missing.headers = HeaderMap::new();
    let mut empty = Req::new();
    empty.headers = headers(&[("accept-language", "")]);
    assert_ne!(missing.digest(), empty.digest());
}

#[test]
fn vary_values_keep_their_order() {
    let mut a = Req::new();
    a.headers = headers(&[("accept-language", "fr"), ("accept-language", "en")]);
    let mut b = Req::new();
    b.headers = headers(&[("accept-language", "en"), ("accept-language", "fr")]);
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn unvaried_headers_are_not_keyed() {
    check_key(
        |r| {
            r.headers
                .insert("x-request-id", HeaderValue::from_static("1"));
        },
        true,
    );
}

#[test]
fn fields_do_not_collide_by_concatenation() {
    let mut a = Req::new();
    a.namespace = "cg";
    a.host = "xapi.example.com".into();
    let mut b = Req::new();
    b.namespace = "cgx";
    b.host = "api.example.com".into();
    assert_ne!(a.digest(), b.digest());
    let mut a = Req::new();
    a.tenant = Some("4".into());
    let mut b = Req::new();
    b.tenant = Some("42".into());
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn readable_shows_every_field() {
    assert_eq!(
        Req::new().readable(),
        r#"cg:v1 api.example.com t=42 GET /api/faculty/?a=1&b=2 accept-language="fr""#
    );
    let mut r = Req::new();
    r.tenant = None;
    r.host = "API.example.com:80".into();
    r.query = String::new();
    r.headers = HeaderMap::new();
    assert_eq!(
        r.readable(),
        "cg:v1 api.example.com GET /api/faculty/ accept-language=-"
    );
}

#[test]
fn readable_escapes_values() {
    let mut r = Req::new();
    r.headers = headers(&[
        ("accept-language", r#"fr "x" \ y"#),
        ("accept-language", ""),
    ]);
    assert_eq!(
        r.readable(),
        r#"cg:v1 api.example.com t=42 GET /api/faculty/?a=1&b=2 accept-language="fr \"x\" \\ y","""#
    );
}

#[test]
fn readable_hashes_credentials() {
    for name in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
        "x-auth-token",
        "x-client-secret",
        "x-session-id",
    ] {
        let mut r = Req::new();
        r.vary = names(&[name]);
        r.headers = headers(&[(name, "hunter2")]);
        // Keyed with the deployment's key, so the digest cannot be checked against guesses.
        let hash = blake3::keyed_hash(&[7; 32], b"hunter2").to_hex();
        assert_ne!(hash, blake3::hash(b"hunter2").to_hex());
        let line = r.readable();
        assert!(!line.contains("hunter2"), "{line}");
        assert!(
            line.ends_with(&format!(" {name}=#{}", &hash[..16])),
            "{line}"
        );
    }
}

#[test]
fn credential_headers_are_recognized() {
    for (name, secret) in [
        ("authorization", true),
        ("Cookie", true),
        ("x-csrftoken", true),
        ("accept-language", false),
        ("keep-alive", false),
        ("x-tenant-id", false),
    ] {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid name");
        assert_eq!(is_credential_header(&name), secret, "{name}");
    }
}

// Properties.

fn query_name() -> impl Strategy<Value = String> {
    "[a-z]{1,6}"
}

fn query_value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 +%/:=~._-]{0,8}".prop_map(|v| v.replace('%', "%25"))
}

fn raw_target() -> impl Strategy<Value = (String, String)> {
    // Escapes are generated whole (mostly well-formed) so that most targets normalize.
    (
        "(/([a-zA-Z0-9~._:@!$&'()*+,;=-]|%[0-9a-fA-F]{2}){1,8}){0,4}/?",
        "([a-zA-Z0-9=&+~._:/-]|%[0-9a-fA-F]{2}){0,24}",
    )
}

proptest! {
    #[test]
    fn permuting_distinct_query_names_keeps_the_digest(
        pairs in proptest::collection::btree_map(query_name(), query_value(), 0..6),
        seed in any::<u64>(),
    ) {
        let pieces: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let mut shuffled = pieces.clone();
        // A deterministic shuffle driven by the generated seed.
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (state >> 33) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        let mut a = Req::new();
        a.query = pieces.join("&");
        let mut b = Req::new();
        b.query = shuffled.join("&");
        prop_assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn changing_the_tenant_changes_the_digest(t1 in "[A-Za-z0-9._-]{1,64}", t2 in "[A-Za-z0-9._-]{1,64}") {
        prop_assume!(t1 != t2);
        let mut a = Req::new();
        a.tenant = Some(t1);
        let mut b = Req::new();
        b.tenant = Some(t2);
        prop_assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn normalize_is_idempotent((path, query) in raw_target()) {
        if let Ok(once) = normalize(&path, Some(&query)) {
            let twice = normalize(&once.path, Some(&once.query));
            prop_assert_eq!(twice.as_ref(), Ok(&once));
            let twice = twice.expect("checked above");
            prop_assert!(matches!(twice.path, Cow::Borrowed(_)));
            prop_assert!(matches!(twice.query, Cow::Borrowed(_)));
        }
    }

    #[test]
    fn any_single_field_change_changes_the_digest(
        field in 0usize..8,
        text in "[a-z0-9]{1,8}",
        n in 2u32..1000,
    ) {
        let base = Req::new();
        let mut other = Req::new();
        match field {
            0 => other.namespace = "other",
            1 => other.version = n,
            2 => other.host = format!("{text}.x.example.com"),
            3 => other.tenant = Some(format!("t-{text}")),
            4 => other.path = format!("/p/{text}"),
            5 => other.query = format!("z={text}"),
            6 => other.vary = names(&["accept-language", "x-extra"]),
            _ => other.headers = headers(&[("accept-language", &format!("x-{text}"))]),
        }
        prop_assert_ne!(base.digest(), other.digest());
    }
}

#[test]
fn the_user_is_part_of_the_key() {
    let r = Req::new();
    let target = normalize(&r.path, Some(&r.query)).unwrap();
    let parts = |user| KeyParts {
        namespace: r.namespace,
        version: r.version,
        host: &r.host,
        tenant: r.tenant.as_deref(),
        user,
        credential_key: &[7; 32],
        target: &target,
        vary: &r.vary,
        headers: &r.headers,
    };
    assert_ne!(digest(&parts(None)), digest(&parts(Some("alice"))));
    assert_ne!(digest(&parts(Some("alice"))), digest(&parts(Some("bob"))));
    // A user id cannot pose as a tenant: the fields are tagged and length-prefixed.
    let as_tenant = KeyParts {
        tenant: Some("alice"),
        user: None,
        ..parts(None)
    };
    let as_user = KeyParts {
        tenant: None,
        user: Some("alice"),
        ..parts(None)
    };
    assert_ne!(digest(&as_tenant), digest(&as_user));
    assert!(readable(&parts(Some("alice"))).contains(" u=alice "));
}

#[test]
fn lenient_paths_resolve_every_spelling() {
    for (raw, expected) in [
        ("/_cachegate/invalidate", "/_cachegate/invalidate"),
        ("/api/../_cachegate/invalidate", "/_cachegate/invalidate"),
        ("//_cachegate/invalidate", "/_cachegate/invalidate"),
        ("/./_cachegate/invalidate", "/_cachegate/invalidate"),
        ("/%5Fcachegate%2Finvalidate", "/_cachegate/invalidate"),
        ("/api%2F..%2F_cachegate/x", "/_cachegate/x"),
        ("\\_cachegate\\x", "/_cachegate/x"),
        ("/a/b/", "/a/b/"),
        ("/a/b/..", "/a/"),
    ] {
        assert_eq!(lenient_path(raw), expected, "{raw}");
    }
}

#[test]
fn a_keyed_accept_encoding_counts_by_bucket() {
    let with = |value: &str| {
        let mut r = Req::new();
        r.vary = names(&["accept-encoding"]);
        r.headers = headers(&[("accept-encoding", value)]);
        r
    };
    let browser = with("gzip, deflate, br");
    assert_eq!(browser.digest(), with("br;q=1, gzip;q=0.9").digest());
    assert_ne!(browser.digest(), with("gzip").digest());
    assert_eq!(with("gzip").digest(), with("x-gzip, deflate").digest());
    assert_ne!(with("gzip").digest(), with("identity").digest());
    assert!(browser.readable().ends_with(" accept-encoding=br"));
}
