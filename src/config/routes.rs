//! `[[route]]`: each route compiled into a `policy::route::Route` (pattern, methods, ttl,
//! tenant, scope, vary, tags), and the table checked for routes an earlier one shadows.

use std::time::Duration;

use http::{HeaderName, Method};
use toml::de::DeValue;
use toml::Spanned;

use super::cache::request_cache_control;
use super::fields::{count_field, duration_field, header_name, size_field};
use super::raw::RawRoute;
use super::report::Report;
use super::scope::{check_scope, parse_anonymous, parse_scope, tenant_source, AuthFacts};
use crate::notation::format_size;
use crate::policy::freshness::{self, Negative};
use crate::policy::http_cache::{self, EtagRule, RequestCacheControl};
use crate::policy::route::{
    resource_tags, Anonymous, PathPattern, Route, RouteTable, Scope, TagTemplate, TenantSource,
};
use crate::policy::vary::DEFAULT_MAX_VARIANTS;

/// The most variants a route may allow per URI.
const MAX_VARIANTS_LIMIT: usize = 64;

/// What a route inherits from `[cache]` when it does not say.
#[derive(Debug, Clone)]
pub(super) struct RouteDefaults {
    pub(super) ttl: Duration,
    pub(super) stale_while_revalidate: Duration,
    pub(super) stale_if_error: Duration,
    pub(super) revalidate_for: Duration,
    pub(super) tenant: TenantSource,
    pub(super) scope: Option<Scope>,
    /// `[cache].max_memory`: a route's own bound must be below it to bound anything.
    pub(super) max_memory: u64,
    /// `[cache].honor_origin`.
    pub(super) honor_origin: bool,
    /// `[cache].request_cache_control`; `None` picks by the route's `honor_origin`.
    pub(super) request_cache_control: Option<RequestCacheControl>,
    /// `[cache].compress`.
    pub(super) compress: bool,
}

impl RouteDefaults {
    /// Stand-in for a broken `[cache]` while routes are checked: its problems are reported
    /// already, and these defaults (no tenant, 5m, scope per route) cannot add spurious ones.
    pub(super) const FALLBACK: RouteDefaults = RouteDefaults {
        ttl: Duration::from_secs(300),
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        revalidate_for: super::cache::DEFAULT_REVALIDATE_FOR,
        tenant: TenantSource::None,
        scope: None,
        max_memory: u64::MAX,
        honor_origin: false,
        request_cache_control: None,
        compress: false,
    };
}

pub(super) fn compile_routes(
    report: &mut Report<'_>,
    value: &Spanned<DeValue<'_>>,
    defaults: &RouteDefaults,
    auth: AuthFacts,
) -> RouteTable {
    let Some(items) = value.get_ref().as_array() else {
        report.at(
            value.span(),
            "route",
            "expected an array of tables; write each route as [[route]]",
        );
        return RouteTable::default();
    };
    let mut routes = Vec::new();
    // Where each compiled route's path is, for messages naming an earlier route.
    let mut path_spans = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let key = format!("route[{index}]");
        let Some(raw) = report.table::<RawRoute>(item, &key) else {
            continue;
        };
        let span = raw.path.span();
        if let Some(route) = compile_route(report, raw, index, &key, defaults, auth) {
            routes.push(route);
            path_spans.push(span);
        }
    }
    let table = RouteTable::new(routes);
    for (later, earlier) in table.shadowed() {
        let (l, e) = (&table.routes()[later], &table.routes()[earlier]);
        let line = report.line(path_spans[earlier].start);
        report.at(
            path_spans[later].clone(),
            format!("route[{}].path", l.index),
            format!(
                "\"{}\" can never match: route[{}] \"{}\" (line {line}) matches every path it does",
                l.pattern, e.index, e.pattern
            ),
        );
    }
    table
}

fn compile_route(
    report: &mut Report<'_>,
    raw: RawRoute,
    index: usize,
    key: &str,
    defaults: &RouteDefaults,
    auth: AuthFacts,
) -> Option<Route> {
    let path_span = raw.path.span();
    let pattern = report.check(
        path_span.clone(),
        format!("{key}.path"),
        PathPattern::parse(raw.path.get_ref())
            .map_err(|e| format!("invalid pattern \"{}\": {e}", raw.path.get_ref())),
    )?;
    let mut ok = true;
    let cached = raw.cache.unwrap_or(true);
    let ttl = duration_field(
        report,
        raw.ttl.clone(),
        &format!("{key}.ttl"),
        defaults.ttl,
        cached,
    );
    let freshness = freshness_rules(report, &raw, key, defaults, ttl);

    let methods = match raw.methods {
        None => None,
        Some(list) => {
            let mut methods: Vec<Method> = Vec::new();
            for m in list.get_ref() {
                match method(m.get_ref()) {
                    Ok(m) if !methods.contains(&m) => methods.push(m),
                    Ok(_) => {}
                    Err(message) => {
                        report.at(m.span(), format!("{key}.methods"), message);
                        ok = false;
                    }
                }
            }
            if list.get_ref().is_empty() {
                report.at(
                    list.span(),
                    format!("{key}.methods"),
                    "is empty; leave it out to match every method",
                );
                ok = false;
            }
            Some(methods)
        }
    };

    let tenant = match &raw.tenant {
        None => Some(defaults.tenant.clone()),
        Some(t) => report.check(
            t.span(),
            format!("{key}.tenant"),
            tenant_source(t.get_ref()),
        ),
    };
    if let Some(TenantSource::Path(name)) = &tenant {
        if !pattern.has_capture(name) {
            let origin = if raw.tenant.is_some() {
                "the route's tenant"
            } else {
                "[cache].tenant"
            };
            let span = raw.tenant.as_ref().map_or(path_span.clone(), Spanned::span);
            report.at(
                span,
                format!("{key}.tenant"),
                format!(
                    "tenant capture {{{name}}} (from {origin}) is not in the pattern \"{}\"; capture it or set tenant = \"none\" on this route",
                    pattern
                ),
            );
            ok = false;
        }
    }

    let scope = match (&raw.scope, &tenant) {
        (Some(s), Some(tenant)) => report
            .check(
                s.span(),
                format!("{key}.scope"),
                parse_scope(s.get_ref()).and_then(|scope| check_scope(scope, tenant, auth)),
            )
            .map(|scope| (scope, true)),
        (Some(s), None) => report
            .check(s.span(), format!("{key}.scope"), parse_scope(s.get_ref()))
            .map(|scope| (scope, true)),
        (None, tenant) => match (defaults.scope, tenant) {
            (Some(scope), Some(tenant)) => {
                // [cache].scope was checked with [cache].tenant; only a route's own tenant can
                // make it impossible here.
                let result = if raw.tenant.is_some() {
                    check_scope(scope, tenant, auth)
                        .map_err(|e| format!("{e} (scope from [cache].scope)"))
                } else {
                    Ok(scope)
                };
                let span = raw.tenant.as_ref().map_or(path_span.clone(), Spanned::span);
                report
                    .check(span, format!("{key}.tenant"), result)
                    .map(|scope| (scope, true))
            }
            (Some(scope), None) => Some((scope, true)),
            (None, Some(TenantSource::None)) => Some((Scope::Public, false)),
            (None, _) => Some((Scope::Tenant, false)),
        },
    };
    let anonymous = match &raw.anonymous {
        None => Some(Anonymous::Deny),
        Some(a) => report.check(
            a.span(),
            format!("{key}.anonymous"),
            parse_anonymous(a.get_ref()),
        ),
    };

    // `forward_headers` go with every fill, so the key must cover them: they join `vary`.
    let mut vary: Vec<HeaderName> = Vec::new();
    for (list, field) in [
        (&raw.vary, "vary"),
        (&raw.forward_headers, "forward_headers"),
    ] {
        for h in list.iter().flatten() {
            match header_name(h.get_ref(), field) {
                Ok(name) if !vary.contains(&name) => vary.push(name),
                Ok(_) => {}
                Err(message) => {
                    report.at(h.span(), format!("{key}.{field}"), message);
                    ok = false;
                }
            }
        }
    }
    let max_variants = count_field(
        report,
        raw.max_variants.clone(),
        &format!("{key}.max_variants"),
        DEFAULT_MAX_VARIANTS,
        1,
    )
    .and_then(|n| {
        if n > MAX_VARIANTS_LIMIT {
            let span = raw
                .max_variants
                .as_ref()
                .map_or(path_span.clone(), Spanned::span);
            report.at(
                span,
                format!("{key}.max_variants"),
                format!("must be at most {MAX_VARIANTS_LIMIT}, not {n}"),
            );
            None
        } else {
            Some(n)
        }
    });
    let memory_span = raw.max_memory.as_ref().map(Spanned::span);
    let max_memory = match raw.max_memory {
        None => Some(None),
        Some(field) => size_field(report, Some(field), &format!("{key}.max_memory"), 0, 1)
            .and_then(|bytes| {
                if bytes >= defaults.max_memory {
                    report.at(
                        memory_span.unwrap_or(path_span.clone()),
                        format!("{key}.max_memory"),
                        format!(
                            "must be smaller than [cache].max_memory ({} >= {}), or it bounds nothing",
                            format_size(bytes),
                            format_size(defaults.max_memory)
                        ),
                    );
                    None
                } else {
                    Some(Some(bytes))
                }
            }),
    };
    if max_memory.is_none() {
        ok = false;
    }

    let mut entry_tags: Vec<TagTemplate> = Vec::new();
    let mut write_invalidates: Vec<TagTemplate> = Vec::new();
    let resource = raw.resource.as_ref().map(|r| r.get_ref().clone());
    if let (Some(r), Some(tenant)) = (&raw.resource, &tenant) {
        match resource_tags(r.get_ref(), &pattern, tenant) {
            Ok((entry, write)) => {
                entry_tags = entry;
                write_invalidates = write;
            }
            Err(message) => {
                report.at(r.span(), format!("{key}.resource"), message);
                ok = false;
            }
        }
    }
    for (list, into, name) in [
        (&raw.tags, &mut entry_tags, "tags"),
        (&raw.invalidates, &mut write_invalidates, "invalidates"),
    ] {
        for t in list.iter().flatten() {
            match TagTemplate::parse(t.get_ref(), &pattern) {
                Ok(tag) if !into.contains(&tag) => into.push(tag),
                Ok(_) => {}
                Err(message) => {
                    report.at(t.span(), format!("{key}.{name}"), message);
                    ok = false;
                }
            }
        }
    }

    let http = http_rules(
        report,
        (raw.honor_origin, &raw.request_cache_control, &raw.etag),
        key,
        defaults,
    );

    if !ok {
        return None;
    }
    let (scope, scope_declared) = scope?;
    let freshness = freshness?;
    Some(Route {
        scope,
        scope_declared,
        anonymous: anonymous?,
        index,
        id: index,
        pattern,
        methods,
        cache: cached,
        freshness,
        compress: raw.compress.unwrap_or(defaults.compress),
        tenant: tenant?,
        vary,
        max_variants: max_variants?,
        max_memory: max_memory?,
        resource,
        entry_tags,
        write_invalidates,
        http: http?,
    })
}

/// `honor_origin`, `request_cache_control` and `etag`, each inheriting from `[cache]`; the
/// request switch defaults to `honor` on honour-origin routes and `bypass` on the others.
fn http_rules(
    report: &mut Report<'_>,
    (honor_origin, request, etag): (
        Option<bool>,
        &Option<Spanned<String>>,
        &Option<Spanned<String>>,
    ),
    key: &str,
    defaults: &RouteDefaults,
) -> Option<http_cache::Rules> {
    let honor_origin = honor_origin.unwrap_or(defaults.honor_origin);
    let request = match request {
        Some(value) => report.check(
            value.span(),
            format!("{key}.request_cache_control"),
            request_cache_control(value.get_ref()),
        ),
        None => Some(defaults.request_cache_control.unwrap_or(if honor_origin {
            RequestCacheControl::Honor
        } else {
            RequestCacheControl::Bypass
        })),
    };
    let etag = match etag {
        None => Some(EtagRule::Origin),
        Some(value) => report.check(
            value.span(),
            format!("{key}.etag"),
            match value.get_ref().as_str() {
                "origin" => Ok(EtagRule::Origin),
                "digest" => Ok(EtagRule::Digest),
                other => Err(format!(
                    "invalid etag \"{other}\": expected \"origin\" (the backend's own) or \"digest\" (a strong tag from the body when the backend sends none)"
                )),
            },
        ),
    };
    Some(http_cache::Rules {
        honor_origin,
        request_cache_control: request?,
        etag: etag?,
    })
}

/// The route's freshness rules: its `ttl`, its stale windows (or `[cache]`'s), and negative
/// caching (`negative_ttl` for `negative_statuses`, by default 404).
fn freshness_rules(
    report: &mut Report<'_>,
    raw: &RawRoute,
    key: &str,
    defaults: &RouteDefaults,
    ttl: Option<Duration>,
) -> Option<freshness::Rules> {
    let stale_while_revalidate = duration_field(
        report,
        raw.stale_while_revalidate.clone(),
        &format!("{key}.stale_while_revalidate"),
        defaults.stale_while_revalidate,
        false,
    );
    let stale_if_error = duration_field(
        report,
        raw.stale_if_error.clone(),
        &format!("{key}.stale_if_error"),
        defaults.stale_if_error,
        false,
    );
    let revalidate_for = duration_field(
        report,
        raw.revalidate_for.clone(),
        &format!("{key}.revalidate_for"),
        defaults.revalidate_for,
        false,
    );
    let negative_ttl = match &raw.negative_ttl {
        None => Some(None),
        Some(field) => duration_field(
            report,
            Some(field.clone()),
            &format!("{key}.negative_ttl"),
            Duration::ZERO,
            true,
        )
        .map(Some),
    };
    let statuses = match &raw.negative_statuses {
        None => Some(vec![404]),
        Some(list) => {
            let field = format!("{key}.negative_statuses");
            let mut statuses = Vec::new();
            let mut ok = true;
            if raw.negative_ttl.is_none() {
                report.at(
                    list.span(),
                    field.clone(),
                    "has no effect without negative_ttl; set negative_ttl = \"10s\" (for example)",
                );
                ok = false;
            }
            if list.get_ref().is_empty() {
                report.at(
                    list.span(),
                    field.clone(),
                    "is empty; leave out negative_ttl to cache no negative answers",
                );
                ok = false;
            }
            for status in list.get_ref() {
                let n = *status.get_ref();
                match u16::try_from(n).ok().filter(|n| (400..=499).contains(n)) {
                    Some(s) if !statuses.contains(&s) => statuses.push(s),
                    Some(_) => {}
                    None => {
                        report.at(
                            status.span(),
                            field.clone(),
                            format!(
                                "invalid status {n}: negative caching takes client errors (400 to 499); 5xx answers are what stale_if_error covers"
                            ),
                        );
                        ok = false;
                    }
                }
            }
            ok.then_some(statuses)
        }
    };
    let negative = negative_ttl?.map(|ttl| Negative {
        ttl,
        statuses: Vec::new(),
    });
    let statuses = statuses?;
    Some(freshness::Rules {
        ttl: ttl?,
        stale_while_revalidate: stale_while_revalidate?,
        stale_if_error: stale_if_error?,
        revalidate_for: revalidate_for?,
        negative: negative.map(|n| Negative { statuses, ..n }),
    })
}

fn method(text: &str) -> Result<Method, String> {
    let upper = !text.is_empty() && !text.bytes().any(|b| b.is_ascii_lowercase());
    match Method::from_bytes(text.as_bytes()) {
        Ok(m) if upper => Ok(m),
        _ => Err(format!(
            "invalid method \"{text}\": methods are upper-case names such as \"GET\""
        )),
    }
}
