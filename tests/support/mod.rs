//! Test support: an in-process origin that counts what it sees, the proxy on port 0, a client.

#![allow(dead_code)]

pub mod client;
pub mod origin;
pub mod redis;
pub mod tls;
pub mod wait;

use cachegate::app::{self, App, Listeners, SecretError};
use cachegate::config::{Config, SecretSource};
use cachegate::proxy::Proxy;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The webhook secret and admin token every test proxy is started with.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const JWT_SECRET: &str = "test-jwt-secret-with-enough-entropy";

/// The secret resolver of test proxies: the test secrets for the variables the configs name, files
/// read as in production.
fn test_secret(source: &SecretSource) -> Result<Option<String>, SecretError> {
    match source {
        SecretSource::Env(name) => Ok(match name.as_str() {
            "CACHEGATE_WEBHOOK_SECRET" => Some(WEBHOOK_SECRET.to_string()),
            "CACHEGATE_JWT_SECRET" => Some(JWT_SECRET.to_string()),
            "CACHEGATE_KEY_SECRET" => Some("test-digest-key".to_string()),
            "CACHEGATE_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_string()),
            _ => None,
        }),
        SecretSource::File(_) => app::read_secret(source),
    }
}

/// A running proxy and its admin API; shut down when dropped (or explicitly, to test the drain).
pub struct TestProxy {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub proxy: Proxy,
    /// Becomes `true` once the proxy's listener is closed (shutdown began).
    pub closed: watch::Receiver<bool>,
    /// The number of config reloads applied, as it changes.
    pub reloads: watch::Receiver<u64>,
    /// The listeners' certificates, to reload as a config reload would.
    pub tls: app::Tls,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The config used when a test does not care: one list and one detail route per resource,
/// tenant from `X-Org-Id`. `{upstream}` is replaced with the origin's URL.
pub const BASE_CONFIG: &str = r#"
[upstream]
url = "{upstream}"
connect_timeout = "1s"
timeout = "2s"

[cache]
max_memory = "64MiB"
max_object_size = "1MiB"
default_ttl = "5m"
tenant = { header = "X-Org-Id" }
coalesce_timeout = "5s"

[[route]]
path = "/api/faculty/"
resource = "faculty"
ttl = "5m"

[[route]]
path = "/api/faculty/{id}/"
resource = "faculty"
ttl = "1h"
tags = ["department"]
invalidates = ["department"]

[[route]]
path = "/api/departments/"
resource = "department"

[[route]]
path = "/api/courses/"
resource = "course"
vary = ["Accept-Language"]

[[route]]
path = "/api/public/{*rest}"
tenant = "none"

[[route]]
path = "/api/auth/{*rest}"
cache = false
"#;

impl TestProxy {
    /// Starts cachegate as `main` does, through `App`, with `config_toml` (`{upstream}` replaced
    /// by `upstream`). Test proxies differ from production only in where they listen (loopback
    /// ports of their own), in always having an admin API, in a shorter drain, and in the
    /// secrets they are given (the test ones above).
    pub async fn start(config_toml: &str, upstream: &str) -> TestProxy {
        let mut text = config_toml.replace("{upstream}", upstream);
        if !text.contains("[admin]") {
            text.push_str("\n[admin]\n");
        }
        let mut config = Config::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        config.server.listen = vec![loopback];
        config.server.shutdown_grace = Duration::from_secs(5);
        if let Some(admin) = &mut config.admin {
            admin.listen = loopback;
        }
        TestProxy::serve(config, None).await
    }

    /// Starts cachegate from the config file at `path`, as `main` does with `--config`:
    /// reloads read the file again. The file must have an `[admin]` section, and listen on
    /// loopback port 0 (what it says is what runs: nothing is overridden, so a reload compares
    /// like with like).
    pub async fn start_file(path: &Path) -> TestProxy {
        let config = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
        TestProxy::serve(config, Some(path)).await
    }

    async fn serve(config: Config, reload_from: Option<&Path>) -> TestProxy {
        let listeners = Listeners::bind(&config).await.unwrap();
        let addr = listeners.proxy[0].local_addr().unwrap();
        let admin_addr = listeners.admin.as_ref().unwrap().local_addr().unwrap();
        let app = App::build(config, test_secret).unwrap_or_else(|e| panic!("{e}"));
        if let Some(path) = reload_from {
            app.reload_from(path.to_path_buf());
        }
        let reloads = app.reloader().watch_applied();
        let proxy = app.proxy().clone();
        let closed = app.closed();
        let tls = app.tls().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listeners, async {
            let _ = rx.await;
        }));
        TestProxy {
            addr,
            admin_addr,
            proxy,
            closed,
            reloads,
            tls,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Signals shutdown and waits for the server to finish draining.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The number of times a request started waiting on another's fill, as it changes.
    pub fn watch_waits(&self) -> watch::Receiver<u64> {
        self.proxy.stats().watch_waits()
    }
}

/// The signature header value for `body`, signed now with the test secret.
pub fn sign(body: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    cachegate::webhook::sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes(), now)
}

impl TestProxy {
    /// Sends a signed invalidation webhook.
    pub async fn invalidate(&self, body: &str) -> client::Answer {
        let client = client::TestClient::new(self.addr);
        client
            .send(
                http::Method::POST,
                "/_cachegate/invalidate",
                &[
                    ("cachegate-signature", &sign(body)),
                    ("content-type", "application/json"),
                ],
                body.to_string(),
            )
            .await
    }

    /// Calls the admin API with the test token.
    pub async fn admin(&self, method: http::Method, path: &str, body: &str) -> client::Answer {
        let client = client::TestClient::new(self.admin_addr);
        let auth = format!("Bearer {ADMIN_TOKEN}");
        client
            .send(method, path, &[("authorization", &auth)], body.to_string())
            .await
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
