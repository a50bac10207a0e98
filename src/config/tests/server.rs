//! Tests of `[server]` and `[upstream]`: listeners, hosts and the backend address.

use super::*;

#[test]
fn listen_accepts_a_list_and_hosts_are_lower_cased() {
    let config = parse(&with(
        "[server]\nlisten = [\"127.0.0.1:9000\", \"[::1]:9000\"]\nhosts = [\"API.example.com:8080\"]\nworkers = 4\n",
    ));
    assert_eq!(config.server.listen.len(), 2);
    assert_eq!(
        config.server.hosts.as_deref(),
        Some(&["api.example.com:8080".to_string()][..])
    );
    assert_eq!(config.server.workers, Some(4));
}

#[test]
fn upstream_url_problems() {
    let cases = [
        (
            "https://api:443/v1",
            "the url may not have a path (\"/v1\"); request paths are forwarded as they are",
        ),
        (
            "http://api:8000/v1",
            "the url may not have a path (\"/v1\"); request paths are forwarded as they are",
        ),
        ("http://api:8000/?a=1", "the url may not have a query"),
        (
            "ftp://api",
            "unsupported scheme \"ftp\"; use http:// or https://",
        ),
        (
            "/only/a/path",
            "\"/only/a/path\" is not an absolute url; expected e.g. \"http://127.0.0.1:8000\"",
        ),
        ("http://", "invalid url \"http://\": empty string"),
    ];
    for (url, message) in cases {
        let text = format!("[upstream]\nurl = \"{url}\"\n");
        check(
            &text,
            &[&format!("proxy.toml:2:7: upstream.url: {message}")],
        );
    }
}

#[test]
fn missing_upstream_is_reported() {
    check(
        "[server]\nlisten = \"127.0.0.1:1\"\n",
        &["proxy.toml: upstream.url: missing required key (the http:// address of the API behind the proxy)"],
    );
    check(
        "[upstream]\ntimeout = \"1s\"\n",
        &["proxy.toml:1:1: upstream.url: missing required key"],
    );
}

#[test]
fn listen_must_be_a_socket_address() {
    check(
        &with("[server]\nlisten = \"localhost:80\"\n"),
        &["proxy.toml:4:10: server.listen: \"localhost:80\" is not a socket address; expected e.g. \"0.0.0.0:8080\" or \"[::]:8080\""],
    );
}

#[test]
fn limits_have_sane_defaults_and_tls_is_off_by_default() {
    let config = parse("[upstream]\nurl = \"https://api.internal:8443\"\n");
    let s = &config.server;
    assert_eq!(s.tls, None);
    assert_eq!(s.tls_reload_interval, Duration::from_secs(2));
    assert_eq!(s.max_request_body, 10 << 20);
    assert_eq!(s.max_requests_per_connection, 1000);
    assert_eq!(s.http2_max_concurrent_streams, 100);
    assert_eq!(config.upstream.url.scheme_str(), Some("https"));
    assert_eq!(config.upstream.ca_file, None);
    assert!(!config.upstream.http2);
}

#[test]
fn limit_values_are_checked() {
    let text = "[server]\nhttp2_max_concurrent_streams = 0\ntls_reload_interval = \"0s\"\n[upstream]\nurl = \"http://a:1\"\n";
    let err = Config::from_toml(text, "proxy.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "proxy.toml:2:32: server.http2_max_concurrent_streams: must be at least 1, not 0"
        ),
        "{err}"
    );
    assert!(
        err.contains("proxy.toml:3:23: server.tls_reload_interval: must be greater than zero"),
        "{err}"
    );
}
