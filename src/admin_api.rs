//! The admin API's JSON bodies: the one definition the server reads and `cachegate`'s operator
//! subcommands write.
//!
//! `admin` and `proxy` deserialize these types and `admin_client` serializes them, so a field
//! the server accepts is a field the command line can send, and a test in `admin_client` builds
//! every one of them from command-line flags. This module is a leaf but for one list: serde
//! only, no HTTP; the hop-by-hop header names come from `policy::cacheability`. What a body *means* is checked elsewhere: `invalidation` validates a [`PurgeBody`]
//! whole, `proxy::warm` expands and checks a [`WarmRequest`]; only the syntax of what both
//! sides parse is here ([`WarmTarget`], [`check_warm_headers`]).

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

// === errors ===

/// The answer of `POST /reload` when the new config is in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadAnswer {
    pub reloaded: bool,
    /// The keys the new config changed that are in force now (`route`, `cache.default_ttl`,
    /// `webhook.secret`, ...).
    pub changed: Vec<String>,
    /// The keys it changed that take effect only after a restart (`server.listen`,
    /// `redis.url`, ...); the running process keeps their old values.
    pub restart_required: Vec<String>,
}

/// The `{"error", "detail"}` shape of every error cachegate answers itself (admin API and
/// webhook): `error` is a stable code, `detail` a sentence for people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub error: String,
    pub detail: String,
}

impl ErrorBody {
    pub fn new(error: &str, detail: &str) -> ErrorBody {
        ErrorBody {
            error: error.to_owned(),
            detail: detail.to_owned(),
        }
    }
}

/// Why the admin API answered `401`. The `detail` of the answer is [`Refusal::detail`], so the
/// command line can tell an instance without a token from a token that is not the instance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The instance has no admin token: every endpoint but `/healthz` is refused.
    NoTokenConfigured,
    /// The request carries no `Authorization: Bearer` header.
    MissingToken,
    /// The bearer token is not the instance's.
    WrongToken,
}

impl Refusal {
    const ALL: [Refusal; 3] = [
        Refusal::NoTokenConfigured,
        Refusal::MissingToken,
        Refusal::WrongToken,
    ];

    /// The `detail` of the `401` answer.
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::NoTokenConfigured => "no admin token is configured on this instance",
            Refusal::MissingToken => "missing bearer token",
            Refusal::WrongToken => "wrong bearer token",
        }
    }

    /// The refusal a `401` answer's `detail` names, if it is one of ours.
    pub fn from_detail(detail: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.detail() == detail)
    }
}

// === POST /purge (and the webhook) ===

/// A purge body as sent, before validation (`invalidation::PurgeRequest::from_json` validates it
/// whole). Every field refuses `null`, so a backend that serializes a missing value gets an error
/// instead of silently purging another scope (a `null` tenant would mean shared). Fields left
/// out are not serialized.
///
/// `organization_id` and `resource_type` are the legacy shape the backends' existing cache
/// managers send to the webhook; they live here only because one object is read with unknown
/// fields refused. The command line sends the native shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    #[serde(
        default,
        deserialize_with = "de_tenant",
        skip_serializing_if = "Option::is_none"
    )]
    pub tenant: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_tags",
        skip_serializing_if = "Option::is_none"
    )]
    pub tags: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "de_paths",
        skip_serializing_if = "Option::is_none"
    )]
    pub paths: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "de_prefixes",
        skip_serializing_if = "Option::is_none"
    )]
    pub prefixes: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "de_all",
        skip_serializing_if = "Option::is_none"
    )]
    pub all: Option<bool>,
    #[serde(
        default,
        deserialize_with = "de_soft",
        skip_serializing_if = "Option::is_none"
    )]
    pub soft: Option<bool>,
    #[serde(
        default,
        deserialize_with = "de_nonce",
        skip_serializing_if = "Option::is_none"
    )]
    pub nonce: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_credential_cache",
        skip_serializing_if = "Option::is_none"
    )]
    pub credential_cache: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_user",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_organization_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub organization_id: Option<OrgId>,
    #[serde(
        default,
        deserialize_with = "de_resource_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_type: Option<String>,
}

/// The value of `"credential_cache"` that forgets every verified credential.
pub const CREDENTIAL_CACHE_ALL: &str = "all";

/// Django serializes primary keys as numbers unless told otherwise, so the legacy tenant field
/// takes a non-negative integer as well as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, expecting = "expected a string or a non-negative integer")]
pub enum OrgId {
    Text(String),
    Number(u64),
}

/// Deserializes a present, non-null field and names the field in any error.
fn field<'de, D, T>(d: D, name: &str) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("field \"{name}\": {e}")))
}

fn de_tenant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    field(d, "tenant")
}
fn de_tags<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    field(d, "tags")
}
fn de_paths<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    field(d, "paths")
}
fn de_prefixes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    field(d, "prefixes")
}
fn de_all<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    field(d, "all")
}
fn de_soft<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    field(d, "soft")
}
fn de_credential_cache<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    field(d, "credential_cache")
}
fn de_user<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    field(d, "user")
}
fn de_nonce<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    field(d, "nonce")
}
fn de_organization_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OrgId>, D::Error> {
    field(d, "organization_id")
}
fn de_resource_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    field(d, "resource_type")
}

/// The answer to `POST /purge` and to the webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PurgeAnswer {
    /// Entries removed (or marked stale).
    pub purged: u64,
}

// === POST /warm ===

/// A `POST /warm` request. `tenant` is always serialized, as `null` for the shared scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    /// Sent as the route's tenant header when the route reads its tenant from a header.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Each a path (`/...`), warmed under `host`, or an absolute `http(s)` URL, warmed under the
    /// URL's own host (see [`WarmTarget`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// A route pattern exactly as in the config (e.g. `/api/faculty/{id}/`), warmed once per
    /// item of `captures`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<Capture>,
    /// The Host the paths are warmed under; without it, the single `[server] hosts` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Parallel fetches; default `[admin] warm_concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Request headers sent with every warm request, e.g. a service user's `Authorization`, or
    /// the `Accept` clients send. A warm request is then read exactly like a client's carrying
    /// them: verified by `[auth]` and keyed by the verified tenant. See [`check_warm_headers`].
    #[serde(default, skip_serializing_if = "WarmHeaders::is_empty")]
    pub headers: WarmHeaders,
}

/// The `headers` of a [`WarmRequest`]: header name to value. The values are credentials as far
/// as cachegate is concerned: `Debug` shows the names only, and an error reading them never
/// quotes what was sent.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WarmHeaders(pub BTreeMap<String, String>);

impl WarmHeaders {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl fmt::Debug for WarmHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "<redacted>")))
            .finish()
    }
}

impl<'de> Deserialize<'de> for WarmHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde's own message would quote a mistyped value, and a value may be a credential.
        BTreeMap::<String, String>::deserialize(d)
            .map(WarmHeaders)
            .map_err(|_| {
                serde::de::Error::custom(
                    "field \"headers\": expected an object of header names to string values",
                )
            })
    }
}

/// Most headers one warm request may carry.
pub const MAX_WARM_HEADERS: usize = 32;

/// Checks the headers of a warm request, as the command line builds them and as the server
/// reads them: each name an HTTP token, given once (names ignore case), and neither `Host` (it
/// has its own rule: `host`, or the URL's host), a hop-by-hop header (it concerns one
/// connection, never the answer) nor `Content-Length` (a warm request has no body);
/// each value non-empty, on one line, without control characters. Messages name a header by its
/// name when the name is valid, and never quote a value.
pub fn check_warm_headers(headers: &WarmHeaders) -> Result<(), String> {
    if headers.0.len() > MAX_WARM_HEADERS {
        return Err(format!(
            "at most {MAX_WARM_HEADERS} headers per warm request"
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in headers.iter() {
        check_warm_header(name, value)?;
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(format!("header {name} is given twice"));
        }
    }
    Ok(())
}

/// Checks one header of a warm request; see [`check_warm_headers`].
pub fn check_warm_header(name: &str, value: &str) -> Result<(), String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() {
        return Err("a header name is empty".to_string());
    }
    if !name.bytes().all(tchar) {
        // Not quoted: a mistyped line may hold the value too.
        return Err(
            "a header name is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
                .to_string(),
        );
    }
    let lower = name.to_ascii_lowercase();
    if lower == "host" {
        return Err(
            "Host is not sent as a header: give the host clients send (`--host`, \"host\") or full URLs"
                .to_string(),
        );
    }
    if lower == "content-length" {
        return Err(format!("header {name}: a warm request has no body"));
    }
    if crate::policy::cacheability::HOP_BY_HOP.contains(&lower.as_str()) {
        return Err(format!(
            "header {name} is hop-by-hop: it concerns one connection, never the answer"
        ));
    }
    if value.trim().is_empty() {
        return Err(format!("header {name} has an empty value"));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "the value of header {name} holds a line break or a control character"
        ));
    }
    Ok(())
}

/// The captures of one path of a route: a string for a one-capture route, else an object of
/// capture name to value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a capture is a string (one-capture routes) or an object of capture name to string"
)]
pub enum Capture {
    One(String),
    Named(BTreeMap<String, String>),
}

impl fmt::Display for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capture::One(value) => write!(f, "{value:?}"),
            Capture::Named(map) => {
                f.write_str("{")?;
                for (i, (name, value)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name:?}: {value:?}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// An item of [`WarmRequest::paths`], split into the host it names (if any) and the path and
/// query to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmTarget {
    /// The URL's host, lower-cased, without user info, a trailing `.`, or the scheme's default
    /// port (clients leave it out of `Host`); `None` for a plain path.
    pub host: Option<String>,
    /// Starts with `/`; never holds a fragment.
    pub path: String,
}

impl WarmTarget {
    /// Reads `/path?query`, `http(s)://host[:port][/path][?query]` or `//host/path`; a fragment
    /// is dropped.
    pub fn parse(item: &str) -> Result<WarmTarget, String> {
        let item = item.split('#').next().unwrap_or(item);
        let (default_port, rest) = if let Some(rest) = item.strip_prefix("//") {
            (None, rest)
        } else if item.starts_with('/') {
            return Ok(WarmTarget {
                host: None,
                path: item.to_owned(),
            });
        } else {
            let not_a_path = || format!("{item:?} is neither a path (/...) nor an http(s) URL");
            let (scheme, rest) = item.split_once("://").ok_or_else(not_a_path)?;
            let port = if scheme.eq_ignore_ascii_case("http") {
                ":80"
            } else if scheme.eq_ignore_ascii_case("https") {
                ":443"
            } else {
                return Err(not_a_path());
            };
            (Some(port), rest)
        };
        // The authority ends at the first `/` or `?`; a URL with neither is the root.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let path = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let mut host = authority.to_ascii_lowercase();
        if let Some(port) = default_port {
            if let Some(stripped) = host.strip_suffix(port) {
                host.truncate(stripped.len());
            }
        }
        if let Some(stripped) = host.strip_suffix('.') {
            host.truncate(stripped.len());
        }
        if host.is_empty() {
            return Err(format!("{item:?} names no host"));
        }
        Ok(WarmTarget {
            host: Some(host),
            path,
        })
    }
}

/// How one warmed path went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Warmed {
    /// The item as requested (path or URL), or the path a route's captures made.
    pub path: String,
    /// The answer's status; 0 when no request could be made.
    pub status: u16,
    /// The `Cache-Status` value of the warming request.
    pub cache: String,
    /// Why the path is not warm: the backend's error status, a `Cache-Status` that says it was
    /// not stored, or a request that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Warmed {
    /// A path failed when it was not stored for the clients to hit.
    pub fn failed(&self) -> bool {
        self.status >= 400 || self.error.is_some()
    }
}

/// The answer to `POST /warm`: `done + failed == results.len()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WarmReport {
    pub done: u64,
    pub failed: u64,
    pub results: Vec<Warmed>,
}

impl WarmReport {
    /// The report of these results, counted from them.
    pub fn of(results: Vec<Warmed>) -> WarmReport {
        let failed = results.iter().filter(|r| r.failed()).count() as u64;
        WarmReport {
            done: results.len() as u64 - failed,
            failed,
            results,
        }
    }
}

/// Most paths one `POST /warm` may list; the CLI sends long lists in batches.
pub const MAX_WARM_PATHS: usize = 10_000;

// === GET /entries ===

/// The filters of `GET /entries`, carried in the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntriesQuery {
    pub tenant: Option<String>,
    pub prefix: Option<String>,
    pub limit: Option<u64>,
}

impl EntriesQuery {
    /// `/entries` with the filters that are set, percent-encoded.
    pub fn path_and_query(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(tenant) = &self.tenant {
            pairs.push(format!("tenant={}", encode_query_value(tenant)));
        }
        if let Some(prefix) = &self.prefix {
            pairs.push(format!("prefix={}", encode_query_value(prefix)));
        }
        if let Some(limit) = self.limit {
            pairs.push(format!("limit={limit}"));
        }
        if pairs.is_empty() {
            "/entries".to_string()
        } else {
            format!("/entries?{}", pairs.join("&"))
        }
    }

    /// Reads a query string (`tenant=42&prefix=%2Fapi`); unknown parameters are refused.
    pub fn from_query(query: &str) -> Result<EntriesQuery, String> {
        let mut out = EntriesQuery::default();
        for (name, value) in query_pairs(query) {
            match name.as_str() {
                "tenant" => out.tenant = Some(value),
                "prefix" => out.prefix = Some(value),
                "limit" => match value.parse::<u64>() {
                    Ok(n) => out.limit = Some(n),
                    Err(_) => return Err("limit must be a positive integer".to_owned()),
                },
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}; expected tenant, prefix or limit"
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// The answer to `GET /entries`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EntriesAnswer {
    pub entries: Vec<Entry>,
}

/// One stored entry as the admin API describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Entry {
    /// The readable key (credentials as keyed digests).
    pub key: String,
    /// `""` for the shared scope.
    pub tenant: String,
    pub target: String,
    pub status: u16,
    pub ttl_left_secs: u64,
    pub age_secs: u64,
    pub size: u64,
    pub tags: Vec<String>,
    pub stale: bool,
    /// Lookups the memory tier answered with this entry since it was stored there.
    pub hits: u64,
}

// === GET /entries/top ===

/// The query of `GET /entries/top`: how many of the busiest entries to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopQuery {
    pub limit: Option<u64>,
}

impl TopQuery {
    /// Reads `limit=N`; other parameters are refused.
    pub fn from_query(query: &str) -> Result<TopQuery, String> {
        let mut out = TopQuery::default();
        for (name, value) in query_pairs(query) {
            match name.as_str() {
                "limit" => match value.parse::<u64>() {
                    Ok(n) => out.limit = Some(n),
                    Err(_) => return Err("limit must be a positive integer".to_owned()),
                },
                other => return Err(format!("unknown parameter {other:?}; expected limit")),
            }
        }
        Ok(out)
    }
}

/// Percent-encodes a query value: unreserved characters and `/` stay as they are (a path
/// prefix remains readable in logs), everything else becomes `%XX`.
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `a=1&b=x%20y` -> [("a","1"), ("b","x y")], `+` read as a space.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
