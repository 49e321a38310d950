//! Reading the ledger: a page of a user's entries, their totals, a month's statement, and the
//! audit of every balance against the sum of its entries.

use sqlx::Row;

use super::{ENTRY_COLUMNS, SqlStore, entry_from_row};
use crate::domain::{
    LedgerEntryId, LedgerPage, LedgerTotals, Month, Source, SourceTotals, Statement, UserId,
};
use crate::store::{BalanceMismatch, LedgerQuery, StoreError};

pub(super) async fn ledger_page(
    store: &SqlStore,
    user: UserId,
    query: &LedgerQuery,
) -> Result<LedgerPage, StoreError> {
    let limit = query.limit.clamp(1, LedgerQuery::MAX_LIMIT);
    // Walking towards newer entries reads upwards from `after`; anything else downwards.
    let newer = query.before.is_none() && query.after.is_some();
    let (cursor, comparison, order) = if newer {
        (query.after, ">", "ASC")
    } else {
        (query.before, "<", "DESC")
    };
    // One more than asked: its presence says whether there is a page beyond this one.
    let rows = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM token_ledger \
         WHERE user_id = $1 AND ($2 IS NULL OR id {comparison} $2) \
             AND ($3 IS NULL OR source = $3) \
         ORDER BY id {order} LIMIT $4"
    ))
    .bind(user.get())
    .bind(cursor.map(LedgerEntryId::get))
    .bind(query.source.map(Source::as_str))
    .bind(i64::from(limit) + 1)
    .fetch_all(&store.pool)
    .await?;

    let mut entries = rows
        .iter()
        .map(entry_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let beyond = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    if newer {
        entries.reverse();
    }
    let (newest, oldest) = (entries.first().map(|e| e.id), entries.last().map(|e| e.id));
    // The cursor itself is an entry on the far side of the page: there is a page there.
    let (next_cursor, prev_cursor) = if newer {
        (oldest, newest.filter(|_| beyond))
    } else {
        (
            oldest.filter(|_| beyond),
            newest.filter(|_| query.before.is_some()),
        )
    };
    Ok(LedgerPage {
        entries,
        next_cursor,
        prev_cursor,
    })
}

pub(super) async fn ledger_totals(
    store: &SqlStore,
    user: UserId,
) -> Result<LedgerTotals, StoreError> {
    let rows = sqlx::query(
        "SELECT source, \
             CAST(COALESCE(SUM(CASE WHEN delta > 0 THEN delta ELSE 0 END), 0) AS BIGINT) \
                 AS added, \
             CAST(COALESCE(SUM(CASE WHEN delta < 0 THEN -delta ELSE 0 END), 0) AS BIGINT) \
                 AS taken, \
             COUNT(*) AS entries \
         FROM token_ledger WHERE user_id = $1 GROUP BY source ORDER BY source",
    )
    .bind(user.get())
    .fetch_all(&store.pool)
    .await?;
    let by_source = rows
        .iter()
        .map(|row| {
            Ok(SourceTotals {
                source: Source::parse(row.try_get::<String, _>("source")?.as_str())?,
                added: row.try_get("added")?,
                taken: row.try_get("taken")?,
                entries: row.try_get("entries")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(LedgerTotals { by_source })
}

/// A month's statement: its entries are those made after the last entry made before the month
/// began, up to the last made before it ended (in the order they were made, which is the
/// order of their balances), so that the totals lead from the opening balance to the closing
/// one exactly.
pub(super) async fn statement(
    store: &SqlStore,
    user: UserId,
    month: Month,
) -> Result<Statement, StoreError> {
    let last_before = |at: i64| {
        sqlx::query(
            "SELECT id, balance_after FROM token_ledger WHERE user_id = $1 AND created_at < $2 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user.get())
        .bind(at)
        .fetch_optional(&store.pool)
    };
    let opened = last_before(month.start().as_millis()).await?;
    let closed = last_before(month.end().as_millis()).await?;
    let (after, opening) = match &opened {
        Some(row) => (
            row.try_get::<i64, _>("id")?,
            row.try_get::<i64, _>("balance_after")?,
        ),
        None => (0, 0),
    };
    let up_to = match &closed {
        Some(row) => row.try_get::<i64, _>("id")?,
        None => 0,
    };
    let rows = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM token_ledger \
         WHERE user_id = $1 AND id > $2 AND id <= $3 ORDER BY id"
    ))
    .bind(user.get())
    .bind(after)
    .bind(up_to)
    .fetch_all(&store.pool)
    .await?;
    let entries = rows
        .iter()
        .map(entry_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Statement::of(month, opening, entries))
}

pub(super) async fn audit_balances(store: &SqlStore) -> Result<Vec<BalanceMismatch>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.id AS user_id, b.balance AS balance, \
             CAST(COALESCE((SELECT SUM(l.delta) FROM token_ledger l \
                 WHERE l.user_id = u.id), 0) AS BIGINT) AS ledger_sum, \
             (SELECT l.balance_after FROM token_ledger l WHERE l.user_id = u.id \
                 ORDER BY l.id DESC LIMIT 1) AS last_balance_after \
         FROM users u LEFT JOIN token_balances b ON b.user_id = u.id \
         ORDER BY u.id",
    )
    .fetch_all(&store.pool)
    .await?;
    let mut mismatches = Vec::new();
    for row in &rows {
        let balance: Option<i64> = row.try_get("balance")?;
        let ledger_sum: i64 = row.try_get("ledger_sum")?;
        let last_balance_after: Option<i64> = row.try_get("last_balance_after")?;
        let agrees = balance == Some(ledger_sum)
            && last_balance_after.is_none_or(|after| Some(after) == balance);
        if !agrees {
            mismatches.push(BalanceMismatch {
                user: UserId::new(row.try_get("user_id")?)?,
                balance,
                ledger_sum,
                last_balance_after,
            });
        }
    }
    Ok(mismatches)
}
