//! Who is asking, decided before any lookup on `tenant` and `user` routes.
//!
//! Sources, in order: the route's tenant header when the peer is a trusted proxy (an auth
//! gateway that already verified the caller), a JWT bearer token, then introspection of the
//! credential headers by the backend. No source at all is an anonymous caller.

use super::Proxy;
use crate::auth::cidr::Cidr;
use crate::auth::digest::DigestKey;
use crate::auth::introspect::{IntrospectFailure, IntrospectSettings, Introspector};
use crate::auth::jwt::JwtVerifier;
use crate::auth::Identity;
use crate::body::ProxyBody;
use crate::config::{AuthConfig, Config};
use crate::error::ProxyError;
use crate::policy::route::{Anonymous, Route, Scope, TenantSource};
use crate::policy::tenant::{self, Tenant, TenantInputs};
use crate::policy::Captures;
use crate::upstream::{ClientInfo, Upstream};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Response};
use std::net::IpAddr;

/// The verifiers of one deployment.
pub(crate) struct Authenticator {
    trusted: Vec<Cidr>,
    user_header: Option<http::HeaderName>,
    jwt: Option<JwtVerifier>,
    introspect: Option<Introspector>,
}

/// The outcome of authenticating one request.
pub(crate) enum Authenticated {
    Verified(Identity),
    Anonymous,
}

/// Why a request was not authenticated.
pub(crate) enum AuthFailure {
    Error(ProxyError),
    /// The introspection endpoint's own 401/403, passed on as is.
    Rejected(Response<ProxyBody>),
}

impl Authenticator {
    pub(crate) fn new(
        auth: &AuthConfig,
        jwt: Option<JwtVerifier>,
        upstream: Upstream,
        key: DigestKey,
    ) -> Authenticator {
        let introspect = auth.introspect.as_ref().map(|i| {
            Introspector::new(
                IntrospectSettings {
                    path: i.path.clone(),
                    tenant_field: i.tenant_field.clone(),
                    user_field: i.user_field.clone(),
                    ttl: i.ttl,
                    credential_headers: i.credential_headers.clone(),
                    session_cookies: i.session_cookies.clone(),
                    timeout: i.timeout,
                    max_entries: 100_000,
                },
                upstream,
                key,
            )
        });
        Authenticator {
            trusted: auth.trusted_proxies.clone(),
            user_header: auth.user_header.clone(),
            jwt,
            introspect,
        }
    }

    fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(peer))
    }

    /// Forgets verified credentials: all of them, or one user's.
    pub(crate) fn forget(&self, tenant: Option<&str>, user: Option<&str>) -> usize {
        let mut forgotten = 0;
        match user {
            None => {
                if let Some(jwt) = &self.jwt {
                    jwt.forget_all();
                }
                if let Some(i) = &self.introspect {
                    forgotten += i.forget_all();
                }
            }
            Some(user) => {
                // Verified JWTs are remembered by token digest only; dropping them all is the
                // only way to make one user's next request verify again, and it is cheap.
                if let Some(jwt) = &self.jwt {
                    jwt.forget_all();
                }
                if let Some(i) = &self.introspect {
                    forgotten += i.forget_user(tenant, user);
                }
            }
        }
        forgotten
    }

    /// Number of introspection calls made (stats).
    pub(crate) fn introspections(&self) -> u64 {
        self.introspect.as_ref().map_or(0, Introspector::calls)
    }
}

/// Whether a route's entries are keyed by a verified caller: a cached `tenant` or `user` route
/// of a deployment with `[auth]`. `identify` verifies exactly there, and `classify` refuses to
/// key such a route without a verified caller.
pub(super) fn needs_identity(config: &Config, route: &Route) -> bool {
    config.auth.is_some() && route.cache && route.scope != Scope::Public
}

/// Who the caller is, as far as the read path is concerned.
pub(super) enum Identified {
    /// Nobody to verify on this route.
    NotRequired,
    Verified(Identity),
    /// An anonymous caller on a route with `anonymous = "pass"`.
    PassAnonymous,
    /// The identity endpoint's own refusal, passed on as is.
    Answer(Response<ProxyBody>),
}

impl Proxy {
    /// On a cached `tenant` or `user` route of a deployment with `[auth]`, verifies the caller
    /// before anything else; elsewhere there is nobody to verify.
    pub(super) async fn identify(
        &self,
        route: &Route,
        parts: &http::request::Parts,
        client: &ClientInfo<'_>,
    ) -> Result<Identified, ProxyError> {
        let Some(auth) = &self.inner.auth else {
            return Ok(Identified::NotRequired);
        };
        if !needs_identity(&self.inner.config, route) {
            return Ok(Identified::NotRequired);
        }
        let caller = self
            .authenticate(auth, route, &parts.headers, client.peer.ip(), client.host)
            .await;
        match caller {
            Ok(Authenticated::Verified(identity)) => Ok(Identified::Verified(identity)),
            Ok(Authenticated::Anonymous) => match route.anonymous {
                Anonymous::Pass => Ok(Identified::PassAnonymous),
                Anonymous::Deny => {
                    Err(ProxyError::Unauthenticated("this route needs a credential"))
                }
            },
            Err(AuthFailure::Error(err)) => Err(err),
            Err(AuthFailure::Rejected(response)) => Ok(Identified::Answer(response)),
        }
    }

    /// Authenticates a request for `route`. A trusted peer's tenant header wins; then a bearer
    /// JWT; then introspection of the credential headers. Refusals are counted by the outcome
    /// they become (see `proxy::error_outcome`), so a write verified only to scope its
    /// eviction is never counted as refused.
    pub(crate) async fn authenticate(
        &self,
        auth: &Authenticator,
        route: &Route,
        headers: &HeaderMap,
        peer: IpAddr,
        host: &str,
    ) -> Result<Authenticated, AuthFailure> {
        if let TenantSource::Header(name) = &route.tenant {
            if auth.is_trusted(peer) {
                if let Some(tenant) = single_value(headers, name) {
                    let user = auth
                        .user_header
                        .as_ref()
                        .and_then(|h| single_value(headers, h));
                    return Ok(Authenticated::Verified(Identity {
                        tenant: Some(tenant),
                        user,
                        expires_at: None,
                    }));
                }
            }
        }
        if let (Some(jwt), Some(token)) = (&auth.jwt, bearer_jwt(headers)) {
            return match jwt.verify(token, super::unix_now()) {
                Ok(identity) => Ok(Authenticated::Verified(identity)),
                Err(err) => {
                    tracing::info!(reason = err.as_str(), "jwt refused");
                    Err(AuthFailure::Error(ProxyError::BadCredential(err.as_str())))
                }
            };
        }
        if let Some(introspect) = &auth.introspect {
            if introspect.has_credential(headers) {
                return match introspect.identify(headers, host).await {
                    Ok(identity) => Ok(Authenticated::Verified(identity)),
                    Err(IntrospectFailure::Rejected {
                        status,
                        headers,
                        body,
                    }) => {
                        let mut response = Response::new(ProxyBody::full(body));
                        *response.status_mut() = status;
                        *response.headers_mut() = headers;
                        crate::policy::cacheability::strip_hop_by_hop(response.headers_mut());
                        Err(AuthFailure::Rejected(response))
                    }
                    Err(IntrospectFailure::Unavailable(why)) => {
                        tracing::warn!(error = %why, "introspection unavailable");
                        Err(AuthFailure::Error(ProxyError::AuthUnavailable(
                            "the identity endpoint did not answer".to_string(),
                        )))
                    }
                };
            }
        }
        if auth.jwt.is_some() && headers.contains_key(AUTHORIZATION) {
            // A credential was sent, but in no form this deployment can verify.
            return Err(AuthFailure::Error(ProxyError::BadCredential(
                "the authorization header is not a bearer jwt",
            )));
        }
        Ok(Authenticated::Anonymous)
    }
}

/// The tenant a verified caller may read, checked against every tenant the request names.
///
/// A tenant named in the path, query, host or a header must equal the verified one; a request
/// naming a malformed tenant is refused too. Nothing is stored or served for a refused request.
pub(crate) fn cross_check(
    route: &Route,
    verified: &str,
    headers: &HeaderMap,
    host: &str,
    captures: &Captures<'_, '_>,
    query: Option<&str>,
) -> Result<(), ProxyError> {
    let inputs = TenantInputs {
        headers,
        host: Some(host),
        captures,
        query,
    };
    match tenant::extract(&route.tenant, &inputs) {
        Tenant::Shared | Tenant::Missing => Ok(()),
        Tenant::Id(named) if named == verified => Ok(()),
        Tenant::Id(_) => Err(ProxyError::Forbidden(
            "the request names a tenant the credential does not belong to",
        )),
        Tenant::Invalid(_) => Err(ProxyError::Forbidden(
            "the request names a malformed tenant",
        )),
    }
}

fn single_value(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok().filter(|s| !s.is_empty()).map(str::to_owned),
        _ => None,
    }
}

/// The token of `Authorization: Bearer <jwt>` when it has the three-part compact form.
fn bearer_jwt(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (token.split('.').count() == 3).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_part_bearer_tokens_are_taken_for_jwts() {
        let check = |value: &str, expected: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer_jwt(&headers), expected, "{value}");
        };
        check("Bearer a.b.c", Some("a.b.c"));
        check("bearer a.b.c", Some("a.b.c"));
        check("Bearer opaque-token", None);
        check("Basic dXNlcjpwYXNz", None);
        check("Token a.b.c", None);
    }
}
