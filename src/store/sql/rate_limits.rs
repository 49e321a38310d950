//! The rate limits' buckets (GCRA), shared by every node through the database.

use super::SqlStore;
use crate::domain::Timestamp;
use crate::store::StoreError;

pub(super) async fn rate_limit_take(
    store: &SqlStore,
    key: &str,
    now: Timestamp,
    interval_ms: i64,
    tolerance_ms: i64,
) -> Result<Option<i64>, StoreError> {
    // GCRA: a key holds its "theoretical arrival time" (tat). A request is allowed when the
    // tat is at most `tolerance` ahead of now, and pushes it one interval further.
    let allowed: Option<i64> = sqlx::query_scalar(
        "INSERT INTO rate_limits (key, tat) VALUES ($1, $2 + $3) \
         ON CONFLICT (key) DO UPDATE SET tat = \
             (CASE WHEN rate_limits.tat > $2 THEN rate_limits.tat ELSE $2 END) + $3 \
         WHERE (CASE WHEN rate_limits.tat > $2 THEN rate_limits.tat ELSE $2 END) - $2 <= $4 \
         RETURNING tat",
    )
    .bind(key)
    .bind(now.as_millis())
    .bind(interval_ms)
    .bind(tolerance_ms)
    .fetch_optional(&store.pool)
    .await?;
    if allowed.is_some() {
        return Ok(None);
    }
    let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = $1")
        .bind(key)
        .fetch_optional(&store.pool)
        .await?;
    // The row can only have moved later meanwhile, so this never under-reports the wait.
    Ok(Some(
        tat.map_or(1, |tat| tat - tolerance_ms - now.as_millis())
            .max(1),
    ))
}

pub(super) async fn rate_limit_forget_before(
    store: &SqlStore,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM rate_limits WHERE tat <= $1")
        .bind(now.as_millis())
        .execute(&store.pool)
        .await?;
    Ok(done.rows_affected())
}
