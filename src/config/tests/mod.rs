//! Tests for configuration parsing, defaults and the problem report; one file per section
//! beside this one.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, Method};

use super::*;
use crate::auth::algorithm::JwtAlgorithm;
use crate::policy::http_cache::{EtagRule, RequestCacheControl, Rules};
use crate::policy::route::{Anonymous, Scope, TagTemplate, TenantSource};

mod admin;
mod auth;
mod cache;
mod check;
mod log;
mod redis;
mod routes;
mod scope;
mod server;

const MINIMAL: &str = "[upstream]\nurl = \"http://127.0.0.1:8000\"\n";

/// An `[auth]` whose JWTs name tenants and users, for scopes that need them.
const JWT_AUTH: &str = "[auth]\n[auth.jwt]\nhs256_secret_env = \"JWT_SECRET\"\n";

fn parse(text: &str) -> Config {
    match Config::from_toml(text, "proxy.toml") {
        Ok(config) => config,
        Err(err) => panic!("config should parse:\n{err}"),
    }
}

/// Parses `text` and expects exactly these problem lines, in order.
fn check(text: &str, expected: &[&str]) {
    let err = match Config::from_toml(text, "proxy.toml") {
        Ok(_) => panic!("config should be refused:\n{text}"),
        Err(err) => err,
    };
    let lines: Vec<String> = err.to_string().lines().map(str::to_string).collect();
    assert_eq!(lines, expected, "for config:\n{text}");
    assert_eq!(err.problems().len(), expected.len());
}

/// A minimal config followed by `rest`, so line numbers in tests start at 3.
fn with(rest: &str) -> String {
    format!("{MINIMAL}{rest}")
}

fn tags(list: &[TagTemplate]) -> Vec<&str> {
    list.iter().map(TagTemplate::as_str).collect()
}

#[test]
fn shipped_proxy_toml_parses() {
    let config = parse(include_str!("../../../proxy.toml"));
    assert_eq!(
        config.server.listen,
        [SocketAddr::from(([0, 0, 0, 0], 8080))]
    );
    assert_eq!(config.upstream.url, "http://127.0.0.1:8000");
    assert_eq!(
        config.cache.tenant,
        TenantSource::Header(HeaderName::from_static("x-org-id"))
    );
    assert!(config.routes.routes().len() >= 3);
    let embedded = Config::embedded_default();
    assert_eq!(embedded.source, "<embedded default>");
    assert_eq!(embedded.routes, config.routes);
}

#[test]
fn defaults_are_applied() {
    let config = parse(MINIMAL);
    let s = &config.server;
    assert_eq!(s.listen, [SocketAddr::from(([0, 0, 0, 0], 8080))]);
    assert_eq!(s.workers, None);
    assert_eq!(s.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.max_header_bytes, 64 << 10);
    assert_eq!(s.max_connections, 10_000);
    assert_eq!(s.hosts, None);
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    let u = &config.upstream;
    assert_eq!(u.connect_timeout, Duration::from_secs(2));
    assert_eq!(u.timeout, Duration::from_secs(30));
    assert_eq!(u.pool_max_idle_per_host, 64);
    assert_eq!(u.pool_idle_timeout, Duration::from_secs(90));
    let c = &config.cache;
    assert_eq!(c.namespace, "cg");
    assert_eq!(c.version, 1);
    assert_eq!(c.max_memory, 256 << 20);
    assert_eq!(c.max_object_size, 1 << 20);
    assert_eq!(c.default_ttl, Duration::from_secs(300));
    assert_eq!(c.cacheable_statuses, [200, 203, 204, 300, 301, 308]);
    assert_eq!(c.tenant, TenantSource::None);
    assert_eq!(c.coalesce_timeout, Duration::from_secs(10));
    assert_eq!(config.log, LogConfig::default());
    assert!(config.routes.routes().is_empty());
}

#[test]
fn syntax_error_has_its_line() {
    check(
        &with("[server]\nlisten = \n"),
        &["proxy.toml:4:10: string values must be quoted, expected literal string"],
    );
}

#[test]
fn unknown_keys_are_all_reported() {
    check(
        &with("[server]\nlisen = \"x\"\ncolour = 1\n[[route]]\npath = \"/a\"\nttl_s = 3\n[extra]\n"),
        &[
            "proxy.toml:4:1: server.lisen: unknown key; expected one of `listen`, `workers`, `header_read_timeout`, `max_header_bytes`, `max_connections`, `hosts`, `shutdown_grace`, `idle_timeout`, `watch_config`, `tls_cert`, `tls_key`, `tls_reload_interval`, `max_request_body`, `max_requests_per_connection`, `http2_max_concurrent_streams`",
            "proxy.toml:5:1: server.colour: unknown key; expected one of `listen`, `workers`, `header_read_timeout`, `max_header_bytes`, `max_connections`, `hosts`, `shutdown_grace`, `idle_timeout`, `watch_config`, `tls_cert`, `tls_key`, `tls_reload_interval`, `max_request_body`, `max_requests_per_connection`, `http2_max_concurrent_streams`",
            "proxy.toml:8:1: route[0].ttl_s: unknown key; expected one of `path`, `methods`, `ttl`, `cache`, `compress`, `tenant`, `vary`, `forward_headers`, `max_variants`, `max_memory`, `resource`, `tags`, `invalidates`, `scope`, `anonymous`, `stale_while_revalidate`, `stale_if_error`, `revalidate_for`, `negative_ttl`, `negative_statuses`, `honor_origin`, `request_cache_control`, `etag`",
            "proxy.toml:9:2: extra: unknown section; expected one of server, upstream, cache, log, admin, webhook, auth, redis, route",
        ],
    );
}

#[test]
fn wrong_type_is_reported_and_the_rest_still_checked() {
    check(
        &with("[server]\nworkers = \"two\"\nheader_read_timeout = \"ten\"\n"),
        &[
            "proxy.toml:4:11: server.workers: invalid type: string \"two\", expected an integer",
            "proxy.toml:5:23: server.header_read_timeout: invalid duration \"ten\": expected a number followed by ms, s, m, h or d",
        ],
    );
}

#[test]
fn bare_number_duration_gets_a_hint() {
    check(
        &with("[cache]\ndefault_ttl = 30\n"),
        &["proxy.toml:4:15: cache.default_ttl: invalid duration \"30\": a unit is required, e.g. \"30s\" or \"30m\""],
    );
}

#[test]
fn bad_sizes_are_reported() {
    check(
        &with("[cache]\nmax_memory = \"lots\"\n[server]\nmax_header_bytes = \"1KiB\"\n"),
        &[
            "proxy.toml:4:14: cache.max_memory: invalid size \"lots\": expected a number of bytes, optionally followed by B, KB, MB, GB, KiB, MiB or GiB",
            "proxy.toml:6:20: server.max_header_bytes: must be at least 8KiB",
        ],
    );
}

#[test]
fn every_problem_at_once() {
    let text = with(concat!(
        "[cache]\nversion = -1\n",
        "[[route]]\npath = \"/a/{id}/\"\nttl = \"soon\"\nresource = \"a b\"\n",
    ));
    let err = Config::from_toml(&text, "proxy.toml").expect_err("config is refused");
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["cache.version", "route[0].ttl", "route[0].resource"]);
}

#[test]
fn load_reports_unreadable_file() {
    let err = Config::load(Path::new("/nonexistent/cachegate.toml")).expect_err("no such file");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/cachegate.toml: cannot read the file: "),
        "{err}"
    );
}
