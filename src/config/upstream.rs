//! `[upstream]`: the API behind the proxy, and the client's timeouts and pool.

use std::time::Duration;

use http::Uri;

use super::fields::{count_field, duration_field};
use super::raw::RawUpstream;
use super::report::Report;

/// `[upstream]`: the API behind the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// `http://host:port`, without path or query.
    pub url: Uri,
    /// Default 2s.
    pub connect_timeout: Duration,
    /// Time to wait for the response head; default 30s.
    pub timeout: Duration,
    /// Default 64.
    pub pool_max_idle_per_host: usize,
    /// Default 90s.
    pub pool_idle_timeout: Duration,
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
    Some(UpstreamConfig {
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
        Some("http") => {}
        Some("https") => return Err("https upstreams are not supported yet".to_string()),
        Some(other) => return Err(format!("unsupported scheme \"{other}\"; use http://")),
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
