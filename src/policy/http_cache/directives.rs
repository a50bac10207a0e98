//! `Cache-Control` read into directives (RFC 9111 §5.2), for responses and for requests.
//!
//! Names compare case-insensitively; an argument may be a token or a quoted string (§5.2).
//! Unknown directives are ignored (§5.2.3). A directive repeated with different arguments is
//! treated as invalid, and an invalid freshness argument (`max-age=soon`) makes the response
//! stale (§4.2.1: "caches are encouraged to consider responses that have invalid freshness
//! information to be stale"). A delta-seconds value beyond 2^31 counts as 2^31 (§1.2.2).

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName};

use super::DELTA_SECONDS_MAX;
use crate::policy::cacheability::{list_items, Item};

/// A delta-seconds argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seconds {
    /// A valid value, capped at [`DELTA_SECONDS_MAX`].
    Valid(u64),
    /// Missing, not a non-negative integer, or repeated with another value.
    Invalid,
}

impl Seconds {
    /// The value, `None` when invalid.
    pub fn valid(self) -> Option<u64> {
        match self {
            Seconds::Valid(n) => Some(n),
            Seconds::Invalid => None,
        }
    }
}

/// A directive that may name header fields (`no-cache="Set-Cookie"`, `private="X-User"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// Written without an argument: the whole response.
    All,
    /// Qualified: only these fields (lower-case, valid names).
    Named(Vec<HeaderName>),
}

/// The response directives cachegate acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    pub max_age: Option<Seconds>,
    pub s_maxage: Option<Seconds>,
    pub no_cache: Option<Fields>,
    pub no_store: bool,
    pub private: Option<Fields>,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub no_transform: bool,
    pub immutable: bool,
    /// RFC 5861.
    pub stale_while_revalidate: Option<Seconds>,
    /// RFC 5861.
    pub stale_if_error: Option<Seconds>,
}

/// `max-stale` with or without its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// `max-stale` alone: any staleness is accepted.
    Any,
    /// `max-stale=N`.
    Seconds(u64),
}

/// The request directives of RFC 9111 §5.2.1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    pub max_age: Option<u64>,
    pub max_stale: Option<MaxStale>,
    pub min_fresh: Option<u64>,
    /// `Cache-Control: no-cache`, or `Pragma: no-cache` without any `Cache-Control` (§5.4).
    pub no_cache: bool,
    pub no_store: bool,
    pub no_transform: bool,
    pub only_if_cached: bool,
}

impl RequestDirectives {
    /// True when the request carries no directive cachegate acts on.
    pub fn is_empty(&self) -> bool {
        *self == RequestDirectives::default()
    }
}

/// A delta-seconds argument: digits only, token or quoted; an overlong value is capped.
fn delta_seconds(item: &Item<'_>) -> Seconds {
    match item.value {
        Some(v) if !v.is_empty() && v.iter().all(u8::is_ascii_digit) => {
            let mut n: u64 = 0;
            for &b in v {
                n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
            }
            Seconds::Valid(n.min(DELTA_SECONDS_MAX))
        }
        _ => Seconds::Invalid,
    }
}

/// Keeps the first value of a repeated directive when the repeat agrees, else marks it invalid.
fn merge_seconds(slot: &mut Option<Seconds>, value: Seconds) {
    *slot = Some(match *slot {
        None => value,
        Some(old) if old == value => old,
        Some(_) => Seconds::Invalid,
    });
}

/// The field names of a qualified `no-cache` or `private`; unqualified (or unreadable) means
/// the whole response, which is the stricter reading.
fn fields(item: &Item<'_>) -> Fields {
    let Some(value) = item.value else {
        return Fields::All;
    };
    let mut names = Vec::new();
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() {
            continue;
        }
        match HeaderName::from_bytes(part) {
            Ok(name) => names.push(name),
            Err(_) => return Fields::All,
        }
    }
    if names.is_empty() {
        Fields::All
    } else {
        Fields::Named(names)
    }
}

/// Repeated field-list directives: `All` wins, named lists are joined.
fn merge_fields(slot: &mut Option<Fields>, value: Fields) {
    *slot = Some(match (slot.take(), value) {
        (None, v) => v,
        (Some(Fields::All), _) | (_, Fields::All) => Fields::All,
        (Some(Fields::Named(mut a)), Fields::Named(b)) => {
            for name in b {
                if !a.contains(&name) {
                    a.push(name);
                }
            }
            Fields::Named(a)
        }
    });
}

/// The response's `Cache-Control`, every line of it.
pub fn response(headers: &HeaderMap) -> ResponseDirectives {
    let mut d = ResponseDirectives::default();
    for item in list_items(headers, &CACHE_CONTROL) {
        let name = item.name.to_ascii_lowercase();
        match name.as_slice() {
            b"max-age" => merge_seconds(&mut d.max_age, delta_seconds(&item)),
            b"s-maxage" => merge_seconds(&mut d.s_maxage, delta_seconds(&item)),
            b"stale-while-revalidate" => {
                merge_seconds(&mut d.stale_while_revalidate, delta_seconds(&item))
            }
            b"stale-if-error" => merge_seconds(&mut d.stale_if_error, delta_seconds(&item)),
            b"no-cache" => merge_fields(&mut d.no_cache, fields(&item)),
            b"private" => merge_fields(&mut d.private, fields(&item)),
            b"no-store" => d.no_store = true,
            b"public" => d.public = true,
            b"must-revalidate" => d.must_revalidate = true,
            b"proxy-revalidate" => d.proxy_revalidate = true,
            b"must-understand" => d.must_understand = true,
            b"no-transform" => d.no_transform = true,
            b"immutable" => d.immutable = true,
            _ => {}
        }
    }
    d
}

/// The request's `Cache-Control`; `Pragma: no-cache` counts only without a `Cache-Control`
/// (§5.4). An invalid argument drops its directive (a request cannot make a response stale).
pub fn request(headers: &HeaderMap) -> RequestDirectives {
    let mut d = RequestDirectives::default();
    if !headers.contains_key(CACHE_CONTROL) {
        d.no_cache = list_items(headers, &PRAGMA).any(|item| item.is("no-cache"));
        return d;
    }
    for item in list_items(headers, &CACHE_CONTROL) {
        let name = item.name.to_ascii_lowercase();
        let seconds = delta_seconds(&item).valid();
        match name.as_slice() {
            // Repeats: the stricter value.
            b"max-age" => {
                if let Some(n) = seconds {
                    d.max_age = Some(d.max_age.map_or(n, |old| old.min(n)));
                }
            }
            b"min-fresh" => {
                if let Some(n) = seconds {
                    d.min_fresh = Some(d.min_fresh.map_or(n, |old| old.max(n)));
                }
            }
            b"max-stale" => {
                let value = match (item.value, seconds) {
                    (None, _) => Some(MaxStale::Any),
                    (Some(_), Some(n)) => Some(MaxStale::Seconds(n)),
                    (Some(_), None) => None,
                };
                d.max_stale = match (d.max_stale, value) {
                    (Some(MaxStale::Seconds(a)), Some(MaxStale::Seconds(b))) => {
                        Some(MaxStale::Seconds(a.min(b)))
                    }
                    (Some(MaxStale::Seconds(a)), _) => Some(MaxStale::Seconds(a)),
                    (_, v @ Some(_)) => v,
                    (old, None) => old,
                };
            }
            b"no-cache" => d.no_cache = true,
            b"no-store" => d.no_store = true,
            b"no-transform" => d.no_transform = true,
            b"only-if-cached" => d.only_if_cached = true,
            _ => {}
        }
    }
    d
}

/// Whether a header map carries a `Cache-Control` header line at all.
pub fn has_cache_control(headers: &HeaderMap) -> bool {
    headers.contains_key(CACHE_CONTROL)
}

#[cfg(test)]
mod tests {
    use super::super::testing::headers;
    use super::*;

    fn resp(value: &str) -> ResponseDirectives {
        response(&headers(&[("cache-control", value)]))
    }

    fn req(pairs: &[(&str, &str)]) -> RequestDirectives {
        request(&headers(pairs))
    }

    #[test]
    fn s5_2_directive_names_are_case_insensitive() {
        let d = resp("Max-Age=60, NO-STORE, Public");
        assert_eq!(d.max_age, Some(Seconds::Valid(60)));
        assert!(d.no_store && d.public);
    }

    #[test]
    fn s5_2_arguments_may_be_tokens_or_quoted_strings() {
        assert_eq!(resp("max-age=\"60\"").max_age, Some(Seconds::Valid(60)));
        assert_eq!(resp("s-maxage=30").s_maxage, Some(Seconds::Valid(30)));
    }

    #[test]
    fn s5_2_directives_on_several_lines_are_one_list() {
        let d = response(&headers(&[
            ("cache-control", "public"),
            ("cache-control", "max-age=5, must-revalidate"),
        ]));
        assert!(d.public && d.must_revalidate);
        assert_eq!(d.max_age, Some(Seconds::Valid(5)));
    }

    #[test]
    fn s5_2_3_unknown_directives_are_ignored() {
        let d = resp("community=\"UCI\", max-age=10, x-foo");
        assert_eq!(d.max_age, Some(Seconds::Valid(10)));
        assert_eq!(resp("community=UCI"), ResponseDirectives::default());
    }

    #[test]
    fn s4_2_1_invalid_freshness_arguments_are_invalid() {
        for value in [
            "max-age=soon",
            "max-age=-1",
            "max-age=1.5",
            "max-age",
            "max-age=",
        ] {
            assert_eq!(resp(value).max_age, Some(Seconds::Invalid), "{value}");
        }
    }

    #[test]
    fn s4_2_1_a_repeated_directive_with_another_value_is_invalid() {
        assert_eq!(
            resp("max-age=5, max-age=10").max_age,
            Some(Seconds::Invalid)
        );
        assert_eq!(
            resp("max-age=5, max-age=5").max_age,
            Some(Seconds::Valid(5))
        );
    }

    #[test]
    fn s1_2_2_delta_seconds_beyond_2_pow_31_count_as_2_pow_31() {
        let d = resp("max-age=99999999999999999999999999");
        assert_eq!(d.max_age, Some(Seconds::Valid(DELTA_SECONDS_MAX)));
    }

    #[test]
    fn s5_2_2_4_and_5_2_2_7_qualified_no_cache_and_private_name_fields() {
        let d = resp("no-cache=\"Set-Cookie, X-Thing\", private=x-user");
        assert_eq!(
            d.no_cache,
            Some(Fields::Named(vec![
                HeaderName::from_static("set-cookie"),
                HeaderName::from_static("x-thing")
            ]))
        );
        assert_eq!(
            d.private,
            Some(Fields::Named(vec![HeaderName::from_static("x-user")]))
        );
        assert_eq!(resp("no-cache").no_cache, Some(Fields::All));
        assert_eq!(resp("private, private=\"a\"").private, Some(Fields::All));
        assert_eq!(resp("no-cache=\"\"").no_cache, Some(Fields::All));
        assert_eq!(resp("private=\"bad name\"").private, Some(Fields::All));
    }

    #[test]
    fn stale_extensions_of_rfc_5861_are_read() {
        let d = resp("max-age=1, stale-while-revalidate=30, stale-if-error=600");
        assert_eq!(d.stale_while_revalidate, Some(Seconds::Valid(30)));
        assert_eq!(d.stale_if_error, Some(Seconds::Valid(600)));
    }

    #[test]
    fn s5_2_1_request_directives_are_read() {
        let d = req(&[(
            "cache-control",
            "max-age=5, min-fresh=3, max-stale=7, no-cache, no-store, only-if-cached",
        )]);
        assert_eq!(d.max_age, Some(5));
        assert_eq!(d.min_fresh, Some(3));
        assert_eq!(d.max_stale, Some(MaxStale::Seconds(7)));
        assert!(d.no_cache && d.no_store && d.only_if_cached);
        assert_eq!(
            req(&[("cache-control", "max-stale")]).max_stale,
            Some(MaxStale::Any)
        );
    }

    #[test]
    fn s5_2_1_invalid_request_arguments_drop_the_directive() {
        let d = req(&[("cache-control", "max-age=x, min-fresh=, max-stale=y")]);
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn s5_2_1_repeated_request_directives_keep_the_stricter_value() {
        let d = req(&[(
            "cache-control",
            "max-age=10, max-age=3, min-fresh=1, min-fresh=4",
        )]);
        assert_eq!((d.max_age, d.min_fresh), (Some(3), Some(4)));
        let d = req(&[("cache-control", "max-stale, max-stale=5")]);
        assert_eq!(d.max_stale, Some(MaxStale::Seconds(5)));
    }

    #[test]
    fn s5_4_pragma_no_cache_counts_only_without_cache_control() {
        assert!(req(&[("pragma", "no-cache")]).no_cache);
        assert!(!req(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]).no_cache);
    }
}
