//! The configuration file: TOML parsing, every validation, and the validated types the proxy reads.
//!
//! This is the only module that knows serde and TOML. The file is deserialized into private
//! `Raw*` structs section by section (`raw`), then compiled into the public types of each
//! section, re-exported here; nothing later validates again. A bad file yields one
//! [`ConfigError`] listing every problem found, each with its line and column (`report`), so a
//! user fixes them all in one pass.
//!
//! One file per section: `server`, `upstream`, `cache`, `routes` (with `scope`, which `[cache]`
//! shares), `auth`, `admin` (`[admin]` and `[webhook]`), `redis`, `log`; `fields` holds the value checks
//! they share and `check` what `cachegate check` prints. This file only reads the sections in
//! order and hands each what it needs of the others.

use std::path::Path;

use toml::de::DeTable;

use crate::policy::route::RouteTable;

mod admin;
mod auth;
mod cache;
mod check;
mod diff;
mod fields;
mod log;
mod raw;
mod redis;
mod report;
mod routes;
mod scope;
mod server;
mod upstream;

pub use admin::{AdminConfig, WebhookConfig};
pub use auth::{AuthConfig, IntrospectConfig, JwtConfig, JwtKeySource};
pub use cache::CacheConfig;
pub use diff::Changes;
pub use fields::SecretSource;
pub use log::{LogConfig, LogFormat};
pub use redis::{RedisConfig, RedisNode};
pub use report::{ConfigError, Problem};
pub use server::ServerConfig;
pub use upstream::UpstreamConfig;

use admin::{compile_admin, compile_webhook};
use auth::compile_auth;
use cache::compile_cache;
use log::compile_log;
use raw::{RawAdmin, RawCache, RawLog, RawRedis, RawServer, RawUpstream, RawWebhook};
use redis::compile_redis;
use report::Report;
use routes::{compile_routes, RouteDefaults};
use scope::AuthFacts;
use server::compile_server;
use upstream::compile_upstream;

#[cfg(test)]
mod tests;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File name used in messages, `<embedded default>` for the built-in file.
    pub source: String,
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub cache: CacheConfig,
    pub routes: RouteTable,
    /// `[log]`: the tracing filter (`RUST_LOG` wins over it), the format and the access line.
    pub log: LogConfig,
    /// `[admin]`: the operator API; `None` when the section is absent (no admin listener).
    pub admin: Option<AdminConfig>,
    /// `[webhook]`: the signed invalidation endpoint on the main listener (always reserved).
    pub webhook: WebhookConfig,
    /// `[auth]`: how callers of `tenant` and `user` routes are verified; `None` when absent.
    pub auth: Option<AuthConfig>,
    /// `[redis]`: the tier shared by several instances; `None` when absent (memory tier only).
    pub redis: Option<RedisConfig>,
}

impl Config {
    /// Parses and validates configuration text; `source` names the file in messages.
    pub fn from_toml(text: &str, source: &str) -> Result<Config, ConfigError> {
        let mut report = Report {
            text,
            problems: Vec::new(),
        };
        let config = compile(text, source, &mut report);
        match config {
            Some(config) if report.problems.is_empty() => Ok(config),
            _ => {
                let mut problems = report.problems;
                // Problems without a place come first, the rest in file order.
                problems.sort_by_key(|p| p.position);
                Err(ConfigError {
                    source: source.to_string(),
                    problems,
                })
            }
        }
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml(&text, &source),
            Err(err) => Err(ConfigError {
                source,
                problems: vec![Problem {
                    position: None,
                    key: String::new(),
                    message: format!("cannot read the file: {err}"),
                }],
            }),
        }
    }

    /// The shipped `proxy.toml`, built into the binary.
    pub fn embedded_default() -> Config {
        // The file is part of the source tree and a unit test parses it, so a failure here
        // can only be a build of an untested tree.
        Config::from_toml(include_str!("../../proxy.toml"), "<embedded default>")
            .expect("the shipped proxy.toml is valid")
    }
}

const SECTIONS: &str = "server, upstream, cache, log, admin, webhook, auth, redis, route";

fn compile(text: &str, source: &str, report: &mut Report<'_>) -> Option<Config> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(error) => {
            let message = error.message().trim().to_string();
            match error.span() {
                Some(span) => report.at(span, "", message),
                None => report.nowhere("", message),
            }
            return None;
        }
    };
    let mut server = None;
    let mut upstream = None;
    let mut cache = None;
    let mut log = None;
    let mut admin = None;
    let mut webhook = None;
    let mut auth = None;
    let mut redis = None;
    let mut routes = None;
    for (key, value) in root.get_ref().iter() {
        match key.get_ref().as_ref() {
            "server" => server = Some(report.table::<RawServer>(value, "server")),
            "upstream" => upstream = Some(report.table::<RawUpstream>(value, "upstream")),
            "cache" => cache = Some(report.table::<RawCache>(value, "cache")),
            "log" => log = Some(report.table::<RawLog>(value, "log")),
            "admin" => admin = Some(report.table::<RawAdmin>(value, "admin")),
            "webhook" => webhook = Some(report.table::<RawWebhook>(value, "webhook")),
            "auth" => auth = Some(value),
            "redis" => redis = Some((value.span(), report.table::<RawRedis>(value, "redis"))),
            "route" => routes = Some(value),
            other => report.at(
                key.span(),
                other,
                format!("unknown section; expected one of {SECTIONS}"),
            ),
        }
    }
    let server = compile_server(report, server.unwrap_or_else(|| Some(RawServer::default())));
    let upstream = match upstream {
        Some(raw) => compile_upstream(report, raw),
        None => {
            report.nowhere(
                "upstream.url",
                "missing required key (the http:// address of the API behind the proxy)",
            );
            None
        }
    };
    let facts = AuthFacts {
        declared: auth.is_some(),
        names_tenants: true,
        names_users: true,
    };
    let auth = match auth {
        None => Some(None),
        Some(value) => compile_auth(report, value).map(Some),
    };
    // A broken [auth] keeps the permissive facts, so its problems do not repeat on every route.
    let facts = match &auth {
        Some(Some(a)) => AuthFacts {
            names_tenants: a.jwt.is_some() || a.introspect.is_some(),
            names_users: a.jwt.is_some() || a.introspect.is_some() || a.user_header.is_some(),
            ..facts
        },
        _ => facts,
    };
    let cache = compile_cache(
        report,
        cache.unwrap_or_else(|| Some(RawCache::default())),
        facts,
    );
    let log = compile_log(report, log.unwrap_or_else(|| Some(RawLog::default())));
    let routes = match routes {
        // Routes inherit from [cache]. When it is broken its problems are reported already,
        // and the defaults (no tenant, 5m) cannot add spurious route problems.
        Some(value) => {
            let defaults = cache
                .as_ref()
                .map_or(RouteDefaults::FALLBACK, |c| RouteDefaults {
                    ttl: c.default_ttl,
                    stale_while_revalidate: c.stale_while_revalidate,
                    stale_if_error: c.stale_if_error,
                    revalidate_for: c.revalidate_for,
                    tenant: c.tenant.clone(),
                    scope: c.scope,
                    max_memory: c.max_memory,
                    honor_origin: c.honor_origin,
                    request_cache_control: c.request_cache_control,
                    compress: c.compress,
                });
            compile_routes(report, value, &defaults, facts)
        }
        None => RouteTable::default(),
    };
    let admin = match admin {
        None => Some(None),
        Some(raw) => compile_admin(report, raw).map(Some),
    };
    let webhook = compile_webhook(
        report,
        webhook.unwrap_or_else(|| Some(RawWebhook::default())),
    );
    let redis = match redis {
        None => Some(None),
        Some((span, raw)) => {
            let timeout = upstream.as_ref().map(|u| u.timeout);
            compile_redis(report, span, raw, timeout).map(Some)
        }
    };
    Some(Config {
        source: source.to_string(),
        server: server?,
        upstream: upstream?,
        cache: cache?,
        routes,
        log: log?,
        admin: admin?,
        webhook: webhook?,
        auth: auth?,
        redis: redis?,
    })
}
