//! The configuration file: TOML parsing, every validation, and the validated types the proxy reads.
//!
//! This is the only module that knows serde and TOML. The file is deserialized into private
//! `Raw*` structs section by section, then compiled into the public types below; nothing later
//! validates again. A bad file yields one [`ConfigError`] listing every problem found, each with
//! its line and column, so a user fixes them all in one pass.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use http::HeaderName;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::auth::algorithm::{Family, JwtAlgorithm, KeyKind};
use crate::auth::cidr::Cidr;
use crate::notation::{format_duration, format_size};
use crate::policy::route::RouteTable;

mod cache;
mod fields;
mod raw;
mod report;
mod routes;
mod scope;
mod server;
mod upstream;

pub use cache::CacheConfig;
pub use fields::SecretSource;
pub use report::{ConfigError, Problem};
pub use server::ServerConfig;
pub use upstream::UpstreamConfig;

use cache::compile_cache;
use routes::{compile_routes, RouteDefaults};
use scope::AuthFacts;
use server::compile_server;
use upstream::compile_upstream;

use fields::{
    count_field, dotted_field, duration_field, env_name, header_name, secret_source, size_field,
    string_list_field,
};
use raw::{
    RawAdmin, RawAuth, RawCache, RawIntrospect, RawJwt, RawLog, RawServer, RawUpstream, RawWebhook,
};
use report::Report;

#[cfg(test)]
mod tests;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File name used in messages, `<embedded default>` for the built-in file.
    pub source: String,
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub cache: CacheConfig,
    pub routes: RouteTable,
    /// `[log] level`, a tracing filter; `RUST_LOG` wins over it.
    pub log: Option<String>,
    /// `[admin]`: the operator API; `None` when the section is absent (no admin listener).
    pub admin: Option<AdminConfig>,
    /// `[webhook]`: the signed invalidation endpoint on the main listener (always reserved).
    pub webhook: WebhookConfig,
    /// `[auth]`: how callers of `tenant` and `user` routes are verified; `None` when absent.
    pub auth: Option<AuthConfig>,
}

impl Config {
    /// Parses and validates configuration text; `source` names the file in messages.
    pub fn from_toml(text: &str, source: &str) -> Result<Config, ConfigError> {
        let mut report = Report {
            text,
            problems: Vec::new(),
        };
        let config = compile(text, source, &mut report);
        match config {
            Some(config) if report.problems.is_empty() => Ok(config),
            _ => {
                let mut problems = report.problems;
                // Problems without a place come first, the rest in file order.
                problems.sort_by_key(|p| p.position);
                Err(ConfigError {
                    source: source.to_string(),
                    problems,
                })
            }
        }
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml(&text, &source),
            Err(err) => Err(ConfigError {
                source,
                problems: vec![Problem {
                    position: None,
                    key: String::new(),
                    message: format!("cannot read the file: {err}"),
                }],
            }),
        }
    }

    /// The shipped `proxy.toml`, built into the binary.
    pub fn embedded_default() -> Config {
        // The file is part of the source tree and a unit test parses it, so a failure here
        // can only be a build of an untested tree.
        Config::from_toml(include_str!("../../proxy.toml"), "<embedded default>")
            .expect("the shipped proxy.toml is valid")
    }
}

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

/// `[admin]`: the operator API on its own listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default `127.0.0.1:9090`: keep it off public interfaces.
    pub listen: SocketAddr,
    /// The bearer token; default the env var `CACHEGATE_ADMIN_TOKEN`.
    pub token: SecretSource,
    /// Parallel fetches of one `POST /warm`; default 8.
    pub warm_concurrency: usize,
}

/// `[webhook]`: invalidations sent by the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Reserved path prefix on the main listener, never forwarded nor cached; default `/_cachegate/`.
    pub prefix: String,
    /// The invalidation endpoint, under `prefix`; default `<prefix>invalidate`.
    pub path: String,
    /// Comma-separated HMAC secrets (several at once while rotating); default env `CACHEGATE_WEBHOOK_SECRET`.
    pub secret: SecretSource,
    /// How old (or how far in the future) a signature timestamp may be; default 5m.
    pub replay_window: Duration,
    /// Largest accepted request body; default 1MiB.
    pub max_body: u64,
}

const SECTIONS: &str = "server, upstream, cache, log, admin, webhook, auth, route";

fn compile(text: &str, source: &str, report: &mut Report<'_>) -> Option<Config> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(error) => {
            let message = error.message().trim().to_string();
            match error.span() {
                Some(span) => report.at(span, "", message),
                None => report.nowhere("", message),
            }
            return None;
        }
    };
    let mut server = None;
    let mut upstream = None;
    let mut cache = None;
    let mut log = None;
    let mut admin = None;
    let mut webhook = None;
    let mut auth = None;
    let mut routes = None;
    for (key, value) in root.get_ref().iter() {
        match key.get_ref().as_ref() {
            "server" => server = Some(report.table::<RawServer>(value, "server")),
            "upstream" => upstream = Some(report.table::<RawUpstream>(value, "upstream")),
            "cache" => cache = Some(report.table::<RawCache>(value, "cache")),
            "log" => log = Some(report.table::<RawLog>(value, "log")),
            "admin" => admin = Some(report.table::<RawAdmin>(value, "admin")),
            "webhook" => webhook = Some(report.table::<RawWebhook>(value, "webhook")),
            "auth" => auth = Some(value),
            "route" => routes = Some(value),
            other => report.at(
                key.span(),
                other,
                format!("unknown section; expected one of {SECTIONS}"),
            ),
        }
    }
    let server = compile_server(report, server.unwrap_or_else(|| Some(RawServer::default())));
    let upstream = match upstream {
        Some(raw) => compile_upstream(report, raw),
        None => {
            report.nowhere(
                "upstream.url",
                "missing required key (the http:// address of the API behind the proxy)",
            );
            None
        }
    };
    let facts = AuthFacts {
        declared: auth.is_some(),
        names_tenants: true,
        names_users: true,
    };
    let auth = match auth {
        None => Some(None),
        Some(value) => compile_auth(report, value).map(Some),
    };
    // A broken [auth] keeps the permissive facts, so its problems do not repeat on every route.
    let facts = match &auth {
        Some(Some(a)) => AuthFacts {
            names_tenants: a.jwt.is_some() || a.introspect.is_some(),
            names_users: a.jwt.is_some() || a.introspect.is_some() || a.user_header.is_some(),
            ..facts
        },
        _ => facts,
    };
    let cache = compile_cache(
        report,
        cache.unwrap_or_else(|| Some(RawCache::default())),
        facts,
    );
    let log = log
        .unwrap_or_else(|| Some(RawLog::default()))
        .and_then(|raw| {
            let level = raw.level?;
            let span = level.span();
            let level = level.into_inner();
            if level.trim().is_empty() {
                report.at(
                    span,
                    "log.level",
                    "must not be empty; leave it out for the default",
                );
            }
            Some(level)
        });
    let routes = match routes {
        // Routes inherit from [cache]. When it is broken its problems are reported already,
        // and the defaults (no tenant, 5m) cannot add spurious route problems.
        Some(value) => {
            let defaults = cache
                .as_ref()
                .map_or(RouteDefaults::FALLBACK, |c| RouteDefaults {
                    ttl: c.default_ttl,
                    tenant: c.tenant.clone(),
                    scope: c.scope,
                });
            compile_routes(report, value, &defaults, facts)
        }
        None => RouteTable::default(),
    };
    let admin = match admin {
        None => Some(None),
        Some(raw) => compile_admin(report, raw).map(Some),
    };
    let webhook = compile_webhook(
        report,
        webhook.unwrap_or_else(|| Some(RawWebhook::default())),
    );
    Some(Config {
        source: source.to_string(),
        server: server?,
        upstream: upstream?,
        cache: cache?,
        routes,
        log,
        admin: admin?,
        webhook: webhook?,
        auth: auth?,
    })
}

/// `[auth]` with its nested `[auth.jwt]` and `[auth.introspect]` tables.
fn compile_auth(report: &mut Report<'_>, value: &Spanned<DeValue<'_>>) -> Option<AuthConfig> {
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

fn compile_admin(report: &mut Report<'_>, raw: Option<RawAdmin>) -> Option<AdminConfig> {
    let raw = raw?;
    let listen = match raw.listen {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
        Some(value) => {
            let span = value.span();
            let text = value.into_inner();
            report.check(
                span,
                "admin.listen",
                text.parse::<SocketAddr>().map_err(|_| {
                    format!("\"{text}\" is not a socket address; expected e.g. \"127.0.0.1:9090\"")
                }),
            )
        }
    };
    let token = secret_source(
        report,
        "admin",
        ("token_env", raw.token_env),
        ("token_file", raw.token_file),
        "CACHEGATE_ADMIN_TOKEN",
    );
    let warm_concurrency =
        count_field(report, raw.warm_concurrency, "admin.warm_concurrency", 8, 1);
    Some(AdminConfig {
        listen: listen?,
        token: token?,
        warm_concurrency: warm_concurrency?,
    })
}

fn compile_webhook(report: &mut Report<'_>, raw: Option<RawWebhook>) -> Option<WebhookConfig> {
    let raw = raw?;
    let prefix = match raw.prefix {
        None => Some("/_cachegate/".to_string()),
        Some(value) => {
            let span = value.span();
            let text = value.into_inner();
            let valid = text.len() > 2
                && text.starts_with('/')
                && text.ends_with('/')
                && !text.contains(['?', '#', '{', '}', '%', ' ']);
            report.check(
                span,
                "webhook.prefix",
                if valid {
                    Ok(text)
                } else {
                    Err(format!(
                        "\"{text}\" must be a plain path that starts and ends with '/', e.g. \"/_cachegate/\""
                    ))
                },
            )
        }
    };
    let path = match (raw.path, &prefix) {
        (None, Some(prefix)) => Some(format!("{prefix}invalidate")),
        (None, None) => None,
        (Some(value), prefix) => {
            let span = value.span();
            let text = value.into_inner();
            let result = match prefix {
                Some(prefix) if text.starts_with(prefix.as_str()) && text.len() > prefix.len() => {
                    Ok(text)
                }
                Some(prefix) => Err(format!(
                    "\"{text}\" must be under the reserved prefix \"{prefix}\""
                )),
                None => Err("cannot be checked while webhook.prefix is invalid".to_string()),
            };
            report.check(span, "webhook.path", result)
        }
    };
    let secret = secret_source(
        report,
        "webhook",
        ("secret_env", raw.secret_env),
        ("secret_file", raw.secret_file),
        "CACHEGATE_WEBHOOK_SECRET",
    );
    let replay_window = duration_field(
        report,
        raw.replay_window,
        "webhook.replay_window",
        Duration::from_secs(300),
        true,
    );
    let max_body = size_field(report, raw.max_body, "webhook.max_body", 1 << 20, 64);
    Some(WebhookConfig {
        prefix: prefix?,
        path: path?,
        secret: secret?,
        replay_window: replay_window?,
        max_body: max_body?,
    })
}

impl fmt::Display for Config {
    /// A summary of the effective settings followed by the route table, for `cachegate check`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.server;
        let u = &self.upstream;
        let c = &self.cache;
        let listen: Vec<String> = s.listen.iter().map(ToString::to_string).collect();
        writeln!(f, "config:   {}", self.source)?;
        writeln!(
            f,
            "listen:   {} (workers {}, max {} connections)",
            listen.join(", "),
            s.workers.map_or("auto".to_string(), |w| w.to_string()),
            s.max_connections
        )?;
        writeln!(
            f,
            "upstream: {} (connect {}, timeout {})",
            u.url,
            format_duration(u.connect_timeout),
            format_duration(u.timeout)
        )?;
        writeln!(
            f,
            "cache:    {}/v{}, {}, objects up to {}, default ttl {}, tenant {}, scope {}",
            c.namespace,
            c.version,
            format_size(c.max_memory),
            format_size(c.max_object_size),
            format_duration(c.default_ttl),
            c.tenant,
            c.scope.map_or("per route".to_string(), |s| s.to_string())
        )?;
        match &self.admin {
            Some(a) => writeln!(f, "admin:    {} (token from {})", a.listen, a.token)?,
            None => writeln!(f, "admin:    off (no [admin] section)")?,
        }
        let w = &self.webhook;
        writeln!(
            f,
            "webhook:  POST {} (secrets from {}, replay window {}); {} is reserved",
            w.path,
            w.secret,
            format_duration(w.replay_window),
            w.prefix
        )?;
        match &self.auth {
            Some(a) => writeln!(f, "auth:     {}", AuthSummary(a))?,
            None => writeln!(
                f,
                "auth:     off (no [auth] section; tenants are taken as sent)"
            )?,
        }
        writeln!(f)?;
        write!(f, "{}", self.routes)
    }
}

impl Config {
    /// Warnings for `check` and the start log: routes keyed by a tenant any client can set,
    /// when no `[auth]` section verifies callers.
    pub fn trust_warnings(&self) -> Vec<String> {
        match &self.auth {
            Some(auth) => auth
                .trusted_proxies
                .iter()
                .filter(|net| {
                    let host_bits = if net.network().is_ipv4() { 32 } else { 128 };
                    // A network this wide is the internet, not an auth gateway.
                    host_bits - net.prefix_len() > if net.network().is_ipv4() { 24 } else { 64 }
                })
                .map(|net| {
                    format!(
                        "auth.trusted_proxies: {net} trusts the tenant header of a very wide \
                         network; list only the auth gateways that set it"
                    )
                })
                .collect(),
            None => self.routes.trust_warnings(),
        }
    }
}

/// One-line description of `[auth]` for the `check` summary.
struct AuthSummary<'a>(&'a AuthConfig);

impl fmt::Display for AuthSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        let mut parts: Vec<String> = Vec::new();
        if let Some(j) = &a.jwt {
            let algorithms = if j.algorithms.is_empty() {
                "algorithms of the key".to_string()
            } else {
                let names: Vec<&str> = j.algorithms.iter().map(|a| a.name()).collect();
                names.join(",")
            };
            let mut checks = String::new();
            if !j.issuer.is_empty() {
                checks.push_str(&format!(", iss {}", j.issuer.join(" ")));
            }
            if !j.audience.is_empty() {
                checks.push_str(&format!(", aud {}", j.audience.join(" ")));
            }
            parts.push(format!(
                "jwt ({}, {algorithms}, tenant claim {}, user claim {}{checks}, leeway {})",
                j.keys,
                j.tenant_claim,
                j.user_claim,
                format_duration(j.leeway)
            ));
        }
        if let Some(i) = &a.introspect {
            parts.push(format!(
                "introspect (GET {}, tenant field {}, user field {}, ttl {})",
                i.path,
                i.tenant_field,
                i.user_field,
                format_duration(i.ttl)
            ));
        }
        if !a.trusted_proxies.is_empty() {
            let nets: Vec<String> = a.trusted_proxies.iter().map(ToString::to_string).collect();
            let user = a
                .user_header
                .as_ref()
                .map_or(String::new(), |h| format!(", user header {h}"));
            parts.push(format!("trusted proxies {}{user}", nets.join(" ")));
        }
        write!(f, "{}; key secret from {}", parts.join("; "), a.key_secret)
    }
}
