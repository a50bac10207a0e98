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

#[test]
fn tenant_share_is_a_whole_percentage() {
    let off = parse(MINIMAL);
    assert_eq!(off.cache.max_tenant_share, 100);
    assert_eq!(
        off.cache.tenant_share_bytes(),
        None,
        "100% enforces nothing"
    );
    for (written, share) in [
        ("25", 25),
        ("\"25%\"", 25),
        ("\" 50 % \"", 50),
        ("\"100%\"", 100),
    ] {
        let config = parse(&with(&format!(
            "[cache]\nmax_memory = \"4MiB\"\nmax_tenant_share = {written}\n"
        )));
        assert_eq!(config.cache.max_tenant_share, share, "{written}");
    }
    let quarter = parse(&with(
        "[cache]\nmax_memory = \"4MiB\"\nmax_tenant_share = \"25%\"\n",
    ));
    assert_eq!(quarter.cache.tenant_share_bytes(), Some(1 << 20));
    for (written, message) in [
        ("0", "must be between 1% and 100%, not 0%"),
        ("\"101%\"", "must be between 1% and 100%, not 101%"),
        (
            "12.5",
            "invalid percentage 12.5: use a whole number from 1 to 100",
        ),
        (
            "\"a quarter\"",
            "invalid percentage \"a quarter\": use a whole number from 1 to 100, such as \"25%\"",
        ),
        ("true", "expected a percentage such as 25 or \"25%\""),
    ] {
        check(
            &with(&format!("[cache]\nmax_tenant_share = {written}\n")),
            &[&format!(
                "proxy.toml:4:20: cache.max_tenant_share: {message}"
            )],
        );
    }
}
