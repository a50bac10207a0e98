//! Named outcomes of a request, and the RFC 9211 `Cache-Status` value each one sends.
//!
//! One enum feeds the response header, the log field and the stats counters alike, so the three
//! never disagree about what happened.

use crate::policy::cacheability::{Bypass, NotStored};
use http::HeaderValue;

/// What cachegate did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from a fresh stored entry in this instance's memory.
    Hit,
    /// Answered from a fresh entry of the shared (Redis) tier, which another instance (or this
    /// one, earlier) filled.
    SharedHit,
    /// Fetched from the backend by this request's fill, with what happened to the response.
    Miss(Fill),
    /// Like `Miss`, and the cache held no response at all for the request's path (so none for
    /// its URI either). Reported on routes with `vary`, where a miss could otherwise be either.
    UriMiss(Fill),
    /// Answered with the response another request's fill fetched at the same time.
    Collapsed,
    /// Passed through uncached, for this reason.
    Bypass(Bypass),
    /// A waiter gave up on another request's fill and went to the backend alone, uncached.
    CoalesceTimeout,
    /// A write (or another method the cache does not answer) forwarded to the backend.
    Method,
    /// Answered by cachegate itself with an error, never forwarded: the request or its caller
    /// was refused.
    Refused(Refusal),
    /// The backend could not be reached or answered badly (or cachegate failed): answered with
    /// an error.
    Failed(Failure),
    /// Answered from an entry that is no longer fresh, for this reason (see
    /// `policy::freshness`).
    Stale(StaleServed),
    /// The backend confirmed a stored entry with `304 Not Modified`: its metadata was
    /// refreshed (no body sent) and the request answered from it.
    Revalidated(Fill),
}

/// Why a stale entry answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleServed {
    /// Inside its `stale-while-revalidate` window; one background request refreshes it.
    WhileRevalidate,
    /// A soft purge marked it and its route serves while revalidating; one background request
    /// refreshes it.
    SoftPurged,
    /// Inside its `stale-if-error` window, instead of the backend's failure.
    IfError(BackendFault),
    /// Past its windows (or held for revalidation only), within the `max-stale` the request
    /// allows (RFC 9111 §5.2.1.2); one background request refreshes it.
    MaxStale,
}

/// How the backend failed a fill that a stale entry then answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendFault {
    /// The connection could not be made (refused, reset, DNS): `detail=backend-down`.
    Down,
    /// No answer within `[upstream].timeout`: `detail=timeout`.
    Timeout,
    /// A broken answer (protocol error, body cut off): `detail=backend-error`.
    Broken,
    /// A 5xx answer: `detail=status-503` and so on.
    Status(u16),
}

impl BackendFault {
    /// The `detail` token of `Cache-Status`.
    pub fn detail(&self) -> std::borrow::Cow<'static, str> {
        match self {
            BackendFault::Down => "backend-down".into(),
            BackendFault::Timeout => "timeout".into(),
            BackendFault::Broken => "backend-error".into(),
            BackendFault::Status(code) => format!("status-{code}").into(),
        }
    }
}

/// Why cachegate refused a request itself. Each is answered with its own status and JSON code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: a malformed request (Host, or a write's ambiguous path).
    BadRequest,
    /// 421: a Host this instance does not serve.
    Misdirected,
    /// 401: no credential on a route that needs one.
    Unauthenticated,
    /// 401 (or the identity endpoint's own 401/403): a credential that was refused.
    InvalidCredential,
    /// 403: the credential does not cover the tenant (or user) the request is for.
    Forbidden,
    /// 503: the identity endpoint could not be asked.
    AuthUnavailable,
    /// 431: the request head is larger than `[server] max_header_bytes`.
    HeadersTooLarge,
    /// 413: the request body is larger than `[server] max_request_body`.
    BodyTooLarge,
}

/// Why a forwarded request (or cachegate itself) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 502/504: the backend could not be reached, timed out or broke the protocol.
    Upstream,
    /// 500: cachegate itself failed.
    Internal,
}

impl Refusal {
    /// Every refusal, in discriminant order (counters are indexed by [`Refusal::index`]).
    pub const ALL: [Refusal; 8] = [
        Refusal::BadRequest,
        Refusal::Misdirected,
        Refusal::Unauthenticated,
        Refusal::InvalidCredential,
        Refusal::Forbidden,
        Refusal::AuthUnavailable,
        Refusal::HeadersTooLarge,
        Refusal::BodyTooLarge,
    ];

    /// The position in [`Refusal::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable kebab-case label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad-request",
            Refusal::Misdirected => "misdirected",
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::InvalidCredential => "invalid-credential",
            Refusal::Forbidden => "forbidden",
            Refusal::AuthUnavailable => "auth-unavailable",
            Refusal::HeadersTooLarge => "headers-too-large",
            Refusal::BodyTooLarge => "body-too-large",
        }
    }
}

impl Failure {
    /// Every failure, in discriminant order.
    pub const ALL: [Failure; 2] = [Failure::Upstream, Failure::Internal];

    /// The position in [`Failure::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable kebab-case label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Failure::Upstream => "upstream",
            Failure::Internal => "internal",
        }
    }
}

/// What a fill did with the backend's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Stored,
    NotStored(NotStored),
    /// An invalidation overtook the fill, so its response was not kept.
    Fenced,
}

impl Outcome {
    /// A short label for the log line (the reasons are in `Cache-Status` and the counters).
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::SharedHit => "hit-shared",
            Outcome::Miss(Fill::Stored) => "miss-stored",
            Outcome::Miss(_) => "miss",
            Outcome::UriMiss(Fill::Stored) => "uri-miss-stored",
            Outcome::UriMiss(_) => "uri-miss",
            Outcome::Collapsed => "collapsed",
            Outcome::Bypass(_) => "bypass",
            Outcome::CoalesceTimeout => "coalesce-timeout",
            Outcome::Method => "method",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
            Outcome::Stale(StaleServed::WhileRevalidate) => "stale-while-revalidate",
            Outcome::Stale(StaleServed::SoftPurged) => "stale-soft-purged",
            Outcome::Stale(StaleServed::IfError(_)) => "stale-if-error",
            Outcome::Stale(StaleServed::MaxStale) => "stale-max-stale",
            Outcome::Revalidated(_) => "revalidated",
        }
    }

    /// The `Cache-Status` header value (RFC 9211), `cachegate` being the cache's name.
    pub fn cache_status(&self) -> HeaderValue {
        let text = match self {
            Outcome::Hit => return HeaderValue::from_static("cachegate; hit"),
            Outcome::SharedHit => return HeaderValue::from_static("cachegate; hit; detail=shared"),
            Outcome::Miss(Fill::Stored) => {
                return HeaderValue::from_static("cachegate; fwd=miss; stored")
            }
            Outcome::Miss(Fill::Fenced) => {
                return HeaderValue::from_static("cachegate; fwd=miss; detail=fenced")
            }
            Outcome::Miss(Fill::NotStored(reason)) => {
                format!("cachegate; fwd=miss; detail={}", reason.as_str())
            }
            Outcome::UriMiss(Fill::Stored) => {
                return HeaderValue::from_static("cachegate; fwd=uri-miss; stored")
            }
            Outcome::UriMiss(Fill::Fenced) => {
                return HeaderValue::from_static("cachegate; fwd=uri-miss; detail=fenced")
            }
            Outcome::UriMiss(Fill::NotStored(reason)) => {
                format!("cachegate; fwd=uri-miss; detail={}", reason.as_str())
            }
            Outcome::Collapsed => {
                return HeaderValue::from_static("cachegate; fwd=miss; collapsed")
            }
            // Answered 504 by cachegate, never forwarded.
            Outcome::Bypass(Bypass::OnlyIfCached) => {
                return HeaderValue::from_static("cachegate; detail=only-if-cached")
            }
            Outcome::Bypass(
                reason @ (Bypass::RequestNoCache | Bypass::RequestNoStore | Bypass::Precondition),
            ) => {
                format!("cachegate; fwd=request; detail={}", reason.as_str())
            }
            Outcome::Method => return HeaderValue::from_static("cachegate; fwd=method"),
            Outcome::Bypass(reason) => format!("cachegate; fwd=bypass; detail={}", reason.as_str()),
            Outcome::CoalesceTimeout => {
                return HeaderValue::from_static("cachegate; fwd=miss; detail=coalesce-timeout")
            }
            // Not forwarded, so no `fwd` (RFC 9211 §2.2 names why a request *went* forward);
            // the detail is the refusal.
            Outcome::Refused(reason) => format!("cachegate; detail={}", reason.as_str()),
            Outcome::Failed(_) => {
                return HeaderValue::from_static("cachegate; fwd=miss; detail=error")
            }
            Outcome::Stale(StaleServed::WhileRevalidate) => {
                return HeaderValue::from_static("cachegate; hit; fwd=stale")
            }
            Outcome::Stale(StaleServed::SoftPurged) => {
                return HeaderValue::from_static("cachegate; hit; fwd=stale; detail=soft-purged")
            }
            Outcome::Stale(StaleServed::IfError(fault)) => {
                format!("cachegate; hit; fwd=stale; detail={}", fault.detail())
            }
            Outcome::Stale(StaleServed::MaxStale) => {
                return HeaderValue::from_static("cachegate; hit; fwd=stale; detail=max-stale")
            }
            Outcome::Revalidated(Fill::Stored) => {
                return HeaderValue::from_static("cachegate; fwd=stale; fwd-status=304; stored")
            }
            Outcome::Revalidated(Fill::Fenced) => {
                return HeaderValue::from_static(
                    "cachegate; fwd=stale; fwd-status=304; detail=fenced",
                )
            }
            Outcome::Revalidated(Fill::NotStored(reason)) => {
                format!(
                    "cachegate; fwd=stale; fwd-status=304; detail={}",
                    reason.as_str()
                )
            }
        };
        // Reason strings are lower-case ASCII tokens, always a valid header value.
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("cachegate"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(outcome: Outcome, expected: &str) {
        assert_eq!(outcome.cache_status(), expected, "{outcome:?}");
    }

    #[test]
    fn each_outcome_has_its_rfc9211_value() {
        check(Outcome::Hit, "cachegate; hit");
        check(Outcome::SharedHit, "cachegate; hit; detail=shared");
        check(Outcome::Miss(Fill::Stored), "cachegate; fwd=miss; stored");
        check(
            Outcome::Miss(Fill::Fenced),
            "cachegate; fwd=miss; detail=fenced",
        );
        check(Outcome::Collapsed, "cachegate; fwd=miss; collapsed");
        check(
            Outcome::UriMiss(Fill::Stored),
            "cachegate; fwd=uri-miss; stored",
        );
        check(Outcome::Method, "cachegate; fwd=method");
        check(
            Outcome::Miss(Fill::NotStored(NotStored::SetCookie)),
            "cachegate; fwd=miss; detail=set-cookie",
        );
        check(
            Outcome::Bypass(Bypass::NoRoute),
            "cachegate; fwd=bypass; detail=no-route",
        );
        check(
            Outcome::Bypass(Bypass::RequestNoCache),
            "cachegate; fwd=request; detail=request-no-cache",
        );
        check(
            Outcome::Refused(Refusal::Unauthenticated),
            "cachegate; detail=unauthenticated",
        );
        check(
            Outcome::Refused(Refusal::Misdirected),
            "cachegate; detail=misdirected",
        );
        check(
            Outcome::Failed(Failure::Upstream),
            "cachegate; fwd=miss; detail=error",
        );
        check(
            Outcome::Stale(StaleServed::WhileRevalidate),
            "cachegate; hit; fwd=stale",
        );
        check(
            Outcome::Stale(StaleServed::SoftPurged),
            "cachegate; hit; fwd=stale; detail=soft-purged",
        );
        check(
            Outcome::Stale(StaleServed::MaxStale),
            "cachegate; hit; fwd=stale; detail=max-stale",
        );
        for (fault, detail) in [
            (BackendFault::Down, "backend-down"),
            (BackendFault::Timeout, "timeout"),
            (BackendFault::Broken, "backend-error"),
            (BackendFault::Status(503), "status-503"),
        ] {
            check(
                Outcome::Stale(StaleServed::IfError(fault)),
                &format!("cachegate; hit; fwd=stale; detail={detail}"),
            );
        }
        check(
            Outcome::Revalidated(Fill::Stored),
            "cachegate; fwd=stale; fwd-status=304; stored",
        );
        check(
            Outcome::Revalidated(Fill::Fenced),
            "cachegate; fwd=stale; fwd-status=304; detail=fenced",
        );
    }

    #[test]
    fn refusals_and_failures_are_listed_in_index_order() {
        for (i, refusal) in Refusal::ALL.iter().enumerate() {
            assert_eq!(refusal.index(), i);
        }
        for (i, failure) in Failure::ALL.iter().enumerate() {
            assert_eq!(failure.index(), i);
        }
    }
}
