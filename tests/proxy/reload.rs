//! Hot reload: the config file changed under a running instance and reloaded through
//! `POST /reload`, `SIGHUP` (the built binary) and the file watch.

use crate::support::client::TestClient;
use crate::support::origin::Origin;
use crate::support::wait::{until, within};
use crate::support::{TestProxy, ADMIN_TOKEN};
use http::Method;
use std::path::PathBuf;

const ORG: &[(&str, &str)] = &[("x-org-id", "42")];

/// A config file in a directory of its own, removed with it.
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cachegate-reload-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = ConfigFile {
            path: dir.join("reload.toml"),
            dir,
        };
        file.write(text);
        file
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A whole config file on loopback ports of its own, with `routes` (and any other sections)
/// after the fixed head.
fn config(upstream: &str, rest: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
shutdown_grace = "5s"

[upstream]
url = "{upstream}"

[cache]
tenant = {{ header = "X-Org-Id" }}

[admin]
listen = "127.0.0.1:0"
{rest}"#
    )
}

const TWO_ROUTES: &str = r#"
[[route]]
path = "/api/a/"
ttl = "1m"

[[route]]
path = "/api/b/"
ttl = "1m"
"#;

async fn reload(proxy: &TestProxy) -> crate::support::client::Answer {
    proxy.admin(Method::POST, "/reload", "").await
}

/// The TTL left of the entry stored for `target`, as `/entries` reports it.
async fn ttl_left(proxy: &TestProxy, target: &str) -> u64 {
    let path = target.split('?').next().unwrap();
    let answer = proxy
        .admin(
            Method::GET,
            &format!("/entries?tenant=42&prefix={path}"),
            "",
        )
        .await;
    let entries = answer.json()["entries"].as_array().unwrap().clone();
    let entry = entries
        .iter()
        .find(|e| e["target"] == target)
        .unwrap_or_else(|| panic!("no entry for {target}: {}", answer.text()));
    entry["ttl_left_secs"].as_u64().unwrap()
}

#[tokio::test]
async fn a_reload_changes_a_ttl_and_adds_a_route_for_new_requests() {
    let origin = Origin::start().await;
    let file = ConfigFile::new(&config(&origin.url(), TWO_ROUTES));
    let proxy = TestProxy::start_file(&file.path).await;
    let client = TestClient::new(proxy.addr);

    client.get("/api/a/?v=1", ORG).await;
    assert!(ttl_left(&proxy, "/api/a/?v=1").await <= 60);
    let unrouted = client.get("/api/new/", ORG).await;
    assert_eq!(
        unrouted.cache_status(),
        "cachegate; fwd=bypass; detail=no-route"
    );

    let changed = TWO_ROUTES.replacen("ttl = \"1m\"", "ttl = \"1h\"", 1)
        + "\n[[route]]\npath = \"/api/new/\"\n";
    file.write(&config(&origin.url(), &changed));
    let answer = reload(&proxy).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["reloaded"], true);
    assert_eq!(body["changed"], serde_json::json!(["route"]));
    assert_eq!(body["restart_required"], serde_json::json!([]));

    // The entry stored before keeps its TTL; a new fill takes the new one.
    assert!(ttl_left(&proxy, "/api/a/?v=1").await <= 60);
    client.get("/api/a/?v=2", ORG).await;
    assert!(ttl_left(&proxy, "/api/a/?v=2").await > 3000);
    // What was stored before the reload is still served.
    assert_eq!(
        client.get("/api/a/?v=1", ORG).await.cache_status(),
        "cachegate; hit"
    );
    // The new route caches.
    let first = client.get("/api/new/", ORG).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(
        client.get("/api/new/", ORG).await.cache_status(),
        "cachegate; hit"
    );
    let metrics = proxy.admin(Method::GET, "/metrics", "").await.text();
    assert!(
        metrics.contains("cachegate_config_reloads_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("cachegate_config_reload_failures_total 0\n"));
}

#[tokio::test]
async fn an_invalid_config_is_refused_with_its_line_and_the_old_one_stays() {
    let origin = Origin::start().await;
    let file = ConfigFile::new(&config(&origin.url(), TWO_ROUTES));
    let proxy = TestProxy::start_file(&file.path).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/a/", ORG).await;

    let text = config(&origin.url(), &TWO_ROUTES.replacen("\"1m\"", "\"soon\"", 1));
    let line = text.lines().position(|l| l.contains("soon")).unwrap() + 1;
    file.write(&text);
    let answer = reload(&proxy).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["error"], "invalid_config");
    let detail = body["detail"].as_str().unwrap();
    let place = format!("{}:{line}:", file.path.display());
    assert!(detail.starts_with(&place), "{detail} (expected {place})");
    assert!(detail.contains("route[0].ttl"), "{detail}");

    // The running config stays: the route still caches, and its entry is still served.
    assert_eq!(
        client.get("/api/a/", ORG).await.cache_status(),
        "cachegate; hit"
    );
    assert_eq!(
        client.get("/api/new/", ORG).await.cache_status(),
        "cachegate; fwd=bypass; detail=no-route"
    );
    let metrics = proxy.admin(Method::GET, "/metrics", "").await.text();
    assert!(
        metrics.contains("cachegate_config_reload_failures_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("cachegate_config_reloads_total 0\n"));

    // A secret the new file names that cannot be read refuses the reload too.
    let missing = config(&origin.url(), TWO_ROUTES).replace(
        "[admin]",
        "[webhook]\nsecret_file = \"/nonexistent/secret\"\n\n[admin]",
    );
    file.write(&missing);
    let answer = reload(&proxy).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(
        answer.text().contains("/nonexistent/secret"),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn a_kept_alive_connection_keeps_working_across_a_reload() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;

    let origin = Origin::start().await;
    let file = ConfigFile::new(&config(&origin.url(), TWO_ROUTES));
    let proxy = TestProxy::start_file(&file.path).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(conn);
    let get = |path: &str| {
        http::Request::get(path)
            .header("host", "localhost")
            .header("x-org-id", "42")
            .body(Empty::new())
            .unwrap()
    };
    let before = within(
        "a response before the reload",
        sender.send_request(get("/api/b/")),
    )
    .await
    .unwrap();
    assert_eq!(before.status(), 200);
    within("the body", before.into_body().collect())
        .await
        .unwrap();

    file.write(&config(
        &origin.url(),
        &TWO_ROUTES.replace("\"1m\"", "\"2m\""),
    ));
    assert_eq!(reload(&proxy).await.status, 200);

    // The same connection: the proxy neither closed it nor refused the next request.
    within("the connection ready again", sender.ready())
        .await
        .unwrap();
    let after = within(
        "a response after the reload",
        sender.send_request(get("/api/b/")),
    )
    .await
    .unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(after.headers()["cache-status"], "cachegate; hit");
    within("the body", after.into_body().collect())
        .await
        .unwrap();
    assert!(!connection.is_finished());
}

#[tokio::test]
async fn keys_that_need_a_restart_are_reported_and_the_rest_is_applied() {
    let origin = Origin::start().await;
    let file = ConfigFile::new(&config(&origin.url(), TWO_ROUTES));
    let proxy = TestProxy::start_file(&file.path).await;
    let client = TestClient::new(proxy.addr);

    let text = config(&origin.url(), &TWO_ROUTES.replace("/api/b/", "/api/c/"))
        .replacen("127.0.0.1:0", "127.0.0.1:1", 1)
        .replace("[cache]", "[cache]\nmax_memory = \"32MiB\"");
    file.write(&text);
    let answer = reload(&proxy).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["changed"], serde_json::json!(["route"]));
    assert_eq!(
        body["restart_required"],
        serde_json::json!(["server.listen", "cache.max_memory"])
    );
    // Still on the old address, with the new routes.
    let c = client.get("/api/c/", ORG).await;
    assert_eq!(c.cache_status(), "cachegate; fwd=miss; stored");
    let b = client.get("/api/b/", ORG).await;
    assert_eq!(b.cache_status(), "cachegate; fwd=bypass; detail=no-route");
}

#[tokio::test]
async fn route_counters_and_entries_follow_the_route_when_a_reload_reorders_the_table() {
    let origin = Origin::start().await;
    let file = ConfigFile::new(&config(&origin.url(), TWO_ROUTES));
    let proxy = TestProxy::start_file(&file.path).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/b/", ORG).await;
    client.get("/api/b/", ORG).await;
    client.get("/api/a/", ORG).await;

    // /api/b/ first now, with a bound; a new route after them.
    let reordered = r#"
[[route]]
path = "/api/b/"
ttl = "1m"
max_memory = "1MiB"

[[route]]
path = "/api/a/"
ttl = "1m"

[[route]]
path = "/api/z/"
"#;
    file.write(&config(&origin.url(), reordered));
    assert_eq!(reload(&proxy).await.status, 200);
    client.get("/api/b/", ORG).await;

    let stats = proxy.admin(Method::GET, "/stats", "").await.json();
    let routes = stats["routes"].as_array().unwrap();
    let row = |i: usize| {
        let r = &routes[i];
        (
            r["route"].as_u64().unwrap(),
            r["path"].as_str().unwrap().to_owned(),
            r["hits"].as_u64().unwrap(),
            r["misses"].as_u64().unwrap(),
        )
    };
    assert_eq!(row(0), (0, "/api/b/".into(), 2, 1));
    assert_eq!(row(1), (1, "/api/a/".into(), 0, 1));
    assert_eq!(row(2), (2, "/api/z/".into(), 0, 0));
    // The entries filled before the reload are still charged to their own route.
    let memory = stats["route_memory"].as_array().unwrap();
    assert_eq!(memory[0]["path"], "/api/b/");
    assert_eq!(memory[0]["entries"], 1);
    assert_eq!(memory[0]["max_memory"], 1 << 20);
    assert_eq!(memory[1]["path"], "/api/a/");
    assert_eq!(memory[1]["entries"], 1);
    assert_eq!(memory[2]["entries"], 0);

    let metrics = proxy.admin(Method::GET, "/metrics", "").await.text();
    let hits = "cachegate_requests_total{route=\"/api/b/\",method=\"GET\",status_class=\"2xx\",outcome=\"hit\"} 2\n";
    assert!(metrics.contains(hits), "{metrics}");
}

#[tokio::test]
async fn a_watched_file_reloads_when_it_changes() {
    let origin = Origin::start().await;
    let watched = config(&origin.url(), TWO_ROUTES).replace(
        "shutdown_grace = \"5s\"",
        "shutdown_grace = \"5s\"\nwatch_config = true",
    );
    let file = ConfigFile::new(&watched);
    let mut proxy = TestProxy::start_file(&file.path).await;
    let client = TestClient::new(proxy.addr);
    file.write(&(watched.clone() + "\n[[route]]\npath = \"/api/new/\"\n"));
    until("the watch reloads", &mut proxy.reloads, |n| *n == 1).await;
    let first = client.get("/api/new/", ORG).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
}

/// A child process, killed (by its handle) when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the built binary on `file` (rewritten to listen on ports of its own) and returns it
/// with its proxy and admin ports.
fn start_binary(file: &ConfigFile, origin: &Origin) -> (Running, u16, u16) {
    // Ports of our own: bound, read, released (the binary binds them right after).
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (port, admin) = (free(), free());
    let text = config(&origin.url(), TWO_ROUTES)
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{port}"), 1)
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{admin}"), 1);
    file.write(&text);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cachegate"))
        .args(["serve", "--config"])
        .arg(&file.path)
        .env("CACHEGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (Running(child), port, admin)
}

#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let origin = Origin::start().await;
    let file = ConfigFile::new("");
    let (mut child, port, admin) = start_binary(&file, &origin);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    let ready = |addr| async move {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    within("the binary's admin listener", ready(admin_addr)).await;
    within("the binary's proxy listener", ready(addr)).await;
    let client = TestClient::new(addr);
    let before = client.get("/api/new/", ORG).await;
    assert_eq!(
        before.cache_status(),
        "cachegate; fwd=bypass; detail=no-route"
    );

    let text = std::fs::read_to_string(&file.path).unwrap() + "\n[[route]]\npath = \"/api/new/\"\n";
    file.write(&text);
    let pid = child.0.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let reloads = || {
        let admin = TestClient::new(admin_addr);
        async move {
            let auth = format!("Bearer {ADMIN_TOKEN}");
            admin
                .send(Method::GET, "/metrics", &[("authorization", &auth)], "")
                .await
                .text()
        }
    };
    let mut applied = false;
    for _ in 0..500 {
        if reloads()
            .await
            .contains("cachegate_config_reloads_total 1\n")
        {
            applied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(applied, "SIGHUP did not reload within 10 s");
    let after = client.get("/api/new/", ORG).await;
    assert_eq!(after.cache_status(), "cachegate; fwd=miss; stored");
    // The signal reloaded; it did not end the process.
    assert!(child.0.try_wait().unwrap().is_none());
}
