//! Tests of `classify`: which tenant keys a read, by route scope and caller, and when it is
//! refused instead.

use super::*;

/// Tenant and public routes; `{auth}` is replaced by an `[auth]` section (and a user route,
/// which needs one) or by nothing.
const CONFIG: &str = r#"
[upstream]
url = "http://127.0.0.1:9"
{auth}
[cache]
tenant = { header = "X-Org-Id" }

[[route]]
path = "/api/faculty/"
scope = "tenant"

[[route]]
path = "/api/news/"
scope = "public"
tenant = "none"
"#;

const USER_ROUTE: &str = r#"
[[route]]
path = "/api/me/"
scope = "user"
"#;

const AUTH: &str = r#"
[auth.jwt]
hs256_secret_env = "CACHEGATE_JWT_SECRET"
tenant_claim = "org"
user_claim = "sub"
"#;

fn config(auth: bool) -> Config {
    let text = if auth {
        CONFIG.replace("{auth}", AUTH) + USER_ROUTE
    } else {
        CONFIG.replace("{auth}", "")
    };
    Config::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn identity(tenant: Option<&str>, user: Option<&str>) -> Identity {
    Identity {
        tenant: tenant.map(str::to_owned),
        user: user.map(str::to_owned),
        expires_at: None,
    }
}

/// Classifies a GET of `path` with the given headers and caller, and says what came of it:
/// `key tenant=<t> user=<u>` (`-` for none), `bypass <reason>` or `refuse <error code>`.
fn check(auth: bool, path: &str, headers: &[(&str, &str)], caller: Caller<'_>, want: &str) {
    let config = config(auth);
    let mut builder = http::Request::builder().uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    let target = cache_key::normalize(parts.uri.path(), parts.uri.query()).unwrap();
    let resolved = resolve(&config.routes, &Method::GET, &target).unwrap();
    let got = match classify(&config, &resolved, &parts, "api.test", &[7; 32], caller) {
        Ok(c) => format!(
            "key tenant={} user={}",
            c.tenant.as_ref().map_or("-", TenantId::as_str),
            c.user.as_deref().unwrap_or("-")
        ),
        Err(Denied::Bypass(reason)) => format!("bypass {reason}"),
        Err(Denied::Refuse(err)) => format!("refuse {}", err.code()),
    };
    assert_eq!(got, want, "auth={auth} {path} {headers:?}");
}

/// Issue 7: under `[auth]`, a tenant or user route reached without a verified caller is refused;
/// the tenant the request names is never used for the key.
#[test]
fn an_auth_tenant_route_without_a_verified_caller_is_refused_not_keyed_by_its_header() {
    let named = [("x-org-id", "42")];
    let nobody = Caller::NotRequired;
    check(
        true,
        "/api/faculty/",
        &named,
        nobody,
        "refuse unauthenticated",
    );
    check(true, "/api/faculty/", &[], nobody, "refuse unauthenticated");
    check(true, "/api/me/", &named, nobody, "refuse unauthenticated");
    // Without [auth] the same request is keyed by the tenant it names, as configured.
    check(
        false,
        "/api/faculty/",
        &named,
        nobody,
        "key tenant=42 user=-",
    );
    check(false, "/api/faculty/", &[], nobody, "bypass no-tenant");
    // A public route needs nobody, with or without [auth].
    check(true, "/api/news/", &named, nobody, "key tenant=- user=-");
}

#[test]
fn a_verified_caller_keys_by_its_own_tenant_and_user() {
    let alice = identity(Some("42"), Some("alice"));
    let verified = Caller::Verified(&alice);
    check(true, "/api/faculty/", &[], verified, "key tenant=42 user=-");
    check(
        true,
        "/api/faculty/",
        &[("x-org-id", "42")],
        verified,
        "key tenant=42 user=-",
    );
    check(
        true,
        "/api/faculty/",
        &[("x-org-id", "7")],
        verified,
        "refuse forbidden",
    );
    check(true, "/api/me/", &[], verified, "key tenant=42 user=alice");
    let no_user = identity(Some("42"), None);
    check(
        true,
        "/api/me/",
        &[],
        Caller::Verified(&no_user),
        "refuse forbidden",
    );
    let no_tenant = identity(None, Some("alice"));
    check(
        true,
        "/api/faculty/",
        &[],
        Caller::Verified(&no_tenant),
        "refuse forbidden",
    );
}
