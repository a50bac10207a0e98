//! The pipeline, and the only module where everything meets:
//! route -> tenant -> key -> lookup -> coalesced fill -> store -> respond, and write eviction.
//!
//! Decisions are made by the pure functions in `policy`; this module only sequences them and does
//! the IO (store, upstream). See ARCHITECTURE.md for the flow and the invariants it keeps.

mod fill;
pub mod identity;
pub mod reserved;
mod write;

use crate::auth::digest::DigestKey;
use crate::auth::Identity;
use crate::body::ProxyBody;
use crate::config::Config;
use crate::error::ProxyError;
use crate::policy::cache_key::{self, KeyParts, Target};
use crate::policy::cacheability::{self, Bypass, RequestFacts};
use crate::policy::outcome::Outcome;
use crate::policy::route::{Anonymous, Scope};
use crate::policy::route::{Route, RouteMatch};
use crate::policy::tenant::{self, Tenant, TenantInputs, MAX_TENANT_LEN};
use crate::policy::Key;
use crate::server::Handler;
use crate::single_flight::SingleFlight;
use crate::stats::Stats;
use crate::store::{CachedResponse, FillTicket, MemoryOptions, Tag, TagKey, TenantScope, Tiered};
use crate::upstream::{forward_headers, ClientInfo, Upstream, UpstreamOptions};
use crate::webhook::Verifier;
use http::header::{HeaderValue, AGE, CONTENT_TYPE, HOST};
use http::{HeaderName, Method, Request, Response};
use hyper::body::Incoming;
pub use identity::Setup;
use identity::{AuthFailure, Authenticator, Caller};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The caching reverse proxy. Cheap to clone: fills run as tasks that hold their own handle.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    upstream: Upstream,
    store: Tiered,
    flights: SingleFlight<Key, fill::Shared, FlightMeta>,
    stats: Stats,
    /// `None` when no webhook secret is configured: the webhook then refuses every request.
    webhook: Option<Verifier>,
    /// Credential values in readable keys and logs are digested with this key only.
    credential_key: DigestKey,
    /// Verifies callers; `None` without an `[auth]` section.
    auth: Option<Authenticator>,
}

/// What a request needs to know about the flight it might join.
pub(crate) struct FlightMeta {
    ticket: FillTicket,
}

/// A request that may be answered from the cache: its route, key, tenant and user.
pub(crate) struct Cacheable<'r> {
    route: &'r Route,
    key: Key,
    head: bool,
    tenant: Option<TenantId>,
    /// The verified user, on `scope = "user"` routes only.
    user: Option<String>,
}

/// Who the caller is, as far as the read path is concerned.
enum Identified {
    /// A verified identity, or `None` where the route needs none.
    Caller(Option<Identity>),
    /// An anonymous caller on a route with `anonymous = "pass"` (the route's index).
    PassAnonymous(usize),
    /// The identity endpoint's own refusal, passed on as is.
    Answer(Response<ProxyBody>),
}

/// Why `classify` said no: pass through uncached, or refuse outright.
enum Denied {
    Bypass(Bypassed),
    Refuse(ProxyError),
}

impl From<Bypass> for Denied {
    fn from(reason: Bypass) -> Self {
        Denied::Bypass(reason.into())
    }
}

/// Why `classify` said no, and the route when one matched (for per-route counters).
struct Bypassed {
    reason: Bypass,
    route: Option<usize>,
}

impl From<Bypass> for Bypassed {
    fn from(reason: Bypass) -> Self {
        Bypassed {
            reason,
            route: None,
        }
    }
}

/// A validated tenant id kept inline (ids are at most 64 ASCII bytes), so that carrying the
/// tenant of a hit to its counters costs no allocation.
#[derive(Clone, Copy)]
pub(crate) struct TenantId {
    len: u8,
    buf: [u8; MAX_TENANT_LEN],
}

impl TenantId {
    fn new(id: &str) -> Option<TenantId> {
        let mut buf = [0; MAX_TENANT_LEN];
        buf.get_mut(..id.len())?.copy_from_slice(id.as_bytes());
        Some(TenantId {
            len: u8::try_from(id.len()).ok()?,
            buf,
        })
    }

    fn as_str(&self) -> &str {
        // Built from a `&str`, so always valid UTF-8.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

// === impl Proxy ===

impl Proxy {
    /// `setup` holds what the config only names: secrets and keys (see [`Setup::from_config`]).
    pub fn new(config: Arc<Config>, setup: Setup) -> Result<Self, ProxyError> {
        let upstream = Upstream::new(&UpstreamOptions {
            url: config.upstream.url.clone(),
            connect_timeout: config.upstream.connect_timeout,
            timeout: config.upstream.timeout,
            pool_max_idle_per_host: config.upstream.pool_max_idle_per_host,
            pool_idle_timeout: config.upstream.pool_idle_timeout,
        })?;
        let store = Tiered::new(MemoryOptions {
            max_bytes: config.cache.max_memory,
        });
        let stats = Stats::new(config.routes.routes().len());
        let auth = config.auth.as_ref().map(|auth| {
            Authenticator::new(
                auth,
                setup.jwt,
                upstream.clone(),
                setup.credential_key.clone(),
            )
        });
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                upstream,
                store,
                flights: SingleFlight::new(),
                stats,
                webhook: setup.webhook,
                auth,
                credential_key: setup.credential_key,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Tiered {
        &self.inner.store
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Calls made to the introspection endpoint since start (0 without introspection).
    pub fn introspections(&self) -> u64 {
        self.inner
            .auth
            .as_ref()
            .map_or(0, Authenticator::introspections)
    }

    async fn dispatch(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // First of all: a header the client lists in `Connection` never reaches the backend, so it
        // must not take part in any decision either (e.g. `Connection: x-org-id` would key by a
        // tenant header the backend never sees).
        cacheability::strip_hop_by_hop(req.headers_mut());
        let host = request_host(&req)?;
        if let Some(allowed) = &self.inner.config.server.hosts {
            if !allowed.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
                return Err(ProxyError::MisdirectedHost(host));
            }
        }
        if self.is_reserved(req.uri().path()) {
            return Ok(self.reserved(req).await);
        }
        let client = ClientInfo { peer, host: &host };
        match *req.method() {
            Method::GET | Method::HEAD => {
                let (parts, body) = req.into_parts();
                self.read(parts, ProxyBody::Stream(body), &client).await
            }
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                self.write(req, &client).await
            }
            _ => {
                let outcome = Outcome::Method;
                self.inner.stats.record(outcome, None, None);
                let (parts, body) = req.into_parts();
                let req = Request::from_parts(parts, ProxyBody::Stream(body));
                self.pass(req, &client, outcome).await
            }
        }
    }

    /// GET and HEAD: answer from the cache when the rules allow it, otherwise pass through.
    pub(crate) async fn read(
        &self,
        parts: http::request::Parts,
        body: ProxyBody,
        client: &ClientInfo<'_>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let config = self.inner.config.clone();
        let identity = match self.identify(&config, &parts, client).await? {
            Identified::Caller(identity) => identity,
            Identified::Answer(response) => return Ok(response),
            Identified::PassAnonymous(route) => {
                let outcome = Outcome::Bypass(Bypass::Anonymous);
                self.inner.stats.record(outcome, Some(route), None);
                return self
                    .pass(Request::from_parts(parts, body), client, outcome)
                    .await;
            }
        };
        let decision = classify(
            &config,
            &parts,
            client.host,
            self.inner.credential_key.as_bytes(),
            identity.as_ref(),
        );
        let (cacheable, target) = match decision {
            Ok(pair) => pair,
            Err(Denied::Refuse(err)) => {
                self.inner.stats.auth_forbidden();
                return Err(err);
            }
            Err(Denied::Bypass(Bypassed { reason, route })) => {
                let outcome = Outcome::Bypass(reason);
                self.inner.stats.record(outcome, route, None);
                return self
                    .pass(Request::from_parts(parts, body), client, outcome)
                    .await;
            }
        };
        // A request with a body was refused by `classify`, so nothing is dropped here.
        drop(body);

        let now = Instant::now();
        if let Some(entry) = self.inner.store.lookup(&cacheable.key, now).await {
            self.record(Outcome::Hit, &cacheable);
            return Ok(from_entry(&entry, Outcome::Hit, cacheable.head, Some(now)));
        }
        self.fill_or_join(cacheable, &target, &parts, client).await
    }

    /// Builds the GET a fill sends: the normalized target (what was keyed is what is forwarded),
    /// and the client's headers minus hop-by-hop ones, with cachegate's forwarding headers.
    fn fill_request(
        &self,
        parts: &http::request::Parts,
        target: &Target<'_>,
        client: &ClientInfo<'_>,
    ) -> Result<Request<ProxyBody>, ProxyError> {
        let uri = self.inner.upstream.uri_for(&target.path_and_query())?;
        let mut headers = parts.headers.clone();
        forward_headers(&mut headers, client);
        // The entry must be a full GET response so later GETs can use it; HEAD is answered from it.
        let mut req = Request::new(ProxyBody::empty());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(req)
    }

    /// On a cacheable `tenant` or `user` route of a deployment with `[auth]`, verifies the
    /// caller before anything else; elsewhere there is nobody to verify.
    async fn identify(
        &self,
        config: &Config,
        parts: &http::request::Parts,
        client: &ClientInfo<'_>,
    ) -> Result<Identified, ProxyError> {
        let Some(auth) = &self.inner.auth else {
            return Ok(Identified::Caller(None));
        };
        let Ok(target) = cache_key::normalize(parts.uri.path(), parts.uri.query()) else {
            return Ok(Identified::Caller(None));
        };
        let Some(found) = config.routes.find(&parts.method, &target.path) else {
            return Ok(Identified::Caller(None));
        };
        let route = found.route;
        if !route.cache || route.scope == Scope::Public {
            return Ok(Identified::Caller(None));
        }
        let caller = self
            .authenticate(auth, route, &parts.headers, client.peer.ip(), client.host)
            .await;
        match caller {
            Ok(Caller::Verified(identity)) => Ok(Identified::Caller(Some(identity))),
            Ok(Caller::Anonymous) => match route.anonymous {
                Anonymous::Pass => Ok(Identified::PassAnonymous(route.index)),
                Anonymous::Deny => {
                    self.inner.stats.auth_missing();
                    Err(ProxyError::Unauthenticated("this route needs a credential"))
                }
            },
            Err(AuthFailure::Error(err)) => Err(err),
            Err(AuthFailure::Rejected(response)) => Ok(Identified::Answer(response)),
        }
    }

    /// Whether a path is under the reserved prefix, as sent or once normalized (so that an
    /// encoded spelling of the prefix cannot slip past to the backend).
    fn is_reserved(&self, path: &str) -> bool {
        let prefix = &self.inner.config.webhook.prefix;
        if path.starts_with(prefix.as_str()) {
            return true;
        }
        // Other spellings (escapes, dot segments, `//`, `\`, another case) could still reach
        // the same path on a lenient backend. Only paths that could be one are examined, so the
        // common request pays a scan, not an allocation.
        let core = prefix.trim_matches('/');
        let maybe = path.contains('%')
            || path
                .as_bytes()
                .windows(core.len())
                .any(|w| w.eq_ignore_ascii_case(core.as_bytes()));
        maybe && {
            let lenient = cache_key::lenient_path(path).to_ascii_lowercase();
            lenient.starts_with(&prefix.to_ascii_lowercase())
                || lenient == prefix.trim_end_matches('/').to_ascii_lowercase()
        }
    }

    pub(crate) fn record(&self, outcome: Outcome, cacheable: &Cacheable<'_>) {
        let tenant = cacheable.tenant.as_ref().map(TenantId::as_str);
        self.inner
            .stats
            .record(outcome, Some(cacheable.route.index), tenant);
    }

    /// Forwards a request unchanged (bar the forwarding headers) and streams the answer back.
    async fn pass(
        &self,
        req: Request<ProxyBody>,
        client: &ClientInfo<'_>,
        outcome: Outcome,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let response = self.send_as_is(req, client).await?;
        Ok(stream_response(
            response,
            outcome,
            &self.inner.config.cache.tag_headers,
        ))
    }

    async fn send_as_is(
        &self,
        req: Request<ProxyBody>,
        client: &ClientInfo<'_>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let (mut parts, body) = req.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        parts.uri = self.inner.upstream.uri_for(&target)?;
        parts.version = http::Version::HTTP_11;
        forward_headers(&mut parts.headers, client);
        let req = Request::from_parts(parts, body);
        self.inner.upstream.send(req).await
    }

    fn error_response(&self, err: &ProxyError) -> Response<ProxyBody> {
        match err {
            ProxyError::UpstreamConnect(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::UpstreamProtocol(_) => {
                self.inner.stats.upstream_error();
                tracing::warn!(error = %err.chain(), status = err.status().as_u16(), "upstream failure");
            }
            _ => {
                tracing::info!(error = %err.chain(), status = err.status().as_u16(), "request refused")
            }
        }
        error_response(err)
    }
}

impl Handler for Proxy {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let access = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| (req.method().clone(), req.uri().clone(), Instant::now()));
        let response = match self.dispatch(req, peer).await {
            Ok(response) => response,
            Err(err) => self.error_response(&err),
        };
        if let Some((method, uri, started)) = access {
            tracing::debug!(
                %peer,
                %method,
                %uri,
                status = response.status().as_u16(),
                cache = ?response.headers().get(&CACHE_STATUS),
                elapsed = ?started.elapsed(),
                "request"
            );
        }
        response
    }
}

/// Decides whether a GET/HEAD may use the cache, and derives its key when it may.
/// Pure apart from reading the request; every "no" is a named [`Bypass`].
fn classify<'c, 'p>(
    config: &'c Config,
    parts: &'p http::request::Parts,
    host: &str,
    credential_key: &[u8; 32],
    identity: Option<&Identity>,
) -> Result<(Cacheable<'c>, Target<'p>), Denied> {
    let target = cache_key::normalize(parts.uri.path(), parts.uri.query())
        .map_err(|_| Bypass::AmbiguousPath)?;
    let RouteMatch { route, captures } = config
        .routes
        .find(&parts.method, &target.path)
        .ok_or(Bypass::NoRoute)?;
    let bypass = |reason| {
        Denied::Bypass(Bypassed {
            reason,
            route: Some(route.index),
        })
    };
    if !route.cache {
        return Err(bypass(Bypass::RouteNoCache));
    }
    let inputs = TenantInputs {
        headers: &parts.headers,
        host: Some(host),
        captures: &captures,
        query: parts.uri.query(),
    };
    let mut user = None;
    let tenant = match (route.scope, identity) {
        (Scope::Public, _) if route.scope_declared => None,
        // A verified caller: the key takes the credential's tenant (and user), and every tenant
        // the request names must agree with it.
        (Scope::Tenant | Scope::User, Some(identity)) => {
            let refuse = |why| Denied::Refuse(ProxyError::Forbidden(why));
            let verified = identity
                .tenant
                .as_deref()
                .ok_or(refuse("the credential names no tenant"))?;
            identity::cross_check(
                route,
                verified,
                &parts.headers,
                host,
                &captures,
                parts.uri.query(),
            )
            .map_err(Denied::Refuse)?;
            if route.scope == Scope::User {
                let id = identity
                    .user
                    .as_deref()
                    .ok_or(refuse("the credential names no user"))?;
                user = Some(id.to_owned());
            }
            Some(TenantId::new(verified).ok_or(refuse("the credential's tenant is too long"))?)
        }
        // No [auth]: the tenant is read from the request, as configured.
        _ => match tenant::extract(&route.tenant, &inputs) {
            Tenant::Shared => None,
            Tenant::Id(id) => Some(TenantId::new(&id).ok_or(bypass(Bypass::InvalidTenant))?),
            Tenant::Missing => return Err(bypass(Bypass::NoTenant)),
            Tenant::Invalid(_) => return Err(bypass(Bypass::InvalidTenant)),
        },
    };
    let facts = RequestFacts {
        headers: &parts.headers,
        // A declared public route shares one entry among every caller, credentials or not.
        tenant_keyed: tenant.is_some() || route.scope_declared && route.scope == Scope::Public,
        vary: &route.vary,
    };
    if let Some(reason) = cacheability::request_bypass(&facts) {
        return Err(bypass(reason));
    }
    let key = cache_key::digest(&KeyParts {
        namespace: &config.cache.namespace,
        version: config.cache.version,
        host,
        tenant: tenant.as_ref().map(TenantId::as_str),
        user: user.as_deref(),
        credential_key,
        target: &target,
        vary: &route.vary,
        headers: &parts.headers,
    });
    let cacheable = Cacheable {
        route,
        key,
        head: parts.method == Method::HEAD,
        tenant,
        user,
    };
    Ok((cacheable, target))
}

/// What a fill needs beyond the key: the tenant and the tags its entry carries (the route's,
/// the whole-tenant tag and the path tag). Derived again here rather than in [`classify`] so
/// that hits never pay for it.
fn fill_scope(
    cacheable: &Cacheable<'_>,
    target: &Target<'_>,
) -> Option<(TenantScope, Vec<TagKey>)> {
    let route = cacheable.route;
    let captures = route.pattern.matches(&target.path)?;
    let tenant = cacheable
        .tenant
        .as_ref()
        .map_or(TenantScope::Shared, |t| TenantScope::one(t.as_str()));
    let mut tags: Vec<TagKey> = route
        .entry_tags
        .iter()
        .map(|t| TagKey::new(tenant.clone(), Tag::parse(&t.render(&captures))))
        .collect();
    tags.push(TagKey::new(tenant.clone(), Tag::Tenant));
    if let Some(user) = &cacheable.user {
        tags.push(TagKey::new(tenant.clone(), Tag::user(user)));
    }
    tags.push(TagKey::new(tenant.clone(), Tag::path(&target.path)));
    Some((tenant, tags))
}

/// Seconds since the Unix epoch, for signature and token times (which are wall-clock times).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Host the client addressed: exactly one `Host` header (HTTP/1.1) or the `:authority` (h2).
fn request_host<B>(req: &Request<B>) -> Result<String, ProxyError> {
    let mut values = req.headers().get_all(HOST).iter();
    let host = match (values.next(), values.next()) {
        (Some(_), Some(_)) => return Err(ProxyError::BadRequest("repeated host header")),
        (Some(value), None) => value
            .to_str()
            .map_err(|_| ProxyError::BadRequest("host header is not valid text"))?
            .to_owned(),
        (None, _) => match req.uri().authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => return Err(ProxyError::BadRequest("missing host header")),
        },
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    {
        return Err(ProxyError::BadRequest("malformed host header"));
    }
    let mut host = host.to_ascii_lowercase();
    if let Some(stripped) = host.strip_suffix(".") {
        host = stripped.to_owned();
    }
    Ok(host)
}

/// A response from a stored entry. `now` is given for hits (which carry `Age`).
fn from_entry(
    entry: &CachedResponse,
    outcome: Outcome,
    head: bool,
    now: Option<Instant>,
) -> Response<ProxyBody> {
    let body = if head {
        ProxyBody::empty()
    } else {
        ProxyBody::Full(Some(entry.body.clone()))
    };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status;
    *response.headers_mut() = entry.headers.clone();
    let headers = response.headers_mut();
    headers.insert(CACHE_STATUS.clone(), outcome.cache_status());
    if let Some(now) = now {
        headers.insert(AGE, HeaderValue::from(entry.age(now).as_secs()));
    }
    response
}

/// Streams a backend response to the client (hop-by-hop headers removed), tagged with `outcome`.
fn stream_response(
    response: Response<Incoming>,
    outcome: Outcome,
    tag_headers: &[HeaderName],
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    clean_response_head(&mut parts.headers, tag_headers);
    parts
        .headers
        .insert(CACHE_STATUS.clone(), outcome.cache_status());
    Response::from_parts(parts, ProxyBody::Stream(body))
}

/// Removes what a backend response carries for cachegate alone: hop-by-hop headers, and the
/// tag headers (`Cache-Tag`...), which name internal tags the client has no business seeing.
pub(crate) fn clean_response_head(headers: &mut http::HeaderMap, tag_headers: &[HeaderName]) {
    cacheability::strip_hop_by_hop(headers);
    for name in tag_headers {
        headers.remove(name);
    }
}

/// The JSON error answer: `{"error": code, "detail": message}`.
pub(crate) fn error_response(err: &ProxyError) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(err.json_body()));
    *response.status_mut() = err.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match err {
        ProxyError::Unauthenticated(_) | ProxyError::BadCredential(_) => {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        ProxyError::AuthUnavailable(_) => {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        _ => {}
    }
    response.headers_mut().insert(
        CACHE_STATUS.clone(),
        HeaderValue::from_static("cachegate; fwd=miss; detail=error"),
    );
    response
}
