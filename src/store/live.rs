//! What the store tells of balances changing, for live balances: each node watches once (see
//! `sql::balance_watch`) and tells its open streams.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::UserId;

/// What changed since the last news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalanceNews {
    /// These users' balances, or what holds reserve of them, changed (each named once).
    Changed(Vec<UserId>),
    /// News may have been lost (the connection to the database was lost and is being made
    /// again): any balance may have changed.
    Missed,
}

/// A node's watch on every balance.
#[async_trait]
pub trait BalanceWatch: Send {
    /// Waits for the next news. An error means the watch is broken: make a new one.
    async fn next(&mut self) -> Result<BalanceNews, StoreError>;
}
