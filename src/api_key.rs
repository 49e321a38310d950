//! Service API keys for the consume API: long random secrets, stored as SHA-256 digests.
//!
//! A key is 32 random bytes, so a fast digest is enough to store it safely (argon2 is for
//! passwords people choose, and would cap the consume API at a few dozen calls a second).
//! Keys are found by digest; the found digest is compared again in constant time.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// What every key starts with, so a leaked one is easy to recognise and search for.
pub const KEY_PREFIX: &str = "pbk_";

/// The permission to debit tokens through `POST /api/tokens/consume`.
pub const SCOPE_CONSUME: &str = "tokens:consume";

/// A freshly made key: the secret is shown once, then only its digest is kept.
pub struct NewApiKey {
    pub secret: Secret,
    pub digest: KeyDigest,
    /// The first characters, safe to show in lists.
    pub display_prefix: String,
}

impl NewApiKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
        let display_prefix = secret[..KEY_PREFIX.len() + 8].to_owned();
        Self {
            digest: KeyDigest::of(&secret),
            secret: Secret::new(secret),
            display_prefix,
        }
    }
}

/// The SHA-256 digest of a key's secret, hex-encoded as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyDigest(String);

impl KeyDigest {
    pub fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, for comparing a stored digest with a presented one.
    pub fn verifies(&self, other: &KeyDigest) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({}…)", &self.0[..8.min(self.0.len())])
    }
}

/// Whether a presented secret has the shape of a key at all (checked before any lookup).
pub fn looks_like_key(secret: &str) -> bool {
    secret
        .strip_prefix(KEY_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_stored_as_digests() {
        let a = NewApiKey::generate();
        let b = NewApiKey::generate();
        assert_ne!(a.secret, b.secret);
        assert!(looks_like_key(a.secret.expose()));
        assert!(a.secret.expose().starts_with(&a.display_prefix));
        assert!(!a.digest.as_str().contains(&a.secret.expose()[4..]));
        assert!(KeyDigest::of(a.secret.expose()).verifies(&a.digest));
        assert!(!KeyDigest::of(b.secret.expose()).verifies(&a.digest));
    }

    #[test]
    fn malformed_keys_are_recognised() {
        assert!(!looks_like_key("pbk_short"));
        assert!(!looks_like_key(&format!("sk_{}", "a".repeat(64))));
        assert!(!looks_like_key(&format!("pbk_{}", "g".repeat(64))));
    }
}
