//! `Range` requests answered from a stored full response (RFC 9110 §14).
//!
//! cachegate answers a single byte range from a stored `200` (`206` with `Content-Range`, or
//! `416` when it cannot be satisfied) and serves the full `200` for several ranges, which a
//! server may always do (§14.2). Fills never forward `Range`: entries are always whole.

use std::time::Duration;

use http::header::{DATE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::etag;
use super::{http_date, parse_http_date};

/// How a stored response answers a request's `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No usable range: the full response.
    Full,
    /// `206`: bytes `start..=end` of the body.
    Partial { start: u64, end: u64 },
    /// `416`: no byte of the range exists.
    Unsatisfiable,
}

/// One `first-last`, `first-` or `-suffix` member.
enum Spec {
    From(u64, Option<u64>),
    Suffix(u64),
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn spec(s: &[u8]) -> Option<Spec> {
    let dash = s.iter().position(|&b| b == b'-')?;
    let (first, last) = (&s[..dash], &s[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(number(last)?));
    }
    let first = number(first)?;
    if last.is_empty() {
        return Some(Spec::From(first, None));
    }
    let last = number(last)?;
    // §14.1.1: first > last makes the range-spec invalid (the field is then ignored).
    (first <= last).then_some(Spec::From(first, Some(last)))
}

/// §13.1.5: the representation the `If-Range` names is the stored one: its strong `ETag`, or
/// exactly its `Last-Modified`, when that date is strong (at least a second before `Date`).
fn if_range_holds(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let Some(value) = request.get(IF_RANGE) else {
        return true;
    };
    let bytes = value.as_bytes();
    if bytes.trim_ascii_start().starts_with(b"\"") || bytes.trim_ascii_start().starts_with(b"W/") {
        let current = stored.get(ETAG).and_then(|v| etag::parse(v.as_bytes()));
        return match (etag::parse(bytes), current) {
            (Some(sent), Some(current)) => sent.strong_eq(&current),
            _ => false,
        };
    }
    let (Some(sent), Some(modified)) = (parse_http_date(bytes), http_date(stored, &LAST_MODIFIED))
    else {
        return false;
    };
    let strong =
        http_date(stored, &DATE).is_some_and(|date| date >= modified + Duration::from_secs(1));
    strong && sent == modified
}

/// The range of a stored `status` response of `len` bytes a request asks for.
pub fn evaluate(
    method: &Method,
    request: &HeaderMap,
    stored_status: StatusCode,
    stored: &HeaderMap,
    len: u64,
) -> Ranged {
    // §14.2: GET only; a server may ignore Range, and does for anything but a full 200.
    if *method != Method::GET || stored_status != StatusCode::OK {
        return Ranged::Full;
    }
    let mut lines = request.get_all(RANGE).iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Ranged::Full;
    };
    if !if_range_holds(request, stored) {
        return Ranged::Full;
    }
    let text = line.as_bytes().trim_ascii();
    let Some(eq) = text.iter().position(|&b| b == b'=') else {
        return Ranged::Full;
    };
    if !text[..eq].trim_ascii().eq_ignore_ascii_case(b"bytes") {
        return Ranged::Full;
    }
    let mut specs = Vec::new();
    for member in text[eq + 1..].split(|&b| b == b',') {
        let member = member.trim_ascii();
        if member.is_empty() {
            continue;
        }
        match spec(member) {
            Some(s) => specs.push(s),
            None => return Ranged::Full,
        }
    }
    match specs.as_slice() {
        [Spec::From(first, last)] => {
            if *first >= len {
                return Ranged::Unsatisfiable;
            }
            let end = last.map_or(len - 1, |l| l.min(len - 1));
            Ranged::Partial { start: *first, end }
        }
        [Spec::Suffix(n)] => {
            if *n == 0 || len == 0 {
                return Ranged::Unsatisfiable;
            }
            Ranged::Partial {
                start: len.saturating_sub(*n),
                end: len - 1,
            }
        }
        // Several ranges: the whole representation (§14.2 allows ignoring Range).
        _ => Ranged::Full,
    }
}

/// `Content-Range` of a `206`: `bytes start-end/len`.
pub fn content_range(start: u64, end: u64, len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
        .unwrap_or(HeaderValue::from_static("bytes */0"))
}

/// `Content-Range` of a `416`: `bytes */len` (RFC 9110 §15.5.17).
pub fn unsatisfiable_range(len: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes */{len}"))
        .unwrap_or(HeaderValue::from_static("bytes */0"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{date, headers};
    use super::*;

    fn eval(req: &[(&str, &str)], stored: &[(&str, &str)], len: u64) -> Ranged {
        evaluate(
            &Method::GET,
            &headers(req),
            StatusCode::OK,
            &headers(stored),
            len,
        )
    }

    fn part(start: u64, end: u64) -> Ranged {
        Ranged::Partial { start, end }
    }

    #[test]
    fn rfc9110_14_1_2_single_byte_ranges() {
        for (range, want) in [
            ("bytes=0-9", part(0, 9)),
            ("bytes=5-", part(5, 99)),
            ("bytes=-10", part(90, 99)),
            ("bytes=-500", part(0, 99)),
            ("bytes=90-500", part(90, 99)),
            ("BYTES = 1-1", part(1, 1)),
        ] {
            assert_eq!(eval(&[("range", range)], &[], 100), want, "{range}");
        }
    }

    #[test]
    fn rfc9110_15_5_17_unsatisfiable_ranges() {
        for range in ["bytes=100-", "bytes=200-300", "bytes=-0"] {
            assert_eq!(
                eval(&[("range", range)], &[], 100),
                Ranged::Unsatisfiable,
                "{range}"
            );
        }
        assert_eq!(
            eval(&[("range", "bytes=0-")], &[], 0),
            Ranged::Unsatisfiable
        );
    }

    #[test]
    fn rfc9110_14_2_invalid_or_multiple_ranges_get_the_full_response() {
        for range in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes",
            "bytes=0-1,5-6",
            "bytes=0-1, -1",
        ] {
            assert_eq!(eval(&[("range", range)], &[], 100), Ranged::Full, "{range}");
        }
        assert_eq!(eval(&[], &[], 100), Ranged::Full);
    }

    #[test]
    fn rfc9110_14_2_range_is_ignored_for_other_methods_and_statuses() {
        let req = headers(&[("range", "bytes=0-1")]);
        let stored = HeaderMap::new();
        assert_eq!(
            evaluate(&Method::HEAD, &req, StatusCode::OK, &stored, 10),
            Ranged::Full
        );
        assert_eq!(
            evaluate(&Method::GET, &req, StatusCode::NOT_FOUND, &stored, 10),
            Ranged::Full
        );
    }

    #[test]
    fn rfc9110_13_1_5_if_range_with_a_strong_etag() {
        let stored = [("etag", "\"v1\"")];
        assert_eq!(
            eval(
                &[("range", "bytes=0-1"), ("if-range", "\"v1\"")],
                &stored,
                10
            ),
            part(0, 1)
        );
        assert_eq!(
            eval(
                &[("range", "bytes=0-1"), ("if-range", "\"v2\"")],
                &stored,
                10
            ),
            Ranged::Full
        );
        // Weak tags never match in If-Range.
        let weak = [("etag", "W/\"v1\"")];
        assert_eq!(
            eval(
                &[("range", "bytes=0-1"), ("if-range", "W/\"v1\"")],
                &weak,
                10
            ),
            Ranged::Full
        );
    }

    #[test]
    fn rfc9110_13_1_5_if_range_with_a_date() {
        let (lm, later) = (date(100), date(200));
        let stored = [("last-modified", lm.as_str()), ("date", later.as_str())];
        assert_eq!(
            eval(&[("range", "bytes=0-1"), ("if-range", &lm)], &stored, 10),
            part(0, 1)
        );
        assert_eq!(
            eval(&[("range", "bytes=0-1"), ("if-range", &later)], &stored, 10),
            Ranged::Full
        );
        // A Last-Modified equal to Date is weak: no range.
        let weak = [("last-modified", lm.as_str()), ("date", lm.as_str())];
        assert_eq!(
            eval(&[("range", "bytes=0-1"), ("if-range", &lm)], &weak, 10),
            Ranged::Full
        );
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(0, 9, 100), "bytes 0-9/100");
        assert_eq!(unsatisfiable_range(100), "bytes */100");
    }
}
