//! What the store keeps for outgoing webhooks: the endpoints, each event's delivery to each
//! endpoint, and every attempt (the delivery log).

use crate::config::Secret;
use crate::domain::{Timestamp, UserId};
use crate::outbox::{AfterAttempt, DeliveryState, EventKind, OutboxEvent};

/// Where an operator has asked events to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub secret: Secret,
    pub description: String,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

/// A delivery whose time has come, claimed by this node for a while.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub endpoint: Endpoint,
    pub event: OutboxEvent,
    /// Attempts made before this one.
    pub attempts: u32,
    pub retrying_since: Timestamp,
    /// Until when this claim holds: an attempt is recorded only under its own claim.
    pub leased_until: Timestamp,
}

/// One attempt, as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub at: Timestamp,
    /// The HTTP status the endpoint answered, if it answered.
    pub status: Option<u16>,
    /// Why it did not answer 2xx (no answer, a timeout, a refused connection, the status).
    pub error: Option<String>,
    pub duration_ms: i64,
    pub next: AfterAttempt,
}

/// A line of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAttempt {
    pub delivery: i64,
    pub endpoint: i64,
    pub event: i64,
    pub kind: EventKind,
    pub user: UserId,
    pub state: DeliveryState,
    pub at: Timestamp,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// Which deliveries `webhooks replay` sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayScope {
    /// Those given up on.
    Failed,
    /// Every one that is not pending, of events since then.
    Since(Timestamp),
}
