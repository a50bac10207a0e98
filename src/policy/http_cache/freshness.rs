//! Freshness (RFC 9111 §4.2): how long a response is fresh for, how old it is, and whether it
//! may ever be served stale. Cachegate is a shared cache, so `s-maxage` applies.

use std::time::SystemTime;

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use super::directives::{Fields, ResponseDirectives, Seconds};
use super::{http_date, seconds_between, DELTA_SECONDS_MAX};

/// Statuses whose responses are "heuristically cacheable" (RFC 9110 §15.1): storable without
/// explicit freshness, and given a heuristic lifetime.
pub const HEURISTICALLY_CACHEABLE: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// The fraction of the time since `Last-Modified` a heuristic lifetime takes (§4.2.2: "a
/// typical setting of this fraction might be 10%").
pub const HEURISTIC_FRACTION: u64 = 10;

/// The longest heuristic lifetime: one day.
pub const HEURISTIC_MAX: u64 = 24 * 60 * 60;

/// Whether a status is heuristically cacheable.
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    HEURISTICALLY_CACHEABLE.contains(&status.as_u16())
}

/// Where a lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    SMaxage,
    MaxAge,
    Expires,
    /// §4.2.2, from `Last-Modified`.
    Heuristic,
    /// Nothing explicit and no heuristic allowed: stale at once.
    None,
}

/// A freshness lifetime in seconds and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub seconds: u64,
    pub source: Source,
}

impl Lifetime {
    fn of(seconds: Seconds, source: Source) -> Lifetime {
        Lifetime {
            // An invalid value makes the response stale (§4.2.1, encouraged).
            seconds: seconds.valid().unwrap_or(0),
            source,
        }
    }

    /// True when the origin gave an explicit expiration time.
    pub fn is_explicit(&self) -> bool {
        matches!(
            self.source,
            Source::SMaxage | Source::MaxAge | Source::Expires
        )
    }
}

/// The freshness lifetime of a response (§4.2.1), as a shared cache computes it:
/// `s-maxage`, else `max-age`, else `Expires` minus `Date` (or minus `received`, the time the
/// response arrived, without a valid `Date`), else a heuristic (§4.2.2) where allowed.
pub fn lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    d: &ResponseDirectives,
    received: SystemTime,
) -> Lifetime {
    if let Some(s) = d.s_maxage {
        return Lifetime::of(s, Source::SMaxage);
    }
    if let Some(s) = d.max_age {
        return Lifetime::of(s, Source::MaxAge);
    }
    if headers.contains_key(EXPIRES) {
        // An invalid date, "0" above all, means already expired (§5.3).
        let seconds = match http_date(headers, &EXPIRES) {
            Some(expires) => {
                let date = http_date(headers, &DATE).unwrap_or(received);
                seconds_between(date, expires).min(DELTA_SECONDS_MAX)
            }
            None => 0,
        };
        return Lifetime {
            seconds,
            source: Source::Expires,
        };
    }
    heuristic(status, headers, d, received)
}

/// §4.2.2: only without an explicit expiration time, only for heuristically cacheable statuses
/// (or `public` responses), and only from `Last-Modified`: a tenth of the time since it, at
/// most [`HEURISTIC_MAX`].
fn heuristic(
    status: StatusCode,
    headers: &HeaderMap,
    d: &ResponseDirectives,
    received: SystemTime,
) -> Lifetime {
    let none = Lifetime {
        seconds: 0,
        source: Source::None,
    };
    if !(heuristically_cacheable(status) || d.public) {
        return none;
    }
    let Some(modified) = http_date(headers, &LAST_MODIFIED) else {
        return none;
    };
    let date = http_date(headers, &DATE).unwrap_or(received);
    Lifetime {
        seconds: (seconds_between(modified, date) / HEURISTIC_FRACTION).min(HEURISTIC_MAX),
        source: Source::Heuristic,
    }
}

/// The `Age` a response arrived with (§5.1): the first member of a list, ignored (zero) when
/// it is not a non-negative integer; capped at 2^31 (§1.2.2).
pub fn age_value(headers: &HeaderMap) -> u64 {
    let Some(value) = headers.get(AGE) else {
        return 0;
    };
    let first = value.as_bytes().split(|&b| b == b',').next().unwrap_or(b"");
    let first = first.trim_ascii();
    if first.is_empty() || !first.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    first.iter().fold(0u64, |n, &b| {
        n.saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(DELTA_SECONDS_MAX)
    })
}

/// The age of a response when it arrived (§4.2.3): the larger of its apparent age (`Date` to
/// `response_time`) and its `Age` plus the time the request took.
pub fn corrected_initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> u64 {
    let apparent_age =
        http_date(headers, &DATE).map_or(0, |date| seconds_between(date, response_time));
    let response_delay = seconds_between(request_time, response_time);
    let corrected_age_value = age_value(headers).saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// `current_age` of §4.2.3: the initial age plus the time the response has been stored.
pub fn current_age(corrected_initial_age: u64, response_time: SystemTime, now: SystemTime) -> u64 {
    corrected_initial_age.saturating_add(seconds_between(response_time, now))
}

/// §4.2: fresh while the lifetime exceeds the current age.
pub fn is_fresh(lifetime: u64, current_age: u64) -> bool {
    lifetime > current_age
}

/// Whether the origin forbids serving the response stale in any circumstance (§4.2.4):
/// `no-cache`, `must-revalidate` (§5.2.2.2), `proxy-revalidate` (§5.2.2.8) and `s-maxage`
/// (§5.2.2.10, which implies `proxy-revalidate` for a shared cache).
pub fn stale_forbidden(d: &ResponseDirectives) -> bool {
    matches!(d.no_cache, Some(Fields::All))
        || d.must_revalidate
        || d.proxy_revalidate
        || d.s_maxage.is_some()
}

/// A response's freshness as a shared cache sees it when it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub directives: ResponseDirectives,
    pub lifetime: Lifetime,
    /// The age the response had on arrival (§4.2.3 `corrected_initial_age`), in seconds.
    pub initial_age: u64,
    /// `no-cache` without field names: stored, but validated before every reuse (§5.2.2.4).
    pub revalidate_always: bool,
}

impl Assessment {
    /// Seconds the response stays fresh from its arrival: the lifetime minus its initial age;
    /// zero when it must be validated before every reuse.
    pub fn fresh_for(&self) -> u64 {
        if self.revalidate_always {
            0
        } else {
            self.lifetime.seconds.saturating_sub(self.initial_age)
        }
    }
}

/// Reads a response's freshness: `request_time` is when the request left, `response_time`
/// when the response head arrived.
pub fn assess(
    status: StatusCode,
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Assessment {
    let directives = super::directives::response(headers);
    let lifetime = lifetime(status, headers, &directives, response_time);
    Assessment {
        revalidate_always: matches!(directives.no_cache, Some(Fields::All)),
        lifetime,
        initial_age: corrected_initial_age(headers, request_time, response_time),
        directives,
    }
}

#[cfg(test)]
mod tests {
    use super::super::directives::response;
    use super::super::testing::{at, date, headers};
    use super::*;

    fn life(status: u16, pairs: &[(&str, &str)], received: u64) -> Lifetime {
        let h = headers(pairs);
        lifetime(
            StatusCode::from_u16(status).expect("status"),
            &h,
            &response(&h),
            at(received),
        )
    }

    #[test]
    fn s4_2_1_s_maxage_overrides_max_age_in_shared_cache() {
        let l = life(200, &[("cache-control", "max-age=60, s-maxage=10")], 0);
        assert_eq!((l.seconds, l.source), (10, Source::SMaxage));
    }

    #[test]
    fn s4_2_1_max_age_overrides_expires() {
        let l = life(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("date", &date(0)),
                ("expires", &date(3600)),
            ],
            0,
        );
        assert_eq!((l.seconds, l.source), (60, Source::MaxAge));
    }

    #[test]
    fn s5_3_s_maxage_makes_expires_ignored() {
        let l = life(
            200,
            &[("cache-control", "s-maxage=5"), ("expires", &date(3600))],
            0,
        );
        assert_eq!(l.seconds, 5);
    }

    #[test]
    fn s4_2_1_expires_minus_date_is_the_lifetime() {
        let l = life(200, &[("date", &date(100)), ("expires", &date(400))], 100);
        assert_eq!((l.seconds, l.source), (300, Source::Expires));
    }

    #[test]
    fn s4_2_1_expires_without_date_counts_from_arrival() {
        let l = life(200, &[("expires", &date(400))], 100);
        assert_eq!(l.seconds, 300);
    }

    #[test]
    fn s4_2_1_expires_before_date_is_already_stale() {
        let l = life(200, &[("date", &date(400)), ("expires", &date(100))], 400);
        assert_eq!(l.seconds, 0);
    }

    #[test]
    fn s5_3_an_invalid_expires_such_as_0_means_already_expired() {
        for bad in ["0", "-1", "tomorrow"] {
            let l = life(
                200,
                &[
                    ("expires", bad),
                    ("last-modified", &date(0)),
                    ("date", &date(100_000)),
                ],
                100_000,
            );
            assert_eq!((l.seconds, l.source), (0, Source::Expires), "{bad}");
        }
    }

    #[test]
    fn s4_2_1_invalid_max_age_makes_the_response_stale() {
        let l = life(200, &[("cache-control", "max-age=abc")], 0);
        assert_eq!((l.seconds, l.source), (0, Source::MaxAge));
    }

    #[test]
    fn s4_2_2_heuristic_is_a_fraction_of_the_time_since_last_modified() {
        let l = life(
            200,
            &[("date", &date(10_000)), ("last-modified", &date(0))],
            10_000,
        );
        assert_eq!((l.seconds, l.source), (1_000, Source::Heuristic));
    }

    #[test]
    fn s4_2_2_heuristic_is_capped() {
        let l = life(
            200,
            &[
                ("date", &date(100 * HEURISTIC_MAX)),
                ("last-modified", &date(0)),
            ],
            0,
        );
        assert_eq!(l.seconds, HEURISTIC_MAX);
    }

    #[test]
    fn s4_2_2_no_heuristic_when_an_explicit_expiration_time_is_present() {
        let l = life(
            200,
            &[
                ("cache-control", "max-age=0"),
                ("date", &date(10_000)),
                ("last-modified", &date(0)),
            ],
            10_000,
        );
        assert_eq!((l.seconds, l.source), (0, Source::MaxAge));
    }

    #[test]
    fn s4_2_2_no_heuristic_for_statuses_not_heuristically_cacheable() {
        for status in [201, 302, 307, 403, 500, 503] {
            let l = life(
                status,
                &[("date", &date(10_000)), ("last-modified", &date(0))],
                10_000,
            );
            assert_eq!((l.seconds, l.source), (0, Source::None), "{status}");
        }
        // Unless marked public.
        let l = life(
            302,
            &[
                ("cache-control", "public"),
                ("date", &date(10_000)),
                ("last-modified", &date(0)),
            ],
            10_000,
        );
        assert_eq!(l.seconds, 1_000);
    }

    #[test]
    fn s4_2_2_no_heuristic_without_last_modified() {
        let l = life(200, &[("date", &date(10_000))], 10_000);
        assert_eq!((l.seconds, l.source), (0, Source::None));
    }

    #[test]
    fn s4_2_3_age_is_the_larger_of_apparent_and_corrected_age() {
        // Date 10s before arrival, no Age: apparent age wins.
        let h = headers(&[("date", &date(90))]);
        assert_eq!(corrected_initial_age(&h, at(99), at(100)), 10);
        // Age 30 plus a 2s round trip beats an apparent age of 0.
        let h = headers(&[("date", &date(100)), ("age", "30")]);
        assert_eq!(corrected_initial_age(&h, at(98), at(100)), 32);
        // A Date in the future (clock skew) gives no negative age.
        let h = headers(&[("date", &date(500))]);
        assert_eq!(corrected_initial_age(&h, at(100), at(100)), 0);
    }

    #[test]
    fn s4_2_3_current_age_adds_resident_time() {
        assert_eq!(current_age(12, at(100), at(150)), 62);
        assert_eq!(current_age(12, at(100), at(50)), 12);
    }

    #[test]
    fn s5_1_age_takes_the_first_member_and_ignores_invalid_values() {
        assert_eq!(age_value(&headers(&[("age", "5, 10")])), 5);
        assert_eq!(age_value(&headers(&[("age", "-5")])), 0);
        assert_eq!(age_value(&headers(&[("age", "x")])), 0);
        assert_eq!(
            age_value(&headers(&[("age", "99999999999999999999")])),
            DELTA_SECONDS_MAX
        );
    }

    #[test]
    fn s4_2_fresh_while_lifetime_exceeds_current_age() {
        assert!(is_fresh(10, 9));
        assert!(!is_fresh(10, 10));
        assert!(!is_fresh(0, 0));
    }

    #[test]
    fn s4_2_4_stale_is_forbidden_by_no_cache_must_revalidate_proxy_revalidate_s_maxage() {
        for value in [
            "no-cache",
            "must-revalidate",
            "proxy-revalidate",
            "s-maxage=5",
        ] {
            let d = response(&headers(&[("cache-control", value)]));
            assert!(stale_forbidden(&d), "{value}");
        }
        let d = response(&headers(&[("cache-control", "max-age=5")]));
        assert!(!stale_forbidden(&d));
    }

    #[test]
    fn s4_2_1_the_age_a_response_arrives_with_shortens_its_freshness() {
        let h = headers(&[("cache-control", "max-age=60"), ("age", "50")]);
        let a = assess(StatusCode::OK, &h, at(0), at(0));
        assert_eq!((a.initial_age, a.fresh_for()), (50, 10));
        let h = headers(&[("cache-control", "max-age=60"), ("age", "90")]);
        assert_eq!(assess(StatusCode::OK, &h, at(0), at(0)).fresh_for(), 0);
    }

    #[test]
    fn s5_2_2_4_no_cache_is_fresh_for_nothing() {
        let h = headers(&[("cache-control", "no-cache, max-age=600")]);
        let a = assess(StatusCode::OK, &h, at(0), at(0));
        assert!(a.revalidate_always);
        assert_eq!(a.fresh_for(), 0);
    }
}
