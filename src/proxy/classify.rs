//! Classification of a read: the request resolved once against the route table, the tenant
//! (and user) its entry is keyed by, the request-side checks, and the key; then, on a miss, the
//! tags the entry will carry.
//!
//! Pure apart from reading the request and the config: no IO, no clock. `Proxy::read` sequences
//! it between identification and the store lookup.

use super::identity::{self, needs_identity};
use crate::auth::Identity;
use crate::config::Config;
use crate::error::ProxyError;
use crate::policy::cache_key::{self, KeyParts, Target};
use crate::policy::cacheability::{self, Bypass, RequestFacts};
use crate::policy::route::{Route, RouteMatch, RouteTable, Scope};
use crate::policy::tenant::{self, Tenant, TenantInputs, MAX_TENANT_LEN};
use crate::policy::Key;
use crate::store::{Tag, TagKey, TenantScope};
use http::Method;

#[cfg(test)]
mod tests;

/// A request target normalized and matched against the route table, once.
///
/// Identification, classification (tenant and key), the fill's tags and write eviction all read
/// this one value, so they cannot disagree about which route a request is on. The target is
/// borrowed because the captures borrow its path.
pub(crate) struct Resolved<'c, 't> {
    pub(crate) target: &'t Target<'t>,
    pub(crate) found: RouteMatch<'c, 't>,
}

/// Matches a normalized target against the routes for `method`.
pub(crate) fn resolve<'c, 't>(
    routes: &'c RouteTable,
    method: &Method,
    target: &'t Target<'t>,
) -> Option<Resolved<'c, 't>> {
    let found = routes.find(method, &target.path)?;
    Some(Resolved { target, found })
}

/// Who is asking, as far as the key is concerned.
///
/// Shaped so that the keyed path cannot take a tenant from the request where a verified one is
/// due: `classify` gets either a verified identity or the statement that none is needed, and
/// on a `tenant` or `user` route under `[auth]` the latter is a refusal, never a header read.
/// Before this type, `classify` fell through to reading the tenant from the request whenever no
/// identity came in, so an `identify` that skipped a route (say, by resolving it differently)
/// would have keyed an `[auth]` tenant route by an unverified header (issue 7).
#[derive(Clone, Copy)]
pub(crate) enum Caller<'a> {
    /// Nobody to verify: no `[auth]`, a `public` route, or a route that is not cached.
    NotRequired,
    /// The caller `identify` verified.
    Verified(&'a Identity),
}

/// A request that may be answered from the cache: its route, key, tenant and user.
pub(crate) struct Cacheable<'r> {
    pub(super) route: &'r Route,
    pub(super) key: Key,
    pub(super) head: bool,
    pub(super) tenant: Option<TenantId>,
    /// The verified user, on `scope = "user"` routes only.
    pub(super) user: Option<String>,
}

/// Why `classify` said no: pass through uncached, or refuse outright.
pub(super) enum Denied {
    Bypass(Bypass),
    Refuse(ProxyError),
}

impl From<Bypass> for Denied {
    fn from(reason: Bypass) -> Self {
        Denied::Bypass(reason)
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
    pub(super) fn new(id: &str) -> Option<TenantId> {
        let mut buf = [0; MAX_TENANT_LEN];
        buf.get_mut(..id.len())?.copy_from_slice(id.as_bytes());
        Some(TenantId {
            len: u8::try_from(id.len()).ok()?,
            buf,
        })
    }

    pub(super) fn as_str(&self) -> &str {
        // Built from a `&str`, so always valid UTF-8.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

/// Decides whether a GET/HEAD may use the cache, and derives its key when it may.
/// Pure apart from reading the request; every "no" is a named [`Bypass`] or a refusal.
pub(super) fn classify<'c>(
    config: &'c Config,
    resolved: &Resolved<'c, '_>,
    parts: &http::request::Parts,
    host: &str,
    credential_key: &[u8; 32],
    caller: Caller<'_>,
) -> Result<Cacheable<'c>, Denied> {
    let RouteMatch { route, captures } = &resolved.found;
    let route: &'c Route = route;
    if !route.cache {
        return Err(Bypass::RouteNoCache.into());
    }
    let inputs = TenantInputs {
        headers: &parts.headers,
        host: Some(host),
        captures,
        query: parts.uri.query(),
    };
    let refuse = |why| Denied::Refuse(ProxyError::Forbidden(why));
    let mut user = None;
    let tenant = match (route.scope, caller) {
        (Scope::Public, _) if route.scope_declared => None,
        // A verified caller: the key takes the credential's tenant (and user), and every tenant
        // the request names must agree with it.
        (Scope::Tenant | Scope::User, Caller::Verified(identity)) => {
            let verified = identity
                .tenant
                .as_deref()
                .ok_or(refuse("the credential names no tenant"))?;
            identity::cross_check(
                route,
                verified,
                &parts.headers,
                host,
                captures,
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
        // Under [auth] these routes are keyed by a verified caller only; without one there is
        // no tenant to key by, and the request names none that may be believed.
        (Scope::Tenant | Scope::User, Caller::NotRequired) if needs_identity(config, route) => {
            return Err(Denied::Refuse(ProxyError::Unauthenticated(
                "this route needs a credential",
            )))
        }
        // No [auth]: the tenant is read from the request, as configured.
        _ => match tenant::extract(&route.tenant, &inputs) {
            Tenant::Shared => None,
            Tenant::Id(id) => Some(TenantId::new(&id).ok_or(Bypass::InvalidTenant)?),
            Tenant::Missing => return Err(Bypass::NoTenant.into()),
            Tenant::Invalid(_) => return Err(Bypass::InvalidTenant.into()),
        },
    };
    let facts = RequestFacts {
        headers: &parts.headers,
        // A declared public route shares one entry among every caller, credentials or not.
        tenant_keyed: tenant.is_some() || route.scope_declared && route.scope == Scope::Public,
        vary: &route.vary,
        request_cache_control: route.http.request_cache_control,
    };
    if let Some(reason) = cacheability::request_bypass(&facts) {
        return Err(reason.into());
    }
    let key = cache_key::digest(&KeyParts {
        namespace: &config.cache.namespace,
        version: config.cache.version,
        host,
        tenant: tenant.as_ref().map(TenantId::as_str),
        user: user.as_deref(),
        credential_key,
        target: resolved.target,
        vary: &route.vary,
        headers: &parts.headers,
    });
    Ok(Cacheable {
        route,
        key,
        head: parts.method == Method::HEAD,
        tenant,
        user,
    })
}

/// What a fill needs beyond the key: the tenant and the tags its entry carries (the route's,
/// the whole-tenant tag, the user tag on `user` routes and the path tag, which goes last).
/// Derived here rather than in [`classify`] so that hits never pay for it.
pub(super) fn fill_scope(
    cacheable: &Cacheable<'_>,
    resolved: &Resolved<'_, '_>,
) -> (TenantScope, Vec<TagKey>) {
    let captures = &resolved.found.captures;
    let tenant = cacheable
        .tenant
        .as_ref()
        .map_or(TenantScope::Shared, |t| TenantScope::one(t.as_str()));
    let mut tags: Vec<TagKey> = cacheable
        .route
        .entry_tags
        .iter()
        .map(|t| TagKey::new(tenant.clone(), Tag::parse(&t.render(captures))))
        .collect();
    tags.push(TagKey::new(tenant.clone(), Tag::Tenant));
    if let Some(user) = &cacheable.user {
        tags.push(TagKey::new(tenant.clone(), Tag::user(user)));
    }
    tags.push(TagKey::new(
        tenant.clone(),
        Tag::path(&resolved.target.path),
    ));
    (tenant, tags)
}
