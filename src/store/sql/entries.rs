//! A ledger entry as a row: the columns read, the entry made of them, and the counters a
//! committed entry adds to.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::domain::{
    Balance, Currency, HoldId, LedgerEntry, LedgerEntryId, Money, Source, Timestamp, TokenDelta,
    UserId,
};
use crate::ledger::Posting;
use crate::store::StoreError;

pub(super) const ENTRY_COLUMNS: &str = "id, user_id, delta, balance_after, source, reason, created_at, \
     amount_paid_minor, currency, stripe_object_id, actor_id, reverses_entry_id, hold_id";

/// Counts a committed ledger entry: entries and tokens by source.
pub(super) fn record_posting(entry: &LedgerEntry) {
    let source = entry.source.as_str();
    metrics::counter!("billing_ledger_entries_total", "source" => source).increment(1);
    let direction = if entry.delta.is_increase() {
        "added"
    } else {
        "taken"
    };
    metrics::counter!("billing_ledger_tokens_total", "source" => source, "direction" => direction)
        .increment(entry.delta.get().unsigned_abs());
}

/// The entry `posting` was written as: row `id`, leaving `balance_after`, at `now`.
pub(super) fn entry_of(
    posting: &Posting,
    id: LedgerEntryId,
    balance_after: Balance,
    now: Timestamp,
) -> LedgerEntry {
    LedgerEntry {
        id,
        user_id: posting.user,
        delta: posting.delta,
        balance_after,
        source: posting.source,
        reason: posting.reason.as_str().to_owned(),
        created_at: now,
        amount_paid: posting.amount_paid,
        stripe_object_id: posting.stripe.object_id.clone(),
        actor_id: posting.actor,
        reverses: posting.reverses,
        hold: posting.release.map(|r| r.hold),
    }
}

pub(super) fn entry_from_row(row: &AnyRow) -> Result<LedgerEntry, StoreError> {
    let amount_paid = match (
        row.try_get::<Option<i64>, _>("amount_paid_minor")?,
        row.try_get::<Option<String>, _>("currency")?,
    ) {
        (Some(minor), Some(currency)) => Some(Money::new(minor, Currency::parse(&currency)?)?),
        _ => None,
    };
    Ok(LedgerEntry {
        id: LedgerEntryId::new(row.try_get("id")?)?,
        user_id: UserId::new(row.try_get("user_id")?)?,
        delta: TokenDelta::new(row.try_get("delta")?)?,
        balance_after: Balance::new(row.try_get("balance_after")?)?,
        source: Source::parse(&row.try_get::<String, _>("source")?)?,
        reason: row.try_get("reason")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        amount_paid,
        stripe_object_id: row.try_get("stripe_object_id")?,
        actor_id: row
            .try_get::<Option<i64>, _>("actor_id")?
            .map(UserId::new)
            .transpose()?,
        reverses: row
            .try_get::<Option<i64>, _>("reverses_entry_id")?
            .map(LedgerEntryId::new)
            .transpose()?,
        hold: row
            .try_get::<Option<i64>, _>("hold_id")?
            .map(HoldId::new)
            .transpose()?,
    })
}
