//! Reading what is available and what is left of each grant, settling expiries that are due,
//! and the audit of grants and holds against the balances.

use sqlx::Row;

use super::{SqlStore, expiry, holds};
use crate::domain::{Available, Grant, GrantId, LedgerEntryId, Timestamp, Tokens, UserId};
use crate::store::StoreError;
use crate::store::credits::CreditMismatch;

impl SqlStore {
    /// What the user has and has reserved, with anything due to expire settled first.
    pub(super) async fn available_now(&self, user: UserId) -> Result<Available, StoreError> {
        let at = self.at();
        let due: Option<Option<i64>> =
            sqlx::query_scalar("SELECT next_expiry FROM token_balances WHERE user_id = $1")
                .bind(user.get())
                .fetch_optional(&self.pool)
                .await?;
        if due.flatten().is_some_and(|next| next <= at.now.as_millis()) {
            let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
            expiry::settle_in(&mut tx, at, user).await?;
            let available = holds::available_in(&mut tx, user).await?;
            tx.commit().await?;
            return Ok(available);
        }
        let mut conn = self.pool.acquire().await?;
        holds::available_in(&mut conn, user).await
    }

    /// The user's grants with tokens left, in the order they are spent.
    pub(super) async fn live_grants(&self, user: UserId) -> Result<Vec<Grant>, StoreError> {
        self.available_now(user).await?;
        let rows = sqlx::query(
            "SELECT g.id, g.entry_id, g.tokens, g.remaining, g.expires_at, g.created_at, \
                 l.reason \
             FROM token_grants g LEFT JOIN token_ledger l ON l.id = g.entry_id \
             WHERE g.user_id = $1 AND g.expired_at IS NULL AND g.remaining > 0 \
             ORDER BY CASE WHEN g.expires_at IS NULL THEN 1 ELSE 0 END, g.expires_at, g.id",
        )
        .bind(user.get())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Grant {
                    id: GrantId::new(row.try_get("id")?)?,
                    entry: row
                        .try_get::<Option<i64>, _>("entry_id")?
                        .map(LedgerEntryId::new)
                        .transpose()?,
                    label: row
                        .try_get::<Option<String>, _>("reason")?
                        .unwrap_or_else(|| "Balance from before grants".to_owned()),
                    tokens: Tokens::new(row.try_get("tokens")?)?,
                    remaining: row.try_get("remaining")?,
                    expires_at: row
                        .try_get::<Option<i64>, _>("expires_at")?
                        .map(Timestamp::from_millis),
                    created_at: Timestamp::from_millis(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    /// Settles up to `limit` users whose expiries are due; how many were settled.
    pub(super) async fn settle_due(&self, limit: i64) -> Result<u64, StoreError> {
        let at = self.at();
        let due: Vec<i64> = sqlx::query_scalar(
            "SELECT user_id FROM token_balances WHERE next_expiry <= $1 \
             ORDER BY next_expiry LIMIT $2",
        )
        .bind(at.now.as_millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut settled = 0;
        for user in due {
            let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
            if expiry::settle_in(&mut tx, at, UserId::new(user)?).await? {
                settled += 1;
            }
            tx.commit().await?;
        }
        Ok(settled)
    }

    /// Users whose live grants do not add up to their balance (a positive balance is the sum
    /// of what the live grants have left; a negative one leaves them nothing), or whose
    /// reserved tokens are not the sum of their open holds.
    pub(super) async fn audit_credits(&self) -> Result<Vec<CreditMismatch>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.user_id, b.balance, b.held, \
                 CAST(COALESCE((SELECT SUM(g.remaining) FROM token_grants g \
                     WHERE g.user_id = b.user_id AND g.expired_at IS NULL), 0) AS BIGINT) \
                     AS remaining, \
                 CAST(COALESCE((SELECT SUM(h.tokens) FROM token_holds h \
                     WHERE h.user_id = b.user_id AND h.state = 'open'), 0) AS BIGINT) \
                     AS open_holds \
             FROM token_balances b ORDER BY b.user_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut mismatches = Vec::new();
        for row in &rows {
            let found = CreditMismatch {
                user: UserId::new(row.try_get("user_id")?)?,
                balance: row.try_get("balance")?,
                grants_remaining: row.try_get("remaining")?,
                held: row.try_get("held")?,
                open_holds: row.try_get("open_holds")?,
            };
            if found.balance.max(0) != found.grants_remaining || found.held != found.open_holds {
                mismatches.push(found);
            }
        }
        Ok(mismatches)
    }
}
