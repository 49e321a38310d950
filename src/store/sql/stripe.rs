//! The Stripe side of the store in SQL: the event inbox, customers, subscriptions, and
//! applying an event's changes in one transaction with its "done" mark.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use super::posting::{self, Attempt};
use super::{ENTRY_COLUMNS, SqlStore, entry_from_row};
use super::{reversals, topups};
use crate::domain::{LedgerEntry, Timestamp, UserId};
use crate::ledger::Posted;
use crate::store::StoreError;
use crate::store::billing::{
    Applied, Awaiting, Change, InboxEvent, Recorded, StoredEvent, SubscriptionRecord, Unfinished,
    live_subscription_statuses,
};
use crate::stripe::status::SubscriptionStatus;

const EVENT_COLUMNS: &str =
    "id, type, payload, received_at, processed_at, outcome, detail, attempts, awaiting";

const SUBSCRIPTION_COLUMNS: &str = "stripe_subscription_id, user_id, stripe_customer_id, status, \
     price_id, current_period_end, cancel_at_period_end, cancel_at, canceled_at, stripe_updated, \
     stripe_read_at";

/// How many times an event's transaction is tried when balances move under it.
const APPLY_ATTEMPTS: usize = 3;

pub(super) async fn record(pool: &AnyPool, event: &InboxEvent) -> Result<Recorded, StoreError> {
    sqlx::query(
        "INSERT INTO stripe_events (id, type, livemode, stripe_created, payload, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(i64::from(event.livemode))
    .bind(event.created)
    .bind(&event.payload)
    .bind(Timestamp::now().as_millis())
    .execute(pool)
    .await?;
    let row =
        sqlx::query("SELECT processed_at, outcome, attempts FROM stripe_events WHERE id = $1")
            .bind(&event.id)
            .fetch_one(pool)
            .await?;
    let processed: Option<i64> = row.try_get("processed_at")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(match processed {
        Some(_) => Recorded::Processed {
            outcome: row
                .try_get::<Option<String>, _>("outcome")?
                .unwrap_or_default(),
        },
        None if attempts == 0 => Recorded::New,
        None => Recorded::Unfinished,
    })
}

pub(super) async fn event(pool: &AnyPool, id: &str) -> Result<Option<StoredEvent>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM stripe_events WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(event_from_row).transpose()
}

pub(super) async fn events_where(
    pool: &AnyPool,
    condition: &str,
    value: Option<&str>,
) -> Result<Vec<StoredEvent>, StoreError> {
    let query = format!(
        "SELECT {EVENT_COLUMNS} FROM stripe_events WHERE {condition} ORDER BY stripe_created, id"
    );
    let rows = match value {
        Some(value) => sqlx::query(&query).bind(value).fetch_all(pool).await?,
        None => sqlx::query(&query).fetch_all(pool).await?,
    };
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn known(pool: &AnyPool, ids: &[String]) -> Result<Vec<String>, StoreError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(100) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let query = format!(
            "SELECT id FROM stripe_events WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(&query);
        for id in chunk {
            q = q.bind(id);
        }
        found.extend(q.fetch_all(pool).await?);
    }
    Ok(found)
}

/// Notes an attempt that did not finish, and why: held back for a purchase (the mark is
/// set), interrupted (a mark it had stays, so the sweep still finds it), or refused (an
/// operator's to fix; it no longer waits for anything).
pub(super) async fn note_unfinished(
    pool: &AnyPool,
    id: &str,
    why: &Unfinished,
    detail: &str,
) -> Result<(), StoreError> {
    let query = match why {
        Unfinished::Held(awaiting) => sqlx::query(
            "UPDATE stripe_events SET attempts = attempts + 1, awaiting = $2, detail = $3 \
             WHERE id = $1 AND processed_at IS NULL",
        )
        .bind(id)
        .bind(awaiting.stored()),
        Unfinished::Interrupted => sqlx::query(
            "UPDATE stripe_events SET attempts = attempts + 1, detail = $2 \
             WHERE id = $1 AND processed_at IS NULL",
        )
        .bind(id),
        Unfinished::Refused => sqlx::query(
            "UPDATE stripe_events SET attempts = attempts + 1, awaiting = NULL, detail = $2 \
             WHERE id = $1 AND processed_at IS NULL",
        )
        .bind(id),
    };
    query.bind(detail).execute(pool).await?;
    Ok(())
}

/// What the unfinished, held-back events wait for, each once.
pub(super) async fn held(pool: &AnyPool) -> Result<Vec<Awaiting>, StoreError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT awaiting FROM stripe_events \
         WHERE awaiting IS NOT NULL AND processed_at IS NULL ORDER BY awaiting",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|raw| Awaiting::from_stored(raw)).collect()
}

impl SqlStore {
    /// An event's changes and its "done" mark, in one transaction (retried when a balance
    /// moved under it).
    pub(super) async fn apply(
        &self,
        id: &str,
        changes: &[Change],
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<Vec<Applied>, StoreError> {
        'attempt: for _ in 0..APPLY_ATTEMPTS {
            let at = self.at();
            let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
            let mut applied = Vec::with_capacity(changes.len());
            for change in changes {
                let attempts = match change {
                    Change::Post(posting) => vec![posting::post_in(&mut tx, at, posting).await?],
                    Change::SyncReversals(sync) => reversals::sync_in(&mut tx, at, sync).await?,
                    Change::LinkCustomer { user, customer } => {
                        match link_customer(&mut tx, *user, customer).await {
                            // The customer is another user's already: the payment still
                            // counts for the user who paid, only the link is not made.
                            Err(StoreError::AlreadyExists) => tracing::warn!(
                                user = user.get(),
                                customer,
                                "a Stripe customer already belongs to another user: not linked"
                            ),
                            other => {
                                other?;
                            }
                        }
                        vec![]
                    }
                    Change::Subscription(record) => {
                        upsert_subscription(&mut tx, record).await?;
                        vec![]
                    }
                    Change::TopUpPaid {
                        topup,
                        payment_intent,
                        tokens,
                    } => {
                        topups::paid_in(&mut tx, at, *topup, payment_intent, *tokens).await?;
                        vec![]
                    }
                    Change::SaveTopUpCard { user, card, as_of } => {
                        match topups::save_card_in(&mut tx, at, *user, card, *as_of).await {
                            Err(StoreError::NotFound) => {}
                            other => other?,
                        }
                        vec![]
                    }
                };
                if attempts.iter().any(|a| matches!(a, Attempt::Moved)) {
                    continue 'attempt;
                }
                if attempts.is_empty() {
                    applied.push(if change.moves_tokens() {
                        Applied::Covered
                    } else {
                        Applied::Recorded
                    });
                }
                for attempt in attempts {
                    applied.push(match attempt {
                        Attempt::Posted(entry) => Applied::Posted(Posted {
                            entry,
                            replayed: false,
                        }),
                        Attempt::Replayed(entry) => Applied::Posted(Posted {
                            entry,
                            replayed: true,
                        }),
                        Attempt::Moved => unreachable!("handled above"),
                    });
                }
            }
            let marked = sqlx::query(
                "UPDATE stripe_events SET processed_at = $2, outcome = $3, detail = $4, \
                     awaiting = NULL, attempts = attempts + 1 \
                 WHERE id = $1 AND processed_at IS NULL",
            )
            .bind(id)
            .bind(Timestamp::now().as_millis())
            .bind(outcome)
            .bind(detail)
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() == 0 {
                // Another delivery of this event finished first: this one changes nothing.
                tx.rollback().await?;
                return Err(StoreError::AlreadyExists);
            }
            tx.commit().await?;
            if changes
                .iter()
                .any(|c| matches!(c, Change::SaveTopUpCard { .. }))
            {
                // A card saved may have started a top-up: pay it now.
                self.spent();
            }
            for change in &applied {
                if let Applied::Posted(posted) = change
                    && !posted.replayed
                {
                    super::record_posting(&posted.entry);
                }
            }
            return Ok(applied);
        }
        Err(StoreError::Contended)
    }
}

/// Links a user to a Stripe customer; the first link stays (a user has one customer).
pub(super) async fn link_customer(
    conn: &mut AnyConnection,
    user: UserId,
    customer: &str,
) -> Result<String, StoreError> {
    sqlx::query(
        "INSERT INTO billing_customers (user_id, stripe_customer_id, created_at) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(user.get())
    .bind(customer)
    .bind(Timestamp::now().as_millis())
    .execute(&mut *conn)
    .await?;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT stripe_customer_id FROM billing_customers WHERE user_id = $1")
            .bind(user.get())
            .fetch_optional(&mut *conn)
            .await?;
    // No row for the user: the customer id belongs to someone else already.
    stored.ok_or(StoreError::AlreadyExists)
}

async fn upsert_subscription(
    conn: &mut AnyConnection,
    s: &SubscriptionRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        // Each state is read from Stripe as its event is applied: the later read wins, in
        // whatever order events (of the same second, say) arrive and commit.
        "INSERT INTO subscriptions (stripe_subscription_id, user_id, stripe_customer_id, status, \
             price_id, current_period_end, cancel_at_period_end, cancel_at, canceled_at, \
             stripe_updated, updated_at, stripe_read_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (stripe_subscription_id) DO UPDATE SET status = excluded.status, \
             price_id = excluded.price_id, current_period_end = excluded.current_period_end, \
             cancel_at_period_end = excluded.cancel_at_period_end, \
             cancel_at = excluded.cancel_at, canceled_at = excluded.canceled_at, \
             stripe_updated = excluded.stripe_updated, updated_at = excluded.updated_at, \
             stripe_read_at = excluded.stripe_read_at \
         WHERE subscriptions.stripe_read_at <= excluded.stripe_read_at",
    )
    .bind(&s.subscription)
    .bind(s.user.get())
    .bind(&s.customer)
    .bind(s.status.as_str())
    .bind(s.price.as_deref())
    .bind(s.current_period_end)
    .bind(i64::from(s.cancel_at_period_end))
    .bind(s.cancel_at)
    .bind(s.canceled_at)
    .bind(s.as_of)
    .bind(Timestamp::now().as_millis())
    .bind(s.read_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn subscriptions_of(
    pool: &AnyPool,
    user: UserId,
) -> Result<Vec<SubscriptionRecord>, StoreError> {
    // Live ones first, then the most recently changed.
    let live = live_subscription_statuses()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = sqlx::query(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE user_id = $1 \
         ORDER BY CASE WHEN status IN ({live}) THEN 0 ELSE 1 END, \
             stripe_updated DESC, stripe_subscription_id"
    ))
    .bind(user.get())
    .fetch_all(pool)
    .await?;
    rows.iter().map(subscription_from_row).collect()
}

pub(super) async fn subscription(
    pool: &AnyPool,
    id: &str,
) -> Result<Option<SubscriptionRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE stripe_subscription_id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(subscription_from_row).transpose()
}

fn subscription_from_row(row: &AnyRow) -> Result<SubscriptionRecord, StoreError> {
    Ok(SubscriptionRecord {
        subscription: row.try_get("stripe_subscription_id")?,
        user: UserId::new(row.try_get("user_id")?)?,
        customer: row.try_get("stripe_customer_id")?,
        status: {
            let raw: String = row.try_get("status")?;
            SubscriptionStatus::parse(&raw).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown subscription status `{raw}`"))
            })?
        },
        price: row.try_get("price_id")?,
        current_period_end: row.try_get("current_period_end")?,
        cancel_at_period_end: row.try_get::<i64, _>("cancel_at_period_end")? != 0,
        cancel_at: row.try_get("cancel_at")?,
        canceled_at: row.try_get("canceled_at")?,
        as_of: row.try_get("stripe_updated")?,
        read_at: row.try_get("stripe_read_at")?,
    })
}

/// The credit a payment (payment intent) or a Stripe object (checkout session, invoice) bought.
pub(super) async fn purchase_where(
    pool: &AnyPool,
    column: &str,
    value: &str,
) -> Result<Option<LedgerEntry>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM token_ledger WHERE {column} = $1 \
             AND source IN ('stripe_checkout', 'stripe_invoice', 'auto_topup') AND delta > 0 \
             AND reverses_entry_id IS NULL \
         ORDER BY id LIMIT 1"
    ))
    .bind(value)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(entry_from_row).transpose()
}

fn event_from_row(row: &AnyRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: row.try_get("id")?,
        kind: row.try_get("type")?,
        payload: row.try_get("payload")?,
        received_at: Timestamp::from_millis(row.try_get("received_at")?),
        processed_at: row
            .try_get::<Option<i64>, _>("processed_at")?
            .map(Timestamp::from_millis),
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        attempts: row.try_get("attempts")?,
        awaiting: row
            .try_get::<Option<String>, _>("awaiting")?
            .as_deref()
            .map(Awaiting::from_stored)
            .transpose()?,
    })
}
