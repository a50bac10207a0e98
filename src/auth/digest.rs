//! Keyed digests of credentials, so tokens and cookies never appear in keys, maps or logs.
//!
//! A plain hash of a bearer token can be checked against guessed or leaked tokens by anyone who
//! sees it. Keying the hash with a per-deployment secret makes a digest useless without the key.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// Context string of the key derivation; changing it changes every digest.
const CONTEXT: &str = "cachegate 2026 credential digest";

/// A per-deployment key for digests of credentials (blake3 keyed hash), so digests in keys and
/// logs cannot be checked against guessed credentials by someone without the key.
#[derive(Clone)]
pub struct DigestKey([u8; 32]);

impl DigestKey {
    /// Derives the key from a configured secret (any length; the derivation spreads it).
    pub fn from_secret(secret: &[u8]) -> DigestKey {
        DigestKey(blake3::derive_key(CONTEXT, secret))
    }

    /// A key for when no secret is configured, drawn from the process's own entropy.
    ///
    /// Digests made with it differ in every process: they cannot be shared between instances
    /// or survive a restart, so anything keyed by them (a shared store) is effectively private
    /// to one process. Configure a secret when several instances share a store.
    pub fn random() -> DigestKey {
        let mut seed = blake3::Hasher::new();
        // Each RandomState carries keys the standard library seeds from the operating system,
        // so hashing through a few of them yields unpredictable bytes without a new dependency.
        for round in 0u64..4 {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(round);
            seed.update(&hasher.finish().to_le_bytes());
        }
        // Time, process id and a stack address add variation should the seeds ever repeat.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        seed.update(&nanos.to_le_bytes());
        seed.update(&std::process::id().to_le_bytes());
        let local = 0u8;
        seed.update(&(std::ptr::addr_of!(local) as usize).to_le_bytes());
        DigestKey(blake3::derive_key(CONTEXT, seed.finalize().as_bytes()))
    }

    /// The keyed digest of a sequence of parts.
    ///
    /// Every part is prefixed by its length, so `["ab", "c"]` and `["a", "bc"]` differ.
    pub fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        *hasher.finalize().as_bytes()
    }

    /// The raw key, for code that hashes with blake3 directly (the cache key's readable form).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 16 hex characters of [`DigestKey::digest`], for readable keys and log lines.
    pub fn short_hex(&self, parts: &[&[u8]]) -> String {
        self.digest(parts)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for DigestKey {
    /// Never prints the key itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &DigestKey, a: &[&[u8]], b: &[&[u8]], same: bool) {
        assert_eq!(key.digest(a) == key.digest(b), same, "{a:?} vs {b:?}");
    }

    #[test]
    fn same_secret_same_digest() {
        let a = DigestKey::from_secret(b"s3cret");
        let b = DigestKey::from_secret(b"s3cret");
        assert_eq!(a.digest(&[b"token"]), b.digest(&[b"token"]));
    }

    #[test]
    fn other_secret_other_digest() {
        let a = DigestKey::from_secret(b"one");
        let b = DigestKey::from_secret(b"two");
        assert_ne!(a.digest(&[b"token"]), b.digest(&[b"token"]));
    }

    #[test]
    fn digest_is_not_the_plain_hash() {
        let key = DigestKey::from_secret(b"s3cret");
        let mut plain = blake3::Hasher::new();
        plain.update(&5u64.to_le_bytes());
        plain.update(b"token");
        assert_ne!(key.digest(&[b"token"]), *plain.finalize().as_bytes());
    }

    #[test]
    fn parts_are_length_prefixed() {
        let key = DigestKey::from_secret(b"k");
        check(&key, &[b"ab", b"c"], &[b"a", b"bc"], false);
        check(&key, &[b"abc"], &[b"abc", b""], false);
        check(&key, &[b"", b"x"], &[b"x", b""], false);
        check(&key, &[b"a", b"b"], &[b"a", b"b"], true);
    }

    #[test]
    fn random_keys_differ() {
        let a = DigestKey::random();
        let b = DigestKey::random();
        assert_ne!(a.digest(&[b"token"]), b.digest(&[b"token"]));
    }

    #[test]
    fn short_hex_is_the_digest_prefix() {
        let key = DigestKey::from_secret(b"k");
        let hex = key.short_hex(&[b"token"]);
        assert_eq!(hex.len(), 16);
        let full: String = key
            .digest(&[b"token"])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(full.starts_with(&hex));
    }

    #[test]
    fn debug_is_redacted() {
        let key = DigestKey::from_secret(b"k");
        assert_eq!(format!("{key:?}"), "DigestKey(redacted)");
    }
}
