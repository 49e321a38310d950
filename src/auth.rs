//! Passwords: the policy a new one must meet, and argon2id hashing.
//!
//! A new password is rated by zxcvbn (Dropbox's strength estimator: dictionaries, names,
//! keyboard patterns, dates, repeats and sequences, with the email as a word to avoid) and
//! must be at least "safely unguessable" (score 3, some 10^10 guesses), besides 10 to 128
//! characters long, and must not contain the owner's email address. A refusal carries
//! zxcvbn's own advice.
//!
//! Hashing is deliberately slow (tens of milliseconds), so the async functions here run it on
//! tokio's blocking pool instead of stalling the threads that serve requests.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::domain::Email;

/// Why a password was refused, in words for the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {min} characters long")]
    TooShort { min: usize },
    #[error("the password must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("the password must not contain your email address")]
    Personal,
    /// `advice`: what zxcvbn says is wrong with it and what would help, in sentences.
    #[error("the password is too easy to guess: {advice}")]
    TooWeak { advice: String },
}

/// A password someone typed. Never printed, never logged.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 128;

    /// A password offered to log in: only its length is bounded (hashing a megabyte would be
    /// a cheap way to burn the server's CPU).
    pub fn offered(raw: &str) -> Option<Self> {
        (raw.chars().count() <= Self::MAX_CHARS).then(|| Self(raw.to_owned()))
    }

    /// A new password, checked against the policy: long enough, and strong enough for zxcvbn
    /// (which counts the email and its parts as known words).
    pub fn choose(raw: &str, email: &Email) -> Result<Self, PasswordError> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(PasswordError::TooShort {
                min: Self::MIN_CHARS,
            });
        }
        if chars > Self::MAX_CHARS {
            return Err(PasswordError::TooLong {
                max: Self::MAX_CHARS,
            });
        }
        let address = email.as_str();
        let (local_part, domain) = address.split_once('@').unwrap_or((address, ""));
        // zxcvbn would count it as one more word; the owner's own address is worth more.
        if local_part.chars().count() >= 4 && raw.to_lowercase().contains(local_part) {
            return Err(PasswordError::Personal);
        }
        let rating = zxcvbn::zxcvbn(raw, &[address, local_part, domain, "promptbloom"]);
        if rating.score() < zxcvbn::Score::Three {
            return Err(PasswordError::TooWeak {
                advice: advice(rating.feedback()),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// zxcvbn's warning and suggestions as one piece of advice, ending in a full stop.
fn advice(feedback: Option<&zxcvbn::feedback::Feedback>) -> String {
    let mut sentences: Vec<String> = Vec::new();
    if let Some(feedback) = feedback {
        sentences.extend(feedback.warning().map(|w| w.to_string()));
        sentences.extend(feedback.suggestions().iter().map(ToString::to_string));
    }
    if sentences.is_empty() {
        sentences.push("Add more words that are less common.".to_owned());
    }
    let text = sentences.join(" ");
    // Callers add their own full stop.
    text.strip_suffix('.').unwrap_or(&text).to_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task stopped: {0}")]
    Task(String),
}

/// argon2id at the lightest of OWASP's equivalent settings: 7 MiB and five passes, one lane.
/// OWASP lists it beside 19 MiB with two passes (and three others) as the same defence,
/// trading memory for passes; a server that keeps its memory small takes the passes.
const MEMORY_KIB: u32 = 7 * 1024;
const PASSES: u32 = 5;
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string (`$argon2id$v=19$...`) to store for a new password.
pub fn hash_password_blocking(password: &Password) -> Result<String, HashError> {
    hash_with(&hasher(), password)
}

/// A hash made with the settings of releases before December 2026 (19 MiB, two passes), as
/// accounts made then still have: for tests of the upgrade at login.
#[cfg(any(test, feature = "testing"))]
pub fn hash_with_earlier_settings(password: &Password) -> Result<String, HashError> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    hash_with(
        &Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        password,
    )
}

fn hash_with(hasher: &Argon2<'_>, password: &Password) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Hash(e.to_string()))?;
    hasher
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

/// Whether a password matched its stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Wrong,
    /// It matched. `rehashed`: the password hashed again with today's settings, when the
    /// stored hash was made with others (an earlier release's), to store in its place.
    Right {
        rehashed: Option<String>,
    },
}

/// Whether `password` matches `stored` (checked with the settings `stored` names). With no
/// stored hash (an unknown email, or an account without a password) a dummy hash is checked
/// instead, so that the answer takes as long either way and does not tell whether the email
/// exists.
pub fn verify_password_blocking(password: &Password, stored: Option<&str>) -> Verified {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password_blocking(&Password("a dummy that matches nothing".into()))
            .expect("hashing a constant works")
    });
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Verified::Wrong;
    };
    let matches = hasher()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok();
    if !(real && matches) {
        return Verified::Wrong;
    }
    let rehashed = if made_today(&parsed) {
        None
    } else {
        // The login still succeeds if this fails; the old hash stays and is tried next time.
        hash_password_blocking(password).ok()
    };
    Verified::Right { rehashed }
}

/// Whether a stored hash was made with today's algorithm, version and settings.
fn made_today(hash: &PasswordHash<'_>) -> bool {
    let today = hasher();
    let params = Params::try_from(hash);
    hash.algorithm == Algorithm::Argon2id.ident()
        && hash.version == Some(Version::V0x13.into())
        && params.is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                == (
                    today.params().m_cost(),
                    today.params().t_cost(),
                    today.params().p_cost(),
                )
        })
}

/// How many passwords a node hashes or checks at once. Each takes 7 MiB (an older hash 19)
/// and a core for tens of milliseconds: more at once would only share the cores, while a burst of sign-ins (or of
/// guesses) could take hundreds of megabytes. The rest wait their turn.
pub const HASHES_AT_ONCE: usize = 1;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE);

pub async fn hash_password(password: Password) -> Result<String, HashError> {
    let _turn = HASHING
        .acquire()
        .await
        .map_err(|e| HashError::Task(e.to_string()))?;
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|e| HashError::Task(e.to_string()))?
}

pub async fn verify_password(password: Password, stored: Option<String>) -> Verified {
    let Ok(_turn) = HASHING.acquire().await else {
        return Verified::Wrong;
    };
    tokio::task::spawn_blocking(move || verify_password_blocking(&password, stored.as_deref()))
        .await
        .unwrap_or(Verified::Wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("ada.lovelace@example.com").unwrap()
    }

    #[test]
    fn the_policy_refuses_short_long_common_and_personal_passwords() {
        assert_eq!(
            Password::choose("short", &email()).unwrap_err(),
            PasswordError::TooShort { min: 10 }
        );
        assert!(matches!(
            Password::choose(&"x".repeat(129), &email()),
            Err(PasswordError::TooLong { .. })
        ));
        for weak in [
            "password1234",
            "qwerty123456",
            "aaaaaaaaaaaa",
            "abababababab",
        ] {
            assert!(
                matches!(
                    Password::choose(weak, &email()),
                    Err(PasswordError::TooWeak { .. })
                ),
                "{weak}"
            );
        }
        for personal in ["ada.lovelace-rocks", "Ada.Lovelace@example.com"] {
            assert_eq!(
                Password::choose(personal, &email()).unwrap_err(),
                PasswordError::Personal,
                "{personal}"
            );
        }
        assert!(Password::choose("correct horse battery", &email()).is_ok());
    }

    #[test]
    fn weak_passwords_are_refused_with_advice_however_long_they_are() {
        for weak in [
            "Summer2024!",
            "abcdabcdab",
            "1234512345",
            "Password2024",
            "qwertyuiop123",
        ] {
            let refused = Password::choose(weak, &email())
                .expect_err(weak)
                .to_string();
            assert!(
                refused.starts_with("the password is too easy to guess: "),
                "{weak}: {refused}"
            );
        }
        for strong in [
            "correct horse battery",
            "a fine long passphrase",
            "sunflower-meadow-42",
            "orchard-lantern-97",
        ] {
            assert!(Password::choose(strong, &email()).is_ok(), "{strong}");
        }
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify_only_the_right_password() {
        let password = Password::choose("correct horse battery", &email()).unwrap();
        let a = hash_password_blocking(&password).unwrap();
        let b = hash_password_blocking(&password).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert_eq!(
            verify_password_blocking(&password, Some(&a)),
            Verified::Right { rehashed: None }
        );
        let wrong = Password::offered("correct horse battery!").unwrap();
        assert_eq!(verify_password_blocking(&wrong, Some(&a)), Verified::Wrong);
        assert_eq!(verify_password_blocking(&password, None), Verified::Wrong);
        assert_eq!(
            verify_password_blocking(&password, Some("not a hash")),
            Verified::Wrong
        );
    }

    #[test]
    fn a_hash_made_with_other_settings_verifies_and_comes_back_rehashed_with_todays() {
        let password = Password::choose("correct horse battery", &email()).unwrap();
        let old = hash_with_earlier_settings(&password).unwrap();
        assert!(old.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{old}");
        let Verified::Right {
            rehashed: Some(new),
        } = verify_password_blocking(&password, Some(&old))
        else {
            panic!("the right password, hashed with other settings, is rehashed");
        };
        assert!(new.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{new}");
        assert_eq!(
            verify_password_blocking(&password, Some(&new)),
            Verified::Right { rehashed: None }
        );
        // A wrong password is not rehashed, whatever its hash's settings.
        let wrong = Password::offered("correct horse battery!").unwrap();
        assert_eq!(
            verify_password_blocking(&wrong, Some(&old)),
            Verified::Wrong
        );
    }

    #[test]
    fn passwords_never_print() {
        let password = Password::offered("hunter2hunter2").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
        assert!(Password::offered(&"x".repeat(129)).is_none());
    }
}
