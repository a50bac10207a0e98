//! Tests for request bypass, response storability and header filtering.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::*;

/// Header lines of one table case, in order.
type Pairs = &'static [(&'static str, &'static str)];

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

/// Runs the request checks on a GET or HEAD request description (other methods never reach
/// them: `Proxy::dispatch` forwards them as writes or as received).
fn check(pairs: &[(&str, &str)], tenant_keyed: bool, vary: &[&str], want: Option<Bypass>) {
    let headers = headers(pairs);
    let vary = names(vary);
    let facts = RequestFacts {
        headers: &headers,
        tenant_keyed,
        vary: &vary,
        request_cache_control: RequestCacheControl::Bypass,
    };
    assert_eq!(request_bypass(&facts), want, "{pairs:?}");
}

#[test]
fn a_plain_request_is_cacheable() {
    check(&[], false, &[], None);
}

#[test]
fn request_body_bypasses() {
    let table: &[(Pairs, Option<Bypass>)] = &[
        (&[("content-length", "0")], None),
        (&[("content-length", "12")], Some(Bypass::RequestBody)),
        (&[("content-length", "x")], Some(Bypass::RequestBody)),
        (
            &[("content-length", "0"), ("content-length", "3")],
            Some(Bypass::RequestBody),
        ),
        (
            &[("transfer-encoding", "chunked")],
            Some(Bypass::RequestBody),
        ),
        (
            &[("transfer-encoding", "identity")],
            Some(Bypass::RequestBody),
        ),
    ];
    for (pairs, want) in table {
        check(pairs, false, &[], *want);
    }
}

#[test]
fn request_cache_control_is_parsed() {
    let table: &[(Pairs, Option<Bypass>)] = &[
        (
            &[("cache-control", "no-store")],
            Some(Bypass::RequestNoStore),
        ),
        (
            &[("cache-control", "No-Store")],
            Some(Bypass::RequestNoStore),
        ),
        (
            &[("cache-control", "max-age=0, no-store")],
            Some(Bypass::RequestNoStore),
        ),
        (
            &[
                ("cache-control", "max-age=0"),
                ("cache-control", "no-store"),
            ],
            Some(Bypass::RequestNoStore),
        ),
        (
            &[("cache-control", "no-cache")],
            Some(Bypass::RequestNoCache),
        ),
        (
            &[("cache-control", " NO-CACHE ")],
            Some(Bypass::RequestNoCache),
        ),
        (
            &[("cache-control", "no-cache, no-store")],
            Some(Bypass::RequestNoStore),
        ),
        (&[("cache-control", "x=\"no-cache, no-store\"")], None),
        (&[("cache-control", "no-storex")], None),
        (&[("cache-control", "max-age=60")], None),
    ];
    for (pairs, want) in table {
        check(pairs, false, &[], *want);
    }
}

#[test]
fn pragma_counts_only_without_cache_control() {
    check(
        &[("pragma", "no-cache")],
        false,
        &[],
        Some(Bypass::RequestNoCache),
    );
    check(
        &[("pragma", "no-cache"), ("cache-control", "max-age=60")],
        false,
        &[],
        None,
    );
}

#[test]
fn credentials_bypass_unless_keyed() {
    let table: &[(&str, bool, &[&str], Option<Bypass>)] = &[
        ("authorization", false, &[], Some(Bypass::Credentials)),
        ("cookie", false, &[], Some(Bypass::Credentials)),
        ("authorization", true, &[], None),
        ("cookie", true, &[], None),
        ("authorization", false, &["authorization"], None),
        ("cookie", false, &["cookie"], None),
        (
            "cookie",
            false,
            &["authorization"],
            Some(Bypass::Credentials),
        ),
        ("x-api-key", false, &[], None),
    ];
    for (name, tenant_keyed, vary, want) in table {
        check(&[(name, "secret")], *tenant_keyed, vary, *want);
    }
}

#[test]
fn reasons_are_listed_in_index_order() {
    for (i, reason) in Bypass::ALL.iter().enumerate() {
        assert_eq!(reason.index(), i);
    }
    for (i, reason) in NotStored::ALL.iter().enumerate() {
        assert_eq!(reason.index(), i);
    }
}

#[test]
fn bypass_labels_are_kebab_case() {
    let table = [
        (Bypass::NoRoute, "no-route"),
        (Bypass::RouteNoCache, "route-no-cache"),
        (Bypass::RequestBody, "request-body"),
        (Bypass::NoTenant, "no-tenant"),
        (Bypass::InvalidTenant, "invalid-tenant"),
        (Bypass::AmbiguousPath, "ambiguous-path"),
        (Bypass::Credentials, "credentials"),
        (Bypass::RequestNoStore, "request-no-store"),
        (Bypass::RequestNoCache, "request-no-cache"),
        (Bypass::Precondition, "precondition"),
        (Bypass::OnlyIfCached, "only-if-cached"),
    ];
    for (reason, label) in table {
        assert_eq!(reason.as_str(), label);
    }
}

/// Runs the response checks with statuses 200/404 and 1000 bytes.
fn check_store(status: u16, pairs: &[(&str, &str)], want: Result<(), NotStored>) {
    let headers = headers(pairs);
    let rules = StoreRules {
        cacheable_statuses: &[200, 404],
        negative_statuses: &[],
        max_object_size: 1000,
    };
    let status = StatusCode::from_u16(status).expect("valid status");
    assert_eq!(
        response_storable(status, &headers, &rules),
        want,
        "{status} {pairs:?}"
    );
}

#[test]
fn listed_statuses_are_stored() {
    check_store(200, &[], Ok(()));
    check_store(404, &[], Ok(()));
    for status in [201, 206, 301, 500, 503] {
        check_store(status, &[], Err(NotStored::Status));
    }
}

#[test]
fn set_cookie_is_not_stored() {
    check_store(200, &[("set-cookie", "a=1")], Err(NotStored::SetCookie));
}

#[test]
fn response_cache_control_is_honoured() {
    let table: &[(&str, Result<(), NotStored>)] = &[
        ("private", Err(NotStored::Private)),
        ("Private", Err(NotStored::Private)),
        ("private=\"set-cookie, x-user\"", Err(NotStored::Private)),
        ("no-store", Err(NotStored::NoStore)),
        ("no-cache", Err(NotStored::NoCache)),
        ("no-cache=\"x-user\"", Err(NotStored::NoCache)),
        ("no-cache=x-user", Err(NotStored::NoCache)),
        ("no-store, private", Err(NotStored::Private)),
        ("no-cache, no-store", Err(NotStored::NoStore)),
        ("public, max-age=60", Ok(())),
        ("s-maxage=0", Ok(())),
        ("max-age=0", Ok(())),
        ("x=\"private, no-store\"", Ok(())),
    ];
    for (value, want) in table {
        check_store(200, &[("cache-control", value)], *want);
    }
}

#[test]
fn cache_control_spans_lines() {
    check_store(
        200,
        &[("cache-control", "public"), ("cache-control", "no-store")],
        Err(NotStored::NoStore),
    );
}

#[test]
fn content_length_is_bounded() {
    let table: &[(Pairs, Result<(), NotStored>)] = &[
        (&[], Ok(())),
        (&[("content-length", "1000")], Ok(())),
        (&[("content-length", "1001")], Err(NotStored::TooLarge)),
        (&[("content-length", "x")], Err(NotStored::InvalidLength)),
        (
            &[("content-length", "1"), ("content-length", "1")],
            Err(NotStored::InvalidLength),
        ),
    ];
    for (pairs, want) in table {
        check_store(200, pairs, *want);
    }
}

#[test]
fn not_stored_labels_are_kebab_case() {
    let table = [
        (NotStored::Status, "status"),
        (NotStored::SetCookie, "set-cookie"),
        (NotStored::Private, "private"),
        (NotStored::NoStore, "no-store"),
        (NotStored::NoCache, "no-cache"),
        (NotStored::VaryStar, "vary-star"),
        (NotStored::VaryCredential, "vary-credential"),
        (NotStored::VaryLimit, "vary-limit"),
        (NotStored::TooLarge, "too-large"),
        (NotStored::InvalidLength, "invalid-length"),
        (NotStored::Authorization, "authorization"),
        (NotStored::NoFreshness, "no-freshness"),
        (NotStored::Method, "method"),
        (NotStored::Encoding, "encoding"),
    ];
    for (reason, label) in table {
        assert_eq!(reason.as_str(), label);
    }
}

#[test]
fn hop_by_hop_names_are_known() {
    for (name, hop) in [
        ("connection", true),
        ("keep-alive", true),
        ("proxy-connection", true),
        ("te", true),
        ("trailer", true),
        ("transfer-encoding", true),
        ("upgrade", true),
        ("proxy-authenticate", true),
        ("proxy-authorization", true),
        ("content-length", false),
        ("authorization", false),
        ("trailers", false),
    ] {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid name");
        assert_eq!(is_hop_by_hop(&name), hop, "{name}");
    }
}

/// The sorted names left after a header filter.
fn left(map: &HeaderMap) -> Vec<String> {
    let mut out: Vec<String> = map.keys().map(|k| k.as_str().to_owned()).collect();
    out.sort();
    out
}

#[test]
fn strip_removes_hop_by_hop_and_connection_named() {
    let mut map = headers(&[
        ("connection", "close, X-Debug"),
        ("connection", "x-trace"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("te", "trailers"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "Basic x"),
        ("x-debug", "1"),
        ("x-trace", "2"),
        ("accept", "*/*"),
        ("authorization", "Bearer x"),
    ]);
    strip_hop_by_hop(&mut map);
    assert_eq!(left(&map), ["accept", "authorization"]);
}

#[test]
fn stored_headers_keep_end_to_end_only() {
    let map = headers(&[
        ("connection", "x-debug"),
        ("x-debug", "1"),
        ("transfer-encoding", "chunked"),
        ("set-cookie", "a=1"),
        ("age", "12"),
        ("date", "Tue, 01 Jul 2025 10:00:00 GMT"),
        ("content-type", "application/json"),
        ("link", "</a>"),
        ("link", "</b>"),
    ]);
    let stored = stored_headers(&map);
    assert_eq!(left(&stored), ["content-type", "date", "link"]);
    assert_eq!(stored.get_all("link").iter().count(), 2);
}

#[test]
fn list_items_honour_quotes_and_arguments() {
    let map = headers(&[
        ("cache-control", "max-age=60 , private=\"a, b\", ,no-cache"),
        ("cache-control", "x=\"q\\\"x\", =bad, s-maxage= 5,\"junk"),
    ]);
    let got: Vec<(String, Option<String>)> = list_items(&map, &CACHE_CONTROL)
        .map(|item| {
            (
                String::from_utf8_lossy(item.name).into_owned(),
                item.value.map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    let want: Vec<(String, Option<String>)> = [
        ("max-age", Some("60")),
        ("private", Some("a, b")),
        ("no-cache", None),
        ("x", Some("q\\\"x")),
        ("s-maxage", Some("5")),
        ("\"junk", None),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.map(str::to_owned)))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn negative_statuses_are_stored_besides_the_cacheable_ones() {
    let rules = StoreRules {
        cacheable_statuses: &[200],
        negative_statuses: &[404, 410],
        max_object_size: 1000,
    };
    let none = headers(&[]);
    for (status, want) in [
        (200, Ok(())),
        (404, Ok(())),
        (410, Ok(())),
        (403, Err(NotStored::Status)),
    ] {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(response_storable(status, &none, &rules), want, "{status}");
    }
    // The other rules still apply to them.
    let cookie = headers(&[("set-cookie", "a=b")]);
    assert_eq!(
        response_storable(StatusCode::NOT_FOUND, &cookie, &rules),
        Err(NotStored::SetCookie)
    );
}

fn check_mode(pairs: &[(&str, &str)], mode: RequestCacheControl, want: Option<Bypass>) {
    let headers = headers(pairs);
    let facts = RequestFacts {
        headers: &headers,
        tenant_keyed: false,
        vary: &[],
        request_cache_control: mode,
    };
    assert_eq!(request_bypass(&facts), want, "{pairs:?} {mode:?}");
}

#[test]
fn request_no_cache_passes_through_only_in_bypass_mode() {
    let no_cache = &[("cache-control", "no-cache")];
    check_mode(
        no_cache,
        RequestCacheControl::Bypass,
        Some(Bypass::RequestNoCache),
    );
    check_mode(no_cache, RequestCacheControl::Honor, None);
    check_mode(no_cache, RequestCacheControl::Ignore, None);
}

#[test]
fn s5_2_1_5_request_no_store_is_never_stored_in_any_mode() {
    for mode in [
        RequestCacheControl::Bypass,
        RequestCacheControl::Honor,
        RequestCacheControl::Ignore,
    ] {
        check_mode(
            &[("cache-control", "no-store")],
            mode,
            Some(Bypass::RequestNoStore),
        );
    }
}

#[test]
fn origin_preconditions_go_to_the_backend() {
    for pairs in [
        &[("if-match", "\"a\"")][..],
        &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")][..],
    ] {
        check_mode(
            pairs,
            RequestCacheControl::Bypass,
            Some(Bypass::Precondition),
        );
    }
    check_mode(
        &[("if-none-match", "\"a\"")],
        RequestCacheControl::Bypass,
        None,
    );
}
