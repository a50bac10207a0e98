//! Tests of Tenant sources, scopes and the anonymous rule, and whether `[auth]` can honour them.

use super::*;

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
