//! Outgoing webhooks in SQL: endpoints, making each new event a delivery to every endpoint
//! (fan-out), claiming the deliveries whose time has come (the earliest pending one of each user
//! and endpoint, so one user's events arrive in order), recording attempts, the delivery log
//! and replays; the events of grants that expire soon, and users' low-balance thresholds.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{AnyConnection, Row};

use super::events::{EVENT_COLUMNS, entries_of, event_from};
use super::lists::{keep_prepared, placeholders, rows_for};
use super::{SqlStore, grant_events, leases};
use crate::config::Secret;
use crate::domain::{Timestamp, Tokens, UserId};
use crate::outbox::{AfterAttempt, DeliveryState, EventKind};
use crate::store::StoreError;
use crate::store::outbox::{Attempted, DueDelivery, Endpoint, LoggedAttempt, Outbox, ReplayScope};

const ENDPOINT_COLUMNS: &str = "id, url, secret, description, created_at, disabled_at";

fn endpoint_from(row: &sqlx::any::AnyRow) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        secret: Secret::new(row.try_get::<String, _>("secret")?),
        description: row.try_get("description")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        disabled_at: row
            .try_get::<Option<i64>, _>("disabled_at")?
            .map(Timestamp::from_millis),
    })
}

#[async_trait]
impl Outbox for SqlStore {
    async fn add_endpoint(
        &self,
        url: &str,
        secret: &Secret,
        description: &str,
    ) -> Result<Endpoint, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO webhook_endpoints (url, secret, description, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(url)
        .bind(secret.expose())
        .bind(description)
        .bind(self.at().now.as_millis())
        .fetch_one(&self.pool)
        .await?;
        endpoint_from(&row)
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(endpoint_from).collect()
    }

    async fn disable_endpoint(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL",
        )
        .bind(id)
        .bind(self.at().now.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_low_balance_threshold(
        &self,
        user: UserId,
        below: Option<Tokens>,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE token_balances SET low_balance_below = $2 WHERE user_id = $1")
                .bind(user.get())
                .bind(below.map(Tokens::get))
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn low_balance_threshold(&self, user: UserId) -> Result<Option<Tokens>, StoreError> {
        let below: Option<Option<i64>> =
            sqlx::query_scalar("SELECT low_balance_below FROM token_balances WHERE user_id = $1")
                .bind(user.get())
                .fetch_optional(&self.pool)
                .await?;
        let below = below.ok_or(StoreError::NotFound)?;
        Ok(below.map(Tokens::new).transpose()?)
    }

    /// Makes up to `limit` new events deliveries, due `now`, to every endpoint that was
    /// registered, and not disabled, when each happened; how many events.
    async fn fan_out_events(&self, now: Timestamp, limit: i64) -> Result<u64, StoreError> {
        let now = now.as_millis();
        // By id: an event that commits after this read keeps `fanned_out = 0` for the next round.
        // Read before any write lock is taken: most rounds find nothing.
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM outbox_events WHERE fanned_out = 0 ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        let list = placeholders(3, ids.len());
        let sql = format!(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, user_id, state, retrying_since, \
                 next_attempt_at, created_at) \
             SELECT e.id, o.id, o.user_id, 'pending', $1, $1, $2 \
             FROM outbox_events o JOIN webhook_endpoints e \
                 ON e.created_at <= o.created_at \
                     AND (e.disabled_at IS NULL OR e.disabled_at > o.created_at) \
             WHERE o.id IN ({list}) ORDER BY o.id, e.id \
             ON CONFLICT (endpoint_id, event_id) DO NOTHING"
        );
        let mut insert = sqlx::query(&sql)
            .persistent(keep_prepared(2 + ids.len()))
            .bind(now)
            .bind(now);
        for id in &ids {
            insert = insert.bind(*id);
        }
        insert.execute(&mut *tx).await?;
        let sql = format!(
            "UPDATE outbox_events SET fanned_out = 1 WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let mut mark = sqlx::query(&sql).persistent(keep_prepared(ids.len()));
        for id in &ids {
            mark = mark.bind(*id);
        }
        mark.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Claims up to `limit` deliveries to `endpoint` (if it is active) whose time has come by
    /// `now`, for `lease` (another node leaves them alone meanwhile): of each user's pending
    /// deliveries only the earliest, so a later event never overtakes one being retried.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        endpoint: i64,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let now = now.as_millis();
        let candidates: Vec<i64> = sqlx::query_scalar(
            "SELECT d.id FROM webhook_deliveries d \
             JOIN webhook_endpoints p ON p.id = d.endpoint_id AND p.disabled_at IS NULL \
             WHERE d.endpoint_id = $3 AND d.state = 'pending' AND d.next_attempt_at <= $1 \
                 AND (d.leased_until IS NULL OR d.leased_until <= $1) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                     WHERE e.endpoint_id = d.endpoint_id AND e.user_id = d.user_id \
                         AND e.state = 'pending' AND e.event_id < d.event_id) \
             ORDER BY d.next_attempt_at, d.id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .bind(endpoint)
        .fetch_all(&self.pool)
        .await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let claimed = leases::take(
            &self.pool,
            "webhook_deliveries",
            &candidates,
            now,
            lease.as_millis() as i64,
        )
        .await?;
        let mut conn = self.pool.acquire().await?;
        deliveries(&mut conn, &claimed).await
    }

    /// Logs an attempt and moves its delivery on (delivered, due again later, or given up), if
    /// the claim it was made under still holds: a late attempt whose claim ran out (another node
    /// has the delivery now) is logged and changes nothing.
    async fn record_attempt(
        &self,
        delivery: &DueDelivery,
        attempted: &Attempted,
    ) -> Result<(), StoreError> {
        let at = attempted.at.as_millis();
        let (state, next, settled) = match attempted.next {
            AfterAttempt::Delivered => (DeliveryState::Delivered, at, Some(at)),
            AfterAttempt::RetryAt(next) => (DeliveryState::Pending, next.as_millis(), None),
            AfterAttempt::GiveUp => (DeliveryState::Failed, at, Some(at)),
        };
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, status, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(delivery.id)
        .bind(at)
        .bind(attempted.status.map(i64::from))
        .bind(attempted.error.as_deref())
        .bind(attempted.duration_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, leased_until = NULL, \
                 state = $2, next_attempt_at = $3, settled_at = $4 \
             WHERE id = $1 AND state = 'pending' AND leased_until = $5",
        )
        .bind(delivery.id)
        .bind(state.as_str())
        .bind(next)
        .bind(settled)
        .bind(delivery.leased_until.as_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest `limit` attempts, of one endpoint or of all, newest first.
    async fn delivery_log(
        &self,
        endpoint: Option<i64>,
        limit: i64,
    ) -> Result<Vec<LoggedAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.delivery_id, d.endpoint_id, d.event_id, o.kind, o.user_id, d.state, \
                 a.attempted_at, a.status, a.error, a.duration_ms \
             FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id \
             JOIN outbox_events o ON o.id = d.event_id \
             WHERE ($1 IS NULL OR d.endpoint_id = $1) \
             ORDER BY a.id DESC LIMIT $2",
        )
        .bind(endpoint)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LoggedAttempt {
                    delivery: row.try_get("delivery_id")?,
                    endpoint: row.try_get("endpoint_id")?,
                    event: row.try_get("event_id")?,
                    kind: EventKind::parse(&row.try_get::<String, _>("kind")?)?,
                    user: UserId::new(row.try_get("user_id")?)?,
                    state: DeliveryState::parse(&row.try_get::<String, _>("state")?)?,
                    at: Timestamp::from_millis(row.try_get("attempted_at")?),
                    status: row
                        .try_get::<Option<i64>, _>("status")?
                        .and_then(|s| u16::try_from(s).ok()),
                    error: row.try_get("error")?,
                    duration_ms: row.try_get("duration_ms")?,
                })
            })
            .collect()
    }

    /// Sends deliveries to `endpoint` again from `now`, with three more days of retries; how many.
    async fn replay_deliveries(
        &self,
        now: Timestamp,
        endpoint: i64,
        scope: ReplayScope,
    ) -> Result<u64, StoreError> {
        let now = now.as_millis();
        let again = "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
                 retrying_since = $2, next_attempt_at = $2, leased_until = NULL, settled_at = NULL \
             WHERE endpoint_id = $1";
        let done = match scope {
            ReplayScope::Failed => {
                sqlx::query(&format!("{again} AND state = 'failed'"))
                    .bind(endpoint)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
            }
            ReplayScope::Since(since) => {
                sqlx::query(&format!(
                    "{again} AND state <> 'pending' AND event_id IN \
                         (SELECT id FROM outbox_events WHERE created_at >= $3)"
                ))
                .bind(endpoint)
                .bind(now)
                .bind(since.as_millis())
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected())
    }

    async fn warn_expiring_grants(&self, limit: i64) -> Result<u64, StoreError> {
        grant_events::warn_expiring(self, limit).await
    }
}

/// The deliveries `ids` with their endpoints and events, in the order of their events.
async fn deliveries(conn: &mut AnyConnection, ids: &[i64]) -> Result<Vec<DueDelivery>, StoreError> {
    let rows = rows_for(conn, ids, |list| {
        format!(
            "SELECT d.id AS delivery_id, d.attempts, d.retrying_since, d.leased_until, \
                 e.id, e.url, e.secret, e.description, e.created_at, e.disabled_at, \
                 {EVENT_COLUMNS} \
             FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             JOIN outbox_events o ON o.id = d.event_id \
             WHERE d.id IN ({list}) ORDER BY o.id"
        )
    })
    .await?;
    let entries = entries_of(conn, &rows).await?;
    rows.iter()
        .map(|row| {
            Ok(DueDelivery {
                id: row.try_get("delivery_id")?,
                endpoint: endpoint_from(row)?,
                event: event_from(row, &entries)?,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                retrying_since: Timestamp::from_millis(row.try_get("retrying_since")?),
                leased_until: Timestamp::from_millis(
                    row.try_get::<Option<i64>, _>("leased_until")?
                        .ok_or_else(|| {
                            StoreError::Corrupt("a claimed delivery without its claim".into())
                        })?,
                ),
            })
        })
        .collect()
}
