//! Writes passing through: forward, then evict what they change before the client hears back.
//!
//! Eviction happens unless the backend answered 4xx (nothing changed). On 5xx and on upstream
//! failures the outcome is unknown, so cachegate evicts as if the write had succeeded: a needless
//! miss costs a backend request, a kept stale entry breaks read-your-writes.

use super::identity::Authenticated;
use super::{resolve, stream_response, Answer, Proxy, Resolved};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::policy::cache_key::{self, Ambiguous};
use crate::policy::http_cache::invalidate;
use crate::policy::outcome::Outcome;
use crate::policy::route::{Route, Scope};
use crate::policy::tenant::{self, Tenant, TenantInputs};
use crate::policy::Captures;
use crate::stats::PurgeSource;
use crate::store::{Purge, PurgeScope, Tag, TenantScope};
use crate::upstream::ClientInfo;
use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method, Request};
use hyper::body::Incoming;

impl Proxy {
    pub(super) async fn write(
        &self,
        req: Request<Incoming>,
        client: &ClientInfo<'_>,
    ) -> Result<Answer, ProxyError> {
        // A write whose path cannot be read unambiguously cannot be matched to what it changes;
        // refusing it is the only way to keep the eviction promise.
        let target = match cache_key::normalize(req.uri().path(), req.uri().query()) {
            Ok(target) => target.into_owned(),
            // `/a%2Fb` reaches the backend as `/a/b`, where its entries were cached (reads of the
            // escaped spelling are never cached), so that is what it may have changed.
            Err(Ambiguous::EncodedSeparator) => {
                let lenient = cache_key::lenient_path(req.uri().path());
                cache_key::normalize(&lenient, req.uri().query())
                    .map_err(|_| ProxyError::BadRequest("ambiguous request path"))?
                    .into_owned()
            }
            Err(_) => return Err(ProxyError::BadRequest("ambiguous request path")),
        };
        // Resolved once: the write's own route (its `invalidates` tags) and the GET route of the
        // same path (whose entries the path tag names, and which verifies the writer when the
        // write's route cannot).
        let routes = &self.inner.config.routes;
        let written = resolve(routes, req.method(), &target);
        let read = resolve(routes, &Method::GET, &target);
        let mut purges = Vec::new();
        let headers = req.headers().clone();
        let query = req.uri().query().map(str::to_owned);
        let who = WriteScope {
            headers: &headers,
            host: client.host,
            auth: self.inner.auth.is_some(),
            verified: self
                .verified_tenant(written.as_ref(), read.as_ref(), &headers, client)
                .await,
        };
        if let Some(w) = &written {
            let route = w.found.route;
            let scope = who.tenant_scope(route, &w.found.captures, query.as_deref());
            let tags: Vec<Tag> = route
                .write_invalidates
                .iter()
                .map(|t| Tag::parse(&t.render(&w.found.captures)))
                .collect();
            if !tags.is_empty() {
                // Public routes keep their entries in the shared scope; a resource (or any
                // tag) they share with tenant routes changes there too.
                let shared_too = matches!(&scope, PurgeScope::Only(TenantScope::One(_)))
                    && routes
                        .routes()
                        .iter()
                        .any(|r| r.cache && r.scope == Scope::Public);
                if shared_too {
                    purges.push(Purge::tags(
                        PurgeScope::Only(TenantScope::Shared),
                        tags.clone(),
                    ));
                }
                purges.push(Purge::tags(scope, tags));
            }
        }
        if let Some(purge) = read
            .as_ref()
            .and_then(|r| path_purge(r, &who, query.as_deref()))
        {
            purges.push(purge);
        }
        let route_index = written.as_ref().map(|w| w.found.route.index);

        let method = req.method().clone();
        let (parts, body) = req.into_parts();
        let max_body = self.inner.config.server.max_request_body;
        let req = Request::from_parts(parts, ProxyBody::limited(body, max_body));
        let result = self.send_as_is(req, client).await;
        // RFC 9111 §4.4, and a failure or 5xx too (its effect is unknown).
        let changed = invalidate::invalidates(result.as_ref().ok().map(|r| r.status()));
        if changed {
            if let Ok(response) = &result {
                for name in [LOCATION, CONTENT_LOCATION] {
                    let Some(path) = response
                        .headers()
                        .get(&name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| same_origin_path(v, client.host, &target.path))
                    else {
                        continue;
                    };
                    // Another path than the request's: normalized and resolved on its own.
                    let Ok(other) = cache_key::normalize(&path, None) else {
                        continue;
                    };
                    let purge = resolve(routes, &Method::GET, &other)
                        .and_then(|r| path_purge(&r, &who, None));
                    purges.extend(purge);
                }
            }
            let mut purged = 0;
            for purge in &purges {
                purged += self.inner.store.purge(purge).await.purged;
            }
            self.inner
                .stats
                .purge_done(PurgeSource::Write, purged as u64, || {
                    format!("{method} {}", target.path)
                });
            tracing::debug!(purged, groups = purges.len(), "write evicted entries");
        }
        let response = stream_response(result?, &self.inner.config.cache.tag_headers);
        Ok(Answer::new(response, Outcome::Method, route_index))
    }
}

/// The purge of every stored variant of a path (RFC 9111 §4.4), scoped to the tenant its GET
/// route keys it under; `None` when that route is not cached.
fn path_purge(read: &Resolved<'_, '_>, who: &WriteScope<'_>, query: Option<&str>) -> Option<Purge> {
    let route = read.found.route;
    if !route.cache {
        return None;
    }
    let scope = who.tenant_scope(route, &read.found.captures, query);
    Some(Purge::tags(scope, vec![Tag::path(&read.target.path)]))
}

/// What decides which tenants a write may have changed.
struct WriteScope<'a> {
    headers: &'a HeaderMap,
    host: &'a str,
    /// Whether the deployment verifies callers (`[auth]`).
    auth: bool,
    /// The writer's verified tenant, when `[auth]` could tell it.
    verified: Option<String>,
}

impl WriteScope<'_> {
    /// The tenants whose entries of `route` the write may have changed: its own when it can be
    /// told, every tenant when it cannot (a write the backend accepted changed *something*).
    /// Entries are scoped the way reads key them: public routes share the untenanted scope,
    /// with `[auth]` tenant and user routes are keyed by the verified tenant, else by the tenant
    /// the request names.
    fn tenant_scope(
        &self,
        route: &Route,
        captures: &Captures<'_, '_>,
        query: Option<&str>,
    ) -> PurgeScope {
        if route.scope == Scope::Public {
            return PurgeScope::Only(TenantScope::Shared);
        }
        let inputs = TenantInputs {
            headers: self.headers,
            host: Some(self.host),
            captures,
            query,
        };
        let named = tenant::extract(&route.tenant, &inputs);
        if self.auth {
            // Reads key this route by the verified tenant, and refuse any request naming another
            // one; so a write that names a tenant other than its credential's (a staff account
            // writing to another organisation's path) changed entries that only the named
            // tenant can have. Without a verified tenant, or when the two disagree, evict for
            // every tenant rather than guess.
            return match (&self.verified, named) {
                (Some(verified), Tenant::Shared | Tenant::Missing) => {
                    PurgeScope::Only(TenantScope::one(verified))
                }
                (Some(verified), Tenant::Id(id)) if *id == **verified => {
                    PurgeScope::Only(TenantScope::one(verified))
                }
                _ => PurgeScope::All,
            };
        }
        match named {
            Tenant::Shared => PurgeScope::Only(TenantScope::Shared),
            Tenant::Id(id) => PurgeScope::Only(TenantScope::one(&id)),
            Tenant::Missing | Tenant::Invalid(_) => PurgeScope::All,
        }
    }
}

impl Proxy {
    /// With `[auth]`, the writer's verified tenant: verified as a read on the write's route (or
    /// on the GET route of its path) would be. `None` when it cannot be told; the backend, not
    /// cachegate, decides whether the write itself is allowed.
    async fn verified_tenant(
        &self,
        written: Option<&Resolved<'_, '_>>,
        read: Option<&Resolved<'_, '_>>,
        headers: &HeaderMap,
        client: &ClientInfo<'_>,
    ) -> Option<String> {
        let auth = self.inner.auth.as_ref()?;
        fn tenant_route<'c>(r: &Resolved<'c, '_>) -> Option<&'c Route> {
            Some(r.found.route).filter(|route| route.scope != Scope::Public)
        }
        let route = written
            .and_then(tenant_route)
            .or_else(|| read.and_then(tenant_route))?;
        match self
            .authenticate(auth, route, headers, client.peer.ip(), client.host)
            .await
        {
            Ok(Authenticated::Verified(identity)) => identity.tenant,
            _ => None,
        }
    }
}

/// The path of a `Location`-style value when it points at this host: an absolute path, an
/// absolute URI whose authority is the request's host (`:80` or not), or a relative reference,
/// resolved against `base` (the request's path) as RFC 3986 §5.2 does. Other values are not
/// ours to evict.
fn same_origin_path(value: &str, host: &str, base: &str) -> Option<String> {
    let value = value.trim();
    let without_fragment = value.split('#').next().unwrap_or(value);
    if without_fragment.is_empty() {
        return None;
    }
    if without_fragment.contains("://") || without_fragment.starts_with("//") {
        let uri: http::Uri = match without_fragment.strip_prefix("//") {
            // A network-path reference keeps the request's scheme.
            Some(rest) => format!("http://{rest}").parse().ok()?,
            None => without_fragment.parse().ok()?,
        };
        let authority = uri.authority()?;
        let same = cache_key::canonical_host(authority.as_str()) == cache_key::canonical_host(host);
        return same.then(|| cache_key::remove_dot_segments(uri.path()));
    }
    let path = without_fragment
        .split('?')
        .next()
        .unwrap_or(without_fragment);
    if path.starts_with('/') {
        return Some(cache_key::remove_dot_segments(path));
    }
    if path.split('/').next().unwrap_or("").contains(':') {
        // `mailto:x` and other schemes without `//`: a relative path's first segment has no ':'.
        return None;
    }
    let directory = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    Some(cache_key::remove_dot_segments(&format!(
        "{directory}{path}"
    )))
}

#[cfg(test)]
mod tests {
    use super::same_origin_path;

    #[test]
    fn location_values_map_to_paths_of_this_host_only() {
        let cases = [
            ("/api/faculty/13/", Some("/api/faculty/13/")),
            ("/api/faculty/13/?x=1", Some("/api/faculty/13/")),
            ("/api/faculty/13/#top", Some("/api/faculty/13/")),
            ("http://api.test/api/faculty/13/", Some("/api/faculty/13/")),
            ("http://API.test/a", Some("/a")),
            ("http://api.test:80/a", Some("/a")),
            ("http://other.test/api/faculty/13/", None),
            ("//other.test/a", None),
            ("//api.test/a", Some("/a")),
            // Relative references resolve against the request path /api/faculty/.
            ("13/", Some("/api/faculty/13/")),
            ("./13/", Some("/api/faculty/13/")),
            ("../departments/2/", Some("/api/departments/2/")),
            ("/api/x/../faculty/13/", Some("/api/faculty/13/")),
            ("mailto:someone@example.com", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                same_origin_path(value, "api.test", "/api/faculty/").as_deref(),
                expected,
                "{value}"
            );
        }
    }
}
