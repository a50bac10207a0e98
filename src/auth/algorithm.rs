//! JWT signature algorithms by name, the key family each needs, and the one rule binding
//! them: a key verifies only the algorithms of its own family.
//!
//! A leaf (std only), so that the configuration checks `[auth.jwt] algorithms` and the verifier
//! builds its keys from one list without either depending on the other.

use std::fmt;
use std::str::FromStr;

/// An algorithm a configuration may list, named as in a token's `alg` header.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The kind of key an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A shared secret: HS256, HS384, HS512.
    Hmac,
    /// An RSA public key: RS* and PS*.
    Rsa,
    /// An EC public key: ES256 (P-256), ES384 (P-384).
    Ec,
    /// An Ed25519 public key: EdDSA.
    Ed,
}

/// What is known of a configured key when its algorithms are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A key of this family: an HMAC secret, or a public key that has been read.
    Family(Family),
    /// A public key whose file is not read yet: its family is unknown, but it is not HMAC.
    PublicKey,
}

impl JwtAlgorithm {
    /// Every algorithm, in the order messages list them.
    pub const ALL: [JwtAlgorithm; 12] = [
        JwtAlgorithm::HS256,
        JwtAlgorithm::HS384,
        JwtAlgorithm::HS512,
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
        JwtAlgorithm::PS256,
        JwtAlgorithm::PS384,
        JwtAlgorithm::PS512,
        JwtAlgorithm::ES256,
        JwtAlgorithm::ES384,
        JwtAlgorithm::EdDSA,
    ];

    /// The name as written in a token's `alg` header and in `proxy.toml`.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::HS384 => "HS384",
            JwtAlgorithm::HS512 => "HS512",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::RS384 => "RS384",
            JwtAlgorithm::RS512 => "RS512",
            JwtAlgorithm::PS256 => "PS256",
            JwtAlgorithm::PS384 => "PS384",
            JwtAlgorithm::PS512 => "PS512",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::ES384 => "ES384",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// The kind of key this algorithm verifies with.
    pub fn family(self) -> Family {
        match self {
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => Family::Hmac,
            JwtAlgorithm::RS256
            | JwtAlgorithm::RS384
            | JwtAlgorithm::RS512
            | JwtAlgorithm::PS256
            | JwtAlgorithm::PS384
            | JwtAlgorithm::PS512 => Family::Rsa,
            JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => Family::Ec,
            JwtAlgorithm::EdDSA => Family::Ed,
        }
    }
}

impl KeyKind {
    /// Whether a key of this kind may verify `algorithm`: the family rule, written once.
    ///
    /// A public key is never accepted for an HMAC algorithm: using a public key as an HMAC
    /// secret is a classic forgery, since the public key is known to everybody.
    pub fn accepts(self, algorithm: JwtAlgorithm) -> bool {
        match self {
            KeyKind::Family(family) => algorithm.family() == family,
            KeyKind::PublicKey => algorithm.family() != Family::Hmac,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for JwtAlgorithm {
    type Err = String;

    /// Exact, case-sensitive names: `hs256` is refused, as a token's `alg` would be.
    fn from_str(name: &str) -> Result<JwtAlgorithm, String> {
        JwtAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown algorithm \"{name}\"; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for algorithm in JwtAlgorithm::ALL {
            assert_eq!(algorithm.name().parse(), Ok(algorithm));
        }
        for bad in ["none", "hs256", "HS256 ", "", "ES512"] {
            assert_eq!(
                bad.parse::<JwtAlgorithm>(),
                Err(format!(
                    "unknown algorithm \"{bad}\"; expected one of HS256, HS384, HS512, RS256, \
                     RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
                ))
            );
        }
    }

    #[test]
    fn a_key_accepts_only_its_family() {
        use JwtAlgorithm::{EdDSA, ES256, HS256, HS512, PS256, RS256};
        let cases = [
            (KeyKind::Family(Family::Hmac), HS256, true),
            (KeyKind::Family(Family::Hmac), HS512, true),
            (KeyKind::Family(Family::Hmac), RS256, false),
            (KeyKind::PublicKey, HS256, false),
            (KeyKind::PublicKey, RS256, true),
            (KeyKind::PublicKey, EdDSA, true),
            (KeyKind::Family(Family::Rsa), PS256, true),
            (KeyKind::Family(Family::Rsa), ES256, false),
            (KeyKind::Family(Family::Ec), ES256, true),
            (KeyKind::Family(Family::Ed), EdDSA, true),
            (KeyKind::Family(Family::Ed), HS256, false),
            (KeyKind::Family(Family::Hmac), HS256, true),
        ];
        for (kind, algorithm, accepted) in cases {
            assert_eq!(kind.accepts(algorithm), accepted, "{kind:?} {algorithm}");
        }
    }
}
