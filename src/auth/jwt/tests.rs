//! Tests for JWT verification: algorithms, claims, time, key files, rotation and the cache.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;

const SECRET: &[u8] = b"an hmac secret of at least 32 bytes!";
const NOW: u64 = 1_800_000_000;

const RSA_PRIVATE: &[u8] = include_bytes!("../testdata/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../testdata/rsa_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("../testdata/ed25519_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../testdata/ed25519_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../testdata/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../testdata/ec_public.pem");
const JWKS: &str = include_str!("../testdata/jwks.json");

fn settings(keys: JwtKeys) -> JwtSettings {
    JwtSettings {
        keys,
        algorithms: Vec::new(),
        tenant_claim: "org".to_string(),
        user_claim: "sub".to_string(),
        issuer: Vec::new(),
        audience: Vec::new(),
        leeway: Duration::from_secs(30),
    }
}

fn verifier(settings: JwtSettings) -> JwtVerifier {
    match JwtVerifier::new(settings) {
        Ok(v) => v,
        Err(e) => panic!("verifier builds: {e}"),
    }
}

fn hs_verifier() -> JwtVerifier {
    verifier(settings(JwtKeys::Secret(SECRET.to_vec())))
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).expect("test token signs")
}

fn hs(alg: Algorithm, claims: &Value) -> String {
    sign(alg, None, &EncodingKey::from_secret(SECRET), claims)
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("test RSA key")
}

fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_pem(ED_PRIVATE).expect("test Ed25519 key")
}

fn identity(tenant: Option<&str>, user: Option<&str>, exp: Option<u64>) -> Identity {
    Identity {
        tenant: tenant.map(str::to_string),
        user: user.map(str::to_string),
        expires_at: exp,
    }
}

/// Verifies `token` at `now` and compares with the expected outcome.
fn check(v: &JwtVerifier, token: &str, now: u64, expected: Result<Identity, JwtError>) {
    assert_eq!(v.verify(token, now), expected, "token at {now}");
}

fn good_claims() -> Value {
    json!({"org": "acme", "sub": "u1", "exp": NOW + 600})
}

fn ok_acme() -> Result<Identity, JwtError> {
    Ok(identity(Some("acme"), Some("u1"), Some(NOW + 600)))
}

/// A scratch file path unique to this process and test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cachegate-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

/// Writes a file and sets its modification time, so a change is seen even on coarse clocks.
fn write_with_mtime(path: &PathBuf, text: &str, mtime_secs: u64) {
    std::fs::write(path, text).expect("scratch write");
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("scratch open");
    file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime_secs))
        .expect("set mtime");
}

/// A JWKS holding only the keys of the test set with these ids.
fn jwks_with(kids: &[&str]) -> String {
    let all: Value = serde_json::from_str(JWKS).expect("test jwks parses");
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap_or("")))
        .cloned()
        .collect();
    json!({ "keys": keys }).to_string()
}

#[test]
fn hs256_hs384_hs512_verify() {
    let v = hs_verifier();
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        check(&v, &hs(alg, &good_claims()), NOW, ok_acme());
    }
}

#[test]
fn tampered_payload_is_bad_signature() {
    let v = hs_verifier();
    let token = hs(Algorithm::HS256, &good_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let other = hs(
        Algorithm::HS256,
        &json!({"org": "evil", "sub": "u1", "exp": NOW + 600}),
    );
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap_or(""),
        parts[2]
    );
    check(&v, &forged, NOW, Err(JwtError::BadSignature));
}

#[test]
fn wrong_secret_is_bad_signature() {
    let v = hs_verifier();
    let other = EncodingKey::from_secret(b"another secret of at least 32 bytes");
    let token = sign(Algorithm::HS256, None, &other, &good_claims());
    check(&v, &token, NOW, Err(JwtError::BadSignature));
}

#[test]
fn garbage_is_malformed() {
    let v = hs_verifier();
    for token in ["", "abc", "a.b.c", "a.b", "..", "eyJhbGciOiJub25lIn0.e30."] {
        check(&v, token, NOW, Err(JwtError::Malformed));
    }
}

#[test]
fn expired_and_leeway() {
    let v = hs_verifier();
    let token = hs(Algorithm::HS256, &json!({"org": "a", "exp": NOW}));
    let ok = Ok(identity(Some("a"), None, Some(NOW)));
    check(&v, &token, NOW - 1, ok.clone());
    // Within the 30s leeway after exp.
    check(&v, &token, NOW + 29, ok);
    let fresh = hs(Algorithm::HS384, &json!({"org": "a", "exp": NOW}));
    check(&v, &fresh, NOW + 30, Err(JwtError::Expired));
}

#[test]
fn not_yet_valid_and_leeway() {
    let v = hs_verifier();
    let claims = json!({"org": "a", "nbf": NOW + 100});
    check(
        &v,
        &hs(Algorithm::HS256, &claims),
        NOW + 69,
        Err(JwtError::NotYetValid),
    );
    // Failures are not cached, so the same token verifies once the leeway reaches nbf.
    check(
        &v,
        &hs(Algorithm::HS256, &claims),
        NOW + 70,
        Ok(identity(Some("a"), None, None)),
    );
}

#[test]
fn token_without_exp_is_accepted() {
    let v = hs_verifier();
    let token = hs(Algorithm::HS256, &json!({"org": "a", "sub": "u"}));
    check(&v, &token, NOW, Ok(identity(Some("a"), Some("u"), None)));
}

#[test]
fn bad_exp_type_is_a_claims_error() {
    let v = hs_verifier();
    let token = hs(Algorithm::HS256, &json!({"org": "a", "exp": "tomorrow"}));
    check(
        &v,
        &token,
        NOW,
        Err(JwtError::Claims("exp is not a date".to_string())),
    );
}

#[test]
fn wrong_issuer_and_audience() {
    let mut s = settings(JwtKeys::Secret(SECRET.to_vec()));
    s.issuer = vec!["https://auth.example.com".to_string()];
    s.audience = vec!["api".to_string(), "api2".to_string()];
    let v = verifier(s);
    let iss = "https://auth.example.com";
    let ok = || Ok(identity(Some("a"), None, None));
    let cases = [
        (json!({"org": "a", "iss": iss, "aud": "api"}), ok()),
        (json!({"org": "a", "iss": iss, "aud": ["x", "api2"]}), ok()),
        (
            json!({"org": "a", "iss": "https://evil", "aud": "api"}),
            Err(JwtError::WrongIssuer),
        ),
        (
            json!({"org": "a", "aud": "api"}),
            Err(JwtError::WrongIssuer),
        ),
        (
            json!({"org": "a", "iss": iss, "aud": "web"}),
            Err(JwtError::WrongAudience),
        ),
        (
            json!({"org": "a", "iss": iss, "aud": ["web"]}),
            Err(JwtError::WrongAudience),
        ),
        (
            json!({"org": "a", "iss": iss}),
            Err(JwtError::WrongAudience),
        ),
    ];
    for (claims, expected) in cases {
        check(&v, &hs(Algorithm::HS256, &claims), NOW, expected);
    }
}

#[test]
fn unconfigured_iss_and_aud_are_not_checked() {
    let v = hs_verifier();
    let token = hs(
        Algorithm::HS256,
        &json!({"org": "a", "iss": "x", "aud": "y"}),
    );
    check(&v, &token, NOW, Ok(identity(Some("a"), None, None)));
}

#[test]
fn missing_claims_give_none() {
    let v = hs_verifier();
    let cases = [
        json!({}),
        json!({"org": null, "sub": ""}),
        json!({"organization": "a", "user": "b"}),
    ];
    for claims in cases {
        check(
            &v,
            &hs(Algorithm::HS256, &claims),
            NOW,
            Ok(identity(None, None, None)),
        );
    }
}

#[test]
fn integer_claims_become_strings() {
    let v = hs_verifier();
    let token = hs(Algorithm::HS256, &json!({"org": 42, "sub": -7}));
    check(&v, &token, NOW, Ok(identity(Some("42"), Some("-7"), None)));
}

#[test]
fn other_claim_types_are_refused() {
    let v = hs_verifier();
    for org in [json!(1.5), json!(true), json!({"id": 1}), json!(["a"])] {
        let token = hs(Algorithm::HS256, &json!({"org": org}));
        check(
            &v,
            &token,
            NOW,
            Err(JwtError::Claims(
                "claim org is not a string or an integer".to_string(),
            )),
        );
    }
}

#[test]
fn dotted_claim_paths_reach_into_objects() {
    let mut s = settings(JwtKeys::Secret(SECRET.to_vec()));
    s.tenant_claim = "org.id".to_string();
    s.user_claim = "https://example.com/user".to_string();
    let v = verifier(s);
    let token = hs(
        Algorithm::HS256,
        &json!({"org": {"id": 7}, "https://example.com/user": "u9"}),
    );
    check(&v, &token, NOW, Ok(identity(Some("7"), Some("u9"), None)));
}

#[test]
fn rs256_with_pem_public_key() {
    let v = verifier(settings(JwtKeys::PublicKeyPem(RSA_PUBLIC.to_vec())));
    for alg in [Algorithm::RS256, Algorithm::RS512, Algorithm::PS256] {
        check(
            &v,
            &sign(alg, None, &rsa_key(), &good_claims()),
            NOW,
            ok_acme(),
        );
    }
    // A token signed with the public key's bytes as an HMAC secret must not pass.
    let confused = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(RSA_PUBLIC),
        &good_claims(),
    );
    check(&v, &confused, NOW, Err(JwtError::Algorithm));
}

#[test]
fn eddsa_with_pem_public_key() {
    let v = verifier(settings(JwtKeys::PublicKeyPem(ED_PUBLIC.to_vec())));
    check(
        &v,
        &sign(Algorithm::EdDSA, None, &ed_key(), &good_claims()),
        NOW,
        ok_acme(),
    );
    let rsa = sign(Algorithm::RS256, None, &rsa_key(), &good_claims());
    check(&v, &rsa, NOW, Err(JwtError::Algorithm));
}

#[test]
fn es256_with_pem_public_key() {
    let v = verifier(settings(JwtKeys::PublicKeyPem(EC_PUBLIC.to_vec())));
    let key = EncodingKey::from_ec_pem(EC_PRIVATE).expect("test EC key");
    check(
        &v,
        &sign(Algorithm::ES256, None, &key, &good_claims()),
        NOW,
        ok_acme(),
    );
}

#[test]
fn configured_algorithms_restrict_the_key() {
    let mut s = settings(JwtKeys::Secret(SECRET.to_vec()));
    s.algorithms = vec![JwtAlgorithm::HS512];
    let v = verifier(s);
    check(
        &v,
        &hs(Algorithm::HS256, &good_claims()),
        NOW,
        Err(JwtError::Algorithm),
    );
    check(&v, &hs(Algorithm::HS512, &good_claims()), NOW, ok_acme());
}

#[test]
fn key_setup_errors_are_clear() {
    let cases: [(JwtKeys, &[JwtAlgorithm], &str); 5] = [
        (
            JwtKeys::Secret(b"short".to_vec()),
            &[],
            "the JWT secret is 5 bytes; use at least 32 random bytes",
        ),
        (
            JwtKeys::Secret(SECRET.to_vec()),
            &[JwtAlgorithm::RS256],
            "algorithm RS256 does not fit an HMAC secret",
        ),
        (
            JwtKeys::PublicKeyPem(RSA_PUBLIC.to_vec()),
            &[JwtAlgorithm::HS256],
            "algorithm HS256 does not fit an RSA key",
        ),
        (
            JwtKeys::PublicKeyPem(RSA_PRIVATE.to_vec()),
            &[],
            "the key is a private key; give the public key (openssl pkey -pubout)",
        ),
        (
            JwtKeys::PublicKeyPem(b"not a key".to_vec()),
            &[],
            "the key is not a PEM RSA, EC or Ed25519 public key",
        ),
    ];
    for (keys, algorithms, expected) in cases {
        let mut s = settings(keys);
        s.algorithms = algorithms.to_vec();
        assert_eq!(JwtVerifier::new(s).err().as_deref(), Some(expected));
    }
}

#[test]
fn jwks_selects_the_key_by_kid() {
    let path = scratch("select.json");
    write_with_mtime(&path, JWKS, 1_000);
    let v = verifier(settings(JwtKeys::Jwks { path: path.clone() }));
    let rsa = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key(), &good_claims());
    let ed = sign(Algorithm::EdDSA, Some("ed-1"), &ed_key(), &good_claims());
    check(&v, &rsa, NOW, ok_acme());
    check(&v, &ed, NOW, ok_acme());
    // The JWK declares RS256, so PS256 with the same key is refused.
    let ps = sign(Algorithm::PS256, Some("rsa-1"), &rsa_key(), &good_claims());
    check(&v, &ps, NOW, Err(JwtError::Algorithm));
    // A kid naming another key's type is refused, never tried on the other keys.
    let swapped = sign(Algorithm::EdDSA, Some("rsa-1"), &ed_key(), &good_claims());
    check(&v, &swapped, NOW, Err(JwtError::Algorithm));
    let unknown = sign(Algorithm::EdDSA, Some("ed-9"), &ed_key(), &good_claims());
    check(&v, &unknown, NOW, Err(JwtError::UnknownKey));
    // Two keys and no kid: ambiguous.
    let no_kid = sign(Algorithm::EdDSA, None, &ed_key(), &good_claims());
    check(&v, &no_kid, NOW, Err(JwtError::UnknownKey));
}

#[test]
fn jwks_single_key_serves_tokens_without_kid() {
    let path = scratch("single.json");
    write_with_mtime(&path, &jwks_with(&["ed-1"]), 1_000);
    let v = verifier(settings(JwtKeys::Jwks { path }));
    let no_kid = sign(Algorithm::EdDSA, None, &ed_key(), &good_claims());
    check(&v, &no_kid, NOW, ok_acme());
}

#[test]
fn jwks_rotation_adds_and_removes_keys() {
    let path = scratch("rotation.json");
    write_with_mtime(&path, &jwks_with(&["rsa-1"]), 1_000);
    let v = verifier(settings(JwtKeys::Jwks { path: path.clone() }));
    let rsa = sign(Algorithm::RS256, Some("rsa-1"), &rsa_key(), &good_claims());
    let ed = sign(Algorithm::EdDSA, Some("ed-1"), &ed_key(), &good_claims());
    check(&v, &rsa, NOW, ok_acme());
    check(&v, &ed, NOW, Err(JwtError::UnknownKey));

    // The provider rotates: the new key replaces the old one.
    write_with_mtime(&path, &jwks_with(&["ed-1"]), 2_000);
    // The file was looked at this second already.
    check(&v, &ed, NOW, Err(JwtError::UnknownKey));
    check(&v, &ed, NOW + 1, ok_acme());
    // The removed key stops working at once, even for a token that verified before.
    check(&v, &rsa, NOW + 2, Err(JwtError::UnknownKey));
    let rsa_new = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &rsa_key(),
        &json!({"org": "b", "exp": NOW + 900}),
    );
    check(&v, &rsa_new, NOW + 3, Err(JwtError::UnknownKey));
}

#[test]
fn jwks_broken_rewrite_keeps_the_previous_keys() {
    let path = scratch("broken.json");
    write_with_mtime(&path, &jwks_with(&["ed-1"]), 1_000);
    let v = verifier(settings(JwtKeys::Jwks { path: path.clone() }));
    let ed = sign(Algorithm::EdDSA, Some("ed-1"), &ed_key(), &good_claims());
    write_with_mtime(&path, "{\"keys\": [", 2_000);
    check(&v, &ed, NOW + 1, ok_acme());
}

#[test]
fn jwks_file_errors_name_the_file() {
    let missing = scratch("missing.json");
    let err = JwtVerifier::new(settings(JwtKeys::Jwks {
        path: missing.clone(),
    }))
    .err()
    .unwrap_or_default();
    assert!(
        err.starts_with(&format!("cannot read the JWKS file {}", missing.display())),
        "{err}"
    );
    let empty = scratch("empty.json");
    write_with_mtime(&empty, "{\"keys\": []}", 1_000);
    let err = JwtVerifier::new(settings(JwtKeys::Jwks {
        path: empty.clone(),
    }))
    .err();
    assert_eq!(
        err,
        Some(format!(
            "{} has no usable signing key (the set is empty)",
            empty.display()
        ))
    );
    let enc = scratch("enc.json");
    write_with_mtime(
        &enc,
        "{\"keys\": [{\"kty\": \"oct\", \"use\": \"enc\", \"k\": \"AAAA\"}, {\"kty\": \"XYZ\"}]}",
        1_000,
    );
    let err = JwtVerifier::new(settings(JwtKeys::Jwks { path: enc.clone() })).err();
    assert_eq!(
        err,
        Some(format!(
            "{} has no usable signing key (key 0: an encryption key; key 1: not a supported key)",
            enc.display()
        ))
    );
}

#[test]
fn repeated_token_skips_the_signature_check() {
    let v = verifier(settings(JwtKeys::PublicKeyPem(RSA_PUBLIC.to_vec())));
    let token = sign(Algorithm::RS256, None, &rsa_key(), &good_claims());
    check(&v, &token, NOW, ok_acme());
    check(&v, &token, NOW + 1, ok_acme());
    assert_eq!(v.signature_checks(), 1);
    v.forget_all();
    check(&v, &token, NOW + 2, ok_acme());
    assert_eq!(v.signature_checks(), 2);
}

#[test]
fn failed_tokens_are_not_cached() {
    let v = hs_verifier();
    let other = EncodingKey::from_secret(b"another secret of at least 32 bytes");
    let token = sign(Algorithm::HS256, None, &other, &good_claims());
    check(&v, &token, NOW, Err(JwtError::BadSignature));
    check(&v, &token, NOW, Err(JwtError::BadSignature));
    assert_eq!(v.signature_checks(), 2);
}

#[test]
fn cached_token_is_refused_after_exp() {
    let v = hs_verifier();
    let token = hs(Algorithm::HS256, &good_claims());
    check(&v, &token, NOW, ok_acme());
    check(&v, &token, NOW + 629, ok_acme());
    check(&v, &token, NOW + 630, Err(JwtError::Expired));
    assert_eq!(v.signature_checks(), 1);
}

#[test]
fn errors_never_show_the_token() {
    let cases = [
        (JwtError::Malformed, "malformed"),
        (JwtError::BadSignature, "bad-signature"),
        (JwtError::Expired, "expired"),
        (JwtError::NotYetValid, "not-yet-valid"),
        (JwtError::WrongIssuer, "wrong-issuer"),
        (JwtError::WrongAudience, "wrong-audience"),
        (JwtError::UnknownKey, "unknown-key"),
        (JwtError::Algorithm, "algorithm"),
        (JwtError::Claims("x".to_string()), "claims"),
    ];
    for (error, label) in cases {
        assert_eq!(error.as_str(), label);
        assert!(!error.to_string().is_empty());
    }
    let secret = format!("{:?}", JwtKeys::Secret(SECRET.to_vec()));
    assert_eq!(secret, "Secret(redacted)");
}
