//! A posting inside a transaction the caller owns: one guarded balance update, one ledger
//! row, and the grant it makes or the grants it draws from. The caller commits (or drops,
//! which rolls back).

use sqlx::{AnyConnection, Row};

use super::at::At;
use super::expiry;
use super::grants::{self, Draws, SPENDING_ORDER};
use super::{ENTRY_COLUMNS, entry_from_row, entry_of};
use crate::domain::{
    Balance, IdempotencyKey, LedgerEntry, LedgerEntryId, Money, Timestamp, UserId,
};
use crate::ledger::{LedgerError, Posting, PostingKind};
use crate::store::StoreError;

/// What one attempt at a posting came to.
pub(super) enum Attempt {
    Posted(LedgerEntry),
    /// The key was used before for this very change: nothing changed now.
    Replayed(LedgerEntry),
    /// The balance moved between the guarded update and its explanation, or the key was
    /// taken meanwhile: roll back and try again.
    Moved,
}

/// Applies `posting`: one guarded balance update, one ledger row, its grant or its draws, in
/// the caller's transaction.
pub(super) async fn post_in(
    conn: &mut AnyConnection,
    at: At,
    posting: &Posting,
) -> Result<Attempt, StoreError> {
    let mut settled = false;
    let (balance_after, terms) = loop {
        // A credit's grant, and when it ends: the balance update below keeps `next_expiry`
        // no later than that when the grant keeps tokens (the balance ends above zero). Read
        // again after settling: tokens given back take their purchase's terms as they stand,
        // and settling may have just rolled that purchase over.
        let terms = if posting.delta.is_increase() {
            Some(grants::terms_for(conn, posting).await?)
        } else {
            None
        };
        let grant_ends = terms
            .and_then(|terms| terms.expires_at(at.now))
            .map(Timestamp::as_millis);
        // One statement that changes the balance only within the posting's bounds: no
        // read-then-write, so concurrent postings cannot both pass the same check. It also
        // refuses while a grant or a hold of the user is due to expire: those are settled
        // first, so an expired grant is never spent and an expired hold never reserves. And
        // it leaves a balance alone whose key is used already (a replay): every balance
        // change that commits is a real one, which the events written from it rely on.
        let balance_after: Option<i64> = sqlx::query_scalar(
            "UPDATE token_balances SET balance = balance + $2, held = held - $6, \
                 updated_at = $3, \
                 next_expiry = CASE WHEN $9 IS NOT NULL AND balance + $2 > 0 \
                     AND (next_expiry IS NULL OR next_expiry > $9) THEN $9 ELSE next_expiry END \
             WHERE user_id = $1 AND balance + $2 >= $4 AND balance + $2 <= $5 \
                 AND ($7 = 0 OR balance + $2 - (held - $6) >= 0) \
                 AND (next_expiry IS NULL OR next_expiry > $3) \
                 AND NOT EXISTS (SELECT 1 FROM token_ledger WHERE idempotency_key = $8) \
             RETURNING balance",
        )
        .bind(posting.user.get())
        .bind(posting.delta.get())
        .bind(at.now.as_millis())
        .bind(-Balance::LIMIT)
        .bind(posting.ceiling())
        .bind(posting.releases())
        .bind(i64::from(posting.spends_available()))
        .bind(posting.key.as_str())
        .bind(grant_ends)
        .fetch_optional(&mut *conn)
        .await?;
        match balance_after {
            Some(after) => break (after, terms),
            None if !settled && expiry::settle_in(conn, at, posting.user).await? => {
                settled = true;
            }
            None => return explain_refusal(conn, posting).await,
        }
    };

    // A spend that the first grant in the spending order covers names it on its own row, and
    // the database takes the tokens off that grant in the same statement (migration 0005).
    let row = sqlx::query(&format!(
        "INSERT INTO token_ledger (user_id, delta, balance_after, source, reason, \
             idempotency_key, stripe_event_id, stripe_object_id, stripe_payment_intent, \
             amount_paid_minor, currency, actor_id, reverses_entry_id, hold_id, drawn_from, \
             created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             (SELECT id FROM (SELECT id, remaining FROM token_grants \
                 WHERE user_id = $1 AND expired_at IS NULL AND remaining > 0 \
                 ORDER BY {SPENDING_ORDER} LIMIT 1) AS first \
              WHERE $16 = 1 AND remaining >= -$2), \
             $15) \
         ON CONFLICT (idempotency_key) DO NOTHING \
         RETURNING id, drawn_from"
    ))
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
    .bind(posting.release.map(|r| r.hold.get()))
    .bind(at.now.as_millis())
    .bind(i64::from(draws_in_spending_order(posting)))
    .fetch_optional(&mut *conn)
    .await?;

    let Some(row) = row else {
        // Another transaction wrote this key after the update above looked: this balance
        // change must not stand. The caller rolls back and tries again, and then finds it.
        return Ok(Attempt::Moved);
    };
    let id: i64 = row.try_get("id")?;
    let entry = LedgerEntryId::new(id)?;
    let drawn_from: Option<i64> = row.try_get("drawn_from")?;

    if let Some(terms) = terms {
        let before = balance_after - posting.delta.get();
        grants::grant_in(conn, at, posting, terms, entry, before).await?;
    } else if drawn_from.is_none() {
        // A reversal takes from its own purchase's grant first.
        let first = match posting.kind {
            PostingKind::Reversal => posting.reverses,
            _ => None,
        };
        let mut draws = Draws::default();
        grants::draw_in(
            conn,
            posting.user,
            entry,
            posting.delta.magnitude(),
            first,
            &mut draws,
        )
        .await?;
        draws.flush(conn).await?;
    }
    if let Some(release) = posting.release {
        sqlx::query(
            "UPDATE token_holds SET state = 'captured', settled_at = $2, capture_entry_id = $3 \
             WHERE id = $1 AND state = 'open'",
        )
        .bind(release.hold.get())
        .bind(at.now.as_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }

    Ok(Attempt::Posted(entry_of(
        posting,
        entry,
        Balance::new(balance_after)?,
        at.now,
    )))
}

/// Whether a posting spends in the spending order: every spend but a reversal, which takes
/// from its own purchase's grant first.
fn draws_in_spending_order(posting: &Posting) -> bool {
    !posting.delta.is_increase() && posting.kind != PostingKind::Reversal
}

/// Why the guarded update matched no row: a replay, an unknown user, or the ledger's rule.
async fn explain_refusal(
    conn: &mut AnyConnection,
    posting: &Posting,
) -> Result<Attempt, StoreError> {
    if entry_by_key_in(conn, &posting.key).await?.is_some() {
        return replay(conn, posting).await;
    }
    let row = sqlx::query("SELECT balance, held FROM token_balances WHERE user_id = $1")
        .bind(posting.user.get())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Err(LedgerError::UnknownUser(posting.user).into());
    };
    let balance = Balance::new(row.try_get("balance")?)?;
    match posting.apply_to(balance, row.try_get("held")?) {
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
