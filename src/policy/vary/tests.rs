use super::*;
use http::HeaderValue;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn names(list: &[&str]) -> Vec<HeaderName> {
    list.iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
        .collect()
}

fn rules<'a>(keyed: &'a [HeaderName], scope: Scope, declared: bool, user: bool) -> VaryRules<'a> {
    VaryRules {
        keyed,
        scope,
        scope_declared: declared,
        user_known: user,
    }
}

/// One case: response headers and the route's rule give a selection or a refusal.
fn check(
    response: &[(&str, &str)],
    rules: &VaryRules<'_>,
    want: Result<(&[&str], bool), NotStored>,
) {
    let got = selection(&headers(response), rules);
    let want = want.map(|(h, by_user)| Selection {
        headers: names(h),
        by_user,
    });
    assert_eq!(got, want, "response {response:?}");
}

#[test]
fn vary_names_become_sorted_selecting_headers() {
    let keyed = names(&["x-org-id"]);
    let r = rules(&keyed, Scope::Tenant, true, false);
    check(&[], &r, Ok((&[], false)));
    check(&[("vary", "Accept")], &r, Ok((&["accept"], false)));
    check(
        &[("vary", "Origin, accept"), ("vary", "ACCEPT")],
        &r,
        Ok((&["accept", "origin"], false)),
    );
}

#[test]
fn headers_the_key_covers_select_nothing_more() {
    let keyed = names(&["x-org-id", "accept-language"]);
    let r = rules(&keyed, Scope::Tenant, true, false);
    check(
        &[("vary", "X-Org-Id, Accept-Language")],
        &r,
        Ok((&[], false)),
    );
}

#[test]
fn vary_star_is_never_stored() {
    let r = rules(&[], Scope::Public, true, false);
    check(&[("vary", "accept, *")], &r, Err(NotStored::VaryStar));
}

#[test]
fn accept_encoding_selects_when_named_or_encoded() {
    let r = rules(&[], Scope::Public, true, false);
    // Named: each bucket (at most three) has its own variant, an unencoded one too, so the
    // identity answer of a compressing backend never stands in for its compressed ones.
    check(
        &[("vary", "Accept-Encoding")],
        &r,
        Ok((&["accept-encoding"], false)),
    );
    check(
        &[("vary", "Accept-Encoding"), ("content-encoding", "gzip")],
        &r,
        Ok((&["accept-encoding"], false)),
    );
    // An encoded body the origin forgot to declare still selects on Accept-Encoding.
    check(
        &[("content-encoding", "br")],
        &r,
        Ok((&["accept-encoding"], false)),
    );
    // Neither: one answer for every client.
    check(&[("content-type", "text/html")], &r, Ok((&[], false)));
}

#[test]
fn accept_encoding_variants_are_keyed_by_bucket() {
    let sel = Selection {
        headers: names(&["accept-encoding"]),
        by_user: false,
    };
    let primary = Key([3; 32]);
    let key = |value: Option<&str>| {
        let req = match value {
            Some(v) => headers(&[("accept-encoding", v)]),
            None => headers(&[]),
        };
        variant_key(&primary, &sel, &req, None)
    };
    let browsers = [
        "gzip, deflate, br, zstd",
        "gzip, deflate, br",
        "br;q=1.0, gzip;q=0.8, *;q=0.1",
        "*",
        " BR , GZIP ",
    ];
    for b in browsers {
        assert_eq!(key(Some(b)), key(Some("br, gzip")), "{b}");
    }
    for g in ["gzip", "gzip, deflate", "x-gzip", "gzip;q=0.5, br;q=0"] {
        assert_eq!(key(Some(g)), key(Some("gzip")), "{g}");
    }
    for i in ["identity", "", "deflate", "br", "gzip;q=0"] {
        assert_eq!(key(Some(i)), key(None), "{i}");
    }
    let distinct: std::collections::HashSet<Key> = [Some("br, gzip"), Some("gzip"), None]
        .into_iter()
        .map(key)
        .collect();
    assert_eq!(distinct.len(), 3);
    // A key computed from the fill's canonical header equals the client's.
    for b in browsers {
        let client = headers(&[("accept-encoding", b)]);
        let sent = fill_headers(
            &client,
            &FillRules {
                keyed: &[],
                selected: &[],
                credentials: false,
            },
        );
        assert_eq!(variant_key(&primary, &sel, &sent, None), key(Some(b)));
    }
    let gzip = headers(&[("accept-encoding", "gzip, deflate")]);
    assert_eq!(
        normalised_value(&gzip, &ACCEPT_ENCODING).as_deref(),
        Some("gzip")
    );
}

#[test]
fn fills_send_the_canonical_accept_encoding_of_the_bucket() {
    let rules = FillRules {
        keyed: &[],
        selected: &[],
        credentials: false,
    };
    for (client, sent) in [
        (Some("gzip, deflate, br, zstd"), "br, gzip"),
        (Some("gzip;q=1.0, identity; q=0.5, *;q=0"), "gzip"),
        (Some("deflate"), "identity"),
        (None, "identity"),
    ] {
        let request = match client {
            Some(v) => headers(&[("accept-encoding", v), ("accept", "application/json")]),
            None => headers(&[("accept", "application/json")]),
        };
        let out = fill_headers(&request, &rules);
        let values: Vec<_> = out.get_all(ACCEPT_ENCODING).iter().collect();
        assert_eq!(values, [sent], "{client:?}");
        assert_eq!(out[ACCEPT], "application/json");
    }
}

#[test]
fn credentials_in_vary_are_shared_only_where_the_scope_is_declared() {
    let cases = [
        (Scope::Tenant, true, false, Ok((&[][..], false))),
        (Scope::Public, true, false, Ok((&[][..], false))),
        (Scope::User, false, true, Ok((&[][..], false))),
        (Scope::Tenant, false, true, Ok((&[][..], true))),
        (Scope::Tenant, false, false, Err(NotStored::VaryCredential)),
        (Scope::Public, false, false, Err(NotStored::VaryCredential)),
    ];
    for (scope, declared, user, want) in cases {
        let r = rules(&[], scope, declared, user);
        check(
            &[("vary", "Accept, Cookie")],
            &r,
            want.map(|(_, u)| (&["accept"][..], u)),
        );
        check(&[("vary", "Authorization")], &r, want);
    }
}

fn key_of(request: &[(&str, &str)], selecting: &[&str], user: Option<&str>, by_user: bool) -> Key {
    let sel = Selection {
        headers: names(selecting),
        by_user,
    };
    variant_key(&Key([7; 32]), &sel, &headers(request), user)
}

#[test]
fn equal_values_after_normalising_share_a_variant() {
    let a = key_of(
        &[("accept", "application/json; q=1,  text/html")],
        &["accept"],
        None,
        false,
    );
    let b = key_of(
        &[("accept", "  Application/JSON;q=1 ,text/html ")],
        &["accept"],
        None,
        false,
    );
    let c = key_of(
        &[("accept", "application/json;q=1"), ("accept", "text/html")],
        &["accept"],
        None,
        false,
    );
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(
        normalised_value(
            &headers(&[("accept", " Text/HTML ,  application/json ")]),
            &ACCEPT
        )
        .as_deref(),
        Some("text/html,application/json")
    );
}

#[test]
fn different_values_select_different_variants() {
    let json = key_of(&[("accept", "application/json")], &["accept"], None, false);
    let html = key_of(&[("accept", "text/html")], &["accept"], None, false);
    let none = key_of(&[], &["accept"], None, false);
    let empty = key_of(&[("accept", "")], &["accept"], None, false);
    assert_ne!(json, html);
    assert_ne!(none, empty, "a missing header is not an empty one");
    assert_ne!(none, json);
    // Values of case-sensitive headers are not folded.
    let upper = key_of(&[("x-flavour", "A")], &["x-flavour"], None, false);
    let lower = key_of(&[("x-flavour", "a")], &["x-flavour"], None, false);
    assert_ne!(upper, lower);
    // Inner whitespace is kept (collapsed), not removed.
    let spaced = key_of(&[("x-flavour", "a b")], &["x-flavour"], None, false);
    let joined = key_of(&[("x-flavour", "ab")], &["x-flavour"], None, false);
    assert_ne!(spaced, joined);
}

#[test]
fn per_caller_variants_are_keyed_by_the_verified_user() {
    let alice = key_of(&[], &[], Some("alice"), true);
    let bob = key_of(&[], &[], Some("bob"), true);
    let shared = key_of(&[], &[], Some("alice"), false);
    assert_ne!(alice, bob);
    assert_ne!(alice, shared);
}

#[test]
fn variants_of_different_primary_keys_differ() {
    let sel = Selection {
        headers: names(&["accept"]),
        by_user: false,
    };
    let req = headers(&[("accept", "text/html")]);
    assert_ne!(
        variant_key(&Key([1; 32]), &sel, &req, None),
        variant_key(&Key([2; 32]), &sel, &req, None)
    );
}

/// One case: which request headers a fill forwards.
fn check_fill(rules: &FillRules<'_>, forwarded: &[&str], dropped: &[&str]) {
    for name in forwarded {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        assert!(fill_header(&name, rules), "{name} should be forwarded");
    }
    for name in dropped {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        assert!(!fill_header(&name, rules), "{name} should be dropped");
    }
}

const OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "front-end-https",
    "x-original-method",
];

const CONDITIONALS: &[&str] = &[
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

#[test]
fn fills_drop_what_the_key_does_not_account_for() {
    let keyed = names(&["x-org-id"]);
    let rules = FillRules {
        keyed: &keyed,
        selected: &[],
        credentials: true,
    };
    check_fill(
        &rules,
        &[
            "accept",
            "accept-language",
            "accept-encoding",
            "user-agent",
            "x-request-id",
            "traceparent",
            "x-org-id",
            "authorization",
            "cookie",
        ],
        OVERRIDES,
    );
    check_fill(&rules, &[], CONDITIONALS);
    check_fill(&rules, &[], &["x-debug", "x-tenant-override", "prefer"]);
}

#[test]
fn selected_and_forwarded_headers_go_with_the_fill() {
    let keyed = names(&["x-api-version"]);
    let selected = names(&["origin"]);
    let rules = FillRules {
        keyed: &keyed,
        selected: &selected,
        credentials: false,
    };
    check_fill(&rules, &["x-api-version", "origin"], &["x-debug"]);
}

#[test]
fn public_fills_carry_no_credential() {
    let rules = FillRules {
        keyed: &[],
        selected: &[],
        credentials: false,
    };
    check_fill(&rules, &["accept"], &["authorization", "cookie"]);
    // Unless the route keys the credential itself.
    let keyed = names(&["authorization"]);
    let rules = FillRules {
        keyed: &keyed,
        selected: &[],
        credentials: false,
    };
    check_fill(&rules, &["authorization"], &["cookie"]);
}

#[test]
fn fill_headers_keeps_every_value_of_an_allowed_header() {
    let request = headers(&[
        ("accept", "text/html"),
        ("accept", "application/json"),
        ("if-none-match", "\"x\""),
        ("x-http-method-override", "DELETE"),
    ]);
    let rules = FillRules {
        keyed: &[],
        selected: &[],
        credentials: true,
    };
    let out = fill_headers(&request, &rules);
    assert_eq!(out.get_all(ACCEPT).iter().count(), 2);
    // And the Accept-Encoding every fill sends.
    assert_eq!(out.len(), 3);
}

#[test]
fn forwarding_headers_cachegate_sets_select_nothing_or_are_not_stored() {
    let r = rules(&[], Scope::Tenant, true, false);
    check(
        &[("vary", "Accept, Host, X-Forwarded-Host, X-Forwarded-Proto")],
        &r,
        Ok((&["accept"], false)),
    );
    check(
        &[("vary", "Accept, X-Forwarded-For")],
        &r,
        Err(NotStored::VaryStar),
    );
    check(&[("vary", "forwarded")], &r, Err(NotStored::VaryStar));
}

#[test]
fn a_vary_longer_than_the_bound_is_not_stored() {
    let r = rules(&[], Scope::Public, true, false);
    let many: Vec<String> = (0..=MAX_SELECTING).map(|i| format!("x-h{i}")).collect();
    let list = many.join(", ");
    check(&[("vary", &list)], &r, Err(NotStored::VaryLimit));
    let enough = many[..MAX_SELECTING].join(", ");
    let got = selection(&headers(&[("vary", &enough)]), &r).unwrap();
    assert_eq!(got.headers.len(), MAX_SELECTING);
}

#[test]
fn origin_goes_with_fills_for_cors() {
    let rules = FillRules {
        keyed: &[],
        selected: &[],
        credentials: false,
    };
    check_fill(&rules, &["origin"], &[]);
}
