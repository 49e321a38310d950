//! Storage: the `Store` trait and its SQL implementation for SQLite and PostgreSQL.
//!
//! One schema (`migrations/sqlite`, `migrations/postgres`, kept in step) and one set of SQL
//! statements serve both backends through sqlx's `Any` driver; the few differences (how a
//! write transaction begins, connection settings) live in [`database`]. Every ledger change
//! is one transaction that updates the balance and appends the ledger row together.

mod billing;
#[cfg(test)]
mod credit_tests;
mod credits;
mod database;
mod live;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod notice_tests;
mod notices;
mod outbox;
#[cfg(test)]
mod outbox_tests;
mod sql;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod topup_tests;
mod topups;

use async_trait::async_trait;

pub use billing::{
    Applied, Awaiting, Change, DisputeNews, InboxEvent, Recorded, ReversalReasons, ReversalSync,
    StoredEvent, SubscriptionRecord, Unfinished, live_subscription_statuses,
};
pub use credits::{
    BatchItem, CreditMismatch, HoldCapture, HoldError, HoldOpened, HoldReleased, NewHold,
};
pub use database::{Backend, connect};
pub use live::{BalanceNews, BalanceWatch};
pub use notices::{DueNotice, NoticeRecord, NoticeSent, Notices};
pub use outbox::{Attempted, DueDelivery, Endpoint, LoggedAttempt, Outbox, ReplayScope};
pub use sql::SqlStore;
pub use topups::{DueTopUp, TopUps, Unpaid};

use crate::api_key::KeyDigest;
use crate::domain::{
    Available, Balance, DomainError, Email, Grant, Hold, HoldId, IdempotencyKey, LedgerEntry,
    LedgerEntryId, LedgerPage, LedgerTotals, Month, Role, Source, Statement, Timestamp, User,
    UserId,
};
use crate::ledger::{Debit, LedgerError, Posted, Posting};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The ledger refused the change; nothing was written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("not found")]
    NotFound,
    /// A unique value (an email, a Stripe id) is taken.
    #[error("already exists")]
    AlreadyExists,
    /// The database holds a value the domain refuses: a bug or a hand-edited row.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database is behind this build's schema (a migration is missing).
    #[error("the schema is at migration {applied}, this build needs {needed}")]
    Behind { applied: i64, needed: i64 },
    /// A hold could not be captured or released as asked.
    #[error(transparent)]
    Hold(#[from] HoldError),
    /// The balance kept changing under a posting; trying again later is safe.
    #[error("the balance kept changing; try again")]
    Contended,
    /// The transaction a debit was committed in with others failed (see [`Store::spend`]);
    /// nothing of it was written, and trying again is safe.
    #[error("the group commit failed: {0}")]
    Group(std::sync::Arc<StoreError>),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<DomainError> for StoreError {
    fn from(e: DomainError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// A user to create. The password hash is made by the caller (argon2id).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub password_hash: Option<String>,
    pub role: Role,
}

/// Which part of a ledger to read, shown newest first: the `limit` entries just older than
/// `before`, or else just newer than `after`, or else the newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    pub before: Option<LedgerEntryId>,
    pub after: Option<LedgerEntryId>,
    pub limit: u32,
    pub source: Option<Source>,
}

impl LedgerQuery {
    pub const MAX_LIMIT: u32 = 100;

    /// The first page, `limit` entries (clamped to 1..=100).
    pub fn first(limit: u32) -> Self {
        Self {
            before: None,
            after: None,
            limit: limit.clamp(1, Self::MAX_LIMIT),
            source: None,
        }
    }
}

/// A service key for the consume API, as stored (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The first characters of the secret, to tell keys apart in lists.
    pub display_prefix: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    pub fn allows(&self, scope: &str) -> bool {
        self.revoked_at.is_none() && self.scopes.iter().any(|s| s == scope)
    }
}

/// A user whose balance disagrees with their ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceMismatch {
    pub user: UserId,
    /// `None` when the user has no balance row at all.
    pub balance: Option<i64>,
    pub ledger_sum: i64,
    /// The newest entry's `balance_after`, when there are entries.
    pub last_balance_after: Option<i64>,
}

/// Everything the application stores.
#[async_trait]
pub trait Store: Outbox + Notices + TopUps + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Checks that the database answers and every migration this build knows is applied.
    async fn ready(&self) -> Result<(), StoreError>;

    /// A watch on which users' balances change, for this node's live balances (one per node:
    /// on PostgreSQL it holds a connection of its own).
    async fn watch_balances(&self) -> Result<Box<dyn BalanceWatch>, StoreError>;

    // --- Ledger -----------------------------------------------------------------------------

    /// Applies a posting and its ledger row in one transaction. A key used before answers
    /// with the original entry (`replayed`) when it was the same change, and
    /// [`LedgerError::IdempotencyConflict`] otherwise; a refused posting changes nothing.
    async fn post(&self, posting: Posting) -> Result<Posted, StoreError>;

    /// A usage debit (a consume call), committed together with the debits that arrive while
    /// the transaction before is committing (group commit): decided alone by the ledger's
    /// rules and answered as [`Store::post`] answers, only after its transaction commits.
    async fn spend(&self, debit: Debit) -> Result<Posted, StoreError>;

    /// The user's balance; zero for a user with no entries. Grants whose time has passed are
    /// expired first.
    async fn balance(&self, user: UserId) -> Result<Balance, StoreError>;

    /// The balance and what open holds reserve of it (expiries due are settled first).
    async fn available(&self, user: UserId) -> Result<Available, StoreError>;

    /// The user's grants with tokens left, in the order spending draws from them.
    async fn grants(&self, user: UserId) -> Result<Vec<Grant>, StoreError>;

    /// Applies each debit in turn in one transaction; one refused debit refuses only itself
    /// (a key used earlier in the batch answers as a replay of it, or a conflict). A database
    /// error refuses them all (nothing is written).
    async fn post_batch(&self, debits: &[Debit]) -> Result<Vec<BatchItem>, StoreError>;

    /// Reserves tokens from what is available, or refuses with
    /// [`LedgerError::InsufficientTokens`]; the same key answers with the same hold.
    async fn open_hold(&self, hold: &NewHold) -> Result<HoldOpened, StoreError>;

    /// Spends an open hold's tokens: the ledger entry, naming the hold; the rest is released.
    async fn capture_hold(&self, capture: &HoldCapture) -> Result<Posted, StoreError>;

    /// Gives a hold up; a hold that is not open any more answers as it is (`replayed`), a
    /// captured one is refused.
    async fn release_hold(
        &self,
        hold: HoldId,
        api_key: Option<i64>,
    ) -> Result<HoldReleased, StoreError>;

    async fn hold(&self, id: HoldId) -> Result<Option<Hold>, StoreError>;

    /// Expires what is due for up to `limit` users (the sweep); how many were settled.
    async fn settle_expiries(&self, limit: i64) -> Result<u64, StoreError>;

    /// Users whose grants or holds disagree with their balance row (should always be empty).
    async fn audit_credits(&self) -> Result<Vec<CreditMismatch>, StoreError>;

    async fn ledger_page(
        &self,
        user: UserId,
        query: &LedgerQuery,
    ) -> Result<LedgerPage, StoreError>;

    async fn ledger_totals(&self, user: UserId) -> Result<LedgerTotals, StoreError>;

    /// The user's statement for `month`: opening and closing balance, totals by kind, entries.
    async fn statement(&self, user: UserId, month: Month) -> Result<Statement, StoreError>;

    async fn entry_by_key(&self, key: &IdempotencyKey) -> Result<Option<LedgerEntry>, StoreError>;

    /// Users whose balance is not the sum of their ledger (should always be empty).
    async fn audit_balances(&self) -> Result<Vec<BalanceMismatch>, StoreError>;

    // --- Users ------------------------------------------------------------------------------

    /// Creates a user with a zero balance. [`StoreError::AlreadyExists`] when the email is taken.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The user with this email and their password hash (`None` for an account without one).
    async fn credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, StoreError>;

    /// Stores `new` in place of the user's password hash `old`: the same password hashed
    /// again with today's settings. False (nothing changed) when the stored hash is no
    /// longer `old`.
    async fn replace_password_hash(
        &self,
        user: UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError>;

    async fn user_count(&self) -> Result<i64, StoreError>;

    // --- Rate limits ------------------------------------------------------------------------

    /// One request for `key` under GCRA (see [`crate::rate_limit`]), in one statement so that
    /// concurrent requests on any node count exactly: `None` when allowed, otherwise how many
    /// milliseconds until the next request would be.
    async fn rate_limit_take(
        &self,
        key: &str,
        now: Timestamp,
        interval_ms: i64,
        tolerance_ms: i64,
    ) -> Result<Option<i64>, StoreError>;

    /// Deletes keys whose allowance is full again at `now`; returns how many.
    async fn rate_limit_forget_before(&self, now: Timestamp) -> Result<u64, StoreError>;

    // --- Stripe: the event inbox, customers, subscriptions ---------------------------------

    /// What the inbox knows of an event (a read): an event is kept only with an attempt at it,
    /// by [`Store::apply_event`] or [`Store::inbox_note_unfinished`].
    async fn inbox_seen(&self, id: &str) -> Result<Recorded, StoreError>;

    async fn inbox_event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError>;

    /// Applies an event's changes and keeps it in the inbox processed with `outcome` (the
    /// first copy delivered stays), all in one transaction. [`StoreError::AlreadyExists`]
    /// when another delivery finished it first (nothing changed then).
    async fn apply_event(
        &self,
        event: &InboxEvent,
        changes: &[Change],
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<Vec<Applied>, StoreError>;

    /// Keeps an event whose attempt did not finish, and why (an event already kept counts
    /// one more attempt).
    async fn inbox_note_unfinished(
        &self,
        event: &InboxEvent,
        why: &Unfinished,
        detail: &str,
    ) -> Result<(), StoreError>;

    /// Unfinished events held back for `awaiting`.
    async fn inbox_awaiting(&self, awaiting: &Awaiting) -> Result<Vec<StoredEvent>, StoreError>;

    /// Every purchase some unfinished event is held back for.
    async fn inbox_held(&self) -> Result<Vec<Awaiting>, StoreError>;

    /// Every unfinished event, oldest first.
    async fn inbox_unfinished(&self) -> Result<Vec<StoredEvent>, StoreError>;

    /// Which of `ids` the inbox holds.
    async fn inbox_known(&self, ids: &[String]) -> Result<Vec<String>, StoreError>;

    /// The credit a payment intent bought (a pack, or an invoice whose payment it was).
    async fn purchase_by_payment_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<LedgerEntry>, StoreError>;

    /// The credit for a Stripe object: a checkout session or an invoice.
    async fn purchase_by_object(&self, object: &str) -> Result<Option<LedgerEntry>, StoreError>;

    async fn customer_of(&self, user: UserId) -> Result<Option<String>, StoreError>;

    async fn user_of_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError>;

    /// Links a user to their Stripe customer; answers with the customer kept (the first).
    async fn link_customer(&self, user: UserId, customer: &str) -> Result<String, StoreError>;

    /// The user's live subscription, or their most recent one.
    async fn subscription_of(&self, user: UserId)
    -> Result<Option<SubscriptionRecord>, StoreError>;

    /// Every subscription of the user, live ones first, then the most recently changed.
    async fn subscriptions_of(&self, user: UserId) -> Result<Vec<SubscriptionRecord>, StoreError>;

    /// A subscription as the store last recorded it.
    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>, StoreError>;

    // --- Service API keys -------------------------------------------------------------------

    async fn create_api_key(
        &self,
        name: &str,
        display_prefix: &str,
        digest: &KeyDigest,
        scopes: &[&str],
    ) -> Result<ApiKey, StoreError>;

    /// The key with this digest, unless it is revoked.
    async fn active_api_key(&self, digest: &KeyDigest) -> Result<Option<ApiKey>, StoreError>;

    /// Revokes a key; false when there is no such active key.
    async fn revoke_api_key(&self, id: i64) -> Result<bool, StoreError>;

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
}
