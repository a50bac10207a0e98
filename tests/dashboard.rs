//! The dashboard page (`GET /ui`) end to end, in headless Chromium driven over WebDriver:
//! the token typed in, the figures rendered from the admin API, a purge through the form
//! checked through the proxy, a warm through the form, errors shown, and a screenshot.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test says so and passes,
//! unless `CI` is set: then it fails.

#![allow(clippy::unwrap_used)]

mod support;
#[path = "dashboard/webdriver.rs"]
mod webdriver;

use http::Method;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::client::TestClient;
use support::origin::Origin;
use support::{TestProxy, ADMIN_TOKEN, BASE_CONFIG};
use tokio::sync::watch;
use webdriver::{Driver, Session, CHROMEDRIVER, CHROMIUM};

const ORG42: &[(&str, &str)] = &[("x-org-id", "42")];
/// The entry the test purges through the form; the background traffic never asks for it.
const TARGET: &str = "/api/faculty/7/";
/// The viewport, and so the screenshot.
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 800;

/// Whether the browser can run here; `false` (with a message) only outside CI.
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    let message = format!(
        "the dashboard test needs {} (Debian packages chromium and chromium-driver: \
         apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    assert!(!ci, "{message}; CI is set, so this is a failure");
    eprintln!("SKIPPED: {message}");
    false
}

/// Requests over several routes and tenants, a few a second, until told to stop (and at most
/// for a minute), so the charts have something to draw. Never asks for [`TARGET`].
async fn traffic(client: TestClient, mut stop: watch::Receiver<bool>) {
    let paths = [
        "/api/faculty/",
        "/api/departments/",
        "/api/courses/",
        "/api/public/news/",
        "/api/unknown/",
    ];
    for round in 0..1200usize {
        let tenant = if round % 3 == 0 { "7" } else { "42" };
        let path = if round % 4 == 0 {
            format!("/api/faculty/{}/", 100 + round % 10)
        } else {
            paths[round % paths.len()].to_owned()
        };
        client.get(&path, &[("x-org-id", tenant)]).await;
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_cache_and_its_purge_form_evicts() {
    if !browser_available() {
        return;
    }
    let origin = Arc::new(Origin::start().await);
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let first = client.get(TARGET, ORG42).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    for _ in 0..3 {
        assert_eq!(
            client.get(TARGET, ORG42).await.cache_status(),
            "cachegate; hit"
        );
    }
    assert_eq!(origin.hits_on(TARGET), 1);
    let (stop, stopped) = watch::channel(false);
    let background = tokio::spawn(traffic(client.clone(), stopped));

    let driver = Driver::start().await;
    let profile = webdriver::profile_dir();
    let session = Arc::new(driver.session(&profile, WIDTH, HEIGHT).await);
    let url = format!("{}/ui", proxy.admin_url());
    // Run in a task of its own, so that the browser is closed whether the steps pass or not.
    let steps = tokio::spawn(drive(
        Arc::clone(&session),
        url,
        Arc::clone(&origin),
        proxy.admin_addr,
        proxy.addr,
        client,
    ));
    let outcome = steps.await;
    session.quit().await;
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    let _ = stop.send(true);
    let _ = background.await;
    drop(proxy);
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

async fn drive(
    session: Arc<Session>,
    url: String,
    origin: Arc<Origin>,
    admin_addr: SocketAddr,
    proxy_addr: SocketAddr,
    client: TestClient,
) {
    let s = &session;
    s.goto(&url).await;
    s.wait_text("#status", "not connected").await;
    // Without a token the page shows nothing.
    assert_eq!(s.text("#tiles").await, "");

    // A wrong token: the API's refusal is shown.
    s.fill("#token", "not-the-token").await;
    s.click("#connect").await;
    let error = s.wait_text("#error", "wrong bearer token").await;
    assert!(error.contains("GET /stats answered 401"), "{error}");

    // The right one: the figures come.
    s.fill("#token", ADMIN_TOKEN).await;
    s.click("#connect").await;
    s.wait_text("#status", "updated").await;
    s.wait_text("#tiles", "hit ratio").await;
    s.wait_text("#memory", "entries").await;
    s.wait_text("#shared", "not configured").await;
    let top = s.wait_text("#top-keys", TARGET).await;
    assert!(top.contains("42"), "{top}");
    assert_eq!(
        s.text("#error").await,
        "",
        "the error line is cleared once the API answers"
    );
    // The token is kept for the tab, never shown.
    let kept = s
        .script(
            "return [sessionStorage.getItem('cachegate.admin-token'), document.getElementById('token').value];",
            json!([]),
        )
        .await;
    assert_eq!(kept, json!([ADMIN_TOKEN, ""]));

    // A purge the API refuses: its reason is shown by the form.
    s.fill("#purge-tenant", "42").await;
    s.click("#purge-kind option[value=prefixes]").await;
    s.fill("#purge-value", "api/").await;
    s.click("#purge-submit").await;
    let refused = s.wait_text("#purge-result", "answered 400").await;
    assert!(refused.contains("POST /purge"), "{refused}");
    assert_eq!(origin.hits_on(TARGET), 1);

    // The purge of the entry by its path.
    s.click("#purge-kind option[value=paths]").await;
    s.fill("#purge-value", TARGET).await;
    s.click("#purge-submit").await;
    s.wait_text("#purge-result", "purged 1 entry").await;
    s.wait_text("#recent-purges", &format!("tenant=42 paths=[{TARGET}]"))
        .await;
    // Gone: the next request through the proxy is a miss the origin answers.
    let after = client.get(TARGET, ORG42).await;
    assert_eq!(after.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(origin.hits_on(TARGET), 2);

    // Warming through the form fetches through the read path.
    s.fill("#warm-tenant", "42").await;
    // The Host the test client sends: part of the key.
    s.fill("#warm-host", &proxy_addr.to_string()).await;
    s.fill("#warm-paths", "/api/faculty/8/\n/api/faculty/9/")
        .await;
    s.click("#warm-submit").await;
    s.wait_text("#warm-result", "warmed 2, failed 0").await;
    assert_eq!(origin.hits_on("/api/faculty/8/"), 1);
    assert_eq!(
        client.get("/api/faculty/9/", ORG42).await.cache_status(),
        "cachegate; hit"
    );

    // The charts, once a few polls have given rates, then the picture.
    s.wait_data_at_least("#chart-rate", "points", 4).await;
    s.wait_text("#legend", "/api/faculty/").await;
    s.script("window.scrollTo(0, 0);", json!([])).await;
    let png = s.screenshot().await;
    check_png(&png);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&out, &png).unwrap();
    // The committed picture is replaced only when asked, so a test run leaves the tree clean.
    if std::env::var_os("CACHEGATE_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img/dashboard.png");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::write(&docs, &png).unwrap();
        eprintln!("screenshot written to {}", docs.display());
    } else {
        eprintln!("screenshot written to {}", out.display());
    }

    // The API behind the page still refuses without the token.
    let anonymous = TestClient::new(admin_addr);
    for (method, path) in [
        (Method::GET, "/stats"),
        (Method::GET, "/entries/top"),
        (Method::POST, "/purge"),
        (Method::POST, "/warm"),
    ] {
        let answer = anonymous.send(method.clone(), path, &[], "{}").await;
        assert_eq!(answer.status, 401, "{method} {path}");
    }

    // Forgetting the token leaves a page without data.
    s.click("#forget").await;
    s.wait_text("#status", "not connected").await;
    assert_eq!(s.text("#tiles").await, "");
    let kept = s
        .script(
            "return sessionStorage.getItem('cachegate.admin-token');",
            json!([]),
        )
        .await;
    assert_eq!(kept, json!(null));
}

/// A PNG of the viewport's width.
fn check_png(png: &[u8]) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(
        (width, height) == (WIDTH, HEIGHT),
        "screenshot {width}x{height}"
    );
}
