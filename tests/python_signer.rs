//! Cross-checks the Python signer shipped to backends against the proxy's own verifier.
//!
//! Needs `python3` on PATH; the integrations are standard library only, so nothing else.

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
