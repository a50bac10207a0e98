//! Just enough of the W3C WebDriver protocol to drive the dashboard in headless Chromium:
//! chromedriver started on a port of its own choosing, one session, elements found by CSS
//! selector, clicks, typing, scripts, waits on the DOM and a screenshot.

use crate::support::client::TestClient;
use base64::Engine;
use http::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The longest a script, a page load or a wait on the DOM may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The Debian packages' binaries.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process; killed when dropped.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    /// Starts chromedriver on a free loopback port it picks, and waits for it to say which.
    pub async fn start() -> Driver {
        let mut child = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--log-level=SEVERE"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        // Reads the announcement, then drains the pipe so chromedriver never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    if let Ok(port) = rest.trim_end_matches('.').trim().parse() {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let port = tokio::task::spawn_blocking(move || rx.recv_timeout(WAIT))
            .await
            .expect("reader thread")
            .unwrap_or_else(|_| panic!("{CHROMEDRIVER} did not announce its port within {WAIT:?}"));
        Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Opens a headless Chromium session with a viewport of `width` x `height` and a fresh,
    /// empty profile in `profile`. Every request to a host that is not loopback goes to a
    /// closed port, so the browser reaches nothing but the test's servers.
    pub async fn session(&self, profile: &Path, width: u32, height: u32) -> Session {
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-extensions".to_owned(),
            "--proxy-server=127.0.0.1:9".to_owned(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={width},{height}"),
        ];
        let client = TestClient::new(self.addr);
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            }}
        });
        let value = call(&client, Method::POST, "/session", Some(capabilities)).await;
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_owned();
        let session = Session { client, id };
        let ms = WAIT.as_millis() as u64;
        session
            .command(
                Method::POST,
                "timeouts",
                json!({ "script": ms, "pageLoad": ms, "implicit": 0 }),
            )
            .await;
        session.viewport(width, height).await;
        session
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Session {
    client: TestClient,
    id: String,
}

/// Sends one WebDriver command and returns its `value`, failing the test on an error.
async fn call(client: &TestClient, method: Method, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let headers: &[(&str, &str)] = if body.is_empty() {
        &[]
    } else {
        &[("content-type", "application/json")]
    };
    let answer = client.send(method.clone(), path, headers, body).await;
    let mut json: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", answer.text()));
    if !answer.status.is_success() {
        panic!(
            "WebDriver {method} {path} answered {}: {} {}",
            answer.status, json["value"]["error"], json["value"]["message"]
        );
    }
    json["value"].take()
}

impl Session {
    async fn command(&self, method: Method, what: &str, body: Value) -> Value {
        let path = format!("/session/{}/{what}", self.id);
        let body = (method == Method::POST).then_some(body);
        call(&self.client, method, &path, body).await
    }

    /// Sizes the window so that the page's viewport is `width` x `height` (the window's
    /// decorations differ between versions, so they are measured first).
    pub async fn viewport(&self, width: u32, height: u32) {
        let measured = self
            .script(
                "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
                json!([]),
            )
            .await;
        let extra = |i: usize| measured[i].as_u64().unwrap_or(0);
        self.command(
            Method::POST,
            "window/rect",
            json!({ "width": u64::from(width) + extra(0), "height": u64::from(height) + extra(1) }),
        )
        .await;
    }

    pub async fn goto(&self, url: &str) {
        self.command(Method::POST, "url", json!({ "url": url }))
            .await;
    }

    /// The element `css` selects, failing the test when there is none.
    pub async fn find(&self, css: &str) -> String {
        let value = self
            .command(
                Method::POST,
                "element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {value}"))
            .to_owned()
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(Method::POST, &format!("element/{element}/click"), json!({}))
            .await;
    }

    /// Empties the field `css` selects and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(Method::POST, &format!("element/{element}/clear"), json!({}))
            .await;
        self.command(
            Method::POST,
            &format!("element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            Method::POST,
            "execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// The text of the element `css` selects ("" when there is none).
    pub async fn text(&self, css: &str) -> String {
        let text = self
            .script(
                "const n = document.querySelector(arguments[0]); return n ? n.textContent : '';",
                json!([css]),
            )
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Waits, on DOM mutations (no polling), until the element `css` selects exists and its
    /// text contains `want`; returns that text. Bounded by the session's script timeout
    /// ([`WAIT`]): a wait in vain fails the test, naming what it waited for and what the page's
    /// error line says.
    pub async fn wait_text(&self, css: &str, want: &str) -> String {
        self.wait(css, "text", json!(want)).await
    }

    /// Waits, as [`Session::wait_text`] does, until the element `css` selects has a numeric
    /// `data-<name>` of at least `least`.
    pub async fn wait_data_at_least(&self, css: &str, name: &str, least: u64) -> String {
        self.wait(css, "data", json!([name, least])).await
    }

    async fn wait(&self, css: &str, kind: &str, want: Value) -> String {
        const SCRIPT: &str = r#"
            const [css, kind, want, done] = arguments;
            const now = () => {
                const n = document.querySelector(css);
                if (!n) return null;
                if (kind === "text") return n.textContent.includes(want) ? n.textContent : null;
                const v = Number(n.dataset[want[0]]);
                return v >= want[1] ? String(v) : null;
            };
            const found = now();
            if (found !== null) { done(found); return; }
            const watch = new MutationObserver(() => {
                const found = now();
                if (found !== null) { watch.disconnect(); done(found); }
            });
            watch.observe(document.documentElement,
                { subtree: true, childList: true, characterData: true, attributes: true });
        "#;
        let path = format!("/session/{}/execute/async", self.id);
        let body = json!({ "script": SCRIPT, "args": [css, kind, want] }).to_string();
        let answer = self
            .client
            .send(
                Method::POST,
                &path,
                &[("content-type", "application/json")],
                body,
            )
            .await;
        let json: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if answer.status.is_success() {
            return json["value"].as_str().unwrap_or_default().to_owned();
        }
        let seen = self.text(css).await;
        let error = self.text("#error").await;
        panic!(
            "waited {WAIT:?} for {css} ({kind} {want}), in vain ({}): it holds {seen:?}; \
             the page's error line: {error:?}",
            json["value"]["error"]
        );
    }

    /// The viewport as PNG bytes.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self.command(Method::GET, "screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("a base64 screenshot"))
            .expect("valid base64")
    }

    /// Ends the session (and with it the browser).
    pub async fn quit(&self) {
        let path = format!("/session/{}", self.id);
        self.client.send(Method::DELETE, &path, &[], "").await;
    }
}

/// A fresh empty directory for the browser profile, under the target directory.
pub fn profile_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chromium-profile-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("profile directory");
    dir
}
