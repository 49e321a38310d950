//! What the store keeps for email notices: one per event a person is told about (written by the
//! database beside the event, migration 0007), claimed by a node, sent, and recorded.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Email, Timestamp, UserId};
use crate::outbox::{AfterAttempt, DeliveryState, OutboxEvent};

/// Email notices as the store keeps them. Every [`super::Store`] is one.
#[async_trait]
pub trait Notices: Send + Sync {
    /// Claims for `lease` up to `limit` notices due by `now`, oldest first.
    async fn claim_notices(
        &self,
        now: Timestamp,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueNotice>, StoreError>;

    /// Records how sending a notice went, if its claim still holds.
    async fn record_notice(&self, notice: &DueNotice, sent: &NoticeSent) -> Result<(), StoreError>;

    /// A user's notices, newest first.
    async fn notices_of(&self, user: UserId, limit: i64) -> Result<Vec<NoticeRecord>, StoreError>;
}

/// A notice whose time has come, claimed by this node for a while.
#[derive(Debug, Clone)]
pub struct DueNotice {
    pub id: i64,
    /// The user's address now (it may have changed since the event).
    pub to: Email,
    pub event: OutboxEvent,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_at: Timestamp,
    /// Until when this claim holds: an attempt is recorded only under its own claim.
    pub leased_until: Timestamp,
}

/// How one attempt to send a notice went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeSent {
    pub at: Timestamp,
    /// Why the mail server did not take it.
    pub error: Option<String>,
    pub next: AfterAttempt,
}

/// A notice as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    pub id: i64,
    pub event: OutboxEvent,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub settled_at: Option<Timestamp>,
}
