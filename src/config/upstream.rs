//! `[upstream]`: the API behind the proxy, and the client's timeouts and pool.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

use super::fields::{count_field, duration_field};
use super::raw::RawUpstream;
use super::report::Report;

/// `[upstream]`: the API behind the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host:port`, without path or query.
    pub url: Uri,
    /// Default 2s.
    pub connect_timeout: Duration,
    /// Time to wait for the response head; default 30s.
    pub timeout: Duration,
    /// Default 64.
    pub pool_max_idle_per_host: usize,
    /// Default 90s.
    pub pool_idle_timeout: Duration,
    /// PEM file of the CA certificates an `https://` upstream's certificate must chain to; they
    /// replace the system roots. `None`: the system roots.
    pub ca_file: Option<PathBuf>,
    /// Offer HTTP/2 through ALPN to an `https://` upstream (HTTP/1.1 when it declines);
    /// default false: HTTP/1.1 only.
    pub http2: bool,
}

pub(super) fn compile_upstream(
    report: &mut Report<'_>,
    raw: Option<RawUpstream>,
) -> Option<UpstreamConfig> {
    let raw = raw?;
    let url = report.check(
        raw.url.span(),
        "upstream.url",
        upstream_url(raw.url.get_ref()),
    );
    let connect_timeout = duration_field(
        report,
        raw.connect_timeout,
        "upstream.connect_timeout",
        Duration::from_secs(2),
        true,
    );
    let timeout = duration_field(
        report,
        raw.timeout,
        "upstream.timeout",
        Duration::from_secs(30),
        true,
    );
    let pool_max_idle_per_host = count_field(
        report,
        raw.pool_max_idle_per_host,
        "upstream.pool_max_idle_per_host",
        64,
        0,
    );
    let pool_idle_timeout = duration_field(
        report,
        raw.pool_idle_timeout,
        "upstream.pool_idle_timeout",
        Duration::from_secs(90),
        false,
    );
    let https = url
        .as_ref()
        .is_some_and(|u| u.scheme_str() == Some("https"));
    let ca_file = match raw.ca_file {
        None => Some(None),
        Some(file) => {
            let span = file.span();
            let path = PathBuf::from(file.into_inner());
            let result = if path.as_os_str().is_empty() {
                Err("must not be empty".to_string())
            } else if url.is_some() && !https {
                Err("is set, but upstream.url is not https://".to_string())
            } else {
                crate::tls::upstream_roots(Some(&path))
                    .map(|_| Some(path))
                    .map_err(|e| e.to_string())
            };
            report.check(span, "upstream.ca_file", result)
        }
    };
    Some(UpstreamConfig {
        ca_file: ca_file?,
        http2: raw.http2.unwrap_or(false),
        url: url?,
        connect_timeout: connect_timeout?,
        timeout: timeout?,
        pool_max_idle_per_host: pool_max_idle_per_host?,
        pool_idle_timeout: pool_idle_timeout?,
    })
}

fn upstream_url(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("invalid url \"{text}\": {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "unsupported scheme \"{other}\"; use http:// or https://"
            ))
        }
        None => {
            return Err(format!(
                "\"{text}\" is not an absolute url; expected e.g. \"http://127.0.0.1:8000\""
            ))
        }
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("\"{text}\" has no host"));
    };
    if authority.as_str().contains('@') {
        return Err("the url may not carry user info".to_string());
    }
    // Request paths are forwarded unchanged, so a base path would silently be dropped.
    if !matches!(uri.path(), "" | "/") {
        return Err(format!(
            "the url may not have a path (\"{}\"); request paths are forwarded as they are",
            uri.path()
        ));
    }
    if uri.query().is_some() {
        return Err("the url may not have a query".to_string());
    }
    Ok(uri)
}
