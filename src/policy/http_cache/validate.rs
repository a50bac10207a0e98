//! Validation (RFC 9111 §4.3): the validators a revalidation sends, which stored response a
//! `304` selects, and how it updates the stored header fields (§3.2, §4.3.4).

use http::header::{
    AGE, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, SET_COOKIE,
};
use http::{HeaderMap, HeaderName};

use super::directives::{self, Fields};
use super::etag;
use super::http_date;
use crate::policy::cacheability::{is_hop_by_hop, list_items};

/// §4.3.1: the conditional headers a revalidation of `stored` sends: `If-None-Match` with its
/// entity tag (a MUST when it has one), and `If-Modified-Since` with its `Last-Modified`.
pub fn conditional_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(tag) = stored.get(ETAG) {
        if etag::parse(tag.as_bytes()).is_some() {
            out.insert(IF_NONE_MATCH, tag.clone());
        }
    }
    if let Some(modified) = stored.get(LAST_MODIFIED) {
        if http_date(stored, &LAST_MODIFIED).is_some() {
            out.insert(IF_MODIFIED_SINCE, modified.clone());
        }
    }
    out
}

/// §4.3.4: whether a `304` selects the stored response (cachegate holds one per key): by a
/// strong `ETag` that matches it strongly, a weak one that matches weakly, else by an equal
/// `Last-Modified`; a `304` without validators selects a stored response without any.
pub fn selects(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    let stored_tag = stored.get(ETAG).and_then(|v| etag::parse(v.as_bytes()));
    if let Some(new) = not_modified
        .get(ETAG)
        .and_then(|v| etag::parse(v.as_bytes()))
    {
        return stored_tag.is_some_and(|old| {
            if new.weak {
                old.weak_eq(&new)
            } else {
                old.strong_eq(&new)
            }
        });
    }
    let new_modified = http_date(not_modified, &LAST_MODIFIED);
    let old_modified = http_date(stored, &LAST_MODIFIED);
    match new_modified {
        Some(new) => old_modified == Some(new),
        None => stored_tag.is_none() && old_modified.is_none(),
    }
}

/// Fields a `304` never changes in a stored response: `Content-Length` (§3.2), hop-by-hop
/// fields (§3.1), `Content-Encoding` and `Content-Range` (they describe the stored body, §3.2
/// allows keeping them), `Age` (cachegate computes it) and `Set-Cookie` (never stored).
pub fn update_excluded(name: &HeaderName) -> bool {
    is_hop_by_hop(name)
        || *name == CONTENT_LENGTH
        || *name == CONTENT_ENCODING
        || *name == CONTENT_RANGE
        || *name == AGE
        || *name == SET_COOKIE
        || name.as_str() == "proxy-authentication-info"
}

/// §3.2 / §4.3.4: the stored header fields updated by a `304`: each field the `304` carries
/// replaces every stored line of that name, except the excluded ones and those its
/// `Connection` names; then the fields a qualified `private` or `no-cache` names are dropped.
pub fn updated_headers(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = list_items(not_modified, &CONNECTION)
        .filter_map(|item| HeaderName::from_bytes(item.name).ok())
        .collect();
    let mut out = stored.clone();
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in not_modified {
        if update_excluded(name) || named.contains(name) {
            continue;
        }
        if !replaced.contains(&name) {
            out.remove(name);
            replaced.push(name);
        }
        out.append(name.clone(), value.clone());
    }
    let d = directives::response(&out);
    for fields in [&d.private, &d.no_cache] {
        if let Some(Fields::Named(names)) = fields {
            for name in names {
                out.remove(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{date, headers};
    use super::*;

    #[test]
    fn s4_3_1_must_send_the_stored_entity_tag_when_validating() {
        let stored = headers(&[("etag", "W/\"v1\""), ("content-type", "text/plain")]);
        let out = conditional_headers(&stored);
        assert_eq!(
            out.get(IF_NONE_MATCH).map(|v| v.as_bytes()),
            Some(&b"W/\"v1\""[..])
        );
        assert!(!out.contains_key(IF_MODIFIED_SINCE));
    }

    #[test]
    fn s4_3_1_last_modified_becomes_if_modified_since() {
        let lm = date(5);
        let stored = headers(&[("last-modified", &lm), ("etag", "\"a\"")]);
        let out = conditional_headers(&stored);
        assert_eq!(
            out.get(IF_MODIFIED_SINCE).map(|v| v.to_str().ok()),
            Some(Some(lm.as_str()))
        );
        assert!(out.contains_key(IF_NONE_MATCH));
        assert!(conditional_headers(&headers(&[("last-modified", "garbage")])).is_empty());
    }

    #[test]
    fn s4_3_4_a_strong_validator_selects_by_strong_comparison() {
        let stored = headers(&[("etag", "\"v1\"")]);
        assert!(selects(&stored, &headers(&[("etag", "\"v1\"")])));
        assert!(!selects(&stored, &headers(&[("etag", "\"v2\"")])));
        let weak_stored = headers(&[("etag", "W/\"v1\"")]);
        assert!(!selects(&weak_stored, &headers(&[("etag", "\"v1\"")])));
    }

    #[test]
    fn s4_3_4_a_weak_validator_selects_by_weak_comparison() {
        let stored = headers(&[("etag", "\"v1\"")]);
        assert!(selects(&stored, &headers(&[("etag", "W/\"v1\"")])));
        let lm = date(5);
        let stored = headers(&[("last-modified", &lm)]);
        assert!(selects(&stored, &headers(&[("last-modified", &lm)])));
        assert!(!selects(&stored, &headers(&[("last-modified", &date(6))])));
    }

    #[test]
    fn s4_3_4_no_validator_selects_only_a_stored_response_without_one() {
        assert!(selects(&headers(&[]), &headers(&[("date", &date(1))])));
        assert!(!selects(&headers(&[("etag", "\"v1\"")]), &headers(&[])));
    }

    #[test]
    fn s3_2_a_304_replaces_the_stored_fields_it_carries() {
        let stored = headers(&[
            ("cache-control", "max-age=10"),
            ("x-a", "1"),
            ("x-a", "2"),
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
        ]);
        let nm = headers(&[
            ("cache-control", "max-age=60"),
            ("x-a", "3"),
            ("x-new", "n"),
            ("etag", "\"v1\""),
        ]);
        let out = updated_headers(&stored, &nm);
        assert_eq!(
            out.get("cache-control").map(|v| v.as_bytes()),
            Some(&b"max-age=60"[..])
        );
        let xa: Vec<_> = out.get_all("x-a").iter().collect();
        assert_eq!(xa, ["3"]);
        assert_eq!(out.get("x-new").map(|v| v.as_bytes()), Some(&b"n"[..]));
        assert_eq!(
            out.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
    }

    #[test]
    fn s3_2_a_304_must_not_update_content_length_or_hop_by_hop_fields() {
        let stored = headers(&[("content-length", "12"), ("content-encoding", "gzip")]);
        let nm = headers(&[
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("age", "30"),
            ("set-cookie", "a=b"),
        ]);
        let out = updated_headers(&stored, &nm);
        assert_eq!(
            out.get("content-length").map(|v| v.as_bytes()),
            Some(&b"12"[..])
        );
        assert_eq!(
            out.get("content-encoding").map(|v| v.as_bytes()),
            Some(&b"gzip"[..])
        );
        for name in ["connection", "x-hop", "keep-alive", "age", "set-cookie"] {
            assert!(!out.contains_key(name), "{name}");
        }
    }

    #[test]
    fn s3_1_fields_a_304_marks_private_are_not_stored() {
        let stored = headers(&[("x-user", "alice")]);
        let nm = headers(&[("cache-control", "private=\"x-user\", max-age=5")]);
        let out = updated_headers(&stored, &nm);
        assert!(!out.contains_key("x-user"));
    }
}
