//! Which users' balances changed, as the database tells, for live balances: one watcher per
//! node. On PostgreSQL it is a LISTEN on the channel that migration 0009's trigger notifies
//! on commit; on SQLite it reads the rows that trigger leaves in `balance_changes` since it
//! last looked, at once after this node's own changes and at least every
//! [`SQLITE_LOOK_EVERY`] for changes of other processes (an admin command).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::{AnyPool, Row};
use tokio::sync::Notify;

use crate::domain::UserId;
use crate::store::{BalanceNews, BalanceWatch, StoreError};

/// The channel migration 0009's PostgreSQL trigger notifies, with the user's id.
const CHANNEL: &str = "token_balances";

/// How often the SQLite watcher looks when nothing on this node told it to.
pub const SQLITE_LOOK_EVERY: Duration = Duration::from_millis(250);

/// How long SQLite's `balance_changes` keeps a row (the watcher reads it long before).
const SQLITE_KEEP_MS: i64 = 60_000;

/// The most rows the SQLite watcher reads at once (the rest at its next look, at once).
const SQLITE_READ_AT_MOST: i64 = 5_000;

pub(super) struct PostgresWatch {
    listener: PgListener,
}

impl PostgresWatch {
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok(Self { listener })
    }
}

#[async_trait]
impl BalanceWatch for PostgresWatch {
    async fn next(&mut self) -> Result<BalanceNews, StoreError> {
        let Some(first) = self.listener.try_recv().await? else {
            // The connection was lost (and is made again on the next call): what was sent
            // meanwhile is gone.
            return Ok(BalanceNews::Missed);
        };
        // Everything already received comes as one piece of news.
        let mut users = BTreeSet::new();
        let mut notification = Some(first);
        while let Some(n) = notification {
            match n
                .payload()
                .parse::<i64>()
                .ok()
                .and_then(|id| UserId::new(id).ok())
            {
                Some(user) => {
                    users.insert(user);
                }
                None => tracing::warn!(payload = n.payload(), "a balance notice names no user"),
            }
            notification = self.listener.next_buffered();
        }
        Ok(BalanceNews::Changed(users.into_iter().collect()))
    }
}

pub(super) struct SqliteWatch {
    pool: AnyPool,
    /// Told after this node's changes commit.
    changed: Arc<Notify>,
    /// The newest row read.
    seen: i64,
    looks: tokio::time::Interval,
    /// When rows were last forgotten (unix ms).
    forgot_at: i64,
}

impl SqliteWatch {
    pub(super) async fn start(pool: AnyPool, changed: Arc<Notify>) -> Result<Self, StoreError> {
        let seen: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM balance_changes")
            .fetch_one(&pool)
            .await?;
        let mut looks = tokio::time::interval(SQLITE_LOOK_EVERY);
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            pool,
            changed,
            seen: seen.unwrap_or(0),
            looks,
            forgot_at: 0,
        })
    }

    /// Forgets rows older than [`SQLITE_KEEP_MS`] now and then, always keeping the newest
    /// (so that the next row's number is still higher than every number read).
    async fn forget_old(&mut self) -> Result<(), StoreError> {
        let now = crate::domain::Timestamp::now().as_millis();
        if now - self.forgot_at < SQLITE_KEEP_MS {
            return Ok(());
        }
        self.forgot_at = now;
        sqlx::query(
            "DELETE FROM balance_changes WHERE changed_at < $1 \
             AND seq < (SELECT MAX(seq) FROM balance_changes)",
        )
        .bind(now - SQLITE_KEEP_MS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl BalanceWatch for SqliteWatch {
    async fn next(&mut self) -> Result<BalanceNews, StoreError> {
        loop {
            let rows = sqlx::query(
                "SELECT seq, user_id FROM balance_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(self.seen)
            .bind(SQLITE_READ_AT_MOST)
            .fetch_all(&self.pool)
            .await?;
            if let Some(last) = rows.last() {
                self.seen = last.try_get("seq")?;
                let users: BTreeSet<UserId> = rows
                    .iter()
                    .map(|row| Ok(UserId::new(row.try_get("user_id")?)?))
                    .collect::<Result<_, StoreError>>()?;
                self.forget_old().await?;
                return Ok(BalanceNews::Changed(users.into_iter().collect()));
            }
            tokio::select! {
                _ = self.looks.tick() => {}
                () = self.changed.notified() => {}
            }
        }
    }
}
