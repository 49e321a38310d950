//! A posting inside a transaction the caller owns: one guarded balance update and one ledger
//! row. The caller commits (or drops, which rolls back).

use sqlx::AnyConnection;

use super::{ENTRY_COLUMNS, entry_from_row};
use crate::domain::{
    Balance, IdempotencyKey, LedgerEntry, LedgerEntryId, Money, Timestamp, UserId,
};
use crate::ledger::{LedgerError, Posting};
use crate::store::StoreError;

/// What one attempt at a posting came to.
pub(super) enum Attempt {
    Posted(LedgerEntry),
    /// The key was used before for this very change: nothing changed now.
    Replayed(LedgerEntry),
    /// The balance moved between the guarded update and its explanation: try again.
    Moved,
}

/// Applies `posting`: one guarded balance update, one ledger row, in the caller's transaction.
pub(super) async fn post_in(
    conn: &mut AnyConnection,
    posting: &Posting,
) -> Result<Attempt, StoreError> {
    let now = Timestamp::now();
    // One statement that changes the balance only within the posting's bounds: no
    // read-then-write, so concurrent postings cannot both pass the same check.
    let balance_after: Option<i64> = sqlx::query_scalar(
        "UPDATE token_balances SET balance = balance + $2, updated_at = $3 \
         WHERE user_id = $1 AND balance + $2 >= $4 AND balance + $2 <= $5 \
         RETURNING balance",
    )
    .bind(posting.user.get())
    .bind(posting.delta.get())
    .bind(now.as_millis())
    .bind(posting.floor())
    .bind(posting.ceiling())
    .fetch_optional(&mut *conn)
    .await?;

    let Some(balance_after) = balance_after else {
        return explain_refusal(conn, posting).await;
    };

    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO token_ledger (user_id, delta, balance_after, source, reason, \
             idempotency_key, stripe_event_id, stripe_object_id, stripe_payment_intent, \
             amount_paid_minor, currency, actor_id, reverses_entry_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (idempotency_key) DO NOTHING \
         RETURNING id",
    )
    .bind(posting.user.get())
    .bind(posting.delta.get())
    .bind(balance_after)
    .bind(posting.source.as_str())
    .bind(posting.reason.as_str())
    .bind(posting.key.as_str())
    .bind(posting.stripe.event_id.as_deref())
    .bind(posting.stripe.object_id.as_deref())
    .bind(posting.stripe.payment_intent.as_deref())
    .bind(posting.amount_paid.map(Money::minor))
    .bind(
        posting
            .amount_paid
            .map(|m| m.currency().as_str().to_owned()),
    )
    .bind(posting.actor.map(UserId::get))
    .bind(posting.reverses.map(LedgerEntryId::get))
    .bind(now.as_millis())
    .fetch_optional(&mut *conn)
    .await?;

    let Some(id) = id else {
        // The key is taken (perhaps by a transaction that committed meanwhile): undo this
        // balance change here, in the same transaction, and answer with the original.
        sqlx::query("UPDATE token_balances SET balance = balance - $2 WHERE user_id = $1")
            .bind(posting.user.get())
            .bind(posting.delta.get())
            .execute(&mut *conn)
            .await?;
        return replay(conn, posting).await;
    };

    Ok(Attempt::Posted(LedgerEntry {
        id: LedgerEntryId::new(id)?,
        user_id: posting.user,
        delta: posting.delta,
        balance_after: Balance::new(balance_after)?,
        source: posting.source,
        reason: posting.reason.as_str().to_owned(),
        created_at: now,
        amount_paid: posting.amount_paid,
        stripe_object_id: posting.stripe.object_id.clone(),
        actor_id: posting.actor,
        reverses: posting.reverses,
    }))
}

/// Why the guarded update matched no row: a replay, an unknown user, or the ledger's rule.
async fn explain_refusal(
    conn: &mut AnyConnection,
    posting: &Posting,
) -> Result<Attempt, StoreError> {
    if entry_by_key_in(conn, &posting.key).await?.is_some() {
        return replay(conn, posting).await;
    }
    let balance: Option<i64> =
        sqlx::query_scalar("SELECT balance FROM token_balances WHERE user_id = $1")
            .bind(posting.user.get())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(balance) = balance else {
        return Err(LedgerError::UnknownUser(posting.user).into());
    };
    match posting.apply_to(Balance::new(balance)?) {
        Err(refusal) => Err(refusal.into()),
        Ok(_) => Ok(Attempt::Moved),
    }
}

async fn replay(conn: &mut AnyConnection, posting: &Posting) -> Result<Attempt, StoreError> {
    let existing = entry_by_key_in(conn, &posting.key).await?.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "idempotency key {} conflicted but has no entry",
            posting.key.as_str()
        ))
    })?;
    if posting.matches(&existing) {
        Ok(Attempt::Replayed(existing))
    } else {
        Err(LedgerError::IdempotencyConflict {
            existing: Box::new(existing),
        }
        .into())
    }
}

pub(super) async fn entry_by_key_in(
    conn: &mut AnyConnection,
    key: &IdempotencyKey,
) -> Result<Option<LedgerEntry>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM token_ledger WHERE idempotency_key = $1"
    ))
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(entry_from_row).transpose()
}
