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
use crate::config::{Config, SecretSource, ServerConfig};
use crate::proxy::{Proxy, Setup};
use crate::reload::{Reloader, SecretResolver};
use crate::secrets::{keyed, redis_options};
pub use crate::secrets::{read_secret, SecretError, StartError, StartWarning};
use crate::server::{self, ServeOptions};
use crate::store::shared::SharedTier;
use crate::tls::{TlsError, TlsState};
use std::future::Future;
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
