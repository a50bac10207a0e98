//! JWT bearer tokens: signature and claim checks, key files (PEM, JWKS with rotation) and a
//! cache of tokens that already verified.
//!
//! Only keys from the configuration are trusted: a token's own `jwk`, `jku` or `x5u` header is
//! never followed, and each key accepts only the algorithms of its own family, so a public key
//! can never be used as an HMAC secret. Time is passed in by the caller, which keeps the checks
//! deterministic and testable.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::algorithm::{Family, JwtAlgorithm, KeyKind};
use super::Identity;

#[cfg(test)]
mod tests;

/// How many verified tokens are remembered.
const CACHE_ENTRIES: usize = 100_000;

/// Shortest accepted HMAC secret: RFC 7518 asks for at least the hash size, 256 bits for HS256.
const MIN_SECRET_LEN: usize = 32;

/// Where the verification keys come from.
#[derive(Clone)]
pub enum JwtKeys {
    /// A shared HMAC secret (HS256, HS384, HS512).
    Secret(Vec<u8>),
    /// A PEM public key: RSA, EC (P-256, P-384) or Ed25519.
    PublicKeyPem(Vec<u8>),
    /// A JSON Web Key Set file, re-read when it changes (key rotation).
    Jwks { path: PathBuf },
}

impl fmt::Debug for JwtKeys {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtKeys::Secret(_) => f.write_str("Secret(redacted)"),
            JwtKeys::PublicKeyPem(pem) => write!(f, "PublicKeyPem({} bytes)", pem.len()),
            JwtKeys::Jwks { path } => write!(f, "Jwks({})", path.display()),
        }
    }
}

/// Everything a [`JwtVerifier`] needs, with secrets and key files already read (the composition
/// root builds it from an `[auth.jwt]` section).
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub keys: JwtKeys,
    /// Accepted `alg` values; empty means every algorithm of the key's type.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Claim holding the tenant; a dotted path such as `org.id` reaches into objects.
    pub tenant_claim: String,
    /// Claim holding the user, usually `sub`.
    pub user_claim: String,
    /// Accepted `iss` values; empty means `iss` is not checked.
    pub issuer: Vec<String>,
    /// Accepted `aud` values (one match is enough); empty means `aud` is not checked.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Why a token was refused. Messages never include the token or claim values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not a compact JWT: wrong shape, bad base64 or JSON, or an unknown `alg`.
    Malformed,
    /// The signature does not match the selected key.
    BadSignature,
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` (minus leeway) is still ahead.
    NotYetValid,
    /// `iss` is missing or not one of the configured issuers.
    WrongIssuer,
    /// `aud` is missing or names none of the configured audiences.
    WrongAudience,
    /// No configured key has the token's `kid` (or there are several keys and no `kid`).
    UnknownKey,
    /// The token's `alg` is not accepted for its key.
    Algorithm,
    /// A claim has the wrong type, e.g. `exp` is not a number or the tenant is an object.
    Claims(String),
}

impl JwtError {
    /// A stable kebab-case label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            JwtError::Malformed => "malformed",
            JwtError::BadSignature => "bad-signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not-yet-valid",
            JwtError::WrongIssuer => "wrong-issuer",
            JwtError::WrongAudience => "wrong-audience",
            JwtError::UnknownKey => "unknown-key",
            JwtError::Algorithm => "algorithm",
            JwtError::Claims(_) => "claims",
        }
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed => f.write_str("malformed token"),
            JwtError::BadSignature => f.write_str("bad token signature"),
            JwtError::Expired => f.write_str("token expired"),
            JwtError::NotYetValid => f.write_str("token not yet valid"),
            JwtError::WrongIssuer => f.write_str("token issuer not accepted"),
            JwtError::WrongAudience => f.write_str("token audience not accepted"),
            JwtError::UnknownKey => f.write_str("token signed by an unknown key"),
            JwtError::Algorithm => f.write_str("token algorithm not accepted"),
            JwtError::Claims(message) => write!(f, "invalid token claims: {message}"),
        }
    }
}

impl std::error::Error for JwtError {}

/// One verification key and the algorithms it may be used with.
struct KeyEntry {
    kid: Option<String>,
    key: DecodingKey,
    /// Signature checks only; the claims are checked by [`JwtVerifier`] against the caller's clock.
    validation: Validation,
}

impl KeyEntry {
    fn new(kid: Option<String>, key: DecodingKey, algorithms: Vec<Algorithm>) -> KeyEntry {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = algorithms;
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        KeyEntry {
            kid,
            key,
            validation,
        }
    }

    fn accepts(&self, algorithm: Algorithm) -> bool {
        self.validation.algorithms.contains(&algorithm)
    }
}

/// What identifies one version of a key file without reading it: modification time and size.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// The keys read from a JWKS file at one point in time.
struct JwksState {
    stamp: Stamp,
    content: blake3::Hash,
    keys: Vec<Arc<KeyEntry>>,
}

/// A JWKS file and the keys last read from it.
struct JwksFile {
    path: PathBuf,
    configured: Vec<Algorithm>,
    state: RwLock<Arc<JwksState>>,
    /// The `now_unix` second of the last look at the file, so it is looked at once a second at most.
    checked: AtomicU64,
}

enum KeySet {
    Fixed(Arc<KeyEntry>),
    Jwks(JwksFile),
}

/// Verifies compact JWTs against the configured keys and claims.
pub struct JwtVerifier {
    keys: KeySet,
    tenant_claim: String,
    user_claim: String,
    issuer: Vec<String>,
    audience: Vec<String>,
    leeway: u64,
    /// blake3(token) -> identity of tokens that verified.
    cache: quick_cache::sync::Cache<[u8; 32], Identity>,
    /// Bumped by every [`JwtVerifier::forget_all`], so a verification that raced with it does
    /// not leave a stale entry behind.
    generation: AtomicU64,
    #[cfg(test)]
    signature_checks: AtomicU64,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.keys {
            KeySet::Fixed(_) => "fixed key".to_string(),
            KeySet::Jwks(file) => format!("jwks {}", file.path.display()),
        };
        f.debug_struct("JwtVerifier")
            .field("keys", &keys)
            .field("tenant_claim", &self.tenant_claim)
            .field("user_claim", &self.user_claim)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Builds a verifier, reading the key now; the error names the key file when there is one.
    pub fn new(settings: JwtSettings) -> Result<JwtVerifier, String> {
        let configured = settings.algorithms;
        let keys = match settings.keys {
            JwtKeys::Secret(secret) => {
                if secret.len() < MIN_SECRET_LEN {
                    return Err(format!(
                        "the JWT secret is {} bytes; use at least {MIN_SECRET_LEN} random bytes",
                        secret.len()
                    ));
                }
                let algorithms = fixed_algorithms(Family::Hmac, &configured, "an HMAC secret")?;
                KeySet::Fixed(Arc::new(KeyEntry::new(
                    None,
                    DecodingKey::from_secret(&secret),
                    algorithms,
                )))
            }
            JwtKeys::PublicKeyPem(pem) => {
                let (key, family, what) = pem_key(&pem)?;
                let algorithms = fixed_algorithms(family, &configured, what)?;
                KeySet::Fixed(Arc::new(KeyEntry::new(None, key, algorithms)))
            }
            JwtKeys::Jwks { path } => {
                let configured: Vec<Algorithm> = configured.into_iter().map(signing).collect();
                let state = load_jwks(&path, &configured)?;
                KeySet::Jwks(JwksFile {
                    path,
                    configured,
                    state: RwLock::new(Arc::new(state)),
                    checked: AtomicU64::new(0),
                })
            }
        };
        Ok(JwtVerifier {
            keys,
            tenant_claim: settings.tenant_claim,
            user_claim: settings.user_claim,
            issuer: settings.issuer,
            audience: settings.audience,
            leeway: settings.leeway.as_secs(),
            cache: quick_cache::sync::Cache::new(CACHE_ENTRIES),
            generation: AtomicU64::new(0),
            #[cfg(test)]
            signature_checks: AtomicU64::new(0),
        })
    }

    /// Verifies a compact JWT; `now_unix` passed in. Tenant and user come from the configured
    /// claims (string or integer claim values; a claim path may be dotted, e.g. "org.id");
    /// expires_at from `exp`.
    ///
    /// A token without `exp` is accepted (some sessions never expire) and stays valid for as
    /// long as its key does. A token that verified before is answered from memory, but still
    /// refused once its `exp` plus leeway has passed. With a JWKS file, the file is looked at
    /// (at most once a second) and re-read when it changed, which also forgets every verified
    /// token so that a removed key stops working at once.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Identity, JwtError> {
        if let KeySet::Jwks(file) = &self.keys {
            if file.refresh(now_unix) {
                self.forget_all();
            }
        }
        let digest = *blake3::hash(token.as_bytes()).as_bytes();
        if let Some(identity) = self.cache.get(&digest) {
            if self.expired(identity.expires_at, now_unix) {
                self.cache.remove(&digest);
                return Err(JwtError::Expired);
            }
            return Ok(identity);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let identity = self.verify_uncached(token, now_unix)?;
        self.cache.insert(digest, identity.clone());
        if self.generation.load(Ordering::Acquire) != generation {
            self.cache.remove(&digest);
        }
        Ok(identity)
    }

    /// Clears the verified-token cache.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    /// Signature checks made so far, to show that repeated tokens skip them.
    #[cfg(test)]
    fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
    }

    fn expired(&self, exp: Option<u64>, now_unix: u64) -> bool {
        exp.is_some_and(|exp| now_unix >= exp.saturating_add(self.leeway))
    }

    fn verify_uncached(&self, token: &str, now_unix: u64) -> Result<Identity, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let entry = match &self.keys {
            KeySet::Fixed(entry) => Arc::clone(entry),
            KeySet::Jwks(file) => file.select(header.kid.as_deref())?,
        };
        if !entry.accepts(header.alg) {
            return Err(JwtError::Algorithm);
        }
        #[cfg(test)]
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        let claims =
            jsonwebtoken::decode::<Map<String, Value>>(token, &entry.key, &entry.validation)
                .map_err(|e| decode_error(e.kind()))?
                .claims;

        let exp = numeric_date(&claims, "exp")?;
        if self.expired(exp, now_unix) {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = numeric_date(&claims, "nbf")? {
            if now_unix.saturating_add(self.leeway) < nbf {
                return Err(JwtError::NotYetValid);
            }
        }
        if !self.issuer.is_empty() {
            let accepted = claims
                .get("iss")
                .and_then(Value::as_str)
                .is_some_and(|iss| self.issuer.iter().any(|i| i == iss));
            if !accepted {
                return Err(JwtError::WrongIssuer);
            }
        }
        if !self.audience.is_empty() {
            let named = |v: &Value| {
                v.as_str()
                    .is_some_and(|a| self.audience.iter().any(|x| x == a))
            };
            let accepted = match claims.get("aud") {
                Some(Value::Array(items)) => items.iter().any(named),
                Some(value) => named(value),
                None => false,
            };
            if !accepted {
                return Err(JwtError::WrongAudience);
            }
        }
        Ok(Identity {
            tenant: claim_text(&claims, &self.tenant_claim)?,
            user: claim_text(&claims, &self.user_claim)?,
            expires_at: exp,
        })
    }
}

impl JwksFile {
    /// Re-reads the file when it changed since the last read, looking at most once per second
    /// of `now_unix`. True when the keys were replaced.
    fn refresh(&self, now_unix: u64) -> bool {
        if self.checked.fetch_max(now_unix, Ordering::AcqRel) >= now_unix {
            return false;
        }
        let current = self.current();
        if stamp(&self.path).ok() == Some(current.stamp) {
            return false;
        }
        match load_jwks(&self.path, &self.configured) {
            // A touched file with the same content keeps the verified tokens.
            Ok(state) if state.content == current.content => {
                *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
                false
            }
            Ok(state) => {
                tracing::info!(path = %self.path.display(), keys = state.keys.len(), "jwks reloaded");
                *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
                true
            }
            Err(error) => {
                // A half-written or broken file must not lock every caller out: keep the keys
                // that worked and look again next second.
                tracing::warn!(%error, "jwks reload failed; keeping the previous keys");
                false
            }
        }
    }

    fn current(&self) -> Arc<JwksState> {
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The key a token names by `kid`, or the only key when the token names none.
    fn select(&self, kid: Option<&str>) -> Result<Arc<KeyEntry>, JwtError> {
        let state = self.current();
        let found = match kid {
            Some(kid) => state
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .or(match state.keys.as_slice() {
                    [only] if only.kid.is_none() => Some(only),
                    _ => None,
                }),
            None => match state.keys.as_slice() {
                [only] => Some(only),
                _ => None,
            },
        };
        found.cloned().ok_or(JwtError::UnknownKey)
    }
}

/// The jsonwebtoken name of an algorithm.
fn signing(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// The algorithms a single configured key accepts: the configured ones, which must all fit the
/// key ([`KeyKind::accepts`]), or every algorithm of its family.
fn fixed_algorithms(
    family: Family,
    configured: &[JwtAlgorithm],
    what: &str,
) -> Result<Vec<Algorithm>, String> {
    let key = KeyKind::Family(family);
    if configured.is_empty() {
        return Ok(JwtAlgorithm::ALL
            .into_iter()
            .filter(|a| key.accepts(*a))
            .map(signing)
            .collect());
    }
    match configured.iter().find(|a| !key.accepts(**a)) {
        Some(bad) => Err(format!("algorithm {bad} does not fit {what}")),
        None => Ok(configured.iter().copied().map(signing).collect()),
    }
}

/// Reads a PEM public key of any supported type.
fn pem_key(pem: &[u8]) -> Result<(DecodingKey, Family, &'static str), String> {
    if pem.windows(16).any(|w| w == b"PRIVATE KEY-----") {
        return Err(
            "the key is a private key; give the public key (openssl pkey -pubout)".to_string(),
        );
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, Family::Rsa, "an RSA key"));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((key, Family::Ec, "an EC key"));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, Family::Ed, "an Ed25519 key"));
    }
    Err("the key is not a PEM RSA, EC or Ed25519 public key".to_string())
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

#[derive(serde::Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

/// Reads a JWKS file, keeping the signing keys usable with the configured algorithms.
///
/// Keys of unsupported types or for encryption are skipped rather than refused, because
/// identity providers publish such keys next to the signing ones.
fn load_jwks(path: &Path, configured: &[Algorithm]) -> Result<JwksState, String> {
    let name = path.display();
    // The stamp is taken before reading so that a change during the read is seen next time.
    let stamp = stamp(path).map_err(|e| format!("cannot read the JWKS file {name}: {e}"))?;
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read the JWKS file {name}: {e}"))?;
    let raw: RawJwks = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{name} is not a JSON Web Key Set ({{\"keys\": [...]}}): {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in raw.keys.into_iter().enumerate() {
        match jwk_entry(value, configured) {
            Ok(entry) => keys.push(Arc::new(entry)),
            Err(reason) => skipped.push(format!("key {i}: {reason}")),
        }
    }
    if keys.is_empty() {
        let why = if skipped.is_empty() {
            "the set is empty".to_string()
        } else {
            skipped.join("; ")
        };
        return Err(format!("{name} has no usable signing key ({why})"));
    }
    Ok(JwksState {
        stamp,
        content: blake3::hash(&bytes),
        keys,
    })
}

fn jwk_entry(value: Value, configured: &[Algorithm]) -> Result<KeyEntry, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a supported key".to_string())?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key".to_string());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "not a supported key".to_string())?;
    let mut algorithms = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("an unsupported curve".to_string()),
        },
        _ => key.family().algorithms().to_vec(),
    };
    if let Some(declared) = jwk.common.key_algorithm {
        let declared =
            Algorithm::try_from(declared).map_err(|_| "not a signing key".to_string())?;
        algorithms.retain(|a| *a == declared);
    }
    if !configured.is_empty() {
        algorithms.retain(|a| configured.contains(a));
    }
    if algorithms.is_empty() {
        return Err("no configured algorithm fits it".to_string());
    }
    Ok(KeyEntry::new(jwk.common.key_id, key, algorithms))
}

fn decode_error(kind: &ErrorKind) -> JwtError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => JwtError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => JwtError::Algorithm,
        _ => JwtError::Malformed,
    }
}

/// A NumericDate claim: seconds since the epoch, fractions dropped.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    if let Some(n) = value.as_u64() {
        return Ok(Some(n));
    }
    match value.as_f64() {
        // Truncation is the intent: a NumericDate may carry fractions of a second.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(JwtError::Claims(format!("{name} is not a date"))),
    }
}

/// A claim by name, or by dotted path into nested objects when no claim has the whole name
/// (names such as `https://example.com/org` contain dots themselves).
fn claim<'c>(claims: &'c Map<String, Value>, path: &str) -> Option<&'c Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A tenant or user claim as text: strings as they are, integers in decimal; absent, null or
/// empty means the token does not name one.
fn claim_text(claims: &Map<String, Value>, path: &str) -> Result<Option<String>, JwtError> {
    match claim(claims, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(_) => Err(JwtError::Claims(format!(
            "claim {path} is not a string or an integer"
        ))),
    }
}
