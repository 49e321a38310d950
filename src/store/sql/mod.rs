//! The `Store` in SQL, one set of statements for SQLite and PostgreSQL.
//!
//! Statements use `$1`-style parameters, which both engines accept, and only integer and
//! text columns, which sqlx's `Any` driver maps the same way on both. Ledger changes inside a
//! transaction live in [`posting`], the grants they make and draw from in [`grants`], holds in
//! [`holds`], batches of debits in [`batch`], what is available and the credit audit in
//! [`credits`]; refunds and disputes in [`reversals`]; the Stripe inbox, customers and
//! subscriptions in [`stripe`]; reading the ledger in [`ledger`] (an entry's row in
//! [`entries`]); users and API keys in [`accounts`]; the rate limits' buckets in
//! [`rate_limits`]; outgoing webhooks in [`outbox`] and grants' events in [`grant_events`];
//! lists of values in [`lists`].

mod accounts;
mod at;
mod balance_watch;
mod batch;
mod credits;
mod entries;
mod events;
mod expiry;
mod grant_events;
mod grants;
mod group;
mod holds;
mod leases;
mod ledger;
mod lists;
mod notices;
mod outbox;
mod posting;
mod rate_limits;
mod reversals;
mod stripe;
mod topups;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::AnyPool;

use super::billing::{
    Applied, Awaiting, Change, InboxEvent, Recorded, StoredEvent, SubscriptionRecord, Unfinished,
};
use super::credits::{BatchItem, CreditMismatch, HoldCapture, HoldOpened, HoldReleased, NewHold};
use super::{
    ApiKey, Backend, BalanceMismatch, BalanceWatch, LedgerQuery, NewUser, Store, StoreError,
};
use crate::api_key::KeyDigest;
use crate::clock::{Clock, SystemClock};
use crate::config::Secret;
use crate::domain::{
    Available, Balance, Email, Grant, Hold, HoldId, IdempotencyKey, LedgerEntry, LedgerPage,
    LedgerTotals, Month, Statement, Timestamp, User, UserId,
};
use crate::ledger::{Debit, LedgerError, Posted, Posting};

use at::At;
use entries::{ENTRY_COLUMNS, entry_from_row, entry_of, record_posting};
use posting::Attempt;

/// How many times a posting is retried when the balance moved between its refusal and the
/// explanation of that refusal (another transaction committed in between).
pub(super) const POST_ATTEMPTS: usize = 3;

#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Where "now" comes from for what the store writes: when grants and holds expire.
    clock: Arc<dyn Clock>,
    /// Told after every change that may have taken what is available under a mark commits,
    /// so the node pays a top-up it started at once (see `TopUps::topups_started`).
    spent: Arc<tokio::sync::Notify>,
    /// The writers that commit usage debits in groups.
    debits: Arc<group::Debits>,
    /// The writers that commit Stripe events in groups.
    events: Arc<group::Events>,
    /// Active API keys looked up lately (see `accounts::KeyCache`).
    api_keys: accounts::KeyCache,
    /// Told after this node's balance changes commit, for SQLite's balance watch.
    changed: Arc<tokio::sync::Notify>,
    /// Where PostgreSQL's balance watch connects (`None` on SQLite).
    listen_url: Option<Secret>,
}

impl SqlStore {
    pub(super) fn new(pool: AnyPool, backend: Backend, listen_url: Option<Secret>) -> Self {
        Self {
            pool,
            backend,
            clock: Arc::new(SystemClock),
            spent: Arc::new(tokio::sync::Notify::new()),
            debits: Arc::new(group::debits(backend.group_writers())),
            events: Arc::new(group::events(backend.group_writers())),
            api_keys: accounts::key_cache(),
            changed: Arc::new(tokio::sync::Notify::new()),
            listen_url,
        }
    }

    /// After a change that may have started a top-up commits.
    pub(super) fn spent(&self) {
        self.spent.notify_one();
        self.changed.notify_one();
    }

    /// The same store, telling time by `clock` (a test's manual clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn at(&self) -> At {
        At {
            backend: self.backend,
            now: self.clock.now(),
        }
    }

    /// How many transactions group commit has made for [`Store::spend`] (the debits it
    /// committed, over this, is how many share a transaction).
    pub fn group_commits(&self) -> u64 {
        self.debits.committed()
    }

    /// The pool, for the parts of the server that keep their own tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let needed = self
            .backend
            .migrator()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        let applied = applied.unwrap_or(0);
        if applied < needed {
            return Err(StoreError::Behind { applied, needed });
        }
        Ok(())
    }

    async fn post(&self, posting: Posting) -> Result<Posted, StoreError> {
        for _ in 0..POST_ATTEMPTS {
            let at = self.at();
            let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
            // A replayed or refused posting wrote nothing of its own, but may have settled
            // expiries on its way: those are kept.
            match posting::post_in(&mut tx, at, &posting).await {
                Ok(Attempt::Posted(entry)) => {
                    tx.commit().await?;
                    record_posting(&entry);
                    self.changed.notify_one();
                    if !entry.delta.is_increase() {
                        self.spent();
                    }
                    return Ok(Posted {
                        entry,
                        replayed: false,
                    });
                }
                Ok(Attempt::Replayed(entry)) => {
                    tx.commit().await?;
                    return Ok(Posted {
                        entry,
                        replayed: true,
                    });
                }
                Ok(Attempt::Moved) => tx.rollback().await?,
                Err(refused @ StoreError::Ledger(_)) => {
                    tx.commit().await?;
                    return Err(refused);
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Contended)
    }

    async fn watch_balances(&self) -> Result<Box<dyn BalanceWatch>, StoreError> {
        Ok(match &self.listen_url {
            Some(url) => Box::new(balance_watch::PostgresWatch::connect(url.expose()).await?),
            None => Box::new(
                balance_watch::SqliteWatch::start(self.pool.clone(), self.changed.clone()).await?,
            ),
        })
    }

    async fn balance(&self, user: UserId) -> Result<Balance, StoreError> {
        Ok(self.available(user).await?.balance)
    }

    async fn available(&self, user: UserId) -> Result<Available, StoreError> {
        match self.available_now(user).await {
            Err(StoreError::Ledger(LedgerError::UnknownUser(_))) => Err(StoreError::NotFound),
            other => other,
        }
    }

    async fn grants(&self, user: UserId) -> Result<Vec<Grant>, StoreError> {
        self.live_grants(user).await
    }

    async fn spend(&self, debit: Debit) -> Result<Posted, StoreError> {
        group::spend(self, debit).await
    }

    async fn post_batch(&self, debits: &[Debit]) -> Result<Vec<BatchItem>, StoreError> {
        let posted = batch::post(self, debits).await;
        self.spent();
        posted
    }

    async fn open_hold(&self, hold: &NewHold) -> Result<HoldOpened, StoreError> {
        let opened = holds::open(self, hold).await;
        self.spent();
        opened
    }

    async fn capture_hold(&self, capture: &HoldCapture) -> Result<Posted, StoreError> {
        let captured = holds::capture(self, capture).await;
        self.spent();
        captured
    }

    async fn release_hold(
        &self,
        hold: HoldId,
        api_key: Option<i64>,
    ) -> Result<HoldReleased, StoreError> {
        holds::release(self, hold, api_key).await
    }

    async fn hold(&self, id: HoldId) -> Result<Option<Hold>, StoreError> {
        holds::hold(self, id).await
    }

    async fn settle_expiries(&self, limit: i64) -> Result<u64, StoreError> {
        let settled = self.settle_due(limit).await;
        // What expired may have taken someone under their auto top-up mark.
        if matches!(settled, Ok(n) if n > 0) {
            self.spent();
        }
        settled
    }

    async fn audit_credits(&self) -> Result<Vec<CreditMismatch>, StoreError> {
        SqlStore::audit_credits(self).await
    }

    async fn ledger_page(
        &self,
        user: UserId,
        query: &LedgerQuery,
    ) -> Result<LedgerPage, StoreError> {
        ledger::ledger_page(self, user, query).await
    }

    async fn ledger_totals(&self, user: UserId) -> Result<LedgerTotals, StoreError> {
        ledger::ledger_totals(self, user).await
    }

    async fn statement(&self, user: UserId, month: Month) -> Result<Statement, StoreError> {
        ledger::statement(self, user, month).await
    }

    async fn entry_by_key(&self, key: &IdempotencyKey) -> Result<Option<LedgerEntry>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        posting::entry_by_key_in(&mut conn, key).await
    }

    async fn audit_balances(&self) -> Result<Vec<BalanceMismatch>, StoreError> {
        ledger::audit_balances(self).await
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        accounts::create_user(self, user).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        accounts::user_by_id(self, id).await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        accounts::user_by_email(self, email).await
    }

    async fn credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        accounts::credentials(self, email).await
    }

    async fn replace_password_hash(
        &self,
        user: UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        accounts::replace_password_hash(self, user, old, new).await
    }

    async fn user_count(&self) -> Result<i64, StoreError> {
        accounts::user_count(self).await
    }

    async fn rate_limit_take(
        &self,
        key: &str,
        now: Timestamp,
        interval_ms: i64,
        tolerance_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        rate_limits::rate_limit_take(self, key, now, interval_ms, tolerance_ms).await
    }

    async fn rate_limit_forget_before(&self, now: Timestamp) -> Result<u64, StoreError> {
        rate_limits::rate_limit_forget_before(self, now).await
    }

    async fn inbox_seen(&self, id: &str) -> Result<Recorded, StoreError> {
        stripe::seen(&self.pool, id).await
    }

    async fn inbox_event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        stripe::event(&self.pool, id).await
    }

    async fn apply_event(
        &self,
        event: &InboxEvent,
        changes: &[Change],
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<Vec<Applied>, StoreError> {
        let event = stripe::EventToApply {
            event: event.clone(),
            changes: changes.to_vec(),
            outcome: outcome.to_owned(),
            detail: detail.map(str::to_owned),
        };
        group::apply_event(self, event).await
    }

    async fn inbox_note_unfinished(
        &self,
        event: &InboxEvent,
        why: &Unfinished,
        detail: &str,
    ) -> Result<(), StoreError> {
        stripe::note_unfinished(&self.pool, event, why, detail).await
    }

    async fn inbox_awaiting(&self, awaiting: &Awaiting) -> Result<Vec<StoredEvent>, StoreError> {
        stripe::events_where(
            &self.pool,
            "awaiting = $1 AND processed_at IS NULL",
            Some(&awaiting.stored()),
        )
        .await
    }

    async fn inbox_held(&self) -> Result<Vec<Awaiting>, StoreError> {
        stripe::held(&self.pool).await
    }

    async fn inbox_unfinished(&self) -> Result<Vec<StoredEvent>, StoreError> {
        stripe::events_where(&self.pool, "processed_at IS NULL", None).await
    }

    async fn inbox_known(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        stripe::known(&self.pool, ids).await
    }

    async fn purchase_by_payment_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        stripe::purchase_where(&self.pool, "stripe_payment_intent", payment_intent).await
    }

    async fn purchase_by_object(&self, object: &str) -> Result<Option<LedgerEntry>, StoreError> {
        stripe::purchase_where(&self.pool, "stripe_object_id", object).await
    }

    async fn customer_of(&self, user: UserId) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT stripe_customer_id FROM billing_customers WHERE user_id = $1",
        )
        .bind(user.get())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn user_of_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM billing_customers WHERE stripe_customer_id = $1",
        )
        .bind(customer)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(UserId::new).transpose()?)
    }

    async fn link_customer(&self, user: UserId, customer: &str) -> Result<String, StoreError> {
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        let stored = stripe::link_customer(&mut tx, user, customer).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn subscription_of(
        &self,
        user: UserId,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        Ok(stripe::subscriptions_of(&self.pool, user)
            .await?
            .into_iter()
            .next())
    }

    async fn subscriptions_of(&self, user: UserId) -> Result<Vec<SubscriptionRecord>, StoreError> {
        stripe::subscriptions_of(&self.pool, user).await
    }

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>, StoreError> {
        stripe::subscription(&self.pool, id).await
    }

    async fn create_api_key(
        &self,
        name: &str,
        display_prefix: &str,
        digest: &KeyDigest,
        scopes: &[&str],
    ) -> Result<ApiKey, StoreError> {
        accounts::create_api_key(self, name, display_prefix, digest, scopes).await
    }

    async fn active_api_key(&self, digest: &KeyDigest) -> Result<Option<ApiKey>, StoreError> {
        accounts::active_api_key(self, digest).await
    }

    async fn revoke_api_key(&self, id: i64) -> Result<bool, StoreError> {
        accounts::revoke_api_key(self, id).await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        accounts::api_keys(self).await
    }
}
