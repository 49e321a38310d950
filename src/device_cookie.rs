//! Device cookies: OWASP's "Slow down online guessing attacks with device cookies".
//!
//! A successful login leaves a cookie on the browser that names the account, signed with
//! HMAC-SHA256 under the server's key: `v1.{user}.{nonce}.{signature}`. A later login attempt
//! for that account that carries a valid one comes from a device the owner has used, and is
//! limited per device cookie; attempts without one (or with one for another account, or a
//! forged one) share the account-wide ceiling. Guessing from anywhere else can then hold new
//! devices back, but never the owner's own browser.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Secret;
use crate::domain::UserId;

pub const COOKIE_NAME: &str = "pb_device";

/// How long a browser keeps its device cookie (each login renews it).
pub const MAX_AGE_DAYS: i64 = 180;

const VERSION: &str = "v1";

/// A device the account behind `user` logged in from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub user: UserId,
    nonce: String,
}

impl Device {
    /// What tells this device apart from every other: its rate-limit key.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
}

/// Issues and checks device cookies under one key.
#[derive(Clone)]
pub struct DeviceCookies {
    key: Secret,
}

impl DeviceCookies {
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    /// A fresh cookie value for a device `user` just logged in from.
    pub fn issue(&self, user: UserId) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let body = format!("{VERSION}.{user}.{}", hex::encode(bytes));
        let signature = hex::encode(self.mac(&body).finalize().into_bytes());
        format!("{body}.{signature}")
    }

    /// The device a cookie value names, if this server signed it; `None` for anything else.
    pub fn verify(&self, value: &str) -> Option<Device> {
        let (body, signature) = value.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (version, user, nonce) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != VERSION {
            return None;
        }
        if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        // Constant time: a forger learns nothing from how long a refusal takes.
        self.mac(body)
            .verify_slice(&hex::decode(signature).ok()?)
            .ok()?;
        Some(Device {
            user: user.parse().ok()?,
            nonce: nonce.to_owned(),
        })
    }

    fn mac(&self, body: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(body.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(key: &str) -> DeviceCookies {
        DeviceCookies::new(Secret::new(key))
    }

    #[test]
    fn a_cookie_names_its_account_and_verifies_under_its_key_only() {
        let ada = UserId::new(7).unwrap();
        let value = cookies("key one").issue(ada);
        let device = cookies("key one").verify(&value).expect("valid");
        assert_eq!(device.user, ada);
        assert_eq!(device.nonce().len(), 32);
        assert_eq!(cookies("key two").verify(&value), None);

        let another = cookies("key one").issue(ada);
        assert_ne!(value, another, "each login gets a device of its own");
    }

    #[test]
    fn altered_or_malformed_cookies_are_nobody() {
        let value = cookies("key").issue(UserId::new(7).unwrap());
        let other_user = value.replacen("v1.7.", "v1.8.", 1);
        let (body, signature) = value.rsplit_once('.').unwrap();
        let flipped = format!(
            "{body}.{}{}",
            &signature[..63],
            if signature.ends_with('0') { '1' } else { '0' }
        );
        for bad in [
            "".to_owned(),
            "v1".to_owned(),
            other_user,
            flipped,
            format!("{value}x"),
            format!("{value}.extra"),
            value.replacen("v1.", "v2.", 1),
            format!("{body}."),
            "v1.7.00000000000000000000000000000000.zz".to_owned(),
        ] {
            assert_eq!(cookies("key").verify(&bad), None, "{bad}");
        }
    }
}
