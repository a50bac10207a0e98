//! `[cache]`: the store's namespace and budget, what may be stored, and the defaults routes
//! inherit (ttl, tenant source, scope).

use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use super::fields::{duration_field, header_name, size_field};
use super::raw::RawCache;
use super::report::Report;
use super::scope::{check_scope, parse_scope, tenant_source, AuthFacts};
use crate::notation::format_size;
use crate::policy::http_cache::RequestCacheControl;
use crate::policy::route::{Scope, TenantSource};

/// `[cache]`: what is stored and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Key prefix, `[A-Za-z0-9_-]{1,32}`; default `cg`.
    pub namespace: String,
    /// Bumping it orphans every stored entry; default 1.
    pub version: u32,
    /// Memory budget in bytes; default 256MiB.
    pub max_memory: u64,
    /// Largest stored response body in bytes, below `max_memory`; default 1MiB.
    pub max_object_size: u64,
    /// TTL of routes that set none; default 5m, never zero.
    pub default_ttl: Duration,
    /// `stale_while_revalidate` of routes that set none; default 0 (none).
    pub stale_while_revalidate: Duration,
    /// `stale_if_error` of routes that set none; default 0 (none).
    pub stale_if_error: Duration,
    /// `revalidate_for` of routes that set none: how long an entry with validators is held
    /// for revalidation after its stale windows; default 10m, 0 for none.
    pub revalidate_for: Duration,
    /// Upstream statuses that may be stored; default 200, 203, 204, 300, 301, 308.
    pub cacheable_statuses: Vec<u16>,
    /// Tenant source of routes that set none; default none.
    pub tenant: TenantSource,
    /// How long a request waits on an identical request's fill before going upstream alone.
    pub coalesce_timeout: Duration,
    /// Origin response headers whose comma/space separated values add tags to the stored entry
    /// (removed before the client sees them); default `Cache-Tag` and `Surrogate-Key`.
    pub tag_headers: Vec<HeaderName>,
    /// Scope of routes that set none; `None` infers it from each route's tenant source.
    pub scope: Option<Scope>,
    /// Percentage of `max_memory` one tenant (the shared scope counting as one) may hold
    /// before, when the tier is full, its own entries are evicted first; 1 to 100, default
    /// 100 (no share enforced).
    pub max_tenant_share: u8,
    /// Honour-origin mode for routes that do not say; default false.
    pub honor_origin: bool,
    /// What a request's `Cache-Control` does on routes that do not say; `None`: `honor` on
    /// honour-origin routes, `bypass` on the others.
    pub request_cache_control: Option<RequestCacheControl>,
    /// Default of routes' `compress`: compress textual answers the backend sent unencoded,
    /// once per fill and `Accept-Encoding` bucket (docs/compression.md); default false.
    pub compress: bool,
}

impl CacheConfig {
    /// Bytes one tenant may hold before it loses its own entries first, when shares are on.
    pub fn tenant_share_bytes(&self) -> Option<u64> {
        let share = u128::from(self.max_memory) * u128::from(self.max_tenant_share) / 100;
        (self.max_tenant_share < 100).then(|| u64::try_from(share).unwrap_or(u64::MAX))
    }
}

/// A whole percentage between 1 and 100, written `25` or `"25%"`.
fn percentage(value: &toml::Value) -> Result<u8, String> {
    let shape = || "expected a percentage such as 25 or \"25%\"".to_string();
    let n: i64 = match value {
        toml::Value::Integer(n) => *n,
        toml::Value::String(text) => {
            let digits = text.trim().strip_suffix('%').unwrap_or(text.trim()).trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "invalid percentage \"{text}\": use a whole number from 1 to 100, such as \"25%\""
                ));
            }
            digits.parse().map_err(|_| shape())?
        }
        toml::Value::Float(f) => {
            return Err(format!(
                "invalid percentage {f}: use a whole number from 1 to 100"
            ))
        }
        _ => return Err(shape()),
    };
    u8::try_from(n)
        .ok()
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| format!("must be between 1% and 100%, not {n}%"))
}

/// `"honor"`, `"bypass"` or `"ignore"`.
pub(super) fn request_cache_control(text: &str) -> Result<RequestCacheControl, String> {
    RequestCacheControl::parse(text).ok_or_else(|| {
        format!(
            "invalid request_cache_control \"{text}\": expected \"honor\" (RFC 9111), \"bypass\" (no-cache and no-store pass through) or \"ignore\""
        )
    })
}

/// How long an entry with validators is held for revalidation past its stale windows when
/// `[cache] revalidate_for` is not set.
pub const DEFAULT_REVALIDATE_FOR: Duration = Duration::from_secs(600);

pub(super) fn compile_cache(
    report: &mut Report<'_>,
    raw: Option<RawCache>,
    auth: AuthFacts,
) -> Option<CacheConfig> {
    let raw = raw?;
    let namespace = match raw.namespace {
        None => Some("cg".to_string()),
        Some(ns) => {
            let text = ns.get_ref();
            let valid = (1..=32).contains(&text.len())
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let result = if valid {
                Ok(text.clone())
            } else {
                Err(format!(
                    "invalid namespace \"{text}\": use 1 to 32 of A-Z, a-z, 0-9, '_' and '-'"
                ))
            };
            report.check(ns.span(), "cache.namespace", result)
        }
    };
    let version = match raw.version {
        None => Some(1),
        Some(v) => {
            let n = *v.get_ref();
            let result = u32::try_from(n)
                .map_err(|_| format!("must be between 0 and {}, not {n}", u32::MAX));
            report.check(v.span(), "cache.version", result)
        }
    };
    let memory_set = raw.max_memory.is_some();
    let max_memory = size_field(report, raw.max_memory, "cache.max_memory", 256 << 20, 1);
    let object_span = raw.max_object_size.as_ref().map(Spanned::span);
    let max_object_size = size_field(
        report,
        raw.max_object_size,
        "cache.max_object_size",
        1 << 20,
        1,
    );
    if let (Some(memory), Some(object)) = (max_memory, max_object_size) {
        if object >= memory {
            let message = format!(
                "must be smaller than max_memory ({} >= {}{})",
                format_size(object),
                format_size(memory),
                if memory_set { "" } else { ", the default" }
            );
            match object_span {
                Some(span) => report.at(span, "cache.max_object_size", message),
                None => report.nowhere("cache.max_memory", message),
            }
        }
    }
    let default_ttl = duration_field(
        report,
        raw.default_ttl,
        "cache.default_ttl",
        Duration::from_secs(300),
        true,
    );
    let stale_while_revalidate = duration_field(
        report,
        raw.stale_while_revalidate,
        "cache.stale_while_revalidate",
        Duration::ZERO,
        false,
    );
    let stale_if_error = duration_field(
        report,
        raw.stale_if_error,
        "cache.stale_if_error",
        Duration::ZERO,
        false,
    );
    let revalidate_for = duration_field(
        report,
        raw.revalidate_for,
        "cache.revalidate_for",
        DEFAULT_REVALIDATE_FOR,
        false,
    );
    let cacheable_statuses = match raw.cacheable_statuses {
        None => Some(vec![200, 203, 204, 300, 301, 308]),
        Some(list) => {
            let mut statuses = Vec::new();
            let mut ok = true;
            for status in list.get_ref() {
                let n = *status.get_ref();
                // Answers to one request's conditions (304) or byte range (206), and interim
                // answers (1xx), would be served to requests that asked for something else.
                let unstorable = match n {
                    100..=199 => Some("an interim response is not a final answer"),
                    206 => Some("a partial response answers one Range request, which is not part of the key"),
                    304 => Some("a 304 answers one conditional request and has no body to serve"),
                    _ => None,
                };
                if let Some(why) = unstorable {
                    report.at(
                        status.span(),
                        "cache.cacheable_statuses",
                        format!("status {n} cannot be cached: {why}"),
                    );
                    ok = false;
                    continue;
                }
                match u16::try_from(n).ok().filter(|n| (100..=599).contains(n)) {
                    Some(s) if !statuses.contains(&s) => statuses.push(s),
                    Some(_) => {}
                    None => {
                        report.at(
                            status.span(),
                            "cache.cacheable_statuses",
                            format!("invalid status {n}: must be between 100 and 599"),
                        );
                        ok = false;
                    }
                }
            }
            if list.get_ref().is_empty() {
                report.at(
                    list.span(),
                    "cache.cacheable_statuses",
                    "is empty; set cache = false on routes to pass them through",
                );
                ok = false;
            }
            ok.then_some(statuses)
        }
    };
    let tenant = match raw.tenant {
        None => Some(TenantSource::None),
        Some(t) => report.check(t.span(), "cache.tenant", tenant_source(t.get_ref())),
    };
    let coalesce_timeout = duration_field(
        report,
        raw.coalesce_timeout,
        "cache.coalesce_timeout",
        Duration::from_secs(10),
        true,
    );
    let tag_headers = match raw.tag_headers {
        None => Some(vec![
            HeaderName::from_static("cache-tag"),
            HeaderName::from_static("surrogate-key"),
        ]),
        Some(names) => {
            let mut out = Vec::new();
            let mut ok = true;
            for name in names {
                let span = name.span();
                match report.check(
                    span,
                    "cache.tag_headers",
                    header_name(name.get_ref(), "tag"),
                ) {
                    Some(h) if !out.contains(&h) => out.push(h),
                    Some(_) => {}
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
    };
    let scope = match (&raw.scope, &tenant) {
        (None, _) => Some(None),
        (Some(s), Some(tenant)) => report.check(
            s.span(),
            "cache.scope",
            parse_scope(s.get_ref())
                .and_then(|scope| check_scope(scope, tenant, auth))
                .map(Some),
        ),
        (Some(s), None) => report
            .check(s.span(), "cache.scope", parse_scope(s.get_ref()))
            .map(Some),
    };
    let max_tenant_share = match raw.max_tenant_share {
        None => Some(100),
        Some(share) => report.check(
            share.span(),
            "cache.max_tenant_share",
            percentage(share.get_ref()),
        ),
    };
    let request_cache_control = match raw.request_cache_control {
        None => Some(None),
        Some(value) => report
            .check(
                value.span(),
                "cache.request_cache_control",
                request_cache_control(value.get_ref()),
            )
            .map(Some),
    };
    Some(CacheConfig {
        honor_origin: raw.honor_origin.unwrap_or(false),
        request_cache_control: request_cache_control?,
        max_tenant_share: max_tenant_share?,
        compress: raw.compress.unwrap_or(false),
        scope: scope?,
        tag_headers: tag_headers?,
        namespace: namespace?,
        version: version?,
        max_memory: max_memory?,
        max_object_size: max_object_size?,
        default_ttl: default_ttl?,
        stale_while_revalidate: stale_while_revalidate?,
        stale_if_error: stale_if_error?,
        revalidate_for: revalidate_for?,
        cacheable_statuses: cacheable_statuses?,
        tenant: tenant?,
        coalesce_timeout: coalesce_timeout?,
    })
}
