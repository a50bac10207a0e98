//! Tests for configuration parsing, defaults and the problem report.

use std::time::Duration;

use http::Method;

use super::*;

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
            "proxy.toml:4:1: server.lisen: unknown key; expected one of `listen`, `workers`, `header_read_timeout`, `max_header_bytes`, `max_connections`, `hosts`, `shutdown_grace`",
            "proxy.toml:5:1: server.colour: unknown key; expected one of `listen`, `workers`, `header_read_timeout`, `max_header_bytes`, `max_connections`, `hosts`, `shutdown_grace`",
            "proxy.toml:8:1: route[0].ttl_s: unknown key; expected one of `path`, `methods`, `ttl`, `cache`, `tenant`, `vary`, `resource`, `tags`, `invalidates`",
            "proxy.toml:9:2: extra: unknown section; expected one of server, upstream, cache, log, admin, webhook, route",
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
