//! `[server]`: the listeners, their limits and timeouts, and the accepted hosts.

use std::net::SocketAddr;
use std::time::Duration;

use super::fields::{count_field, duration_field, size_field, tls_files};
use super::raw::RawServer;
use super::report::Report;
use crate::tls::TlsFiles;

/// `[server]`: how clients are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Addresses to listen on; default `0.0.0.0:8080`.
    pub listen: Vec<SocketAddr>,
    /// Runtime worker threads; `None` uses every available core.
    pub workers: Option<usize>,
    /// Time a client has to send its request head; default 10s.
    pub header_read_timeout: Duration,
    /// Largest accepted request head; default 64KiB, at least 8KiB.
    pub max_header_bytes: usize,
    /// Open client connections; default 10000.
    pub max_connections: usize,
    /// Allowed Host values, lower-cased, possibly with `:port`; others get 421.
    pub hosts: Option<Vec<String>>,
    /// Time in-flight requests get to finish on shutdown; default 30s.
    pub shutdown_grace: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 and h2 alike);
    /// default 60s. Before its first request a connection gets `header_read_timeout` only.
    pub idle_timeout: Duration,
    /// Reload the config when its file changes (checked every second); default false.
    /// `SIGHUP` and the admin API's `POST /reload` reload it either way.
    pub watch_config: bool,
    /// `tls_cert` and `tls_key`: the listeners speak TLS (ALPN `h2`, `http/1.1`) with this
    /// certificate; `None` serves plain HTTP/1.1 and h2c.
    pub tls: Option<TlsFiles>,
    /// How often the certificate and key files are checked for changes; default 2s.
    pub tls_reload_interval: Duration,
    /// Largest request body forwarded to the backend (413 beyond); default 10MiB.
    pub max_request_body: u64,
    /// Requests served on one connection before it is closed; default 1000, 0 for no limit.
    pub max_requests_per_connection: usize,
    /// Concurrent streams an HTTP/2 client may open on one connection; default 100.
    pub http2_max_concurrent_streams: u32,
}

pub(super) fn compile_server(
    report: &mut Report<'_>,
    raw: Option<RawServer>,
) -> Option<ServerConfig> {
    let raw = raw?;
    let listen = match raw.listen {
        None => Some(vec![SocketAddr::from(([0, 0, 0, 0], 8080))]),
        Some(value) => {
            let span = value.span();
            report.check(span, "server.listen", listen_addresses(value.get_ref()))
        }
    };
    let workers = match raw.workers {
        None => Some(None),
        Some(w) => count_field(report, Some(w), "server.workers", 0, 1).map(Some),
    };
    let header_read_timeout = duration_field(
        report,
        raw.header_read_timeout,
        "server.header_read_timeout",
        Duration::from_secs(10),
        true,
    );
    // hyper refuses read buffers below 8KiB, and a request head must fit in one.
    let max_header_bytes = size_field(
        report,
        raw.max_header_bytes,
        "server.max_header_bytes",
        64 << 10,
        8 << 10,
    )
    .and_then(|n| usize::try_from(n).ok());
    let max_connections = count_field(
        report,
        raw.max_connections,
        "server.max_connections",
        10_000,
        1,
    );
    let hosts = match raw.hosts {
        None => Some(None),
        Some(list) => {
            let mut hosts = Vec::with_capacity(list.len());
            let mut ok = true;
            for host in &list {
                match host_entry(host.get_ref()) {
                    Ok(h) => hosts.push(h),
                    Err(message) => {
                        report.at(host.span(), "server.hosts", message);
                        ok = false;
                    }
                }
            }
            if list.is_empty() {
                report.nowhere(
                    "server.hosts",
                    "is empty, which would refuse every request; leave it out to accept any host",
                );
                ok = false;
            }
            ok.then_some(Some(hosts))
        }
    };
    let shutdown_grace = duration_field(
        report,
        raw.shutdown_grace,
        "server.shutdown_grace",
        Duration::from_secs(30),
        false,
    );
    let idle_timeout = duration_field(
        report,
        raw.idle_timeout,
        "server.idle_timeout",
        Duration::from_secs(60),
        true,
    );
    let tls = tls_files(report, "server", raw.tls_cert, raw.tls_key);
    let tls_reload_interval = duration_field(
        report,
        raw.tls_reload_interval,
        "server.tls_reload_interval",
        Duration::from_secs(2),
        true,
    );
    let max_request_body = size_field(
        report,
        raw.max_request_body,
        "server.max_request_body",
        10 << 20,
        0,
    );
    let max_requests_per_connection = count_field(
        report,
        raw.max_requests_per_connection,
        "server.max_requests_per_connection",
        1000,
        0,
    );
    let http2_max_concurrent_streams = count_field(
        report,
        raw.http2_max_concurrent_streams,
        "server.http2_max_concurrent_streams",
        100,
        1,
    )
    .and_then(|n| u32::try_from(n).ok());
    Some(ServerConfig {
        tls: tls?,
        tls_reload_interval: tls_reload_interval?,
        max_request_body: max_request_body?,
        max_requests_per_connection: max_requests_per_connection?,
        http2_max_concurrent_streams: http2_max_concurrent_streams?,
        idle_timeout: idle_timeout?,
        listen: listen?,
        workers: workers?,
        header_read_timeout: header_read_timeout?,
        max_header_bytes: max_header_bytes?,
        max_connections: max_connections?,
        hosts: hosts?,
        shutdown_grace: shutdown_grace?,
        watch_config: raw.watch_config.unwrap_or(false),
    })
}

fn listen_addresses(value: &toml::Value) -> Result<Vec<SocketAddr>, String> {
    let parse = |v: &toml::Value| {
        match v.as_str() {
        Some(text) => text.parse::<SocketAddr>().map_err(|_| {
            format!("\"{text}\" is not a socket address; expected e.g. \"0.0.0.0:8080\" or \"[::]:8080\"")
        }),
        None => Err("expected an address string or a list of them".to_string()),
    }
    };
    match value {
        toml::Value::Array(items) if items.is_empty() => {
            Err("is empty; give at least one address".to_string())
        }
        toml::Value::Array(items) => items.iter().map(parse).collect(),
        other => parse(other).map(|a| vec![a]),
    }
}

fn host_entry(host: &str) -> Result<String, String> {
    let lower = host.to_ascii_lowercase();
    let valid =
        !lower.is_empty() && !lower.contains('@') && lower.parse::<http::uri::Authority>().is_ok();
    if valid {
        Ok(lower)
    } else {
        Err(format!(
            "\"{host}\" is not a host name, optionally with :port"
        ))
    }
}
