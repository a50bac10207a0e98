//! Whether a shared cache may store a response (RFC 9111 §3), and which of its header fields
//! it must leave out (§3.1, §5.2.2.4, §5.2.2.7).
//!
//! Beyond the RFC, cachegate never stores a response that sets a cookie (one caller's session
//! would be served to the next); declining to store is always allowed.

use http::header::{SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, Method, StatusCode};

use super::directives::{Fields, ResponseDirectives};
use super::freshness::heuristically_cacheable;
use crate::policy::cacheability::{list_items, NotStored};

/// Final statuses cachegate understands (RFC 9110 §15), which `must-understand` requires.
/// 206 and 304 are not among them: a stored entry is always a full response.
const UNDERSTOOD: [u16; 47] = [
    200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 305, 307, 308, 400, 401, 402, 403, 404, 405,
    406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 428, 429, 431, 451,
    500, 501, 502, 503, 504, 505, 506, 507, 511,
];

/// Whether a status is one cachegate understands as a complete response to store.
pub fn understood(status: StatusCode) -> bool {
    UNDERSTOOD.contains(&status.as_u16())
}

/// What a storable response brings to the decision.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The method of the request the response answers.
    pub method: &'a Method,
    /// Whether that request carried `Authorization` (§3.5).
    pub authorization: bool,
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub directives: &'a ResponseDirectives,
}

/// A storable response: the header fields the stored copy must leave out (those a qualified
/// `private` or `no-cache` names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Storable {
    pub omit: Vec<HeaderName>,
}

/// RFC 9111 §3 for a shared cache.
pub fn storable(x: &Exchange<'_>) -> Result<Storable, NotStored> {
    let d = x.directives;
    // §3: a method the cache understands and defines as cacheable. cachegate fills with GET.
    if x.method != Method::GET {
        return Err(NotStored::Method);
    }
    // §3: a final status; with must-understand, one the cache understands (§5.2.2.3).
    if x.status.is_informational() || !understood(x.status) {
        return Err(NotStored::Status);
    }
    // §5.2.2.5, §5.2.2.3: no-store, unless must-understand with an understood status.
    if d.no_store && !d.must_understand {
        return Err(NotStored::NoStore);
    }
    // §3, §5.2.2.7: a shared cache never stores a private response.
    if matches!(d.private, Some(Fields::All)) {
        return Err(NotStored::Private);
    }
    // §3.5: an answer to a request with Authorization only with public, must-revalidate or
    // s-maxage.
    if x.authorization && !(d.public || d.must_revalidate || d.s_maxage.is_some()) {
        return Err(NotStored::Authorization);
    }
    // §4.1: `Vary: *` never matches a later request: storing it is pointless.
    if list_items(x.headers, &VARY).any(|item| item.is("*")) {
        return Err(NotStored::VaryStar);
    }
    if x.headers.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    // §3: explicit freshness, public, or a status cacheable by default. (A `no-cache`
    // response without any of them is stored for nothing: it is never fresh.)
    let explicit = d.max_age.is_some()
        || d.s_maxage.is_some()
        || x.headers.contains_key(http::header::EXPIRES);
    if !(explicit || d.public || heuristically_cacheable(x.status)) {
        return Err(NotStored::NoFreshness);
    }
    let mut omit = Vec::new();
    for fields in [&d.private, &d.no_cache] {
        if let Some(Fields::Named(names)) = fields {
            for name in names {
                if !omit.contains(name) {
                    omit.push(name.clone());
                }
            }
        }
    }
    Ok(Storable { omit })
}

#[cfg(test)]
mod tests {
    use super::super::directives::response;
    use super::super::testing::headers;
    use super::*;

    fn check(
        method: Method,
        auth: bool,
        status: u16,
        pairs: &[(&str, &str)],
    ) -> Result<Storable, NotStored> {
        let h = headers(pairs);
        let d = response(&h);
        storable(&Exchange {
            method: &method,
            authorization: auth,
            status: StatusCode::from_u16(status).expect("status"),
            headers: &h,
            directives: &d,
        })
    }

    fn get(status: u16, pairs: &[(&str, &str)]) -> Result<Storable, NotStored> {
        check(Method::GET, false, status, pairs)
    }

    #[test]
    fn s3_a_plain_200_is_storable() {
        assert_eq!(get(200, &[]), Ok(Storable::default()));
    }

    #[test]
    fn s3_only_methods_the_cache_understands_as_cacheable() {
        assert_eq!(
            check(Method::POST, false, 200, &[("cache-control", "max-age=60")]),
            Err(NotStored::Method)
        );
    }

    #[test]
    fn s3_must_not_store_a_non_final_or_unknown_status() {
        assert_eq!(get(100, &[]), Err(NotStored::Status));
        assert_eq!(
            get(299, &[("cache-control", "max-age=60")]),
            Err(NotStored::Status)
        );
    }

    #[test]
    fn s3_partial_and_not_modified_responses_are_not_stored_as_entries() {
        assert_eq!(
            get(206, &[("cache-control", "max-age=60")]),
            Err(NotStored::Status)
        );
        assert_eq!(
            get(304, &[("cache-control", "max-age=60")]),
            Err(NotStored::Status)
        );
    }

    #[test]
    fn s5_2_2_5_must_not_store_no_store() {
        assert_eq!(
            get(200, &[("cache-control", "max-age=60, no-store")]),
            Err(NotStored::NoStore)
        );
    }

    #[test]
    fn s5_2_2_3_must_understand_overrides_no_store_for_an_understood_status() {
        assert!(get(
            200,
            &[("cache-control", "must-understand, no-store, max-age=5")]
        )
        .is_ok());
        assert_eq!(
            get(299, &[("cache-control", "must-understand, no-store")]),
            Err(NotStored::Status)
        );
    }

    #[test]
    fn s5_2_2_7_shared_cache_must_not_store_private() {
        assert_eq!(
            get(200, &[("cache-control", "private, max-age=60")]),
            Err(NotStored::Private)
        );
    }

    #[test]
    fn s5_2_2_7_shared_cache_must_not_store_fields_named_by_private() {
        let s = get(200, &[("cache-control", "private=\"x-user\", max-age=60")]).expect("stored");
        assert_eq!(s.omit, vec![HeaderName::from_static("x-user")]);
    }

    #[test]
    fn s5_2_2_4_fields_named_by_no_cache_are_not_reused() {
        let s = get(
            200,
            &[("cache-control", "no-cache=\"x-a, x-b\", max-age=60")],
        )
        .expect("stored");
        assert_eq!(
            s.omit,
            vec![
                HeaderName::from_static("x-a"),
                HeaderName::from_static("x-b")
            ]
        );
    }

    #[test]
    fn s5_2_2_4_no_cache_responses_may_be_stored() {
        assert!(get(200, &[("cache-control", "no-cache")]).is_ok());
    }

    #[test]
    fn s3_5_must_not_reuse_an_answer_to_an_authorized_request_without_permission() {
        assert_eq!(
            check(Method::GET, true, 200, &[("cache-control", "max-age=60")]),
            Err(NotStored::Authorization)
        );
        for allowed in ["public", "must-revalidate, max-age=5", "s-maxage=5"] {
            assert!(
                check(Method::GET, true, 200, &[("cache-control", allowed)]).is_ok(),
                "{allowed}"
            );
        }
    }

    #[test]
    fn s4_1_vary_star_is_never_stored() {
        assert_eq!(
            get(
                200,
                &[("vary", "accept, *"), ("cache-control", "max-age=60")]
            ),
            Err(NotStored::VaryStar)
        );
    }

    #[test]
    fn s3_statuses_not_cacheable_by_default_need_explicit_freshness_or_public() {
        assert_eq!(get(302, &[]), Err(NotStored::NoFreshness));
        assert_eq!(get(500, &[]), Err(NotStored::NoFreshness));
        assert!(get(302, &[("cache-control", "max-age=60")]).is_ok());
        assert!(get(302, &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")]).is_ok());
        assert!(get(302, &[("cache-control", "public")]).is_ok());
        assert!(get(404, &[]).is_ok());
    }

    #[test]
    fn set_cookie_is_never_stored() {
        assert_eq!(
            get(
                200,
                &[
                    ("set-cookie", "a=b"),
                    ("cache-control", "public, max-age=60")
                ]
            ),
            Err(NotStored::SetCookie)
        );
    }
}
