//! The pipeline, and the only module where everything meets:
//! route -> tenant -> key -> lookup -> coalesced fill -> store -> respond, and write eviction.
//!
//! Decisions are made by the pure functions in `policy`; this module only sequences them and does
//! the IO (store, upstream). See ARCHITECTURE.md for the flow and the invariants it keeps.

mod classify;
mod dispatch;
mod fill;
mod hit;
mod http_cache;
pub mod identity;
mod report;
mod reserved;
mod scrape;
mod warm;
mod write;

use crate::auth::digest::DigestKey;
use crate::body::ProxyBody;
use crate::clock::UnixMillis;
use crate::config::Config;
use crate::error::ProxyError;
use crate::metrics::{Metrics, RouteId};
use crate::policy::cache_key::{self, Target};
use crate::policy::cacheability::{self, Bypass};
use crate::policy::outcome::{Failure, Outcome, Refusal};
use crate::policy::vary;
use crate::policy::Key;
use crate::single_flight::SingleFlight;
use crate::stats::Stats;
use crate::store::shared::{SharedEvent, SharedTier};
use crate::store::{CachedResponse, FillTicket, MemoryOptions, SharedSettings, Tiered};
use crate::upstream::{forward_headers, ClientInfo, Upstream, UpstreamOptions};
use crate::webhook::Verifier;
use arc_swap::ArcSwap;
use classify::{classify, fill_scope, resolve, Denied, TenantId};
pub(crate) use classify::{Cacheable, Caller, Resolved};
use http::header::{HeaderValue, AGE, CONTENT_TYPE};
use http::{HeaderName, Method, Request, Response};
use hyper::body::Incoming;
use identity::{Authenticator, Identified};
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// What a [`Proxy`] needs beyond its config: the verifiers and keys built from the secrets the
/// config names, read once at start (`app` reads them).
pub struct Setup {
    /// `None` when no webhook secret is set: the webhook then refuses every request.
    pub webhook: Option<Verifier>,
    pub jwt: Option<crate::auth::jwt::JwtVerifier>,
    /// Digests credential values in readable keys and logs.
    pub credential_key: DigestKey,
    /// The shared tier of `[redis]` and its events, set up (not yet connected) by `app`.
    pub shared: Option<(SharedTier, mpsc::Receiver<SharedEvent>)>,
}

/// The caching reverse proxy. Cheap to clone: fills run as tasks that hold their own handle.
///
/// A handle serves with one config version (`inner`); [`Proxy::update`] puts a new one in
/// force (`live`) for the requests that start after it, while each request in flight, and
/// the fill it leads, keeps the version it started with to its end.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
    /// The version in force, replaced whole by [`Proxy::update`].
    live: Arc<ArcSwap<Inner>>,
}

/// What one config version decides: the config itself and what its secrets key. Everything
/// that outlives a version is in [`Core`], reached through `Deref` (`self.inner.store`).
struct Inner {
    config: Arc<Config>,
    /// `None` when no webhook secret is configured: the webhook then refuses every request.
    webhook: Option<Arc<Verifier>>,
    /// Credential values in readable keys and logs are digested with this key only.
    credential_key: DigestKey,
    /// Verifies callers; `None` without an `[auth]` section.
    auth: Option<Arc<Authenticator>>,
    core: Arc<Core>,
}

/// What every config version shares: the store and its entries, the flights in progress, the
/// counters, the upstream client.
struct Core {
    upstream: Upstream,
    store: Tiered,
    flights: SingleFlight<Key, fill::Shared, FlightMeta>,
    stats: Stats,
    /// The per-request series and latencies `/metrics` adds to the counters of `stats`.
    metrics: Metrics,
    /// The id (`Route::id`) of every route identity seen since start. Only updates touch it.
    route_ids: Mutex<HashMap<String, usize>>,
    /// Introspection calls made by the authenticators earlier versions replaced.
    replaced_introspections: AtomicU64,
}

impl Deref for Inner {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

/// One part of a [`Update`]: kept from the version in force, or new.
pub enum Part<T> {
    Keep,
    New(T),
}

/// A new config version for a running proxy ([`Proxy::update`]): the validated config and
/// what its secrets key. `app` decides what is kept: a verifier whose secrets did not change
/// keeps what it remembers (the webhook's accepted messages, the verified credentials).
pub struct Update {
    pub config: Config,
    pub webhook: Part<Option<Verifier>>,
    pub credential_key: Part<DigestKey>,
    /// With `New`, the authenticator of `config.auth` is built anew with this JWT verifier;
    /// `Keep` keeps the running one (the `[auth]` section, its secrets and the credential key
    /// are unchanged).
    pub auth: Part<Option<crate::auth::jwt::JwtVerifier>>,
}

/// What a request needs to know about the flight it might join.
pub(crate) struct FlightMeta {
    ticket: FillTicket,
}

/// A response and the one outcome that names it. [`Proxy::finish`] turns the outcome into the
/// `Cache-Status` header and the counters, and `handle` into the log line, so the three agree.
pub(crate) struct Answer {
    pub(crate) response: Response<ProxyBody>,
    outcome: Outcome,
    /// For the per-route and per-tenant counters.
    route: Option<usize>,
    tenant: Option<TenantId>,
}

impl Answer {
    fn new(response: Response<ProxyBody>, outcome: Outcome, route: Option<usize>) -> Answer {
        Answer {
            response,
            outcome,
            route,
            tenant: None,
        }
    }

    /// The answer to a cacheable request, counted for its route and tenant.
    fn cached(
        response: Response<ProxyBody>,
        outcome: Outcome,
        cacheable: &Cacheable<'_>,
    ) -> Answer {
        Answer {
            response,
            outcome,
            route: Some(cacheable.route.index),
            tenant: cacheable.tenant,
        }
    }
}

// === impl Proxy ===

impl Proxy {
    /// `setup` holds what the config only names: the verifiers and keys built from secrets.
    pub fn new(config: Arc<Config>, setup: Setup) -> Result<Self, ProxyError> {
        let upstream = Upstream::new(&UpstreamOptions {
            url: config.upstream.url.clone(),
            connect_timeout: config.upstream.connect_timeout,
            timeout: config.upstream.timeout,
            pool_max_idle_per_host: config.upstream.pool_max_idle_per_host,
            pool_idle_timeout: config.upstream.pool_idle_timeout,
            ca_file: config.upstream.ca_file.clone(),
            http2: config.upstream.http2,
        })?;
        let memory = MemoryOptions {
            max_bytes: config.cache.max_memory,
            tenant_share: config.cache.tenant_share_bytes(),
            route_max_bytes: config
                .routes
                .routes()
                .iter()
                .map(|r| r.max_memory)
                .collect(),
        };
        let store = match (setup.shared, &config.redis) {
            (Some((tier, events)), Some(redis)) => {
                let settings = SharedSettings {
                    local_ttl: redis.local_ttl,
                    lease_ttl: redis.lease.then_some(redis.lease_ttl),
                };
                Tiered::with_shared(memory, tier, events, settings)
            }
            _ => Tiered::new(memory),
        };
        let stats = Stats::new(
            config
                .routes
                .routes()
                .iter()
                .map(|r| r.pattern.as_str().to_owned())
                .collect(),
        );
        let metrics = Metrics::new(
            config.routes.routes().iter().map(route_label_id).collect(),
            config.admin.as_ref().is_some_and(|admin| admin.metrics),
        );
        let auth = config.auth.as_ref().map(|auth| {
            Arc::new(Authenticator::new(
                auth,
                setup.jwt,
                upstream.clone(),
                setup.credential_key.clone(),
            ))
        });
        let route_ids = config
            .routes
            .routes()
            .iter()
            .map(|r| (r.identity(), r.id))
            .collect();
        let inner = Arc::new(Inner {
            config,
            webhook: setup.webhook.map(Arc::new),
            auth,
            credential_key: setup.credential_key,
            core: Arc::new(Core {
                upstream,
                store,
                flights: SingleFlight::new(),
                stats,
                metrics,
                route_ids: Mutex::new(route_ids),
                replaced_introspections: AtomicU64::new(0),
            }),
        });
        Ok(Self {
            live: Arc::new(ArcSwap::new(inner.clone())),
            inner,
        })
    }

    /// The proxy as the config version in force has it. A request takes it once, at its
    /// start, and keeps it to its end.
    pub fn current(&self) -> Proxy {
        Proxy {
            inner: self.live.load_full(),
            live: self.live.clone(),
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }

    /// Puts a new config version in force for the requests that start from now on; requests
    /// in flight finish with the version they started with. Each route keeps the id of the
    /// route of the same identity (pattern and methods) in any earlier version, so its
    /// counters and the entries it filled stay its own wherever it moved; a new identity gets
    /// an id never used before. Call one update at a time (`app`'s reload does).
    ///
    /// What the core was built with stays: the listeners, the upstream client, the memory
    /// tier's size and shares, the shared tier (`app` reports those as needing a restart).
    pub fn update(&self, update: Update) {
        let Update {
            mut config,
            webhook,
            credential_key,
            auth,
        } = update;
        let old = self.live.load_full();
        let core = &old.core;
        {
            let mut ids = core.route_ids.lock().unwrap_or_else(|e| e.into_inner());
            for route in &mut config.routes.routes {
                let next = ids.len();
                route.id = *ids.entry(route.identity()).or_insert(next);
            }
            let known = ids.len();
            drop(ids);
            let routes = config.routes.routes();
            core.stats.set_routes(
                &routes
                    .iter()
                    .map(|r| (r.id, r.pattern.as_str().to_owned()))
                    .collect::<Vec<_>>(),
            );
            core.metrics.set_routes(
                &routes
                    .iter()
                    .map(|r| (r.id, route_label_id(r)))
                    .collect::<Vec<_>>(),
            );
            let mut limits = vec![None; known];
            for route in routes {
                limits[route.id] = route.max_memory;
            }
            core.store.set_route_limits(limits);
        }
        let credential_key = match credential_key {
            Part::Keep => old.credential_key.clone(),
            Part::New(key) => key,
        };
        let auth = match (auth, &config.auth) {
            (_, None) => None,
            (Part::Keep, Some(_)) if old.auth.is_some() => old.auth.clone(),
            (Part::Keep, Some(settings)) => Some(Arc::new(Authenticator::new(
                settings,
                None,
                core.upstream.clone(),
                credential_key.clone(),
            ))),
            (Part::New(jwt), Some(settings)) => Some(Arc::new(Authenticator::new(
                settings,
                jwt,
                core.upstream.clone(),
                credential_key.clone(),
            ))),
        };
        if let Some(replaced) = &old.auth {
            if !auth.as_ref().is_some_and(|new| Arc::ptr_eq(new, replaced)) {
                core.replaced_introspections
                    .fetch_add(replaced.introspections(), Relaxed);
            }
        }
        let webhook = match webhook {
            Part::Keep => old.webhook.clone(),
            Part::New(verifier) => verifier.map(Arc::new),
        };
        self.live.store(Arc::new(Inner {
            config: Arc::new(config),
            webhook,
            credential_key,
            auth,
            core: core.clone(),
        }));
    }

    pub fn store(&self) -> &Tiered {
        &self.inner.store
    }

    /// The per-request series and latencies of `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// GET and HEAD: answer from the cache when the rules allow it, otherwise pass through.
    ///
    /// The target is normalized and its route found here, once; everything after reads the
    /// [`Resolved`] value.
    pub(crate) async fn read(
        &self,
        parts: http::request::Parts,
        body: ProxyBody,
        client: &ClientInfo<'_>,
    ) -> Result<Answer, ProxyError> {
        let config = self.inner.config.clone();
        let target = match cache_key::normalize(parts.uri.path(), parts.uri.query()) {
            Ok(target) => target,
            Err(_) => {
                let req = Request::from_parts(parts, body);
                return self
                    .pass(req, client, Outcome::Bypass(Bypass::AmbiguousPath), None)
                    .await;
            }
        };
        let Some(resolved) = resolve(&config.routes, &parts.method, &target) else {
            let req = Request::from_parts(parts, body);
            return self
                .pass(req, client, Outcome::Bypass(Bypass::NoRoute), None)
                .await;
        };
        let route = resolved.found.route.index;
        let identity = match self.identify(resolved.found.route, &parts, client).await? {
            Identified::NotRequired => None,
            Identified::Verified(identity) => Some(identity),
            Identified::Answer(response) => {
                let outcome = Outcome::Refused(Refusal::InvalidCredential);
                return Ok(Answer::new(response, outcome, Some(route)));
            }
            Identified::PassAnonymous => {
                let outcome = Outcome::Bypass(Bypass::Anonymous);
                let req = Request::from_parts(parts, body);
                return self.pass(req, client, outcome, Some(route)).await;
            }
        };
        let caller = identity
            .as_ref()
            .map_or(Caller::NotRequired, Caller::Verified);
        let decision = classify(
            &config,
            &resolved,
            &parts,
            client.host,
            self.inner.credential_key.as_bytes(),
            caller,
        );
        let cacheable = match decision {
            Ok(cacheable) => cacheable,
            Err(Denied::Refuse(err)) => return Err(err),
            Err(Denied::Bypass(reason)) => {
                let req = Request::from_parts(parts, body);
                return self
                    .pass(req, client, Outcome::Bypass(reason), Some(route))
                    .await;
            }
        };
        // A request with a body was refused by `classify`, so nothing is dropped here.
        drop(body);

        // A response that varies is stored under a variant key: the request's values of the
        // headers its `Vary` names (and the verified user, for per-caller answers).
        let user = identity.as_ref().and_then(|i| i.user.as_deref());
        let primary = cacheable.key;
        let headers = &parts.headers;
        let variant_of = move |selection: &vary::Selection| {
            vary::variant_key(&primary, selection, headers, user)
        };
        let now = UnixMillis::now();
        let tenant = cacheable.tenant.as_ref().map(TenantId::as_str);
        let found = self
            .inner
            .store
            .find(tenant, &primary, &variant_of, now)
            .await;
        if let Some((entry, source)) = &found.entry {
            if let Some(answer) = self.answer_fresh(entry, *source, &cacheable, &parts, now) {
                return Ok(answer);
            }
        } else if found.held.is_none()
            && http_cache::only_if_cached(cacheable.route, &parts.headers)
        {
            let outcome = Outcome::Bypass(Bypass::OnlyIfCached);
            let response = http_cache::gateway_timeout();
            return Ok(Answer::cached(response, outcome, &cacheable));
        }
        let miss = fill::Miss {
            lookup: found.lookup,
            varies: found.varies,
            user,
            held: found.held,
        };
        self.answer_held(cacheable, miss, &resolved, &parts, client, now)
            .await
    }

    /// Builds the GET a fill sends, a function of the key: the normalized target (what was keyed
    /// is what is forwarded), only the request headers `vary::fill_header` allows (what the key
    /// accounts for, content negotiation and a few harmless ones), and cachegate's forwarding
    /// headers. Conditionals and `Range` never go: a fill asks for the full answer every waiter
    /// can use.
    fn fill_request(
        &self,
        parts: &http::request::Parts,
        target: &Target<'_>,
        client: &ClientInfo<'_>,
        rules: &vary::FillRules<'_>,
    ) -> Result<Request<ProxyBody>, ProxyError> {
        let uri = self.inner.upstream.uri_for(&target.path_and_query())?;
        let mut headers = vary::fill_headers(&parts.headers, rules);
        forward_headers(&mut headers, client);
        // The entry must be a full GET response so later GETs can use it; HEAD is answered from it.
        let mut req = Request::new(ProxyBody::empty());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        req.extensions_mut().insert(client.trace.timer());
        Ok(req)
    }

    /// The one place an outcome becomes the `Cache-Status` header and is counted.
    pub(crate) fn finish(&self, answer: Answer) -> (Response<ProxyBody>, Outcome) {
        let Answer {
            mut response,
            outcome,
            route,
            tenant,
        } = answer;
        response
            .headers_mut()
            .insert(CACHE_STATUS.clone(), outcome.cache_status());
        let tenant = tenant.as_ref().map(TenantId::as_str);
        self.inner
            .stats
            .record(outcome, self.route_id(route), tenant);
        (response, outcome)
    }

    /// The id (`Route::id`) of the route at `position` in this version's table: what the
    /// counters are kept by.
    fn route_id(&self, position: Option<usize>) -> Option<usize> {
        let routes = self.inner.config.routes.routes();
        position.and_then(|i| routes.get(i)).map(|r| r.id)
    }

    /// Forwards a request unchanged (bar the forwarding headers) and streams the answer back.
    async fn pass(
        &self,
        req: Request<ProxyBody>,
        client: &ClientInfo<'_>,
        outcome: Outcome,
        route: Option<usize>,
    ) -> Result<Answer, ProxyError> {
        let response = self.send_as_is(req, client).await?;
        let response = stream_response(response, &self.inner.config.cache.tag_headers);
        Ok(Answer::new(response, outcome, route))
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
        parts.extensions.insert(client.trace.timer());
        let req = Request::from_parts(parts, body);
        self.inner.upstream.send(req).await
    }

    /// The answer to an error: its JSON response, and the refusal or failure it counts as.
    pub(crate) fn error_answer(&self, err: &ProxyError) -> Answer {
        let outcome = error_outcome(err);
        let status = err.status().as_u16();
        match outcome {
            Outcome::Failed(_) => {
                tracing::warn!(error = %err.chain(), status, "request failed");
            }
            _ => tracing::info!(error = %err.chain(), status, "request refused"),
        }
        Answer::new(error_response(err), outcome, None)
    }
}

/// The identity of a route as its `/metrics` series are labelled.
fn route_label_id(route: &crate::policy::route::Route) -> RouteId {
    RouteId {
        pattern: route.pattern.as_str().to_owned(),
        methods: route
            .methods
            .as_ref()
            .map(|m| m.iter().map(ToString::to_string).collect()),
    }
}

/// What an error answer counts as: a refusal (never forwarded), or a failure.
fn error_outcome(err: &ProxyError) -> Outcome {
    match err {
        ProxyError::BadRequest(_) => Outcome::Refused(Refusal::BadRequest),
        ProxyError::MisdirectedHost(_) => Outcome::Refused(Refusal::Misdirected),
        ProxyError::Unauthenticated(_) => Outcome::Refused(Refusal::Unauthenticated),
        ProxyError::BadCredential(_) => Outcome::Refused(Refusal::InvalidCredential),
        ProxyError::Forbidden(_) => Outcome::Refused(Refusal::Forbidden),
        ProxyError::AuthUnavailable(_) => Outcome::Refused(Refusal::AuthUnavailable),
        ProxyError::HeadersTooLarge(_) => Outcome::Refused(Refusal::HeadersTooLarge),
        ProxyError::BodyTooLarge(_) => Outcome::Refused(Refusal::BodyTooLarge),
        ProxyError::UpstreamConnect(_)
        | ProxyError::UpstreamTimeout(_)
        | ProxyError::UpstreamConnectTimeout(_)
        | ProxyError::UpstreamTls(_)
        | ProxyError::UpstreamProtocol(_) => Outcome::Failed(Failure::Upstream),
        ProxyError::Internal(_) => Outcome::Failed(Failure::Internal),
    }
}

/// Seconds since the Unix epoch, for signature and token times (which are wall-clock times).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A response from a stored entry, with `headers` (the entry's, as a map). `now` is given for
/// hits (which carry `Age`).
fn from_entry(
    entry: &CachedResponse,
    headers: http::HeaderMap,
    head: bool,
    now: Option<UnixMillis>,
) -> Response<ProxyBody> {
    let body = if head {
        ProxyBody::empty()
    } else {
        ProxyBody::Full(Some(entry.body()))
    };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status();
    *response.headers_mut() = headers;
    if let Some(now) = now {
        response
            .headers_mut()
            .insert(AGE, HeaderValue::from(entry.age(now).as_secs()));
    }
    response
}

/// Streams a backend response to the client (hop-by-hop and tag headers removed).
fn stream_response(
    response: Response<Incoming>,
    tag_headers: &[HeaderName],
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    clean_response_head(&mut parts.headers, tag_headers);
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

/// The JSON error answer: `{"error": code, "detail": message}` (its `Cache-Status` comes from
/// the error's outcome, see [`error_outcome`]).
fn error_response(err: &ProxyError) -> Response<ProxyBody> {
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
    response
}
