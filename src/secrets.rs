//! The secrets and keys a config names: read through a resolver (in production
//! [`read_secret`]: an environment variable or a file) and turned into what they key (`keyed`:
//! the webhook verifier, the JWT verifier, the credential digest key, the admin token), with
//! the warnings and errors a start reports. A start (`app`) and every reload (`reload`) call
//! the same builders, so a reload refuses exactly what a start would; `Prints` lets a reload
//! tell which secrets changed without keeping a second copy of them.

use crate::auth::digest::DigestKey;
use crate::auth::jwt::{JwtKeys, JwtSettings, JwtVerifier};
use crate::config::Config;
use crate::config::{JwtConfig, JwtKeySource, RedisConfig, SecretSource};
use crate::error::ProxyError;
use crate::store::shared::{SharedError, SharedOptions};
use crate::tls::TlsError;
use crate::webhook::{Secrets, Verifier};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Something found at start that works, but probably not as the operator meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartWarning {
    /// No webhook secret is set: invalidation webhooks will be refused.
    NoWebhookSecret(SecretSource),
    /// No credential digest key is set: digests in keys and logs differ per process.
    NoKeySecret(SecretSource),
    /// No admin token is set: the admin API answers only `/healthz`.
    NoAdminToken(SecretSource),
    /// Responses larger than the tier admits but within `max_object_size` are fetched whole and
    /// never stored.
    UnstorableObjects {
        max_object_size: u64,
        admissible: u64,
    },
}

/// Why cachegate cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("webhook secret ({secret}): {reason}")]
    WebhookSecret {
        secret: SecretSource,
        reason: String,
    },
    #[error("{0}")]
    Jwt(String),
    #[error("redis.password_env: the password ({0}) is not set")]
    RedisPassword(SecretSource),
    #[error("[redis]: {0}")]
    Redis(#[source] SharedError),
    #[error("TLS: {0}")]
    Tls(#[source] TlsError),
    #[error("cannot set up the upstream client")]
    Upstream(#[source] ProxyError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
    #[error("cannot listen on {addr} for the admin API")]
    ListenAdmin {
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
}

/// Why a secret named by the config cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not valid UTF-8")]
    NotUnicode(String),
    #[error("cannot read secret file {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("secret file {} is empty", .0.display())]
    Empty(PathBuf),
}

/// Reads a secret named by the config: the production resolver for `App::build` (`app`).
///
/// An unset (or blank) environment variable is `None`: the feature is then refused at request
/// time, with a warning at start. A named file that cannot be read, or is empty, is an error,
/// since the operator clearly meant to configure one. The value is never logged.
pub fn read_secret(source: &SecretSource) -> Result<Option<String>, SecretError> {
    match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => Ok(Some(value.trim().to_string())),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicode(name.clone())),
        },
        SecretSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| SecretError::Unreadable {
                path: path.clone(),
                error,
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(SecretError::Empty(path.clone()));
            }
            Ok(Some(text.to_string()))
        }
    }
}

/// Digests of the secret values in force, so a reload can tell which ones changed without
/// keeping a second copy of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prints {
    pub webhook: Option<blake3::Hash>,
    pub key: Option<blake3::Hash>,
    pub jwt: Option<blake3::Hash>,
    pub admin_token: Option<blake3::Hash>,
}

impl Prints {
    pub(crate) fn of(secret: Option<&str>) -> Option<blake3::Hash> {
        secret.map(|s| blake3::hash(s.as_bytes()))
    }

    /// A JWT verifier's key material (a JWKS file is re-read by the verifier itself: its
    /// path stands for it).
    pub(crate) fn of_jwt(keys: &JwtKeys) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new();
        match keys {
            JwtKeys::Secret(secret) => hasher.update(b"secret\0").update(secret),
            JwtKeys::PublicKeyPem(pem) => hasher.update(b"pem\0").update(pem),
            JwtKeys::Jwks { path } => hasher
                .update(b"jwks\0")
                .update(path.as_os_str().as_encoded_bytes()),
        };
        hasher.finalize()
    }
}

/// What the secrets a config names key, read through the resolver: everything [`Setup`] holds
/// but the shared tier, the admin token, and the digests a reload compares.
pub(crate) struct Keyed {
    pub(crate) webhook: Option<Verifier>,
    pub(crate) jwt: Option<JwtVerifier>,
    /// `None` when no key secret is set: the process then digests with a random key.
    pub(crate) credential_key: Option<DigestKey>,
    pub(crate) admin_token: Option<String>,
    pub(crate) prints: Prints,
}

/// Reads the secrets the config names and builds what they key: the webhook verifier, the JWT
/// verifier, the credential digest key and the admin token. Used at start and by every reload,
/// so a reload refuses exactly what a start would.
pub(crate) fn keyed(
    config: &Config,
    read_secret: &impl Fn(&SecretSource) -> Result<Option<String>, SecretError>,
    warnings: &mut Vec<StartWarning>,
) -> Result<Keyed, StartError> {
    let mut prints = Prints::default();
    let webhook_secret = read_secret(&config.webhook.secret)?;
    prints.webhook = Prints::of(webhook_secret.as_deref());
    let webhook = match webhook_secret {
        Some(list) => {
            let secrets = Secrets::parse(&list).map_err(|reason| StartError::WebhookSecret {
                secret: config.webhook.secret.clone(),
                reason,
            })?;
            Some(Verifier::new(secrets, config.webhook.replay_window))
        }
        None => {
            warnings.push(StartWarning::NoWebhookSecret(config.webhook.secret.clone()));
            None
        }
    };
    let (jwt, credential_key) = match &config.auth {
        None => (None, None),
        Some(auth) => {
            let key = match read_secret(&auth.key_secret)? {
                Some(secret) => {
                    prints.key = Prints::of(Some(&secret));
                    Some(DigestKey::from_secret(secret.as_bytes()))
                }
                None => {
                    warnings.push(StartWarning::NoKeySecret(auth.key_secret.clone()));
                    None
                }
            };
            let jwt = match &auth.jwt {
                None => None,
                Some(jwt) => {
                    let settings = jwt_settings(jwt, read_secret)?;
                    prints.jwt = Some(Prints::of_jwt(&settings.keys));
                    Some(JwtVerifier::new(settings).map_err(StartError::Jwt)?)
                }
            };
            (jwt, key)
        }
    };
    let admin_token = match &config.admin {
        Some(admin) => {
            let token = read_secret(&admin.token)?;
            if token.is_none() {
                warnings.push(StartWarning::NoAdminToken(admin.token.clone()));
            }
            token
        }
        None => None,
    };
    prints.admin_token = Prints::of(admin_token.as_deref());
    Ok(Keyed {
        webhook,
        jwt,
        credential_key,
        admin_token,
        prints,
    })
}

/// The shared tier's options of `[redis]`, with the password of `password_env` read through
/// the resolver. A named password that is not set refuses to start: Redis would refuse every
/// command, and the shared tier would be off without anyone noticing.
pub fn redis_options(
    redis: &RedisConfig,
    read_secret: &impl Fn(&SecretSource) -> Result<Option<String>, SecretError>,
) -> Result<SharedOptions, StartError> {
    let password = match &redis.password {
        Some(source) => match read_secret(source)? {
            Some(password) => Some(password),
            None => return Err(StartError::RedisPassword(source.clone())),
        },
        None => None,
    };
    Ok(redis.shared_options(password.as_deref()))
}

/// The verifier's settings of an `[auth.jwt]` section: the HMAC secret is read through the
/// resolver like every other secret, a PEM public key file is read here, and a JWKS file is left
/// to the verifier, which re-reads it when it changes.
pub(crate) fn jwt_settings(
    jwt: &JwtConfig,
    read_secret: &impl Fn(&SecretSource) -> Result<Option<String>, SecretError>,
) -> Result<JwtSettings, StartError> {
    let keys = match &jwt.keys {
        JwtKeySource::HsSecret(source) => match read_secret(source)? {
            Some(secret) => JwtKeys::Secret(secret.into_bytes()),
            None => {
                return Err(StartError::Jwt(format!(
                    "auth.jwt: the HMAC secret ({source}) is not set"
                )))
            }
        },
        JwtKeySource::PublicKeyFile(path) => {
            JwtKeys::PublicKeyPem(std::fs::read(path).map_err(|e| {
                StartError::Jwt(format!(
                    "auth.jwt: cannot read the public key {}: {e}",
                    path.display()
                ))
            })?)
        }
        JwtKeySource::JwksFile(path) => JwtKeys::Jwks { path: path.clone() },
    };
    Ok(JwtSettings {
        keys,
        algorithms: jwt.algorithms.clone(),
        tenant_claim: jwt.tenant_claim.clone(),
        user_claim: jwt.user_claim.clone(),
        issuer: jwt.issuer.clone(),
        audience: jwt.audience.clone(),
        leeway: jwt.leeway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = r#"
[upstream]
url = "http://127.0.0.1:8000"

[auth.jwt]
hs256_secret_env = "JWT"
tenant_claim = "org"

[admin]
"#;

    /// A resolver that knows only the named environment variables.
    fn only(
        names: &'static [&'static str],
    ) -> impl Fn(&SecretSource) -> Result<Option<String>, SecretError> {
        move |source| match source {
            SecretSource::Env(name) if names.contains(&name.as_str()) => {
                Ok(Some(format!("secret-of-{name}-with-enough-length")))
            }
            _ => Ok(None),
        }
    }

    /// What a start with these variables set reads: the warnings, or the error.
    fn build(toml: &str, names: &'static [&'static str]) -> Result<Vec<StartWarning>, StartError> {
        let mut warnings = Vec::new();
        keyed(
            &Config::from_toml(toml, "test.toml").unwrap(),
            &only(names),
            &mut warnings,
        )?;
        Ok(warnings)
    }

    #[test]
    fn every_secret_left_unset_is_a_warning() {
        let env = |name: &str| SecretSource::Env(name.to_string());
        let warnings = build(AUTH, &["JWT"]).unwrap();
        assert_eq!(
            warnings,
            &[
                StartWarning::NoWebhookSecret(env("CACHEGATE_WEBHOOK_SECRET")),
                StartWarning::NoKeySecret(env("CACHEGATE_KEY_SECRET")),
                StartWarning::NoAdminToken(env("CACHEGATE_ADMIN_TOKEN")),
            ]
        );
        let all = &[
            "JWT",
            "CACHEGATE_WEBHOOK_SECRET",
            "CACHEGATE_KEY_SECRET",
            "CACHEGATE_ADMIN_TOKEN",
        ];
        assert_eq!(build(AUTH, all).unwrap(), []);
    }

    #[test]
    fn an_unset_jwt_secret_refuses_to_start() {
        let err = build(AUTH, &[]).err().unwrap();
        assert!(err.to_string().contains("env JWT"), "{err}");
    }

    #[test]
    fn jwt_settings_read_the_key_file_and_the_secret() {
        let pem = include_bytes!("auth/testdata/rsa_public.pem");
        let path = std::env::temp_dir().join(format!("cachegate-app-{}.pem", std::process::id()));
        std::fs::write(&path, pem).unwrap();
        let config = |keys| JwtConfig {
            keys,
            algorithms: Vec::new(),
            tenant_claim: "org".to_string(),
            user_claim: "sub".to_string(),
            issuer: vec!["https://issuer".to_string()],
            audience: Vec::new(),
            leeway: std::time::Duration::from_secs(30),
        };
        let read = jwt_settings(
            &config(JwtKeySource::PublicKeyFile(path.clone())),
            &only(&[]),
        );
        let _ = std::fs::remove_file(&path);
        let settings = read.unwrap();
        assert!(matches!(settings.keys, JwtKeys::PublicKeyPem(ref read) if read == pem));
        assert_eq!(settings.issuer, ["https://issuer"]);

        let missing = PathBuf::from("/nonexistent/public.pem");
        let err = jwt_settings(&config(JwtKeySource::PublicKeyFile(missing)), &only(&[]))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("auth.jwt: cannot read the public key /nonexistent/public.pem"),
            "{err}"
        );

        let env = || JwtKeySource::HsSecret(SecretSource::Env("JWT".to_string()));
        let err = jwt_settings(&config(env()), &only(&[])).err().unwrap();
        assert_eq!(
            err.to_string(),
            "auth.jwt: the HMAC secret (env JWT) is not set"
        );
        let settings = jwt_settings(&config(env()), &only(&["JWT"])).unwrap();
        assert!(
            matches!(settings.keys, JwtKeys::Secret(ref s) if s == b"secret-of-JWT-with-enough-length")
        );
    }

    #[test]
    fn the_redis_password_is_read_through_the_resolver() {
        let config = |rest: &str| {
            let text = format!("[upstream]\nurl = \"http://127.0.0.1:8000\"\n[redis]\n{rest}");
            Config::from_toml(&text, "test.toml")
                .unwrap()
                .redis
                .unwrap()
        };
        let named = config("url = \"redis://app@r\"\npassword_env = \"REDIS_PASSWORD\"\n");
        let opts = redis_options(&named, &only(&["REDIS_PASSWORD"])).unwrap();
        assert_eq!(
            opts.urls,
            ["redis://app:secret-of-REDIS_PASSWORD-with-enough-length@r:6379/0"]
        );
        let err = redis_options(&named, &only(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "redis.password_env: the password (env REDIS_PASSWORD) is not set"
        );
        let open = config("url = \"redis://r/2\"\n");
        let opts = redis_options(&open, &only(&[])).unwrap();
        assert_eq!(opts.urls, ["redis://r:6379/2"]);
    }

    #[test]
    fn a_secret_file_must_be_readable_and_not_empty() {
        let missing = SecretSource::File(PathBuf::from("/nonexistent/secret"));
        let err = read_secret(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read secret file /nonexistent/secret"
        );
        let path = std::env::temp_dir().join(format!("cachegate-app-{}", std::process::id()));
        std::fs::write(&path, " \n").unwrap();
        let empty = read_secret(&SecretSource::File(path.clone()));
        std::fs::write(&path, "s3cret\n").unwrap();
        let read = read_secret(&SecretSource::File(path.clone()));
        let _ = std::fs::remove_file(&path);
        assert!(matches!(empty, Err(SecretError::Empty(_))), "{empty:?}");
        assert_eq!(read.unwrap().as_deref(), Some("s3cret"));
    }
}
