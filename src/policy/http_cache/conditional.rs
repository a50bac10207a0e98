//! A client's preconditions evaluated against a stored response (RFC 9110 §13, RFC 9111
//! §4.3.2), and the `304` that answers them (RFC 9110 §15.4.5).
//!
//! Only `If-None-Match` and `If-Modified-Since` are evaluated here. A request with `If-Match`
//! or `If-Unmodified-Since` is never answered from the cache (`has_origin_preconditions`): it
//! goes to the backend as received.

use std::time::SystemTime;

use http::header::{
    CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, Method};

use super::etag::{self, TagList};
use super::{http_date, parse_http_date};

/// What the preconditions ask of a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// The client's copy is current: answer `304 Not Modified`.
    NotModified,
    /// No precondition, or none that holds: answer as usual.
    Proceed,
}

/// Preconditions only the origin server can judge: their presence sends the request there.
pub use crate::policy::cacheability::has_origin_preconditions;

/// RFC 9110 §13.2.2 steps 3 and 4 for a GET or HEAD answered from a stored response.
pub fn evaluate(method: &Method, request: &HeaderMap, stored: &HeaderMap) -> Evaluation {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Evaluation::Proceed;
    }
    if request.contains_key(IF_NONE_MATCH) {
        // §13.1.2: If-Modified-Since is ignored when If-None-Match is present.
        return if none_match_fails(request, stored) {
            Evaluation::NotModified
        } else {
            Evaluation::Proceed
        };
    }
    match if_modified_since(request) {
        Some(since) if !modified_since(stored, since) => Evaluation::NotModified,
        _ => Evaluation::Proceed,
    }
}

/// §13.1.2: the condition is false (so `304`) when `*` is sent and a representation exists, or
/// when a listed tag matches the stored `ETag` by weak comparison.
fn none_match_fails(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let current = stored.get(ETAG).and_then(|v| etag::parse(v.as_bytes()));
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .any(|line| match etag::parse_list(line.as_bytes()) {
            TagList::Any => true,
            TagList::Tags(tags) => current
                .as_ref()
                .is_some_and(|current| tags.iter().any(|t| t.weak_eq(current))),
        })
}

/// §13.1.3: a single valid HTTP-date, else the field is ignored.
fn if_modified_since(request: &HeaderMap) -> Option<SystemTime> {
    let mut lines = request.get_all(IF_MODIFIED_SINCE).iter();
    let line = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_http_date(line.as_bytes())
}

/// Whether the stored response changed after `since`: its `Last-Modified`, else its `Date`
/// (RFC 9111 §4.3.2); without either it counts as modified.
fn modified_since(stored: &HeaderMap, since: SystemTime) -> bool {
    match http_date(stored, &LAST_MODIFIED).or_else(|| http_date(stored, &DATE)) {
        Some(modified) => modified > since,
        None => true,
    }
}

/// The header fields a `304` carries from the stored response (RFC 9110 §15.4.5): those a
/// `200` would have had among `Cache-Control`, `Content-Location`, `Date`, `ETag`, `Expires`,
/// `Vary`, and `Last-Modified` (which guides caches when there is no `ETag`).
pub const NOT_MODIFIED_FIELDS: [HeaderName; 7] = [
    CACHE_CONTROL,
    CONTENT_LOCATION,
    DATE,
    ETAG,
    EXPIRES,
    VARY,
    LAST_MODIFIED,
];

/// The headers of a `304` answering from `stored`.
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(NOT_MODIFIED_FIELDS.len());
    for name in &NOT_MODIFIED_FIELDS {
        for value in stored.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{date, headers};
    use super::*;

    fn eval(method: Method, req: &[(&str, &str)], stored: &[(&str, &str)]) -> Evaluation {
        evaluate(&method, &headers(req), &headers(stored))
    }

    const STRONG: (&str, &str) = ("etag", "\"v1\"");
    const WEAK: (&str, &str) = ("etag", "W/\"v1\"");

    #[test]
    fn rfc9110_13_1_2_if_none_match_uses_weak_comparison() {
        for (req, stored) in [
            ("\"v1\"", STRONG),
            ("W/\"v1\"", STRONG),
            ("\"v1\"", WEAK),
            ("W/\"v1\"", WEAK),
        ] {
            assert_eq!(
                eval(Method::GET, &[("if-none-match", req)], &[stored]),
                Evaluation::NotModified,
                "{req} vs {stored:?}"
            );
        }
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "\"v2\"")], &[STRONG]),
            Evaluation::Proceed
        );
    }

    #[test]
    fn rfc9110_13_1_2_if_none_match_lists_and_star() {
        let lists = ["\"a\", \"v1\"", "\"a\",W/\"v1\""];
        for list in lists {
            assert_eq!(
                eval(Method::GET, &[("if-none-match", list)], &[STRONG]),
                Evaluation::NotModified,
                "{list}"
            );
        }
        let split = [("if-none-match", "\"a\""), ("if-none-match", "\"v1\"")];
        assert_eq!(
            eval(Method::GET, &split, &[STRONG]),
            Evaluation::NotModified
        );
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "*")], &[]),
            Evaluation::NotModified
        );
        // No stored ETag: only * matches.
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "\"v1\"")], &[]),
            Evaluation::Proceed
        );
    }

    #[test]
    fn rfc9110_13_1_2_if_none_match_only_for_get_and_head_here() {
        assert_eq!(
            eval(Method::HEAD, &[("if-none-match", "\"v1\"")], &[STRONG]),
            Evaluation::NotModified
        );
        assert_eq!(
            eval(Method::POST, &[("if-none-match", "\"v1\"")], &[STRONG]),
            Evaluation::Proceed
        );
    }

    #[test]
    fn rfc9110_13_1_3_if_modified_since_compares_last_modified() {
        let stored = [("last-modified", date(100))];
        let stored: Vec<(&str, &str)> = stored.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (since, want) in [
            (100, Evaluation::NotModified),
            (200, Evaluation::NotModified),
            (99, Evaluation::Proceed),
        ] {
            let d = date(since);
            assert_eq!(
                eval(Method::GET, &[("if-modified-since", &d)], &stored),
                want,
                "{since}"
            );
        }
    }

    #[test]
    fn rfc9110_13_1_3_if_modified_since_is_ignored_when_invalid_or_repeated() {
        let lm = date(100);
        let stored = [("last-modified", lm.as_str())];
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", "yesterday")], &stored),
            Evaluation::Proceed
        );
        let d = date(200);
        assert_eq!(
            eval(
                Method::GET,
                &[("if-modified-since", &d), ("if-modified-since", &d)],
                &stored
            ),
            Evaluation::Proceed
        );
    }

    #[test]
    fn rfc9110_13_1_3_if_modified_since_is_ignored_with_if_none_match() {
        let lm = date(100);
        let d = date(200);
        let stored = [("last-modified", lm.as_str()), STRONG];
        assert_eq!(
            eval(
                Method::GET,
                &[("if-none-match", "\"other\""), ("if-modified-since", &d)],
                &stored
            ),
            Evaluation::Proceed
        );
    }

    #[test]
    fn rfc9110_13_1_3_if_modified_since_only_for_get_and_head() {
        let lm = date(100);
        let d = date(200);
        let stored = [("last-modified", lm.as_str())];
        assert_eq!(
            eval(Method::OPTIONS, &[("if-modified-since", &d)], &stored),
            Evaluation::Proceed
        );
        assert_eq!(
            eval(Method::HEAD, &[("if-modified-since", &d)], &stored),
            Evaluation::NotModified
        );
    }

    #[test]
    fn s4_3_2_if_modified_since_falls_back_to_date_without_last_modified() {
        let stored_date = date(100);
        let stored = [("date", stored_date.as_str())];
        let d = date(150);
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", &d)], &stored),
            Evaluation::NotModified
        );
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", &d)], &[]),
            Evaluation::Proceed
        );
    }

    #[test]
    fn if_match_and_if_unmodified_since_belong_to_the_origin() {
        assert!(has_origin_preconditions(&headers(&[("if-match", "*")])));
        assert!(has_origin_preconditions(&headers(&[(
            "if-unmodified-since",
            "Sun, 06 Nov 1994 08:49:37 GMT"
        )])));
        assert!(!has_origin_preconditions(&headers(&[(
            "if-none-match",
            "*"
        )])));
    }

    #[test]
    fn rfc9110_15_4_5_not_modified_carries_the_listed_fields_only() {
        let lm = date(1);
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("content-location", "/a"),
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Sun, 06 Nov 1994 09:49:37 GMT"),
            ("vary", "accept"),
            ("last-modified", &lm),
            ("content-type", "application/json"),
            ("content-length", "12"),
            ("x-custom", "1"),
        ]);
        let out = not_modified_headers(&stored);
        assert_eq!(out.len(), 7);
        for name in ["content-type", "content-length", "x-custom"] {
            assert!(!out.contains_key(name), "{name}");
        }
        assert_eq!(out.get("etag").map(|v| v.as_bytes()), Some(&b"\"v1\""[..]));
    }
}
