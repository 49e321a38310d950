//! What the store keeps for auto top-up: each user's choice and saved card, and each top-up,
//! started by the database when what is available goes under the mark (migration 0008), paid
//! by the server, and settled here (paid ones through fulfilment, [`super::Change::TopUpPaid`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::StoreError;
use crate::domain::{
    AutoTopUp, PauseReason, ProductId, SavedCard, Timestamp, Tokens, TopUp, TopUpChoice, UserId,
};
use crate::ledger::{Posted, Posting};

/// Auto top-up as the store keeps it. Every [`super::Store`] is one.
#[async_trait]
pub trait TopUps: Send + Sync {
    async fn auto_topup(&self, user: UserId) -> Result<Option<AutoTopUp>, StoreError>;

    /// Saves what the user chose: on when a card is saved (a paused one stays paused until
    /// the card is fixed), else waiting for one.
    async fn choose_auto_topup(
        &self,
        user: UserId,
        choice: TopUpChoice,
    ) -> Result<AutoTopUp, StoreError>;

    /// Turns auto top-up off (the card stays saved); false when it was not set up.
    async fn turn_off_auto_topup(&self, user: UserId) -> Result<bool, StoreError>;

    /// Saves the card top-ups pay with. Auto top-up waiting for a card, or paused by a failed
    /// top-up, turns on; and when what is available is under the mark already, a top-up starts
    /// (in the same transaction). `as_of`: when the setup session that saved it was made; a
    /// card of an older session than the one saved changes nothing. `NotFound` when auto
    /// top-up was never chosen.
    async fn save_topup_card(
        &self,
        user: UserId,
        card: &SavedCard,
        as_of: Timestamp,
    ) -> Result<AutoTopUp, StoreError>;

    /// Claims for `lease` up to `limit` top-ups still to pay (new, or whose claim ran out).
    async fn claim_topups(
        &self,
        now: Timestamp,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueTopUp>, StoreError>;

    /// Credits a paid top-up (`credit`, keyed by its payment intent, as fulfilment's webhook
    /// path keys it) and settles it as paid, in one transaction: the server's own path, when
    /// Stripe answers the payment succeeded; whichever of it and the webhook comes second
    /// changes nothing.
    async fn credit_topup(
        &self,
        credit: Posting,
        topup: i64,
        payment_intent: &str,
        tokens: Tokens,
    ) -> Result<Posted, StoreError>;

    /// The tokens top-ups credited to `user` since `since`.
    async fn topped_up_since(&self, user: UserId, since: Timestamp) -> Result<i64, StoreError>;

    /// Settles a top-up that was not paid, with its event (`topup.failed`), if it is still
    /// pending: a failed one pauses auto top-up. False when it was settled already.
    async fn settle_unpaid_topup(
        &self,
        topup: i64,
        unpaid: Unpaid,
        payment_intent: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// The user's top-ups, newest first.
    async fn topups_of(&self, user: UserId, limit: i64) -> Result<Vec<TopUp>, StoreError>;

    /// One top-up and whose it is.
    async fn topup(&self, id: i64) -> Result<Option<(UserId, TopUp)>, StoreError>;

    /// Notified after a change that may have started a top-up commits (a spend, a batch, a
    /// hold, a card saved): the node that made it pays the top-up at once, no polling.
    fn topups_started(&self) -> Arc<Notify>;
}

/// A top-up to pay, claimed by this node for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTopUp {
    pub id: i64,
    pub user: UserId,
    pub pack: ProductId,
    pub card: Option<SavedCard>,
    /// The user's Stripe customer, whom the card belongs to.
    pub customer: Option<String>,
    pub monthly_cap: i64,
    pub created_at: Timestamp,
    pub leased_until: Timestamp,
}

/// Why a top-up was not paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpaid {
    /// The bank said no, or asked for the cardholder: auto top-up pauses.
    Failed(PauseReason),
    /// Paying it would have passed the month's cap: nothing was charged.
    Capped,
    /// Auto top-up was turned off while it waited: nothing was charged, nobody is told.
    Canceled,
}
