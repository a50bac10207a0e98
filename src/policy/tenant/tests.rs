//! Tests for tenant extraction.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

/// A request with only the parts a case sets.
#[derive(Default)]
struct Req<'a> {
    headers: Vec<(&'a str, &'a [u8])>,
    host: Option<&'a str>,
    captures: Vec<(&'a str, &'a str)>,
    query: Option<&'a str>,
}

/// The expected outcome, owned so tables stay short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Shared,
    Id(&'static str),
    Missing,
    Invalid(InvalidTenant),
}

fn check(source: &TenantSource, req: Req<'_>, want: Want) {
    let mut headers = HeaderMap::new();
    for (name, value) in &req.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
            HeaderValue::from_bytes(value).expect("valid value"),
        );
    }
    let mut captures = Captures::new();
    for (name, value) in &req.captures {
        captures.push(name, value);
    }
    let inputs = TenantInputs {
        headers: &headers,
        host: req.host,
        captures: &captures,
        query: req.query,
    };
    let got = match extract(source, &inputs) {
        Tenant::Shared => Want::Shared,
        Tenant::Id(id) => return assert_eq!(Want::Id(leak(id)), want, "{source:?}"),
        Tenant::Missing => Want::Missing,
        Tenant::Invalid(e) => Want::Invalid(e),
    };
    assert_eq!(got, want, "{source:?}");
}

fn leak(id: Cow<'_, str>) -> &'static str {
    Box::leak(id.into_owned().into_boxed_str())
}

fn header_source() -> TenantSource {
    TenantSource::Header(HeaderName::from_static("x-tenant-id"))
}

fn with_header(value: &[u8]) -> Req<'_> {
    Req {
        headers: vec![("x-tenant-id", value)],
        ..Req::default()
    }
}

fn with_query(query: &str) -> Req<'_> {
    Req {
        query: Some(query),
        ..Req::default()
    }
}

fn with_host(host: &str) -> Req<'_> {
    Req {
        host: Some(host),
        ..Req::default()
    }
}

fn with_capture(value: &str) -> Req<'_> {
    Req {
        captures: vec![("org", value)],
        ..Req::default()
    }
}

use InvalidTenant::*;

#[test]
fn source_none_is_shared() {
    check(&TenantSource::None, with_header(b"acme"), Want::Shared);
}

#[test]
fn valid_header_is_the_tenant() {
    check(&header_source(), with_header(b"acme"), Want::Id("acme"));
    check(
        &header_source(),
        with_header(b"Acme-1.eu_2"),
        Want::Id("Acme-1.eu_2"),
    );
    let max = "a".repeat(MAX_TENANT_LEN);
    check(
        &header_source(),
        with_header(max.as_bytes()),
        Want::Id(leak(max.clone().into())),
    );
}

#[test]
fn missing_header_is_missing() {
    check(&header_source(), Req::default(), Want::Missing);
}

#[test]
fn header_rules_reject_bad_values() {
    let long = "a".repeat(MAX_TENANT_LEN + 1);
    let table: &[(&[u8], InvalidTenant)] = &[
        (b"", Empty),
        (b"a,b", List),
        (b"a, b", List),
        (b",", List),
        (long.as_bytes(), TooLong),
        (b"a b", BadChar),
        (b"a\tb", BadChar),
        (b"a/b", BadChar),
        (b"a%41", BadChar),
        (b"caf\xc3\xa9", BadChar),
        (b"\"acme\"", BadChar),
    ];
    for (value, reason) in table {
        check(&header_source(), with_header(value), Want::Invalid(*reason));
    }
}

#[test]
fn repeated_header_is_invalid() {
    let req = Req {
        headers: vec![("x-tenant-id", b"acme"), ("x-tenant-id", b"acme")],
        ..Req::default()
    };
    check(&header_source(), req, Want::Invalid(Repeated));
}

#[test]
fn valid_header_is_borrowed() {
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant-id", HeaderValue::from_static("acme"));
    let captures = Captures::new();
    let inputs = TenantInputs {
        headers: &headers,
        host: None,
        captures: &captures,
        query: None,
    };
    assert!(matches!(
        extract(&header_source(), &inputs),
        Tenant::Id(Cow::Borrowed("acme"))
    ));
}

#[test]
fn path_capture_is_the_tenant() {
    let source = TenantSource::Path("org".into());
    check(&source, with_capture("acme"), Want::Id("acme"));
    check(&source, with_capture("%61cme"), Want::Id("acme"));
    check(&source, with_capture("a+b"), Want::Invalid(BadChar));
    check(&source, with_capture("a%2Cb"), Want::Invalid(List));
    check(&source, with_capture("a%2Fb"), Want::Invalid(BadChar));
    check(&source, with_capture("a%2"), Want::Invalid(BadPercent));
    check(&source, with_capture(""), Want::Invalid(Empty));
}

#[test]
fn missing_capture_is_missing() {
    check(
        &TenantSource::Path("other".into()),
        with_capture("acme"),
        Want::Missing,
    );
}

#[test]
fn query_param_is_the_tenant() {
    let source = TenantSource::Query("org".into());
    let table: &[(&str, Want)] = &[
        ("org=acme", Want::Id("acme")),
        ("a=1&org=acme&b=2", Want::Id("acme")),
        ("org=%61cme", Want::Id("acme")),
        ("%6Frg=acme", Want::Id("acme")),
        ("org=a+b", Want::Invalid(BadChar)),
        ("org=a%20b", Want::Invalid(BadChar)),
        ("org=a,b", Want::Invalid(List)),
        ("org=a%2Cb", Want::Invalid(List)),
        ("org=%", Want::Invalid(BadPercent)),
        ("org=", Want::Invalid(Empty)),
        ("org", Want::Invalid(Empty)),
        ("org=1&org=2", Want::Invalid(Repeated)),
        ("org=1&%6Frg=1", Want::Invalid(Repeated)),
        ("organization=acme", Want::Missing),
        ("or+g=acme", Want::Missing),
        ("a=org", Want::Missing),
        ("", Want::Missing),
    ];
    for &(query, want) in table {
        check(&source, with_query(query), want);
    }
}

#[test]
fn absent_query_is_missing() {
    check(
        &TenantSource::Query("org".into()),
        Req::default(),
        Want::Missing,
    );
}

#[test]
fn host_first_label_is_the_tenant() {
    let table: &[(&str, Want)] = &[
        ("acme.api.example.com", Want::Id("acme")),
        ("ACME.api.example.com", Want::Id("acme")),
        ("acme.api.example.com:8443", Want::Id("acme")),
        ("acme.api.example.com.", Want::Id("acme")),
        ("acme-eu.api.example.com", Want::Id("acme-eu")),
        ("example.com", Want::Missing),
        ("localhost", Want::Missing),
        ("localhost:8080", Want::Missing),
        ("10.0.0.1", Want::Missing),
        ("10.0.0.1:8080", Want::Missing),
        ("[::1]", Want::Missing),
        ("[::1]:8080", Want::Missing),
        ("", Want::Missing),
        (".api.example.com", Want::Invalid(Empty)),
        ("ac_me!.api.example.com", Want::Invalid(BadChar)),
    ];
    for &(host, want) in table {
        check(&TenantSource::Host, with_host(host), want);
    }
}

#[test]
fn absent_host_is_missing() {
    check(&TenantSource::Host, Req::default(), Want::Missing);
}

#[test]
fn invalid_labels_are_kebab_case() {
    let table = [
        (Repeated, "repeated"),
        (List, "list"),
        (TooLong, "too-long"),
        (BadChar, "bad-char"),
        (Empty, "empty"),
        (BadPercent, "bad-percent"),
    ];
    for (reason, label) in table {
        assert_eq!(reason.as_str(), label);
    }
}
