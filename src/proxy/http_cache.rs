//! HTTP caching at the edges of the read path: a found entry checked against the request's own
//! `Cache-Control` (where the route honours it), and answered the way the request asks: `304`
//! when its `If-None-Match` / `If-Modified-Since` holds, `206` / `416` for a single byte range,
//! the full entry otherwise. The decisions are `policy::http_cache`'s; this module only builds
//! responses. A request with none of those headers takes the plain path, which costs nothing
//! beyond a few header lookups.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    HeaderValue, AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, PRAGMA, RANGE,
};
use http::{Method, Response, StatusCode};

use super::from_entry;
use crate::body::ProxyBody;
use crate::clock::UnixMillis;
pub(super) use crate::policy::http_cache::request::Use;
use crate::policy::http_cache::request::{self, Stored};
use crate::policy::http_cache::{conditional, directives, freshness, range, RequestCacheControl};
use crate::policy::route::Route;
use crate::store::CachedResponse;

/// A wall-clock instant as the policy reads it.
pub(super) fn system_time(t: UnixMillis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.0)
}

/// The policy's instant back in the store's terms.
pub(super) fn unix_millis(t: SystemTime) -> UnixMillis {
    UnixMillis(
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}

/// Whether a found (fresh) entry may answer this request, by the request's `Cache-Control`
/// on routes that honour it (RFC 9111 §5.2.1); elsewhere it always may.
pub(super) fn entry_use(
    route: &Route,
    headers: &http::HeaderMap,
    entry: &CachedResponse,
    now: UnixMillis,
) -> Use {
    if route.http.request_cache_control != RequestCacheControl::Honor
        || !(headers.contains_key(CACHE_CONTROL) || headers.contains_key(PRAGMA))
    {
        return Use::Stored { stale: false };
    }
    let asked = directives::request(headers);
    let stored = Stored {
        age: entry.age(now).as_secs(),
        lifetime: entry.ttl().as_secs(),
        stale_forbidden: freshness::stale_forbidden(&directives::response(
            &entry.headers().to_map(),
        )),
    };
    request::decide(&asked, Some(stored))
}

/// Whether an entry held past its freshness may answer this request, by the request's
/// `Cache-Control` (RFC 9111 §5.2.1); `None` where the route does not honour it or the request
/// sends none, and the cache's own rules decide alone. `servable`: those rules would answer it
/// at once; `purged`: a soft purge marked it.
pub(super) fn held_use(
    route: &Route,
    headers: &http::HeaderMap,
    entry: &CachedResponse,
    (servable, purged): (bool, bool),
    now: UnixMillis,
) -> Option<Use> {
    if route.http.request_cache_control != RequestCacheControl::Honor
        || !(headers.contains_key(CACHE_CONTROL) || headers.contains_key(PRAGMA))
    {
        return None;
    }
    let asked = directives::request(headers);
    if asked.is_empty() {
        return None;
    }
    let stored = Stored {
        age: entry.age(now).as_secs(),
        lifetime: entry.ttl().as_secs(),
        stale_forbidden: freshness::stale_forbidden(&directives::response(
            &entry.headers().to_map(),
        )),
    };
    Some(request::decide_held(
        &asked,
        request::Held {
            stored,
            servable,
            purged,
        },
    ))
}

/// `only-if-cached` on a route that honours request directives, with nothing usable stored.
pub(super) fn only_if_cached(route: &Route, headers: &http::HeaderMap) -> bool {
    route.http.request_cache_control == RequestCacheControl::Honor
        && headers.contains_key(CACHE_CONTROL)
        && directives::request(headers).only_if_cached
}

/// `504` for `only-if-cached` when nothing usable is stored (RFC 9111 §5.2.1.7).
pub(super) fn gateway_timeout() -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(
        r#"{"error":"only_if_cached","detail":"nothing usable is stored for this request"}"#,
    ));
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The answer to a request from a stored entry: `304`, `206`, `416` or the full entry.
pub(super) fn respond(
    entry: &CachedResponse,
    method: &Method,
    headers: &http::HeaderMap,
    now: Option<UnixMillis>,
) -> Response<ProxyBody> {
    let head = *method == Method::HEAD;
    let conditional =
        headers.contains_key(IF_NONE_MATCH) || headers.contains_key(IF_MODIFIED_SINCE);
    if !conditional && !headers.contains_key(RANGE) {
        return from_entry(entry, entry.headers().to_map(), head, now);
    }
    let stored = entry.headers().to_map();
    // RFC 9110 §13.2.1: preconditions apply only where the answer would be a 2xx.
    if conditional
        && entry.status().is_success()
        && conditional::evaluate(method, headers, &stored) == conditional::Evaluation::NotModified
    {
        let mut response = Response::new(ProxyBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = conditional::not_modified_headers(&stored);
        if let Some(now) = now {
            response
                .headers_mut()
                .insert(AGE, HeaderValue::from(entry.age(now).as_secs()));
        }
        return response;
    }
    let len = entry.content.body_len() as u64;
    match range::evaluate(method, headers, entry.status(), &stored, len) {
        range::Ranged::Full => from_entry(entry, stored, head, now),
        range::Ranged::Partial { start, end } => {
            let mut response = from_entry(entry, stored, head, now);
            let body = entry.body().slice(start as usize..=end as usize);
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = response.headers_mut();
            h.insert(CONTENT_RANGE, range::content_range(start, end, len));
            h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            *response.body_mut() = ProxyBody::Full(Some(body));
            response
        }
        range::Ranged::Unsatisfiable => {
            let mut response = Response::new(ProxyBody::empty());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let h = response.headers_mut();
            h.insert(CONTENT_RANGE, range::unsatisfiable_range(len));
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
            response
        }
    }
}
