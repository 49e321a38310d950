//! Claims on queued work (webhook deliveries, email notices, top-ups): a node takes a lease
//! on the pending rows it read, so another leaves them alone until the lease runs out.

use sqlx::AnyPool;

use super::lists::{keep_prepared, placeholders};
use crate::store::StoreError;

/// Leases for `lease_ms` the rows of `table` among `candidates` that are still pending and
/// that no other node holds a lease on at `now`; answers their ids.
pub(super) async fn take(
    pool: &AnyPool,
    table: &'static str,
    candidates: &[i64],
    now: i64,
    lease_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // Only what no other node claimed between the read and now.
    let sql = format!(
        "UPDATE {table} SET leased_until = $1 \
         WHERE id IN ({}) AND state = 'pending' \
             AND (leased_until IS NULL OR leased_until <= $2) \
         RETURNING id",
        placeholders(3, candidates.len())
    );
    let mut take = sqlx::query_scalar(&sql)
        .persistent(keep_prepared(2 + candidates.len()))
        .bind(now + lease_ms)
        .bind(now);
    for id in candidates {
        take = take.bind(*id);
    }
    Ok(take.fetch_all(pool).await?)
}
