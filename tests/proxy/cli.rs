use std::process::Command;

fn cachegate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cachegate"))
        .args(args)
        .env_remove("CACHEGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(text: &str) -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new();
    let path = dir.path.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

mod tempdir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "cachegate-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[test]
fn check_prints_the_route_table_of_the_shipped_config() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml");
    let (code, stdout, stderr) = cachegate(&["check", "--config", shipped]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("/api/faculty/{id}/"), "{stdout}");
    assert!(stdout.contains("faculty:{id}"), "{stdout}");
}

#[test]
fn bad_configs_are_refused_with_file_line_and_key() {
    let cases = [
        ("[cache]\ndefault_ttl = \"5 minutes\"\n", "default_ttl", ":2:"),
        ("[cache]\nmax_memry = \"1MiB\"\n", "max_memry", ":2:"),
        (
            "[upstream]\nurl = \"http://127.0.0.1:8000\"\n[[route]]\npath = \"/a/{id}/\"\ntags = [\"a:{x}\"]\n",
            "{x}",
            ":5:",
        ),
        (
            "[upstream]\nurl = \"http://127.0.0.1:8000\"\n[[route]]\npath = \"/a/{id}/\"\n[[route]]\npath = \"/a/{pk}/\"\n",
            "can never match",
            ":6:",
        ),
    ];
    for (text, needle, line) in cases {
        let (_dir, path) = write_config(text);
        let (code, _stdout, stderr) = cachegate(&["check", "--config", &path]);
        assert_eq!(code, 64, "{text}\n{stderr}");
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
        assert!(
            stderr.contains(&format!("proxy.toml{line}")),
            "{line} not in {stderr}"
        );
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let (code, _stdout, stderr) = cachegate(&["check", "--config", "/nonexistent/proxy.toml"]);
    assert_eq!(code, 64);
    assert!(stderr.contains("/nonexistent/proxy.toml"), "{stderr}");
}

#[test]
fn version_and_help() {
    let (code, stdout, _) = cachegate(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")));
    let (code, stdout, _) = cachegate(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("serve") && stdout.contains("check"));
}

/// The operator subcommands against a real running instance's admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_stats_and_warm_talk_to_the_admin_api() {
    use crate::support::client::TestClient;
    use crate::support::origin::Origin;
    use crate::support::{TestProxy, ADMIN_TOKEN, BASE_CONFIG};
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let admin = proxy.admin_url();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_cachegate"))
                .args(&args)
                .env("CACHEGATE_ADMIN_TOKEN", ADMIN_TOKEN)
                .env_remove("CACHEGATE_CONFIG")
                .env_remove("CACHEGATE_ADMIN_URL")
                .output()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // warm from a file, then the paths are hits
    let (_dir, file) = write_config("# faculty\n/api/faculty/\n/api/faculty/3/\n");
    let host = proxy.addr.to_string();
    let (code, _out, err) = run(args(&[
        "warm", "--admin", &admin, "--tenant", "42", "--host", &host, "--file", &file,
    ]))
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2/2"), "{err}");
    let hit = client.get("/api/faculty/3/", &[("x-org-id", "42")]).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");

    // a URL line is warmed under its own host, without --host
    let (_dir2, file) = write_config(&format!("http://{host}/api/faculty/4/\n"));
    let (code, _out, err) = run(args(&[
        "warm", "--admin", &admin, "--tenant", "42", "--file", &file,
    ]))
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warmed 1/1 (0 failed)"), "{err}");
    let hit = client.get("/api/faculty/4/", &[("x-org-id", "42")]).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");

    // a plain path with no host to warm for is refused, and says why
    let (_dir3, file) = write_config("/api/faculty/5/\n");
    let (code, _out, err) = run(args(&[
        "warm", "--admin", &admin, "--tenant", "42", "--file", &file,
    ]))
    .await
    .unwrap();
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("no host to warm for"), "{err}");

    // stats, human and JSON
    let (code, out, err) = run(args(&["stats", "--admin", &admin])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.to_lowercase().contains("hit"), "{out}");
    let (code, out, _) = run(args(&["stats", "--admin", &admin, "--json"]))
        .await
        .unwrap();
    assert_eq!(code, 0);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["hits"], 2);

    // purge by tag, then the detail misses
    let (code, out, err) = run(args(&[
        "purge",
        "--admin",
        &admin,
        "--tenant",
        "42",
        "--tag",
        "faculty:3",
    ]))
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("purged 1 entry"), "{out}");
    let miss = client.get("/api/faculty/3/", &[("x-org-id", "42")]).await;
    assert_eq!(miss.cache_status(), "cachegate; fwd=miss; stored");

    // a wrong token is refused with a clear message
    let out = tokio::task::spawn_blocking({
        let admin = admin.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_cachegate"))
                .args(["stats", "--admin", &admin, "--token", "wrong"])
                .env_remove("CACHEGATE_ADMIN_TOKEN")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

/// README promises 64 for input that must be fixed; the argument parser's own refusals are such
/// input (clap would exit 2).
#[test]
fn usage_errors_exit_64_like_bad_configs() {
    for args in [
        &["purge"][..],
        &["purge", "--tag"],
        &["nosuch"],
        &["warm", "--bogus"],
        &["warm", "--capture", "1"],
        &["check", "--config"],
        &[],
    ] {
        let (code, stdout, stderr) = cachegate(args);
        assert_eq!(code, 64, "{args:?}: {stderr}");
        assert!(
            stderr.contains("error:") || stderr.contains("Usage:"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stdout, "", "{args:?}");
    }
    // Asking for help or the version is not an error.
    for args in [&["--help"][..], &["purge", "--help"], &["-V"]] {
        let (code, _, stderr) = cachegate(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
    }
}

/// Issue 8: a config without routes caches nothing, and `check` used to pass it silently.
#[test]
fn check_warns_about_a_config_without_routes() {
    let (_dir, path) = write_config("[upstream]\nurl = \"http://127.0.0.1:8000\"\n");
    let (code, stdout, stderr) = cachegate(&["check", "--config", &path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("warning: no [[route]] is configured: every request is forwarded uncached"),
        "{stdout}"
    );
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml");
    let (_, stdout, _) = cachegate(&["check", "--config", shipped]);
    assert!(!stdout.contains("no [[route]]"), "{stdout}");
}

/// Issue 8: "no token configured on the instance" and "wrong token" are different problems with
/// different fixes, and the message says which one it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_an_admin_token_is_told_from_a_wrong_token() {
    use crate::support::origin::Origin;
    use crate::support::{TestProxy, BASE_CONFIG};
    use cachegate::admin::Admin;
    use cachegate::server::{serve, ServeOptions};
    use std::sync::Arc;
    use std::time::Duration;
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tokenless = format!("http://{}", listener.local_addr().unwrap());
    let opts = ServeOptions {
        header_read_timeout: Duration::from_secs(5),
        max_header_bytes: 64 << 10,
        max_connections: 16,
        shutdown_grace: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
        max_requests_per_connection: 0,
        http2_max_concurrent_streams: 100,
        tls: None,
        counters: Default::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = Arc::new(Admin::new(proxy.proxy.clone(), None));
    tokio::spawn(serve(
        vec![listener],
        admin,
        opts,
        async {
            let _ = stopped.await;
        },
        || (),
    ));
    let stats = |url: String| {
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_cachegate"))
                .args(["stats", "--admin", &url, "--token", "some-token"])
                .env_remove("CACHEGATE_ADMIN_TOKEN")
                .env_remove("CACHEGATE_CONFIG")
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let (code, stderr) = stats(tokenless.clone()).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "the instance at {tokenless} has no admin token configured"
        )),
        "{stderr}"
    );
    let (code, stderr) = stats(proxy.admin_url()).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("refused the token (401): it is not this instance's admin token"),
        "{stderr}"
    );
    let _ = stop.send(());
}
