//! Tokens taken back from a purchase, and given back, inside an event's transaction. Whatever
//! the event, what the store knows of the purchase's charge (its refunds, its dispute) is
//! updated, and the tokens taken back are brought to what the money says:
//! - refunds: `grant × refunded / charged`, counting the refunds that return money;
//! - a dispute: `grant × disputed / charged` while the bank holds the money (a chargeback),
//!   `grant × min(disputed, charged − refunded) / charged` once it is lost (Stripe gives back
//!   the part of a payment disputed in full that had been refunded), nothing when won or when
//!   it is only an inquiry.
//!
//! Each is brought to its own share by one posting (a reversal, or a credit when the share
//! shrank: a refund that failed, a dispute won). Every change to one purchase takes turns on
//! its ledger row: `FOR NO KEY UPDATE` on PostgreSQL; SQLite already holds its write lock.

use sqlx::{AnyConnection, Row};

use super::at::At;
use super::posting::{self, Attempt};
use super::{ENTRY_COLUMNS, entry_from_row};
use crate::domain::{IdempotencyKey, LedgerEntry, LedgerEntryId, Tokens};
use crate::ledger::{Posting, share_of};
use crate::store::billing::{GivenBack, Reversal, ReversalReasons, ReversalSync};
use crate::store::{Backend, StoreError};
use crate::stripe::events::DisputeStatus;
use crate::stripe::gateway::RefundStatus;

/// Updates what the store knows of the charge and brings both shares to where the money
/// says; the postings made (none when both already are there).
pub(super) async fn sync_in(
    conn: &mut AnyConnection,
    at: At,
    sync: &ReversalSync,
) -> Result<Vec<Attempt>, StoreError> {
    // Tokens a refund or a dispute takes back start no top-up (migration 0008, topup_quiet):
    // the mark is written and gone again inside this transaction.
    sqlx::query("INSERT INTO topup_quiet (user_id) VALUES ($1)")
        .bind(sync.user.get())
        .execute(&mut *conn)
        .await?;
    // On an error the caller rolls the transaction (or its savepoint) back, the mark with it;
    // a statement after a failed one would only fail too on PostgreSQL, hiding the error.
    let synced = sync_quietly(conn, at, sync).await?;
    sqlx::query("DELETE FROM topup_quiet WHERE user_id = $1")
        .bind(sync.user.get())
        .execute(&mut *conn)
        .await?;
    Ok(synced)
}

async fn sync_quietly(
    conn: &mut AnyConnection,
    at: At,
    sync: &ReversalSync,
) -> Result<Vec<Attempt>, StoreError> {
    let purchase = lock_purchase(conn, at.backend, sync.purchase).await?;
    let now = at.now.as_millis();
    for refund in sync.refunds.iter().flatten() {
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
    if let Some(news) = &sync.dispute {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT status FROM stripe_disputes WHERE dispute_id = $1")
                .bind(&news.dispute)
                .fetch_optional(&mut *conn)
                .await?;
        // An ended dispute never reopens; a chargeback never goes back to an inquiry.
        let status = match stored {
            Some(stored) => DisputeStatus::parse(&stored).merged(news.status.clone()),
            None => news.status.clone(),
        };
        sqlx::query(
            "INSERT INTO stripe_disputes (dispute_id, charge_id, amount, status, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (dispute_id) DO UPDATE SET charge_id = excluded.charge_id, \
                 amount = excluded.amount, status = excluded.status, \
                 updated_at = excluded.updated_at",
        )
        .bind(&news.dispute)
        .bind(&sync.charge)
        .bind(news.amount)
        .bind(status.as_str())
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
    let disputes =
        sqlx::query("SELECT dispute_id, status, amount FROM stripe_disputes WHERE charge_id = $1")
            .bind(&sync.charge)
            .fetch_all(&mut *conn)
            .await?;
    let (granted, charged) = (purchase.delta.get(), sync.charge_amount);
    let mut disputed_target = 0;
    // Why a dispute's tokens come back: as the dispute this news is about now stands, or (news
    // of refunds) as any of the charge's does.
    let mut ended_now = None;
    let mut ended_any = GivenBack::DisputeClosed;
    for row in &disputes {
        let amount: Option<i64> = row.try_get("amount")?;
        let amount = amount.unwrap_or(charged);
        let status = DisputeStatus::parse(&row.try_get::<String, _>("status")?);
        disputed_target += match &status {
            DisputeStatus::Chargeback => share_of(granted, amount, charged),
            DisputeStatus::Lost => share_of(granted, amount.min(charged - refunded), charged),
            _ => 0,
        };
        let ended = match status {
            DisputeStatus::Won => GivenBack::DisputeWon,
            DisputeStatus::Lost => GivenBack::DisputeLostAfterRefund,
            _ => GivenBack::DisputeClosed,
        };
        let id: String = row.try_get("dispute_id")?;
        if sync.dispute.as_ref().is_some_and(|news| news.dispute == id) {
            ended_now = Some(ended);
        }
        if ended_any != GivenBack::DisputeWon && ended != GivenBack::DisputeClosed {
            ended_any = ended;
        }
    }
    let dispute_ended = ended_now.unwrap_or(ended_any);

    let mut attempts = Vec::new();
    let targets = [
        (
            Reversal::Refund,
            share_of(granted, refunded, charged),
            GivenBack::RefundUndone,
            "stripe:refunds",
        ),
        (
            Reversal::Dispute,
            disputed_target,
            dispute_ended,
            "stripe:disputes",
        ),
    ];
    for (by, target, why_back, scope) in targets {
        if let Some(posting) = bring_to(
            conn,
            &purchase,
            (by, why_back),
            target,
            &sync.reasons,
            scope,
            &sync.charge,
        )
        .await?
        {
            let posting = posting
                .with_stripe(sync.stripe.clone())
                .reversing(purchase.id);
            attempts.push(posting::post_in(conn, at, &posting).await?);
        }
    }
    Ok(attempts)
}

/// The posting that brings the tokens one reversal took back from `purchase` to `target`, if
/// they are not there already (`why_back`: what a row giving some back says).
async fn bring_to(
    conn: &mut AnyConnection,
    purchase: &LedgerEntry,
    (by, why_back): (Reversal, GivenBack),
    target: i64,
    reasons: &ReversalReasons,
    scope: &str,
    charge: &str,
) -> Result<Option<Posting>, StoreError> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS net, COUNT(*) AS entries \
         FROM token_ledger WHERE reverses_entry_id = $1 AND source = $2",
    )
    .bind(purchase.id.get())
    .bind(by.source().as_str())
    .fetch_one(&mut *conn)
    .await?;
    let taken = -row.try_get::<i64, _>("net")?;
    let entries: i64 = row.try_get("entries")?;
    // One key per step of this source on this purchase: each is applied once, in turn.
    let key = IdempotencyKey::scoped(scope, &format!("{charge}:{}", entries + 1))?;
    Ok(if target > taken {
        Some(Posting::reversal(
            purchase.user_id,
            Tokens::new(target - taken)?,
            by.source(),
            reasons.taking(by, target - taken, purchase.delta.get()),
            key,
        ))
    } else if target < taken {
        Some(Posting::credit(
            purchase.user_id,
            Tokens::new(taken - target)?,
            by.source(),
            reasons.giving_back(why_back, taken - target, purchase.delta.get()),
            key,
        ))
    } else {
        None
    })
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
