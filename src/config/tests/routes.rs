//! Tests of `[[route]]`: patterns, methods, ttl, tags, inheritance from `[cache]` and shadowing.

use super::*;

#[test]
fn route_defaults_come_from_cache() {
    let config = parse(&with(
        "[cache]\ndefault_ttl = \"1m\"\ntenant = { header = \"X-Org-Id\" }\n[[route]]\npath = \"/a/\"\n",
    ));
    let r = &config.routes.routes()[0];
    assert_eq!(r.index, 0);
    assert_eq!(r.freshness.ttl, Duration::from_secs(60));
    assert!(r.cache);
    assert_eq!(r.methods, None);
    assert_eq!(
        r.tenant,
        TenantSource::Header(HeaderName::from_static("x-org-id"))
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
fn bad_duration_names_route_and_line() {
    let mut text = with("[[route]]\npath = \"/a/\"\n[[route]]\npath = \"/b/\"\n[[route]]\n");
    text.push_str("path = \"/c/\"\n\n\n\n\n\n\nttl = \"5 minutes\"\n");
    check(
        &text,
        &["proxy.toml:15:7: route[2].ttl: invalid duration \"5 minutes\": expected a number followed by ms, s, m, h or d"],
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
fn route_must_be_an_array_of_tables() {
    check(
        &with("[route]\npath = \"/a\"\n"),
        &["proxy.toml:3:1: route: expected an array of tables; write each route as [[route]]"],
    );
}

#[test]
fn forward_headers_join_the_key_and_max_variants_is_bounded() {
    let config = parse(&with(concat!(
        "[[route]]\npath = \"/a/\"\nvary = [\"Accept-Language\"]\n",
        "forward_headers = [\"X-Api-Version\", \"accept-language\"]\nmax_variants = 3\n",
        "[[route]]\npath = \"/b/\"\n",
    )));
    let a = &config.routes.routes()[0];
    let vary: Vec<&str> = a.vary.iter().map(|h| h.as_str()).collect();
    assert_eq!(vary, ["accept-language", "x-api-version"]);
    assert_eq!(a.max_variants, 3);
    assert_eq!(config.routes.routes()[1].max_variants, 8);
    check(
        &with(concat!(
            "[[route]]\npath = \"/a/\"\nmax_variants = 0\n",
            "[[route]]\npath = \"/b/\"\nmax_variants = 65\n",
            "[[route]]\npath = \"/c/\"\nforward_headers = [\"Connection\"]\n",
        )),
        &[
            "proxy.toml:5:16: route[0].max_variants: must be at least 1, not 0",
            "proxy.toml:8:16: route[1].max_variants: must be at most 64, not 65",
            "proxy.toml:11:20: route[2].forward_headers: \"Connection\" is a hop-by-hop header and cannot be used as a forward_headers header",
        ],
    );
}

#[test]
fn a_route_bounds_its_memory_below_the_tier() {
    let config = parse(&with(concat!(
        "[cache]\nmax_memory = \"64MiB\"\n",
        "[[route]]\npath = \"/search/\"\nmax_memory = \"8MiB\"\n",
        "[[route]]\npath = \"/b/\"\n",
    )));
    assert_eq!(config.routes.routes()[0].max_memory, Some(8 << 20));
    assert_eq!(config.routes.routes()[1].max_memory, None);
    check(
        &with(concat!(
            "[cache]\nmax_memory = \"64MiB\"\n",
            "[[route]]\npath = \"/a/\"\nmax_memory = \"64MiB\"\n",
            "[[route]]\npath = \"/b/\"\nmax_memory = \"lots\"\n",
            "[[route]]\npath = \"/c/\"\nmax_memory = 0\n",
        )),
        &[
            "proxy.toml:7:14: route[0].max_memory: must be smaller than [cache].max_memory (64MiB >= 64MiB), or it bounds nothing",
            "proxy.toml:10:14: route[1].max_memory: invalid size \"lots\": expected a number of bytes, optionally followed by B, KB, MB, GB, KiB, MiB or GiB",
            "proxy.toml:13:14: route[2].max_memory: must be at least 1B",
        ],
    );
}

#[test]
fn stale_windows_and_negative_caching_are_parsed() {
    let config = parse(&with(
        "[cache]\nstale_if_error = \"1h\"\n[[route]]\npath = \"/a/\"\nttl = \"5m\"\nstale_while_revalidate = \"30s\"\nstale_if_error = \"10m\"\nnegative_ttl = \"10s\"\n[[route]]\npath = \"/b/\"\nnegative_ttl = \"5s\"\nnegative_statuses = [404, 410, 404]\n[[route]]\npath = \"/c/\"\n",
    ));
    let routes = config.routes.routes();
    let a = &routes[0].freshness;
    assert_eq!(a.ttl, Duration::from_secs(300));
    assert_eq!(a.stale_while_revalidate, Duration::from_secs(30));
    assert_eq!(a.stale_if_error, Duration::from_secs(600));
    let negative = a.negative.as_ref().unwrap();
    assert_eq!(negative.ttl, Duration::from_secs(10));
    assert_eq!(negative.statuses, [404]);
    let b = &routes[1].freshness;
    assert_eq!(b.negative.as_ref().unwrap().statuses, [404, 410]);
    // [cache] gives the default windows.
    assert_eq!(b.stale_if_error, Duration::from_secs(3600));
    assert_eq!(b.stale_while_revalidate, Duration::ZERO);
    let c = &routes[2].freshness;
    assert_eq!(c.negative, None);
    assert_eq!(config.cache.stale_if_error, Duration::from_secs(3600));
}

#[test]
fn revalidate_for_defaults_to_ten_minutes_and_is_inherited() {
    let config = parse(&with("[[route]]\npath = \"/a/\"\n"));
    assert_eq!(config.cache.revalidate_for, Duration::from_secs(600));
    assert_eq!(
        config.routes.routes()[0].freshness.revalidate_for,
        Duration::from_secs(600)
    );
    let config = parse(&with(
        "[cache]\nrevalidate_for = \"1h\"\n[[route]]\npath = \"/a/\"\n[[route]]\npath = \"/b/\"\nrevalidate_for = \"0s\"\n",
    ));
    let routes = config.routes.routes();
    assert_eq!(
        routes[0].freshness.revalidate_for,
        Duration::from_secs(3600)
    );
    assert_eq!(routes[1].freshness.revalidate_for, Duration::ZERO);
}

#[test]
fn bad_freshness_values_name_route_key_and_line() {
    check(
        &with("[[route]]\npath = \"/a/\"\nstale_while_revalidate = \"soon\"\nstale_if_error = -3\nnegative_ttl = \"0s\"\n"),
        &[
            "proxy.toml:5:26: route[0].stale_while_revalidate: invalid duration \"soon\": expected a number followed by ms, s, m, h or d",
            "proxy.toml:6:18: route[0].stale_if_error: invalid duration \"-3\": expected a number followed by ms, s, m, h or d",
            "proxy.toml:7:16: route[0].negative_ttl: must be greater than zero",
        ],
    );
    check(
        &with("[[route]]\npath = \"/a/\"\nnegative_statuses = [404]\n[[route]]\npath = \"/b/\"\nnegative_ttl = \"1s\"\nnegative_statuses = [404, 503, 200]\n[[route]]\npath = \"/c/\"\nnegative_ttl = \"1s\"\nnegative_statuses = []\n"),
        &[
            "proxy.toml:5:21: route[0].negative_statuses: has no effect without negative_ttl; set negative_ttl = \"10s\" (for example)",
            "proxy.toml:9:27: route[1].negative_statuses: invalid status 503: negative caching takes client errors (400 to 499); 5xx answers are what stale_if_error covers",
            "proxy.toml:9:32: route[1].negative_statuses: invalid status 200: negative caching takes client errors (400 to 499); 5xx answers are what stale_if_error covers",
            "proxy.toml:13:21: route[2].negative_statuses: is empty; leave out negative_ttl to cache no negative answers",
        ],
    );
    check(
        &with("[cache]\nstale_while_revalidate = \"x\"\n"),
        &["proxy.toml:4:26: cache.stale_while_revalidate: invalid duration \"x\": expected a number followed by ms, s, m, h or d"],
    );
}

#[test]
fn http_caching_switches_default_to_route_ttls() {
    let config = parse(&with("[[route]]\npath = \"/a/\"\n"));
    let r = &config.routes.routes()[0];
    assert!(!config.cache.honor_origin);
    assert_eq!(config.cache.request_cache_control, None);
    assert_eq!(
        r.http,
        Rules {
            honor_origin: false,
            request_cache_control: RequestCacheControl::Bypass,
            etag: EtagRule::Origin,
        }
    );
}

#[test]
fn honor_origin_is_inherited_and_picks_the_request_switch() {
    let config = parse(&with(concat!(
        "[cache]\nhonor_origin = true\n",
        "[[route]]\npath = \"/a/\"\n",
        "[[route]]\npath = \"/b/\"\nhonor_origin = false\netag = \"digest\"\n",
        "[[route]]\npath = \"/c/\"\nrequest_cache_control = \"ignore\"\n",
    )));
    let rules: Vec<_> = config.routes.routes().iter().map(|r| r.http).collect();
    assert!(rules[0].honor_origin);
    assert_eq!(rules[0].request_cache_control, RequestCacheControl::Honor);
    assert!(!rules[1].honor_origin);
    assert_eq!(rules[1].request_cache_control, RequestCacheControl::Bypass);
    assert_eq!(rules[1].etag, EtagRule::Digest);
    assert!(rules[2].honor_origin);
    assert_eq!(rules[2].request_cache_control, RequestCacheControl::Ignore);
}

#[test]
fn cache_request_cache_control_is_the_default_of_every_route() {
    let config = parse(&with(concat!(
        "[cache]\nrequest_cache_control = \"honor\"\n",
        "[[route]]\npath = \"/a/\"\n",
    )));
    assert_eq!(
        config.cache.request_cache_control,
        Some(RequestCacheControl::Honor)
    );
    let r = &config.routes.routes()[0];
    assert!(!r.http.honor_origin);
    assert_eq!(r.http.request_cache_control, RequestCacheControl::Honor);
}

#[test]
fn bad_http_caching_switches_name_file_line_and_key() {
    check(
        &with(concat!(
            "[cache]\nrequest_cache_control = \"always\"\n",
            "[[route]]\npath = \"/a/\"\nrequest_cache_control = \"sometimes\"\netag = \"sha1\"\n",
        )),
        &[
            "proxy.toml:4:25: cache.request_cache_control: invalid request_cache_control \"always\": expected \"honor\" (RFC 9111), \"bypass\" (no-cache and no-store pass through) or \"ignore\"",
            "proxy.toml:7:25: route[0].request_cache_control: invalid request_cache_control \"sometimes\": expected \"honor\" (RFC 9111), \"bypass\" (no-cache and no-store pass through) or \"ignore\"",
            "proxy.toml:8:8: route[0].etag: invalid etag \"sha1\": expected \"origin\" (the backend's own) or \"digest\" (a strong tag from the body when the backend sends none)",
        ],
    );
}

#[test]
fn honor_origin_must_be_a_boolean() {
    let err = Config::from_toml(
        &with("[[route]]\npath = \"/a/\"\nhonor_origin = \"yes\"\n"),
        "proxy.toml",
    )
    .expect_err("a string is refused");
    let text = err.to_string();
    assert!(text.starts_with("proxy.toml:"), "{text}");
    assert!(
        text.contains("honor_origin") || text.contains("bool"),
        "{text}"
    );
}

#[test]
fn compress_is_off_unless_cache_or_the_route_turns_it_on() {
    let config = parse(&with(
        "[[route]]\npath = \"/a/\"\n[[route]]\npath = \"/b/\"\ncompress = true\n",
    ));
    assert!(!config.cache.compress);
    assert!(!config.routes.routes()[0].compress);
    assert!(config.routes.routes()[1].compress);
    let config = parse(&with(
        "[cache]\ncompress = true\n[[route]]\npath = \"/a/\"\n[[route]]\npath = \"/b/\"\ncompress = false\n",
    ));
    assert!(config.cache.compress);
    assert!(config.routes.routes()[0].compress);
    assert!(!config.routes.routes()[1].compress);
    check(
        &with("[[route]]\npath = \"/a/\"\ncompress = \"yes\"\n"),
        &["proxy.toml:5:12: route[0].compress: invalid type: string \"yes\", expected true or false"],
    );
}
