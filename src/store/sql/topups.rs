//! Auto top-up in SQL: choices and saved cards, claiming top-ups to pay, settling those not
//! paid (a failure pauses auto top-up) and those paid (inside fulfilment's transaction), each
//! with its event for the outbox.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{AnyConnection, Row};

use super::at::At;
use super::posting::{self, Attempt};
use super::{POST_ATTEMPTS, SqlStore, leases, record_posting};
use crate::domain::{
    AutoTopUp, AutoTopUpState, PauseReason, ProductId, SavedCard, Timestamp, Tokens, TopUp,
    TopUpChoice, TopUpState, UserId,
};
use crate::ledger::{Posted, Posting};
use crate::outbox::EventKind;
use crate::store::StoreError;
use crate::store::topups::{DueTopUp, TopUps, Unpaid};

const CHOICE_COLUMNS: &str =
    "state, below, product, monthly_cap, payment_method, card, paused_reason";

fn auto_topup_from(row: &sqlx::any::AnyRow) -> Result<AutoTopUp, StoreError> {
    let card = match (
        row.try_get::<Option<String>, _>("payment_method")?,
        row.try_get::<Option<String>, _>("card")?,
    ) {
        (Some(payment_method), label) => Some(SavedCard {
            payment_method,
            label: label.unwrap_or_default(),
        }),
        (None, _) => None,
    };
    Ok(AutoTopUp {
        choice: TopUpChoice::new(
            Tokens::new(row.try_get("below")?)?,
            ProductId::parse(&row.try_get::<String, _>("product")?)?,
            Tokens::new(row.try_get("monthly_cap")?)?,
        )?,
        state: AutoTopUpState::parse(
            &row.try_get::<String, _>("state")?,
            row.try_get::<Option<String>, _>("paused_reason")?
                .as_deref(),
        )?,
        card,
    })
}

fn topup_from(row: &sqlx::any::AnyRow) -> Result<TopUp, StoreError> {
    let failure: Option<String> = row.try_get("failure")?;
    let state = match (row.try_get::<String, _>("state")?.as_str(), failure) {
        ("pending", _) => TopUpState::Pending,
        ("succeeded", _) => TopUpState::Succeeded,
        ("failed", Some(reason)) => TopUpState::Failed(PauseReason::parse(&reason)?),
        ("capped", _) => TopUpState::Capped,
        ("canceled", _) => TopUpState::Canceled,
        (other, _) => return Err(StoreError::Corrupt(format!("a top-up {other}"))),
    };
    Ok(TopUp {
        id: row.try_get("id")?,
        pack: ProductId::parse(&row.try_get::<String, _>("product")?)?,
        state,
        tokens: row.try_get("tokens")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        settled_at: row
            .try_get::<Option<i64>, _>("settled_at")?
            .map(Timestamp::from_millis),
    })
}

/// Locks the user's balance row: a top-up's event keeps its place among the user's others,
/// and what is available cannot move while it is read.
async fn lock_balance(conn: &mut AnyConnection, at: At, user: UserId) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "SELECT user_id FROM token_balances WHERE user_id = $1{}",
        at.backend.lock_rows()
    ))
    .bind(user.get())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(())
}

/// Starts a top-up when auto top-up is on, what is available is under the mark and none is
/// in flight (what the crossing trigger does, for a mark that was passed before it was on).
async fn start_if_under(conn: &mut AnyConnection, at: At, user: UserId) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO topup_attempts (user_id, product, state, created_at) \
         SELECT a.user_id, a.product, 'pending', $2 FROM auto_topups a \
         JOIN token_balances b ON b.user_id = a.user_id \
         WHERE a.user_id = $1 AND a.state = 'on' AND b.balance - b.held < a.below \
             AND NOT EXISTS (SELECT 1 FROM topup_attempts t \
                 WHERE t.user_id = a.user_id AND t.state = 'pending')",
    )
    .bind(user.get())
    .bind(at.now.as_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn read(conn: &mut AnyConnection, user: UserId) -> Result<Option<AutoTopUp>, StoreError> {
    sqlx::query(&format!(
        "SELECT {CHOICE_COLUMNS} FROM auto_topups WHERE user_id = $1"
    ))
    .bind(user.get())
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(auto_topup_from)
    .transpose()
}

/// Saves the card top-ups pay with (see `TopUps::save_topup_card`), inside `conn`'s
/// transaction. The card saved already (the webhook of the setup the page reported, or the
/// other way round) changes nothing: a paused auto top-up stays paused until a new card; so
/// does the card of a session older than the one saved (its webhook retried late).
/// `NotFound` when auto top-up was never chosen.
pub(super) async fn save_card_in(
    conn: &mut AnyConnection,
    at: At,
    user: UserId,
    card: &SavedCard,
    as_of: Timestamp,
) -> Result<(), StoreError> {
    lock_balance(conn, at, user).await?;
    if read(conn, user).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let changed = sqlx::query(
        "UPDATE auto_topups SET payment_method = $2, card = $3, paused_reason = NULL, \
             updated_at = $4, card_as_of = $5, \
             state = CASE WHEN state = 'off' THEN 'off' ELSE 'on' END \
         WHERE user_id = $1 AND (payment_method IS NULL OR payment_method <> $2) \
             AND (card_as_of IS NULL OR card_as_of <= $5)",
    )
    .bind(user.get())
    .bind(&card.payment_method)
    .bind(&card.label)
    .bind(at.now.as_millis())
    .bind(as_of.as_millis())
    .execute(&mut *conn)
    .await?;
    if changed.rows_affected() == 1 {
        start_if_under(conn, at, user).await?;
    }
    Ok(())
}

/// A top-up's event for the outbox: `topup.succeeded` naming its credit, or `topup.failed`.
struct TopUpEvent<'a> {
    user: UserId,
    topup: i64,
    kind: EventKind,
    entry: Option<i64>,
    tokens: Option<i64>,
    failure: Option<&'a str>,
}

impl TopUpEvent<'_> {
    async fn write(self, conn: &mut AnyConnection, at: At) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox_events (user_id, kind, entry_id, tokens, topup_id, detail, \
                 created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.user.get())
        .bind(self.kind.as_str())
        .bind(self.entry)
        .bind(self.tokens)
        .bind(self.topup)
        .bind(self.failure)
        .bind(at.now.as_millis())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Settles a paid top-up inside fulfilment's transaction, after its credit was posted: the
/// top-up succeeded (even one a decline had failed: the cardholder may have paid it since),
/// with its event naming the credit. Nothing when it is settled as paid already.
pub(super) async fn paid_in(
    conn: &mut AnyConnection,
    at: At,
    topup: i64,
    payment_intent: &str,
    tokens: Tokens,
) -> Result<(), StoreError> {
    let user: Option<i64> = sqlx::query_scalar(
        "UPDATE topup_attempts SET state = 'succeeded', failure = NULL, tokens = $3, \
             payment_intent = $2, settled_at = $4, leased_until = NULL \
         WHERE id = $1 AND state <> 'succeeded' RETURNING user_id",
    )
    .bind(topup)
    .bind(payment_intent)
    .bind(tokens.get())
    .bind(at.now.as_millis())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(user) = user else {
        return Ok(());
    };
    let entry: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM token_ledger WHERE stripe_payment_intent = $1 AND source = 'auto_topup' \
         ORDER BY id LIMIT 1",
    )
    .bind(payment_intent)
    .fetch_optional(&mut *conn)
    .await?;
    TopUpEvent {
        user: UserId::new(user)?,
        topup,
        kind: EventKind::TopUpSucceeded,
        entry,
        tokens: Some(tokens.get()),
        failure: None,
    }
    .write(conn, at)
    .await
}

#[async_trait]
impl TopUps for SqlStore {
    fn topups_started(&self) -> Arc<tokio::sync::Notify> {
        self.spent.clone()
    }

    async fn auto_topup(&self, user: UserId) -> Result<Option<AutoTopUp>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read(&mut conn, user).await
    }

    async fn choose_auto_topup(
        &self,
        user: UserId,
        choice: TopUpChoice,
    ) -> Result<AutoTopUp, StoreError> {
        let at = self.at();
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        lock_balance(&mut tx, at, user).await?;
        sqlx::query(
            "INSERT INTO auto_topups (user_id, state, below, product, monthly_cap, updated_at) \
             VALUES ($1, 'card_needed', $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET below = excluded.below, \
                 product = excluded.product, monthly_cap = excluded.monthly_cap, \
                 updated_at = excluded.updated_at, \
                 state = CASE WHEN auto_topups.state = 'paused' THEN 'paused' \
                     WHEN auto_topups.payment_method IS NOT NULL THEN 'on' \
                     ELSE 'card_needed' END",
        )
        .bind(user.get())
        .bind(choice.below.get())
        .bind(choice.pack().as_str())
        .bind(choice.monthly_cap.get())
        .bind(at.now.as_millis())
        .execute(&mut *tx)
        .await?;
        start_if_under(&mut tx, at, user).await?;
        let chosen = read(&mut tx, user).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        self.spent();
        Ok(chosen)
    }

    async fn turn_off_auto_topup(&self, user: UserId) -> Result<bool, StoreError> {
        let at = self.at();
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        // Locked first: a spend in flight either started its top-up before (canceled below)
        // or sees auto top-up off.
        lock_balance(&mut tx, at, user).await?;
        let done = sqlx::query(
            "UPDATE auto_topups SET state = 'off', paused_reason = NULL, updated_at = $2 \
             WHERE user_id = $1",
        )
        .bind(user.get())
        .bind(at.now.as_millis())
        .execute(&mut *tx)
        .await?;
        // One not paid yet is not paid at all; one a node is paying now stays in flight (the
        // node sees auto top-up off before it charges, and cancels it).
        sqlx::query(
            "UPDATE topup_attempts SET state = 'canceled', settled_at = $2, leased_until = NULL \
             WHERE user_id = $1 AND state = 'pending' \
                 AND (leased_until IS NULL OR leased_until <= $2)",
        )
        .bind(user.get())
        .bind(at.now.as_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn save_topup_card(
        &self,
        user: UserId,
        card: &SavedCard,
        as_of: Timestamp,
    ) -> Result<AutoTopUp, StoreError> {
        let at = self.at();
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        save_card_in(&mut tx, at, user, card, as_of).await?;
        let saved = read(&mut tx, user).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        self.spent();
        Ok(saved)
    }

    async fn claim_topups(
        &self,
        now: Timestamp,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueTopUp>, StoreError> {
        let now = now.as_millis();
        let candidates: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM topup_attempts \
             WHERE state = 'pending' AND (leased_until IS NULL OR leased_until <= $1) \
             ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let claimed = leases::take(
            &self.pool,
            "topup_attempts",
            &candidates,
            now,
            lease.as_millis() as i64,
        )
        .await?;
        let mut due = Vec::with_capacity(claimed.len());
        for id in claimed {
            let row = sqlx::query(
                "SELECT t.id, t.user_id, t.product, t.created_at, t.leased_until, \
                     a.payment_method, a.card, a.monthly_cap, c.stripe_customer_id \
                 FROM topup_attempts t \
                 JOIN auto_topups a ON a.user_id = t.user_id \
                 LEFT JOIN billing_customers c ON c.user_id = t.user_id \
                 WHERE t.id = $1",
            )
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
            due.push(DueTopUp {
                id,
                user: UserId::new(row.try_get("user_id")?)?,
                pack: ProductId::parse(&row.try_get::<String, _>("product")?)?,
                card: row
                    .try_get::<Option<String>, _>("payment_method")?
                    .map(|payment_method| {
                        Ok::<_, StoreError>(SavedCard {
                            payment_method,
                            label: row
                                .try_get::<Option<String>, _>("card")?
                                .unwrap_or_default(),
                        })
                    })
                    .transpose()?,
                customer: row.try_get("stripe_customer_id")?,
                monthly_cap: row.try_get("monthly_cap")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                leased_until: Timestamp::from_millis(
                    row.try_get::<Option<i64>, _>("leased_until")?
                        .ok_or_else(|| StoreError::Corrupt("a claimed top-up unclaimed".into()))?,
                ),
            });
        }
        Ok(due)
    }

    async fn credit_topup(
        &self,
        credit: Posting,
        topup: i64,
        payment_intent: &str,
        tokens: Tokens,
    ) -> Result<Posted, StoreError> {
        for _ in 0..POST_ATTEMPTS {
            let at = self.at();
            let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
            let (entry, replayed) = match posting::post_in(&mut tx, at, &credit).await? {
                Attempt::Posted(entry) => (entry, false),
                Attempt::Replayed(entry) => (entry, true),
                Attempt::Moved => {
                    tx.rollback().await?;
                    continue;
                }
            };
            paid_in(&mut tx, at, topup, payment_intent, tokens).await?;
            tx.commit().await?;
            if !replayed {
                record_posting(&entry);
            }
            return Ok(Posted { entry, replayed });
        }
        Err(StoreError::Contended)
    }

    async fn topped_up_since(&self, user: UserId, since: Timestamp) -> Result<i64, StoreError> {
        // Cast: PostgreSQL sums BIGINTs as NUMERIC, which the Any driver cannot read.
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) FROM topup_attempts \
             WHERE user_id = $1 AND state = 'succeeded' AND created_at >= $2",
        )
        .bind(user.get())
        .bind(since.as_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(total)
    }

    async fn settle_unpaid_topup(
        &self,
        topup: i64,
        unpaid: Unpaid,
        payment_intent: Option<&str>,
    ) -> Result<bool, StoreError> {
        let at = self.at();
        let user: Option<i64> =
            sqlx::query_scalar("SELECT user_id FROM topup_attempts WHERE id = $1")
                .bind(topup)
                .fetch_optional(&self.pool)
                .await?;
        let user = UserId::new(user.ok_or(StoreError::NotFound)?)?;
        let (state, failure, detail) = match unpaid {
            Unpaid::Failed(reason) => ("failed", Some(reason.as_str()), Some(reason.as_str())),
            Unpaid::Capped => ("capped", None, Some("monthly_cap")),
            Unpaid::Canceled => ("canceled", None, None),
        };
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        lock_balance(&mut tx, at, user).await?;
        let done = sqlx::query(
            "UPDATE topup_attempts SET state = $2, failure = $3, \
                 payment_intent = COALESCE(payment_intent, $4), settled_at = $5, \
                 leased_until = NULL \
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(topup)
        .bind(state)
        .bind(failure)
        .bind(payment_intent)
        .bind(at.now.as_millis())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let Unpaid::Failed(reason) = unpaid {
            sqlx::query(
                "UPDATE auto_topups SET state = 'paused', paused_reason = $2, updated_at = $3 \
                 WHERE user_id = $1 AND state = 'on'",
            )
            .bind(user.get())
            .bind(reason.as_str())
            .bind(at.now.as_millis())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(detail) = detail {
            TopUpEvent {
                user,
                topup,
                kind: EventKind::TopUpFailed,
                entry: None,
                tokens: None,
                failure: Some(detail),
            }
            .write(&mut tx, at)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn topups_of(&self, user: UserId, limit: i64) -> Result<Vec<TopUp>, StoreError> {
        sqlx::query(
            "SELECT id, product, state, failure, tokens, created_at, settled_at \
             FROM topup_attempts WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user.get())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(topup_from)
        .collect()
    }

    async fn topup(&self, id: i64) -> Result<Option<(UserId, TopUp)>, StoreError> {
        sqlx::query(
            "SELECT id, user_id, product, state, failure, tokens, created_at, settled_at \
             FROM topup_attempts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| Ok((UserId::new(row.try_get("user_id")?)?, topup_from(&row)?)))
        .transpose()
    }
}
