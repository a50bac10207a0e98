//! Test support: an in-process origin that counts what it sees, the proxy on port 0, a client.

#![allow(dead_code)]

pub mod client;
pub mod origin;

use cachegate::config::Config;
use cachegate::proxy::Proxy;
use cachegate::server::{serve, ServeOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running proxy; shut down when dropped (or explicitly, to test the drain).
pub struct TestProxy {
    pub addr: SocketAddr,
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
        let proxy = Proxy::new(config.clone()).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let opts = ServeOptions {
            header_read_timeout: config.server.header_read_timeout,
            max_header_bytes: config.server.max_header_bytes,
            max_connections: config.server.max_connections,
            shutdown_grace: Duration::from_secs(5),
        };
        let handler = Arc::new(proxy.clone());
        let task = tokio::spawn(async move {
            serve(vec![listener], handler, opts, async {
                let _ = rx.await;
            })
            .await;
        });
        TestProxy {
            addr,
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
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
