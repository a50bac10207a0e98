//! Writes passing through: forward, then evict what they change before the client hears back.
//!
//! Eviction happens unless the backend answered 4xx (nothing changed). On 5xx and on upstream
//! failures the outcome is unknown, so cachegate evicts as if the write had succeeded: a needless
//! miss costs a backend request, a kept stale entry breaks read-your-writes.

use super::{stream_response, Proxy, PATH_TAG_PREFIX};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::policy::cache_key;
use crate::policy::outcome::Outcome;
use crate::policy::route::Route;
use crate::policy::tenant::{self, Tenant, TenantInputs};
use crate::policy::Captures;
use crate::store::{Purge, TenantScope};
use crate::upstream::ClientInfo;
use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method, Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;

impl Proxy {
    pub(super) async fn write(
        &self,
        req: Request<Incoming>,
        client: &ClientInfo<'_>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // A write whose path cannot be read unambiguously cannot be matched to what it changes;
        // refusing it is the only way to keep the eviction promise.
        let target = cache_key::normalize(req.uri().path(), req.uri().query())
            .map_err(|_| ProxyError::BadRequest("ambiguous request path"))?;
        let mut purges = Vec::new();
        let headers = req.headers().clone();
        let query = req.uri().query().map(str::to_owned);
        let mut route_index = None;
        if let Some(m) = self.inner.config.routes.find(req.method(), &target.path) {
            route_index = Some(m.route.index);
            let scope = tenant_scope(
                m.route,
                &headers,
                client.host,
                &m.captures,
                query.as_deref(),
            );
            let tags: Vec<Arc<str>> = m
                .route
                .write_invalidates
                .iter()
                .map(|t| Arc::from(t.render(&m.captures)))
                .collect();
            if !tags.is_empty() {
                purges.push(Purge::tags(scope, tags));
            }
        }
        if let Some(purge) = self.uri_purge(&target.path, &headers, client.host, query.as_deref()) {
            purges.push(purge);
        }

        let (parts, body) = req.into_parts();
        let req = Request::from_parts(parts, ProxyBody::Stream(body));
        let result = self.send_as_is(req, client).await;
        let changed = match &result {
            Ok(response) => !response.status().is_client_error(),
            Err(_) => true,
        };
        if changed {
            if let Ok(response) = &result {
                for name in [LOCATION, CONTENT_LOCATION] {
                    let Some(path) = response
                        .headers()
                        .get(&name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| same_origin_path(v, client.host))
                    else {
                        continue;
                    };
                    if let Some(purge) = self.uri_purge(&path, &headers, client.host, None) {
                        purges.push(purge);
                    }
                }
            }
            let mut purged = 0;
            for purge in &purges {
                purged += self.inner.store.purge(purge).await.purged;
            }
            self.inner.stats.write_purge();
            tracing::debug!(purged, groups = purges.len(), "write evicted entries");
        }
        self.inner.stats.record(Outcome::Method, route_index, None);
        Ok(stream_response(
            result?,
            Outcome::Method,
            &self.inner.config.cache.tag_headers,
        ))
    }

    /// The purge of every stored variant of `path` (RFC 9111 §4.4), scoped to the tenant the GET
    /// route for that path would key it under.
    fn uri_purge(
        &self,
        path: &str,
        headers: &HeaderMap,
        host: &str,
        query: Option<&str>,
    ) -> Option<Purge> {
        let target = cache_key::normalize(path, None).ok()?;
        let m = self.inner.config.routes.find(&Method::GET, &target.path)?;
        if !m.route.cache {
            return None;
        }
        let scope = tenant_scope(m.route, headers, host, &m.captures, query);
        Some(Purge::tags(
            scope,
            vec![Arc::from(format!("{PATH_TAG_PREFIX}{}", target.path))],
        ))
    }
}

/// The tenants a write may have changed: its own when it can be told, every tenant when it
/// cannot (a write without a readable tenant that the backend accepted changed *something*).
fn tenant_scope(
    route: &Route,
    headers: &HeaderMap,
    host: &str,
    captures: &Captures<'_, '_>,
    query: Option<&str>,
) -> TenantScope {
    let inputs = TenantInputs {
        headers,
        host: Some(host),
        captures,
        query,
    };
    match tenant::extract(&route.tenant, &inputs) {
        Tenant::Shared => TenantScope::One(Arc::from("")),
        Tenant::Id(id) => TenantScope::One(Arc::from(&*id)),
        Tenant::Missing | Tenant::Invalid(_) => TenantScope::All,
    }
}

/// The path of a `Location`-style value when it points at this host: an absolute path, or an
/// absolute URI whose authority is the request's host. Other values are not ours to evict.
fn same_origin_path(value: &str, host: &str) -> Option<String> {
    let uri: http::Uri = value.parse().ok()?;
    match uri.authority() {
        None if value.starts_with('/') && !value.starts_with("//") => Some(uri.path().to_owned()),
        Some(authority) if authority.as_str().eq_ignore_ascii_case(host) => {
            Some(uri.path().to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin_path;

    #[test]
    fn location_values_map_to_paths_of_this_host_only() {
        let cases = [
            ("/api/faculty/13/", Some("/api/faculty/13/")),
            ("/api/faculty/13/?x=1", Some("/api/faculty/13/")),
            ("http://api.test/api/faculty/13/", Some("/api/faculty/13/")),
            ("http://API.test/a", Some("/a")),
            ("http://other.test/api/faculty/13/", None),
            ("//other.test/a", None),
            ("relative/path", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                same_origin_path(value, "api.test").as_deref(),
                expected,
                "{value}"
            );
        }
    }
}
