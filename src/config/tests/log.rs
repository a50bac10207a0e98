//! Tests of `[log]` and of the `[admin]` metrics keys.

use super::*;

#[test]
fn log_defaults_to_text_with_access_lines() {
    let log = parse(MINIMAL).log;
    assert_eq!(log.level, None);
    assert!(log.access);
    assert_eq!(log.format, LogFormat::Text);
}

#[test]
fn log_keys_are_read() {
    let config = parse(&with(
        "[log]\nlevel = \"warn\"\naccess = false\nformat = \"json\"\n",
    ));
    assert_eq!(
        config.log,
        LogConfig {
            level: Some("warn".to_string()),
            access: false,
            format: LogFormat::Json,
        }
    );
}

#[test]
fn log_problems_are_reported() {
    check(
        &with("[log]\nlevel = \" \"\nformat = \"xml\"\naccess = \"yes\"\n"),
        &[
            "proxy.toml:4:9: log.level: must not be empty; leave it out for the default",
            "proxy.toml:5:10: log.format: \"xml\" is not a log format; expected \"text\" or \"json\"",
            "proxy.toml:6:10: log.access: invalid type: string \"yes\", expected true or false",
        ],
    );
}

#[test]
fn metrics_are_on_and_behind_the_token_by_default() {
    let admin = parse(&with("[admin]\n")).admin.unwrap();
    assert!(admin.metrics);
    assert!(!admin.metrics_open);
    let admin = parse(&with("[admin]\nmetrics = false\nmetrics_open = true\n"))
        .admin
        .unwrap();
    assert!(!admin.metrics);
    assert!(admin.metrics_open);
}
