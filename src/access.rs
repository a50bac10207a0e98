//! The access line and what it is made of: request ids (`X-Request-Id`), the query string with
//! credential-looking values hidden, and the tenant as a short digest.
//!
//! An access line never carries a secret: no header value but the request id, the path as
//! sent, the query with the values of parameters whose name looks like a credential replaced
//! by `***`, and the tenant id only as a digest.

use crate::auth::digest::DigestKey;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

/// The request id header: taken from the request when sane, else made here; sent to the
/// backend and set on the response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
pub const MAX_REQUEST_ID: usize = 128;

/// Parts of a query parameter's name that make its value a credential to hide.
const CREDENTIAL_NAMES: [&str; 9] = [
    "token",
    "key",
    "secret",
    "passw",
    "pwd",
    "signature",
    "auth",
    "credential",
    "session",
];

/// What replaces a hidden value.
pub const HIDDEN: &str = "***";

/// Whether a client's request id can be used as is: 1 to [`MAX_REQUEST_ID`] characters of
/// `A-Z a-z 0-9 . _ -`, so that it is safe in a log line, a header and a JSON string.
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The request's id: its one `X-Request-Id` when valid, else a new one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    match (values.next(), values.next()) {
        (Some(id), None) if valid_request_id(id.as_bytes()) => id.clone(),
        _ => new_request_id(),
    }
}

/// A new request id: 32 hex digits, a random per-process prefix and a counter, so ids are
/// unique within a process and unlikely to repeat across processes, at the cost of a counter
/// increment rather than a random draw per request.
pub fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let bytes = DigestKey::random().digest(&[b"request id prefix"]);
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(prefix)
    });
    let n = COUNTER.fetch_add(1, Relaxed);
    let mut id = String::with_capacity(32);
    let _ = write!(id, "{prefix:016x}{n:016x}");
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("0"))
}

/// Whether a query parameter's name looks like it carries a credential.
fn is_credential_name(name: &str) -> bool {
    let name = decode_name(name).to_ascii_lowercase();
    CREDENTIAL_NAMES.iter().any(|part| name.contains(part))
}

/// A parameter name with `%XX` escapes and `+` decoded, so `%74oken` is seen as `token`.
fn decode_name(name: &str) -> Cow<'_, str> {
    if !name.contains(['%', '+']) {
        return Cow::Borrowed(name);
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The query as it may be logged: parameters in their order, the values of those whose name
/// contains `token`, `key`, `secret`, `passw`, `pwd`, `signature`, `auth`, `credential` or
/// `session` (any case, escapes decoded) replaced by `***`.
pub fn redact_query(query: &str) -> Cow<'_, str> {
    let hides = |pair: &str| {
        pair.split_once('=')
            .is_some_and(|(name, value)| !value.is_empty() && is_credential_name(name))
    };
    if !query.split('&').any(hides) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if hides(pair) => {
                out.push_str(name);
                out.push('=');
                out.push_str(HIDDEN);
            }
            _ => out.push_str(pair),
        }
    }
    Cow::Owned(out)
}

/// A tenant id as logged: the first 16 hex digits of its blake3 hash, enough to follow one
/// tenant through the logs without writing its id.
pub fn tenant_digest(tenant: &str) -> String {
    let hash = blake3::hash(tenant.as_bytes());
    hash.to_hex()[..16].to_string()
}

/// One request, as its access line tells it.
#[derive(Debug)]
pub struct AccessLine<'a> {
    pub request_id: &'a HeaderValue,
    /// The TCP peer (a load balancer's address when one is in front).
    pub peer: std::net::SocketAddr,
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The matching route's pattern, `""` for none.
    pub route: &'a str,
    /// The tenant's [`tenant_digest`], never its id.
    pub tenant: Option<&'a str>,
    pub status: u16,
    /// The outcome's label ([`crate::policy::outcome::Outcome::as_str`], or `reserved`).
    pub outcome: &'static str,
    /// The `Cache-Status` value, which names the reason of a bypass or of a miss not stored.
    pub cache_status: Option<&'a HeaderValue>,
    pub duration: Duration,
    /// Until the backend's response head, when this request sent one itself.
    pub backend: Option<Duration>,
}

impl AccessLine<'_> {
    /// Writes the line at `info` under the target `cachegate::access`.
    pub fn log(&self) {
        let query = self.query.map(redact_query);
        tracing::info!(
            target: "cachegate::access",
            request_id = self.request_id.to_str().unwrap_or(""),
            peer = %self.peer,
            method = %self.method,
            path = self.path,
            query = query.as_deref(),
            route = self.route,
            tenant = self.tenant,
            status = self.status,
            outcome = self.outcome,
            cache_status = self.cache_status.and_then(|v| v.to_str().ok()),
            duration_ms = millis(self.duration),
            backend_ms = self.backend.map(millis),
            "request"
        );
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_values_are_hidden_and_the_rest_kept() {
        let check = |query: &str, expected: &str| assert_eq!(redact_query(query), expected);
        check("page=2&ordering=-id", "page=2&ordering=-id");
        check("token=abc", "token=***");
        check("page=1&access_token=abc&q=x", "page=1&access_token=***&q=x");
        check(
            "API_KEY=k&Signature=s&password=p",
            "API_KEY=***&Signature=***&password=***",
        );
        check(
            "auth=a&sessionid=s&client_secret=c",
            "auth=***&sessionid=***&client_secret=***",
        );
        check("%74oken=abc&x=1", "%74oken=***&x=1");
        check("token=&token", "token=&token");
        check("a=1&&b", "a=1&&b");
        check("monkey=1", "monkey=***");
    }

    #[test]
    fn request_ids_are_taken_only_when_sane() {
        assert!(valid_request_id(b"abc-123_X.y"));
        assert!(valid_request_id(&[b'a'; MAX_REQUEST_ID]));
        assert!(!valid_request_id(&[b'a'; MAX_REQUEST_ID + 1]));
        assert!(!valid_request_id(b""));
        for bad in [
            &b"a b"[..],
            b"a\"b",
            b"a/b",
            b"a\\b",
            b"id=1",
            "é".as_bytes(),
        ] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("given-1"));
        assert_eq!(request_id(&headers), "given-1");
        headers.append(&X_REQUEST_ID, HeaderValue::from_static("given-2"));
        assert_ne!(
            request_id(&headers),
            "given-1",
            "two ids: neither is believed"
        );
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("not sane"));
        let made = request_id(&headers);
        assert_eq!(made.len(), 32);
        assert!(valid_request_id(made.as_bytes()));
    }

    #[test]
    fn new_request_ids_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(
            a.as_bytes()[..16],
            b.as_bytes()[..16],
            "one prefix per process"
        );
    }

    #[test]
    fn tenants_are_logged_as_a_short_digest() {
        let digest = tenant_digest("acme");
        assert_eq!(digest.len(), 16);
        assert!(!digest.contains("acme"));
        assert_eq!(digest, tenant_digest("acme"));
        assert_ne!(digest, tenant_digest("globex"));
    }
}
