//! `[auth]`, `[auth.jwt]` and `[auth.introspect]`: where verified identities come from.
//!
//! Secrets and key files are named here, never read: `Config::from_toml` stays a function of
//! the text. The JWT algorithms are checked against the key source with the family rule of
//! `auth::algorithm`.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use http::HeaderName;
use toml::de::DeValue;
use toml::Spanned;

use super::fields::{
    dotted_field, duration_field, env_name, header_name, secret_source, string_list_field,
    SecretSource,
};
use super::raw::{RawAuth, RawIntrospect, RawJwt};
use super::report::Report;
use crate::auth::algorithm::{Family, JwtAlgorithm, KeyKind};
use crate::auth::cidr::Cidr;

/// `[auth]`: where verified identities come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Peers whose tenant header (the route's tenant source) is trusted as verified, e.g. an
    /// auth gateway in front of the proxy.
    pub trusted_proxies: Vec<Cidr>,
    /// The user header a trusted proxy sends, when it sends one.
    pub user_header: Option<HeaderName>,
    /// Secret of the keyed digests of credentials; default env `CACHEGATE_KEY_SECRET`.
    pub key_secret: SecretSource,
    /// `[auth.jwt]`: bearer tokens verified locally.
    pub jwt: Option<JwtConfig>,
    /// `[auth.introspect]`: opaque tokens and session cookies checked by the backend.
    pub introspect: Option<IntrospectConfig>,
}

/// `[auth.jwt]`: how bearer tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub keys: JwtKeySource,
    /// Accepted `alg` values; empty means every algorithm of the key's type.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Claim (or dotted path) holding the tenant; default `org`.
    pub tenant_claim: String,
    /// Claim (or dotted path) holding the user; default `sub`.
    pub user_claim: String,
    /// Accepted issuers; empty means `iss` is not checked.
    pub issuer: Vec<String>,
    /// Accepted audiences; empty means `aud` is not checked.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`; default 30s.
    pub leeway: Duration,
}

/// Where JWT verification keys come from: exactly one of the four `[auth.jwt]` key settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeySource {
    /// `hs256_secret_env` or `hs_secret_file`: a shared HMAC secret.
    HsSecret(SecretSource),
    /// `public_key_file`: a PEM public key (RSA, EC or Ed25519).
    PublicKeyFile(std::path::PathBuf),
    /// `jwks_file`: a JSON Web Key Set, re-read when it changes.
    JwksFile(std::path::PathBuf),
}

impl fmt::Display for JwtKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtKeySource::HsSecret(source) => write!(f, "HMAC secret from {source}"),
            JwtKeySource::PublicKeyFile(path) => write!(f, "public key {}", path.display()),
            JwtKeySource::JwksFile(path) => write!(f, "JWKS {}", path.display()),
        }
    }
}

/// `[auth.introspect]`: asking the backend who a credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectConfig {
    /// The backend endpoint, e.g. `/api/auth/me/`; starts with '/'.
    pub path: String,
    /// Dotted path of the tenant in the JSON answer, e.g. `organization.id`.
    pub tenant_field: String,
    /// Dotted path of the user in the JSON answer; default `id`.
    pub user_field: String,
    /// How long an answer is reused for the same credential; default 60s.
    pub ttl: Duration,
    /// Request headers that carry the credential; default `authorization`, `cookie`.
    pub credential_headers: Vec<HeaderName>,
    /// Time the endpoint has to answer; default 5s.
    pub timeout: Duration,
    /// Cookie names that carry the session (e.g. `sessionid`). When set, a `Cookie` header is a
    /// credential only if it holds one of them, and only they are digested and sent to the
    /// endpoint, so a logged-out browser with just `csrftoken` is anonymous. Default: empty,
    /// meaning any `Cookie` header is a credential.
    pub session_cookies: Vec<String>,
}

/// `[auth]` with its nested `[auth.jwt]` and `[auth.introspect]` tables.
pub(super) fn compile_auth(
    report: &mut Report<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Option<AuthConfig> {
    // The nested tables are taken out and parsed on their own, so that a problem inside one
    // is reported at its own key rather than dropping the whole table.
    let mut rest = value.clone();
    let (mut jwt, mut introspect) = (None, None);
    if let DeValue::Table(table) = rest.get_mut() {
        jwt = table.remove("jwt");
        introspect = table.remove("introspect");
    }
    let raw = report.table::<RawAuth>(&rest, "auth");
    let jwt = match jwt {
        None => Some(None),
        Some(v) => report
            .table::<RawJwt>(&v, "auth.jwt")
            .and_then(|raw| compile_jwt(report, raw, v.span()))
            .map(Some),
    };
    let introspect = match introspect {
        None => Some(None),
        Some(v) => report
            .table::<RawIntrospect>(&v, "auth.introspect")
            .and_then(|raw| compile_introspect(report, raw))
            .map(Some),
    };
    let raw = raw?;
    let mut ok = true;
    let mut trusted_proxies: Vec<Cidr> = Vec::new();
    for entry in raw.trusted_proxies.iter().flatten() {
        match Cidr::parse(entry.get_ref()) {
            Ok(cidr) if !trusted_proxies.contains(&cidr) => trusted_proxies.push(cidr),
            Ok(_) => {}
            Err(message) => {
                report.at(entry.span(), "auth.trusted_proxies", message);
                ok = false;
            }
        }
    }
    let user_header =
        match &raw.user_header {
            None => Some(None),
            Some(h) => {
                let result = header_name(h.get_ref(), "user").and_then(|name| {
                if raw.trusted_proxies.as_ref().is_none_or(Vec::is_empty) {
                    Err("is only believed from trusted proxies; list them in auth.trusted_proxies"
                        .to_string())
                } else {
                    Ok(Some(name))
                }
            });
                report.check(h.span(), "auth.user_header", result)
            }
        };
    let key_secret = secret_source(
        report,
        "auth",
        ("key_secret_env", raw.key_secret_env),
        ("key_secret_file", raw.key_secret_file),
        "CACHEGATE_KEY_SECRET",
    );
    let (jwt, introspect) = (jwt?, introspect?);
    if ok && trusted_proxies.is_empty() && jwt.is_none() && introspect.is_none() {
        report.at(
            value.span(),
            "auth",
            "needs at least one of [auth.jwt], [auth.introspect] or trusted_proxies",
        );
        return None;
    }
    if !ok {
        return None;
    }
    Some(AuthConfig {
        trusted_proxies,
        user_header: user_header?,
        key_secret: key_secret?,
        jwt,
        introspect,
    })
}

fn compile_jwt(report: &mut Report<'_>, raw: RawJwt, span: Range<usize>) -> Option<JwtConfig> {
    const KEYS: &str = "hs256_secret_env, hs_secret_file, public_key_file or jwks_file";
    let given: Vec<(&str, &Spanned<String>)> = [
        ("hs256_secret_env", &raw.hs256_secret_env),
        ("hs_secret_file", &raw.hs_secret_file),
        ("public_key_file", &raw.public_key_file),
        ("jwks_file", &raw.jwks_file),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
    .collect();
    let keys = match given.as_slice() {
        [] => {
            report.at(span, "auth.jwt", format!("needs a key: give one of {KEYS}"));
            None
        }
        [(first, _), (second, value), ..] => {
            report.at(
                value.span(),
                format!("auth.jwt.{second}"),
                format!("give only one of {KEYS}, not both {first} and {second}"),
            );
            None
        }
        [(name, value)] => {
            let text = value.get_ref();
            let result = match *name {
                "hs256_secret_env" => {
                    env_name(text).map(|n| JwtKeySource::HsSecret(SecretSource::Env(n)))
                }
                _ if text.is_empty() => Err("must not be empty".to_string()),
                "hs_secret_file" => Ok(JwtKeySource::HsSecret(SecretSource::File(text.into()))),
                "public_key_file" => Ok(JwtKeySource::PublicKeyFile(text.into())),
                _ => Ok(JwtKeySource::JwksFile(text.into())),
            };
            report.check(value.span(), format!("auth.jwt.{name}"), result)
        }
    };
    let algorithms = match &raw.algorithms {
        None => Some(Vec::new()),
        Some(list) => {
            let mut algorithms: Vec<JwtAlgorithm> = Vec::new();
            let mut ok = true;
            for item in list.get_ref() {
                let result = jwt_algorithm(item.get_ref(), keys.as_ref());
                match report.check(item.span(), "auth.jwt.algorithms", result) {
                    Some(a) if !algorithms.contains(&a) => algorithms.push(a),
                    Some(_) => {}
                    None => ok = false,
                }
            }
            if list.get_ref().is_empty() {
                report.at(
                    list.span(),
                    "auth.jwt.algorithms",
                    "is empty; leave it out for the algorithms of the key's type",
                );
                ok = false;
            }
            ok.then_some(algorithms)
        }
    };
    let tenant_claim = dotted_field(
        report,
        raw.tenant_claim,
        "auth.jwt.tenant_claim",
        Some("org"),
    );
    let user_claim = dotted_field(report, raw.user_claim, "auth.jwt.user_claim", Some("sub"));
    let issuer = string_list_field(report, raw.issuer, "auth.jwt.issuer");
    let audience = string_list_field(report, raw.audience, "auth.jwt.audience");
    let leeway = duration_field(
        report,
        raw.leeway,
        "auth.jwt.leeway",
        Duration::from_secs(30),
        false,
    );
    Some(JwtConfig {
        keys: keys?,
        algorithms: algorithms?,
        tenant_claim: tenant_claim?,
        user_claim: user_claim?,
        issuer: issuer?,
        audience: audience?,
        leeway: leeway?,
    })
}

/// A known algorithm name that fits the key source ([`KeyKind::accepts`]: an HMAC secret
/// verifies only HS*, a public key never HS*). A JWKS file is checked key by key as it is read.
fn jwt_algorithm(name: &str, keys: Option<&JwtKeySource>) -> Result<JwtAlgorithm, String> {
    let algorithm: JwtAlgorithm = name.parse()?;
    match keys {
        Some(JwtKeySource::HsSecret(_)) if !KeyKind::Family(Family::Hmac).accepts(algorithm) => {
            Err(format!(
                "{name} needs a public key; an HMAC secret verifies HS256, HS384 and HS512 only"
            ))
        }
        Some(JwtKeySource::PublicKeyFile(_)) if !KeyKind::PublicKey.accepts(algorithm) => {
            Err(format!(
                "{name} needs a shared secret; a public key verifies RS*, PS*, ES* and EdDSA only"
            ))
        }
        _ => Ok(algorithm),
    }
}

fn compile_introspect(report: &mut Report<'_>, raw: RawIntrospect) -> Option<IntrospectConfig> {
    let path = {
        let span = raw.path.span();
        let text = raw.path.into_inner();
        let valid = text.starts_with('/')
            && !text.contains('#')
            && text.parse::<http::uri::PathAndQuery>().is_ok();
        report.check(
            span,
            "auth.introspect.path",
            if valid {
                Ok(text)
            } else {
                Err(format!(
                    "\"{text}\" must be a path on the upstream starting with '/', e.g. \"/api/auth/me/\""
                ))
            },
        )
    };
    let tenant_field = dotted_field(
        report,
        Some(raw.tenant_field),
        "auth.introspect.tenant_field",
        None,
    );
    let user_field = dotted_field(
        report,
        raw.user_field,
        "auth.introspect.user_field",
        Some("id"),
    );
    let ttl = duration_field(
        report,
        raw.ttl,
        "auth.introspect.ttl",
        Duration::from_secs(60),
        true,
    );
    let timeout = duration_field(
        report,
        raw.timeout,
        "auth.introspect.timeout",
        Duration::from_secs(5),
        true,
    );
    let credential_headers = match raw.credential_headers {
        None => Some(vec![http::header::AUTHORIZATION, http::header::COOKIE]),
        Some(list) => {
            let mut out: Vec<HeaderName> = Vec::new();
            let mut ok = true;
            for name in list.get_ref() {
                match report.check(
                    name.span(),
                    "auth.introspect.credential_headers",
                    header_name(name.get_ref(), "credential"),
                ) {
                    Some(h) if !out.contains(&h) => out.push(h),
                    Some(_) => {}
                    None => ok = false,
                }
            }
            if list.get_ref().is_empty() {
                report.at(
                    list.span(),
                    "auth.introspect.credential_headers",
                    "is empty; leave it out for Authorization and Cookie",
                );
                ok = false;
            }
            ok.then_some(out)
        }
    };
    let mut session_cookies = Some(Vec::new());
    for name in raw.session_cookies.unwrap_or_default() {
        let span = name.span();
        let name = name.into_inner();
        // RFC 6265 cookie names are tokens: visible ASCII without separators.
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        match report.check(
            span,
            "auth.introspect.session_cookies",
            if valid {
                Ok(name)
            } else {
                Err(format!("\"{name}\" is not a cookie name"))
            },
        ) {
            Some(name) => {
                if let Some(list) = session_cookies.as_mut() {
                    if !list.contains(&name) {
                        list.push(name);
                    }
                }
            }
            None => session_cookies = None,
        }
    }
    Some(IntrospectConfig {
        path: path?,
        tenant_field: tenant_field?,
        user_field: user_field?,
        ttl: ttl?,
        credential_headers: credential_headers?,
        timeout: timeout?,
        session_cookies: session_cookies?,
    })
}
