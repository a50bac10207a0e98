//! The JSON answers cachegate gives itself (the admin API and the webhook): the response, its
//! error body, and reading a bounded request body.

use crate::admin_api::ErrorBody;
use crate::body::ProxyBody;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;

/// How long a webhook or admin request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads a request body of at most `limit` bytes, or answers 413 / 408 / 400.
pub async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, Response<ProxyBody>> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // A client trickling its body must not hold the request (and its connection) open forever.
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await;
    let Ok(read) = read else {
        return Err(json(
            StatusCode::REQUEST_TIMEOUT,
            &error_body("request_timeout", "the request body did not arrive in time"),
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &error_body(
                    "payload_too_large",
                    &format!("the body exceeds {limit} bytes"),
                ),
            ))
        }
        Err(_) => Err(json(
            StatusCode::BAD_REQUEST,
            &error_body("bad_request", "the request body could not be read"),
        )),
    }
}

/// `{"error": code, "detail": detail}`.
pub fn error_body(code: &str, detail: &str) -> ErrorBody {
    ErrorBody::new(code, detail)
}

/// A JSON response cachegate answers itself; never cached by clients or intermediaries.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<ProxyBody> {
    // Serializing these plain structs cannot fail; an empty object keeps the answer JSON anyway.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(ProxyBody::full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
