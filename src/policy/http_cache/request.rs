//! The request's own `Cache-Control` (RFC 9111 §5.2.1), against a stored response.
//!
//! What cachegate does with it is a per-route switch ([`RequestCacheControl`]):
//! `honor` applies every directive below, `bypass` (the route-TTL mode's default) passes
//! `no-cache` and `no-store` requests through uncached and ignores the rest, `ignore` serves
//! fresh entries whatever the request says. In every mode a `no-store` request's answer is
//! never stored (§5.2.1.5).

use super::directives::{MaxStale, RequestDirectives};

/// The per-route switch `request_cache_control`; defined beside the request-side checks
/// that read it.
pub use crate::policy::cacheability::RequestCacheControl;

/// A stored response as the request directives see it, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Its current age (§4.2.3).
    pub age: u64,
    /// Its freshness lifetime (§4.2.1); zero when it must be validated before every use.
    pub lifetime: u64,
    /// The origin forbids serving it stale (`must-revalidate` and the like, §4.2.4).
    pub stale_forbidden: bool,
}

/// What to do with a request, given what the cache holds for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Answer from the stored response: fresh, or stale within the request's `max-stale`.
    Stored { stale: bool },
    /// Go to the origin (fill or validate).
    Forward,
    /// `only-if-cached` and nothing usable: `504 Gateway Timeout` (§5.2.1.7).
    GatewayTimeout,
}

/// §5.2.1 for one request: whether `stored` (if any) may answer it.
pub fn decide(d: &RequestDirectives, stored: Option<Stored>) -> Use {
    let miss = if d.only_if_cached {
        Use::GatewayTimeout
    } else {
        Use::Forward
    };
    let Some(s) = stored else {
        return miss;
    };
    // §5.2.1.4: no-cache: never without validation.
    if d.no_cache {
        return miss;
    }
    // §5.2.1.1: max-age: no older than this.
    if d.max_age.is_some_and(|max| s.age > max) {
        return miss;
    }
    let fresh = s.lifetime > s.age;
    if fresh {
        // §5.2.1.3: min-fresh: still fresh for at least this long.
        if d.min_fresh.is_some_and(|min| s.lifetime - s.age < min) {
            return miss;
        }
        return Use::Stored { stale: false };
    }
    // §4.2.4: stale only when the client allows it and the origin does not forbid it.
    let staleness = s.age - s.lifetime;
    let allowed = match d.max_stale {
        Some(MaxStale::Any) => true,
        Some(MaxStale::Seconds(n)) => staleness <= n,
        None => false,
    };
    if allowed && !s.stale_forbidden && d.min_fresh.is_none() {
        Use::Stored { stale: true }
    } else {
        miss
    }
}

/// What the cache's own rules allow for an entry held past its freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The entry as the directives see it; its lifetime is over (or a purge ended it).
    pub stored: Stored,
    /// The cache would answer it at once: inside a `stale-while-revalidate` window (RFC 5861),
    /// or soft-purged on a route that serves while revalidating.
    pub servable: bool,
    /// A soft purge marked it: only the cache's own rules may answer it, never `max-stale`.
    pub purged: bool,
}

/// §5.2.1 for an entry held past its freshness: whether it may answer this request.
///
/// The request restricts what the cache's own windows would serve: `no-cache` (§5.2.1.4), an
/// age over its `max-age` (§5.2.1.1) and any `min-fresh` (§5.2.1.3: a stale response has no
/// freshness left) send it to the backend. It may also widen them: within its `max-stale`
/// (§5.2.1.2) a held entry answers unless the origin forbids serving it stale (§4.2.4).
/// With `only-if-cached` (§5.2.1.7), what cannot answer is a `504`.
pub fn decide_held(d: &RequestDirectives, held: Held) -> Use {
    let miss = if d.only_if_cached {
        Use::GatewayTimeout
    } else {
        Use::Forward
    };
    let s = held.stored;
    if d.no_cache || d.max_age.is_some_and(|max| s.age > max) || d.min_fresh.is_some() {
        return miss;
    }
    if held.servable {
        return Use::Stored { stale: true };
    }
    let staleness = s.age.saturating_sub(s.lifetime);
    let allowed = match d.max_stale {
        Some(MaxStale::Any) => true,
        Some(MaxStale::Seconds(n)) => staleness <= n,
        None => false,
    };
    if allowed && !s.stale_forbidden && !held.purged {
        Use::Stored { stale: true }
    } else {
        miss
    }
}

#[cfg(test)]
mod tests {
    use super::super::directives::request;
    use super::super::testing::headers;
    use super::*;

    fn cc(value: &str) -> RequestDirectives {
        request(&headers(&[("cache-control", value)]))
    }

    fn stored(age: u64, lifetime: u64) -> Option<Stored> {
        Some(Stored {
            age,
            lifetime,
            stale_forbidden: false,
        })
    }

    const FRESH: Use = Use::Stored { stale: false };
    const STALE: Use = Use::Stored { stale: true };

    #[test]
    fn a_fresh_entry_answers_a_plain_request() {
        assert_eq!(decide(&cc(""), stored(5, 10)), FRESH);
        assert_eq!(decide(&cc(""), stored(10, 10)), Use::Forward);
        assert_eq!(decide(&cc(""), None), Use::Forward);
    }

    #[test]
    fn s5_2_1_4_no_cache_must_not_use_a_stored_response_without_validation() {
        assert_eq!(decide(&cc("no-cache"), stored(0, 100)), Use::Forward);
        let pragma = request(&headers(&[("pragma", "no-cache")]));
        assert_eq!(decide(&pragma, stored(0, 100)), Use::Forward);
    }

    #[test]
    fn s5_2_1_1_max_age_limits_the_age() {
        assert_eq!(decide(&cc("max-age=5"), stored(5, 100)), FRESH);
        assert_eq!(decide(&cc("max-age=5"), stored(6, 100)), Use::Forward);
        assert_eq!(decide(&cc("max-age=0"), stored(0, 100)), FRESH);
    }

    #[test]
    fn s5_2_1_3_min_fresh_asks_for_remaining_freshness() {
        assert_eq!(decide(&cc("min-fresh=10"), stored(80, 100)), FRESH);
        assert_eq!(decide(&cc("min-fresh=30"), stored(80, 100)), Use::Forward);
    }

    #[test]
    fn s5_2_1_2_max_stale_accepts_stale_responses() {
        assert_eq!(decide(&cc("max-stale=10"), stored(105, 100)), STALE);
        assert_eq!(decide(&cc("max-stale=10"), stored(111, 100)), Use::Forward);
        assert_eq!(decide(&cc("max-stale"), stored(10_000, 100)), STALE);
    }

    #[test]
    fn s4_2_4_must_not_serve_stale_when_the_origin_forbids_it_even_with_max_stale() {
        let forbidden = Some(Stored {
            age: 105,
            lifetime: 100,
            stale_forbidden: true,
        });
        assert_eq!(decide(&cc("max-stale"), forbidden), Use::Forward);
    }

    #[test]
    fn s4_2_4_must_not_serve_stale_without_permission() {
        assert_eq!(decide(&cc(""), stored(101, 100)), Use::Forward);
    }

    #[test]
    fn s5_2_1_7_only_if_cached_answers_504_when_nothing_usable_is_stored() {
        assert_eq!(decide(&cc("only-if-cached"), None), Use::GatewayTimeout);
        assert_eq!(
            decide(&cc("only-if-cached"), stored(101, 100)),
            Use::GatewayTimeout
        );
        assert_eq!(decide(&cc("only-if-cached"), stored(1, 100)), FRESH);
        assert_eq!(
            decide(&cc("only-if-cached, max-stale"), stored(101, 100)),
            STALE
        );
    }

    fn held(age: u64, lifetime: u64, servable: bool) -> Held {
        Held {
            stored: Stored {
                age,
                lifetime,
                stale_forbidden: false,
            },
            servable,
            purged: false,
        }
    }

    #[test]
    fn s5_2_1_2_max_stale_lets_a_held_entry_answer() {
        assert_eq!(decide_held(&cc(""), held(105, 100, false)), Use::Forward);
        assert_eq!(
            decide_held(&cc("max-stale=10"), held(105, 100, false)),
            STALE
        );
        assert_eq!(
            decide_held(&cc("max-stale=10"), held(111, 100, false)),
            Use::Forward
        );
        assert_eq!(
            decide_held(&cc("max-stale"), held(10_000, 100, false)),
            STALE
        );
    }

    #[test]
    fn s4_2_4_max_stale_never_answers_what_the_origin_forbids_or_a_purge_marked() {
        let mut forbidden = held(105, 100, false);
        forbidden.stored.stale_forbidden = true;
        assert_eq!(decide_held(&cc("max-stale"), forbidden), Use::Forward);
        let mut purged = held(105, 100, false);
        purged.purged = true;
        assert_eq!(decide_held(&cc("max-stale"), purged), Use::Forward);
    }

    #[test]
    fn s5_2_1_request_directives_restrict_the_caches_own_windows() {
        assert_eq!(decide_held(&cc(""), held(105, 100, true)), STALE);
        assert_eq!(
            decide_held(&cc("no-cache"), held(105, 100, true)),
            Use::Forward
        );
        assert_eq!(decide_held(&cc("max-age=200"), held(105, 100, true)), STALE);
        assert_eq!(
            decide_held(&cc("max-age=100"), held(105, 100, true)),
            Use::Forward
        );
        assert_eq!(
            decide_held(&cc("min-fresh=0"), held(105, 100, true)),
            Use::Forward
        );
        assert_eq!(
            decide_held(&cc("max-age=10, max-stale"), held(105, 100, false)),
            Use::Forward
        );
    }

    #[test]
    fn s5_2_1_7_only_if_cached_takes_a_servable_held_entry_else_504() {
        let only = cc("only-if-cached");
        assert_eq!(decide_held(&only, held(105, 100, true)), STALE);
        assert_eq!(
            decide_held(&only, held(105, 100, false)),
            Use::GatewayTimeout
        );
        let with_stale = cc("only-if-cached, max-stale=60");
        assert_eq!(decide_held(&with_stale, held(105, 100, false)), STALE);
        let no_cache = cc("only-if-cached, no-cache");
        assert_eq!(
            decide_held(&no_cache, held(105, 100, true)),
            Use::GatewayTimeout
        );
    }

    #[test]
    fn switch_spellings() {
        for mode in [
            RequestCacheControl::Honor,
            RequestCacheControl::Bypass,
            RequestCacheControl::Ignore,
        ] {
            assert_eq!(RequestCacheControl::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(RequestCacheControl::parse("Honor"), None);
    }
}
