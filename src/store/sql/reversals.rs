//! Tokens taken back from a purchase, and given back, inside an event's transaction: for a
//! charge's refunds (brought to the share of the charge refunded now) and for a dispute
//! (taken once while the bank holds the money, given back once when it is won).
//!
//! Every change to one purchase takes turns: on PostgreSQL the purchase's ledger row (and a
//! dispute's row) is locked first; SQLite already holds the database's write lock.

use sqlx::{AnyConnection, Row};

use super::posting::{self, Attempt, entry_by_key_in};
use super::{ENTRY_COLUMNS, entry_from_row};
use crate::domain::{IdempotencyKey, LedgerEntry, LedgerEntryId, Source, Timestamp, Tokens};
use crate::ledger::{Posting, share_of};
use crate::store::billing::{DisputeChange, RefundSync};
use crate::store::{Backend, StoreError};
use crate::stripe::events::DisputeStatus;
use crate::stripe::gateway::RefundStatus;

/// Brings the tokens taken back for a charge's refunds to the share of the charge that
/// Stripe's refunds now return. `None` when they already are there.
pub(super) async fn sync_refunds_in(
    conn: &mut AnyConnection,
    backend: Backend,
    sync: &RefundSync,
) -> Result<Option<Attempt>, StoreError> {
    let purchase = lock_purchase(conn, backend, sync.purchase).await?;
    let now = Timestamp::now().as_millis();
    for refund in &sync.refunds {
        // A failed or canceled refund stays so, whatever an older view of Stripe says.
        sqlx::query(
            "INSERT INTO stripe_refunds (refund_id, charge_id, amount, status, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (refund_id) DO UPDATE SET status = excluded.status, \
                 updated_at = excluded.updated_at \
             WHERE stripe_refunds.status NOT IN ('failed', 'canceled')",
        )
        .bind(&refund.id)
        .bind(&sync.charge)
        .bind(refund.amount)
        .bind(refund.status.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    let refunded: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM stripe_refunds \
         WHERE charge_id = $1 AND status NOT IN ($2, $3)",
    )
    .bind(&sync.charge)
    .bind(RefundStatus::Failed.as_str())
    .bind(RefundStatus::Canceled.as_str())
    .fetch_one(&mut *conn)
    .await?;

    let linked = Linked::of(conn, &purchase, Source::StripeRefund).await?;
    let target = share_of(purchase.delta.get(), refunded, sync.charge_amount);
    let taken = -linked.same_source;
    let key = IdempotencyKey::scoped(
        "stripe:refunds",
        &format!("{}:{}", sync.charge, linked.same_source_entries + 1),
    )?;
    // Each source keeps to its own share: refunds never take more than the share refunded,
    // whatever a dispute took. (Capping by what the purchase still stands for would go wrong
    // when this store has not yet heard that a refund failed: the dispute would take too
    // little, and the failure's give-back would leave the difference with the user.)
    let posting = if target > taken {
        Posting::reversal(
            purchase.user_id,
            Tokens::new(target - taken)?,
            Source::StripeRefund,
            sync.taken.clone(),
            key,
        )
    } else if target < taken {
        Posting::credit(
            purchase.user_id,
            Tokens::new(taken - target)?,
            Source::StripeRefund,
            sync.given_back.clone(),
            key,
        )
    } else {
        return Ok(None);
    };
    let posting = posting
        .with_stripe(sync.stripe.clone())
        .reversing(purchase.id);
    posting::post_in(conn, &posting).await.map(Some)
}

/// Records where a dispute stands and moves the tokens that follow: a chargeback (or a loss)
/// takes its share once; a win gives back what was taken. `None` when nothing moves.
pub(super) async fn dispute_in(
    conn: &mut AnyConnection,
    backend: Backend,
    change: &DisputeChange,
) -> Result<Option<Attempt>, StoreError> {
    // The dispute's row first: two events about one dispute (its reversal and its win) take
    // turns here, and each sees what the other did.
    sqlx::query(
        "INSERT INTO stripe_disputes (dispute_id, status, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (dispute_id) DO NOTHING",
    )
    .bind(&change.dispute)
    .bind(change.status.as_str())
    .bind(Timestamp::now().as_millis())
    .execute(&mut *conn)
    .await?;
    let stored: String = sqlx::query_scalar(&format!(
        "SELECT status FROM stripe_disputes WHERE dispute_id = $1{}",
        backend.lock_rows()
    ))
    .bind(&change.dispute)
    .fetch_one(&mut *conn)
    .await?;
    let status = DisputeStatus::parse(&stored).merged(change.status.clone());
    sqlx::query("UPDATE stripe_disputes SET status = $2, updated_at = $3 WHERE dispute_id = $1")
        .bind(&change.dispute)
        .bind(status.as_str())
        .bind(Timestamp::now().as_millis())
        .execute(&mut *conn)
        .await?;

    if status == DisputeStatus::Won {
        let Some(taken) = entry_by_key_in(conn, &change.take_key).await? else {
            return Ok(None);
        };
        let posting = Posting::credit(
            taken.user_id,
            taken.delta.magnitude(),
            taken.source,
            change.give_back_reason.clone(),
            change.give_back_key.clone(),
        );
        let posting = match taken.reverses {
            Some(purchase) => posting.reversing(purchase),
            None => posting,
        };
        return posting::post_in(conn, &posting).await.map(Some);
    }
    let Some(take) = change.take.as_ref().filter(|_| status.takes()) else {
        return Ok(None);
    };
    if let Some(existing) = entry_by_key_in(conn, &change.take_key).await? {
        return Ok(Some(Attempt::Replayed(existing)));
    }
    let purchase = lock_purchase(conn, backend, take.purchase).await?;
    let posting = Posting::reversal(
        purchase.user_id,
        take.tokens,
        Source::StripeDispute,
        take.reason.clone(),
        change.take_key.clone(),
    )
    .with_stripe(take.stripe.clone())
    .reversing(purchase.id);
    posting::post_in(conn, &posting).await.map(Some)
}

/// Locks a purchase's ledger row until the transaction ends, and reads it.
async fn lock_purchase(
    conn: &mut AnyConnection,
    backend: Backend,
    purchase: LedgerEntryId,
) -> Result<LedgerEntry, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM token_ledger WHERE id = $1{}",
        backend.lock_rows()
    ))
    .bind(purchase.get())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    entry_from_row(&row)
}

/// What the entries of one source linked to a purchase add up to.
struct Linked {
    /// Their net change (negative: taken back).
    same_source: i64,
    same_source_entries: i64,
}

impl Linked {
    async fn of(
        conn: &mut AnyConnection,
        purchase: &LedgerEntry,
        source: Source,
    ) -> Result<Self, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS same_source, \
                 COUNT(*) AS same_source_entries \
             FROM token_ledger WHERE reverses_entry_id = $1 AND source = $2",
        )
        .bind(purchase.id.get())
        .bind(source.as_str())
        .fetch_one(&mut *conn)
        .await?;
        Ok(Self {
            same_source: row.try_get("same_source")?,
            same_source_entries: row.try_get("same_source_entries")?,
        })
    }
}
