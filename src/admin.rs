//! The admin API, on its own listener (default `127.0.0.1:9090`).
//!
//! Every endpoint but `/healthz` needs `Authorization: Bearer <token>`; a missing or wrong token
//! gets `401` and nothing is done. Answers are JSON.
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /healthz` | `{"status":"ok"}` while the process serves (no token) |
//! | `GET /readyz` | `{"status":"ready"}` once the proxy listener is up |
//! | `GET /stats` | counters: totals, hit ratio, store, per route, per tenant |
//! | `POST /purge` | purges, same body as the webhook; `{"purged": N}` |
//! | `POST /warm` | `{"tenant","paths","host","concurrency"}`: fetches through the miss path |
//! | `GET /entries?tenant=&prefix=&limit=` | stored entries: readable key, TTL left, size, tags |

use crate::body::ProxyBody;
use crate::invalidation::PurgeRequest;
use crate::proxy::reserved::{error_body, json, read_body, WarmRequest};
use crate::proxy::Proxy;
use crate::server::Handler;
use crate::store::TenantScope;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// Largest admin request body (warm lists are sent in batches).
const MAX_BODY: u64 = 4 << 20;
/// Default and largest `limit` of `GET /entries`.
const DEFAULT_ENTRIES: usize = 100;
const MAX_ENTRIES: usize = 10_000;

/// The admin API handler.
pub struct Admin {
    proxy: Proxy,
    /// `None` when no token is configured: then only `/healthz` answers 200.
    token: Option<String>,
}

impl Admin {
    pub fn new(proxy: Proxy, token: Option<String>) -> Admin {
        Admin { proxy, token }
    }

    fn authorized(&self, req: &Request<Incoming>) -> Result<(), &'static str> {
        let Some(token) = &self.token else {
            return Err("no admin token is configured on this instance");
        };
        let presented = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or("missing bearer token")?;
        // Constant time, so the token cannot be guessed byte by byte from response times.
        if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err("wrong bearer token")
        }
    }

    async fn route(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let path = req.uri().path().to_owned();
        if path == "/healthz" {
            return json(StatusCode::OK, &json!({ "status": "ok" }));
        }
        if let Err(why) = self.authorized(&req) {
            tracing::warn!(%path, why, "admin request refused");
            return json(StatusCode::UNAUTHORIZED, &error_body("unauthorized", why));
        }
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/readyz") => json(StatusCode::OK, &json!({ "status": "ready" })),
            (Method::GET, "/stats") => json(StatusCode::OK, &self.stats()),
            (Method::POST, "/purge") => self.purge(req).await,
            (Method::POST, "/warm") => self.warm(req).await,
            (Method::GET, "/entries") => self.entries(&req).await,
            (_, "/readyz" | "/stats" | "/purge" | "/warm" | "/entries") => json(
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
    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(self.proxy.stats_report()).unwrap_or_default()
    }

    async fn purge(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let body = match read_body(req.into_body(), MAX_BODY).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let request = match PurgeRequest::from_json(&body, &self.proxy.resources()) {
            Ok(request) => request,
            Err(err) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &error_body("bad_request", &err.to_string()),
                )
            }
        };
        let purged = self.proxy.purge(&request).await;
        tracing::info!(purged, "admin purge");
        json(StatusCode::OK, &json!({ "purged": purged }))
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
        match self.proxy.warm(request).await {
            Ok(report) => json(
                StatusCode::OK,
                &serde_json::to_value(&report).unwrap_or_default(),
            ),
            Err(why) => json(StatusCode::BAD_REQUEST, &error_body("bad_request", &why)),
        }
    }

    async fn entries(&self, req: &Request<Incoming>) -> Response<ProxyBody> {
        let mut tenant = None;
        let mut prefix = None;
        let mut limit = DEFAULT_ENTRIES;
        for (name, value) in query_pairs(req.uri().query().unwrap_or("")) {
            match name.as_str() {
                "tenant" => tenant = Some(value),
                "prefix" => prefix = Some(value),
                "limit" => match value.parse::<usize>() {
                    Ok(n) => limit = n.clamp(1, MAX_ENTRIES),
                    Err(_) => {
                        return json(
                            StatusCode::BAD_REQUEST,
                            &error_body("bad_request", "limit must be a positive integer"),
                        )
                    }
                },
                other => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        &error_body(
                            "bad_request",
                            &format!(
                                "unknown parameter {other:?}; expected tenant, prefix or limit"
                            ),
                        ),
                    )
                }
            }
        }
        let now = Instant::now();
        // `tenant=` (empty) names the shared scope.
        let tenant = tenant.map(|t| match t.as_str() {
            "" => TenantScope::Shared,
            id => TenantScope::one(id),
        });
        let entries = self
            .proxy
            .store()
            .entries(tenant.as_ref(), prefix.as_deref(), limit, now)
            .await;
        let entries: Vec<serde_json::Value> = entries
            .into_iter()
            .map(|e| {
                json!({
                    "key": e.readable_key,
                    "tenant": e.tenant.id().unwrap_or(""),
                    "target": e.target,
                    "status": e.status,
                    "ttl_left_secs": e.ttl_left.as_secs(),
                    "age_secs": e.age.as_secs(),
                    "size": e.size,
                    "tags": e.tags,
                    "stale": e.stale,
                })
            })
            .collect();
        json(StatusCode::OK, &json!({ "entries": entries }))
    }
}

impl Handler for Admin {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<ProxyBody> {
        self.route(req).await
    }
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
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_pairs("tenant=42&prefix=%2Fapi%2Fx+y&limit=5&&x"),
            vec![
                ("tenant".to_string(), "42".to_string()),
                ("prefix".to_string(), "/api/x y".to_string()),
                ("limit".to_string(), "5".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("a%41"), "aA");
    }
}
