//! Free text that ends up in the ledger: bounded and checked.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// Why a ledger entry exists, in words a person reads in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let reason = raw.trim();
        let chars = reason.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS || reason.chars().any(char::is_control) {
            return Err(DomainError::InvalidReason {
                max: Self::MAX_CHARS,
            });
        }
        Ok(Self(reason.to_owned()))
    }

    /// A reason the system makes from other text (a purchase's, say): cut to the longest a
    /// reason may be, control characters made spaces, so that it is always valid.
    pub fn made_from(text: &str) -> Self {
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(Self::MAX_CHARS)
            .collect();
        Self::parse(&clean).unwrap_or_else(|_| Self("(no reason given)".to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reason {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> String {
        reason.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes an operation happen at most once: a second request with the same key is answered
/// with the first one's result. Unique across the whole ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(DomainError::InvalidIdempotencyKey { max: Self::MAX_LEN });
        }
        Ok(Self(raw.to_owned()))
    }

    /// A key in a namespace of its own, e.g. `scoped("stripe:checkout", "cs_123")`, so that
    /// keys from different sources can never collide.
    pub fn scoped(namespace: &str, key: &str) -> Result<Self, DomainError> {
        Self::parse(&format!("{namespace}:{key}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> String {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_required() {
        assert_eq!(Reason::parse("  goodwill ").unwrap().as_str(), "goodwill");
        assert!(Reason::parse("   ").is_err());
        assert!(Reason::parse("line\nbreak").is_err());
        assert!(Reason::parse(&"x".repeat(Reason::MAX_CHARS + 1)).is_err());
        assert!(Reason::parse(&"é".repeat(Reason::MAX_CHARS)).is_ok());
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("req-123_abc:XYZ").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("ünïcode").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert_eq!(
            IdempotencyKey::scoped("stripe:checkout", "cs_1")
                .unwrap()
                .as_str(),
            "stripe:checkout:cs_1"
        );
    }
}
