//! Tests of `[cache]`: namespace, sizes, statuses and tag headers.

use super::*;

#[test]
fn object_size_must_be_below_memory() {
    check(
        &with("[cache]\nmax_memory = \"1MiB\"\nmax_object_size = \"1MiB\"\n"),
        &["proxy.toml:5:19: cache.max_object_size: must be smaller than max_memory (1MiB >= 1MiB)"],
    );
}

#[test]
fn bad_statuses_are_reported() {
    check(
        &with("[cache]\ncacheable_statuses = [200, 99, 600]\n"),
        &[
            "proxy.toml:4:28: cache.cacheable_statuses: invalid status 99: must be between 100 and 599",
            "proxy.toml:4:32: cache.cacheable_statuses: invalid status 600: must be between 100 and 599",
        ],
    );
}

#[test]
fn bad_header_names_are_reported() {
    check(
        &with("[cache]\ntenant = { header = \"X Org\" }\n[[route]]\npath = \"/a/\"\nvary = [\"Accept\", \"Connection\"]\n"),
        &[
            "proxy.toml:4:10: cache.tenant: invalid tenant header name \"X Org\"",
            "proxy.toml:7:19: route[0].vary: \"Connection\" is a hop-by-hop header and cannot be used as a vary header",
        ],
    );
}

#[test]
fn namespace_charset() {
    check(
        &with("[cache]\nnamespace = \"c g\"\n"),
        &["proxy.toml:4:13: cache.namespace: invalid namespace \"c g\": use 1 to 32 of A-Z, a-z, 0-9, '_' and '-'"],
    );
}

#[test]
fn partial_conditional_and_interim_statuses_cannot_be_cached() {
    for status in [206, 304, 101] {
        let text = with(&format!("[cache]\ncacheable_statuses = [200, {status}]\n"));
        let err = Config::from_toml(&text, "proxy.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("status {status} cannot be cached")),
            "{err}"
        );
    }
}
