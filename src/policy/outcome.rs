//! Named outcomes of a request, and the RFC 9211 `Cache-Status` value each one sends.
//!
//! One enum feeds the response header, the log field and the stats counters alike, so the three
//! never disagree about what happened.

use crate::policy::cacheability::{Bypass, NotStored};
use http::HeaderValue;

/// What cachegate did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from a fresh stored entry.
    Hit,
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
    /// A short label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss(Fill::Stored) => "miss-stored",
            Outcome::Miss(_) => "miss",
            Outcome::UriMiss(Fill::Stored) => "uri-miss-stored",
            Outcome::UriMiss(_) => "uri-miss",
            Outcome::Collapsed => "collapsed",
            Outcome::Bypass(_) => "bypass",
            Outcome::CoalesceTimeout => "coalesce-timeout",
            Outcome::Method => "method",
        }
    }

    /// The `Cache-Status` header value (RFC 9211), `cachegate` being the cache's name.
    pub fn cache_status(&self) -> HeaderValue {
        let text = match self {
            Outcome::Hit => return HeaderValue::from_static("cachegate; hit"),
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
            Outcome::Bypass(reason @ (Bypass::RequestNoCache | Bypass::RequestNoStore)) => {
                format!("cachegate; fwd=request; detail={}", reason.as_str())
            }
            Outcome::Method => return HeaderValue::from_static("cachegate; fwd=method"),
            Outcome::Bypass(reason) => format!("cachegate; fwd=bypass; detail={}", reason.as_str()),
            Outcome::CoalesceTimeout => {
                return HeaderValue::from_static("cachegate; fwd=miss; detail=coalesce-timeout")
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
    }
}
