//! Grants' events, written in the transaction of the user they belong to: `grant.expiring`
//! 7 days and again 1 day before a grant with tokens left ends (from the minute sweep), and
//! `grant.expired` when it does (from the expiry itself).

use sqlx::{AnyConnection, Row};

use super::SqlStore;
use super::at::At;
use crate::domain::{Timestamp, UserId};
use crate::outbox::EventKind;
use crate::store::StoreError;

/// How far ahead of a grant's end its `grant.expiring` events go out.
const WARNINGS_DAYS: [i64; 2] = [7, 1];
const DAY_MS: i64 = 86_400_000;

/// Writes the `grant.expiring` events that are due (7 days, then 1 day, before a grant with
/// tokens left ends) for up to `limit` grants; how many. Each user's balance row is locked
/// first, so the event keeps its place among the user's others.
pub(super) async fn warn_expiring(store: &SqlStore, limit: i64) -> Result<u64, StoreError> {
    let at = store.at();
    let now = at.now.as_millis();
    let due = sqlx::query(
        "SELECT id, user_id FROM token_grants \
         WHERE expired_at IS NULL AND remaining > 0 AND expires_at IS NOT NULL \
             AND expires_at > $1 AND expires_at - $1 <= $2 \
             AND (warned_days IS NULL OR (warned_days > $4 AND expires_at - $1 <= $3)) \
         ORDER BY expires_at LIMIT $5",
    )
    .bind(now)
    .bind(WARNINGS_DAYS[0] * DAY_MS)
    .bind(WARNINGS_DAYS[1] * DAY_MS)
    .bind(WARNINGS_DAYS[1])
    .bind(limit)
    .fetch_all(&store.pool)
    .await?;
    let mut warned = 0;
    for row in &due {
        let grant: i64 = row.try_get("id")?;
        let user: i64 = row.try_get("user_id")?;
        let mut tx = store.pool.begin_with(store.backend.begin_write()).await?;
        if warn_in(&mut tx, at, UserId::new(user)?, grant).await? {
            warned += 1;
        }
        tx.commit().await?;
    }
    Ok(warned)
}

/// The `grant.expiring` event of `grant`, if one is due and not written yet.
async fn warn_in(
    conn: &mut AnyConnection,
    at: At,
    user: UserId,
    grant: i64,
) -> Result<bool, StoreError> {
    sqlx::query(&format!(
        "SELECT user_id FROM token_balances WHERE user_id = $1{}",
        at.backend.lock_rows()
    ))
    .bind(user.get())
    .fetch_optional(&mut *conn)
    .await?;
    let now = at.now.as_millis();
    let row = sqlx::query(
        "SELECT remaining, expires_at, warned_days FROM token_grants \
         WHERE id = $1 AND expired_at IS NULL AND remaining > 0 AND expires_at > $2",
    )
    .bind(grant)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let expires_at: i64 = row.try_get("expires_at")?;
    let warned: Option<i64> = row.try_get("warned_days")?;
    // The nearest warning the grant has reached, if it is nearer than the last one written.
    let Some(days) = WARNINGS_DAYS
        .into_iter()
        .filter(|days| expires_at - now <= days * DAY_MS)
        .min()
        .filter(|days| warned.is_none_or(|warned| *days < warned))
    else {
        return Ok(false);
    };
    sqlx::query("UPDATE token_grants SET warned_days = $2 WHERE id = $1")
        .bind(grant)
        .bind(days)
        .execute(&mut *conn)
        .await?;
    record_grant_event(
        conn,
        at,
        user,
        EventKind::GrantExpiring,
        grant,
        row.try_get("remaining")?,
        Timestamp::from_millis(expires_at),
    )
    .await?;
    Ok(true)
}

/// A `grant.*` event of `tokens` of `grant`, which ends (or ended) at `expires_at`, in the
/// caller's transaction.
pub(super) async fn record_grant_event(
    conn: &mut AnyConnection,
    at: At,
    user: UserId,
    kind: EventKind,
    grant: i64,
    tokens: i64,
    expires_at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox_events (user_id, kind, grant_id, tokens, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user.get())
    .bind(kind.as_str())
    .bind(grant)
    .bind(tokens)
    .bind(expires_at.as_millis())
    .bind(at.now.as_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
