//! Hot reload: the config file read again, validated whole, and put in force for the requests
//! that start after it, or refused with the running config left as it was.
//!
//! Three triggers call [`Reloader::reload`]: `SIGHUP` ([`Reloader::on_sighup`], installed by
//! `main`), the admin API's `POST /reload`, and, with `[server] watch_config = true`, a change
//! of the file's content ([`Reloader::watch`], checked every [`WATCH_INTERVAL`]). One reload
//! runs at a time.
//!
//! A reload runs what a start runs: `Config::from_toml` (every problem with its file, line and
//! key), then the secrets the new config names, read through the resolver the `App` was built
//! with and checked by the same builders (`secrets::keyed`). Only then are the changes listed
//! ([`Config::changes`]), the [`Reloadable`] parts given the new config, and the proxy updated
//! ([`Proxy::update`]), in one swap. A verifier whose secrets did not change is kept, with what
//! it remembers (accepted webhook messages, verified credentials); so is the credential digest
//! key, which keys every entry of a tenant route. Keys the process cannot change while running
//! are reported as needing a restart, and their old values stay in force.

use crate::admin::AdminAccess;
use crate::auth::digest::DigestKey;
use crate::config::{Config, ConfigError, SecretSource};
use crate::proxy::{Part, Proxy, Update};
use crate::secrets::{keyed, Prints, SecretError, StartError, StartWarning};
use arc_swap::ArcSwap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How often a watched config file is read for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The secret resolver an `App` is built with, kept for reloads.
pub type SecretResolver =
    dyn Fn(&SecretSource) -> Result<Option<String>, SecretError> + Send + Sync;

/// A part of a running cachegate, built outside the proxy, that a reload must bring in step
/// with the new config (TLS certificates, for one). Register it with
/// [`Reloader::add_part`]; each reload calls it once the new config and its secrets are
/// valid, in registration order, before the proxy takes the new config.
pub trait Reloadable: Send + Sync {
    /// Its name in logs and errors.
    fn name(&self) -> &str;

    /// Reads what `new` names (files, keys) and puts it in force; returns the keys it
    /// applied (for the answer's `changed`). On an error the part must stay as it was: the
    /// reload is refused with the error and the running config stays.
    fn reload(&self, old: &Config, new: &Config) -> Result<Vec<String>, String>;
}

/// What asked for a reload, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    Admin,
    Watch,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Admin => "POST /reload",
            Trigger::Watch => "file change",
        }
    }
}

/// A reload that put the new config in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys changed and in force now.
    pub changed: Vec<String>,
    /// Keys changed that only a restart applies; their old values stay in force.
    pub restart_required: Vec<String>,
}

/// Why a reload was refused; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no config file to reload: cachegate runs on its embedded default (start it with --config to reload)")]
    NoFile,
    /// Every problem of the file, one a line: `<file>:<line>:<col>: <key>: <what is wrong>`.
    #[error("{0}")]
    Config(ConfigError),
    /// A secret or key file the new config names cannot be used.
    #[error("{0}")]
    Secrets(StartError),
    #[error("{part}: {reason}")]
    Part { part: String, reason: String },
}

/// Reloads the config of a running `App`. Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Shared>,
}

struct Shared {
    proxy: Proxy,
    read_secret: Box<SecretResolver>,
    admin: Option<Arc<ArcSwap<AdminAccess>>>,
    parts: Mutex<Vec<Arc<dyn Reloadable>>>,
    /// Held for the whole of a reload: one at a time.
    state: Mutex<State>,
    /// Reloads applied since start.
    applied: watch::Sender<u64>,
}

struct State {
    /// Where the config was loaded from; `None` for the embedded default.
    path: Option<PathBuf>,
    prints: Prints,
    /// The digest of the file's content as last read, for the watch.
    seen: Option<blake3::Hash>,
}

impl Reloader {
    pub(crate) fn new(
        proxy: Proxy,
        read_secret: Box<SecretResolver>,
        admin: Option<Arc<ArcSwap<AdminAccess>>>,
        prints: Prints,
    ) -> Reloader {
        Reloader {
            inner: Arc::new(Shared {
                proxy,
                read_secret,
                admin,
                parts: Mutex::new(Vec::new()),
                state: Mutex::new(State {
                    path: None,
                    prints,
                    seen: None,
                }),
                applied: watch::channel(0).0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads read `path`. Its content now counts as seen by the watch.
    pub fn set_path(&self, path: PathBuf) {
        let mut state = self.state();
        state.seen = std::fs::read(&path).ok().map(|bytes| blake3::hash(&bytes));
        state.path = Some(path);
    }

    /// Adds a part every later reload brings in step (see [`Reloadable`]).
    pub fn add_part(&self, part: Arc<dyn Reloadable>) {
        self.inner
            .parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(part);
    }

    /// The number of reloads applied since start, as it changes.
    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.inner.applied.subscribe()
    }

    /// Reads, validates and applies the config file; logs and counts the outcome
    /// (`cachegate_config_reloads_total` or `cachegate_config_reload_failures_total`).
    pub fn reload(&self, trigger: Trigger) -> Result<Reloaded, ReloadError> {
        let mut state = self.state();
        let metrics = self.inner.proxy.metrics();
        match self.apply(&mut state) {
            Ok(reloaded) => {
                metrics.reload_applied();
                tracing::info!(
                    trigger = trigger.as_str(),
                    changed = ?reloaded.changed,
                    "config reloaded"
                );
                if !reloaded.restart_required.is_empty() {
                    tracing::warn!(
                        trigger = trigger.as_str(),
                        keys = ?reloaded.restart_required,
                        "restart required to apply: {}; the running values stay until then",
                        reloaded.restart_required.join(", ")
                    );
                }
                self.inner.applied.send_modify(|n| *n += 1);
                Ok(reloaded)
            }
            Err(err) => {
                metrics.reload_failed();
                tracing::error!(
                    trigger = trigger.as_str(),
                    "config reload refused, the running config stays: {err}"
                );
                Err(err)
            }
        }
    }

    fn apply(&self, state: &mut State) -> Result<Reloaded, ReloadError> {
        let path = state.path.clone().ok_or(ReloadError::NoFile)?;
        let text = match std::fs::read(&path) {
            Ok(bytes) => {
                state.seen = Some(blake3::hash(&bytes));
                String::from_utf8(bytes).ok()
            }
            Err(_) => None,
        };
        let new = match text {
            Some(text) => Config::from_toml(&text, &path.display().to_string()),
            // Unreadable or not UTF-8: `load` says which, in its usual words.
            None => Config::load(&path),
        }
        .map_err(ReloadError::Config)?;
        let mut warnings = Vec::new();
        let keyed =
            keyed(&new, &self.inner.read_secret, &mut warnings).map_err(ReloadError::Secrets)?;
        for warning in &warnings {
            log_warning(warning);
        }
        let old = self.inner.proxy.config();
        let mut changes = old.changes(&new);
        let (before, after) = (&state.prints, &keyed.prints);
        for (key, changed) in [
            ("webhook.secret", before.webhook != after.webhook),
            ("auth.key_secret", before.key != after.key),
            ("auth.jwt", before.jwt != after.jwt),
            ("admin.token", before.admin_token != after.admin_token),
        ] {
            if changed && !changes.applied.iter().any(|k| k == key || k == "auth") {
                changes.applied.push(key.to_owned());
            }
        }
        let parts: Vec<Arc<dyn Reloadable>> = self
            .inner
            .parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for part in parts {
            let keys = part
                .reload(&old, &new)
                .map_err(|reason| ReloadError::Part {
                    part: part.name().to_owned(),
                    reason,
                })?;
            changes.applied.extend(keys);
        }

        // Everything is valid: put it in force.
        let key_kept = before.key == after.key;
        let update = Update {
            webhook: if before.webhook == after.webhook
                && old.webhook.replay_window == new.webhook.replay_window
            {
                Part::Keep
            } else {
                Part::New(keyed.webhook)
            },
            credential_key: if key_kept {
                Part::Keep
            } else {
                Part::New(keyed.credential_key.unwrap_or_else(DigestKey::random))
            },
            auth: if key_kept && before.jwt == after.jwt && old.auth == new.auth {
                Part::Keep
            } else {
                Part::New(keyed.jwt)
            },
            config: new,
        };
        let metrics_open = update
            .config
            .admin
            .as_ref()
            .is_some_and(|admin| admin.metrics_open);
        self.inner.proxy.update(update);
        if let Some(admin) = &self.inner.admin {
            admin.store(Arc::new(AdminAccess {
                token: keyed.admin_token,
                metrics_open,
            }));
        }
        state.prints = keyed.prints;
        Ok(Reloaded {
            changed: changes.applied,
            restart_required: changes.restart_required,
        })
    }

    /// Installs the `SIGHUP` handler now (from then on the signal reloads instead of ending
    /// the process) and returns the loop that reloads on each signal, to be spawned.
    #[cfg(unix)]
    pub fn on_sighup(&self) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        let reloader = self.clone();
        Ok(async move {
            while hangups.recv().await.is_some() {
                // Logged and counted by `reload`.
                let _ = reloader.reload(Trigger::Signal);
            }
        })
    }

    /// With `[server] watch_config = true` (as the config in force says), reloads when the
    /// file's content changes, checked every [`WATCH_INTERVAL`], until `stop` resolves. A
    /// content that failed to load is not tried again until it changes.
    pub async fn watch(&self, stop: impl Future<Output = ()>) {
        let ticks = async {
            let mut interval = tokio::time::interval(WATCH_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if !self.inner.proxy.config().server.watch_config {
                    continue;
                }
                let changed = {
                    let state = self.state();
                    let Some(path) = &state.path else { continue };
                    let now = std::fs::read(path).ok().map(|b| blake3::hash(&b));
                    now.is_some() && now != state.seen
                };
                if changed {
                    // Logged and counted by `reload`.
                    let _ = self.reload(Trigger::Watch);
                }
            }
        };
        tokio::select! {
            () = stop => {}
            () = ticks => {}
        }
    }
}

/// A start warning that holds for the reloaded config too.
fn log_warning(warning: &StartWarning) {
    tracing::warn!(warning = ?warning, "after reload");
}
