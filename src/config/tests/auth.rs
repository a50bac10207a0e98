//! Tests of `[auth]`, `[auth.jwt]` and `[auth.introspect]`.

use super::*;

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
