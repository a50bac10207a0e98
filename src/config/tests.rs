//! Tests for configuration parsing, defaults and the problem report.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, Method};

use super::*;
use crate::auth::algorithm::JwtAlgorithm;
use crate::policy::route::{Anonymous, Scope, TagTemplate, TenantSource};

const MINIMAL: &str = "[upstream]\nurl = \"http://127.0.0.1:8000\"\n";

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
    let config = parse(include_str!("../../proxy.toml"));
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
    assert_eq!(config.log, None);
    assert!(config.routes.routes().is_empty());
}

#[test]
fn route_defaults_come_from_cache() {
    let config = parse(&with(
        "[cache]\ndefault_ttl = \"1m\"\ntenant = { header = \"X-Org-Id\" }\n[[route]]\npath = \"/a/\"\n",
    ));
    let r = &config.routes.routes()[0];
    assert_eq!(r.index, 0);
    assert_eq!(r.ttl, Duration::from_secs(60));
    assert!(r.cache);
    assert_eq!(r.methods, None);
    assert_eq!(
        r.tenant,
        TenantSource::Header(HeaderName::from_static("x-org-id"))
    );
}

#[test]
fn listen_accepts_a_list_and_hosts_are_lower_cased() {
    let config = parse(&with(
        "[server]\nlisten = [\"127.0.0.1:9000\", \"[::1]:9000\"]\nhosts = [\"API.example.com:8080\"]\nworkers = 4\n",
    ));
    assert_eq!(config.server.listen.len(), 2);
    assert_eq!(
        config.server.hosts.as_deref(),
        Some(&["api.example.com:8080".to_string()][..])
    );
    assert_eq!(config.server.workers, Some(4));
}

#[test]
fn tenant_forms() {
    let cases = [
        ("\"none\"", TenantSource::None),
        (
            "{ header = \"X-Org-Id\" }",
            TenantSource::Header(HeaderName::from_static("x-org-id")),
        ),
        (
            "{ query = \"org\" }",
            TenantSource::Query("org".to_string()),
        ),
        ("{ host = \"subdomain\" }", TenantSource::Host),
    ];
    for (text, expected) in cases {
        let config = parse(&with(&format!("[cache]\ntenant = {text}\n")));
        assert_eq!(config.cache.tenant, expected, "{text}");
    }
    let config = parse(&with(
        "[[route]]\npath = \"/orgs/{org}/x/\"\ntenant = { path = \"org\" }\n",
    ));
    assert_eq!(
        config.routes.routes()[0].tenant,
        TenantSource::Path("org".to_string())
    );
}

#[test]
fn resource_defaults_give_tags() {
    let config = parse(&with(concat!(
        "[[route]]\npath = \"/api/faculty/\"\nresource = \"faculty\"\n",
        "[[route]]\npath = \"/api/faculty/{id}/\"\nresource = \"faculty\"\n",
        "tags = [\"department\", \"faculty:*\"]\ninvalidates = [\"department\"]\n",
    )));
    let list = &config.routes.routes()[0];
    assert_eq!(tags(&list.entry_tags), ["faculty", "faculty:*"]);
    assert_eq!(tags(&list.write_invalidates), ["faculty"]);
    let detail = &config.routes.routes()[1];
    assert_eq!(
        tags(&detail.entry_tags),
        ["faculty:{id}", "faculty:*", "department"]
    );
    assert_eq!(
        tags(&detail.write_invalidates),
        ["faculty:{id}", "faculty", "department"]
    );
}

#[test]
fn methods_and_vary_are_parsed() {
    let config = parse(&with(
        "[[route]]\npath = \"/a/\"\nmethods = [\"GET\", \"HEAD\", \"GET\"]\nvary = [\"Accept-Language\"]\n",
    ));
    let r = &config.routes.routes()[0];
    assert_eq!(r.methods, Some(vec![Method::GET, Method::HEAD]));
    assert_eq!(r.vary, [HeaderName::from_static("accept-language")]);
}

#[test]
fn first_match_wins_and_method_restricted_route_is_skipped() {
    let config = parse(&with(concat!(
        "[[route]]\npath = \"/api/faculty/{id}/\"\nmethods = [\"GET\"]\n",
        "[[route]]\npath = \"/api/faculty/{pk}/\"\ncache = false\n",
        "[[route]]\npath = \"/api/{*rest}\"\n",
    )));
    let find = |m: Method, p: &str| config.routes.find(&m, p).map(|f| f.route.index);
    assert_eq!(find(Method::GET, "/api/faculty/1/"), Some(0));
    assert_eq!(find(Method::PUT, "/api/faculty/1/"), Some(1));
    assert_eq!(find(Method::GET, "/api/faculty/"), Some(2));
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
            "proxy.toml:4:1: server.lisen: unknown key; expected one of `listen`, `workers`, `header_read_timeout`, `max_header_bytes`, `max_connections`, `hosts`, `shutdown_grace`, `idle_timeout`",
            "proxy.toml:5:1: server.colour: unknown key; expected one of `listen`, `workers`, `header_read_timeout`, `max_header_bytes`, `max_connections`, `hosts`, `shutdown_grace`, `idle_timeout`",
            "proxy.toml:8:1: route[0].ttl_s: unknown key; expected one of `path`, `methods`, `ttl`, `cache`, `tenant`, `vary`, `resource`, `tags`, `invalidates`, `scope`, `anonymous`",
            "proxy.toml:9:2: extra: unknown section; expected one of server, upstream, cache, log, admin, webhook, auth, route",
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
fn bad_duration_names_route_and_line() {
    let mut text = with("[[route]]\npath = \"/a/\"\n[[route]]\npath = \"/b/\"\n[[route]]\n");
    text.push_str("path = \"/c/\"\n\n\n\n\n\n\nttl = \"5 minutes\"\n");
    check(
        &text,
        &["proxy.toml:15:7: route[2].ttl: invalid duration \"5 minutes\": expected a number followed by ms, s, m, h or d"],
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
fn zero_ttl_on_cached_route_is_refused() {
    check(
        &with("[[route]]\npath = \"/a/\"\nttl = \"0s\"\n[[route]]\npath = \"/b/\"\nttl = \"0s\"\ncache = false\n"),
        &["proxy.toml:5:7: route[0].ttl: must be greater than zero"],
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
fn object_size_must_be_below_memory() {
    check(
        &with("[cache]\nmax_memory = \"1MiB\"\nmax_object_size = \"1MiB\"\n"),
        &["proxy.toml:5:19: cache.max_object_size: must be smaller than max_memory (1MiB >= 1MiB)"],
    );
}

#[test]
fn bad_statuses_are_reported() {
    check(
        &with("[cache]\ncacheable_statuses = [200, 99, 600]\n"),
        &[
            "proxy.toml:4:28: cache.cacheable_statuses: invalid status 99: must be between 100 and 599",
            "proxy.toml:4:32: cache.cacheable_statuses: invalid status 600: must be between 100 and 599",
        ],
    );
}

#[test]
fn bad_header_names_are_reported() {
    check(
        &with("[cache]\ntenant = { header = \"X Org\" }\n[[route]]\npath = \"/a/\"\nvary = [\"Accept\", \"Connection\"]\n"),
        &[
            "proxy.toml:4:10: cache.tenant: invalid tenant header name \"X Org\"",
            "proxy.toml:7:19: route[0].vary: \"Connection\" is a hop-by-hop header and cannot be used as a vary header",
        ],
    );
}

#[test]
fn bad_tenant_shapes_are_reported() {
    check(
        &with("[cache]\ntenant = { header = \"a\", query = \"b\" }\n[[route]]\npath = \"/a/\"\ntenant = { host = \"apex\" }\n"),
        &[
            "proxy.toml:4:10: cache.tenant: invalid tenant: expected \"none\" or one of { header = \"...\" }, { path = \"...\" }, { query = \"...\" }, { host = \"subdomain\" }",
            "proxy.toml:7:10: route[0].tenant: invalid tenant host \"apex\": the only accepted value is \"subdomain\"",
        ],
    );
}

#[test]
fn bad_pattern_is_reported() {
    check(
        &with("[[route]]\npath = \"/a/{id\"\n[[route]]\npath = \"b/\"\n"),
        &[
            "proxy.toml:4:8: route[0].path: invalid pattern \"/a/{id\": unclosed '{'",
            "proxy.toml:6:8: route[1].path: invalid pattern \"b/\": pattern must start with '/'",
        ],
    );
}

#[test]
fn unknown_capture_in_tag_template() {
    check(
        &with("[[route]]\npath = \"/api/faculty/{id}/\"\ntags = [\"faculty:{x}\"]\n"),
        &["proxy.toml:5:9: route[0].tags: unknown capture {x} in tag template \"faculty:{x}\"; the pattern captures: id"],
    );
}

#[test]
fn tenant_path_capture_must_be_in_the_pattern() {
    check(
        &with("[cache]\ntenant = { path = \"org\" }\n[[route]]\npath = \"/orgs/{org}/a/\"\n[[route]]\npath = \"/health\"\n[[route]]\npath = \"/x/{id}\"\ntenant = { path = \"org\" }\n"),
        &[
            "proxy.toml:8:8: route[1].tenant: tenant capture {org} (from [cache].tenant) is not in the pattern \"/health\"; capture it or set tenant = \"none\" on this route",
            "proxy.toml:11:10: route[2].tenant: tenant capture {org} (from the route's tenant) is not in the pattern \"/x/{id}\"; capture it or set tenant = \"none\" on this route",
        ],
    );
}

#[test]
fn overlapping_pattern_names_both_routes() {
    check(
        &with(concat!(
            "[[route]]\npath = \"/api/faculty/\"\n",
            "[[route]]\npath = \"/api/faculty/{id}/\"\n",
            "[[route]]\npath = \"/api/faculty/me/\"\nmethods = [\"GET\"]\n",
            "[[route]]\npath = \"/api/faculty/{pk}/\"\n",
        )),
        &[
            "proxy.toml:8:8: route[2].path: \"/api/faculty/me/\" can never match: route[1] \"/api/faculty/{id}/\" (line 6) matches every path it does",
            "proxy.toml:11:8: route[3].path: \"/api/faculty/{pk}/\" can never match: route[1] \"/api/faculty/{id}/\" (line 6) matches every path it does",
        ],
    );
}

#[test]
fn partial_overlap_is_fine() {
    let config = parse(&with(concat!(
        "[[route]]\npath = \"/api/faculty/{id}/\"\nmethods = [\"GET\"]\n",
        "[[route]]\npath = \"/api/faculty/me/\"\n",
    )));
    assert_eq!(config.routes.routes().len(), 2);
}

#[test]
fn bad_methods_are_reported() {
    check(
        &with("[[route]]\npath = \"/a/\"\nmethods = [\"get\", \"GET\"]\n[[route]]\npath = \"/b/\"\nmethods = []\n"),
        &[
            "proxy.toml:5:12: route[0].methods: invalid method \"get\": methods are upper-case names such as \"GET\"",
            "proxy.toml:8:11: route[1].methods: is empty; leave it out to match every method",
        ],
    );
}

#[test]
fn upstream_url_problems() {
    let cases = [
        ("https://api:443", "https upstreams are not supported yet"),
        (
            "http://api:8000/v1",
            "the url may not have a path (\"/v1\"); request paths are forwarded as they are",
        ),
        ("http://api:8000/?a=1", "the url may not have a query"),
        ("ftp://api", "unsupported scheme \"ftp\"; use http://"),
        (
            "/only/a/path",
            "\"/only/a/path\" is not an absolute url; expected e.g. \"http://127.0.0.1:8000\"",
        ),
        ("http://", "invalid url \"http://\": empty string"),
    ];
    for (url, message) in cases {
        let text = format!("[upstream]\nurl = \"{url}\"\n");
        check(
            &text,
            &[&format!("proxy.toml:2:7: upstream.url: {message}")],
        );
    }
}

#[test]
fn missing_upstream_is_reported() {
    check(
        "[server]\nlisten = \"127.0.0.1:1\"\n",
        &["proxy.toml: upstream.url: missing required key (the http:// address of the API behind the proxy)"],
    );
    check(
        "[upstream]\ntimeout = \"1s\"\n",
        &["proxy.toml:1:1: upstream.url: missing required key"],
    );
}

#[test]
fn listen_must_be_a_socket_address() {
    check(
        &with("[server]\nlisten = \"localhost:80\"\n"),
        &["proxy.toml:4:10: server.listen: \"localhost:80\" is not a socket address; expected e.g. \"0.0.0.0:8080\" or \"[::]:8080\""],
    );
}

#[test]
fn namespace_charset() {
    check(
        &with("[cache]\nnamespace = \"c g\"\n"),
        &["proxy.toml:4:13: cache.namespace: invalid namespace \"c g\": use 1 to 32 of A-Z, a-z, 0-9, '_' and '-'"],
    );
}

#[test]
fn route_must_be_an_array_of_tables() {
    check(
        &with("[route]\npath = \"/a\"\n"),
        &["proxy.toml:3:1: route: expected an array of tables; write each route as [[route]]"],
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

#[test]
fn display_summarizes_config() {
    let text = Config::embedded_default().to_string();
    assert!(text.contains("upstream: http://127.0.0.1:8000/"), "{text}");
    assert!(text.contains("/api/faculty/{id}/"), "{text}");
}

#[test]
fn admin_and_webhook_have_safe_defaults() {
    let config = Config::from_toml(&with("[admin]\n"), "proxy.toml").unwrap();
    let admin = config.admin.unwrap();
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(
        admin.token,
        SecretSource::Env("CACHEGATE_ADMIN_TOKEN".into())
    );
    assert_eq!(admin.warm_concurrency, 8);
    let hook = config.webhook;
    assert_eq!(hook.prefix, "/_cachegate/");
    assert_eq!(hook.path, "/_cachegate/invalidate");
    assert_eq!(
        hook.secret,
        SecretSource::Env("CACHEGATE_WEBHOOK_SECRET".into())
    );
    assert_eq!(hook.replay_window, Duration::from_secs(300));
    // Without an [admin] section there is no admin listener.
    assert!(Config::from_toml(&with(""), "proxy.toml")
        .unwrap()
        .admin
        .is_none());
}

#[test]
fn admin_and_webhook_problems_are_reported() {
    check(
        &with("[admin]\nlisten = \"nowhere\"\ntoken_env = \"A\"\ntoken_file = \"/f\"\n[webhook]\nprefix = \"/x/\"\npath = \"/y/invalidate\"\nsecret_env = \"BAD NAME\"\nreplay_window = \"0s\"\n"),
        &[
            "proxy.toml:4:10: admin.listen: \"nowhere\" is not a socket address; expected e.g. \"127.0.0.1:9090\"",
            "proxy.toml:6:14: admin.token_file: give either token_env or token_file, not both",
            "proxy.toml:9:8: webhook.path: \"/y/invalidate\" must be under the reserved prefix \"/x/\"",
            "proxy.toml:10:14: webhook.secret_env: \"BAD NAME\" is not an environment variable name (letters, digits and _)",
            "proxy.toml:11:17: webhook.replay_window: must be greater than zero",
        ],
    );
}

const JWT_AUTH: &str = "[auth]\n[auth.jwt]\nhs256_secret_env = \"JWT_SECRET\"\n";

#[test]
fn auth_full_section_parses() {
    let config = parse(&with(concat!(
        "[auth]\n",
        "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\", \"10.0.0.0/8\"]\n",
        "user_header = \"X-User-Id\"\n",
        "key_secret_file = \"/run/secrets/key\"\n",
        "[auth.jwt]\n",
        "jwks_file = \"/etc/cachegate/jwks.json\"\n",
        "algorithms = [\"RS256\", \"EdDSA\", \"RS256\"]\n",
        "tenant_claim = \"org.id\"\n",
        "user_claim = \"uid\"\n",
        "issuer = \"https://auth.example.com\"\n",
        "audience = [\"api\", \"web\"]\n",
        "leeway = \"10s\"\n",
        "[auth.introspect]\n",
        "path = \"/api/auth/me/\"\n",
        "tenant_field = \"organization.id\"\n",
        "user_field = \"pk\"\n",
        "ttl = \"2m\"\n",
        "credential_headers = [\"Cookie\"]\n",
        "timeout = \"1s\"\n",
    )));
    let auth = config.auth.expect("auth section");
    let nets: Vec<String> = auth
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "127.0.0.1/32"]);
    assert_eq!(auth.user_header, Some(HeaderName::from_static("x-user-id")));
    assert_eq!(
        auth.key_secret,
        SecretSource::File("/run/secrets/key".into())
    );
    let jwt = auth.jwt.expect("jwt");
    assert_eq!(
        jwt.keys,
        JwtKeySource::JwksFile("/etc/cachegate/jwks.json".into())
    );
    assert_eq!(jwt.algorithms, [JwtAlgorithm::RS256, JwtAlgorithm::EdDSA]);
    assert_eq!(jwt.tenant_claim, "org.id");
    assert_eq!(jwt.user_claim, "uid");
    assert_eq!(jwt.issuer, ["https://auth.example.com"]);
    assert_eq!(jwt.audience, ["api", "web"]);
    assert_eq!(jwt.leeway, Duration::from_secs(10));
    let i = auth.introspect.expect("introspect");
    assert_eq!(i.path, "/api/auth/me/");
    assert_eq!(i.tenant_field, "organization.id");
    assert_eq!(i.user_field, "pk");
    assert_eq!(i.ttl, Duration::from_secs(120));
    assert_eq!(i.credential_headers, [http::header::COOKIE]);
    assert_eq!(i.timeout, Duration::from_secs(1));
}

#[test]
fn auth_defaults_are_applied() {
    let config = parse(&with(concat!(
        "[auth.jwt]\nhs256_secret_env = \"JWT_SECRET\"\n",
        "[auth.introspect]\npath = \"/me/\"\ntenant_field = \"org\"\n",
    )));
    let auth = config.auth.expect("auth section");
    assert!(auth.trusted_proxies.is_empty());
    assert_eq!(auth.user_header, None);
    assert_eq!(
        auth.key_secret,
        SecretSource::Env("CACHEGATE_KEY_SECRET".into())
    );
    let jwt = auth.jwt.expect("jwt");
    assert_eq!(
        jwt.keys,
        JwtKeySource::HsSecret(SecretSource::Env("JWT_SECRET".into()))
    );
    assert!(jwt.algorithms.is_empty());
    assert_eq!(
        (jwt.tenant_claim.as_str(), jwt.user_claim.as_str()),
        ("org", "sub")
    );
    assert!(jwt.issuer.is_empty() && jwt.audience.is_empty());
    assert_eq!(jwt.leeway, Duration::from_secs(30));
    let i = auth.introspect.expect("introspect");
    assert_eq!(i.user_field, "id");
    assert_eq!(i.ttl, Duration::from_secs(60));
    assert_eq!(
        i.credential_headers,
        [http::header::AUTHORIZATION, http::header::COOKIE]
    );
    assert_eq!(i.timeout, Duration::from_secs(5));
    assert_eq!(config.cache.scope, None);
}

#[test]
fn jwt_key_sources() {
    let cases = [
        (
            "hs_secret_file = \"/s\"",
            JwtKeySource::HsSecret(SecretSource::File("/s".into())),
        ),
        (
            "public_key_file = \"/k.pem\"",
            JwtKeySource::PublicKeyFile("/k.pem".into()),
        ),
        (
            "jwks_file = \"/j.json\"",
            JwtKeySource::JwksFile("/j.json".into()),
        ),
    ];
    for (line, expected) in cases {
        let config = parse(&with(&format!("[auth.jwt]\n{line}\n")));
        assert_eq!(
            config.auth.and_then(|a| a.jwt).map(|j| j.keys),
            Some(expected)
        );
    }
}

#[test]
fn auth_needs_a_source() {
    check(
        &with("[auth]\nkey_secret_env = \"K\"\n"),
        &["proxy.toml:3:1: auth: needs at least one of [auth.jwt], [auth.introspect] or trusted_proxies"],
    );
}

#[test]
fn auth_problems_are_reported_at_their_keys() {
    check(
        &with(concat!(
            "[auth]\n",
            "trusted_proxies = [\"10.1.0.0/8\", \"nope\"]\n",
            "user_header = \"Connection\"\n",
            "key_secret_env = \"K\"\nkey_secret_file = \"/k\"\n",
            "colour = 1\n",
        )),
        &[
            "proxy.toml:4:20: auth.trusted_proxies: \"10.1.0.0/8\" has host bits set; the network is 10.0.0.0/8",
            "proxy.toml:4:34: auth.trusted_proxies: \"nope\" is not an IP address or network",
            "proxy.toml:5:15: auth.user_header: \"Connection\" is a hop-by-hop header and cannot be used as a user header",
            "proxy.toml:7:19: auth.key_secret_file: give either key_secret_env or key_secret_file, not both",
            "proxy.toml:8:1: auth.colour: unknown key; expected one of `trusted_proxies`, `user_header`, `key_secret_env`, `key_secret_file`",
        ],
    );
}

#[test]
fn user_header_needs_trusted_proxies() {
    check(
        &with("[auth]\nuser_header = \"X-User-Id\"\n[auth.jwt]\njwks_file = \"/j\"\n"),
        &["proxy.toml:4:15: auth.user_header: is only believed from trusted proxies; list them in auth.trusted_proxies"],
    );
}

#[test]
fn jwt_problems_are_reported_at_their_keys() {
    check(
        &with(concat!(
            "[auth.jwt]\n",
            "hs256_secret_env = \"JWT SECRET\"\n",
            "algorithms = [\"HS256\", \"RS256\", \"hs512\"]\n",
            "tenant_claim = \"org..id\"\n",
            "issuer = []\n",
            "audience = 3\n",
            "leeway = 30\n",
            "secret = \"x\"\n",
        )),
        &[
            "proxy.toml:4:20: auth.jwt.hs256_secret_env: \"JWT SECRET\" is not an environment variable name (letters, digits and _)",
            "proxy.toml:5:33: auth.jwt.algorithms: unknown algorithm \"hs512\"; expected one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
            "proxy.toml:6:16: auth.jwt.tenant_claim: invalid field path \"org..id\": use a name or dotted names such as \"organization.id\"",
            "proxy.toml:7:10: auth.jwt.issuer: is empty; leave it out to skip the check",
            "proxy.toml:8:12: auth.jwt.audience: expected a string or a list of strings",
            "proxy.toml:9:10: auth.jwt.leeway: invalid duration \"30\": a unit is required, e.g. \"30s\" or \"30m\"",
            "proxy.toml:10:1: auth.jwt.secret: unknown key; expected one of `hs256_secret_env`, `hs_secret_file`, `public_key_file`, `jwks_file`, `algorithms`, `tenant_claim`, `user_claim`, `issuer`, `audience`, `leeway`",
        ],
    );
}

#[test]
fn jwt_needs_exactly_one_key() {
    check(
        &with("[auth.jwt]\ntenant_claim = \"org\"\n"),
        &["proxy.toml:3:1: auth.jwt: needs a key: give one of hs256_secret_env, hs_secret_file, public_key_file or jwks_file"],
    );
    check(
        &with("[auth.jwt]\npublic_key_file = \"/k.pem\"\njwks_file = \"/j.json\"\n"),
        &["proxy.toml:5:13: auth.jwt.jwks_file: give only one of hs256_secret_env, hs_secret_file, public_key_file or jwks_file, not both public_key_file and jwks_file"],
    );
}

#[test]
fn algorithms_must_fit_the_key_source() {
    check(
        &with("[auth.jwt]\nhs_secret_file = \"/s\"\nalgorithms = [\"HS512\", \"RS256\"]\n"),
        &["proxy.toml:5:24: auth.jwt.algorithms: RS256 needs a public key; an HMAC secret verifies HS256, HS384 and HS512 only"],
    );
    check(
        &with("[auth.jwt]\npublic_key_file = \"/k.pem\"\nalgorithms = [\"HS256\"]\n"),
        &["proxy.toml:5:15: auth.jwt.algorithms: HS256 needs a shared secret; a public key verifies RS*, PS*, ES* and EdDSA only"],
    );
}

#[test]
fn introspect_problems_are_reported_at_their_keys() {
    check(
        &with(concat!(
            "[auth.introspect]\n",
            "path = \"api/me\"\n",
            "user_field = \".id\"\n",
            "ttl = \"0s\"\n",
            "credential_headers = [\"Bad Header\"]\n",
        )),
        &["proxy.toml:3:1: auth.introspect.tenant_field: missing required key"],
    );
    check(
        &with(concat!(
            "[auth.introspect]\n",
            "path = \"api/me\"\n",
            "tenant_field = \"org\"\n",
            "user_field = \".id\"\n",
            "ttl = \"0s\"\n",
            "credential_headers = [\"Bad Header\"]\n",
            "timeout = \"soon\"\n",
        )),
        &[
            "proxy.toml:4:8: auth.introspect.path: \"api/me\" must be a path on the upstream starting with '/', e.g. \"/api/auth/me/\"",
            "proxy.toml:6:14: auth.introspect.user_field: invalid field path \".id\": use a name or dotted names such as \"organization.id\"",
            "proxy.toml:7:7: auth.introspect.ttl: must be greater than zero",
            "proxy.toml:8:23: auth.introspect.credential_headers: invalid credential header name \"Bad Header\"",
            "proxy.toml:9:11: auth.introspect.timeout: invalid duration \"soon\": expected a number followed by ms, s, m, h or d",
        ],
    );
}

#[test]
fn scope_resolution() {
    let config = parse(&with(concat!(
        "[cache]\ntenant = { header = \"X-Org-Id\" }\n",
        "[[route]]\npath = \"/a/\"\n",
        "[[route]]\npath = \"/b/\"\ntenant = \"none\"\n",
        "[[route]]\npath = \"/c/\"\nscope = \"public\"\n",
        "[[route]]\npath = \"/d/\"\nscope = \"tenant\"\nanonymous = \"pass\"\n",
    )));
    let got: Vec<(Scope, bool, Anonymous)> = config
        .routes
        .routes()
        .iter()
        .map(|r| (r.scope, r.scope_declared, r.anonymous))
        .collect();
    assert_eq!(
        got,
        [
            (Scope::Tenant, false, Anonymous::Deny),
            (Scope::Public, false, Anonymous::Deny),
            (Scope::Public, true, Anonymous::Deny),
            (Scope::Tenant, true, Anonymous::Pass),
        ]
    );
}

#[test]
fn cache_scope_is_the_route_default() {
    let config = parse(&with(&format!(
        "{JWT_AUTH}[cache]\nscope = \"user\"\n[[route]]\npath = \"/a/\"\n[[route]]\npath = \"/b/\"\nscope = \"public\"\n"
    )));
    assert_eq!(config.cache.scope, Some(Scope::User));
    let r = config.routes.routes();
    assert_eq!((r[0].scope, r[0].scope_declared), (Scope::User, true));
    assert_eq!((r[1].scope, r[1].scope_declared), (Scope::Public, true));
}

#[test]
fn user_scope_needs_auth() {
    check(
        &with("[[route]]\npath = \"/a/\"\nscope = \"user\"\n"),
        &["proxy.toml:5:9: route[0].scope: scope \"user\" needs an [auth] section: a user can only come from a verified credential"],
    );
    check(
        &with("[cache]\nscope = \"user\"\n"),
        &["proxy.toml:4:9: cache.scope: scope \"user\" needs an [auth] section: a user can only come from a verified credential"],
    );
    check(
        &with("[auth]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[[route]]\npath = \"/a/\"\nscope = \"user\"\n"),
        &["proxy.toml:7:9: route[0].scope: scope \"user\" needs a verified user: add [auth.jwt], [auth.introspect] or auth.user_header"],
    );
}

#[test]
fn tenant_scope_needs_a_tenant() {
    check(
        &with("[[route]]\npath = \"/a/\"\nscope = \"tenant\"\n"),
        &["proxy.toml:5:9: route[0].scope: scope \"tenant\" needs a tenant: the tenant source is none and there is no [auth] section to take it from a credential"],
    );
    check(
        &with("[cache]\ntenant = { header = \"X-Org-Id\" }\nscope = \"tenant\"\n[[route]]\npath = \"/a/\"\ntenant = \"none\"\n"),
        &["proxy.toml:8:10: route[0].tenant: scope \"tenant\" needs a tenant: the tenant source is none and there is no [auth] section to take it from a credential (scope from [cache].scope)"],
    );
    check(
        &with("[auth]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[cache]\nscope = \"tenant\"\n"),
        &["proxy.toml:6:9: cache.scope: scope \"tenant\" needs a tenant: the tenant source is none and [auth] has no jwt or introspect to take it from a credential"],
    );
    // With a verified credential, the tenant comes from it.
    let config = parse(&with(&format!(
        "{JWT_AUTH}[[route]]\npath = \"/a/\"\nscope = \"tenant\"\n"
    )));
    assert_eq!(config.routes.routes()[0].scope, Scope::Tenant);
}

#[test]
fn bad_scope_and_anonymous_values() {
    check(
        &with("[cache]\nscope = \"private\"\n[[route]]\npath = \"/a/\"\nanonymous = \"allow\"\n"),
        &[
            "proxy.toml:4:9: cache.scope: invalid scope \"private\": expected \"public\", \"tenant\" or \"user\"",
            "proxy.toml:7:13: route[0].anonymous: invalid anonymous \"allow\": expected \"deny\" (answer 401) or \"pass\" (forward uncached)",
        ],
    );
}

#[test]
fn trust_warnings_name_unverified_tenant_routes() {
    let routes = concat!(
        "[cache]\ntenant = { header = \"X-Org-Id\" }\n",
        "[[route]]\npath = \"/a/\"\n",
        "[[route]]\npath = \"/b/\"\ncache = false\n",
        "[[route]]\npath = \"/c/\"\nscope = \"public\"\n",
        "[[route]]\npath = \"/d/\"\ntenant = \"none\"\n",
        "[[route]]\npath = \"/orgs/{org}/\"\ntenant = { path = \"org\" }\n",
    );
    let config = parse(&with(routes));
    assert_eq!(
        config.trust_warnings(),
        [
            "route[0] /a/: tenant header x-org-id is trusted as sent by any client; add [auth] to verify callers",
            "route[4] /orgs/{org}/: tenant path {org} is trusted as sent by any client; add [auth] to verify callers",
        ]
    );
    let config = parse(&with(&format!("{JWT_AUTH}{routes}")));
    assert!(config.trust_warnings().is_empty());
    assert_eq!(config.routes.trust_warnings().len(), 2);
}

#[test]
fn display_shows_auth_and_scope() {
    let config = parse(&with(concat!(
        "[auth]\ntrusted_proxies = [\"10.0.0.0/8\"]\nuser_header = \"X-User-Id\"\n",
        "[auth.jwt]\npublic_key_file = \"/k.pem\"\nalgorithms = [\"RS256\"]\n",
        "[[route]]\npath = \"/a/\"\nscope = \"user\"\nanonymous = \"pass\"\n",
    )));
    let text = config.to_string();
    assert!(
        text.contains("auth:     jwt (public key /k.pem, RS256, tenant claim org, user claim sub, leeway 30s); trusted proxies 10.0.0.0/8, user header x-user-id; key secret from env CACHEGATE_KEY_SECRET"),
        "{text}"
    );
    assert!(text.contains("scope per route"), "{text}");
    assert!(text.contains(" SCOPE "), "{text}");
    assert!(text.contains("user,anon-pass"), "{text}");
    let plain = parse(MINIMAL).to_string();
    assert!(
        plain.contains("auth:     off (no [auth] section"),
        "{plain}"
    );
}

#[test]
fn very_wide_trusted_networks_are_warned_about() {
    let config = Config::from_toml(
        &with("[auth]\ntrusted_proxies = [\"0.0.0.0/0\", \"10.1.2.0/24\"]\n"),
        "proxy.toml",
    )
    .unwrap();
    let warnings = config.trust_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("0.0.0.0/0"), "{warnings:?}");
}

#[test]
fn partial_conditional_and_interim_statuses_cannot_be_cached() {
    for status in [206, 304, 101] {
        let text = with(&format!("[cache]\ncacheable_statuses = [200, {status}]\n"));
        let err = Config::from_toml(&text, "proxy.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("status {status} cannot be cached")),
            "{err}"
        );
    }
}
