//! Cacheability: whether a request may be answered from the cache and whether a response may be stored.
//!
//! We are a shared cache, so RFC 9111 applies where it does not conflict with the route rules.
//! The route TTL governs freshness: origin `max-age` and `s-maxage` are not consulted yet, and
//! `no-cache` responses are not stored because we do not revalidate yet.

use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, COOKIE, PRAGMA, SET_COOKIE,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, HeaderName, StatusCode};

/// Why a request is passed through uncached (feeds the Cache-Status detail, a log field and a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bypass {
    /// No route matches the path.
    NoRoute,
    /// The matching route is not cached.
    RouteNoCache,
    /// The request has a body.
    RequestBody,
    /// The route is keyed by tenant and the request names none.
    NoTenant,
    /// The request names a tenant that is not a valid id.
    InvalidTenant,
    /// The request target cannot be normalized without guessing.
    AmbiguousPath,
    /// The request carries credentials the key does not cover.
    Credentials,
    /// The client sent `Cache-Control: no-store`.
    RequestNoStore,
    /// The client sent `Cache-Control: no-cache` (or `Pragma: no-cache` alone).
    RequestNoCache,
    /// An authenticated route that lets anonymous callers through to the backend, uncached.
    Anonymous,
    /// The request carries `If-Match` or `If-Unmodified-Since`, which only the backend can
    /// judge.
    Precondition,
    /// `Cache-Control: only-if-cached` and nothing usable stored: answered `504` by cachegate,
    /// never forwarded (RFC 9111 §5.2.1.7).
    OnlyIfCached,
}

impl Bypass {
    /// Every reason, in discriminant order (counters are indexed by [`Bypass::index`]).
    pub const ALL: [Bypass; 12] = [
        Bypass::NoRoute,
        Bypass::RouteNoCache,
        Bypass::RequestBody,
        Bypass::NoTenant,
        Bypass::InvalidTenant,
        Bypass::AmbiguousPath,
        Bypass::Credentials,
        Bypass::RequestNoStore,
        Bypass::RequestNoCache,
        Bypass::Anonymous,
        Bypass::Precondition,
        Bypass::OnlyIfCached,
    ];

    /// The position in [`Bypass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable kebab-case label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Bypass::NoRoute => "no-route",
            Bypass::RouteNoCache => "route-no-cache",
            Bypass::RequestBody => "request-body",
            Bypass::NoTenant => "no-tenant",
            Bypass::InvalidTenant => "invalid-tenant",
            Bypass::AmbiguousPath => "ambiguous-path",
            Bypass::Credentials => "credentials",
            Bypass::RequestNoStore => "request-no-store",
            Bypass::RequestNoCache => "request-no-cache",
            Bypass::Anonymous => "anonymous",
            Bypass::Precondition => "precondition",
            Bypass::OnlyIfCached => "only-if-cached",
        }
    }
}

impl std::fmt::Display for Bypass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request facts the request-side checks need.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The request headers (after hop-by-hop headers were stripped).
    pub headers: &'a HeaderMap,
    /// Whether the route keys entries by tenant.
    pub tenant_keyed: bool,
    /// The route's vary headers.
    pub vary: &'a [HeaderName],
    /// What the request's `Cache-Control` does on the route: only `bypass` passes `no-cache`
    /// requests through (`honor` sends them to a fill, `ignore` serves them from the cache).
    pub request_cache_control: RequestCacheControl,
}

/// Request-side checks only (route/tenant/path decisions are made by the caller).
pub fn request_bypass(f: &RequestFacts<'_>) -> Option<Bypass> {
    if has_body(f.headers) {
        return Some(Bypass::RequestBody);
    }
    if has_directive(f.headers, &CACHE_CONTROL, "no-store") {
        return Some(Bypass::RequestNoStore);
    }
    // Pragma only counts when there is no Cache-Control at all (RFC 9111 section 5.4).
    let no_cache = if f.headers.contains_key(CACHE_CONTROL) {
        has_directive(f.headers, &CACHE_CONTROL, "no-cache")
    } else {
        has_directive(f.headers, &PRAGMA, "no-cache")
    };
    if no_cache && f.request_cache_control == RequestCacheControl::Bypass {
        return Some(Bypass::RequestNoCache);
    }
    if has_origin_preconditions(f.headers) {
        return Some(Bypass::Precondition);
    }
    // A credential may select what the origin returns. It is safe to cache only when the key
    // covers it: through the tenant (the route scopes callers by tenant) or as a vary header.
    for credential in [&AUTHORIZATION, &COOKIE] {
        if f.headers.contains_key(credential) && !f.tenant_keyed && !f.vary.contains(credential) {
            return Some(Bypass::Credentials);
        }
    }
    None
}

/// Whether a request has a body; an unreadable `Content-Length` counts as one.
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get_all(CONTENT_LENGTH)
        .iter()
        .any(|value| !matches!(value.to_str().map(|v| v.trim().parse::<u64>()), Ok(Ok(0))))
}

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotStored {
    /// The status is not in the route's cacheable list.
    Status,
    /// The response sets a cookie.
    SetCookie,
    /// `Cache-Control: private`, also with field names.
    Private,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: no-cache`, also with field names (we do not revalidate yet).
    NoCache,
    /// `Vary: *`.
    VaryStar,
    /// `Vary` names a credential, and nothing in the key tells its callers apart.
    VaryCredential,
    /// The URI already holds as many variants as its route allows.
    VaryLimit,
    /// `Content-Length` exceeds the maximum object size.
    TooLarge,
    /// `Content-Length` is not a single number.
    InvalidLength,
    /// The answer to a request with `Authorization`, without `public`, `must-revalidate` or
    /// `s-maxage` (honour-origin mode, RFC 9111 §3.5).
    Authorization,
    /// No explicit freshness, not `public`, and a status not cacheable by default
    /// (honour-origin mode, RFC 9111 §3).
    NoFreshness,
    /// The request method is not one the cache stores answers to (RFC 9111 §3).
    Method,
    /// The body's `Content-Encoding` is not one every client of the request's bucket decodes
    /// (`policy::encoding::serves`).
    Encoding,
}

impl NotStored {
    /// Every reason, in discriminant order (counters are indexed by [`NotStored::index`]).
    pub const ALL: [NotStored; 14] = [
        NotStored::Status,
        NotStored::SetCookie,
        NotStored::Private,
        NotStored::NoStore,
        NotStored::NoCache,
        NotStored::VaryStar,
        NotStored::VaryCredential,
        NotStored::VaryLimit,
        NotStored::TooLarge,
        NotStored::InvalidLength,
        NotStored::Authorization,
        NotStored::NoFreshness,
        NotStored::Method,
        NotStored::Encoding,
    ];

    /// The position in [`NotStored::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable kebab-case label.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotStored::Status => "status",
            NotStored::SetCookie => "set-cookie",
            NotStored::Private => "private",
            NotStored::NoStore => "no-store",
            NotStored::NoCache => "no-cache",
            NotStored::VaryStar => "vary-star",
            NotStored::VaryCredential => "vary-credential",
            NotStored::VaryLimit => "vary-limit",
            NotStored::TooLarge => "too-large",
            NotStored::InvalidLength => "invalid-length",
            NotStored::Authorization => "authorization",
            NotStored::NoFreshness => "no-freshness",
            NotStored::Method => "method",
            NotStored::Encoding => "encoding",
        }
    }
}

impl std::fmt::Display for NotStored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The route rules a response is checked against.
#[derive(Debug, Clone, Copy)]
pub struct StoreRules<'a> {
    /// Statuses that may be stored.
    pub cacheable_statuses: &'a [u16],
    /// The route's negative statuses (`negative_statuses` with `negative_ttl`), stored too.
    pub negative_statuses: &'a [u16],
    /// The largest body stored, in bytes.
    pub max_object_size: u64,
}

/// Whether a response may be stored. A response without `Content-Length` passes the size check
/// here; the caller must still stop buffering once `max_object_size` is exceeded.
pub fn response_storable(
    status: StatusCode,
    headers: &HeaderMap,
    rules: &StoreRules<'_>,
) -> Result<(), NotStored> {
    let code = status.as_u16();
    if !rules.cacheable_statuses.contains(&code) && !rules.negative_statuses.contains(&code) {
        return Err(NotStored::Status);
    }
    if headers.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    let (mut private, mut no_store, mut no_cache) = (false, false, false);
    for item in list_items(headers, &CACHE_CONTROL) {
        private |= item.is("private");
        no_store |= item.is("no-store");
        no_cache |= item.is("no-cache");
    }
    if private {
        return Err(NotStored::Private);
    }
    if no_store {
        return Err(NotStored::NoStore);
    }
    if no_cache {
        return Err(NotStored::NoCache);
    }
    // `Vary` is read by `policy::vary`: it selects a variant rather than refusing the response.
    check_length(headers, rules.max_object_size)
}

/// `Content-Length` against the largest object stored: one valid length, not over the bound.
pub(crate) fn check_length(headers: &HeaderMap, max_object_size: u64) -> Result<(), NotStored> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    if values.next().is_some() {
        return Err(NotStored::InvalidLength);
    }
    let length = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(NotStored::InvalidLength)?;
    if length > max_object_size {
        return Err(NotStored::TooLarge);
    }
    Ok(())
}

/// Headers that only concern one connection, never the resource: they are never forwarded or
/// stored, and cannot select an entry. The one list; `Connection` may name more per message.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Headers that only concern one connection and are never forwarded or stored.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The header names a `Connection` header declares hop-by-hop.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    list_items(headers, &CONNECTION)
        .filter_map(|item| HeaderName::from_bytes(item.name).ok())
        .collect()
}

/// Removes hop-by-hop headers, including those named in `Connection`.
///
/// On requests, call this before extracting the tenant or vary values: a client could otherwise
/// name `x-tenant-id` in `Connection` and have the key say one thing while the origin sees another.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_named(headers) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers kept in a stored entry: end-to-end only, no `Set-Cookie`, no `Age`.
///
/// `Date` is kept: it tells clients when the origin produced the body.
pub fn stored_headers(headers: &HeaderMap) -> HeaderMap {
    let named = connection_named(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let dropped = is_hop_by_hop(name)
            || named.contains(name)
            || name == SET_COOKIE
            || name == http::header::AGE;
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Whether any line of a comma-separated header holds `directive` (case-insensitive).
fn has_directive(headers: &HeaderMap, header: &HeaderName, directive: &str) -> bool {
    list_items(headers, header).any(|item| item.is(directive))
}

/// One item of a comma-separated header such as Cache-Control, Pragma, Vary or Connection:
/// `name` or `name=value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// The item name as sent; compare with [`Item::is`], which ignores case.
    pub name: &'a [u8],
    /// The argument, without surrounding quotes; backslash escapes inside quotes are left as sent.
    pub value: Option<&'a [u8]>,
}

impl Item<'_> {
    /// Whether the item is `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// All items of every line of a comma-separated header, in order; quoted commas do not split.
pub fn list_items<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = Item<'a>> {
    headers.get_all(name).into_iter().flat_map(|value| Items {
        rest: value.as_bytes(),
    })
}

/// Splits one header line into items, honouring quoted strings (which may hold commas).
struct Items<'a> {
    rest: &'a [u8],
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

impl<'a> Iterator for Items<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            let start = self.rest.iter().position(|&b| b != b',' && !is_ows(b))?;
            let s = &self.rest[start..];
            let name_end = s
                .iter()
                .position(|&b| b == b',' || b == b'=')
                .unwrap_or(s.len());
            let name = trim_ows(&s[..name_end]);
            let mut value = None;
            let mut end = name_end;
            if s.get(name_end) == Some(&b'=') {
                let after = name_end + 1;
                let skip = s[after..].iter().take_while(|&&b| is_ows(b)).count();
                let value_start = after + skip;
                if s.get(value_start) == Some(&b'"') {
                    // A quoted string ends at the first unescaped quote, or at the end of the line.
                    let mut i = value_start + 1;
                    while i < s.len() && s[i] != b'"' {
                        i += if s[i] == b'\\' { 2 } else { 1 };
                    }
                    let close = i.min(s.len());
                    value = Some(&s[value_start + 1..close]);
                    end = (close + 1).min(s.len());
                } else {
                    let value_end = s[value_start..]
                        .iter()
                        .position(|&b| b == b',')
                        .map_or(s.len(), |p| value_start + p);
                    value = Some(trim_ows(&s[value_start..value_end]));
                    end = value_end;
                }
            }
            // Anything between the item and the next comma is malformed and ignored.
            let next = s[end..]
                .iter()
                .position(|&b| b == b',')
                .map_or(s.len(), |p| end + p);
            self.rest = &s[next..];
            if !name.is_empty() {
                return Some(Item { name, value });
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// Most tags one response may declare; more are ignored (and the entry still stored), so an
/// origin bug cannot make one entry cost thousands of index slots.
pub const MAX_DECLARED_TAGS: usize = 64;
/// Longest declared tag kept; longer ones are ignored.
pub const MAX_TAG_LEN: usize = 256;

/// The tags an origin response declares in `names` headers (`Cache-Tag`, `Surrogate-Key`):
/// comma- and/or space-separated, duplicates dropped, first seen first.
pub fn declared_tags(headers: &HeaderMap, names: &[HeaderName]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for name in names {
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
                if tags.len() >= MAX_DECLARED_TAGS {
                    return tags;
                }
                if tag.len() <= MAX_TAG_LEN && !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_string());
                }
            }
        }
    }
    tags
}

#[cfg(test)]
mod declared_tag_tests {
    use super::*;

    fn check(values: &[(&str, &str)], expected: &[&str]) {
        let mut headers = HeaderMap::new();
        for (k, v) in values {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let names = [
            HeaderName::from_static("cache-tag"),
            HeaderName::from_static("surrogate-key"),
        ];
        assert_eq!(declared_tags(&headers, &names), expected, "{values:?}");
    }

    #[test]
    fn tags_are_split_on_commas_and_spaces_and_deduplicated() {
        check(&[("cache-tag", "a, b,c  d")], &["a", "b", "c", "d"]);
        check(&[("cache-tag", "a"), ("cache-tag", "b,a")], &["a", "b"]);
        check(
            &[("surrogate-key", "x y"), ("cache-tag", "z")],
            &["z", "x", "y"],
        );
        check(&[("x-other", "a")], &[]);
        check(&[("cache-tag", " , ")], &[]);
    }

    #[test]
    fn overlong_and_excess_tags_are_ignored() {
        let long = "t".repeat(MAX_TAG_LEN + 1);
        check(&[("cache-tag", &format!("{long},ok"))], &["ok"]);
        let many: Vec<String> = (0..MAX_DECLARED_TAGS + 10)
            .map(|i| format!("t{i}"))
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert("cache-tag", many.join(",").parse().unwrap());
        let names = [HeaderName::from_static("cache-tag")];
        assert_eq!(declared_tags(&headers, &names).len(), MAX_DECLARED_TAGS);
    }
}

/// The per-route switch `request_cache_control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestCacheControl {
    /// RFC 9111 §5.2.1: `no-cache`, `max-age`, `max-stale`, `min-fresh`, `only-if-cached`,
    /// `no-store`. The default with `honor_origin`.
    Honor,
    /// `no-cache` and `no-store` (and `Pragma: no-cache`) pass the request through uncached;
    /// other directives are ignored. The default without `honor_origin`.
    #[default]
    Bypass,
    /// Fresh entries are served whatever the request asks; `no-store` answers are still never
    /// stored.
    Ignore,
}

impl RequestCacheControl {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestCacheControl::Honor => "honor",
            RequestCacheControl::Bypass => "bypass",
            RequestCacheControl::Ignore => "ignore",
        }
    }

    /// Reads the config spelling.
    pub fn parse(text: &str) -> Option<RequestCacheControl> {
        match text {
            "honor" => Some(RequestCacheControl::Honor),
            "bypass" => Some(RequestCacheControl::Bypass),
            "ignore" => Some(RequestCacheControl::Ignore),
            _ => None,
        }
    }
}

/// Preconditions only the origin server can judge (`If-Match`, `If-Unmodified-Since`): their
/// presence sends the request there (RFC 9111 §4.3.2 leaves them to the origin).
pub fn has_origin_preconditions(request: &HeaderMap) -> bool {
    request.contains_key(http::header::IF_MATCH)
        || request.contains_key(http::header::IF_UNMODIFIED_SINCE)
}
