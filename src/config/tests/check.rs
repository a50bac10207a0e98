//! Tests of What `cachegate check` prints, and the trust warnings.

use super::*;

#[test]
fn display_summarizes_config() {
    let text = Config::embedded_default().to_string();
    assert!(text.contains("upstream: http://127.0.0.1:8000/"), "{text}");
    assert!(text.contains("/api/faculty/{id}/"), "{text}");
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
fn display_shows_the_tenant_share_and_route_bounds() {
    let config = parse(&with(concat!(
        "[cache]\nmax_memory = \"64MiB\"\nmax_tenant_share = \"25%\"\n",
        "[[route]]\npath = \"/search/\"\nttl = \"1m\"\nmax_memory = \"8MiB\"\n",
    )));
    let text = config.to_string();
    assert!(text.contains("64MiB (at most 25% a tenant)"), "{text}");
    assert!(text.contains("1m,max=8MiB"), "{text}");
    let default = parse(MINIMAL).to_string();
    assert!(
        !default.contains("a tenant)"),
        "no share by default: {default}"
    );
}
