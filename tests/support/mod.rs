//! Test support: an in-process origin that counts what it sees, the proxy on port 0, a client.

#![allow(dead_code)]

pub mod client;
pub mod origin;

use cachegate::admin::Admin;
use cachegate::config::{Config, SecretSource};
use cachegate::proxy::{Proxy, Setup};
use cachegate::server::{serve, ServeOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The webhook secret and admin token every test proxy is started with.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const JWT_SECRET: &str = "test-jwt-secret-with-enough-entropy";

/// A running proxy and its admin API; shut down when dropped (or explicitly, to test the drain).
pub struct TestProxy {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub proxy: Proxy,
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
    pub async fn start(config_toml: &str, upstream: &str) -> TestProxy {
        let text = config_toml.replace("{upstream}", upstream);
        let config = Config::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let setup = Setup::from_config(&config, |source| match source {
            SecretSource::Env(name) => Ok(match name.as_str() {
                "CACHEGATE_WEBHOOK_SECRET" => Some(WEBHOOK_SECRET.to_string()),
                "CACHEGATE_JWT_SECRET" => Some(JWT_SECRET.to_string()),
                "CACHEGATE_KEY_SECRET" => Some("test-digest-key".to_string()),
                _ => None,
            }),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|e| e.to_string()),
        })
        .unwrap();
        let proxy = Proxy::new(config.clone(), setup).unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin_listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let opts = ServeOptions {
            header_read_timeout: config.server.header_read_timeout,
            max_header_bytes: config.server.max_header_bytes,
            max_connections: config.server.max_connections,
            shutdown_grace: Duration::from_secs(5),
            idle_timeout: config.server.idle_timeout,
        };
        let handler = Arc::new(proxy.clone());
        let admin = Arc::new(Admin::new(proxy.clone(), Some(ADMIN_TOKEN.to_string())));
        let (admin_tx, admin_rx) = oneshot::channel::<()>();
        let admin_opts = opts.clone();
        tokio::spawn(async move {
            serve(vec![admin_listener], admin, admin_opts, async {
                let _ = admin_rx.await;
            })
            .await;
        });
        let task = tokio::spawn(async move {
            serve(vec![listener], handler, opts, async {
                let _ = rx.await;
            })
            .await;
            let _ = admin_tx.send(());
        });
        TestProxy {
            addr,
            admin_addr,
            proxy,
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
