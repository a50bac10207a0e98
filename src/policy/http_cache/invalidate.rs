//! Invalidation by unsafe requests (RFC 9111 §4.4).
//!
//! A cache must invalidate the target URI when an unsafe method (or one whose safety it does
//! not know) gets a non-error answer. cachegate goes further for read-your-writes: it evicts
//! unless the answer is a `4xx`, so a `5xx` or a failure (whose effect is unknown) evicts too.
//! The URIs in `Location` and `Content-Location` are evicted as well, only when they name the
//! request's own host (the write path's `same_origin_path`).

use http::{Method, StatusCode};

/// RFC 9110 §9.2.1: the safe methods; any other (unknown ones included) may change state.
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether the answer to an unsafe request invalidates what it names: every answer but a
/// `4xx`, and a failure (`None`: no answer, so the effect is unknown).
pub fn invalidates(status: Option<StatusCode>) -> bool {
    !status.is_some_and(|s| s.is_client_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s4_4_unsafe_and_unknown_methods_invalidate() {
        for m in ["POST", "PUT", "PATCH", "DELETE", "PURGE", "LINK", "CONNECT"] {
            assert!(
                !is_safe(&Method::from_bytes(m.as_bytes()).expect("method")),
                "{m}"
            );
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe(&m), "{m}");
        }
    }

    #[test]
    fn s4_4_must_invalidate_on_a_non_error_status() {
        for s in [200, 201, 204, 301, 303, 308] {
            assert!(
                invalidates(Some(StatusCode::from_u16(s).expect("status"))),
                "{s}"
            );
        }
    }

    #[test]
    fn client_errors_change_nothing_and_other_failures_evict() {
        assert!(!invalidates(Some(StatusCode::NOT_FOUND)));
        assert!(!invalidates(Some(StatusCode::CONFLICT)));
        assert!(invalidates(Some(StatusCode::BAD_GATEWAY)));
        assert!(invalidates(None));
    }
}
