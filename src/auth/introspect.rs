//! Identities behind opaque tokens and session cookies: asked of the backend, remembered briefly.
//!
//! A credential that cachegate cannot verify by itself is sent to the backend's "who am I"
//! endpoint, and the tenant and user are read from its JSON answer. Answers are remembered for a
//! short time under a keyed digest of the credential (never the credential itself), and
//! concurrent requests carrying the same new credential share one call. Refusals and failures
//! are never remembered: a bad credential is asked about again on its next use.

use crate::auth::digest::DigestKey;
use crate::auth::Identity;
use crate::body::ProxyBody;
use crate::policy::cacheability::strip_hop_by_hop;
use crate::single_flight::{Role, SingleFlight, Wait};
use crate::upstream::Upstream;
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, HOST, TRANSFER_ENCODING,
};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[cfg(test)]
mod tests;

/// The largest answer body read from the endpoint; a "who am I" answer is small.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How much longer than the call's own timeout a request waits for a shared call, so that the
/// call's timeout, not the wait, decides the outcome.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

/// How to introspect credentials.
#[derive(Debug, Clone)]
pub struct IntrospectSettings {
    /// The endpoint's origin-form path, e.g. `/api/auth/me/`.
    pub path: String,
    /// Dotted path to the tenant in the JSON answer, e.g. `org_id` or `organization.id`.
    pub tenant_field: String,
    /// Dotted path to the user in the JSON answer, e.g. `id`.
    pub user_field: String,
    /// How long an answer for one credential is reused.
    pub ttl: Duration,
    /// The request headers that carry the credential, in the order they are digested.
    pub credential_headers: Vec<HeaderName>,
    /// When not empty, a `Cookie` header counts only for these cookies (see the config).
    pub session_cookies: Vec<String>,
    /// The bound on the whole introspection call (head and body).
    pub timeout: Duration,
    /// The bound on the number of remembered identities.
    pub max_entries: usize,
}

/// Why no identity could be established.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntrospectFailure {
    /// The endpoint refused the credential (401/403): returned to the caller as is.
    #[error("the credential was refused with status {status}")]
    Rejected {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// The endpoint could not be reached, timed out, or answered something else (5xx, bad JSON,
    /// missing fields): the caller gets 503 with Retry-After, never a cached answer.
    #[error("identity introspection unavailable: {0}")]
    Unavailable(String),
}

/// Verifies credentials through the backend and remembers the answers. Cloning is cheap and
/// clones share the remembered identities.
#[derive(Clone)]
pub struct Introspector {
    inner: Arc<Inner>,
}

struct Inner {
    settings: IntrospectSettings,
    upstream: Upstream,
    key: DigestKey,
    remembered: quick_cache::sync::Cache<Credential, Remembered>,
    // The flight metadata is the generation the call started in (see `generation`).
    flights: SingleFlight<Credential, Answer, u64>,
    // Bumped by every forget. A call that started in an older generation may have been answered
    // before the logout or role change that the forget stands for, so its answer is handed to
    // the requests already waiting for it but never remembered, and later requests do not join it.
    generation: AtomicU64,
    calls: AtomicU64,
}

type Answer = Result<Identity, IntrospectFailure>;

/// What an answer is remembered under: the credential's keyed digest and the host it was
/// presented to, since a backend that selects the tenant by host may give one token a different
/// identity (or none) under another name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Credential {
    digest: [u8; 32],
    host: Box<str>,
}

#[derive(Clone)]
struct Remembered {
    identity: Identity,
    expires: Instant,
    generation: u64,
}

// === impl Introspector ===

impl Introspector {
    pub fn new(settings: IntrospectSettings, upstream: Upstream, key: DigestKey) -> Introspector {
        // quick_cache bounds by entry count; a zero bound would make it refuse every entry.
        let remembered = quick_cache::sync::Cache::new(settings.max_entries.max(1));
        Introspector {
            inner: Arc::new(Inner {
                settings,
                upstream,
                key,
                remembered,
                flights: SingleFlight::new(),
                generation: AtomicU64::new(0),
                calls: AtomicU64::new(0),
            }),
        }
    }

    /// Whether the request carries any of the credential headers.
    pub fn has_credential(&self, headers: &HeaderMap) -> bool {
        !self.credential_values(headers).is_empty()
    }

    /// The keyed digest of the request's credential: `name, value, name, value ...` over the
    /// configured credential headers present, in configured order, every value of each. `None`
    /// when the request carries no credential.
    pub fn credential_digest(&self, headers: &HeaderMap) -> Option<[u8; 32]> {
        let values = self.credential_values(headers);
        let mut parts: Vec<&[u8]> = Vec::with_capacity(values.len() * 2);
        for (name, value) in &values {
            parts.push(name.as_str().as_bytes());
            parts.push(value.as_bytes());
        }
        if parts.is_empty() {
            return None;
        }
        Some(self.inner.key.digest(&parts))
    }

    /// The identity behind the request's credential: from the cache when a live answer for the
    /// same credential (and host) exists, else by calling the endpoint, once for any number of
    /// concurrent requests with the same new credential. `host` is sent as the Host header.
    ///
    /// A request without any credential header is rejected with a bare 401 and the endpoint is
    /// not called; callers that let anonymous requests through check [`Self::has_credential`]
    /// first.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        host: &str,
    ) -> Result<Identity, IntrospectFailure> {
        let Some(digest) = self.credential_digest(headers) else {
            return Err(IntrospectFailure::Rejected {
                status: StatusCode::UNAUTHORIZED,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            });
        };
        let credential = Credential {
            digest,
            host: host.to_ascii_lowercase().into_boxed_str(),
        };
        if let Some(identity) = self.inner.lookup(&credential) {
            return Ok(identity);
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let role = self.inner.flights.join_or_lead(
            credential.clone(),
            |started| *started == generation,
            || generation,
        );
        let waiter = match role {
            Role::Waiter(waiter) => waiter,
            Role::Leader(leader) => {
                // A call that ended between the lookup above and taking the lead has already
                // remembered its answer; use it rather than calling again.
                if let Some(identity) = self.inner.lookup(&credential) {
                    leader.publish(Ok(identity.clone()));
                    return Ok(identity);
                }
                let waiter = leader.subscribe();
                let inner = self.inner.clone();
                let forwarded = self.forwarded_headers(headers);
                let host = host.to_string();
                // The call runs in its own task so that a request that goes away (a client that
                // disconnects) does not abandon the others waiting for the same answer.
                tokio::spawn(async move {
                    let answer = inner.ask(forwarded, &host).await;
                    if let Ok(identity) = &answer {
                        inner.remember(credential, identity, generation);
                    }
                    leader.publish(answer);
                });
                waiter
            }
        };
        let bound = self.inner.settings.timeout + WAIT_MARGIN;
        match waiter.wait(bound).await {
            Wait::Done(answer) => answer,
            Wait::Abandoned => Err(IntrospectFailure::Unavailable(
                "the introspection call ended without an answer".into(),
            )),
            Wait::TimedOut => Err(IntrospectFailure::Unavailable(format!(
                "no introspection answer within {bound:?}"
            ))),
        }
    }

    /// Forgets every cached identity (logout / role change for everybody). Returns how many live
    /// identities were forgotten.
    pub fn forget_all(&self) -> usize {
        self.inner.forget(|_| true)
    }

    /// Forgets the cached identities of one user (and tenant when given). Returns how many live
    /// identities were forgotten.
    ///
    /// There is no index from users to credentials: this scans every remembered identity, taking
    /// each shard's lock in turn, which costs O(entries) (a few milliseconds at 100 000 entries)
    /// and suits operator actions and logout hooks, not a per-request path.
    pub fn forget_user(&self, tenant: Option<&str>, user: &str) -> usize {
        self.inner.forget(|identity| {
            identity.user.as_deref() == Some(user)
                && tenant.is_none_or(|t| identity.tenant.as_deref() == Some(t))
        })
    }

    /// Number of calls made to the endpoint since start (stats and tests).
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// The configured credential headers, each once.
    fn credential_names(&self) -> impl Iterator<Item = &HeaderName> {
        let names = &self.inner.settings.credential_headers;
        names
            .iter()
            .enumerate()
            .filter(move |(i, name)| !names[..*i].contains(name))
            .map(|(_, name)| name)
    }

    /// Only the credential headers go to the endpoint: anything else the client sent (a tenant
    /// header, forwarding headers) must not influence who the backend says the caller is.
    fn forwarded_headers(&self, headers: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::new();
        for (name, value) in self.credential_values(headers) {
            out.append(name, value);
        }
        out
    }

    /// The credential the request carries: every value of the configured headers, with a
    /// `Cookie` header cut down to the session cookies when those are configured (a header left
    /// with none of them is no credential).
    fn credential_values(&self, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        let sessions = &self.inner.settings.session_cookies;
        let mut out = Vec::new();
        for name in self.credential_names() {
            for value in headers.get_all(name) {
                if *name == http::header::COOKIE && !sessions.is_empty() {
                    if let Some(kept) = session_cookies_of(value, sessions) {
                        out.push((name.clone(), kept));
                    }
                } else {
                    out.push((name.clone(), value.clone()));
                }
            }
        }
        out
    }
}

/// The `name=value` pairs of a `Cookie` header whose name is one of `names`, in header order.
fn session_cookies_of(value: &HeaderValue, names: &[String]) -> Option<HeaderValue> {
    let text = value.to_str().ok()?;
    let kept: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(name, _)| names.iter().any(|n| n == name.trim()))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
}

// === impl Inner ===

impl Inner {
    /// The remembered identity for `credential`, if it is still live.
    fn lookup(&self, credential: &Credential) -> Option<Identity> {
        let remembered = self.remembered.get(credential)?;
        let now = Instant::now();
        if remembered.expires > now {
            return Some(remembered.identity);
        }
        self.remembered.remove_if(credential, |r| r.expires <= now);
        None
    }

    /// Remembers an answer unless a forget happened since its call started.
    fn remember(&self, credential: Credential, identity: &Identity, generation: u64) {
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let remembered = Remembered {
            identity: identity.clone(),
            expires: Instant::now() + self.settings.ttl,
            generation,
        };
        self.remembered.insert(credential.clone(), remembered);
        // A forget may have slipped in between the check and the insert. It bumps the generation
        // before it scans, so either its scan saw this entry or the check below does.
        if self.generation.load(Ordering::SeqCst) != generation {
            self.remembered
                .remove_if(&credential, |r| r.generation == generation);
        }
    }

    fn forget(&self, matches: impl Fn(&Identity) -> bool) -> usize {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let now = Instant::now();
        let forgotten = Cell::new(0usize);
        self.remembered.retain(|_, remembered| {
            if !matches(&remembered.identity) {
                return true;
            }
            if remembered.expires > now {
                forgotten.set(forgotten.get() + 1);
            }
            false
        });
        forgotten.get()
    }

    /// One call to the endpoint, bounded by the configured timeout as a whole.
    async fn ask(&self, credentials: HeaderMap, host: &str) -> Answer {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let timeout = self.settings.timeout;
        let answer = match tokio::time::timeout(timeout, self.exchange(credentials, host)).await {
            Ok(answer) => answer,
            Err(_elapsed) => Err(IntrospectFailure::Unavailable(format!(
                "the endpoint did not answer within {timeout:?}"
            ))),
        };
        if let Err(IntrospectFailure::Unavailable(reason)) = &answer {
            tracing::warn!(path = %self.settings.path, %reason, "identity introspection failed");
        }
        answer
    }

    async fn exchange(&self, credentials: HeaderMap, host: &str) -> Answer {
        let unavailable = IntrospectFailure::Unavailable;
        let uri = self
            .upstream
            .uri_for(&self.settings.path)
            .map_err(|err| unavailable(err.to_string()))?;
        let host = HeaderValue::from_str(host)
            .map_err(|_| unavailable("the host is not a valid header value".into()))?;
        let mut request = Request::new(ProxyBody::empty());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = uri;
        *request.headers_mut() = credentials;
        request.headers_mut().insert(HOST, host);
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));

        let response = self
            .upstream
            .send(request)
            .await
            .map_err(|err| unavailable(err.chain()))?;
        let (parts, body) = response.into_parts();
        let status = parts.status;
        if !(status.is_success()
            || status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN)
        {
            return Err(unavailable(format!("the endpoint answered {status}")));
        }
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|err| unavailable(format!("cannot read the answer: {err}")))?
            .to_bytes();
        if !status.is_success() {
            let mut headers = parts.headers;
            // The caller frames the body anew; the endpoint's framing and connection headers do
            // not apply to that response.
            strip_hop_by_hop(&mut headers);
            headers.remove(CONTENT_LENGTH);
            headers.remove(TRANSFER_ENCODING);
            return Err(IntrospectFailure::Rejected {
                status,
                headers,
                body,
            });
        }
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|_| unavailable(format!("the {status} answer is not json")))?;
        if !answer.is_object() {
            return Err(unavailable("the answer is not a json object".into()));
        }
        Ok(Identity {
            tenant: field(&answer, &self.settings.tenant_field).map_err(unavailable)?,
            user: field(&answer, &self.settings.user_field).map_err(unavailable)?,
            // Introspected identities live as long as the cache's ttl says, not by a claim.
            expires_at: None,
        })
    }
}

/// Reads a dotted path (`organization.id`; a numeric segment indexes an array) from a JSON
/// answer. Strings and integers become the value; a missing field, `null` or an empty string is
/// `None` (the caller decides what an identity without a tenant may do). Any other type is an
/// error: a field path that points at an object or a boolean is a configuration mistake, and
/// guessing would put callers under a wrong key.
fn field(answer: &Value, path: &str) -> Result<Option<String>, String> {
    let mut current = answer;
    for segment in path.split('.') {
        let next = match current {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(value) => current = value,
            None => return Ok(None),
        }
    }
    match current {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        _ => Err(format!("field {path} is not a string or an integer")),
    }
}
