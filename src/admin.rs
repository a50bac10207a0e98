//! The admin API, on its own listener (default `127.0.0.1:9090`).
//!
//! Every endpoint but `/healthz`, `/readyz`, the static `/ui` page (and `/metrics` with `[admin] metrics_open =
//! true`) needs `Authorization: Bearer <token>`; a missing or wrong token gets `401` and nothing
//! is done. Answers are JSON, but for `/metrics`.
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /healthz` | `{"status":"ok"}` while the process serves (no token: liveness probes) |
//! | `GET /readyz` | `{"status":"ready"}` once the proxy listener is up (no token: readiness probes) |
//! | `GET /stats` | counters: totals, hit ratio, store, per route, per tenant |
//! | `GET /metrics` | Prometheus text exposition (`metrics`); `404` with `[admin] metrics = false` |
//! | `POST /purge` | purges, same body as the webhook; `{"purged": N}` |
//! | `POST /warm` | `{"tenant","paths","route","captures","host","concurrency","headers"}`: fetches through the read path, as a client sending `headers` |
//! | `GET /entries?tenant=&prefix=&limit=` | stored entries: readable key, TTL left, size, tags, hits |
//! | `GET /entries/top?limit=` | the memory tier's entries with the most hits, most first (default 20, at most 1000) |
//! | `GET /ui` | the dashboard page (`ui`): static, no data, no token needed to load it; it sends the token it is given with every call |
//! | `POST /reload` | reloads the config file: `{"reloaded": true, "changed", "restart_required"}`, or `422` with the problems (the running config stays) |
//!
//! The bodies are the types of `admin_api`, which the operator subcommands send.

use crate::admin_api::{
    EntriesAnswer, EntriesQuery, Entry, PurgeAnswer, Refusal, ReloadAnswer, TopQuery, WarmRequest,
};
use crate::answer::{error_body, json, read_body};
use crate::body::ProxyBody;
use crate::invalidation::PurgeRequest;
use crate::metrics;
use crate::proxy::Proxy;
use crate::reload::{ReloadError, Reloader, Trigger};
use crate::server::Handler;
use crate::stats::PurgeSource;
use crate::store::{EntryInfo, TenantScope};
use crate::ui;
use arc_swap::ArcSwap;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Largest admin request body (warm lists are sent in batches).
const MAX_BODY: u64 = 4 << 20;
/// Default and largest `limit` of `GET /entries`.
const DEFAULT_ENTRIES: usize = 100;
const MAX_ENTRIES: usize = 10_000;
/// Default and largest `limit` of `GET /entries/top`.
const DEFAULT_TOP: usize = 20;
const MAX_TOP: usize = 1_000;

/// The admin API handler.
pub struct Admin {
    proxy: Proxy,
    /// Who may ask; replaced whole by a reload.
    access: Arc<ArcSwap<AdminAccess>>,
    /// `None` when this handler cannot reload (it was built outside an `App`).
    reloader: Option<Reloader>,
}

/// Who may use the admin API, as the config in force says.
#[derive(Debug, Clone, Default)]
pub struct AdminAccess {
    /// `None` when no token is configured: then only `/healthz` and `/readyz` answer 200 (and
    /// `/metrics` when it is open).
    pub token: Option<String>,
    /// `[admin] metrics_open`: `/metrics` needs no token.
    pub metrics_open: bool,
}

impl Admin {
    pub fn new(proxy: Proxy, token: Option<String>) -> Admin {
        let metrics_open = proxy
            .config()
            .admin
            .as_ref()
            .is_some_and(|admin| admin.metrics_open);
        Admin {
            proxy,
            access: Arc::new(ArcSwap::from_pointee(AdminAccess {
                token,
                metrics_open,
            })),
            reloader: None,
        }
    }

    /// `POST /reload` reloads through `reloader`.
    pub fn with_reloader(mut self, reloader: Reloader) -> Admin {
        self.reloader = Some(reloader);
        self
    }

    /// The handle a reload replaces the token and `metrics_open` through.
    pub fn access(&self) -> Arc<ArcSwap<AdminAccess>> {
        self.access.clone()
    }

    fn authorized(&self, req: &Request<Incoming>) -> Result<(), Refusal> {
        let access = self.access.load();
        let Some(token) = &access.token else {
            return Err(Refusal::NoTokenConfigured);
        };
        let presented = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Refusal::MissingToken)?;
        // Constant time, so the token cannot be guessed byte by byte from response times.
        if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err(Refusal::WrongToken)
        }
    }

    async fn route(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let path = req.uri().path().to_owned();
        // Probes cannot send a secret, and neither answer tells anything but that the process
        // serves.
        match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => return json(StatusCode::OK, &json!({ "status": "ok" })),
            (&Method::GET, "/readyz") => {
                return json(StatusCode::OK, &json!({ "status": "ready" }))
            }
            // The page holds no data and no secret: it asks for the token and sends it with
            // every call it makes to the endpoints below, which refuse without it.
            (&Method::GET, "/ui") => return ui::page(),
            _ => {}
        }
        let open = self.access.load().metrics_open && path == "/metrics";
        if !open {
            if let Err(refusal) = self.authorized(&req) {
                let why = refusal.detail();
                tracing::warn!(%path, why, "admin request refused");
                return json(StatusCode::UNAUTHORIZED, &error_body("unauthorized", why));
            }
        }
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/stats") => json(StatusCode::OK, &self.stats().await),
            (Method::GET, "/metrics") if self.proxy.metrics().enabled() => self.metrics(),
            (Method::POST, "/purge") => self.purge(req).await,
            (Method::POST, "/warm") => self.warm(req).await,
            (Method::GET, "/entries") => self.entries(&req).await,
            (Method::GET, "/entries/top") => self.busiest(&req).await,
            (Method::POST, "/reload") => self.reload(),
            (
                _,
                "/healthz" | "/readyz" | "/stats" | "/purge" | "/warm" | "/entries"
                | "/entries/top" | "/ui" | "/reload",
            ) => json(
                StatusCode::METHOD_NOT_ALLOWED,
                &error_body("method_not_allowed", "see the admin API's endpoint list"),
            ),
            _ => json(
                StatusCode::NOT_FOUND,
                &error_body("not_found", "no such admin endpoint"),
            ),
        }
    }

    /// The `/stats` answer: [`crate::stats::Report`], a typed struct that is the wire format.
    async fn stats(&self) -> serde_json::Value {
        let report = self.proxy.stats_report_with_redis().await;
        serde_json::to_value(report).unwrap_or_default()
    }

    /// The `/metrics` answer: [`Proxy::scrape`] rendered as Prometheus text.
    fn metrics(&self) -> Response<ProxyBody> {
        let text = metrics::render(self.proxy.scrape());
        let mut response = Response::new(ProxyBody::full(text));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(metrics::CONTENT_TYPE),
        );
        response
    }

    /// `POST /reload`: the config file read, validated and put in force, or refused whole.
    fn reload(&self) -> Response<ProxyBody> {
        let Some(reloader) = &self.reloader else {
            return json(
                StatusCode::NOT_FOUND,
                &error_body("not_found", "this instance cannot reload"),
            );
        };
        match reloader.reload(Trigger::Admin) {
            Ok(reloaded) => json(
                StatusCode::OK,
                &ReloadAnswer {
                    reloaded: true,
                    changed: reloaded.changed,
                    restart_required: reloaded.restart_required,
                },
            ),
            Err(err @ ReloadError::NoFile) => json(
                StatusCode::CONFLICT,
                &error_body("no_config_file", &err.to_string()),
            ),
            Err(err) => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &error_body("invalid_config", &err.to_string()),
            ),
        }
    }

    async fn purge(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let body = match read_body(req.into_body(), MAX_BODY).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        // The config in force now: its resources, its authenticator.
        let proxy = self.proxy.current();
        let request = match PurgeRequest::from_json(&body, &proxy.resources()) {
            Ok(request) => request,
            Err(err) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &error_body("bad_request", &err.to_string()),
                )
            }
        };
        let purged = proxy.purge(&request).await;
        self.proxy
            .stats()
            .purge_done(PurgeSource::Admin, purged as u64, || request.describe());
        tracing::info!(purged, "admin purge");
        json(
            StatusCode::OK,
            &PurgeAnswer {
                purged: purged as u64,
            },
        )
    }

    async fn warm(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let body = match read_body(req.into_body(), MAX_BODY).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let request: WarmRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(err) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &error_body("bad_request", &format!("invalid warm request: {err}")),
                )
            }
        };
        match self.proxy.current().warm(request).await {
            Ok(report) => json(StatusCode::OK, &report),
            Err(why) => json(StatusCode::BAD_REQUEST, &error_body("bad_request", &why)),
        }
    }

    async fn entries(&self, req: &Request<Incoming>) -> Response<ProxyBody> {
        let query = match EntriesQuery::from_query(req.uri().query().unwrap_or("")) {
            Ok(query) => query,
            Err(why) => return json(StatusCode::BAD_REQUEST, &error_body("bad_request", &why)),
        };
        let limit = query.limit.map_or(DEFAULT_ENTRIES, |n| {
            usize::try_from(n)
                .unwrap_or(MAX_ENTRIES)
                .clamp(1, MAX_ENTRIES)
        });
        let now = crate::clock::UnixMillis::now();
        // `tenant=` (empty) names the shared scope.
        let tenant = query.tenant.as_ref().map(|t| match t.as_str() {
            "" => TenantScope::Shared,
            id => TenantScope::one(id),
        });
        let entries = self
            .proxy
            .store()
            .entries(tenant.as_ref(), query.prefix.as_deref(), limit, now)
            .await;
        let entries = entries.into_iter().map(wire_entry).collect();
        json(StatusCode::OK, &EntriesAnswer { entries })
    }

    /// `GET /entries/top?limit=`: the memory tier's entries with the most hits, most first.
    async fn busiest(&self, req: &Request<Incoming>) -> Response<ProxyBody> {
        let query = match TopQuery::from_query(req.uri().query().unwrap_or("")) {
            Ok(query) => query,
            Err(why) => return json(StatusCode::BAD_REQUEST, &error_body("bad_request", &why)),
        };
        let limit = query.limit.map_or(DEFAULT_TOP, |n| {
            usize::try_from(n).unwrap_or(MAX_TOP).clamp(1, MAX_TOP)
        });
        let now = crate::clock::UnixMillis::now();
        let entries = self.proxy.store().busiest_entries(limit, now).await;
        let entries = entries.into_iter().map(wire_entry).collect();
        json(StatusCode::OK, &EntriesAnswer { entries })
    }
}

fn wire_entry(e: EntryInfo) -> Entry {
    Entry {
        key: e.readable_key,
        tenant: e.tenant.id().unwrap_or("").to_string(),
        target: e.target,
        status: e.status,
        ttl_left_secs: e.ttl_left.as_secs(),
        age_secs: e.age.as_secs(),
        size: e.size,
        tags: e.tags,
        stale: e.stale,
        hits: e.hits,
    }
}

impl Handler for Admin {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<ProxyBody> {
        self.route(req).await
    }
}
