//! Tests for route patterns, tag templates and the route table.

use std::time::Duration;

use http::Method;

use super::*;

fn pattern(raw: &str) -> PathPattern {
    PathPattern::parse(raw).expect("test pattern parses")
}

/// Matches `path` against `raw` and returns the captures as owned pairs.
fn check_match(raw: &str, path: &str, expected: Option<&[(&str, &str)]>) {
    let p = pattern(raw);
    let got = p.matches(path).map(|c| {
        c.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    });
    let expected = expected.map(|e| {
        e.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    });
    assert_eq!(got, expected, "{raw} against {path}");
}

fn check_parse_error(raw: &str, message: &str) {
    assert_eq!(
        PathPattern::parse(raw).err().as_deref(),
        Some(message),
        "{raw}"
    );
}

fn check_covers(a: &str, b: &str, expected: bool) {
    assert_eq!(pattern(a).covers(&pattern(b)), expected, "{a} covers {b}");
}

#[test]
fn literal_pattern_matches_exactly() {
    check_match("/api/faculty/", "/api/faculty/", Some(&[]));
    check_match("/api/faculty/", "/api/Faculty/", None);
    check_match("/api/faculty/", "/api/faculty/x", None);
    check_match("/", "/", Some(&[]));
    check_match("/", "/a", None);
}

#[test]
fn trailing_slash_is_significant() {
    check_match("/a/", "/a", None);
    check_match("/a", "/a/", None);
    check_match("/a/{id}/", "/a/1", None);
    check_match("/a/{id}", "/a/1/", None);
}

#[test]
fn param_matches_one_non_empty_segment() {
    check_match(
        "/api/faculty/{id}/",
        "/api/faculty/12/",
        Some(&[("id", "12")]),
    );
    check_match("/api/faculty/{id}/", "/api/faculty//", None);
    check_match("/api/faculty/{id}/", "/api/faculty/1/2/", None);
    check_match(
        "/orgs/{org}/faculty/{id}",
        "/orgs/acme/faculty/7",
        Some(&[("org", "acme"), ("id", "7")]),
    );
}

#[test]
fn tail_matches_rest_including_empty() {
    check_match(
        "/api/auth/{*rest}",
        "/api/auth/login",
        Some(&[("rest", "login")]),
    );
    check_match(
        "/api/auth/{*rest}",
        "/api/auth/a/b/",
        Some(&[("rest", "a/b/")]),
    );
    check_match("/api/auth/{*rest}", "/api/auth/", Some(&[("rest", "")]));
    check_match("/api/auth/{*rest}", "/api/auth", None);
    check_match(
        "/{*all}",
        "/anything/at/all",
        Some(&[("all", "anything/at/all")]),
    );
}

#[test]
fn path_without_leading_slash_never_matches() {
    check_match("/a", "a", None);
    check_match("/{*all}", "", None);
}

#[test]
fn pattern_errors_name_the_problem() {
    check_parse_error("api/x", "pattern must start with '/'");
    check_parse_error("/a/{id}/{id}", "duplicate capture {id}");
    check_parse_error("/a/{id}/{*id}", "duplicate capture {id}");
    check_parse_error("/a/{*rest}/b", "tail capture {*rest} must be last");
    check_parse_error("/a/{id", "unclosed '{'");
    check_parse_error("/a/id}", "unmatched '}'");
    check_parse_error(
        "/a/v{id}",
        "capture must be a whole segment, not part of \"v{id}\"",
    );
    check_parse_error(
        "/a/{id}x",
        "capture must be a whole segment, not part of \"{id}x\"",
    );
    check_parse_error("/a/{}", "empty capture name '{}'");
    check_parse_error(
        "/a/{1x}",
        "invalid capture name \"1x\": use letters, digits and '_', not starting with a digit",
    );
    check_parse_error("/a//b", "empty segment '//'");
}

#[test]
fn capture_names_and_is_list() {
    let p = pattern("/orgs/{org}/files/{*path}");
    assert_eq!(p.capture_names().collect::<Vec<_>>(), ["org", "path"]);
    assert!(!p.is_list());
    assert!(pattern("/api/faculty/").is_list());
    assert_eq!(p.as_str(), "/orgs/{org}/files/{*path}");
}

#[test]
fn covers_same_shape() {
    check_covers("/api/faculty/{id}/", "/api/faculty/{pk}/", true);
    check_covers("/api/faculty/{id}/", "/api/faculty/me/", true);
    check_covers("/api/faculty/me/", "/api/faculty/{id}/", false);
    check_covers("/api/faculty/", "/api/faculty/", true);
    check_covers("/api/faculty/", "/api/faculty", false);
}

#[test]
fn param_does_not_cover_trailing_slash() {
    check_covers("/a/{x}", "/a/", false);
}

#[test]
fn covers_with_tail() {
    check_covers("/api/{*rest}", "/api/auth/{*rest}", true);
    check_covers("/api/{*rest}", "/api/faculty/{id}/", true);
    check_covers("/api/{*rest}", "/api/", true);
    check_covers("/api/{*rest}", "/api", false);
    check_covers("/api/auth/{*rest}", "/api/{*rest}", false);
    check_covers("/api/{id}/", "/api/{*rest}", false);
    check_covers("/{*all}", "/", true);
    check_covers("/{x}/{*rest}", "/a/{*rest}", true);
    check_covers("/{x}/{*rest}", "/{*rest}", false);
}

fn captures_of<'r, 'p>(p: &'r PathPattern, path: &'p str) -> Captures<'r, 'p> {
    p.matches(path).expect("test path matches")
}

fn check_tag(route: &str, template: &str, path: &str, expected: &str) {
    let p = pattern(route);
    let t = TagTemplate::parse(template, &p).expect("test template parses");
    assert_eq!(t.render(&captures_of(&p, path)), expected);
    assert_eq!(t.as_str(), template);
}

fn check_tag_error(route: &str, template: &str, message: &str) {
    let p = pattern(route);
    assert_eq!(
        TagTemplate::parse(template, &p).err().as_deref(),
        Some(message)
    );
}

#[test]
fn tag_template_renders_captures() {
    check_tag(
        "/api/faculty/{id}/",
        "department",
        "/api/faculty/3/",
        "department",
    );
    check_tag(
        "/api/faculty/{id}/",
        "faculty:{id}",
        "/api/faculty/3/",
        "faculty:3",
    );
    check_tag("/o/{org}/f/{id}", "{org}-{id}", "/o/a/f/9", "a-9");
}

#[test]
fn tag_template_rejects_unknown_capture() {
    check_tag_error(
        "/api/faculty/{id}/",
        "faculty:{x}",
        "unknown capture {x} in tag template \"faculty:{x}\"; the pattern captures: id",
    );
    check_tag_error(
        "/api/faculty/",
        "faculty:{x}",
        "unknown capture {x} in tag template \"faculty:{x}\"; the pattern has no captures",
    );
}

#[test]
fn tag_template_rejects_bad_text() {
    check_tag_error("/a", "", "tags must not be empty");
    check_tag_error(
        "/a",
        "a b",
        "invalid tag template \"a b\": tags may not contain whitespace or commas",
    );
    check_tag_error(
        "/a",
        "a,b",
        "invalid tag template \"a,b\": tags may not contain whitespace or commas",
    );
    check_tag_error("/a/{id}", "x:{id", "unclosed '{' in tag template \"x:{id\"");
    check_tag_error(
        "/a/{id}",
        "x:id}",
        "unmatched '}' in tag template \"x:id}\"",
    );
}

fn check_resource(route: &str, tenant: TenantSource, entry: &[&str], write: &[&str]) {
    let p = pattern(route);
    let (e, w) = resource_tags("faculty", &p, &tenant).expect("resource tags build");
    let e: Vec<&str> = e.iter().map(TagTemplate::as_str).collect();
    let w: Vec<&str> = w.iter().map(TagTemplate::as_str).collect();
    assert_eq!((e.as_slice(), w.as_slice()), (entry, write), "{route}");
}

#[test]
fn list_route_resource_defaults() {
    check_resource(
        "/api/faculty/",
        TenantSource::None,
        &["faculty", "faculty:*"],
        &["faculty"],
    );
}

#[test]
fn detail_route_resource_defaults() {
    check_resource(
        "/api/faculty/{id}/",
        TenantSource::None,
        &["faculty:{id}", "faculty:*"],
        &["faculty:{id}", "faculty"],
    );
}

#[test]
fn detail_route_uses_last_capture() {
    check_resource(
        "/api/dept/{dept}/faculty/{id}/",
        TenantSource::None,
        &["faculty:{id}", "faculty:*"],
        &["faculty:{id}", "faculty"],
    );
}

#[test]
fn tenant_capture_is_not_an_object() {
    check_resource(
        "/orgs/{org}/faculty/",
        TenantSource::Path("org".to_string()),
        &["faculty", "faculty:*"],
        &["faculty"],
    );
    check_resource(
        "/orgs/{org}/faculty/{id}/",
        TenantSource::Path("org".to_string()),
        &["faculty:{id}", "faculty:*"],
        &["faculty:{id}", "faculty"],
    );
}

#[test]
fn resource_name_must_be_plain() {
    assert!(check_resource_name("faculty-v2.x").is_ok());
    assert_eq!(
        check_resource_name("a:b").err().as_deref(),
        Some("invalid resource name \"a:b\": use letters, digits, '_', '-' and '.'")
    );
}

fn route(index: usize, raw: &str, methods: Option<&[Method]>) -> Route {
    Route {
        index,
        id: index,
        pattern: pattern(raw),
        methods: methods.map(<[Method]>::to_vec),
        cache: true,
        freshness: crate::policy::freshness::Rules {
            ttl: Duration::from_secs(300),
            ..Default::default()
        },
        compress: false,
        tenant: TenantSource::None,
        vary: Vec::new(),
        max_variants: 8,
        max_memory: None,
        resource: None,
        entry_tags: Vec::new(),
        write_invalidates: Vec::new(),
        scope: Scope::Public,
        scope_declared: false,
        anonymous: Anonymous::Deny,
        http: Default::default(),
    }
}

fn check_find(table: &RouteTable, method: Method, path: &str, expected: Option<usize>) {
    let got = table.find(&method, path).map(|m| m.route.index);
    assert_eq!(got, expected, "{method} {path}");
}

#[test]
fn first_match_wins() {
    let table = RouteTable::new(vec![
        route(0, "/api/faculty/me/", None),
        route(1, "/api/faculty/{id}/", None),
        route(2, "/api/{*rest}", None),
    ]);
    check_find(&table, Method::GET, "/api/faculty/me/", Some(0));
    check_find(&table, Method::GET, "/api/faculty/4/", Some(1));
    check_find(&table, Method::GET, "/api/other", Some(2));
    check_find(&table, Method::GET, "/health", None);
    let found = table
        .find(&Method::GET, "/api/faculty/4/")
        .expect("route matches");
    assert_eq!(found.captures.get("id"), Some("4"));
}

#[test]
fn method_restricted_route_is_skipped() {
    let table = RouteTable::new(vec![
        route(0, "/api/faculty/{id}/", Some(&[Method::GET])),
        route(1, "/api/faculty/{id}/", None),
    ]);
    check_find(&table, Method::GET, "/api/faculty/4/", Some(0));
    check_find(&table, Method::DELETE, "/api/faculty/4/", Some(1));
}

#[test]
fn shadowed_needs_pattern_and_methods() {
    let table = RouteTable::new(vec![
        route(0, "/api/faculty/{id}/", Some(&[Method::GET, Method::HEAD])),
        route(1, "/api/faculty/{pk}/", Some(&[Method::GET])),
        route(2, "/api/faculty/{pk}/", None),
        route(3, "/api/{*rest}", None),
        route(4, "/api/x/", Some(&[Method::POST])),
        route(5, "/api/faculty/me/", None),
    ]);
    assert_eq!(table.shadowed(), [(1, 0), (4, 3), (5, 2)]);
}

#[test]
fn table_display_is_aligned() {
    let mut detail = route(1, "/api/faculty/{id}/", Some(&[Method::GET]));
    detail.tenant = TenantSource::Header(http::HeaderName::from_static("x-org-id"));
    detail.resource = Some("faculty".to_string());
    detail.entry_tags = vec![
        TagTemplate::parse("faculty:{id}", &detail.pattern).expect("tag parses"),
        TagTemplate::parse("faculty:*", &detail.pattern).expect("tag parses"),
    ];
    let mut pass = route(2, "/api/auth/{*rest}", None);
    pass.cache = false;
    let mut origin = route(3, "/api/catalog/", None);
    origin.http.honor_origin = true;
    let table = RouteTable::new(vec![route(0, "/api/faculty/", None), detail, pass, origin]);
    let text = table.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[4].contains(" origin "), "{text}");
    assert!(lines[0].starts_with("#  PATH "), "{text}");
    assert!(lines[2].contains("header x-org-id"), "{text}");
    assert!(lines[2].contains("faculty:{id} faculty:*"), "{text}");
    assert!(lines[3].contains(" pass "), "{text}");
    // Every row starts its METHODS column at the same offset.
    let column = lines[0].find("METHODS").expect("header has METHODS");
    assert_eq!(lines[1].get(column..column + 1), Some("*"), "{text}");
    assert_eq!(lines[2].get(column..column + 3), Some("GET"), "{text}");
}

#[test]
fn a_route_is_identified_by_its_pattern_and_its_methods_in_any_order() {
    let every = route(0, "/a/{id}/", None);
    assert_eq!(every.identity(), "/a/{id}/");
    let two = route(3, "/a/{id}/", Some(&[Method::HEAD, Method::GET]));
    let same = route(7, "/a/{id}/", Some(&[Method::GET, Method::HEAD]));
    assert_eq!(two.identity(), "GET,HEAD /a/{id}/");
    assert_eq!(two.identity(), same.identity());
}
