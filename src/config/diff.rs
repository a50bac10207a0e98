//! What a new version of the config changes, key by key, and which of those changes a running
//! process can apply (a reload) and which only take effect after a restart.
//!
//! A process applies at once what it reads per request or can rebuild beside the running
//! one: routes and what they inherit from `[cache]`, accepted hosts, the webhook, `[auth]`, the
//! admin token, the access line. What it was built around stays until a restart: the
//! listeners and their limits, the worker threads, the upstream client, the memory tier's size
//! and shares, the logging setup, the admin listener and whether `/metrics` records, and the
//! shared tier's connection.

use super::Config;
use crate::policy::route::RouteTable;

/// The keys a new config changes, in file order of their sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Changed keys a reload applies (`route`, `cache.default_ttl`, ...).
    pub applied: Vec<String>,
    /// Changed keys that only take effect after a restart (`server.listen`, `redis.url`, ...).
    pub restart_required: Vec<String>,
}

impl Changes {
    fn note<T: PartialEq + ?Sized>(&mut self, key: &str, restart: bool, old: &T, new: &T) {
        if old != new {
            let list = if restart {
                &mut self.restart_required
            } else {
                &mut self.applied
            };
            list.push(key.to_owned());
        }
    }
}

/// Whether a change of the key needs a restart.
const RESTART: bool = true;
const APPLY: bool = false;

impl Config {
    /// What `new` changes compared with `self` (the config in force). Secrets are compared by
    /// where they are read from only; the values are the reload's to compare.
    pub fn changes(&self, new: &Config) -> Changes {
        let mut c = Changes::default();
        let (o, n) = (&self.server, &new.server);
        c.note("server.listen", RESTART, &o.listen, &n.listen);
        c.note("server.workers", RESTART, &o.workers, &n.workers);
        c.note(
            "server.header_read_timeout",
            RESTART,
            &o.header_read_timeout,
            &n.header_read_timeout,
        );
        c.note(
            "server.max_header_bytes",
            RESTART,
            &o.max_header_bytes,
            &n.max_header_bytes,
        );
        c.note(
            "server.max_connections",
            RESTART,
            &o.max_connections,
            &n.max_connections,
        );
        c.note("server.hosts", APPLY, &o.hosts, &n.hosts);
        c.note(
            "server.shutdown_grace",
            RESTART,
            &o.shutdown_grace,
            &n.shutdown_grace,
        );
        c.note(
            "server.idle_timeout",
            RESTART,
            &o.idle_timeout,
            &n.idle_timeout,
        );
        c.note("server.tls", RESTART, &o.tls, &n.tls);
        c.note(
            "server.tls_reload_interval",
            RESTART,
            &o.tls_reload_interval,
            &n.tls_reload_interval,
        );
        c.note(
            "server.max_request_body",
            RESTART,
            &o.max_request_body,
            &n.max_request_body,
        );
        c.note(
            "server.max_requests_per_connection",
            RESTART,
            &o.max_requests_per_connection,
            &n.max_requests_per_connection,
        );
        c.note(
            "server.http2_max_concurrent_streams",
            RESTART,
            &o.http2_max_concurrent_streams,
            &n.http2_max_concurrent_streams,
        );
        c.note(
            "server.watch_config",
            APPLY,
            &o.watch_config,
            &n.watch_config,
        );

        let (o, n) = (&self.upstream, &new.upstream);
        c.note("upstream.url", RESTART, &o.url, &n.url);
        c.note(
            "upstream.connect_timeout",
            RESTART,
            &o.connect_timeout,
            &n.connect_timeout,
        );
        c.note("upstream.timeout", RESTART, &o.timeout, &n.timeout);
        c.note(
            "upstream.pool_max_idle_per_host",
            RESTART,
            &o.pool_max_idle_per_host,
            &n.pool_max_idle_per_host,
        );
        c.note(
            "upstream.pool_idle_timeout",
            RESTART,
            &o.pool_idle_timeout,
            &n.pool_idle_timeout,
        );

        let (o, n) = (&self.cache, &new.cache);
        c.note("cache.namespace", APPLY, &o.namespace, &n.namespace);
        c.note("cache.version", APPLY, &o.version, &n.version);
        c.note("cache.max_memory", RESTART, &o.max_memory, &n.max_memory);
        c.note(
            "cache.max_object_size",
            APPLY,
            &o.max_object_size,
            &n.max_object_size,
        );
        c.note("cache.default_ttl", APPLY, &o.default_ttl, &n.default_ttl);
        c.note(
            "cache.cacheable_statuses",
            APPLY,
            &o.cacheable_statuses,
            &n.cacheable_statuses,
        );
        c.note("cache.tenant", APPLY, &o.tenant, &n.tenant);
        c.note(
            "cache.coalesce_timeout",
            APPLY,
            &o.coalesce_timeout,
            &n.coalesce_timeout,
        );
        c.note("cache.tag_headers", APPLY, &o.tag_headers, &n.tag_headers);
        c.note("cache.scope", APPLY, &o.scope, &n.scope);
        c.note(
            "cache.max_tenant_share",
            RESTART,
            &o.max_tenant_share,
            &n.max_tenant_share,
        );

        c.note(
            "route",
            APPLY,
            &without_ids(&self.routes),
            &without_ids(&new.routes),
        );

        let (o, n) = (&self.log, &new.log);
        c.note("log.level", RESTART, &o.level, &n.level);
        c.note("log.format", RESTART, &o.format, &n.format);
        c.note("log.access", APPLY, &o.access, &n.access);

        match (&self.admin, &new.admin) {
            (Some(o), Some(n)) => {
                c.note("admin.listen", RESTART, &o.listen, &n.listen);
                c.note("admin.tls", RESTART, &o.tls, &n.tls);
                c.note("admin.token", APPLY, &o.token, &n.token);
                c.note(
                    "admin.warm_concurrency",
                    APPLY,
                    &o.warm_concurrency,
                    &n.warm_concurrency,
                );
                c.note("admin.metrics", RESTART, &o.metrics, &n.metrics);
                c.note(
                    "admin.metrics_open",
                    APPLY,
                    &o.metrics_open,
                    &n.metrics_open,
                );
            }
            (o, n) => c.note("admin", RESTART, &o.is_some(), &n.is_some()),
        }

        let (o, n) = (&self.webhook, &new.webhook);
        c.note("webhook.prefix", APPLY, &o.prefix, &n.prefix);
        c.note("webhook.path", APPLY, &o.path, &n.path);
        c.note("webhook.secret", APPLY, &o.secret, &n.secret);
        c.note(
            "webhook.replay_window",
            APPLY,
            &o.replay_window,
            &n.replay_window,
        );
        c.note("webhook.max_body", APPLY, &o.max_body, &n.max_body);

        c.note("auth", APPLY, &self.auth, &new.auth);

        match (&self.redis, &new.redis) {
            (Some(o), Some(n)) => {
                c.note(
                    "redis.url",
                    RESTART,
                    &(&o.nodes, o.cluster),
                    &(&n.nodes, n.cluster),
                );
                c.note("redis.password_env", RESTART, &o.password, &n.password);
                c.note("redis.prefix", RESTART, &o.prefix, &n.prefix);
                c.note(
                    "redis.command_timeout",
                    RESTART,
                    &o.command_timeout,
                    &n.command_timeout,
                );
                c.note(
                    "redis.connect_timeout",
                    RESTART,
                    &o.connect_timeout,
                    &n.connect_timeout,
                );
                c.note("redis.local_ttl", RESTART, &o.local_ttl, &n.local_ttl);
                c.note(
                    "redis.compress_above",
                    RESTART,
                    &o.compress_above,
                    &n.compress_above,
                );
                c.note(
                    "redis.breaker_failures",
                    RESTART,
                    &o.breaker_failures,
                    &n.breaker_failures,
                );
                c.note(
                    "redis.breaker_cooldown",
                    RESTART,
                    &o.breaker_cooldown,
                    &n.breaker_cooldown,
                );
                c.note("redis.lease", RESTART, &o.lease, &n.lease);
                c.note("redis.lease_ttl", RESTART, &o.lease_ttl, &n.lease_ttl);
                c.note(
                    "redis.fence_retention",
                    RESTART,
                    &o.fence_retention,
                    &n.fence_retention,
                );
                c.note(
                    "redis.replay_limit",
                    RESTART,
                    &o.replay_limit,
                    &n.replay_limit,
                );
            }
            (o, n) => c.note("redis", RESTART, &o.is_some(), &n.is_some()),
        }
        c
    }
}

/// The table with every route's id cleared: ids are the process's bookkeeping, not config.
fn without_ids(table: &RouteTable) -> RouteTable {
    let mut table = table.clone();
    for route in &mut table.routes {
        route.id = 0;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rest: &str) -> Config {
        let text = format!("[upstream]\nurl = \"http://127.0.0.1:8000\"\n{rest}");
        Config::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
[admin]
[redis]
url = "redis://127.0.0.1:6379"
[[route]]
path = "/a/"
ttl = "1m"
[[route]]
path = "/b/"
"#;

    #[test]
    fn an_identical_config_changes_nothing() {
        assert_eq!(config(BASE).changes(&config(BASE)), Changes::default());
    }

    #[test]
    fn route_and_cache_changes_apply_listeners_and_redis_need_a_restart() {
        let new = BASE
            .replace("ttl = \"1m\"", "ttl = \"2m\"")
            .replace("127.0.0.1:8080", "127.0.0.1:8081")
            .replace("redis://127.0.0.1:6379", "redis://127.0.0.1:6380")
            .replace(
                "[admin]",
                "[admin]\ntoken_env = \"OTHER\"\n[cache]\ndefault_ttl = \"1h\"",
            );
        let changes = config(BASE).changes(&config(&new));
        assert_eq!(
            changes.applied,
            ["cache.default_ttl", "route", "admin.token"]
        );
        assert_eq!(changes.restart_required, ["server.listen", "redis.url"]);
    }

    #[test]
    fn a_reordered_table_is_a_change_and_sections_added_or_removed_are_named() {
        let swapped = r#"
[server]
listen = "127.0.0.1:8080"
[[route]]
path = "/b/"
[[route]]
path = "/a/"
ttl = "1m"
"#;
        let changes = config(BASE).changes(&config(swapped));
        assert_eq!(changes.applied, ["route"]);
        assert_eq!(changes.restart_required, ["admin", "redis"]);
    }

    #[test]
    fn route_ids_are_not_config() {
        let old = config(BASE);
        let mut new = config(BASE);
        new.routes.routes[0].id = 7;
        assert_eq!(old.changes(&new), Changes::default());
    }
}
