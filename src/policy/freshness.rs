//! Freshness: how long a stored response is fresh, how long after that it may still be served
//! stale, and, for one entry at one instant, what it may be used for.
//!
//! Two pure functions. [`lifetimes`] runs once, when a response (or a `304` revalidating it) is
//! stored: from the route's rules ([`Rules`]), what the origin said ([`OriginSays`]) and the
//! time, it gives the entry's [`Lifetimes`]: `fresh_until` and the ends of its two stale
//! windows (RFC 5861 `stale-while-revalidate` and `stale-if-error`). [`usability`] runs on
//! every lookup that did not find a fresh entry: from those instants, whether a soft purge
//! marked the entry, the situation of the request and the time, it decides [`Usability`].
//!
//! Without `honor_origin`, the route's `ttl` (or `negative_ttl`) rules freshness and the origin
//! only widens the stale windows through its own `stale-while-revalidate=N` and
//! `stale-if-error=N` (the wider of the route's and the origin's window wins), or closes them
//! with `must-revalidate` / `proxy-revalidate`. [`OriginSays::lifetime`] and
//! [`OriginSays::no_cache`] are the seam for RFC 9111 freshness (honour-origin mode): set by a
//! caller that computed the origin's lifetime, they replace the route's TTL.
//!
//! Time is wall-clock milliseconds ([`UnixMillis`]) passed in by the caller: nothing here reads
//! a clock. Every sum saturates, so a lifetime near [`UnixMillis::MAX`] means "never".

use std::time::Duration;

use http::header::{CACHE_CONTROL, ETAG, LAST_MODIFIED};
use http::HeaderMap;

use crate::clock::UnixMillis;
use crate::policy::cacheability::list_items;

/// A route's freshness rules, as configured (see `docs/caching.md`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    /// How long a stored response is fresh (the route's `ttl`).
    pub ttl: Duration,
    /// How long after `ttl` an expired entry is still answered at once while one background
    /// request refreshes it; zero for none.
    pub stale_while_revalidate: Duration,
    /// How long after `ttl` an expired entry answers instead of a backend error; zero for none.
    pub stale_if_error: Duration,
    /// How long an entry with validators (`ETag` or `Last-Modified`) is still held after its
    /// stale windows, never answered without a successful revalidation: its validators make
    /// the fill conditional, and a `304` refreshes it. Zero: not held past the windows.
    pub revalidate_for: Duration,
    /// Negative caching: these statuses are stored, fresh for their own TTL and with no stale
    /// windows; `None` when the route stores none of them beyond `[cache].cacheable_statuses`.
    pub negative: Option<Negative>,
}

/// The statuses a route caches negatively, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negative {
    pub ttl: Duration,
    pub statuses: Vec<u16>,
}

impl Rules {
    /// The TTL `status` is fresh for under these rules, when it is a negative status.
    pub fn negative_ttl(&self, status: u16) -> Option<Duration> {
        self.negative
            .as_ref()
            .filter(|n| n.statuses.contains(&status))
            .map(|n| n.ttl)
    }

    /// Whether an expired entry of this route may feed a background refresh while it is
    /// served: soft-purged entries are served stale only where this holds.
    pub fn serves_while_revalidating(&self) -> bool {
        !self.stale_while_revalidate.is_zero()
    }
}

/// What the origin's response head says about freshness. [`OriginSays::read`] takes what the
/// route mode uses; an RFC 9111 mode sets `lifetime` and `no_cache` as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginSays {
    /// The origin's freshness lifetime (RFC 9111 §4.2.1), already reduced by the response's
    /// age; when set it replaces the route's TTL. `None` in route mode.
    pub lifetime: Option<Duration>,
    /// `stale-while-revalidate=N` (RFC 5861 §3).
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error=N` (RFC 5861 §4).
    pub stale_if_error: Option<Duration>,
    /// `must-revalidate` or `proxy-revalidate`: never served stale, not even on error.
    pub must_revalidate: bool,
    /// `no-cache` without field names: stored, but revalidated before every use (fresh for
    /// zero). Not set in route mode, where such a response is not stored.
    pub no_cache: bool,
    /// The response carries a validator (`ETag` or `Last-Modified`): it can be revalidated,
    /// so it is held for [`Rules::revalidate_for`] after its stale windows.
    pub validators: bool,
}

impl OriginSays {
    /// The directives of the response's `Cache-Control` that matter in route mode: the two
    /// RFC 5861 windows and `must-revalidate` / `proxy-revalidate`. A directive given twice
    /// keeps its first value; a value that is not a number of seconds is ignored.
    pub fn read(headers: &HeaderMap) -> OriginSays {
        let mut says = OriginSays {
            validators: has_validators(headers),
            ..OriginSays::default()
        };
        for item in list_items(headers, &CACHE_CONTROL) {
            if item.is("stale-while-revalidate") {
                says.stale_while_revalidate = says.stale_while_revalidate.or(seconds(item.value));
            } else if item.is("stale-if-error") {
                says.stale_if_error = says.stale_if_error.or(seconds(item.value));
            } else if item.is("must-revalidate") || item.is("proxy-revalidate") {
                says.must_revalidate = true;
            }
        }
        says
    }
}

/// A delta-seconds value (RFC 9111 §1.2.2): digits only; too large saturates.
fn seconds(value: Option<&[u8]>) -> Option<Duration> {
    let digits = value?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let secs = digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    Some(Duration::from_secs(secs.unwrap_or(u64::MAX)))
}

/// An entry's instants: fresh before `fresh_until`; from then on, answered at once while one
/// request refreshes it before `stale_while_revalidate_until`, and instead of a backend error
/// before `stale_if_error_until`. A window that is closed ends at `fresh_until`. Until
/// `revalidate_until` (at least the end of both windows) it is held for revalidation only:
/// never answered before the backend confirms it with a `304`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub fresh_until: UnixMillis,
    pub stale_while_revalidate_until: UnixMillis,
    pub stale_if_error_until: UnixMillis,
    pub revalidate_until: UnixMillis,
}

impl Lifetimes {
    /// Whether the entry has a `stale-if-error` window and `now` is inside it (a closed window
    /// serves nothing, not even while the entry's TTL runs).
    pub fn if_error_open(&self, now: UnixMillis) -> bool {
        self.stale_if_error_until > self.fresh_until && now < self.stale_if_error_until
    }

    /// The last instant the entry can be of any use (answered, or revalidated): stores keep
    /// it until then, not longer.
    pub fn usable_until(&self) -> UnixMillis {
        self.fresh_until
            .max(self.stale_while_revalidate_until)
            .max(self.stale_if_error_until)
            .max(self.revalidate_until)
    }
}

/// The entry's lifetimes when stored (or revalidated) at `now` with this `status`.
///
/// A negative status of the route (`negative_ttl`) is fresh for its own TTL and has no stale
/// windows: an answer saying "not there" is not worth keeping past its short life. Otherwise
/// the fresh lifetime is the origin's when it gives one (`honor_origin`), else the route's
/// `ttl`; each stale window is the wider of the route's and the origin's, and none stays open
/// when the origin says `must-revalidate`. A response with validators is then held for
/// revalidation for the route's `revalidate_for` past the end of its windows (its fresh life
/// when they are closed, as with `no-cache` or `must-revalidate`).
pub fn lifetimes(rules: &Rules, status: u16, origin: &OriginSays, now: UnixMillis) -> Lifetimes {
    if let Some(ttl) = rules.negative_ttl(status) {
        let fresh_until = now.plus(ttl);
        return Lifetimes {
            fresh_until,
            stale_while_revalidate_until: fresh_until,
            stale_if_error_until: fresh_until,
            revalidate_until: fresh_until,
        };
    }
    let fresh = if origin.no_cache {
        Duration::ZERO
    } else {
        origin.lifetime.unwrap_or(rules.ttl)
    };
    let fresh_until = now.plus(fresh);
    let closed = origin.must_revalidate;
    let open = |route: Duration, says: Option<Duration>| {
        if closed {
            fresh_until
        } else {
            fresh_until.plus(route.max(says.unwrap_or(Duration::ZERO)))
        }
    };
    let stale_while_revalidate_until =
        open(rules.stale_while_revalidate, origin.stale_while_revalidate);
    let stale_if_error_until = open(rules.stale_if_error, origin.stale_if_error);
    let windows_end = stale_while_revalidate_until.max(stale_if_error_until);
    let revalidate_until = if origin.validators {
        windows_end.plus(rules.revalidate_for)
    } else {
        windows_end
    };
    Lifetimes {
        fresh_until,
        stale_while_revalidate_until,
        stale_if_error_until,
        revalidate_until,
    }
}

/// Why an entry that is no longer fresh may still be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleWhy {
    /// Inside its `stale-while-revalidate` window: answered at once, refreshed in the background.
    WhileRevalidate,
    /// Inside its `stale-if-error` window, and the backend failed.
    IfError,
    /// A soft purge marked it, and its route serves while revalidating: answered at once while
    /// one background request refreshes it.
    SoftPurged,
}

/// What the request needs the entry for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Situation {
    /// An ordinary lookup: the backend has not been asked.
    Lookup,
    /// The backend was asked for this key and failed (unreachable, timed out or 5xx).
    BackendFailed,
}

/// What one entry may be used for at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usability {
    /// Answer from it.
    Fresh,
    /// Answer from it, marked stale; in a [`Situation::Lookup`], refresh it in the background.
    StaleServable(StaleWhy),
    /// Ask the backend first: the entry's validators make the request conditional, and it may
    /// still answer should the backend fail (inside its `stale-if-error` window).
    MustRevalidate,
    /// Of no use any more: treat it as absent.
    Unusable,
}

/// What [`usability`] reads of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFacts {
    pub lifetimes: Lifetimes,
    /// A soft purge marked the entry stale.
    pub soft_purged: bool,
    /// The entry carries an `ETag` or a `Last-Modified` to revalidate with.
    pub has_validators: bool,
    /// The entry's route serves while revalidating (see [`Rules::serves_while_revalidating`]).
    pub route_revalidates: bool,
}

/// Decides what an entry may be used for at `now`.
///
/// Boundaries are exclusive: an entry is fresh before `fresh_until` and stale from that very
/// instant; a window ending at `t` serves before `t` only, so a zero-length window never
/// serves. A `now` earlier than the entry's storing (another instance's clock ahead of this
/// one) is judged like any other instant: an entry is never fresher than its `fresh_until`.
pub fn usability(entry: &EntryFacts, situation: Situation, now: UnixMillis) -> Usability {
    let l = &entry.lifetimes;
    match situation {
        Situation::BackendFailed => {
            if l.if_error_open(now) {
                Usability::StaleServable(StaleWhy::IfError)
            } else {
                Usability::Unusable
            }
        }
        Situation::Lookup => {
            if entry.soft_purged {
                // The purge ended the entry's freshness whatever its TTL said; only a route
                // that serves while revalidating keeps answering from it, to the end of the
                // entry's window.
                let open = entry.route_revalidates
                    && l.stale_while_revalidate_until > l.fresh_until
                    && now < l.stale_while_revalidate_until;
                return if open {
                    Usability::StaleServable(StaleWhy::SoftPurged)
                } else {
                    fallback(entry, now)
                };
            }
            if now < l.fresh_until {
                Usability::Fresh
            } else if now < l.stale_while_revalidate_until {
                Usability::StaleServable(StaleWhy::WhileRevalidate)
            } else {
                fallback(entry, now)
            }
        }
    }
}

/// An entry that cannot answer a lookup: still worth a conditional request (it has validators
/// and is held for revalidation) or a fallback on error, or nothing.
fn fallback(entry: &EntryFacts, now: UnixMillis) -> Usability {
    let revalidates = entry.has_validators && now < entry.lifetimes.revalidate_until;
    if revalidates || entry.lifetimes.if_error_open(now) {
        Usability::MustRevalidate
    } else {
        Usability::Unusable
    }
}

/// Whether a stored head carries a validator a conditional request can use.
pub fn has_validators(headers: &HeaderMap) -> bool {
    headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED)
}

#[cfg(test)]
mod tests;
