//! `ProxyError`: every failure cachegate answers for itself, and the one place that maps it to a status.

use http::StatusCode;
use std::time::Duration;

/// A failure that cachegate answers itself, with a JSON body, instead of a backend response.
///
/// Variants say where the failure came from; `status()` is the only mapping to HTTP. Clients get a
/// short, stable `error` code and a one-line `detail`; the log line gets the whole source chain.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream connection failed")]
    UpstreamConnect(#[source] BoxError),
    #[error("upstream timed out after {0:?}")]
    UpstreamTimeout(Duration),
    #[error("upstream connection not established within {0:?}")]
    UpstreamConnectTimeout(Duration),
    /// The upstream's certificate was refused, or its TLS handshake failed (rustls' reason).
    #[error("upstream TLS handshake failed: {0}")]
    UpstreamTls(String),
    #[error("the request body exceeds {0} bytes")]
    BodyTooLarge(u64),
    #[error("the request head exceeds {0} bytes")]
    HeadersTooLarge(usize),
    #[error("upstream protocol error")]
    UpstreamProtocol(#[source] BoxError),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("misdirected request: host {0:?} is not served here")]
    MisdirectedHost(String),
    #[error("internal error: {0}")]
    Internal(&'static str),
    #[error("authentication required: {0}")]
    Unauthenticated(&'static str),
    #[error("credential refused: {0}")]
    BadCredential(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("the credential cannot be verified now: {0}")]
    AuthUnavailable(String),
}

/// The boxed source error kept for logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::UpstreamConnect(_) | ProxyError::UpstreamProtocol(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout(_) | ProxyError::UpstreamConnectTimeout(_) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::UpstreamTls(_) => StatusCode::BAD_GATEWAY,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Unauthenticated(_) | ProxyError::BadCredential(_) => {
                StatusCode::UNAUTHORIZED
            }
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::AuthUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable machine-readable code for the JSON body and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::UpstreamConnect(_) => "upstream_unreachable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::UpstreamConnectTimeout(_) => "upstream_connect_timeout",
            ProxyError::UpstreamTls(_) => "upstream_tls",
            ProxyError::BodyTooLarge(_) => "payload_too_large",
            ProxyError::HeadersTooLarge(_) => "headers_too_large",
            ProxyError::UpstreamProtocol(_) => "upstream_protocol",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::MisdirectedHost(_) => "misdirected_request",
            ProxyError::Internal(_) => "internal",
            ProxyError::Unauthenticated(_) => "unauthenticated",
            ProxyError::BadCredential(_) => "invalid_credential",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::AuthUnavailable(_) => "auth_unavailable",
        }
    }

    /// The JSON body sent to the client: `{"error": code, "detail": message}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({ "error": self.code(), "detail": self.to_string() }).to_string()
    }

    /// The whole chain of causes, for a log line.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// Waiters answer with the same error the leader got. `ProxyError` holds boxed sources that
/// cannot be cloned, so the copy keeps the kind (and so the status and code) and the message,
/// with the source chain flattened into one text.
impl ProxyError {
    /// The copy each waiter of a failed fill answers with.
    pub(crate) fn copy_for_waiters(&self) -> ProxyError {
        match self {
            ProxyError::UpstreamConnect(source) => {
                ProxyError::UpstreamConnect(chain(source.as_ref()).into())
            }
            ProxyError::UpstreamTimeout(d) => ProxyError::UpstreamTimeout(*d),
            ProxyError::UpstreamConnectTimeout(d) => ProxyError::UpstreamConnectTimeout(*d),
            ProxyError::UpstreamTls(m) => ProxyError::UpstreamTls(m.clone()),
            ProxyError::BodyTooLarge(n) => ProxyError::BodyTooLarge(*n),
            ProxyError::HeadersTooLarge(n) => ProxyError::HeadersTooLarge(*n),
            ProxyError::UpstreamProtocol(source) => {
                ProxyError::UpstreamProtocol(chain(source.as_ref()).into())
            }
            ProxyError::BadRequest(m) => ProxyError::BadRequest(m),
            ProxyError::MisdirectedHost(h) => ProxyError::MisdirectedHost(h.clone()),
            ProxyError::Internal(m) => ProxyError::Internal(m),
            ProxyError::Unauthenticated(m) => ProxyError::Unauthenticated(m),
            ProxyError::BadCredential(m) => ProxyError::BadCredential(m),
            ProxyError::Forbidden(m) => ProxyError::Forbidden(m),
            ProxyError::AuthUnavailable(m) => ProxyError::AuthUnavailable(m.clone()),
        }
    }
}

/// An error and each error it was caused by, outermost first. Unlike `source()` alone, it
/// steps into an `io::Error` that wraps another error (as TLS layers do), which `source()`
/// skips over.
pub fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| {
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

/// An error's message followed by each of its sources, joined with `": "`
/// (`upstream connection failed: connection refused`). The one walker of error chains.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        out.push_str(": ");
        out.push_str(&next.to_string());
        source = next.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_error_reads_like_the_original() {
        let original = ProxyError::UpstreamConnect("connection refused".into());
        let copy = original.copy_for_waiters();
        assert_eq!(copy.chain(), original.chain());
        assert_eq!(copy.status(), original.status());
        let timeout = ProxyError::UpstreamTimeout(Duration::from_secs(2));
        assert_eq!(timeout.copy_for_waiters().chain(), timeout.chain());
    }

    #[test]
    fn each_error_maps_to_its_status_and_json() {
        let cases: Vec<(ProxyError, u16, &str)> = vec![
            (
                ProxyError::UpstreamConnect("refused".into()),
                502,
                "upstream_unreachable",
            ),
            (
                ProxyError::UpstreamTimeout(Duration::from_secs(5)),
                504,
                "upstream_timeout",
            ),
            (
                ProxyError::UpstreamConnectTimeout(Duration::from_secs(1)),
                504,
                "upstream_connect_timeout",
            ),
            (
                ProxyError::UpstreamTls("invalid peer certificate: UnknownIssuer".into()),
                502,
                "upstream_tls",
            ),
            (ProxyError::BodyTooLarge(10), 413, "payload_too_large"),
            (ProxyError::HeadersTooLarge(8192), 431, "headers_too_large"),
            (ProxyError::BadRequest("missing host"), 400, "bad_request"),
            (
                ProxyError::MisdirectedHost("evil.test".into()),
                421,
                "misdirected_request",
            ),
            (
                ProxyError::Unauthenticated("no credential"),
                401,
                "unauthenticated",
            ),
            (
                ProxyError::BadCredential("expired"),
                401,
                "invalid_credential",
            ),
            (ProxyError::Forbidden("tenant mismatch"), 403, "forbidden"),
            (
                ProxyError::AuthUnavailable("down".into()),
                503,
                "auth_unavailable",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status);
            let body: serde_json::Value = serde_json::from_str(&err.json_body()).unwrap();
            assert_eq!(body["error"], code);
            assert!(body["detail"].as_str().unwrap().len() > 3);
        }
    }

    #[test]
    fn chain_includes_the_source() {
        let err = ProxyError::UpstreamConnect("connection refused".into());
        assert_eq!(
            err.chain(),
            "upstream connection failed: connection refused"
        );
    }
}
