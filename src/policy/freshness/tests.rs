//! One test per freshness rule, with the clock's edge cases: exact boundaries, zero windows,
//! a clock behind the entry's storing, and instants near the end of time.

use super::*;
use http::HeaderValue;

const SEC: Duration = Duration::from_secs(1);

fn rules(ttl: u64, swr: u64, sie: u64) -> Rules {
    Rules {
        ttl: SEC * ttl as u32,
        stale_while_revalidate: SEC * swr as u32,
        stale_if_error: SEC * sie as u32,
        revalidate_for: Duration::ZERO,
        negative: None,
    }
}

fn at(ms: u64) -> UnixMillis {
    UnixMillis(ms)
}

fn cc(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
    h
}

fn facts(l: Lifetimes) -> EntryFacts {
    EntryFacts {
        lifetimes: l,
        soft_purged: false,
        has_validators: false,
        route_revalidates: true,
    }
}

#[test]
fn route_ttl_rules_freshness_and_windows_follow_it() {
    let l = lifetimes(&rules(60, 30, 600), 200, &OriginSays::default(), at(1_000));
    assert_eq!(l.fresh_until, at(61_000));
    assert_eq!(l.stale_while_revalidate_until, at(91_000));
    assert_eq!(l.stale_if_error_until, at(661_000));
    assert_eq!(l.usable_until(), at(661_000));
}

#[test]
fn no_windows_means_usable_until_fresh_until() {
    let l = lifetimes(&rules(60, 0, 0), 200, &OriginSays::default(), at(0));
    assert_eq!(l.stale_while_revalidate_until, l.fresh_until);
    assert_eq!(l.stale_if_error_until, l.fresh_until);
    assert_eq!(l.usable_until(), at(60_000));
}

#[test]
fn origin_windows_widen_the_routes() {
    let origin = OriginSays::read(&cc(
        "max-age=5, stale-while-revalidate=120, stale-if-error=7",
    ));
    assert_eq!(origin.stale_while_revalidate, Some(SEC * 120));
    assert_eq!(origin.stale_if_error, Some(SEC * 7));
    let l = lifetimes(&rules(60, 30, 600), 200, &origin, at(0));
    // Route mode: max-age is not read; the route's ttl rules.
    assert_eq!(l.fresh_until, at(60_000));
    assert_eq!(l.stale_while_revalidate_until, at(180_000));
    assert_eq!(l.stale_if_error_until, at(660_000));
    // Without route windows the origin's alone open them.
    let l = lifetimes(&rules(60, 0, 0), 200, &origin, at(0));
    assert_eq!(l.stale_while_revalidate_until, at(180_000));
    assert_eq!(l.stale_if_error_until, at(67_000));
}

#[test]
fn malformed_or_repeated_directives() {
    let o = OriginSays::read(&cc("stale-while-revalidate=abc, stale-if-error=-1"));
    assert_eq!(o, OriginSays::default());
    let o = OriginSays::read(&cc(
        "stale-while-revalidate=\"10\", stale-while-revalidate=99",
    ));
    assert_eq!(o.stale_while_revalidate, Some(SEC * 10));
    let o = OriginSays::read(&cc("STALE-IF-ERROR=3"));
    assert_eq!(o.stale_if_error, Some(SEC * 3));
    let o = OriginSays::read(&cc("stale-if-error"));
    assert_eq!(o.stale_if_error, None);
    // Too many digits saturates rather than wrapping.
    let o = OriginSays::read(&cc("stale-if-error=99999999999999999999999"));
    assert_eq!(o.stale_if_error, Some(Duration::from_secs(u64::MAX)));
}

#[test]
fn must_revalidate_closes_every_window() {
    for directive in ["must-revalidate", "proxy-revalidate"] {
        let origin = OriginSays::read(&cc(&format!("{directive}, stale-if-error=60")));
        assert!(origin.must_revalidate);
        let l = lifetimes(&rules(60, 30, 600), 200, &origin, at(0));
        assert_eq!(l.usable_until(), l.fresh_until, "{directive}");
    }
}

#[test]
fn origin_lifetime_and_no_cache_are_the_honour_origin_seam() {
    let origin = OriginSays {
        lifetime: Some(SEC * 5),
        ..OriginSays::default()
    };
    let l = lifetimes(&rules(60, 30, 0), 200, &origin, at(0));
    assert_eq!(l.fresh_until, at(5_000));
    assert_eq!(l.stale_while_revalidate_until, at(35_000));
    let origin = OriginSays {
        no_cache: true,
        lifetime: Some(SEC * 5),
        ..OriginSays::default()
    };
    let l = lifetimes(&rules(60, 0, 0), 200, &origin, at(0));
    assert_eq!(l.fresh_until, at(0));
    assert_eq!(
        usability(&facts(l), Situation::Lookup, at(0)),
        Usability::Unusable
    );
}

#[test]
fn negative_statuses_have_their_own_ttl_and_no_windows() {
    let mut r = rules(3600, 30, 600);
    r.negative = Some(Negative {
        ttl: SEC * 10,
        statuses: vec![404, 410],
    });
    let origin = OriginSays::read(&cc("stale-if-error=600"));
    let l = lifetimes(&r, 404, &origin, at(0));
    assert_eq!(l.fresh_until, at(10_000));
    assert_eq!(l.usable_until(), at(10_000));
    assert_eq!(
        lifetimes(&r, 200, &origin, at(0)).fresh_until,
        at(3_600_000)
    );
    assert_eq!(r.negative_ttl(410), Some(SEC * 10));
    assert_eq!(r.negative_ttl(500), None);
}

#[test]
fn boundaries_are_exclusive() {
    let l = lifetimes(&rules(10, 5, 20), 200, &OriginSays::default(), at(0));
    let e = facts(l);
    let look = |ms| usability(&e, Situation::Lookup, at(ms));
    let fail = |ms| usability(&e, Situation::BackendFailed, at(ms));
    assert_eq!(look(9_999), Usability::Fresh);
    assert_eq!(
        look(10_000),
        Usability::StaleServable(StaleWhy::WhileRevalidate)
    );
    assert_eq!(
        look(14_999),
        Usability::StaleServable(StaleWhy::WhileRevalidate)
    );
    // Past the swr window, inside stale-if-error: ask the backend, keep the entry.
    assert_eq!(look(15_000), Usability::MustRevalidate);
    assert_eq!(look(29_999), Usability::MustRevalidate);
    assert_eq!(look(30_000), Usability::Unusable);
    assert_eq!(fail(29_999), Usability::StaleServable(StaleWhy::IfError));
    assert_eq!(fail(30_000), Usability::Unusable);
}

#[test]
fn zero_windows_never_serve_stale() {
    let l = lifetimes(&rules(10, 0, 0), 200, &OriginSays::default(), at(0));
    let e = facts(l);
    assert_eq!(
        usability(&e, Situation::Lookup, at(9_999)),
        Usability::Fresh
    );
    assert_eq!(
        usability(&e, Situation::Lookup, at(10_000)),
        Usability::Unusable
    );
    assert_eq!(
        usability(&e, Situation::BackendFailed, at(10_000)),
        Usability::Unusable
    );
    // A fresh entry is not served on error through this function: the caller had it fresh.
    assert_eq!(
        usability(&e, Situation::BackendFailed, at(5_000)),
        Usability::Unusable
    );
}

#[test]
fn validators_keep_an_expired_entry_for_revalidation() {
    let mut r = rules(10, 0, 0);
    r.revalidate_for = SEC * 600;
    let tagged = OriginSays {
        validators: true,
        ..OriginSays::default()
    };
    let l = lifetimes(&r, 200, &tagged, at(0));
    assert_eq!(l.fresh_until, at(10_000));
    assert_eq!(l.revalidate_until, at(610_000));
    assert_eq!(l.usable_until(), at(610_000));
    let mut e = facts(l);
    e.has_validators = true;
    // Held past its TTL for revalidation only, up to the last millisecond of the period.
    for now in [10_000, 609_999] {
        assert_eq!(
            usability(&e, Situation::Lookup, at(now)),
            Usability::MustRevalidate,
            "{now}"
        );
    }
    assert_eq!(
        usability(&e, Situation::Lookup, at(610_000)),
        Usability::Unusable
    );
    // Never an answer to a failing backend: only a stale-if-error window is.
    assert_eq!(
        usability(&e, Situation::BackendFailed, at(10_000)),
        Usability::Unusable
    );
    // Without validators, or with revalidate_for = 0, nothing is held past the windows.
    let l = lifetimes(&r, 200, &OriginSays::default(), at(0));
    assert_eq!(l.usable_until(), at(10_000));
    let l = lifetimes(&rules(10, 0, 0), 200, &tagged, at(0));
    assert_eq!(l.usable_until(), at(10_000));
    let mut h = HeaderMap::new();
    assert!(!has_validators(&h));
    assert!(!OriginSays::read(&h).validators);
    h.insert(ETAG, HeaderValue::from_static("\"v1\""));
    assert!(has_validators(&h));
    assert!(OriginSays::read(&h).validators);
}

#[test]
fn the_revalidation_period_starts_after_the_widest_window() {
    let mut r = rules(10, 20, 50);
    r.revalidate_for = SEC * 100;
    let tagged = OriginSays {
        validators: true,
        ..OriginSays::default()
    };
    let l = lifetimes(&r, 200, &tagged, at(0));
    assert_eq!(l.revalidate_until, at(160_000));
    let mut e = facts(l);
    e.has_validators = true;
    assert_eq!(
        usability(&e, Situation::Lookup, at(20_000)),
        Usability::StaleServable(StaleWhy::WhileRevalidate)
    );
    assert_eq!(
        usability(&e, Situation::Lookup, at(100_000)),
        Usability::MustRevalidate
    );
    // must-revalidate closes the windows: held for revalidation from the end of its life.
    let closed = OriginSays {
        must_revalidate: true,
        ..tagged
    };
    let l = lifetimes(&r, 200, &closed, at(0));
    assert_eq!(l.revalidate_until, at(110_000));
    // A negative answer is never held past its own TTL.
    r.negative = Some(Negative {
        ttl: SEC * 5,
        statuses: vec![404],
    });
    let l = lifetimes(&r, 404, &tagged, at(0));
    assert_eq!(l.usable_until(), at(5_000));
}

#[test]
fn s5_2_2_4_no_cache_with_validators_is_held_and_always_revalidated() {
    let mut r = rules(60, 30, 600);
    r.revalidate_for = SEC * 600;
    let origin = OriginSays {
        no_cache: true,
        must_revalidate: true,
        lifetime: Some(SEC * 5),
        validators: true,
        ..OriginSays::default()
    };
    let l = lifetimes(&r, 200, &origin, at(0));
    assert_eq!(l.fresh_until, at(0));
    assert_eq!(l.stale_if_error_until, at(0));
    let mut e = facts(l);
    e.has_validators = true;
    for now in [0, 1, 599_999] {
        assert_eq!(
            usability(&e, Situation::Lookup, at(now)),
            Usability::MustRevalidate,
            "{now}"
        );
    }
}

#[test]
fn soft_purged_entries_are_served_only_where_the_route_revalidates() {
    let l = lifetimes(&rules(10, 5, 0), 200, &OriginSays::default(), at(0));
    let mut e = facts(l);
    e.soft_purged = true;
    // Even while its TTL runs, a soft-purged entry is stale.
    assert_eq!(
        usability(&e, Situation::Lookup, at(1_000)),
        Usability::StaleServable(StaleWhy::SoftPurged)
    );
    assert_eq!(
        usability(&e, Situation::Lookup, at(14_999)),
        Usability::StaleServable(StaleWhy::SoftPurged)
    );
    assert_eq!(
        usability(&e, Situation::Lookup, at(15_000)),
        Usability::Unusable
    );
    e.route_revalidates = false;
    assert_eq!(
        usability(&e, Situation::Lookup, at(1_000)),
        Usability::Unusable
    );
    e.has_validators = true;
    assert_eq!(
        usability(&e, Situation::Lookup, at(1_000)),
        Usability::MustRevalidate
    );
    // A route without a window: the origin's own window does not serve soft-purged entries.
    let origin = OriginSays::read(&cc("stale-while-revalidate=60"));
    let l = lifetimes(&rules(10, 0, 0), 200, &origin, at(0));
    let mut e = facts(l);
    e.soft_purged = true;
    e.route_revalidates = false;
    assert_eq!(
        usability(&e, Situation::Lookup, at(1_000)),
        Usability::Unusable
    );
}

#[test]
fn a_clock_behind_the_entry_is_judged_by_the_instants() {
    // Stored at 100 s by an instance whose clock is ahead; this one reads 50 s.
    let l = lifetimes(&rules(10, 5, 20), 200, &OriginSays::default(), at(100_000));
    let e = facts(l);
    assert_eq!(
        usability(&e, Situation::Lookup, at(50_000)),
        Usability::Fresh
    );
    assert_eq!(usability(&e, Situation::Lookup, at(0)), Usability::Fresh);
}

#[test]
fn lifetimes_near_the_end_of_time_saturate() {
    let near = UnixMillis(u64::MAX - 1_000);
    let l = lifetimes(&rules(3600, 3600, 3600), 200, &OriginSays::default(), near);
    assert_eq!(l.fresh_until, UnixMillis::MAX);
    assert_eq!(l.usable_until(), UnixMillis::MAX);
    let e = facts(l);
    assert_eq!(
        usability(&e, Situation::Lookup, UnixMillis(u64::MAX - 1)),
        Usability::Fresh
    );
    // Nothing is fresh at the end of time itself (boundaries are exclusive).
    assert_eq!(
        usability(&e, Situation::Lookup, UnixMillis::MAX),
        Usability::Unusable
    );
    let huge = OriginSays {
        stale_if_error: Some(Duration::from_secs(u64::MAX)),
        ..OriginSays::default()
    };
    let l = lifetimes(&rules(1, 0, 0), 200, &huge, at(5));
    assert_eq!(l.stale_if_error_until, UnixMillis::MAX);
}
