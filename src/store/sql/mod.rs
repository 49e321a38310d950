//! The `Store` in SQL, one set of statements for SQLite and PostgreSQL.
//!
//! Statements use `$1`-style parameters, which both engines accept, and only integer and
//! text columns, which sqlx's `Any` driver maps the same way on both. Ledger changes inside a
//! transaction live in [`posting`]; the Stripe inbox, customers and subscriptions in [`stripe`].

mod posting;
mod reversals;
mod stripe;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::billing::{
    Applied, Awaiting, Change, InboxEvent, Recorded, StoredEvent, SubscriptionRecord, Unfinished,
};
use super::{ApiKey, Backend, BalanceMismatch, LedgerQuery, NewUser, Store, StoreError};
use crate::api_key::KeyDigest;
use crate::domain::{
    Balance, Currency, Email, IdempotencyKey, LedgerEntry, LedgerEntryId, LedgerPage, LedgerTotals,
    Money, Role, Source, SourceTotals, Timestamp, TokenDelta, User, UserId,
};
use crate::ledger::{Posted, Posting};

use posting::Attempt;

/// How many times a posting is retried when the balance moved between its refusal and the
/// explanation of that refusal (another transaction committed in between).
const POST_ATTEMPTS: usize = 3;

const ENTRY_COLUMNS: &str = "id, user_id, delta, balance_after, source, reason, created_at, \
     amount_paid_minor, currency, stripe_object_id, actor_id, reverses_entry_id";

const USER_COLUMNS: &str = "id, email, role, created_at";

const API_KEY_COLUMNS: &str = "id, name, prefix, scopes, created_at, revoked_at";

pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

impl SqlStore {
    pub(super) fn new(pool: AnyPool, backend: Backend) -> Self {
        Self { pool, backend }
    }

    /// The pool, for the parts of the server that keep their own tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let needed = self
            .backend
            .migrator()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        let applied = applied.unwrap_or(0);
        if applied < needed {
            return Err(StoreError::Behind { applied, needed });
        }
        Ok(())
    }

    async fn post(&self, posting: Posting) -> Result<Posted, StoreError> {
        for _ in 0..POST_ATTEMPTS {
            let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
            match posting::post_in(&mut tx, &posting).await? {
                Attempt::Posted(entry) => {
                    tx.commit().await?;
                    record_posting(&entry);
                    return Ok(Posted {
                        entry,
                        replayed: false,
                    });
                }
                Attempt::Replayed(entry) => {
                    tx.rollback().await?;
                    return Ok(Posted {
                        entry,
                        replayed: true,
                    });
                }
                Attempt::Moved => tx.rollback().await?,
            }
        }
        Err(StoreError::Contended)
    }

    async fn balance(&self, user: UserId) -> Result<Balance, StoreError> {
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM token_balances WHERE user_id = $1")
                .bind(user.get())
                .fetch_optional(&self.pool)
                .await?;
        match balance {
            Some(b) => Ok(Balance::new(b)?),
            None if self.user_by_id(user).await?.is_some() => Ok(Balance::ZERO),
            None => Err(StoreError::NotFound),
        }
    }

    async fn ledger_page(
        &self,
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
        .fetch_all(&self.pool)
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

    async fn ledger_totals(&self, user: UserId) -> Result<LedgerTotals, StoreError> {
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
        .fetch_all(&self.pool)
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

    async fn entry_by_key(&self, key: &IdempotencyKey) -> Result<Option<LedgerEntry>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        posting::entry_by_key_in(&mut conn, key).await
    }

    async fn audit_balances(&self) -> Result<Vec<BalanceMismatch>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id AS user_id, b.balance AS balance, \
                 CAST(COALESCE((SELECT SUM(l.delta) FROM token_ledger l \
                     WHERE l.user_id = u.id), 0) AS BIGINT) AS ledger_sum, \
                 (SELECT l.balance_after FROM token_ledger l WHERE l.user_id = u.id \
                     ORDER BY l.id DESC LIMIT 1) AS last_balance_after \
             FROM users u LEFT JOIN token_balances b ON b.user_id = u.id \
             ORDER BY u.id",
        )
        .fetch_all(&self.pool)
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

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let now = Timestamp::now();
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user.email.as_str())
        .bind(user.password_hash.as_deref())
        .bind(user.role.as_str())
        .bind(now.as_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(unique_as_exists)?;
        sqlx::query("INSERT INTO token_balances (user_id, balance, updated_at) VALUES ($1, 0, $2)")
            .bind(id)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(User {
            id: UserId::new(id)?,
            email: user.email,
            role: user.role,
            created_at: now,
        })
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    async fn user_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn rate_limit_take(
        &self,
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
        .fetch_optional(&self.pool)
        .await?;
        if allowed.is_some() {
            return Ok(None);
        }
        let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        // The row can only have moved later meanwhile, so this never under-reports the wait.
        Ok(Some(
            tat.map_or(1, |tat| tat - tolerance_ms - now.as_millis())
                .max(1),
        ))
    }

    async fn rate_limit_forget_before(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM rate_limits WHERE tat <= $1")
            .bind(now.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn inbox_record(&self, event: &InboxEvent) -> Result<Recorded, StoreError> {
        stripe::record(&self.pool, event).await
    }

    async fn inbox_event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        stripe::event(&self.pool, id).await
    }

    async fn apply_event(
        &self,
        id: &str,
        changes: &[Change],
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<Vec<Applied>, StoreError> {
        self.apply(id, changes, outcome, detail).await
    }

    async fn inbox_note_unfinished(
        &self,
        id: &str,
        why: &Unfinished,
        detail: &str,
    ) -> Result<(), StoreError> {
        stripe::note_unfinished(&self.pool, id, why, detail).await
    }

    async fn inbox_awaiting(&self, awaiting: &Awaiting) -> Result<Vec<StoredEvent>, StoreError> {
        stripe::events_where(
            &self.pool,
            "awaiting = $1 AND processed_at IS NULL",
            Some(&awaiting.stored()),
        )
        .await
    }

    async fn inbox_held(&self) -> Result<Vec<Awaiting>, StoreError> {
        stripe::held(&self.pool).await
    }

    async fn inbox_unfinished(&self) -> Result<Vec<StoredEvent>, StoreError> {
        stripe::events_where(&self.pool, "processed_at IS NULL", None).await
    }

    async fn inbox_known(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        stripe::known(&self.pool, ids).await
    }

    async fn purchase_by_payment_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        stripe::purchase_where(&self.pool, "stripe_payment_intent", payment_intent).await
    }

    async fn purchase_by_object(&self, object: &str) -> Result<Option<LedgerEntry>, StoreError> {
        stripe::purchase_where(&self.pool, "stripe_object_id", object).await
    }

    async fn customer_of(&self, user: UserId) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT stripe_customer_id FROM billing_customers WHERE user_id = $1",
        )
        .bind(user.get())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn user_of_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM billing_customers WHERE stripe_customer_id = $1",
        )
        .bind(customer)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(UserId::new).transpose()?)
    }

    async fn link_customer(&self, user: UserId, customer: &str) -> Result<String, StoreError> {
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        let stored = stripe::link_customer(&mut tx, user, customer).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn subscription_of(
        &self,
        user: UserId,
    ) -> Result<Option<SubscriptionRecord>, StoreError> {
        Ok(stripe::subscriptions_of(&self.pool, user)
            .await?
            .into_iter()
            .next())
    }

    async fn subscriptions_of(&self, user: UserId) -> Result<Vec<SubscriptionRecord>, StoreError> {
        stripe::subscriptions_of(&self.pool, user).await
    }

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>, StoreError> {
        stripe::subscription(&self.pool, id).await
    }

    async fn create_api_key(
        &self,
        name: &str,
        display_prefix: &str,
        digest: &KeyDigest,
        scopes: &[&str],
    ) -> Result<ApiKey, StoreError> {
        let now = Timestamp::now();
        let row = sqlx::query(&format!(
            "INSERT INTO api_keys (name, prefix, digest, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {API_KEY_COLUMNS}"
        ))
        .bind(name)
        .bind(display_prefix)
        .bind(digest.as_str())
        .bind(scopes.join(" "))
        .bind(now.as_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(unique_as_exists)?;
        api_key_from_row(&row)
    }

    async fn active_api_key(&self, digest: &KeyDigest) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS}, digest FROM api_keys \
             WHERE digest = $1 AND revoked_at IS NULL"
        ))
        .bind(digest.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored = KeyDigest::from_stored(row.try_get("digest")?);
        if !stored.verifies(digest) {
            return Ok(None);
        }
        api_key_from_row(&row).map(Some)
    }

    async fn revoke_api_key(&self, id: i64) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(Timestamp::now().as_millis())
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_key_from_row).collect()
    }
}

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

fn unique_as_exists(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists,
        _ => StoreError::Database(e),
    }
}

fn entry_from_row(row: &AnyRow) -> Result<LedgerEntry, StoreError> {
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
    })
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::new(row.try_get("id")?)?,
        email: Email::parse(&row.try_get::<String, _>("email")?)?,
        role: Role::parse(&row.try_get::<String, _>("role")?)?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn api_key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_prefix: row.try_get("prefix")?,
        scopes: row
            .try_get::<String, _>("scopes")?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(Timestamp::from_millis),
    })
}
