//! Who an entry belongs to: tenant sources, route scopes and the anonymous rule, and whether
//! `[auth]` can honour a scope. Shared by `[cache]` (the defaults) and the routes.

use crate::policy::route::{Anonymous, PathPattern, Scope, TenantSource};

use super::fields::header_name;

/// What route scopes need to know of `[auth]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct AuthFacts {
    /// An `[auth]` section is present (even a broken one).
    pub(super) declared: bool,
    /// A verified credential can name a tenant: `[auth.jwt]` or `[auth.introspect]`.
    pub(super) names_tenants: bool,
    /// A user can be verified: a credential or a trusted proxy's user header.
    pub(super) names_users: bool,
}

/// Checks that a scope can be honoured; `tenant` is the tenant source it applies with.
pub(super) fn check_scope(
    scope: Scope,
    tenant: &TenantSource,
    auth: AuthFacts,
) -> Result<Scope, String> {
    match scope {
        Scope::User if !auth.declared => Err(
            "scope \"user\" needs an [auth] section: a user can only come from a verified credential"
                .to_string(),
        ),
        Scope::User if !auth.names_users => Err(
            "scope \"user\" needs a verified user: add [auth.jwt], [auth.introspect] or auth.user_header"
                .to_string(),
        ),
        Scope::Tenant if *tenant == TenantSource::None && !auth.declared => Err(
            "scope \"tenant\" needs a tenant: the tenant source is none and there is no [auth] section to take it from a credential"
                .to_string(),
        ),
        Scope::Tenant if *tenant == TenantSource::None && !auth.names_tenants => Err(
            "scope \"tenant\" needs a tenant: the tenant source is none and [auth] has no jwt or introspect to take it from a credential"
                .to_string(),
        ),
        _ => Ok(scope),
    }
}

pub(super) fn parse_scope(text: &str) -> Result<Scope, String> {
    match text {
        "public" => Ok(Scope::Public),
        "tenant" => Ok(Scope::Tenant),
        "user" => Ok(Scope::User),
        _ => Err(format!(
            "invalid scope \"{text}\": expected \"public\", \"tenant\" or \"user\""
        )),
    }
}

pub(super) fn parse_anonymous(text: &str) -> Result<Anonymous, String> {
    match text {
        "deny" => Ok(Anonymous::Deny),
        "pass" => Ok(Anonymous::Pass),
        _ => Err(format!(
            "invalid anonymous \"{text}\": expected \"deny\" (answer 401) or \"pass\" (forward uncached)"
        )),
    }
}

/// Parses `"none"` or an inline table with exactly one of header, path, query or host.
pub(super) fn tenant_source(value: &toml::Value) -> Result<TenantSource, String> {
    const SHAPE: &str =
        "expected \"none\" or one of { header = \"...\" }, { path = \"...\" }, { query = \"...\" }, { host = \"subdomain\" }";
    let table = match value {
        toml::Value::String(s) if s == "none" => return Ok(TenantSource::None),
        toml::Value::Table(table) if table.len() == 1 => table,
        _ => return Err(format!("invalid tenant: {SHAPE}")),
    };
    let Some((kind, value)) = table.iter().next() else {
        return Err(format!("invalid tenant: {SHAPE}"));
    };
    let Some(text) = value.as_str() else {
        return Err(format!("tenant {kind} must be a string"));
    };
    match kind.as_str() {
        "header" => header_name(text, "tenant").map(TenantSource::Header),
        "path" => {
            // Reuse the pattern parser's capture-name rule by parsing a one-capture pattern.
            PathPattern::parse(&format!("/{{{text}}}"))
                .map(|_| TenantSource::Path(text.to_string()))
                .map_err(|e| format!("invalid tenant path capture: {e}"))
        }
        "query" if !text.is_empty() => Ok(TenantSource::Query(text.to_string())),
        "query" => Err("tenant query parameter name must not be empty".to_string()),
        "host" if text == "subdomain" => Ok(TenantSource::Host),
        "host" => Err(format!(
            "invalid tenant host \"{text}\": the only accepted value is \"subdomain\""
        )),
        other => Err(format!("unknown tenant source \"{other}\"; {SHAPE}")),
    }
}
