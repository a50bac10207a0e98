//! The composition root: every part of a running cachegate, built from a validated [`Config`],
//! and served until shutdown.
//!
//! `main` and the integration tests both start cachegate through [`App`], so what the tests run
//! is what production runs. Secrets are read at start through a resolver function (in
//! production [`read_secret`]: an environment variable or a file), so that tests can hand in
//! their own. `main` keeps what only a process has: arguments, logging, the runtime, signals and
//! exit codes; it logs the [`StartWarning`]s built here.
//!
//! A running `App` reloads its config through its [`Reloader`] (`reload`): the new file is
//! read and validated, its secrets read through the same resolver and checked by the same
//! builders as at start (`keyed`), and only then put in force.

use crate::admin::Admin;
use crate::auth::digest::DigestKey;
use crate::auth::jwt::{JwtKeys, JwtSettings, JwtVerifier};
use crate::config::{Config, JwtConfig, JwtKeySource, RedisConfig, SecretSource, ServerConfig};
use crate::error::ProxyError;
use crate::proxy::{Proxy, Setup};
use crate::reload::{Prints, Reloader, SecretResolver};
use crate::server::{self, ServeOptions};
use crate::store::shared::{SharedError, SharedOptions, SharedTier};
use crate::tls::{TlsError, TlsState};
use crate::webhook::{Secrets, Verifier};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A cachegate ready to serve: the proxy and, with `[admin]`, the admin API handler.
pub struct App {
    config: Arc<Config>,
    proxy: Proxy,
    /// `None` without an `[admin]` section.
    admin: Option<Arc<Admin>>,
    warnings: Vec<StartWarning>,
    /// Set once the proxy's listeners are closed, when shutdown began.
    closed: watch::Sender<bool>,
    reloader: Reloader,
    tls: Tls,
}

/// The listeners' certificates: what a reload (a config reload, or the files changing) swaps.
#[derive(Clone, Default)]
pub struct Tls {
    /// `[server] tls_cert` / `tls_key`.
    pub server: Option<Arc<TlsState>>,
    /// `[admin] tls_cert` / `tls_key`.
    pub admin: Option<Arc<TlsState>>,
    /// The acceptors over `server` and `admin`, built at start so that serving can't fail.
    acceptors: [Option<tokio_rustls::TlsAcceptor>; 2],
}

impl Tls {
    fn load(config: &Config) -> Result<Tls, StartError> {
        let load = |files: Option<&crate::tls::TlsFiles>| {
            files
                .map(|f| TlsState::load(f.clone()))
                .transpose()
                .map_err(StartError::Tls)
        };
        let server = load(config.server.tls.as_ref())?;
        let admin = load(config.admin.as_ref().and_then(|a| a.tls.as_ref()))?;
        let acceptor = |state: &Option<Arc<TlsState>>| {
            state
                .as_ref()
                .map(|s| s.acceptor())
                .transpose()
                .map_err(StartError::Tls)
        };
        Ok(Tls {
            acceptors: [acceptor(&server)?, acceptor(&admin)?],
            server,
            admin,
        })
    }

    /// Reads every listener's certificate and key files again and serves them from the next
    /// handshake on. A pair that does not load (or whose key does not match) is not swapped in:
    /// the listener keeps serving its previous certificate, and the first error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let mut first = Ok(());
        for state in self.server.iter().chain(&self.admin) {
            if let Err(err) = state.reload() {
                tracing::error!(error = %err, "TLS certificate not reloaded; still serving the previous one");
                if first.is_ok() {
                    first = Err(err);
                }
            }
        }
        first
    }
}

/// The sockets an [`App`] serves: the proxy's listeners and the admin API's.
pub struct Listeners {
    pub proxy: Vec<TcpListener>,
    /// `None` without an `[admin]` section.
    pub admin: Option<TcpListener>,
}

/// Something found at start that works, but probably not as the operator meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartWarning {
    /// No webhook secret is set: invalidation webhooks will be refused.
    NoWebhookSecret(SecretSource),
    /// No credential digest key is set: digests in keys and logs differ per process.
    NoKeySecret(SecretSource),
    /// No admin token is set: the admin API answers only `/healthz`.
    NoAdminToken(SecretSource),
    /// Responses larger than the tier admits but within `max_object_size` are fetched whole and
    /// never stored.
    UnstorableObjects {
        max_object_size: u64,
        admissible: u64,
    },
}

/// Why cachegate cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("webhook secret ({secret}): {reason}")]
    WebhookSecret {
        secret: SecretSource,
        reason: String,
    },
    #[error("{0}")]
    Jwt(String),
    #[error("redis.password_env: the password ({0}) is not set")]
    RedisPassword(SecretSource),
    #[error("[redis]: {0}")]
    Redis(#[source] SharedError),
    #[error("TLS: {0}")]
    Tls(#[source] TlsError),
    #[error("cannot set up the upstream client")]
    Upstream(#[source] ProxyError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
    #[error("cannot listen on {addr} for the admin API")]
    ListenAdmin {
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
}

/// Why a secret named by the config cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not valid UTF-8")]
    NotUnicode(String),
    #[error("cannot read secret file {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("secret file {} is empty", .0.display())]
    Empty(PathBuf),
}

/// Reads a secret named by the config: the production resolver for [`App::build`].
///
/// An unset (or blank) environment variable is `None`: the feature is then refused at request
/// time, with a warning at start. A named file that cannot be read, or is empty, is an error,
/// since the operator clearly meant to configure one. The value is never logged.
pub fn read_secret(source: &SecretSource) -> Result<Option<String>, SecretError> {
    match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => Ok(Some(value.trim().to_string())),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicode(name.clone())),
        },
        SecretSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| SecretError::Unreadable {
                path: path.clone(),
                error,
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(SecretError::Empty(path.clone()));
            }
            Ok(Some(text.to_string()))
        }
    }
}

// === impl Listeners ===

impl Listeners {
    /// Binds every address the config names: each of `[server] listen`, and `[admin] listen`.
    pub async fn bind(config: &Config) -> Result<Listeners, StartError> {
        let mut proxy = Vec::with_capacity(config.server.listen.len());
        for &addr in &config.server.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|error| StartError::Listen { addr, error })?;
            proxy.push(listener);
        }
        let admin = match &config.admin {
            Some(admin) => {
                let addr = admin.listen;
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|error| StartError::ListenAdmin { addr, error })?;
                Some(listener)
            }
            None => None,
        };
        Ok(Listeners { proxy, admin })
    }
}

// === impl App ===

impl App {
    /// Builds every part from `config`, reading the secrets it names through `read_secret`.
    ///
    /// A secret that is not set disables its feature (see [`App::warnings`]); a JWT key that
    /// cannot be loaded is an error, since every route that needs it would otherwise answer 401.
    ///
    /// The resolver is kept: a reload reads the new config's secrets through it.
    pub fn build(
        config: Config,
        read_secret: impl Fn(&SecretSource) -> Result<Option<String>, SecretError>
            + Send
            + Sync
            + 'static,
    ) -> Result<App, StartError> {
        let config = Arc::new(config);
        let tls = Tls::load(&config)?;
        let mut warnings = Vec::new();
        let keyed = keyed(&config, &read_secret, &mut warnings)?;
        let shared = match &config.redis {
            None => None,
            Some(redis) => {
                let options = redis_options(redis, &read_secret)?;
                Some(SharedTier::connect(options).map_err(StartError::Redis)?)
            }
        };
        let setup = Setup {
            webhook: keyed.webhook,
            jwt: keyed.jwt,
            credential_key: keyed.credential_key.unwrap_or_else(DigestKey::random),
            shared,
        };
        let admin_token = keyed.admin_token;
        let proxy = Proxy::new(config.clone(), setup).map_err(StartError::Upstream)?;
        let admissible = proxy.store().memory_max_entry_weight();
        if config.cache.max_object_size > admissible {
            warnings.push(StartWarning::UnstorableObjects {
                max_object_size: config.cache.max_object_size,
                admissible,
            });
        }
        let admin = config
            .admin
            .as_ref()
            .map(|_| Admin::new(proxy.clone(), admin_token));
        let resolver: Box<SecretResolver> = Box::new(read_secret);
        let reloader = Reloader::new(
            proxy.clone(),
            resolver,
            admin.as_ref().map(Admin::access),
            keyed.prints,
        );
        let admin = admin.map(|admin| Arc::new(admin.with_reloader(reloader.clone())));
        // A config reload re-reads the listeners' certificates too.
        reloader.add_part(Arc::new(tls.clone()));
        Ok(App {
            config,
            proxy,
            admin,
            warnings,
            closed: watch::channel(false).0,
            reloader,
            tls,
        })
    }

    /// Reloads read the config from `path` (the file it was loaded from). Without it, as when
    /// cachegate runs on its embedded default, a reload is refused.
    pub fn reload_from(&self, path: PathBuf) {
        self.reloader.set_path(path);
    }

    /// What reloads the config: `SIGHUP`, the admin API's `POST /reload`, the file watch.
    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    /// The listeners' certificates, for a reload to call [`Tls::reload`] on.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// What the operator should hear about at start.
    pub fn warnings(&self) -> &[StartWarning] {
        &self.warnings
    }

    /// Becomes `true` once the proxy's listeners are closed: shutdown has begun and new
    /// connections are refused, while requests in flight may still be draining.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Serves the proxy on `listeners.proxy` and the admin API on `listeners.admin` until
    /// `shutdown` resolves; then both stop accepting and drain, for at most `shutdown_grace`.
    pub async fn serve(self, listeners: Listeners, shutdown: impl Future<Output = ()>) {
        let App {
            config,
            proxy,
            admin,
            closed,
            reloader,
            tls,
            ..
        } = self;
        let mut opts = serve_options(&config.server);
        opts.counters = proxy.stats().connections();
        let mut admin_opts = opts.clone();
        admin_opts.counters = Default::default();
        let [server_tls, admin_tls] = tls.acceptors.clone();
        opts.tls = server_tls;
        admin_opts.tls = admin_tls;
        // The files are watched while serving; `Tls::reload` swaps them on demand too.
        let mut watchers = tokio::task::JoinSet::new();
        for state in tls.server.iter().chain(&tls.admin) {
            watchers.spawn(state.clone().watch(config.server.tls_reload_interval));
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let signal = async move {
            shutdown.await;
            stop_tx.send_replace(true);
        };
        let proxy = server::serve(
            listeners.proxy,
            Arc::new(proxy),
            opts.clone(),
            stopped(stop_rx.clone()),
            || {
                closed.send_replace(true);
            },
        );
        let watch = reloader.watch(stopped(stop_rx.clone()));
        let admin = async {
            if let (Some(handler), Some(listener)) = (admin, listeners.admin) {
                server::serve(vec![listener], handler, admin_opts, stopped(stop_rx), || ()).await;
            }
        };
        tokio::join!(signal, proxy, admin, watch);
        watchers.abort_all();
    }
}

impl crate::reload::Reloadable for Tls {
    fn name(&self) -> &str {
        "tls"
    }

    /// Re-reads the certificate and key files in force. Their paths are bound to the
    /// listeners at start: a change of path is reported by `Config::changes` as needing a
    /// restart. A pair that does not load refuses the reload, and the old one stays.
    fn reload(&self, _old: &Config, _new: &Config) -> Result<Vec<String>, String> {
        Tls::reload(self).map_err(|e| e.to_string())?;
        Ok(Vec::new())
    }
}

/// Resolves once shutdown was signalled.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn serve_options(server: &ServerConfig) -> ServeOptions {
    ServeOptions {
        header_read_timeout: server.header_read_timeout,
        max_header_bytes: server.max_header_bytes,
        max_connections: server.max_connections,
        shutdown_grace: server.shutdown_grace,
        idle_timeout: server.idle_timeout,
        max_requests_per_connection: server.max_requests_per_connection,
        http2_max_concurrent_streams: server.http2_max_concurrent_streams,
        tls: None,
        counters: Default::default(),
    }
}

/// What the secrets a config names key, read through the resolver: everything [`Setup`] holds
/// but the shared tier, the admin token, and the digests a reload compares.
pub(crate) struct Keyed {
    pub(crate) webhook: Option<Verifier>,
    pub(crate) jwt: Option<JwtVerifier>,
    /// `None` when no key secret is set: the process then digests with a random key.
    pub(crate) credential_key: Option<DigestKey>,
    pub(crate) admin_token: Option<String>,
    pub(crate) prints: Prints,
}

/// Reads the secrets the config names and builds what they key: the webhook verifier, the JWT
/// verifier, the credential digest key and the admin token. Used at start and by every reload,
/// so a reload refuses exactly what a start would.
pub(crate) fn keyed(
    config: &Config,
    read_secret: &impl Fn(&SecretSource) -> Result<Option<String>, SecretError>,
    warnings: &mut Vec<StartWarning>,
) -> Result<Keyed, StartError> {
    let mut prints = Prints::default();
    let webhook_secret = read_secret(&config.webhook.secret)?;
    prints.webhook = Prints::of(webhook_secret.as_deref());
    let webhook = match webhook_secret {
        Some(list) => {
            let secrets = Secrets::parse(&list).map_err(|reason| StartError::WebhookSecret {
                secret: config.webhook.secret.clone(),
                reason,
            })?;
            Some(Verifier::new(secrets, config.webhook.replay_window))
        }
        None => {
            warnings.push(StartWarning::NoWebhookSecret(config.webhook.secret.clone()));
            None
        }
    };
    let (jwt, credential_key) = match &config.auth {
        None => (None, None),
        Some(auth) => {
            let key = match read_secret(&auth.key_secret)? {
                Some(secret) => {
                    prints.key = Prints::of(Some(&secret));
                    Some(DigestKey::from_secret(secret.as_bytes()))
                }
                None => {
                    warnings.push(StartWarning::NoKeySecret(auth.key_secret.clone()));
                    None
                }
            };
            let jwt = match &auth.jwt {
                None => None,
                Some(jwt) => {
                    let settings = jwt_settings(jwt, read_secret)?;
                    prints.jwt = Some(Prints::of_jwt(&settings.keys));
                    Some(JwtVerifier::new(settings).map_err(StartError::Jwt)?)
                }
            };
            (jwt, key)
        }
    };
    let admin_token = match &config.admin {
        Some(admin) => {
            let token = read_secret(&admin.token)?;
            if token.is_none() {
                warnings.push(StartWarning::NoAdminToken(admin.token.clone()));
            }
            token
        }
        None => None,
    };
    prints.admin_token = Prints::of(admin_token.as_deref());
    Ok(Keyed {
        webhook,
        jwt,
        credential_key,
        admin_token,
        prints,
    })
}

/// The shared tier's options of `[redis]`, with the password of `password_env` read through
/// the resolver. A named password that is not set refuses to start: Redis would refuse every
/// command, and the shared tier would be off without anyone noticing.
pub fn redis_options(
    redis: &RedisConfig,
    read_secret: &impl Fn(&SecretSource) -> Result<Option<String>, SecretError>,
) -> Result<SharedOptions, StartError> {
    let password = match &redis.password {
        Some(source) => match read_secret(source)? {
            Some(password) => Some(password),
            None => return Err(StartError::RedisPassword(source.clone())),
        },
        None => None,
    };
    Ok(redis.shared_options(password.as_deref()))
}

/// The verifier's settings of an `[auth.jwt]` section: the HMAC secret is read through the
/// resolver like every other secret, a PEM public key file is read here, and a JWKS file is left
/// to the verifier, which re-reads it when it changes.
fn jwt_settings(
    jwt: &JwtConfig,
    read_secret: &impl Fn(&SecretSource) -> Result<Option<String>, SecretError>,
) -> Result<JwtSettings, StartError> {
    let keys = match &jwt.keys {
        JwtKeySource::HsSecret(source) => match read_secret(source)? {
            Some(secret) => JwtKeys::Secret(secret.into_bytes()),
            None => {
                return Err(StartError::Jwt(format!(
                    "auth.jwt: the HMAC secret ({source}) is not set"
                )))
            }
        },
        JwtKeySource::PublicKeyFile(path) => {
            JwtKeys::PublicKeyPem(std::fs::read(path).map_err(|e| {
                StartError::Jwt(format!(
                    "auth.jwt: cannot read the public key {}: {e}",
                    path.display()
                ))
            })?)
        }
        JwtKeySource::JwksFile(path) => JwtKeys::Jwks { path: path.clone() },
    };
    Ok(JwtSettings {
        keys,
        algorithms: jwt.algorithms.clone(),
        tenant_claim: jwt.tenant_claim.clone(),
        user_claim: jwt.user_claim.clone(),
        issuer: jwt.issuer.clone(),
        audience: jwt.audience.clone(),
        leeway: jwt.leeway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = r#"
[upstream]
url = "http://127.0.0.1:8000"

[auth.jwt]
hs256_secret_env = "JWT"
tenant_claim = "org"

[admin]
"#;

    /// A resolver that knows only the named environment variables.
    fn only(
        names: &'static [&'static str],
    ) -> impl Fn(&SecretSource) -> Result<Option<String>, SecretError> {
        move |source| match source {
            SecretSource::Env(name) if names.contains(&name.as_str()) => {
                Ok(Some(format!("secret-of-{name}-with-enough-length")))
            }
            _ => Ok(None),
        }
    }

    fn build(toml: &str, names: &'static [&'static str]) -> Result<App, StartError> {
        App::build(Config::from_toml(toml, "test.toml").unwrap(), only(names))
    }

    #[tokio::test]
    async fn every_secret_left_unset_is_a_warning() {
        let env = |name: &str| SecretSource::Env(name.to_string());
        let app = build(AUTH, &["JWT"]).unwrap();
        assert_eq!(
            app.warnings(),
            &[
                StartWarning::NoWebhookSecret(env("CACHEGATE_WEBHOOK_SECRET")),
                StartWarning::NoKeySecret(env("CACHEGATE_KEY_SECRET")),
                StartWarning::NoAdminToken(env("CACHEGATE_ADMIN_TOKEN")),
            ]
        );
        let all = &[
            "JWT",
            "CACHEGATE_WEBHOOK_SECRET",
            "CACHEGATE_KEY_SECRET",
            "CACHEGATE_ADMIN_TOKEN",
        ];
        assert_eq!(build(AUTH, all).unwrap().warnings(), &[]);
    }

    #[tokio::test]
    async fn an_unset_jwt_secret_refuses_to_start() {
        let err = build(AUTH, &[]).err().unwrap();
        assert!(err.to_string().contains("env JWT"), "{err}");
    }

    #[test]
    fn jwt_settings_read_the_key_file_and_the_secret() {
        let pem = include_bytes!("auth/testdata/rsa_public.pem");
        let path = std::env::temp_dir().join(format!("cachegate-app-{}.pem", std::process::id()));
        std::fs::write(&path, pem).unwrap();
        let config = |keys| JwtConfig {
            keys,
            algorithms: Vec::new(),
            tenant_claim: "org".to_string(),
            user_claim: "sub".to_string(),
            issuer: vec!["https://issuer".to_string()],
            audience: Vec::new(),
            leeway: std::time::Duration::from_secs(30),
        };
        let read = jwt_settings(
            &config(JwtKeySource::PublicKeyFile(path.clone())),
            &only(&[]),
        );
        let _ = std::fs::remove_file(&path);
        let settings = read.unwrap();
        assert!(matches!(settings.keys, JwtKeys::PublicKeyPem(ref read) if read == pem));
        assert_eq!(settings.issuer, ["https://issuer"]);

        let missing = PathBuf::from("/nonexistent/public.pem");
        let err = jwt_settings(&config(JwtKeySource::PublicKeyFile(missing)), &only(&[]))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("auth.jwt: cannot read the public key /nonexistent/public.pem"),
            "{err}"
        );

        let env = || JwtKeySource::HsSecret(SecretSource::Env("JWT".to_string()));
        let err = jwt_settings(&config(env()), &only(&[])).err().unwrap();
        assert_eq!(
            err.to_string(),
            "auth.jwt: the HMAC secret (env JWT) is not set"
        );
        let settings = jwt_settings(&config(env()), &only(&["JWT"])).unwrap();
        assert!(
            matches!(settings.keys, JwtKeys::Secret(ref s) if s == b"secret-of-JWT-with-enough-length")
        );
    }

    #[test]
    fn the_redis_password_is_read_through_the_resolver() {
        let config = |rest: &str| {
            let text = format!("[upstream]\nurl = \"http://127.0.0.1:8000\"\n[redis]\n{rest}");
            Config::from_toml(&text, "test.toml")
                .unwrap()
                .redis
                .unwrap()
        };
        let named = config("url = \"redis://app@r\"\npassword_env = \"REDIS_PASSWORD\"\n");
        let opts = redis_options(&named, &only(&["REDIS_PASSWORD"])).unwrap();
        assert_eq!(
            opts.urls,
            ["redis://app:secret-of-REDIS_PASSWORD-with-enough-length@r:6379/0"]
        );
        let err = redis_options(&named, &only(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "redis.password_env: the password (env REDIS_PASSWORD) is not set"
        );
        let open = config("url = \"redis://r/2\"\n");
        let opts = redis_options(&open, &only(&[])).unwrap();
        assert_eq!(opts.urls, ["redis://r:6379/2"]);
    }

    #[test]
    fn a_secret_file_must_be_readable_and_not_empty() {
        let missing = SecretSource::File(PathBuf::from("/nonexistent/secret"));
        let err = read_secret(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read secret file /nonexistent/secret"
        );
        let path = std::env::temp_dir().join(format!("cachegate-app-{}", std::process::id()));
        std::fs::write(&path, " \n").unwrap();
        let empty = read_secret(&SecretSource::File(path.clone()));
        std::fs::write(&path, "s3cret\n").unwrap();
        let read = read_secret(&SecretSource::File(path.clone()));
        let _ = std::fs::remove_file(&path);
        assert!(matches!(empty, Err(SecretError::Empty(_))), "{empty:?}");
        assert_eq!(read.unwrap().as_deref(), Some("s3cret"));
    }
}
