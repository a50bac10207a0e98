//! The HTTP side of the operator commands: a client for the admin API, one function per
//! endpoint, and what can go wrong, with messages an operator can act on.

use super::ADMIN_TOKEN_ENV;
use crate::admin_api::{
    EntriesAnswer, EntriesQuery, ErrorBody, PurgeAnswer, PurgeBody, Refusal, ReloadAnswer,
    WarmReport, WarmRequest,
};
use crate::error::chain;
use crate::notation::format_duration;
use crate::stats::Report;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Cow;
use std::error::Error as _;
use std::time::Duration;

/// The largest admin response read; an entries listing is the only large one, and a runaway
/// answer should end in an error rather than in the operator's terminal eating memory.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why an admin command failed. The messages are printed as they are after `cachegate: `.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no admin token: pass --token or --token-file, or set {ADMIN_TOKEN_ENV}")]
    MissingToken,
    #[error("the admin token contains characters that cannot be sent in a header")]
    BadToken,
    #[error("invalid admin URL \"{url}\": {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the admin API at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the admin API at {url} did not answer within {}", format_duration(*.timeout))]
    Timeout { url: String, timeout: Duration },
    /// `401`, with what the server said about the token.
    #[error("{}", unauthorized_message(url, *.refusal, detail))]
    Unauthorized {
        url: String,
        refusal: Option<Refusal>,
        detail: String,
    },
    #[error("the admin API answered {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("unexpected answer from the admin API: {0}")]
    Protocol(String),
    /// The operator's input (a file, a list) cannot be used.
    #[error("{0}")]
    Input(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl AdminError {
    /// Whether the operator's input is at fault (usage exit status) rather than the server or
    /// the network. A `400` is the admin API refusing the request the flags built (a bad tag, no
    /// host to warm for), so it is the input's fault too.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AdminError::MissingToken
                | AdminError::BadToken
                | AdminError::BadUrl { .. }
                | AdminError::Input(_)
                | AdminError::Status { status: 400, .. }
        )
    }
}

/// The message of a `401`: an instance without a token needs its operator to configure one;
/// a wrong token needs the right one.
fn unauthorized_message(url: &str, refusal: Option<Refusal>, detail: &str) -> String {
    match refusal {
        Some(Refusal::NoTokenConfigured) => format!(
            "the instance at {url} has no admin token configured, so its admin API refuses every request (401): set [admin] token_env or token_file there and restart it"
        ),
        Some(Refusal::WrongToken) => format!(
            "the admin API at {url} refused the token (401): it is not this instance's admin token"
        ),
        Some(Refusal::MissingToken) => {
            format!("the admin API at {url} received no bearer token (401)")
        }
        None => format!("the admin API at {url} refused the token (401): {detail}"),
    }
}

// === the client ===

/// A connection pool on one admin API with its token and per-request timeout.
pub struct AdminClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port` plus any path prefix, without a trailing slash.
    base: String,
    authorization: HeaderValue,
    timeout: Duration,
}

/// A decoded admin answer together with the bytes it came from, for `--json`.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T> Reply<T> {
    /// The raw answer as text, ending in a newline.
    pub fn raw_text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.raw).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

impl AdminClient {
    /// A client for the admin API at `url` (`http://` is assumed when no scheme is given).
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<AdminClient, AdminError> {
        let base = base_url(url)?;
        if token.is_empty() {
            return Err(AdminError::MissingToken);
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| AdminError::BadToken)?;
        // Keeps the token out of any debug rendering of the request.
        authorization.set_sensitive(true);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(AdminClient {
            client,
            base,
            authorization,
            timeout,
        })
    }

    /// The base URL requests go to, as shown in error messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends one request and returns the body of a 2xx answer; every other outcome is an error.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, AdminError> {
        let uri: Uri = format!("{}{path_and_query}", self.base)
            .parse()
            .map_err(|err| AdminError::Input(format!("cannot build the request URL: {err}")))?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("cachegate/", env!("CARGO_PKG_VERSION")));
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|err| AdminError::Input(format!("cannot build the request: {err}")))?;
        let exchange = async {
            let response = self.client.request(req).await.map_err(|err| {
                // The client's outer error only says `client error (Connect)`; its causes say why.
                let detail = err.source().map_or_else(|| chain(&err), chain);
                if err.is_connect() {
                    AdminError::Unreachable {
                        url: self.base.clone(),
                        detail,
                    }
                } else {
                    AdminError::Protocol(detail)
                }
            })?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|err| AdminError::Protocol(format!("cannot read the answer: {err}")))?
                .to_bytes();
            Ok::<_, AdminError>((parts.status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_elapsed| AdminError::Timeout {
                url: self.base.clone(),
                timeout: self.timeout,
            })??;
        if status.is_success() {
            return Ok(bytes);
        }
        if status == http::StatusCode::UNAUTHORIZED {
            let detail = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|body| body.detail)
                .unwrap_or_default();
            return Err(AdminError::Unauthorized {
                url: self.base.clone(),
                refusal: Refusal::from_detail(&detail),
                detail: error_detail(&bytes),
            });
        }
        Err(AdminError::Status {
            status: status.as_u16(),
            detail: error_detail(&bytes),
        })
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply<T>, AdminError> {
        let raw = self.call(method, path_and_query, body).await?;
        let value = serde_json::from_slice(&raw)
            .map_err(|err| AdminError::Protocol(format!("{path_and_query}: {err}")))?;
        Ok(Reply { value, raw })
    }
}

/// Checks an admin URL and returns it as `http://authority[/prefix]`.
pub(super) fn base_url(url: &str) -> Result<String, AdminError> {
    let bad = |reason: &str| AdminError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = url.trim();
    let with_scheme: Cow<'_, str> = if trimmed.contains("://") {
        Cow::Borrowed(trimmed)
    } else {
        Cow::Owned(format!("http://{trimmed}"))
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|_| bad("expected e.g. http://127.0.0.1:9090"))?;
    match uri.scheme_str() {
        Some("http") => {}
        // No TLS stack is built in: the admin listener is meant for loopback or a private network.
        Some("https") => return Err(bad("only http:// is supported")),
        _ => return Err(bad("expected e.g. http://127.0.0.1:9090")),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("no host"));
    };
    if uri.query().is_some() {
        return Err(bad("a query string is not allowed"));
    }
    let prefix = uri.path().trim_end_matches('/');
    Ok(format!("http://{authority}{prefix}"))
}

/// The readable part of an error answer: its `detail` (with the `error` code), else its text.
fn error_detail(body: &[u8]) -> String {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        match (parsed.error.is_empty(), parsed.detail.is_empty()) {
            (false, false) => return format!("{}: {}", parsed.error, parsed.detail),
            (true, false) => return parsed.detail,
            (false, true) => return parsed.error,
            (true, true) => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "no details given".to_string();
    }
    // An HTML error page from something in between can be long; the start says enough.
    text.chars().take(200).collect()
}

// === the endpoints ===

/// `POST /purge`.
pub async fn purge(
    client: &AdminClient,
    body: &PurgeBody,
) -> Result<Reply<PurgeAnswer>, AdminError> {
    let body = to_json(body)?;
    client.call_json(Method::POST, "/purge", Some(body)).await
}

/// `GET /stats`.
pub async fn stats(client: &AdminClient) -> Result<Reply<Report>, AdminError> {
    client.call_json(Method::GET, "/stats", None).await
}

/// `POST /reload`.
pub async fn reload(client: &AdminClient) -> Result<Reply<ReloadAnswer>, AdminError> {
    client.call_json(Method::POST, "/reload", None).await
}

/// `GET /entries`.
pub async fn entries(
    client: &AdminClient,
    query: &EntriesQuery,
) -> Result<Reply<EntriesAnswer>, AdminError> {
    client
        .call_json(Method::GET, &query.path_and_query(), None)
        .await
}

/// `POST /warm` with one batch.
pub async fn warm_batch(
    client: &AdminClient,
    req: &WarmRequest,
) -> Result<Reply<WarmReport>, AdminError> {
    let body = to_json(req)?;
    client.call_json(Method::POST, "/warm", Some(body)).await
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, AdminError> {
    serde_json::to_vec(value).map_err(|err| AdminError::Input(format!("cannot encode: {err}")))
}
