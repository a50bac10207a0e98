//! Keyed digests of credentials, so that raw tokens and cookies are never stored or compared.

/// A per-deployment key for digests of credentials.
#[derive(Clone)]
pub struct DigestKey([u8; 32]);

impl DigestKey {
    /// Derives the digest key from the deployment's secret.
    pub fn from_secret(secret: &[u8]) -> DigestKey {
        DigestKey(blake3::derive_key("cachegate credential digest v1", secret))
    }

    /// The keyed digest of `parts`, each length-prefixed so that `["ab", "c"]` and `["a", "bc"]`
    /// never collide.
    pub fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        *hasher.finalize().as_bytes()
    }
}
