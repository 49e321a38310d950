//! What the store keeps for outgoing webhooks: the endpoints, each event's delivery to each
//! endpoint, and every attempt (the delivery log); the events themselves are written beside
//! the changes that cause them (see `crate::outbox`).

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::config::Secret;
use crate::domain::{Timestamp, Tokens, UserId};
use crate::outbox::{AfterAttempt, DeliveryState, EventKind, OutboxEvent};

/// Outgoing webhooks as the store keeps them: where events go, their deliveries and the
/// delivery log. Every [`super::Store`] is one.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Registers where events go, signed with `secret`; it gets what happens from now on.
    async fn add_endpoint(
        &self,
        url: &str,
        secret: &Secret,
        description: &str,
    ) -> Result<Endpoint, StoreError>;

    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;

    /// Stops sending to an endpoint; false when no active endpoint has that id.
    async fn disable_endpoint(&self, id: i64) -> Result<bool, StoreError>;

    /// The user's low-balance threshold: what is available going under it is an event.
    async fn set_low_balance_threshold(
        &self,
        user: UserId,
        below: Option<Tokens>,
    ) -> Result<(), StoreError>;

    /// The user's low-balance threshold, if one is set.
    async fn low_balance_threshold(&self, user: UserId) -> Result<Option<Tokens>, StoreError>;

    /// Makes up to `limit` new events deliveries to the endpoints, due `now`; how many events.
    async fn fan_out_events(&self, now: Timestamp, limit: i64) -> Result<u64, StoreError>;

    /// Claims for `lease` up to `limit` deliveries to `endpoint` (if it is active) due by
    /// `now`, each user's earliest pending one only.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        endpoint: i64,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// Logs an attempt and moves its delivery on, if its claim still holds.
    async fn record_attempt(
        &self,
        delivery: &DueDelivery,
        attempted: &Attempted,
    ) -> Result<(), StoreError>;

    /// The latest attempts, newest first, of one endpoint or all.
    async fn delivery_log(
        &self,
        endpoint: Option<i64>,
        limit: i64,
    ) -> Result<Vec<LoggedAttempt>, StoreError>;

    /// Sends deliveries to an endpoint again from `now`; how many.
    async fn replay_deliveries(
        &self,
        now: Timestamp,
        endpoint: i64,
        scope: ReplayScope,
    ) -> Result<u64, StoreError>;

    /// Writes the `grant.expiring` events that are due, for up to `limit` grants; how many.
    async fn warn_expiring_grants(&self, limit: i64) -> Result<u64, StoreError>;
}

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
