//! `[redis]`: the shared tier several instances use, where it is (one server or a Redis
//! Cluster's seed nodes), its password, and how the proxy treats it when it is slow or down.
//!
//! A URL may carry a password, so no message, `Debug` or `Display` of this module ever
//! echoes one: nodes print with the password masked.

use std::fmt;
use std::time::Duration;

use toml::Spanned;

use super::fields::{count_field, duration_field, env_name, size_field, SecretSource};
use super::raw::RawRedis;
use super::report::Report;
use crate::notation::format_duration;
use crate::store::shared::SharedOptions;

/// `[redis]`: the shared tier in front of the backend, behind the memory tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// One server, or with `cluster` the seed nodes of a Redis Cluster; never empty.
    pub nodes: Vec<RedisNode>,
    /// `redis+cluster://` / `rediss+cluster://`, or `nodes = [...]`.
    pub cluster: bool,
    /// `password_env`: the password, read at start, of the nodes' URLs that carry none.
    pub password: Option<SecretSource>,
    /// First part of every key and of the invalidation channel; default `cachegate`.
    pub prefix: String,
    /// Bound on every command, round trip included; default 50ms, at most 10s.
    pub command_timeout: Duration,
    /// Default 1s.
    pub connect_timeout: Duration,
    /// How long an instance keeps its memory copy of a shared entry: the staleness bound
    /// across instances when an invalidation message is lost; default 5s, at most 1h.
    pub local_ttl: Duration,
    /// Bodies longer than this are stored compressed; default 1KiB.
    pub compress_above: u64,
    /// Consecutive failures that open the circuit breaker; default 5.
    pub breaker_failures: u32,
    /// How long an open breaker refuses before one probe; default 1s.
    pub breaker_cooldown: Duration,
    /// Cross-instance single-flight: one instance fills a cold key, the others wait; default on.
    pub lease: bool,
    /// How long a fill lease lasts if its holder dies; default the upstream timeout within
    /// [1s, 60s] (see [`RedisConfig::default_lease_ttl`]).
    pub lease_ttl: Duration,
    /// How long purge fences are kept; above the upstream timeout; default 5m.
    pub fence_retention: Duration,
    /// Purges kept for replay while Redis is unreachable; default 10000.
    pub replay_limit: usize,
}

/// One Redis server as the URL names it. `user` and `password` are kept as written
/// (percent-encoded), since they go back into a URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisNode {
    /// `rediss://`.
    pub tls: bool,
    /// A name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    /// Default 6379.
    pub port: u16,
    /// ACL user; `None` is the default user.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Database number; always 0 in a cluster.
    pub db: u32,
}

const DEFAULT_PORT: u16 = 6379;
const PERCENT_ENCODE: &str =
    "the user and password must be percent-encoded (e.g. '@' as %40, '/' as %2F, ':' as %3A)";
const SCHEMES: &str = "redis://, rediss://, redis+cluster:// or rediss+cluster://";

// === impl RedisConfig ===

impl RedisConfig {
    /// The lease TTL when none is set: a fill may take the upstream timeout, kept within
    /// [1s, 60s] so that a dead holder neither releases too early nor blocks for long.
    pub fn default_lease_ttl(upstream_timeout: Duration) -> Duration {
        upstream_timeout.clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// The store's options. `password` is the value of `password_env`, read at start; it goes
    /// into every node's URL (a node's own password and `password_env` never both exist).
    pub fn shared_options(&self, password: Option<&str>) -> SharedOptions {
        SharedOptions {
            urls: self.nodes.iter().map(|n| n.url(password)).collect(),
            cluster: self.cluster,
            prefix: self.prefix.clone(),
            command_timeout: self.command_timeout,
            connect_timeout: self.connect_timeout,
            compress_above: usize::try_from(self.compress_above).unwrap_or(usize::MAX),
            breaker_failures: self.breaker_failures,
            breaker_cooldown: self.breaker_cooldown,
            fence_retention: self.fence_retention,
            replay_limit: self.replay_limit,
        }
    }
}

impl fmt::Display for RedisConfig {
    /// One line for `cachegate check`, passwords masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(ToString::to_string).collect();
        if self.cluster {
            write!(f, "cluster {}", nodes.join(" "))?;
        } else {
            write!(f, "{}", nodes.join(" "))?;
        }
        if let Some(source) = &self.password {
            write!(f, " (password from {source})")?;
        }
        write!(
            f,
            ", prefix {}, command timeout {}, connect timeout {}, local ttl {}, breaker {} failures/{}, ",
            self.prefix,
            format_duration(self.command_timeout),
            format_duration(self.connect_timeout),
            format_duration(self.local_ttl),
            self.breaker_failures,
            format_duration(self.breaker_cooldown),
        )?;
        if self.lease {
            write!(f, "lease {}", format_duration(self.lease_ttl))?;
        } else {
            write!(f, "lease off")?;
        }
        write!(
            f,
            ", fences kept {}, replay up to {} purges",
            format_duration(self.fence_retention),
            self.replay_limit
        )
    }
}

// === impl RedisNode ===

impl RedisNode {
    /// The URL the store connects with (`redis://` or `rediss://`, never `+cluster`), with
    /// `password` percent-encoded in when given.
    pub fn url(&self, password: Option<&str>) -> String {
        let password = password
            .map(percent_encode)
            .or_else(|| self.password.clone());
        self.render(password.as_deref())
    }

    fn render(&self, password: Option<&str>) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let userinfo = match (&self.user, password) {
            (Some(user), Some(password)) => format!("{user}:{password}@"),
            (Some(user), None) => format!("{user}@"),
            (None, Some(password)) => format!(":{password}@"),
            (None, None) => String::new(),
        };
        format!(
            "{scheme}://{userinfo}{}:{}/{}",
            self.host, self.port, self.db
        )
    }
}

impl fmt::Display for RedisNode {
    /// The URL with its password, if any, shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = self.password.as_ref().map(|_| "***");
        f.write_str(&self.render(masked))
    }
}

impl fmt::Debug for RedisNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisNode({self})")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as a URL's password needs.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a URL says: the node, and whether its scheme names a cluster.
struct Parsed {
    node: RedisNode,
    cluster: bool,
}

/// Parses `scheme://[user[:password]@]host[:port][/db]`. Messages never quote the URL, which
/// may hold a password.
fn parse_url(text: &str) -> Result<Parsed, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "not a Redis URL; expected e.g. \"redis://127.0.0.1:6379/0\" ({SCHEMES})"
        ));
    };
    let (tls, cluster) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (false, false),
        "rediss" => (true, false),
        "redis+cluster" => (false, true),
        "rediss+cluster" => (true, true),
        "redis+sentinel" | "rediss+sentinel" => {
            return Err(
                "Redis Sentinel is not supported; use a Redis Cluster or a managed endpoint"
                    .to_string(),
            )
        }
        "redis+unix" | "unix" => return Err("unix sockets are not supported".to_string()),
        other => return Err(format!("unsupported scheme \"{other}\"; use {SCHEMES}")),
    };
    if rest.contains(['?', '#']) {
        return Err("the url may not have a query or a fragment".to_string());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if path.contains('@') {
        return Err(PERCENT_ENCODE.to_string());
    }
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, password) = match info.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (info, None),
            };
            if !userinfo_ok(user) || !password.is_none_or(userinfo_ok) {
                return Err(PERCENT_ENCODE.to_string());
            }
            let user = (!user.is_empty()).then(|| user.to_string());
            let password = password.filter(|p| !p.is_empty()).map(str::to_string);
            (user, password)
        }
    };
    let (host, port) = host_port(hostport)?;
    let db = match path.strip_prefix('/').unwrap_or(path) {
        "" => 0,
        digits if digits.bytes().all(|b| b.is_ascii_digit()) => digits
            .parse::<u32>()
            .map_err(|_| format!("database number {digits} is too large"))?,
        other => {
            return Err(format!(
                "the path must be a database number such as /0, not /{other}"
            ))
        }
    };
    if cluster && db != 0 {
        return Err(format!(
            "a Redis Cluster has database 0 only, not {db}; drop the /{db}"
        ));
    }
    Ok(Parsed {
        node: RedisNode {
            tls,
            host,
            port,
            user,
            password,
            db,
        },
        cluster,
    })
}

/// RFC 3986 userinfo characters (without ':'), with well-formed percent escapes.
fn userinfo_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape = bytes.get(i + 1..i + 3);
            if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b);
        if !allowed {
            return false;
        }
        i += 1;
    }
    true
}

fn host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err("an IPv6 address needs its closing ']'".to_string());
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("\"[{inside}]\" is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected \"{p}\" after the host"))?,
            ),
        };
        (format!("[{inside}]"), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let valid = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !valid {
            return Err(format!("\"{host}\" is not a host name or address"));
        }
        (host.to_ascii_lowercase(), port)
    };
    if host.is_empty() {
        return Err("the url has no host".to_string());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port \"{p}\": must be a number from 1 to 65535"))?,
    };
    Ok((host, port))
}

/// `url` or `nodes`, exactly one: the nodes and whether they form a cluster.
fn compile_nodes(
    report: &mut Report<'_>,
    section: std::ops::Range<usize>,
    url: Option<Spanned<String>>,
    nodes: Option<Spanned<Vec<Spanned<String>>>>,
    password_env: bool,
) -> Option<(Vec<RedisNode>, bool)> {
    // A named ACL user needs a password from somewhere; the default user may have none.
    let credentials = |node: RedisNode| match (&node.user, &node.password) {
        (Some(user), None) if !password_env => Err(format!(
            "the user \"{user}\" has no password; add it to the url or set password_env"
        )),
        _ => Ok(node),
    };
    match (url, nodes) {
        (Some(_), Some(nodes)) => {
            report.at(
                nodes.span(),
                "redis.nodes",
                "give either url or nodes, not both",
            );
            None
        }
        (None, None) => {
            report.at(
                section,
                "redis.url",
                "missing required key (the redis:// address, or nodes = [...] for a cluster)",
            );
            None
        }
        (Some(url), None) => {
            let result = parse_url(url.get_ref())
                .and_then(|parsed| Ok((vec![credentials(parsed.node)?], parsed.cluster)));
            report.check(url.span(), "redis.url", result)
        }
        (None, Some(list)) => {
            if list.get_ref().is_empty() {
                report.at(
                    list.span(),
                    "redis.nodes",
                    "is empty; list the seed nodes of the cluster",
                );
                return None;
            }
            let mut out: Vec<RedisNode> = Vec::new();
            let mut ok = true;
            for item in list.into_inner() {
                let span = item.span();
                let result = parse_url(item.get_ref()).and_then(|parsed| {
                    let node = parsed.node;
                    if node.db != 0 {
                        return Err(format!(
                            "a Redis Cluster has database 0 only, not {}; drop the /{}",
                            node.db, node.db
                        ));
                    }
                    if let Some(first) = out.first() {
                        if first.tls != node.tls {
                            return Err(
                                "mixes redis:// and rediss://; the nodes of a cluster use one"
                                    .to_string(),
                            );
                        }
                    }
                    if out
                        .iter()
                        .any(|n| n.host == node.host && n.port == node.port)
                    {
                        return Err(format!("{}:{} is listed twice", node.host, node.port));
                    }
                    credentials(node)
                });
                match report.check(span, "redis.nodes", result) {
                    Some(node) => out.push(node),
                    None => ok = false,
                }
            }
            ok.then_some((out, true))
        }
    }
}

/// A duration with a default and an upper bound, never zero.
fn bounded_duration(
    report: &mut Report<'_>,
    field: Option<Spanned<super::raw::Scalar>>,
    key: &str,
    default: Duration,
    maximum: Duration,
) -> Option<Duration> {
    let span = field.as_ref().map(Spanned::span);
    let value = duration_field(report, field, key, default, true)?;
    match span {
        Some(span) if value > maximum => {
            report.at(
                span,
                key,
                format!("must be at most {}", format_duration(maximum)),
            );
            None
        }
        _ => Some(value),
    }
}

/// Compiles `[redis]`; `section` is the span of the table, for problems of absent keys.
/// `upstream_timeout` is `None` when `[upstream]` is broken (its problems are reported already).
pub(super) fn compile_redis(
    report: &mut Report<'_>,
    section: std::ops::Range<usize>,
    raw: Option<RawRedis>,
    upstream_timeout: Option<Duration>,
) -> Option<RedisConfig> {
    let raw = raw?;
    let nodes = compile_nodes(
        report,
        section.clone(),
        raw.url,
        raw.nodes,
        raw.password_env.is_some(),
    );
    let password = match raw.password_env {
        None => Some(None),
        Some(env) => {
            let in_url = nodes
                .as_ref()
                .is_some_and(|(nodes, _)| nodes.iter().any(|n| n.password.is_some()));
            let result = env_name(env.get_ref()).and_then(|name| {
                if in_url {
                    Err("the url carries a password already; give it in one place only".to_string())
                } else {
                    Ok(Some(SecretSource::Env(name)))
                }
            });
            report.check(env.span(), "redis.password_env", result)
        }
    };
    let prefix = match raw.prefix {
        None => Some("cachegate".to_string()),
        Some(prefix) => {
            let text = prefix.get_ref();
            let valid = (1..=64).contains(&text.len())
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            let result = if valid {
                Ok(text.clone())
            } else {
                Err(format!(
                    "invalid prefix \"{text}\": use 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-'"
                ))
            };
            report.check(prefix.span(), "redis.prefix", result)
        }
    };
    let command_timeout = bounded_duration(
        report,
        raw.command_timeout,
        "redis.command_timeout",
        Duration::from_millis(50),
        Duration::from_secs(10),
    );
    let connect_timeout = duration_field(
        report,
        raw.connect_timeout,
        "redis.connect_timeout",
        Duration::from_secs(1),
        true,
    );
    let local_ttl = bounded_duration(
        report,
        raw.local_ttl,
        "redis.local_ttl",
        Duration::from_secs(5),
        Duration::from_secs(3600),
    );
    let compress_above = size_field(
        report,
        raw.compress_above,
        "redis.compress_above",
        1 << 10,
        0,
    );
    // Beyond u32 the breaker would never open anyway.
    let breaker_failures =
        count_field(report, raw.breaker_failures, "redis.breaker_failures", 5, 1)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let breaker_cooldown = duration_field(
        report,
        raw.breaker_cooldown,
        "redis.breaker_cooldown",
        Duration::from_secs(1),
        true,
    );
    let lease = raw.lease.unwrap_or(true);
    let lease_ttl = duration_field(
        report,
        raw.lease_ttl,
        "redis.lease_ttl",
        RedisConfig::default_lease_ttl(upstream_timeout.unwrap_or(Duration::from_secs(30))),
        true,
    );
    let retention_span = raw.fence_retention.as_ref().map(Spanned::span);
    let fence_retention = duration_field(
        report,
        raw.fence_retention,
        "redis.fence_retention",
        Duration::from_secs(300),
        true,
    );
    // A fill may last the upstream timeout: fences it must see may not be gone by its end.
    let fence_retention = match (fence_retention, upstream_timeout) {
        (Some(retention), Some(timeout)) if retention <= timeout => {
            let message = format!(
                "must be longer than upstream.timeout ({} <= {}{})",
                format_duration(retention),
                format_duration(timeout),
                if retention_span.is_some() {
                    ""
                } else {
                    "; 5m is the default"
                }
            );
            report.at(
                retention_span.unwrap_or(section),
                "redis.fence_retention",
                message,
            );
            None
        }
        (retention, _) => retention,
    };
    let replay_limit = count_field(report, raw.replay_limit, "redis.replay_limit", 10_000, 1);
    let (nodes, cluster) = nodes?;
    Some(RedisConfig {
        nodes,
        cluster,
        password: password?,
        prefix: prefix?,
        command_timeout: command_timeout?,
        connect_timeout: connect_timeout?,
        local_ttl: local_ttl?,
        compress_above: compress_above?,
        breaker_failures: breaker_failures?,
        breaker_cooldown: breaker_cooldown?,
        lease,
        lease_ttl: lease_ttl?,
        fence_retention: fence_retention?,
        replay_limit: replay_limit?,
    })
}
