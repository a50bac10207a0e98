//! Refreshing a held entry: the validators a fill sends for it, the entry a `304` refreshes
//! (RFC 9111 §3.2), and what a backend failure is called when the held entry answers instead.

use crate::clock::UnixMillis;
use crate::error::ProxyError;
use crate::policy::cacheability;
use crate::policy::freshness::{self, Rules};
use crate::policy::http_cache as http_cache_policy;
use crate::policy::outcome::BackendFault;
use crate::proxy::http_cache::{system_time, unix_millis};
use crate::store::{compact, CachedResponse};

/// Adds the stored validators to a fill request: `If-None-Match` from the `ETag`,
/// `If-Modified-Since` from the `Last-Modified`. True when it added any.
pub(super) fn add_validators(request: &mut http::HeaderMap, stored: &http::HeaderMap) -> bool {
    let mut added = false;
    if let Some(etag) = stored.get(http::header::ETAG) {
        request.insert(http::header::IF_NONE_MATCH, etag.clone());
        added = true;
    }
    if let Some(modified) = stored.get(http::header::LAST_MODIFIED) {
        request.insert(http::header::IF_MODIFIED_SINCE, modified.clone());
        added = true;
    }
    added
}

/// The held entry refreshed by a `304` (RFC 9111 §3.2): the header fields the `304` carries
/// replace the stored ones of the same name (bar `Content-Length`, which describes the 304's
/// own empty body, and what is never stored), and its lifetimes start again now. The body
/// is the stored one; the entry is compacted again so nothing in it refers to the
/// connection's buffers.
pub(super) fn revalidated(
    held: &CachedResponse,
    not_modified: &http::HeaderMap,
    rules: &Rules,
    switches: &http_cache_policy::Rules,
    request_time: UnixMillis,
) -> CachedResponse {
    // The 304's fields replace the stored ones (RFC 9111 §3.2, §4.3.4), its length aside.
    let mut update = cacheability::stored_headers(not_modified);
    update.remove(http::header::CONTENT_LENGTH);
    let updated = http_cache_policy::validate::updated_headers(&held.headers().to_map(), &update);
    let content = compact(held.status(), &updated, std::iter::once(&held.body()));
    let (stored_at, origin) = http_cache_policy::origin_says(
        switches,
        held.status(),
        &updated,
        system_time(request_time),
        system_time(UnixMillis::now()),
    );
    let stored_at = unix_millis(stored_at);
    let mut entry = held.clone();
    entry.content = content;
    let lifetimes = freshness::lifetimes(rules, held.status().as_u16(), &origin, stored_at);
    entry.set_times(stored_at, lifetimes);
    entry
}

/// What the backend's failure is called in `Cache-Status` when a stale entry answers it.
pub(super) fn fault_of(err: &ProxyError) -> BackendFault {
    match err {
        ProxyError::UpstreamConnect(_) => BackendFault::Down,
        ProxyError::UpstreamTimeout(_) => BackendFault::Timeout,
        _ => BackendFault::Broken,
    }
}
