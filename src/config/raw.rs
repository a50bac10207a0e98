//! The file as written: one private serde struct per section, each refusing unknown keys, with
//! the span of every value so that problems can name their line and column.
//!
//! This is the `proxy.toml` schema, a compatibility surface: renaming or removing a key breaks
//! deployed files. The sections compile these into the validated types.

use std::fmt;

use serde::de;
use serde::Deserialize;
use toml::Spanned;

/// A string or an integer, so that `ttl = 30` gets a helpful message instead of a type error.
#[derive(Debug, Clone)]
pub(super) enum Scalar {
    Str(String),
    Int(i64),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number too large"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<toml::Value>>,
    pub(super) workers: Option<Spanned<i64>>,
    pub(super) header_read_timeout: Option<Spanned<Scalar>>,
    pub(super) max_header_bytes: Option<Spanned<Scalar>>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) hosts: Option<Vec<Spanned<String>>>,
    pub(super) shutdown_grace: Option<Spanned<Scalar>>,
    pub(super) idle_timeout: Option<Spanned<Scalar>>,
    pub(super) watch_config: Option<bool>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    pub(super) tls_reload_interval: Option<Spanned<Scalar>>,
    pub(super) max_request_body: Option<Spanned<Scalar>>,
    pub(super) max_requests_per_connection: Option<Spanned<i64>>,
    pub(super) http2_max_concurrent_streams: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) url: Spanned<String>,
    pub(super) connect_timeout: Option<Spanned<Scalar>>,
    pub(super) timeout: Option<Spanned<Scalar>>,
    pub(super) pool_max_idle_per_host: Option<Spanned<i64>>,
    pub(super) pool_idle_timeout: Option<Spanned<Scalar>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) http2: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) namespace: Option<Spanned<String>>,
    pub(super) version: Option<Spanned<i64>>,
    pub(super) max_memory: Option<Spanned<Scalar>>,
    pub(super) max_object_size: Option<Spanned<Scalar>>,
    pub(super) default_ttl: Option<Spanned<Scalar>>,
    pub(super) cacheable_statuses: Option<Spanned<Vec<Spanned<i64>>>>,
    pub(super) tenant: Option<Spanned<toml::Value>>,
    pub(super) coalesce_timeout: Option<Spanned<Scalar>>,
    pub(super) tag_headers: Option<Vec<Spanned<String>>>,
    pub(super) scope: Option<Spanned<String>>,
    pub(super) stale_while_revalidate: Option<Spanned<Scalar>>,
    pub(super) stale_if_error: Option<Spanned<Scalar>>,
    pub(super) revalidate_for: Option<Spanned<Scalar>>,
    /// A percentage: `25` or `"25%"`.
    pub(super) max_tenant_share: Option<Spanned<toml::Value>>,
    pub(super) honor_origin: Option<bool>,
    pub(super) request_cache_control: Option<Spanned<String>>,
    pub(super) compress: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) token_env: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
    pub(super) warm_concurrency: Option<Spanned<i64>>,
    pub(super) metrics: Option<bool>,
    pub(super) metrics_open: Option<bool>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) secret_env: Option<Spanned<String>>,
    pub(super) secret_file: Option<Spanned<String>>,
    pub(super) replay_window: Option<Spanned<Scalar>>,
    pub(super) max_body: Option<Spanned<Scalar>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub(super) url: Option<Spanned<String>>,
    pub(super) nodes: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) command_timeout: Option<Spanned<Scalar>>,
    pub(super) connect_timeout: Option<Spanned<Scalar>>,
    pub(super) local_ttl: Option<Spanned<Scalar>>,
    pub(super) compress_above: Option<Spanned<Scalar>>,
    pub(super) breaker_failures: Option<Spanned<i64>>,
    pub(super) breaker_cooldown: Option<Spanned<Scalar>>,
    pub(super) lease: Option<bool>,
    pub(super) lease_ttl: Option<Spanned<Scalar>>,
    pub(super) fence_retention: Option<Spanned<Scalar>>,
    pub(super) replay_limit: Option<Spanned<i64>>,
}

/// `[auth]` without its nested tables, which are parsed on their own.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) trusted_proxies: Option<Vec<Spanned<String>>>,
    pub(super) user_header: Option<Spanned<String>>,
    pub(super) key_secret_env: Option<Spanned<String>>,
    pub(super) key_secret_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwt {
    pub(super) hs256_secret_env: Option<Spanned<String>>,
    pub(super) hs_secret_file: Option<Spanned<String>>,
    pub(super) public_key_file: Option<Spanned<String>>,
    pub(super) jwks_file: Option<Spanned<String>>,
    pub(super) algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) tenant_claim: Option<Spanned<String>>,
    pub(super) user_claim: Option<Spanned<String>>,
    pub(super) issuer: Option<Spanned<toml::Value>>,
    pub(super) audience: Option<Spanned<toml::Value>>,
    pub(super) leeway: Option<Spanned<Scalar>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntrospect {
    pub(super) path: Spanned<String>,
    pub(super) tenant_field: Spanned<String>,
    pub(super) user_field: Option<Spanned<String>>,
    pub(super) ttl: Option<Spanned<Scalar>>,
    pub(super) credential_headers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) timeout: Option<Spanned<Scalar>>,
    pub(super) session_cookies: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<Spanned<String>>,
    pub(super) access: Option<bool>,
    pub(super) format: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) path: Spanned<String>,
    pub(super) methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) ttl: Option<Spanned<Scalar>>,
    pub(super) cache: Option<bool>,
    pub(super) compress: Option<bool>,
    pub(super) tenant: Option<Spanned<toml::Value>>,
    pub(super) vary: Option<Vec<Spanned<String>>>,
    pub(super) forward_headers: Option<Vec<Spanned<String>>>,
    pub(super) max_variants: Option<Spanned<i64>>,
    pub(super) max_memory: Option<Spanned<Scalar>>,
    pub(super) resource: Option<Spanned<String>>,
    pub(super) tags: Option<Vec<Spanned<String>>>,
    pub(super) invalidates: Option<Vec<Spanned<String>>>,
    pub(super) scope: Option<Spanned<String>>,
    pub(super) anonymous: Option<Spanned<String>>,
    pub(super) stale_while_revalidate: Option<Spanned<Scalar>>,
    pub(super) stale_if_error: Option<Spanned<Scalar>>,
    pub(super) revalidate_for: Option<Spanned<Scalar>>,
    pub(super) negative_ttl: Option<Spanned<Scalar>>,
    pub(super) negative_statuses: Option<Spanned<Vec<Spanned<i64>>>>,
    pub(super) honor_origin: Option<bool>,
    pub(super) request_cache_control: Option<Spanned<String>>,
    pub(super) etag: Option<Spanned<String>>,
}
