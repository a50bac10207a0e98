//! `[admin]` and `[webhook]`: the two ways to purge from outside, the operator API on its own
//! listener and the backend's signed webhook under the reserved prefix, with their secrets.

use std::net::SocketAddr;
use std::time::Duration;

use super::fields::{
    count_field, duration_field, secret_source, size_field, tls_files, SecretSource,
};
use super::raw::{RawAdmin, RawWebhook};
use super::report::Report;
use crate::tls::TlsFiles;

/// `[admin]`: the operator API on its own listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default `127.0.0.1:9090`: keep it off public interfaces.
    pub listen: SocketAddr,
    /// The bearer token; default the env var `CACHEGATE_ADMIN_TOKEN`.
    pub token: SecretSource,
    /// Parallel fetches of one `POST /warm`; default 8.
    pub warm_concurrency: usize,
    /// `GET /metrics` is served and the per-request series and latency histograms are
    /// recorded; default true. With false, `/metrics` answers 404 (the `/stats` counters stay).
    pub metrics: bool,
    /// `GET /metrics` answers without the token (for a scraper on a trusted network); default
    /// false.
    pub metrics_open: bool,
    /// `tls_cert` and `tls_key`: the admin listener speaks TLS with this certificate (reloaded
    /// like the main listener's); `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// `[webhook]`: invalidations sent by the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Reserved path prefix on the main listener, never forwarded nor cached; default `/_cachegate/`.
    pub prefix: String,
    /// The invalidation endpoint, under `prefix`; default `<prefix>invalidate`.
    pub path: String,
    /// Comma-separated HMAC secrets (several at once while rotating); default env `CACHEGATE_WEBHOOK_SECRET`.
    pub secret: SecretSource,
    /// How old (or how far in the future) a signature timestamp may be; default 5m.
    pub replay_window: Duration,
    /// Largest accepted request body; default 1MiB.
    pub max_body: u64,
}

pub(super) fn compile_admin(report: &mut Report<'_>, raw: Option<RawAdmin>) -> Option<AdminConfig> {
    let raw = raw?;
    let listen = match raw.listen {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
        Some(value) => {
            let span = value.span();
            let text = value.into_inner();
            report.check(
                span,
                "admin.listen",
                text.parse::<SocketAddr>().map_err(|_| {
                    format!("\"{text}\" is not a socket address; expected e.g. \"127.0.0.1:9090\"")
                }),
            )
        }
    };
    let token = secret_source(
        report,
        "admin",
        ("token_env", raw.token_env),
        ("token_file", raw.token_file),
        "CACHEGATE_ADMIN_TOKEN",
    );
    let warm_concurrency =
        count_field(report, raw.warm_concurrency, "admin.warm_concurrency", 8, 1);
    let tls = tls_files(report, "admin", raw.tls_cert, raw.tls_key);
    Some(AdminConfig {
        tls: tls?,
        listen: listen?,
        token: token?,
        warm_concurrency: warm_concurrency?,
        metrics: raw.metrics.unwrap_or(true),
        metrics_open: raw.metrics_open.unwrap_or(false),
    })
}

pub(super) fn compile_webhook(
    report: &mut Report<'_>,
    raw: Option<RawWebhook>,
) -> Option<WebhookConfig> {
    let raw = raw?;
    let prefix = match raw.prefix {
        None => Some("/_cachegate/".to_string()),
        Some(value) => {
            let span = value.span();
            let text = value.into_inner();
            let valid = text.len() > 2
                && text.starts_with('/')
                && text.ends_with('/')
                && !text.contains(['?', '#', '{', '}', '%', ' ']);
            report.check(
                span,
                "webhook.prefix",
                if valid {
                    Ok(text)
                } else {
                    Err(format!(
                        "\"{text}\" must be a plain path that starts and ends with '/', e.g. \"/_cachegate/\""
                    ))
                },
            )
        }
    };
    let path = match (raw.path, &prefix) {
        (None, Some(prefix)) => Some(format!("{prefix}invalidate")),
        (None, None) => None,
        (Some(value), prefix) => {
            let span = value.span();
            let text = value.into_inner();
            let result = match prefix {
                Some(prefix) if text.starts_with(prefix.as_str()) && text.len() > prefix.len() => {
                    Ok(text)
                }
                Some(prefix) => Err(format!(
                    "\"{text}\" must be under the reserved prefix \"{prefix}\""
                )),
                None => Err("cannot be checked while webhook.prefix is invalid".to_string()),
            };
            report.check(span, "webhook.path", result)
        }
    };
    let secret = secret_source(
        report,
        "webhook",
        ("secret_env", raw.secret_env),
        ("secret_file", raw.secret_file),
        "CACHEGATE_WEBHOOK_SECRET",
    );
    let replay_window = duration_field(
        report,
        raw.replay_window,
        "webhook.replay_window",
        Duration::from_secs(300),
        true,
    );
    let max_body = size_field(report, raw.max_body, "webhook.max_body", 1 << 20, 64);
    Some(WebhookConfig {
        prefix: prefix?,
        path: path?,
        secret: secret?,
        replay_window: replay_window?,
        max_body: max_body?,
    })
}
