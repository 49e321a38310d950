//! Email notices in SQL: claiming the notices whose time has come (a lease, so two nodes never
//! send one at once), recording how sending went, and a user's notices.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use super::events::{EVENT_COLUMNS, entries_of, event_from};
use super::lists::rows_for;
use super::{SqlStore, leases};
use crate::domain::{Email, Timestamp, UserId};
use crate::outbox::{AfterAttempt, DeliveryState};
use crate::store::StoreError;
use crate::store::notices::{DueNotice, NoticeRecord, NoticeSent, Notices};

fn count(row: &sqlx::any::AnyRow) -> Result<u32, StoreError> {
    Ok(u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX))
}

#[async_trait]
impl Notices for SqlStore {
    async fn claim_notices(
        &self,
        now: Timestamp,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueNotice>, StoreError> {
        let now = now.as_millis();
        let candidates: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM mail_notices \
             WHERE state = 'pending' AND next_attempt_at <= $1 \
                 AND (leased_until IS NULL OR leased_until <= $1) \
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let claimed = leases::take(
            &self.pool,
            "mail_notices",
            &candidates,
            now,
            lease.as_millis() as i64,
        )
        .await?;
        let mut conn = self.pool.acquire().await?;
        let rows = rows_for(&mut conn, &claimed, |list| {
            format!(
                "SELECT n.id AS notice_id, n.attempts, n.created_at, n.leased_until, u.email, \
                     {EVENT_COLUMNS} \
                 FROM mail_notices n \
                 JOIN outbox_events o ON o.id = n.event_id \
                 JOIN users u ON u.id = n.user_id \
                 WHERE n.id IN ({list}) ORDER BY n.id"
            )
        })
        .await?;
        let entries = entries_of(&mut conn, &rows).await?;
        rows.iter()
            .map(|row| {
                Ok(DueNotice {
                    id: row.try_get("notice_id")?,
                    to: Email::parse(&row.try_get::<String, _>("email")?)?,
                    event: event_from(row, &entries)?,
                    attempts: count(row)?,
                    created_at: Timestamp::from_millis(row.try_get("created_at")?),
                    leased_until: Timestamp::from_millis(
                        row.try_get::<Option<i64>, _>("leased_until")?
                            .ok_or_else(|| {
                                StoreError::Corrupt("a claimed notice unclaimed".into())
                            })?,
                    ),
                })
            })
            .collect()
    }

    /// Moves a notice on (delivered, due again later, or given up) if the claim it was sent
    /// under still holds: a late answer after the claim ran out changes nothing (another node
    /// has it now, and may send it again: at least once).
    async fn record_notice(&self, notice: &DueNotice, sent: &NoticeSent) -> Result<(), StoreError> {
        let at = sent.at.as_millis();
        let (state, next, settled) = match sent.next {
            AfterAttempt::Delivered => (DeliveryState::Delivered, at, Some(at)),
            AfterAttempt::RetryAt(next) => (DeliveryState::Pending, next.as_millis(), None),
            AfterAttempt::GiveUp => (DeliveryState::Failed, at, Some(at)),
        };
        sqlx::query(
            "UPDATE mail_notices SET attempts = attempts + 1, leased_until = NULL, state = $2, \
                 next_attempt_at = $3, settled_at = $4, last_error = $5 \
             WHERE id = $1 AND state = 'pending' AND leased_until = $6",
        )
        .bind(notice.id)
        .bind(state.as_str())
        .bind(next)
        .bind(settled)
        .bind(sent.error.as_deref())
        .bind(notice.leased_until.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notices_of(&self, user: UserId, limit: i64) -> Result<Vec<NoticeRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(&format!(
            "SELECT n.id AS notice_id, n.state, n.attempts, n.last_error, n.created_at, \
                 n.settled_at, {EVENT_COLUMNS} \
             FROM mail_notices n JOIN outbox_events o ON o.id = n.event_id \
             WHERE n.user_id = $1 ORDER BY n.id DESC LIMIT $2"
        ))
        .bind(user.get())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let entries = entries_of(&mut conn, &rows).await?;
        rows.iter()
            .map(|row| {
                Ok(NoticeRecord {
                    id: row.try_get("notice_id")?,
                    event: event_from(row, &entries)?,
                    state: DeliveryState::parse(&row.try_get::<String, _>("state")?)?,
                    attempts: count(row)?,
                    last_error: row.try_get("last_error")?,
                    created_at: Timestamp::from_millis(row.try_get("created_at")?),
                    settled_at: row
                        .try_get::<Option<i64>, _>("settled_at")?
                        .map(Timestamp::from_millis),
                })
            })
            .collect()
    }
}
