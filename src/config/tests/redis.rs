//! Tests of `[redis]`: where Redis is, its password, the defaults and bounds, the store's
//! options, and that no password is ever printed.

use super::*;

fn redis(rest: &str) -> RedisConfig {
    parse(&with(&format!("[redis]\n{rest}")))
        .redis
        .expect("a [redis] section")
}

/// One problem of `[redis]\n{rest}`, placed in the file (line 3 is `[redis]`).
fn refused(rest: &str, expected: &str) {
    check(&with(&format!("[redis]\n{rest}")), &[expected]);
}

/// The node `url` should parse to.
fn node(
    tls: bool,
    host: &str,
    port: u16,
    user: Option<&str>,
    password: Option<&str>,
    db: u32,
) -> RedisNode {
    RedisNode {
        tls,
        host: host.to_string(),
        port,
        user: user.map(str::to_string),
        password: password.map(str::to_string),
        db,
    }
}

#[test]
fn absent_means_memory_tier_only() {
    assert_eq!(parse(MINIMAL).redis, None);
    assert!(!include_str!("../../../proxy.toml").contains("\n[redis]"));
}

#[test]
fn defaults_are_applied() {
    let r = redis("url = \"redis://127.0.0.1:6379/0\"\n");
    assert!(!r.cluster);
    assert_eq!(r.password, None);
    assert_eq!(r.prefix, "cachegate");
    assert_eq!(r.command_timeout, Duration::from_millis(50));
    assert_eq!(r.connect_timeout, Duration::from_secs(1));
    assert_eq!(r.local_ttl, Duration::from_secs(5));
    assert_eq!(r.compress_above, 1 << 10);
    assert_eq!(r.breaker_failures, 5);
    assert_eq!(r.breaker_cooldown, Duration::from_secs(1));
    assert!(r.lease);
    // The upstream timeout's default, 30s, within [1s, 60s].
    assert_eq!(r.lease_ttl, Duration::from_secs(30));
    assert_eq!(r.fence_retention, Duration::from_secs(300));
    assert_eq!(r.replay_limit, 10_000);
}

#[test]
fn every_key_can_be_set() {
    let r = redis(concat!(
        "url = \"rediss://cache:s3cret@redis.internal:6380/2\"\n",
        "prefix = \"shop.api-v2\"\n",
        "command_timeout = \"20ms\"\n",
        "connect_timeout = \"3s\"\n",
        "local_ttl = \"2s\"\n",
        "compress_above = \"4KiB\"\n",
        "breaker_failures = 3\n",
        "breaker_cooldown = \"5s\"\n",
        "lease = false\n",
        "lease_ttl = \"8s\"\n",
        "fence_retention = \"10m\"\n",
        "replay_limit = 500\n",
    ));
    assert_eq!(r.prefix, "shop.api-v2");
    assert_eq!(r.command_timeout, Duration::from_millis(20));
    assert_eq!(r.connect_timeout, Duration::from_secs(3));
    assert_eq!(r.local_ttl, Duration::from_secs(2));
    assert_eq!(r.compress_above, 4 << 10);
    assert_eq!(r.breaker_failures, 3);
    assert_eq!(r.breaker_cooldown, Duration::from_secs(5));
    assert!(!r.lease);
    assert_eq!(r.lease_ttl, Duration::from_secs(8));
    assert_eq!(r.fence_retention, Duration::from_secs(600));
    assert_eq!(r.replay_limit, 500);
    let n = &r.nodes[0];
    assert!(n.tls);
    assert_eq!(n.host, "redis.internal");
    assert_eq!(n.port, 6380);
    assert_eq!(n.user.as_deref(), Some("cache"));
    assert_eq!(n.password.as_deref(), Some("s3cret"));
    assert_eq!(n.db, 2);
}

#[test]
fn url_forms() {
    let cases = [
        (
            "redis://127.0.0.1",
            node(false, "127.0.0.1", 6379, None, None, 0),
            false,
        ),
        (
            "redis://Redis.Local:7000/",
            node(false, "redis.local", 7000, None, None, 0),
            false,
        ),
        (
            "rediss://r:6380/15",
            node(true, "r", 6380, None, None, 15),
            false,
        ),
        (
            "redis://:pw@r/1",
            node(false, "r", 6379, None, Some("pw"), 1),
            false,
        ),
        (
            "redis://app:p%40ss@r:1/0",
            node(false, "r", 1, Some("app"), Some("p%40ss"), 0),
            false,
        ),
        (
            "redis://[::1]:6390/4",
            node(false, "[::1]", 6390, None, None, 4),
            false,
        ),
        (
            "redis://[::1]",
            node(false, "[::1]", 6379, None, None, 0),
            false,
        ),
        (
            "redis+cluster://seed:7000",
            node(false, "seed", 7000, None, None, 0),
            true,
        ),
        (
            "rediss+cluster://u:p@seed:7000/0",
            node(true, "seed", 7000, Some("u"), Some("p"), 0),
            true,
        ),
    ];
    for (url, expected, cluster) in cases {
        let r = redis(&format!("url = \"{url}\"\n"));
        assert_eq!(r.nodes, [expected], "{url}");
        assert_eq!(r.cluster, cluster, "{url}");
    }
}

#[test]
fn url_problems_name_the_line_and_never_the_password() {
    let cases = [
        ("", "must not be empty"),
        ("127.0.0.1:6379", "not a Redis URL; expected e.g. \"redis://127.0.0.1:6379/0\" (redis://, rediss://, redis+cluster:// or rediss+cluster://)"),
        ("http://r:6379", "unsupported scheme \"http\"; use redis://, rediss://, redis+cluster:// or rediss+cluster://"),
        ("redis+sentinel://s:26379/mymaster", "Redis Sentinel is not supported; use a Redis Cluster or a managed endpoint"),
        ("unix:///run/redis.sock", "unix sockets are not supported"),
        ("redis://r/0?protocol=resp3", "the url may not have a query or a fragment"),
        ("redis://r#insecure", "the url may not have a query or a fragment"),
        ("redis://", "the url has no host"),
        ("redis://:6379", "the url has no host"),
        ("redis://r:0", "invalid port \"0\": must be a number from 1 to 65535"),
        ("redis://r:70000", "invalid port \"70000\": must be a number from 1 to 65535"),
        ("redis://r:port", "invalid port \"port\": must be a number from 1 to 65535"),
        ("redis://a b:1", "\"a b\" is not a host name or address"),
        ("redis://[::1", "an IPv6 address needs its closing ']'"),
        ("redis://[nope]:1", "\"[nope]\" is not an IPv6 address"),
        ("redis://r/db1", "the path must be a database number such as /0, not /db1"),
        ("redis://r/99999999999", "database number 99999999999 is too large"),
        ("redis+cluster://r/3", "a Redis Cluster has database 0 only, not 3; drop the /3"),
        ("redis://u:p@ss@r", "the user and password must be percent-encoded (e.g. '@' as %40, '/' as %2F, ':' as %3A)"),
        ("redis://u:pa/ss@r", "the user and password must be percent-encoded (e.g. '@' as %40, '/' as %2F, ':' as %3A)"),
        ("redis://u:p%zz@r", "the user and password must be percent-encoded (e.g. '@' as %40, '/' as %2F, ':' as %3A)"),
        ("redis://app@r", "the user \"app\" has no password; add it to the url or set password_env"),
    ];
    for (url, message) in cases {
        refused(
            &format!("url = \"{url}\"\n"),
            &format!("proxy.toml:4:7: redis.url: {message}"),
        );
        assert!(!message.contains("ss@"), "a password leaked: {message}");
    }
}

#[test]
fn url_or_nodes_exactly_one() {
    refused(
        "prefix = \"x\"\n",
        "proxy.toml:3:1: redis.url: missing required key (the redis:// address, or nodes = [...] for a cluster)",
    );
    refused(
        "url = \"redis://r\"\nnodes = [\"redis://a:7000\"]\n",
        "proxy.toml:5:9: redis.nodes: give either url or nodes, not both",
    );
}

#[test]
fn nodes_are_a_clusters_seeds() {
    let r = redis("nodes = [\"redis://a:7000\", \"redis://b:7001/0\", \"redis+cluster://c\"]\n");
    assert!(r.cluster);
    let hosts: Vec<String> = r
        .nodes
        .iter()
        .map(|n| format!("{}:{}", n.host, n.port))
        .collect();
    assert_eq!(hosts, ["a:7000", "b:7001", "c:6379"]);
    let cases = [
        ("[]", 9, "is empty; list the seed nodes of the cluster"),
        ("[\"redis://a\", \"redis://b/1\"]", 23, "a Redis Cluster has database 0 only, not 1; drop the /1"),
        ("[\"redis://a\", \"rediss://b\"]", 23, "mixes redis:// and rediss://; the nodes of a cluster use one"),
        ("[\"redis://a:1\", \"redis://A:1\"]", 25, "a:1 is listed twice"),
        ("[\"redis://a\", \"ftp://b\"]", 23, "unsupported scheme \"ftp\"; use redis://, rediss://, redis+cluster:// or rediss+cluster://"),
    ];
    for (list, col, message) in cases {
        refused(
            &format!("nodes = {list}\n"),
            &format!("proxy.toml:4:{col}: redis.nodes: {message}"),
        );
    }
    // Every bad node is reported, not only the first.
    check(
        &with("[redis]\nnodes = [\"redis://a/1\", \"redis://b/2\"]\n"),
        &[
            "proxy.toml:4:10: redis.nodes: a Redis Cluster has database 0 only, not 1; drop the /1",
            "proxy.toml:4:25: redis.nodes: a Redis Cluster has database 0 only, not 2; drop the /2",
        ],
    );
}

#[test]
fn password_env_rules() {
    let r = redis("url = \"redis://app@r\"\npassword_env = \"REDIS_PASSWORD\"\n");
    assert_eq!(
        r.password,
        Some(SecretSource::Env("REDIS_PASSWORD".to_string()))
    );
    let r = redis("nodes = [\"redis://a\", \"redis://b\"]\npassword_env = \"P\"\n");
    assert_eq!(r.password, Some(SecretSource::Env("P".to_string())));
    refused(
        "url = \"redis://r\"\npassword_env = \"REDIS PASSWORD\"\n",
        "proxy.toml:5:16: redis.password_env: \"REDIS PASSWORD\" is not an environment variable name (letters, digits and _)",
    );
    refused(
        "url = \"redis://:pw@r\"\npassword_env = \"P\"\n",
        "proxy.toml:5:16: redis.password_env: the url carries a password already; give it in one place only",
    );
    refused(
        "nodes = [\"redis://a\", \"redis://:pw@b\"]\npassword_env = \"P\"\n",
        "proxy.toml:5:16: redis.password_env: the url carries a password already; give it in one place only",
    );
    refused(
        "nodes = [\"redis://a\", \"redis://app@b\"]\n",
        "proxy.toml:4:23: redis.nodes: the user \"app\" has no password; add it to the url or set password_env",
    );
}

#[test]
fn prefix_charset() {
    assert_eq!(
        redis("url = \"redis://r\"\nprefix = \"a.B_c-9\"\n").prefix,
        "a.B_c-9"
    );
    for bad in ["", "a b", "a:b", "{t}", &"x".repeat(65)] {
        refused(
            &format!("url = \"redis://r\"\nprefix = \"{bad}\"\n"),
            &format!("proxy.toml:5:10: redis.prefix: invalid prefix \"{bad}\": use 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-'"),
        );
    }
}

#[test]
fn durations_and_counts_are_bounded() {
    let cases = [
        ("command_timeout = \"0s\"", 19, "must be greater than zero"),
        ("command_timeout = \"11s\"", 19, "must be at most 10s"),
        ("command_timeout = 50", 19, "invalid duration \"50\": a unit is required, e.g. \"50s\" or \"50m\""),
        ("connect_timeout = \"0ms\"", 19, "must be greater than zero"),
        ("local_ttl = \"0s\"", 13, "must be greater than zero"),
        ("local_ttl = \"1h1s\"", 13, "must be at most 1h"),
        ("breaker_failures = 0", 20, "must be at least 1, not 0"),
        ("breaker_cooldown = \"0s\"", 20, "must be greater than zero"),
        ("lease_ttl = \"0s\"", 13, "must be greater than zero"),
        ("replay_limit = 0", 16, "must be at least 1, not 0"),
        ("compress_above = \"big\"", 18, "invalid size \"big\": expected a number of bytes, optionally followed by B, KB, MB, GB, KiB, MiB or GiB"),
        ("lease = \"yes\"", 9, "invalid type: string \"yes\", expected true or false"),
    ];
    for (line, col, message) in cases {
        let key = line.split(' ').next().unwrap_or_default();
        refused(
            &format!("url = \"redis://r\"\n{line}\n"),
            &format!("proxy.toml:5:{col}: redis.{key}: {message}"),
        );
    }
    let r = redis(
        "url = \"redis://r\"\ncommand_timeout = \"10s\"\nlocal_ttl = \"1h\"\ncompress_above = 0\n",
    );
    assert_eq!(r.command_timeout, Duration::from_secs(10));
    assert_eq!(r.local_ttl, Duration::from_secs(3600));
    assert_eq!(r.compress_above, 0, "zero compresses every body");
}

#[test]
fn lease_ttl_follows_the_upstream_timeout_within_bounds() {
    for (timeout, lease) in [("500ms", 1), ("10s", 10), ("2m", 60)] {
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:8000\"\ntimeout = \"{timeout}\"\n[redis]\nurl = \"redis://r\"\n"
        );
        let r = parse(&text).redis.expect("[redis]");
        assert_eq!(r.lease_ttl, Duration::from_secs(lease), "{timeout}");
    }
    assert_eq!(
        RedisConfig::default_lease_ttl(Duration::from_millis(1)),
        Duration::from_secs(1)
    );
}

#[test]
fn fences_outlive_the_upstream_timeout() {
    refused(
        "url = \"redis://r\"\nfence_retention = \"30s\"\n",
        "proxy.toml:5:19: redis.fence_retention: must be longer than upstream.timeout (30s <= 30s)",
    );
    check(
        "[upstream]\nurl = \"http://127.0.0.1:8000\"\ntimeout = \"10m\"\n[redis]\nurl = \"redis://r\"\n",
        &["proxy.toml:4:1: redis.fence_retention: must be longer than upstream.timeout (5m <= 10m; 5m is the default)"],
    );
    let ok = "[upstream]\nurl = \"http://127.0.0.1:8000\"\ntimeout = \"10m\"\n[redis]\nurl = \"redis://r\"\nfence_retention = \"11m\"\n";
    assert_eq!(
        parse(ok).redis.map(|r| r.fence_retention),
        Some(Duration::from_secs(660))
    );
}

#[test]
fn unknown_and_mistyped_keys_are_reported() {
    check(
        &with("[redis]\nurl = \"redis://r\"\npassword = \"x\"\nnodes = \"redis://a\"\n"),
        &[
            "proxy.toml:5:1: redis.password: unknown key; expected one of `url`, `nodes`, `password_env`, `prefix`, `command_timeout`, `connect_timeout`, `local_ttl`, `compress_above`, `breaker_failures`, `breaker_cooldown`, `lease`, `lease_ttl`, `fence_retention`, `replay_limit`",
            "proxy.toml:6:9: redis.nodes: invalid type: string \"redis://a\", expected a sequence",
        ],
    );
    check(
        &format!("redis = \"redis://r\"\n{MINIMAL}"),
        &["proxy.toml:1:9: redis: expected a table"],
    );
}

#[test]
fn shared_options_use_plain_schemes_and_the_env_password() {
    let r = redis("url = \"redis+cluster://seed:7000\"\n");
    let opts = r.shared_options(None);
    assert_eq!(opts.urls, ["redis://seed:7000/0"]);
    assert!(opts.cluster);
    let r = redis(concat!(
        "nodes = [\"rediss+cluster://app@a:7000\", \"rediss://app@b:7001\", \"rediss://[::1]:7002\"]\n",
        "password_env = \"P\"\nprefix = \"p\"\ncompress_above = \"2KiB\"\n",
    ));
    let opts = r.shared_options(Some("p@ss:w/rd"));
    assert_eq!(
        opts.urls,
        [
            "rediss://app:p%40ss%3Aw%2Frd@a:7000/0",
            "rediss://app:p%40ss%3Aw%2Frd@b:7001/0",
            "rediss://:p%40ss%3Aw%2Frd@[::1]:7002/0",
        ]
    );
    assert_eq!(
        opts,
        crate::store::shared::SharedOptions {
            urls: opts.urls.clone(),
            cluster: true,
            prefix: "p".to_string(),
            command_timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(1),
            compress_above: 2 << 10,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
            fence_retention: Duration::from_secs(300),
            replay_limit: 10_000,
        }
    );
    let r = redis("url = \"redis://u:p%40w@r:1/3\"\n");
    assert_eq!(r.shared_options(None).urls, ["redis://u:p%40w@r:1/3"]);
    assert!(!r.shared_options(None).cluster);
}

#[test]
fn passwords_are_masked_in_every_printout() {
    let config = parse(&with("[redis]\nurl = \"rediss://app:hunter2@r:6380/1\"\n"));
    let r = config.redis.as_ref().expect("[redis]");
    assert_eq!(r.nodes[0].to_string(), "rediss://app:***@r:6380/1");
    let printed = [config.to_string(), format!("{config:?}"), format!("{r:?}")];
    for text in printed {
        assert!(!text.contains("hunter2"), "{text}");
    }
    let text = config.to_string();
    assert!(
        text.contains("redis:    rediss://app:***@r:6380/1, prefix cachegate, command timeout 50ms, connect timeout 1s, local ttl 5s, breaker 5 failures/1s, lease 30s, fences kept 5m, replay up to 10000 purges"),
        "{text}"
    );
    let cluster = parse(&with(
        "[redis]\nnodes = [\"redis://a:7000\", \"redis://b:7001\"]\npassword_env = \"P\"\nlease = false\n",
    ))
    .to_string();
    assert!(
        cluster.contains(
            "redis:    cluster redis://a:7000/0 redis://b:7001/0 (password from env P), "
        ),
        "{cluster}"
    );
    assert!(cluster.contains("lease off"), "{cluster}");
    let plain = parse(MINIMAL).to_string();
    assert!(
        plain.contains("redis:    off (no [redis] section; memory tier only)"),
        "{plain}"
    );
}

/// The commented-out `[redis]` of the shipped file, uncommented, parses: the example never rots.
#[test]
fn shipped_redis_example_parses() {
    let shipped = include_str!("../../../proxy.toml");
    let block: Vec<&str> = shipped
        .lines()
        .skip_while(|line| *line != "# [redis]")
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .collect();
    assert!(block.len() > 10, "{block:?}");
    let text = format!(
        "{}\n{}\n",
        include_str!("../../../proxy.toml"),
        block.join("\n")
    );
    let r = parse(&text).redis.expect("the example's [redis]");
    assert_eq!(r.nodes[0].to_string(), "redis://127.0.0.1:6379/0");
    assert_eq!(r.lease_ttl, Duration::from_secs(30));
    let keys = [
        "url",
        "nodes",
        "password_env",
        "prefix",
        "command_timeout",
        "connect_timeout",
        "local_ttl",
        "compress_above",
        "breaker_failures",
        "breaker_cooldown",
        "lease",
        "lease_ttl",
        "fence_retention",
        "replay_limit",
    ];
    // Alternatives (nodes, password_env, lease_ttl) stay commented out inside the example.
    for key in keys {
        let explained = block.iter().any(|line| {
            line.trim_start_matches("# ")
                .starts_with(&format!("{key} = "))
        });
        assert!(explained, "proxy.toml does not explain redis.{key}");
    }
}
