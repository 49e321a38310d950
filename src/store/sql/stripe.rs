//! The Stripe side of the store in SQL: the event inbox, customers, subscriptions, and
//! applying an event's changes in one transaction with its "done" mark.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use std::collections::BTreeSet;

use super::at::At;
use super::lists::{keep_prepared, rows_for};
use super::posting::{self, Attempt};
use super::{ENTRY_COLUMNS, SqlStore, entry_from_row};
use super::{reversals, topups};
use crate::domain::{LedgerEntry, Timestamp, UserId};
use crate::ledger::Posted;
use crate::store::billing::{
    Applied, Awaiting, Change, InboxEvent, Recorded, StoredEvent, SubscriptionRecord, Unfinished,
    live_subscription_statuses,
};
use crate::store::{Backend, StoreError};
use crate::stripe::status::SubscriptionStatus;

const EVENT_COLUMNS: &str =
    "id, type, payload, received_at, processed_at, outcome, detail, attempts, awaiting";

const SUBSCRIPTION_COLUMNS: &str = "stripe_subscription_id, user_id, stripe_customer_id, status, \
     price_id, current_period_end, cancel_at_period_end, cancel_at, canceled_at, stripe_updated, \
     stripe_read_at";

/// How many times an event's transaction is tried when balances move under it.
const APPLY_ATTEMPTS: usize = 3;

/// What the inbox knows of an event: a read. An event is written to the inbox only with an
/// attempt at it, in the same transaction (see [`apply_in`] and [`note_unfinished`]): a new
/// event costs no commit of its own.
pub(super) async fn seen(pool: &AnyPool, id: &str) -> Result<Recorded, StoreError> {
    let row =
        sqlx::query("SELECT processed_at, outcome, attempts FROM stripe_events WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let Some(row) = row else {
        return Ok(Recorded::New);
    };
    let processed: Option<i64> = row.try_get("processed_at")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(match processed {
        Some(_) => Recorded::Processed {
            outcome: row
                .try_get::<Option<String>, _>("outcome")?
                .unwrap_or_default(),
        },
        // Kept before its first attempt (by a version that kept events first).
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
        let mut q = sqlx::query_scalar::<_, String>(&query).persistent(keep_prepared(chunk.len()));
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
    event: &InboxEvent,
    why: &Unfinished,
    detail: &str,
) -> Result<(), StoreError> {
    // Kept with its first attempt; a later attempt counts and says why it stopped too.
    let (awaiting, keep) = match why {
        Unfinished::Held(awaiting) => (Some(awaiting.stored()), "excluded.awaiting"),
        Unfinished::Interrupted => (None, "stripe_events.awaiting"),
        Unfinished::Refused => (None, "NULL"),
    };
    sqlx::query(&format!(
        "INSERT INTO stripe_events \
             (id, type, livemode, stripe_created, payload, received_at, attempts, awaiting, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET attempts = stripe_events.attempts + 1, \
             awaiting = {keep}, detail = excluded.detail \
         WHERE stripe_events.processed_at IS NULL"
    ))
    .bind(&event.id)
    .bind(&event.kind)
    .bind(i64::from(event.livemode))
    .bind(event.created)
    .bind(&event.payload)
    .bind(Timestamp::now().as_millis())
    .bind(awaiting)
    .bind(detail)
    .execute(pool)
    .await?;
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

/// An event's changes and the outcome to mark it done with, for [`apply_group`].
pub(super) struct EventToApply {
    pub event: InboxEvent,
    pub changes: Vec<Change>,
    pub outcome: String,
    pub detail: Option<String>,
}

impl EventToApply {
    /// The users whose rows the event changes.
    pub(super) fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.changes.iter().filter_map(|change| match change {
            Change::Post(posting) => Some(posting.user),
            Change::LinkCustomer { user, .. } | Change::SaveTopUpCard { user, .. } => Some(*user),
            Change::Subscription(record) => Some(record.user),
            Change::SyncReversals(sync) => Some(sync.user),
            // After the credit it settles (a `Post` before it, of the same user).
            Change::TopUpPaid { .. } => None,
        })
    }
}

/// Applies a group of events in one transaction, each with its changes and its "done" mark in
/// a savepoint of its own: an event refused, already done by another delivery, or failing is
/// rolled back alone and answered so, and the others commit. `Err` only when the transaction
/// itself failed (nothing of the group is written then).
///
/// Two groups never wait on each other in a circle (each node has a few writers of events,
/// and batches of debits have theirs): a group first locks its users' balance rows in user order,
/// as a batch does, and whatever else an event locks (its grants, its purchase, its own
/// inbox row) is that of a user it holds, or its own row, taken in the order of the events,
/// by user and then by event id.
pub(super) async fn apply_group(
    store: &SqlStore,
    events: &[EventToApply],
) -> Result<Vec<Result<Vec<Applied>, StoreError>>, StoreError> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| {
        let first = |i: usize| events[i].users().map(UserId::get).min().unwrap_or(i64::MAX);
        (first(a), &events[a].event.id).cmp(&(first(b), &events[b].event.id))
    });
    let mut answers: Vec<Option<Result<Vec<Applied>, StoreError>>> =
        events.iter().map(|_| None).collect();
    let mut tx = store.pool.begin_with(store.backend.begin_write()).await?;
    let users: Vec<i64> = events
        .iter()
        .flat_map(EventToApply::users)
        .map(UserId::get)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if store.backend == Backend::Postgres && !users.is_empty() {
        // SQLite's transaction holds the whole database already.
        rows_for(&mut tx, &users, |list| {
            format!(
                "SELECT user_id FROM token_balances WHERE user_id IN ({list}) \
                 ORDER BY user_id{}",
                store.backend.lock_rows()
            )
        })
        .await?;
    }
    for i in order {
        answers[i] = Some(apply_in_savepoint(&mut tx, store, &events[i]).await?);
    }
    tx.commit().await?;
    for (event, answer) in events.iter().zip(&answers) {
        let Some(Ok(applied)) = answer else { continue };
        if event
            .changes
            .iter()
            .any(|c| matches!(c, Change::SaveTopUpCard { .. }))
        {
            // A card saved may have started a top-up: pay it now.
            store.spent();
        }
        for change in applied {
            if let Applied::Posted(posted) = change
                && !posted.replayed
            {
                super::record_posting(&posted.entry);
            }
        }
    }
    Ok(answers.into_iter().flatten().collect())
}

/// One event of a group, in a savepoint (tried again when a balance moved under it): its
/// answer, or `Err` when the savepoint itself could not be made or undone.
async fn apply_in_savepoint(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    store: &SqlStore,
    event: &EventToApply,
) -> Result<Result<Vec<Applied>, StoreError>, StoreError> {
    for _ in 0..APPLY_ATTEMPTS {
        let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
        match apply_in(&mut savepoint, store.at(), event).await {
            Ok(Some(applied)) => {
                savepoint.commit().await?;
                return Ok(Ok(applied));
            }
            // A balance moved under it: decide again.
            Ok(None) => savepoint.rollback().await?,
            Err(refused) => {
                savepoint.rollback().await?;
                return Ok(Err(refused));
            }
        }
    }
    Ok(Err(StoreError::Contended))
}

/// An event's changes and its "done" mark; `None` when a balance moved under a change (the
/// caller rolls back and tries again), [`StoreError::AlreadyExists`] when another delivery
/// finished the event first.
async fn apply_in(
    conn: &mut AnyConnection,
    at: At,
    event: &EventToApply,
) -> Result<Option<Vec<Applied>>, StoreError> {
    let mut applied = Vec::with_capacity(event.changes.len());
    for change in &event.changes {
        let attempts = match change {
            Change::Post(posting) => vec![posting::post_in(conn, at, posting).await?],
            Change::SyncReversals(sync) => reversals::sync_in(conn, at, sync).await?,
            Change::LinkCustomer { user, customer } => {
                match link_customer(conn, *user, customer).await {
                    // The customer is another user's already: the payment still counts for
                    // the user who paid, only the link is not made.
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
                upsert_subscription(conn, record).await?;
                vec![]
            }
            Change::TopUpPaid {
                topup,
                payment_intent,
                tokens,
            } => {
                topups::paid_in(conn, at, *topup, payment_intent, *tokens).await?;
                vec![]
            }
            Change::SaveTopUpCard { user, card, as_of } => {
                match topups::save_card_in(conn, at, *user, card, *as_of).await {
                    Err(StoreError::NotFound) => {}
                    other => other?,
                }
                vec![]
            }
        };
        if attempts.iter().any(|a| matches!(a, Attempt::Moved)) {
            return Ok(None);
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
    // Kept in the inbox already done (one row written once), or marked done when an earlier
    // attempt kept it.
    let now = Timestamp::now().as_millis();
    let marked = sqlx::query(
        "INSERT INTO stripe_events (id, type, livemode, stripe_created, payload, received_at, \
             processed_at, outcome, detail, attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, 1) \
         ON CONFLICT (id) DO UPDATE SET processed_at = excluded.processed_at, \
             outcome = excluded.outcome, detail = excluded.detail, awaiting = NULL, \
             attempts = stripe_events.attempts + 1 \
         WHERE stripe_events.processed_at IS NULL",
    )
    .bind(&event.event.id)
    .bind(&event.event.kind)
    .bind(i64::from(event.event.livemode))
    .bind(event.event.created)
    .bind(&event.event.payload)
    .bind(now)
    .bind(&event.outcome)
    .bind(event.detail.as_deref())
    .execute(&mut *conn)
    .await?;
    if marked.rows_affected() == 0 {
        // Another delivery of this event finished first: this one changes nothing.
        return Err(StoreError::AlreadyExists);
    }
    Ok(Some(applied))
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
