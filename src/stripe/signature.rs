//! Stripe's webhook signature scheme, checked on the raw body before anything is parsed.
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`, where each `v1` is an
//! HMAC-SHA256 keyed with the endpoint's secret over `"{t}.{body}"`. Any `v1` may match (Stripe
//! sends several while a secret is being rolled); the comparison is constant-time; a
//! timestamp more than five minutes away from now is refused, so a captured delivery cannot be
//! replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// The longest header accepted: a few signatures, not a megabyte to parse.
const MAX_HEADER_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("no signature matches the endpoint's secret")]
    NoMatch,
    #[error("the signature is {age_secs} s away from now (at most {TOLERANCE_SECS} s allowed)")]
    Stale { age_secs: i64 },
}

/// Checks `header` against `body`. `now` is unix seconds, taken from the caller's clock.
pub fn verify(body: &[u8], header: &str, secret: &str, now: i64) -> Result<(), SignatureError> {
    let parsed = parse(header)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(parsed.timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = parsed
        .signatures
        .iter()
        .any(|candidate| mac.clone().verify_slice(candidate).is_ok());
    if !matches {
        return Err(SignatureError::NoMatch);
    }
    let age_secs = now.saturating_sub(parsed.timestamp).saturating_abs();
    if age_secs > TOLERANCE_SECS {
        return Err(SignatureError::Stale { age_secs });
    }
    Ok(())
}

/// The header Stripe would send for `body` at time `t`: for the simulator and tests.
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<Parsed, SignatureError> {
    if header.trim().is_empty() {
        return Err(SignatureError::Missing);
    }
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            // A v1 that is not hex cannot match; skipping it keeps the others usable.
            "v1" => signatures.extend(hex::decode(value).ok().filter(|s| s.len() == 32)),
            // v0 (test-mode legacy) and future schemes are ignored, as Stripe's libraries do.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoMatch);
    }
    Ok(Parsed {
        timestamp,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_fresh_signature_over_the_exact_body_verifies() {
        let header = sign(BODY, SECRET, NOW);
        assert_eq!(verify(BODY, &header, SECRET, NOW), Ok(()));
        assert_eq!(verify(BODY, &header, SECRET, NOW + 300), Ok(()));
        assert_eq!(verify(BODY, &header, SECRET, NOW - 300), Ok(()));
    }

    #[test]
    fn it_matches_an_independently_computed_vector() {
        // echo -n '1492774577.{"id":"evt_test"}' | openssl dgst -sha256 -hmac whsec_test_secret
        let header = sign(br#"{"id":"evt_test"}"#, SECRET, 1_492_774_577);
        assert_eq!(
            header,
            "t=1492774577,v1=22f7d74836ddad3284a2b80853dd2fe731655c1bfddcff3c3666a500cf3abd80"
        );
    }

    #[test]
    fn forged_altered_and_stale_deliveries_are_refused() {
        let header = sign(BODY, SECRET, NOW);
        assert_eq!(
            verify(BODY, &header, "whsec_other", NOW),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(
                br#"{"id":"evt_1","type":"invoice.paid "}"#,
                &header,
                SECRET,
                NOW
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(BODY, &header, SECRET, NOW + 301),
            Err(SignatureError::Stale { age_secs: 301 })
        );
        assert_eq!(
            verify(BODY, &header, SECRET, NOW - 3600),
            Err(SignatureError::Stale { age_secs: 3600 })
        );
        // A signature for one timestamp does not vouch for another.
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 10));
        assert_eq!(
            verify(BODY, &moved, SECRET, NOW),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let good = sign(BODY, SECRET, NOW);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t={NOW},v1={},v0=abc,v1={v1}", "0".repeat(64));
        assert_eq!(verify(BODY, &header, SECRET, NOW), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in ["", "   "] {
            assert_eq!(
                verify(BODY, header, SECRET, NOW),
                Err(SignatureError::Missing)
            );
        }
        for header in [
            "garbage",
            "t=abc,v1=00",
            "v1=00",
            "t=1,t=2,v1=00",
            &format!("t=1,v1={}", "a".repeat(2000)),
        ] {
            assert_eq!(
                verify(BODY, header, SECRET, NOW),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        assert_eq!(
            verify(BODY, &format!("t={NOW},v1=zz"), SECRET, NOW),
            Err(SignatureError::NoMatch)
        );
    }
}
