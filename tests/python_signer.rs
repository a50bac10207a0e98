//! Cross-checks the Python signer shipped to backends against the proxy's own verifier, and the
//! senders' retries (client, Django and FastAPI integrations) against scripted test servers.
//!
//! Needs `python3` on PATH; the integrations are standard library only, and the few Django and
//! FastAPI names they import are stood in for by `tests/python/send_driver.py`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cachegate::webhook::{sign, Delivery, Secrets, SigError, Verifier, DEFAULT_WINDOW};

const T: u64 = 1_700_000_000;

fn integrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/integrations")
}

fn python() -> Command {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => Command::new("python3"),
        _ => panic!("python3 is required for tests/python_signer.rs but was not found on PATH"),
    }
}

/// Runs `cachegate_client.py sign` with `body` on stdin and returns the printed header value.
fn python_sign(secret: &str, t: u64, body: &[u8]) -> String {
    let mut child = python()
        .arg(integrations().join("cachegate_client.py"))
        .args(["sign", "--secret", secret, "--t", &t.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python3: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    stdin
        .write_all(body)
        .unwrap_or_else(|e| panic!("cannot write the body: {e}"));
    drop(stdin);
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("python3 failed: {e}"));
    assert!(
        out.status.success(),
        "cachegate_client.py sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap_or_else(|e| panic!("non-utf8 output: {e}"))
        .trim_end()
        .to_owned()
}

fn verifier(secret: &str) -> Verifier {
    let secrets = Secrets::parse(secret).unwrap_or_else(|e| panic!("{e}"));
    Verifier::new(secrets, DEFAULT_WINDOW)
}

fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let big: Vec<u8> = (0..10 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    vec![
        ("empty", Vec::new()),
        (
            "json",
            br#"{"tenant":"42","tags":["rooms","rooms:12"]}"#.to_vec(),
        ),
        (
            "unicode",
            "{\"tags\":[\"caf\u{e9}\"],\"note\":\"\u{1f600} \u{65e5}\u{672c}\"}"
                .as_bytes()
                .to_vec(),
        ),
        ("newlines", b"line one\nline two\r\n\n".to_vec()),
        ("10 KiB", big),
    ]
}

#[test]
fn python_header_is_accepted_for_its_body() {
    for (name, body) in bodies() {
        let header = python_sign("s3cret", T, &body);
        let got = verifier("s3cret").verify(Some(&header), &body, T);
        assert_eq!(got, Ok(Delivery::First), "body {name}");
    }
}

#[test]
fn python_header_is_refused_for_a_tampered_body() {
    for (name, body) in bodies() {
        let header = python_sign("s3cret", T, &body);
        let mut tampered = body.clone();
        tampered.push(b' ');
        let got = verifier("s3cret").verify(Some(&header), &tampered, T);
        assert_eq!(got, Err(SigError::Mismatch), "body {name}");
    }
}

#[test]
fn python_and_rust_sign_identically() {
    for secret in ["s3cret", "a-much-longer-secret-".repeat(5).as_str()] {
        for (name, body) in bodies() {
            assert_eq!(
                python_sign(secret, T, &body),
                sign(secret.as_bytes(), &body, T),
                "body {name}, secret of {} bytes",
                secret.len()
            );
        }
    }
}

#[test]
fn python_rotation_header_carries_every_secret() {
    let body = br#"{"tenant":"1","all":true}"#;
    let header = python_sign("old, new", T, body);
    let rust = Secrets::parse("old, new").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header, rust.sign_all(body, T));
    let only_new = Verifier::new(
        Secrets::parse("new").unwrap_or_else(|e| panic!("{e}")),
        Duration::from_secs(60),
    );
    assert_eq!(only_new.verify(Some(&header), body, T), Ok(Delivery::First));
}

#[test]
fn python_integrations_compile() {
    let files = [
        "cachegate_client.py",
        "django/cachegate_signals.py",
        "fastapi/cachegate_dep.py",
    ];
    for file in files {
        let path = integrations().join(file);
        // The byte code goes to the target folder, not into a __pycache__ in the source tree.
        let out = python()
            .env("PYTHONPYCACHEPREFIX", env!("CARGO_TARGET_TMPDIR"))
            .args(["-m", "py_compile"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("python3 failed: {e}"));
        assert!(
            out.status.success(),
            "{} does not compile: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body) from `stream`.
fn read_request(stream: &mut std::net::TcpStream) -> (Vec<(String, String)>, Vec<u8>) {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("read failed: {e}"));
        assert!(n > 0, "connection closed before the headers ended");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("read failed: {e}"));
        assert!(n > 0, "connection closed before the body ended");
        body.extend_from_slice(&chunk[..n]);
    }
    (headers, body)
}

#[test]
fn python_send_posts_a_signed_json_body() {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot listen: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no address: {e}"))
        .port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener
            .accept()
            .unwrap_or_else(|e| panic!("accept failed: {e}"));
        let (headers, body) = read_request(&mut stream);
        let answer = b"{\"purged\":3}";
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            answer.len()
        );
        stream
            .write_all(response.as_bytes())
            .and_then(|()| stream.write_all(answer))
            .unwrap_or_else(|e| panic!("write failed: {e}"));
        (headers, body)
    });
    let out = python()
        .env("TEST_CACHEGATE_SECRET", "s3cret")
        // A proxy set in the environment must not take the loopback request elsewhere.
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .arg(integrations().join("cachegate_client.py"))
        .args([
            "send",
            "--url",
            &format!("http://127.0.0.1:{port}/_cachegate/invalidate"),
            "--secret-env",
            "TEST_CACHEGATE_SECRET",
            "--json",
            r#"{"tenant":"42","tags":["rooms"]}"#,
        ])
        .output()
        .unwrap_or_else(|e| panic!("python3 failed: {e}"));
    assert!(
        out.status.success(),
        "send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"purged": 3}"#
    );
    let (headers, body) = server.join().unwrap_or_else(|_| panic!("server panicked"));
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    let signature = header("cachegate-signature").unwrap_or_else(|| panic!("no signature"));
    assert!(!signature.contains("s3cret"));
    let t: u64 = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no t in {signature}"));
    assert_eq!(
        verifier("s3cret").verify(Some(&signature), &body, t),
        Ok(Delivery::First)
    );
    let request = cachegate::invalidation::PurgeRequest::from_json(&body, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(request.tags, vec!["rooms".to_owned()]);
}

// === retries of the shipped senders (issue 8, part 4) ===

/// What the scripted test server does with one connection.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Reads the request and closes the connection without answering.
    Drop,
    /// Answers with this status.
    Status(u16),
}

/// A request the scripted server received.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server on 127.0.0.1 answering one request per connection from a script; the
/// last answer repeats once the script is used up. Stops when dropped.
struct Scripted {
    port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scripted {
    fn start(script: &[Answer]) -> Scripted {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot listen: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no address: {e}"))
            .port();
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script = script.to_vec();
        let thread = {
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut next = 0;
                while !stop.load(Ordering::SeqCst) {
                    let mut stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            // Polling for the stop flag, not waiting for an event.
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(e) => panic!("accept failed: {e}"),
                    };
                    stream
                        .set_nonblocking(false)
                        .unwrap_or_else(|e| panic!("{e}"));
                    let (headers, body) = read_request(&mut stream);
                    received
                        .lock()
                        .unwrap_or_else(|e| panic!("{e}"))
                        .push(Received { headers, body });
                    let answer = script[next.min(script.len() - 1)];
                    next += 1;
                    if let Answer::Status(status) = answer {
                        let body = if status == 200 {
                            r#"{"purged":1}"#
                        } else {
                            r#"{"error":"scripted"}"#
                        };
                        let response = format!(
                            "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        // The client may have given up already; that is its business.
                        let _ = stream.write_all(response.as_bytes());
                    }
                }
            })
        };
        Scripted {
            port,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/_cachegate/invalidate", self.port)
    }

    fn received(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap_or_else(|e| panic!("{e}")))
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A URL on a loopback port that nothing listens on: connections are refused.
fn refusing_url() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot listen: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no address: {e}"))
        .port();
    drop(listener);
    format!("http://127.0.0.1:{port}/_cachegate/invalidate")
}

const PURGE: &str = r#"{"tenant": "42", "tags": ["rooms", "rooms:12"]}"#;

/// Sends `PURGE` through one of the shipped senders (`via`: client, django or fastapi) with
/// `tests/python/send_driver.py`, and returns what it printed.
fn send_via(via: &str, url: &str, timeout: f64, retries: u32, raise: bool) -> serde_json::Value {
    let payload: serde_json::Value = serde_json::from_str(PURGE).unwrap_or_else(|e| panic!("{e}"));
    let config = serde_json::json!({
        "via": via,
        "url": url,
        "secret": "s3cret",
        "payload": payload,
        "timeout": timeout,
        "retries": retries,
        "raise": raise,
        "tick": T,
    });
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/send_driver.py");
    let out = python()
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // A proxy set in the environment must not take the loopback request elsewhere.
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .arg(driver)
        .arg(config.to_string())
        .output()
        .unwrap_or_else(|e| panic!("python3 failed: {e}"));
    assert!(
        out.status.success(),
        "the driver failed ({via}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the driver printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The log lines of `level` the sender wrote on the `cachegate` logger.
fn logged(result: &serde_json::Value, level: &str) -> Vec<String> {
    result["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in {result}"))
        .iter()
        .filter(|r| r[0] == level)
        .map(|r| r[1].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Issue 8: a purge that fails for a reason that may pass is sent again, signed anew each time,
/// until it is applied.
#[test]
fn python_senders_retry_a_dropped_connection_a_503_and_a_429_then_succeed() {
    for via in ["client", "django", "fastapi"] {
        let server = Scripted::start(&[
            Answer::Drop,
            Answer::Status(503),
            Answer::Status(429),
            Answer::Status(200),
        ]);
        let result = send_via(via, &server.url(), 10.0, 3, false);
        assert_eq!(result["outcome"], "ok", "{via}: {result}");
        if via == "client" {
            assert_eq!(result["answer"]["purged"], 1, "{result}");
        }
        assert!(logged(&result, "ERROR").is_empty(), "{via}: {result}");
        assert_eq!(logged(&result, "WARNING").len(), 3, "{via}: {result}");
        let received = server.received();
        assert_eq!(received.len(), 4, "{via}: four attempts");
        // Every attempt carries its own signature, made at its own time, for the same body.
        let verifier = verifier("s3cret");
        let mut times = Vec::new();
        for request in &received {
            assert_eq!(request.body, received[0].body, "{via}: the body changed");
            let signature = request
                .header("cachegate-signature")
                .unwrap_or_else(|| panic!("{via}: no signature"));
            let t: u64 = signature
                .strip_prefix("t=")
                .and_then(|rest| rest.split(',').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("no t in {signature}"));
            assert_eq!(
                verifier.verify(Some(signature), &request.body, t),
                Ok(Delivery::First),
                "{via}: {signature}"
            );
            times.push(t);
        }
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{via}: {times:?}");
    }
}

/// A purge that cannot be applied is given up within the sender's time budget and logged at
/// error level naming the tenant and tags that stay stale, or raised when configured.
#[test]
fn python_senders_give_up_within_their_budget_and_say_what_was_not_purged() {
    for via in ["client", "django", "fastapi"] {
        // Connections refused, with more retries than the budget allows.
        let budget = 1.0;
        let result = send_via(via, &refusing_url(), budget, 50, false);
        let elapsed = result["elapsed"].as_f64().unwrap_or(f64::MAX);
        // The slack covers a sleep or an attempt overrunning on a loaded machine (two cores
        // shared with parallel test binaries): a sender ignoring its budget would run its 50
        // retries, far beyond it.
        assert!(elapsed <= budget + 1.0, "{via}: took {elapsed}s: {result}");
        let failure = if via == "client" {
            assert_eq!(result["outcome"], "raised", "{via}: {result}");
            result["error"].as_str().unwrap_or_default().to_owned()
        } else {
            assert_eq!(result["outcome"], "logged", "{via}: {result}");
            let errors = logged(&result, "ERROR");
            assert_eq!(errors.len(), 1, "{via}: {result}");
            errors[0].clone()
        };
        for what in ["tenant 42", "rooms, rooms:12", "unreachable"] {
            assert!(failure.contains(what), "{via}: {what:?} not in {failure:?}");
        }
        assert!(!failure.contains("s3cret"), "{failure}");

        // A proxy that keeps answering 503: the retries are counted, then the failure is final.
        let server = Scripted::start(&[Answer::Status(503)]);
        let result = send_via(via, &server.url(), 10.0, 2, false);
        assert_eq!(server.received().len(), 3, "{via}: {result}");
        assert_ne!(result["outcome"], "ok", "{via}: {result}");

        // Configured to raise, the integrations raise instead of logging.
        if via != "client" {
            let server = Scripted::start(&[Answer::Status(503)]);
            let result = send_via(via, &server.url(), 10.0, 1, true);
            assert_eq!(result["outcome"], "raised", "{via}: {result}");
            assert_eq!(result["status"], 503, "{via}: {result}");
            assert_eq!(result["attempts"], 2, "{via}: {result}");
            assert!(logged(&result, "ERROR").is_empty(), "{via}: {result}");
        }
    }
}

/// A refusal other than 429 (a wrong secret, a bad body, a redirect) would be the same on every
/// attempt: it is final at once.
#[test]
fn python_senders_do_not_retry_a_4xx() {
    let cases = [
        ("client", 400),
        ("client", 404),
        ("client", 413),
        ("django", 401),
        ("fastapi", 401),
    ];
    for (via, status) in cases {
        let server = Scripted::start(&[Answer::Status(status), Answer::Status(200)]);
        let result = send_via(via, &server.url(), 10.0, 3, false);
        assert_eq!(server.received().len(), 1, "{via} {status}: {result}");
        assert_ne!(result["outcome"], "ok", "{via} {status}: {result}");
        assert!(logged(&result, "WARNING").is_empty(), "{via}: {result}");
    }
}
