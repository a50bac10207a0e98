//! HTTP caching as RFC 9111 and RFC 9110 §13 define it for a shared cache: pure functions of
//! header maps and instants, used by the honour-origin mode (`honor_origin = true`) and by the
//! answers cachegate gives from stored entries (conditional requests, ranges) in every mode.
//!
//! - [`directives`]: `Cache-Control` (and `Pragma`) read into response and request directives.
//! - [`freshness`]: freshness lifetime (§4.2.1), heuristic freshness (§4.2.2), age (§4.2.3),
//!   whether a stale response may be served (§4.2.4).
//! - [`storable`]: whether a response may be stored (§3, §3.5, §4.1 `Vary: *`).
//! - [`request`]: the request directives a client sends (§5.2.1), honoured or not per route.
//! - [`validate`]: the validators a revalidation sends (§4.3.1) and how a `304` updates a stored
//!   response (§3.2, §4.3.4).
//! - [`conditional`]: a client's preconditions against a stored response (RFC 9110 §13) and
//!   the `304` headers (RFC 9110 §15.4.5).
//! - [`range`]: a `Range` request answered from a stored full response (RFC 9110 §14).
//! - [`etag`]: entity tags: parsing, weak and strong comparison, a digest tag for bodies the
//!   backend sent none for.
//! - [`invalidate`]: which methods and responses invalidate what (§4.4).
//!
//! Times are `SystemTime` values passed in; nothing here reads a clock. The list of the RFC's
//! requirements and the test covering each is in docs/http-caching.md.

pub mod conditional;
pub mod directives;
pub mod etag;
pub mod freshness;
pub mod invalidate;
pub mod range;
pub mod request;
pub mod storable;
pub mod validate;

use std::time::SystemTime;

use http::{HeaderMap, HeaderName, Method, StatusCode};

use crate::policy::cacheability::{self, NotStored, StoreRules};

pub use request::RequestCacheControl;

/// A route's HTTP caching switches (`honor_origin`, `request_cache_control`, `etag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    /// True: the origin's `Cache-Control`, `Expires`, `Age` and `Vary` decide what is stored
    /// and for how long (RFC 9111). False: the route's TTL rules.
    pub honor_origin: bool,
    /// What the request's own `Cache-Control` does.
    pub request_cache_control: RequestCacheControl,
    /// Where a stored response's `ETag` comes from.
    pub etag: EtagRule,
}

/// The route key `etag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EtagRule {
    /// Only the backend's own `ETag` (the default).
    #[default]
    Origin,
    /// A strong `ETag` from the body's digest when the backend sends none.
    Digest,
}

/// Whether a fill's response may be stored: the route-TTL rules
/// (`cacheability::response_storable`), or in honour-origin mode RFC 9111 §3 (`storable`), with
/// the size bound either way. `authorization`: the fill request carried `Authorization`.
pub fn response_storable(
    rules: &Rules,
    status: StatusCode,
    headers: &HeaderMap,
    store: &StoreRules<'_>,
    authorization: bool,
) -> Result<storable::Storable, NotStored> {
    if !rules.honor_origin {
        cacheability::response_storable(status, headers, store)?;
        return Ok(storable::Storable::default());
    }
    let d = directives::response(headers);
    let decided = storable::storable(&storable::Exchange {
        method: &Method::GET,
        authorization,
        status,
        headers,
        directives: &d,
    })?;
    cacheability::check_length(headers, store.max_object_size)?;
    Ok(decided)
}

/// What the origin says about a response's freshness, as [`crate::policy::freshness::lifetimes`]
/// takes it, and the instant the response's age counts from. In route mode: the RFC 5861
/// windows and `must-revalidate` / `proxy-revalidate` only (the route's TTL rules), counted
/// from its arrival. In honour-origin mode also its freshness lifetime (§4.2.1), counted from
/// its arrival less the age it arrived with (§4.2.3), `no-cache` (§5.2.2.4), and every
/// directive that forbids serving it stale (§4.2.4: `must-revalidate`, `proxy-revalidate`,
/// `s-maxage`, `no-cache`), which closes its stale windows.
pub fn origin_says(
    rules: &Rules,
    status: StatusCode,
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> (SystemTime, crate::policy::freshness::OriginSays) {
    let mut says = crate::policy::freshness::OriginSays::read(headers);
    if !rules.honor_origin {
        return (response_time, says);
    }
    let a = freshness::assess(status, headers, request_time, response_time);
    let stored_at = response_time
        .checked_sub(std::time::Duration::from_secs(a.initial_age))
        .unwrap_or(response_time);
    says.lifetime = Some(std::time::Duration::from_secs(a.lifetime.seconds));
    says.no_cache = a.revalidate_always;
    says.must_revalidate |= freshness::stale_forbidden(&a.directives);
    (stored_at, says)
}

/// The largest delta-seconds value kept: a larger one (or one that overflows) counts as this
/// (RFC 9111 §1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// Reads a singleton HTTP-date header (`Date`, `Expires`, `Last-Modified`, `If-Modified-Since`):
/// `None` when absent, repeated with different values, or not a valid HTTP-date.
pub fn http_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.any(|v| v != first) {
        return None;
    }
    parse_http_date(first.as_bytes())
}

/// One HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms, RFC 9110 §5.6.7).
pub fn parse_http_date(value: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(value).ok()?.trim();
    httpdate::parse_http_date(text).ok()
}

/// An HTTP-date in IMF-fixdate form.
pub fn format_http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// Seconds from `earlier` to `later`, zero when `later` is earlier.
pub(crate) fn seconds_between(earlier: SystemTime, later: SystemTime) -> u64 {
    later.duration_since(earlier).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
pub(crate) mod testing {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// A header map from name/value pairs, in order (repeats append).
    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
                HeaderValue::from_str(value).expect("valid value"),
            );
        }
        map
    }

    /// A fixed instant for the tests: 2024-01-01T00:00:00Z, plus `secs`.
    pub fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_704_067_200 + secs)
    }

    /// `at(secs)` as an HTTP-date.
    pub fn date(secs: u64) -> String {
        super::format_http_date(at(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{at, date, headers};
    use super::*;
    use http::header::{DATE, EXPIRES};
    use std::time::Duration;

    #[test]
    fn http_dates_in_all_three_forms_are_read() {
        let want = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(text.as_bytes()), Some(want), "{text}");
        }
        assert_eq!(parse_http_date(b"0"), None);
        assert_eq!(parse_http_date(b"yesterday"), None);
    }

    fn rules(honor_origin: bool) -> Rules {
        Rules {
            honor_origin,
            ..Rules::default()
        }
    }

    const STORE: StoreRules<'static> = StoreRules {
        cacheable_statuses: &[200],
        negative_statuses: &[],
        max_object_size: 100,
    };

    #[test]
    fn route_ttl_mode_keeps_the_route_rules() {
        let ok = headers(&[("cache-control", "max-age=0")]);
        assert!(response_storable(&rules(false), StatusCode::OK, &ok, &STORE, true).is_ok());
        let h = headers(&[("cache-control", "no-cache")]);
        assert_eq!(
            response_storable(&rules(false), StatusCode::OK, &h, &STORE, false),
            Err(NotStored::NoCache)
        );
        assert_eq!(
            response_storable(&rules(false), StatusCode::NOT_FOUND, &h, &STORE, false),
            Err(NotStored::Status)
        );
        // Route mode: the age counts from arrival; the origin's lifetime is not taken.
        let (stored_at, says) = origin_says(
            &rules(false),
            StatusCode::OK,
            &headers(&[
                ("cache-control", "max-age=5, stale-if-error=60"),
                ("age", "3"),
            ]),
            at(0),
            at(1),
        );
        assert_eq!(stored_at, at(1));
        assert_eq!(says.lifetime, None);
        assert_eq!(says.stale_if_error, Some(Duration::from_secs(60)));
        assert!(!says.no_cache && !says.must_revalidate);
    }

    #[test]
    fn honour_origin_mode_follows_rfc_9111() {
        let h = headers(&[("cache-control", "no-cache")]);
        assert!(response_storable(&rules(true), StatusCode::OK, &h, &STORE, false).is_ok());
        let h = headers(&[]);
        assert!(response_storable(&rules(true), StatusCode::NOT_FOUND, &h, &STORE, false).is_ok());
        let h = headers(&[("cache-control", "max-age=60"), ("content-length", "101")]);
        assert_eq!(
            response_storable(&rules(true), StatusCode::OK, &h, &STORE, false),
            Err(NotStored::TooLarge)
        );
        // Honour-origin mode: the lifetime is the origin's, counted from arrival less its age.
        let (stored_at, says) = origin_says(
            &rules(true),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60"), ("age", "10")]),
            at(100),
            at(100),
        );
        assert_eq!(stored_at, at(90));
        assert_eq!(says.lifetime, Some(Duration::from_secs(60)));
        assert!(!says.must_revalidate);
        // no-cache: stored, revalidated before every use, never served stale (§4.2.4).
        let (_, says) = origin_says(
            &rules(true),
            StatusCode::OK,
            &headers(&[("cache-control", "no-cache, max-age=60")]),
            at(100),
            at(100),
        );
        assert!(says.no_cache && says.must_revalidate);
        // s-maxage implies proxy-revalidate for a shared cache (§5.2.2.10).
        let (_, says) = origin_says(
            &rules(true),
            StatusCode::OK,
            &headers(&[("cache-control", "s-maxage=60")]),
            at(100),
            at(100),
        );
        assert!(says.must_revalidate);
    }

    #[test]
    fn a_repeated_date_with_different_values_is_not_a_date() {
        let h = headers(&[("date", &date(0)), ("date", &date(5))]);
        assert_eq!(http_date(&h, &DATE), None);
        let h = headers(&[("expires", &date(5)), ("expires", &date(5))]);
        assert_eq!(http_date(&h, &EXPIRES), Some(at(5)));
    }
}
