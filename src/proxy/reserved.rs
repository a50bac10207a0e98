//! What cachegate answers itself: the reserved path prefix (the signed invalidation webhook) on
//! the main listener, and the purge and warm operations the admin API shares with it.
//!
//! Nothing under the reserved prefix is ever forwarded to the backend or cached.

use super::Proxy;
use crate::body::ProxyBody;
use crate::invalidation::{PurgeRequest, TenantSel};
use crate::store::{Purge, PurgeScope, Tag, TenantScope};
use crate::upstream::ClientInfo;
use crate::webhook::SIGNATURE_HEADER;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinSet;

/// A `POST /warm` request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    /// Sent as the route's tenant header when the route reads its tenant from a header.
    pub tenant: Option<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    /// A route pattern exactly as in the config (e.g. `/api/faculty/{id}/`), warmed once per
    /// item of `captures`: a string for a one-capture route, else an object of name -> value.
    pub route: Option<String>,
    #[serde(default)]
    pub captures: Vec<serde_json::Value>,
    /// The Host to warm for; default the first `[server] hosts` entry, else `localhost`.
    pub host: Option<String>,
    /// Parallel fetches; default `[admin] warm_concurrency`.
    pub concurrency: Option<usize>,
}

/// The outcome of one warmed path.
#[derive(Debug, Serialize)]
pub struct Warmed {
    pub path: String,
    pub status: u16,
    pub cache: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `POST /warm`.
#[derive(Debug, Serialize)]
pub struct WarmReport {
    pub done: usize,
    pub failed: usize,
    pub results: Vec<Warmed>,
}

/// Most paths one `POST /warm` may list; the CLI sends long lists in batches.
pub const MAX_WARM_PATHS: usize = 10_000;

impl Proxy {
    /// Answers a request under the reserved prefix.
    pub(super) async fn reserved(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let hook = &self.inner.config.webhook;
        if req.uri().path() != hook.path {
            return json(
                StatusCode::NOT_FOUND,
                &error_body("not_found", "no such cachegate endpoint"),
            );
        }
        if req.method() != Method::POST {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                &error_body("method_not_allowed", "the invalidation webhook takes POST"),
            );
        }
        let (parts, body) = req.into_parts();
        let body = match read_body(body, hook.max_body).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let Some(verifier) = &self.inner.webhook else {
            self.inner.stats.webhook_refused();
            tracing::warn!("webhook refused: no webhook secret is configured");
            return json(
                StatusCode::UNAUTHORIZED,
                &error_body(
                    "unauthorized",
                    "no webhook secret is configured on this instance",
                ),
            );
        };
        let signature = parts
            .headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        if let Err(err) = verifier.verify(signature, &body, super::unix_now()) {
            self.inner.stats.webhook_refused();
            tracing::warn!(reason = err.as_str(), "webhook refused");
            return json(
                StatusCode::UNAUTHORIZED,
                &error_body("unauthorized", &format!("signature refused: {err}")),
            );
        }
        let request = match PurgeRequest::from_json(&body, &self.resources()) {
            Ok(request) => request,
            Err(err) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &error_body("bad_request", &err.to_string()),
                )
            }
        };
        let purged = self.purge(&request).await;
        self.inner.stats.webhook_purge();
        tracing::info!(purged, "webhook purge");
        json(StatusCode::OK, &serde_json::json!({ "purged": purged }))
    }

    /// The resource names of the route table, for validating `resource_type`.
    pub fn resources(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .inner
            .config
            .routes
            .routes()
            .iter()
            .filter_map(|r| r.resource.as_deref())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Carries out a validated purge request; returns how many entries were removed (or marked
    /// stale). In-flight fills that the purge covers are fenced and will not be stored.
    pub async fn purge(&self, request: &PurgeRequest) -> usize {
        let tenant = match &request.tenant {
            TenantSel::Shared => PurgeScope::Only(TenantScope::Shared),
            TenantSel::One(id) => PurgeScope::Only(TenantScope::one(id)),
            TenantSel::All => PurgeScope::All,
        };
        let (uris, paths): (Vec<&String>, Vec<&String>) =
            request.paths.iter().partition(|p| p.contains('?'));
        if let Some(auth) = &self.inner.auth {
            if request.forget_credentials || request.user.is_some() {
                let tenant = match &request.tenant {
                    TenantSel::One(id) => Some(id.as_str()),
                    TenantSel::Shared | TenantSel::All => None,
                };
                let forgotten = auth.forget(tenant, request.user.as_deref());
                tracing::info!(forgotten, user = ?request.user, "verified credentials forgotten");
            }
        }
        let mut tags: Vec<Tag> = request.tags.iter().map(|t| Tag::parse(t)).collect();
        if let Some(user) = &request.user {
            tags.push(Tag::user(user));
        }
        let purge = Purge {
            tenant,
            tags,
            paths: paths.into_iter().map(|p| Arc::from(p.as_str())).collect(),
            uris: uris.into_iter().map(|p| Arc::from(p.as_str())).collect(),
            prefixes: request
                .prefixes
                .iter()
                .map(|p| Arc::from(p.as_str()))
                .collect(),
            all: request.all,
            soft: request.soft,
        };
        self.inner.store.purge(&purge).await.purged
    }

    /// Fetches every path through the ordinary miss path (so fills are coalesced and fenced like
    /// any request), at most `concurrency` at a time.
    pub async fn warm(&self, mut request: WarmRequest) -> Result<WarmReport, String> {
        if let Some(route) = request.route.take() {
            let expanded = self.expand_route(&route, &request.captures)?;
            request.paths.extend(expanded);
        } else if !request.captures.is_empty() {
            return Err("captures need a route".to_string());
        }
        if request.paths.is_empty() {
            return Err("nothing to warm: give paths, or a route and captures".to_string());
        }
        if request.paths.len() > MAX_WARM_PATHS {
            return Err(format!(
                "at most {MAX_WARM_PATHS} paths per request; send long lists in batches"
            ));
        }
        if let Some(bad) = request.paths.iter().find(|p| !p.starts_with('/')) {
            return Err(format!("path {bad:?} must start with '/'"));
        }
        let config = &self.inner.config;
        let host = request
            .host
            .clone()
            .or_else(|| {
                config
                    .server
                    .hosts
                    .as_ref()
                    .and_then(|h| h.first().cloned())
            })
            .unwrap_or_else(|| "localhost".to_string());
        let concurrency = request
            .concurrency
            .unwrap_or(config.admin.as_ref().map_or(8, |a| a.warm_concurrency))
            .clamp(1, 256);
        let mut results: Vec<Option<Warmed>> = (0..request.paths.len()).map(|_| None).collect();
        let mut tasks = JoinSet::new();
        let mut next = 0;
        while next < request.paths.len() || !tasks.is_empty() {
            while next < request.paths.len() && tasks.len() < concurrency {
                let (proxy, path, tenant, host) = (
                    self.clone(),
                    request.paths[next].clone(),
                    request.tenant.clone(),
                    host.clone(),
                );
                let i = next;
                tasks.spawn(
                    async move { (i, proxy.warm_one(path, tenant.as_deref(), &host).await) },
                );
                next += 1;
            }
            if let Some(Ok((i, warmed))) = tasks.join_next().await {
                results[i] = Some(warmed);
            }
        }
        let results: Vec<Warmed> = results.into_iter().flatten().collect();
        let failed = results.iter().filter(|w| w.error.is_some()).count();
        Ok(WarmReport {
            done: results.len() - failed,
            failed,
            results,
        })
    }

    async fn warm_one(&self, path: String, tenant: Option<&str>, host: &str) -> Warmed {
        let mut headers = HeaderMap::new();
        match HeaderValue::from_str(host) {
            Ok(value) => headers.insert(http::header::HOST, value),
            Err(_) => return warm_failed(path, "host is not a valid header value"),
        };
        // Routes that read the tenant from a header get it there; for path, query and host
        // tenants the path (or host) given already names it.
        if let (Some(tenant), Some(name)) = (tenant, self.tenant_header_for(&path)) {
            match HeaderValue::from_str(tenant) {
                Ok(value) => headers.insert(name, value),
                Err(_) => return warm_failed(path, "tenant is not a valid header value"),
            };
        }
        let mut builder = Request::builder().method(Method::GET).uri(path.as_str());
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        let parts = match builder.body(()) {
            Ok(req) => req.into_parts().0,
            Err(_) => return warm_failed(path, "not a valid request target"),
        };
        let client = ClientInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
            host,
        };
        match self.read(parts, ProxyBody::empty(), &client).await {
            Ok(answer) => {
                let (response, _) = self.finish(answer);
                let status = response.status().as_u16();
                let cache = response
                    .headers()
                    .get(&super::CACHE_STATUS)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let error = if status >= 400 {
                    Some(format!("backend answered {status}"))
                } else if cache.contains("fwd=bypass") || cache.contains("detail=") {
                    Some(format!("not stored ({cache})"))
                } else {
                    None
                };
                Warmed {
                    path,
                    status,
                    cache,
                    error,
                }
            }
            Err(err) => {
                // Counted like any refused or failed request.
                self.finish(self.error_answer(&err));
                Warmed {
                    path,
                    status: err.status().as_u16(),
                    cache: String::new(),
                    error: Some(err.to_string()),
                }
            }
        }
    }

    /// The paths of `route` (a pattern as written in the config) for each set of captures.
    fn expand_route(
        &self,
        route: &str,
        captures: &[serde_json::Value],
    ) -> Result<Vec<String>, String> {
        let found = self
            .inner
            .config
            .routes
            .routes()
            .iter()
            .find(|r| r.pattern.as_str() == route)
            .ok_or_else(|| format!("no route with the pattern {route:?}"))?;
        let names: Vec<&str> = found.pattern.capture_names().collect();
        captures
            .iter()
            .map(|item| {
                let value_of = |name: &str| -> Result<String, String> {
                    let value = match item {
                        serde_json::Value::String(s) if names.len() == 1 => s.as_str(),
                        serde_json::Value::Object(map) => map
                            .get(name)
                            .and_then(|v| v.as_str())
                            .ok_or_else(|| format!("capture {name:?} missing in {item}"))?,
                        _ => {
                            return Err(format!(
                                "each capture must be an object of {names:?}{}",
                                if names.len() == 1 { " or a string" } else { "" }
                            ))
                        }
                    };
                    Ok(value.to_string())
                };
                render_pattern(route, value_of)
            })
            .collect()
    }

    /// The tenant header of the GET route matching `path`, when it reads its tenant from one.
    fn tenant_header_for(&self, path: &str) -> Option<http::HeaderName> {
        let path = path.split('?').next().unwrap_or(path);
        let found = self.inner.config.routes.find(&Method::GET, path)?;
        match &found.route.tenant {
            crate::policy::route::TenantSource::Header(name) => Some(name.clone()),
            _ => None,
        }
    }
}

/// Fills a pattern's `{name}` and `{*name}` captures. One-segment values may not contain `/`;
/// no value may contain `?` or `#`, or be empty.
fn render_pattern(
    pattern: &str,
    mut value_of: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("malformed pattern {pattern:?}"))?;
        let inner = &rest[open + 1..close];
        let (name, tail) = match inner.strip_prefix('*') {
            Some(name) => (name, true),
            None => (inner, false),
        };
        let value = value_of(name)?;
        if value.is_empty() || value.contains(['?', '#']) || (!tail && value.contains('/')) {
            return Err(format!("capture {name:?} cannot be {value:?}"));
        }
        out.push_str(&value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn warm_failed(path: String, why: &str) -> Warmed {
    Warmed {
        path,
        status: 0,
        cache: String::new(),
        error: Some(why.to_string()),
    }
}

/// How long a webhook or admin request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads a request body of at most `limit` bytes, or answers 413 / 408 / 400.
pub(crate) async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, Response<ProxyBody>> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // A client trickling its body must not hold the request (and its connection) open forever.
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await;
    let Ok(read) = read else {
        return Err(json(
            StatusCode::REQUEST_TIMEOUT,
            &error_body("request_timeout", "the request body did not arrive in time"),
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &error_body(
                    "payload_too_large",
                    &format!("the body exceeds {limit} bytes"),
                ),
            ))
        }
        Err(_) => Err(json(
            StatusCode::BAD_REQUEST,
            &error_body("bad_request", "the request body could not be read"),
        )),
    }
}

pub(crate) fn error_body(code: &str, detail: &str) -> serde_json::Value {
    serde_json::json!({ "error": code, "detail": detail })
}

/// A JSON response cachegate answers itself; never cached by clients or intermediaries.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::render_pattern;

    #[test]
    fn patterns_are_filled_from_captures() {
        let id = |v: &'static str| move |_: &str| Ok::<_, String>(v.to_string());
        assert_eq!(
            render_pattern("/api/faculty/{id}/", id("12")).unwrap(),
            "/api/faculty/12/"
        );
        assert_eq!(
            render_pattern("/files/{*rest}", id("a/b.txt")).unwrap(),
            "/files/a/b.txt"
        );
        assert!(render_pattern("/api/faculty/{id}/", id("1/2")).is_err());
        assert!(render_pattern("/api/faculty/{id}/", id("")).is_err());
        assert!(render_pattern("/api/faculty/{id}/", id("1?x")).is_err());
        let two = |name: &str| {
            Ok::<_, String>(if name == "org" {
                "7".into()
            } else {
                "3".into()
            })
        };
        assert_eq!(
            render_pattern("/o/{org}/f/{id}/", two).unwrap(),
            "/o/7/f/3/"
        );
    }
}
