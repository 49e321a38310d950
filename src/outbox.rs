//! Events for the product's backend: what each kind says (the JSON a receiver gets), how it is
//! signed (Standard Webhooks), and when a delivery that failed is tried again.
//!
//! The events themselves are written by the database in the transaction of the change that
//! caused them (migration 0006: every ledger row while an endpoint is registered, what is
//! available going under a user's threshold or running out), or by the store beside the change
//! (a grant expiring, or about to); the server sends them after commit, each at least once,
//! one user's in order.

use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use serde_json::json;

use crate::config::Secret;
use crate::domain::{DomainError, GrantId, LedgerEntry, Timestamp, UserId};

/// What happened, as a receiver reads it in `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A ledger row was written: a credit, a spend, a reversal, an expiry.
    LedgerEntryCreated,
    /// What is available went under the user's threshold.
    BalanceLow,
    /// Nothing is available any more.
    BalanceDepleted,
    /// A grant with tokens left expires soon (7 days, then 1 day, before).
    GrantExpiring,
    /// A grant expired with tokens left.
    GrantExpired,
    /// Auto top-up bought a pack: its tokens are credited.
    TopUpSucceeded,
    /// Auto top-up could not buy a pack (declined, the bank asked for the cardholder, or the
    /// month's cap): nothing was charged.
    TopUpFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::LedgerEntryCreated,
        EventKind::BalanceLow,
        EventKind::BalanceDepleted,
        EventKind::GrantExpiring,
        EventKind::GrantExpired,
        EventKind::TopUpSucceeded,
        EventKind::TopUpFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::LedgerEntryCreated => "ledger.entry_created",
            EventKind::BalanceLow => "balance.low",
            EventKind::BalanceDepleted => "balance.depleted",
            EventKind::GrantExpiring => "grant.expiring",
            EventKind::GrantExpired => "grant.expired",
            EventKind::TopUpSucceeded => "topup.succeeded",
            EventKind::TopUpFailed => "topup.failed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| DomainError::UnknownState(raw.to_owned()))
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDetail {
    Entry(Box<LedgerEntry>),
    Low {
        available: i64,
        threshold: i64,
    },
    Depleted {
        available: i64,
    },
    /// A grant's end: what it has left (`grant.expiring`) or what of it expired
    /// (`grant.expired`), and when it ends or ended.
    Grant {
        grant: GrantId,
        tokens: i64,
        expires_at: Option<Timestamp>,
    },
    /// A top-up: the tokens it credited and the credit's ledger row (`topup.succeeded`), or
    /// why it failed (`topup.failed`: `declined`, `authentication_required`, `monthly_cap`).
    TopUp {
        topup: i64,
        tokens: Option<i64>,
        entry: Option<i64>,
        failure: Option<String>,
    },
}

/// One event as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: i64,
    pub user: UserId,
    pub kind: EventKind,
    pub created_at: Timestamp,
    pub detail: EventDetail,
}

impl OutboxEvent {
    /// The `webhook-id`: the same for every attempt, so a receiver can drop what it has seen.
    pub fn message_id(&self) -> String {
        format!("evt_{}", self.id)
    }

    /// The JSON body: `type`, `timestamp` (when it happened) and `data`.
    pub fn body(&self) -> String {
        let data = match &self.detail {
            EventDetail::Entry(entry) => json!({
                "user": self.user,
                "entry": {
                    "id": entry.id,
                    "delta": entry.delta.get(),
                    "balance_after": entry.balance_after.get(),
                    "source": entry.source.as_str(),
                    "reason": entry.reason,
                    "created_at": entry.created_at.rfc3339(),
                    "reverses": entry.reverses,
                    "hold": entry.hold,
                },
            }),
            EventDetail::Low {
                available,
                threshold,
            } => json!({ "user": self.user, "available": available, "threshold": threshold }),
            EventDetail::Depleted { available } => {
                json!({ "user": self.user, "available": available })
            }
            EventDetail::Grant {
                grant,
                tokens,
                expires_at,
            } => {
                let what = match self.kind {
                    EventKind::GrantExpired => "tokens_expired",
                    _ => "tokens_left",
                };
                json!({
                    "user": self.user,
                    "grant": grant,
                    what: tokens,
                    "expires_at": expires_at.map(Timestamp::rfc3339),
                })
            }
            EventDetail::TopUp {
                topup,
                tokens,
                entry,
                failure,
            } => match self.kind {
                EventKind::TopUpSucceeded => json!({
                    "user": self.user, "topup": topup, "tokens": tokens, "entry": entry,
                }),
                _ => json!({ "user": self.user, "topup": topup, "reason": failure }),
            },
        };
        json!({
            "type": self.kind.as_str(),
            "timestamp": self.created_at.rfc3339(),
            "data": data,
        })
        .to_string()
    }
}

/// An endpoint's signing secret, `whsec_` and 32 random bytes in base64, as Standard Webhooks
/// libraries take it.
pub fn new_endpoint_secret() -> Secret {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// An endpoint's secret that is not `whsec_` and base64 (a hand-edited row).
#[derive(Debug, thiserror::Error)]
#[error("the endpoint's secret is not `whsec_` followed by base64")]
pub struct BadSecret;

/// The `webhook-signature` header for `body` sent as `message_id` at `sent_at` (Unix seconds).
pub fn signature(
    secret: &Secret,
    message_id: &str,
    sent_at: i64,
    body: &str,
) -> Result<String, BadSecret> {
    standardwebhooks::Webhook::new(secret.expose())
        .and_then(|signer| signer.sign(message_id, sent_at, body.as_bytes()))
        .map_err(|_| BadSecret)
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    /// Answered 2xx.
    Delivered,
    /// Retried for [`RETRY_WINDOW`] without a 2xx: `webhooks replay` sends it again.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "failed" => Ok(DeliveryState::Failed),
            other => Err(DomainError::UnknownState(other.to_owned())),
        }
    }
}

/// How long a delivery is retried before it is given up.
pub const RETRY_WINDOW: Duration = Duration::from_secs(3 * 24 * 3600);
/// The wait after the first failure; it doubles after each, up to [`LONGEST_WAIT`].
pub const FIRST_WAIT: Duration = Duration::from_secs(30);
pub const LONGEST_WAIT: Duration = Duration::from_secs(12 * 3600);

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(Timestamp),
    GiveUp,
}

/// What follows the `attempts`th failed attempt (1 for the first) of a delivery retried
/// since `since`, at `now`: the next try after a wait that doubles each time, or giving up
/// once that would pass the retry window.
pub fn after_failure(attempts: u32, since: Timestamp, now: Timestamp) -> AfterAttempt {
    let doublings = attempts.saturating_sub(1).min(20);
    let wait = FIRST_WAIT
        .saturating_mul(1 << doublings)
        .min(LONGEST_WAIT)
        .as_millis() as i64;
    let next = now.as_millis() + wait;
    if next - since.as_millis() > RETRY_WINDOW.as_millis() as i64 {
        AfterAttempt::GiveUp
    } else {
        AfterAttempt::RetryAt(Timestamp::from_millis(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_refused() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()).unwrap(), kind);
        }
        assert!(EventKind::parse("balance.lowish").is_err());
    }

    #[test]
    fn retries_wait_longer_each_time_and_stop_after_three_days() {
        let start = Timestamp::from_millis(0);
        let mut now = start;
        let mut waits = Vec::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match after_failure(attempts, start, now) {
                AfterAttempt::RetryAt(next) => {
                    waits.push((next.as_millis() - now.as_millis()) / 1000);
                    now = next;
                }
                AfterAttempt::GiveUp => break,
                AfterAttempt::Delivered => unreachable!(),
            }
        }
        assert_eq!(&waits[..4], [30, 60, 120, 240]);
        assert_eq!(*waits.last().unwrap(), 12 * 3600, "at most 12 hours apart");
        assert!(now.as_millis() <= RETRY_WINDOW.as_millis() as i64);
        assert!(
            now.as_millis() + 12 * 3600 * 1000 > RETRY_WINDOW.as_millis() as i64,
            "retried until the next wait would pass three days: {waits:?}"
        );
        assert_eq!(attempts, waits.len() as u32 + 1);
    }

    #[test]
    fn a_signature_verifies_with_the_reference_library_and_fails_for_another_body() {
        let secret = new_endpoint_secret();
        assert!(secret.expose().starts_with("whsec_"));
        let sent_at = Timestamp::now().as_millis() / 1000;
        let body = r#"{"type":"balance.low"}"#;
        let header = signature(&secret, "evt_1", sent_at, body).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "evt_1".parse().unwrap());
        headers.insert("webhook-timestamp", sent_at.to_string().parse().unwrap());
        headers.insert("webhook-signature", header.parse().unwrap());
        let verifier = standardwebhooks::Webhook::new(secret.expose()).unwrap();
        verifier.verify(body.as_bytes(), &headers).unwrap();
        assert!(
            verifier
                .verify(br#"{"type":"balance.high"}"#, &headers)
                .is_err()
        );
    }
}
