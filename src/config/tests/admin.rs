//! Tests of `[admin]` and `[webhook]`.

use super::*;

#[test]
fn admin_and_webhook_have_safe_defaults() {
    let config = Config::from_toml(&with("[admin]\n"), "proxy.toml").unwrap();
    let admin = config.admin.unwrap();
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(
        admin.token,
        SecretSource::Env("CACHEGATE_ADMIN_TOKEN".into())
    );
    assert_eq!(admin.warm_concurrency, 8);
    let hook = config.webhook;
    assert_eq!(hook.prefix, "/_cachegate/");
    assert_eq!(hook.path, "/_cachegate/invalidate");
    assert_eq!(
        hook.secret,
        SecretSource::Env("CACHEGATE_WEBHOOK_SECRET".into())
    );
    assert_eq!(hook.replay_window, Duration::from_secs(300));
    // Without an [admin] section there is no admin listener.
    assert!(Config::from_toml(&with(""), "proxy.toml")
        .unwrap()
        .admin
        .is_none());
}

#[test]
fn admin_and_webhook_problems_are_reported() {
    check(
        &with("[admin]\nlisten = \"nowhere\"\ntoken_env = \"A\"\ntoken_file = \"/f\"\n[webhook]\nprefix = \"/x/\"\npath = \"/y/invalidate\"\nsecret_env = \"BAD NAME\"\nreplay_window = \"0s\"\n"),
        &[
            "proxy.toml:4:10: admin.listen: \"nowhere\" is not a socket address; expected e.g. \"127.0.0.1:9090\"",
            "proxy.toml:6:14: admin.token_file: give either token_env or token_file, not both",
            "proxy.toml:9:8: webhook.path: \"/y/invalidate\" must be under the reserved prefix \"/x/\"",
            "proxy.toml:10:14: webhook.secret_env: \"BAD NAME\" is not an environment variable name (letters, digits and _)",
            "proxy.toml:11:17: webhook.replay_window: must be greater than zero",
        ],
    );
}
