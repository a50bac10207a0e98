//! Warming: `POST /warm` fetches paths through the ordinary read path, so each fill is keyed,
//! coalesced and fenced like a client's request.
//!
//! The Host is part of the key, so a path is warmed under the host its clients send: a URL's own
//! host, else the request's `host`, else the one `[server] hosts` entry. When none of these says
//! which host clients use, the request is refused rather than warming keys nobody reads (issue 8:
//! warming under a default `localhost` produced no hits).
//!
//! A warm request may carry request `headers`, e.g. a service user's credential: each path is
//! then read exactly like a client's request with that credential, verified by `[auth]` and
//! keyed by the tenant the credential is verified for, so a warm fills only entries its
//! credential's tenant reads. The values are treated as credentials: never logged, never
//! reported.

use super::{Proxy, CACHE_STATUS};
use crate::admin_api::{
    check_warm_headers, Capture, WarmHeaders, WarmReport, WarmRequest, WarmTarget, Warmed,
    MAX_WARM_PATHS,
};
use crate::body::ProxyBody;
use crate::policy::route::TenantSource;
use crate::upstream::{ClientInfo, Trace};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use http::{HeaderMap, Method, Request};
use std::net::SocketAddr;
use tokio::task::JoinSet;

/// One path to warm, under the host its clients send.
struct Job {
    /// What the report names: the item as requested, or the path a route's captures made.
    label: String,
    host: String,
    path: String,
}

impl Proxy {
    /// Checks a warm request whole (targets, hosts, counts), then fetches every path at most
    /// `concurrency` at a time. An error is the reason the request was refused; nothing was
    /// fetched then.
    pub async fn warm(&self, request: WarmRequest) -> Result<WarmReport, String> {
        let WarmRequest {
            tenant,
            paths,
            route,
            captures,
            host,
            concurrency,
            headers,
        } = request;
        let headers = self.warm_headers(&headers, tenant.is_some())?;
        let mut targets = Vec::with_capacity(paths.len() + captures.len());
        for item in paths {
            let target = WarmTarget::parse(&item)?;
            targets.push((item, target));
        }
        match route {
            Some(route) => {
                for path in self.expand_route(&route, &captures)? {
                    let target = WarmTarget {
                        host: None,
                        path: path.clone(),
                    };
                    targets.push((path, target));
                }
            }
            None if !captures.is_empty() => return Err("captures need a route".to_string()),
            None => {}
        }
        if targets.is_empty() {
            return Err("nothing to warm: give paths, or a route and captures".to_string());
        }
        if targets.len() > MAX_WARM_PATHS {
            return Err(format!(
                "at most {MAX_WARM_PATHS} paths per request; send long lists in batches"
            ));
        }
        let default_host = match host {
            Some(host) => Some(self.warm_host(&host)?),
            None => self.single_configured_host(),
        };
        let mut jobs = Vec::with_capacity(targets.len());
        for (label, target) in targets {
            let host = match (target.host, &default_host) {
                (Some(own), _) => self.warm_host(&own)?,
                (None, Some(host)) => host.clone(),
                (None, None) => return Err(self.no_host_message()),
            };
            jobs.push(Job {
                label,
                host,
                path: target.path,
            });
        }
        let concurrency = concurrency
            .unwrap_or(
                self.inner
                    .config
                    .admin
                    .as_ref()
                    .map_or(8, |a| a.warm_concurrency),
            )
            .clamp(1, 256);
        let mut results: Vec<Option<Warmed>> = (0..jobs.len()).map(|_| None).collect();
        let mut jobs = jobs.into_iter().enumerate();
        let mut tasks = JoinSet::new();
        loop {
            while tasks.len() < concurrency {
                let Some((i, job)) = jobs.next() else { break };
                let (proxy, tenant, headers) = (self.clone(), tenant.clone(), headers.clone());
                tasks.spawn(
                    async move { (i, proxy.warm_one(job, tenant.as_deref(), headers).await) },
                );
            }
            match tasks.join_next().await {
                Some(Ok((i, warmed))) => results[i] = Some(warmed),
                // A panicked fetch leaves its slot empty; the others still report.
                Some(Err(_)) => {}
                None => break,
            }
        }
        Ok(WarmReport::of(results.into_iter().flatten().collect()))
    }

    /// A host as the main listener would key it (lower-case, no trailing `.`), refused when
    /// `[server] hosts` would refuse its clients.
    fn warm_host(&self, host: &str) -> Result<String, String> {
        let mut canonical = host.to_ascii_lowercase();
        if let Some(stripped) = canonical.strip_suffix('.') {
            canonical.truncate(stripped.len());
        }
        if canonical.is_empty()
            || !canonical
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        {
            return Err(format!(
                "host {host:?} is not a host name, optionally with :port"
            ));
        }
        if let Some(allowed) = &self.inner.config.server.hosts {
            if !allowed.iter().any(|h| h.eq_ignore_ascii_case(&canonical)) {
                return Err(format!(
                    "host {canonical:?} is not in [server] hosts: its clients are refused (421), so nothing warmed under it would be read"
                ));
            }
        }
        Ok(canonical)
    }

    /// The host every client uses when the config allows exactly one.
    fn single_configured_host(&self) -> Option<String> {
        match self.inner.config.server.hosts.as_deref() {
            Some([only]) => Some(only.clone()),
            _ => None,
        }
    }

    fn no_host_message(&self) -> String {
        let why = match self.inner.config.server.hosts.as_deref() {
            Some(list) => format!("[server] hosts lists {} hosts", list.len()),
            None => "[server] hosts is not set".to_string(),
        };
        format!(
            "no host to warm for: the Host is part of the key and {why}; give \"host\" (the Host your clients send, `cachegate warm --host`) or full URLs"
        )
    }

    /// The request headers every path of a warm request is sent with, checked. A route's tenant
    /// header is given as `tenant`, never among them; and with `[auth]`, a credential comes
    /// without `tenant`: its tenant is the one it is verified for (a `tenant` would be sent as
    /// the tenant header, which a trusted peer's request is taken at its word for).
    fn warm_headers(&self, given: &WarmHeaders, tenant: bool) -> Result<HeaderMap, String> {
        check_warm_headers(given)?;
        let config = &self.inner.config;
        let mut out = HeaderMap::with_capacity(given.0.len());
        for (name, value) in given.iter() {
            // `check_warm_headers` accepted both; neither error can quote the value.
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| "a header name is not an HTTP header name".to_string())?;
            let mut value = HeaderValue::from_bytes(value.trim().as_bytes())
                .map_err(|_| format!("the value of header {name} is not a header value"))?;
            value.set_sensitive(true);
            let tenant_header = config
                .routes
                .routes()
                .iter()
                .find(|r| matches!(&r.tenant, TenantSource::Header(h) if *h == name));
            if let Some(route) = tenant_header {
                return Err(format!(
                    "header {name} is the tenant header of route {}: give the tenant as \"tenant\" (`cachegate warm --tenant`)",
                    route.pattern.as_str()
                ));
            }
            out.insert(name, value);
        }
        if tenant && config.auth.is_some() {
            if let Some(name) = self.credential_in(&out) {
                return Err(format!(
                    "header {name} is a credential, and a credential names its own tenant: leave out \"tenant\" (`--tenant`); the entries are keyed by the tenant [auth] verifies it for"
                ));
            }
        }
        Ok(out)
    }

    /// The first header of `headers` that carries a credential: `Authorization`, `Cookie`, or
    /// one of `[auth.introspect] credential_headers`.
    fn credential_in<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderName> {
        let introspected = self
            .inner
            .config
            .auth
            .as_ref()
            .and_then(|a| a.introspect.as_ref())
            .map_or(&[][..], |i| i.credential_headers.as_slice());
        headers
            .keys()
            .find(|n| **n == AUTHORIZATION || **n == COOKIE || introspected.contains(n))
    }

    async fn warm_one(&self, job: Job, tenant: Option<&str>, mut headers: HeaderMap) -> Warmed {
        let Job { label, host, path } = job;
        // What a `401` says: the credential sent was refused, or there was none to verify.
        const SEND_ONE: &str = ": warm with one (\"headers\", `cachegate warm --header-env`)";
        let credentialed = self.credential_in(&headers).is_some();
        match HeaderValue::from_str(&host) {
            Ok(value) => headers.insert(http::header::HOST, value),
            Err(_) => return warm_failed(label, "host is not a valid header value"),
        };
        // Routes that read the tenant from a header get it there; for path, query and host
        // tenants the path (or host) given already names it.
        if let (Some(tenant), Some(name)) = (tenant, self.tenant_header_for(&path)) {
            match HeaderValue::from_str(tenant) {
                Ok(value) => headers.insert(name, value),
                Err(_) => return warm_failed(label, "tenant is not a valid header value"),
            };
        }
        let mut builder = Request::builder().method(Method::GET).uri(path.as_str());
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        let parts = match builder.body(()) {
            Ok(req) => req.into_parts().0,
            Err(_) => return warm_failed(label, "not a valid request target"),
        };
        // Each warmed path is a request of its own, with its own id for the backend's logs.
        let trace = Trace::new(crate::access::new_request_id());
        let client = ClientInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: self.inner.config.server.tls.is_some(),
            host: &host,
            trace: &trace,
        };
        match self.read(parts, ProxyBody::empty(), &client).await {
            Ok(answer) => {
                let (response, _) = self.finish(answer);
                let status = response.status().as_u16();
                let cache = response
                    .headers()
                    .get(&CACHE_STATUS)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let error = if status == 401 && credentialed {
                    Some("unauthorized: the credential was refused".to_string())
                } else if status == 401 {
                    Some(format!(
                        "unauthorized: the path needs a credential{SEND_ONE}"
                    ))
                } else if status >= 400 {
                    Some(format!("backend answered {status}"))
                } else if cache.contains("fwd=bypass") || cache.contains("detail=") {
                    Some(format!("not stored ({cache})"))
                } else {
                    None
                };
                Warmed {
                    path: label,
                    status,
                    cache,
                    error,
                }
            }
            Err(err) => {
                // Counted like any refused or failed request.
                self.finish(self.error_answer(&err));
                let status = err.status().as_u16();
                let hint = if status == 401 && !credentialed {
                    SEND_ONE
                } else {
                    ""
                };
                Warmed {
                    path: label,
                    status,
                    cache: String::new(),
                    error: Some(format!("{err}{hint}")),
                }
            }
        }
    }

    /// The paths of `route` (a pattern as written in the config) for each set of captures.
    fn expand_route(&self, route: &str, captures: &[Capture]) -> Result<Vec<String>, String> {
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
                    match item {
                        Capture::One(value) if names.len() == 1 => Ok(value.clone()),
                        Capture::Named(map) => map
                            .get(name)
                            .cloned()
                            .ok_or_else(|| format!("capture {name:?} missing in {item}")),
                        Capture::One(_) => Err(format!(
                            "each capture must be an object of {names:?}: the route has {} captures",
                            names.len()
                        )),
                    }
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
            TenantSource::Header(name) => Some(name.clone()),
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
