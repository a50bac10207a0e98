//! What cachegate answers itself on the main listener: the reserved path prefix (the signed
//! invalidation webhook), and the purge operation the admin API shares with it.
//!
//! Nothing under the reserved prefix is ever forwarded to the backend or cached.

use super::Proxy;
use crate::answer::{error_body, json, read_body};
use crate::body::ProxyBody;
use crate::invalidation::{PurgeRequest, TenantSel};
use crate::stats::PurgeSource;
use crate::store::{Purge, PurgeScope, Tag, TenantScope};
use crate::webhook::SIGNATURE_HEADER;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;

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
        // A repeat of an accepted message is applied like the first (issue 8): purging again
        // can only cause misses, while refusing it loses the purge of a second write.
        let delivery = match verifier.verify(signature, &body, super::unix_now()) {
            Ok(delivery) => delivery,
            Err(err) => {
                self.inner.stats.webhook_refused();
                tracing::warn!(reason = err.as_str(), "webhook refused");
                return json(
                    StatusCode::UNAUTHORIZED,
                    &error_body("unauthorized", &format!("signature refused: {err}")),
                );
            }
        };
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
        self.inner
            .stats
            .purge_done(PurgeSource::Webhook, purged as u64, || request.describe());
        let repeat = delivery.is_repeat();
        if repeat {
            self.inner.stats.webhook_repeat();
        }
        tracing::info!(purged, repeat, "webhook purge");
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
}
