//! Live balances: one watch on the database per node (see `Store::watch_balances`), fanned
//! out to every open balance stream of the node. A change is read once per node, whatever the
//! number of streams open on it, and only for users with a stream open here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use billing::domain::{LedgerEntryId, UserId};
use billing::store::{BalanceNews, LedgerQuery, Store, StoreError};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::shutdown::Shutdown;

/// The most streams one user may have open on one node (a tab each, say).
pub const STREAMS_PER_USER: usize = 8;

/// How many users' balances are read at once after a change.
const READS_AT_ONCE: usize = 8;

/// The longest wait before watching again after the watch broke.
const MOST_BACKOFF: Duration = Duration::from_secs(10);

/// The balance, what holds reserve of it, and the newest entry: what a stream sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub balance: i64,
    pub held: i64,
    pub latest_entry: Option<LedgerEntryId>,
}

impl Snapshot {
    pub async fn read(store: &dyn Store, user: UserId) -> Result<Self, StoreError> {
        let available = store.available(user).await?;
        let newest = store.ledger_page(user, &LedgerQuery::first(1)).await?;
        Ok(Self {
            balance: available.balance.get(),
            held: available.held,
            latest_entry: newest.entries.first().map(|e| e.id),
        })
    }
}

/// The node's open streams by user, and the watch that tells them.
#[derive(Clone)]
pub struct LiveBalances {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    watched: Mutex<HashMap<UserId, Watched>>,
}

/// A user with streams open on this node.
struct Watched {
    latest: watch::Sender<Option<Snapshot>>,
    streams: usize,
}

/// A user already has [`STREAMS_PER_USER`] streams open on this node.
#[derive(Debug, thiserror::Error)]
#[error("{STREAMS_PER_USER} balance streams are open for this user already")]
pub struct TooManyStreams;

/// One open stream's hold on its user's news; given up when dropped.
pub struct Subscription {
    user: UserId,
    pub news: watch::Receiver<Option<Snapshot>>,
    inner: Arc<Inner>,
}

impl Subscription {
    /// The balance a stream sends first: as this node last read it for another of the user's
    /// streams (kept up to date by the watch since), or read now and shared with those to come.
    pub async fn first(&mut self) -> Result<Snapshot, StoreError> {
        if let Some(known) = *self.news.borrow_and_update() {
            return Ok(known);
        }
        metrics::counter!("billing_live_balance_reads_total").increment(1);
        let now = Snapshot::read(&*self.inner.store, self.user).await?;
        if let Some(watched) = self.inner.watched().get(&self.user) {
            // A read the watch made meanwhile is newer than this one: it stays.
            watched.latest.send_if_modified(|latest| {
                let first = latest.is_none();
                if first {
                    *latest = Some(now);
                }
                first
            });
        }
        Ok(now)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut watched = self.inner.watched();
        if let Some(user) = watched.get_mut(&self.user) {
            user.streams -= 1;
            if user.streams == 0 {
                watched.remove(&self.user);
            }
        }
    }
}

impl Inner {
    fn watched(&self) -> MutexGuard<'_, HashMap<UserId, Watched>> {
        // Nothing panics while holding the lock; a poisoned map is still whole.
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LiveBalances {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                watched: Mutex::default(),
            }),
        }
    }

    /// Opens a stream's subscription to `user`'s changes (before its first read, so that no
    /// change after that read is missed).
    pub fn subscribe(&self, user: UserId) -> Result<Subscription, TooManyStreams> {
        let mut watched = self.inner.watched();
        let entry = watched.entry(user).or_insert_with(|| Watched {
            latest: watch::Sender::new(None),
            streams: 0,
        });
        if entry.streams >= STREAMS_PER_USER {
            return Err(TooManyStreams);
        }
        entry.streams += 1;
        Ok(Subscription {
            user,
            news: entry.latest.subscribe(),
            inner: self.inner.clone(),
        })
    }

    /// How many streams are open on this node.
    pub fn open_streams(&self) -> usize {
        self.inner.watched().values().map(|w| w.streams).sum()
    }

    /// Watches the database until the server stops, telling the streams of each change;
    /// a broken watch is made again, waiting longer each time it breaks in a row.
    pub fn spawn(self, shutdown: Shutdown) {
        tokio::spawn(async move {
            let mut stopping = shutdown.watch();
            let mut backoff = Duration::from_millis(100);
            loop {
                tokio::select! {
                    broken = self.watch() => {
                        tracing::warn!(error = %broken, "watching balances failed; watching again");
                    }
                    _ = stopping.changed() => return,
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stopping.changed() => return,
                }
                backoff = (backoff * 2).min(MOST_BACKOFF);
                // Whatever changed meanwhile: every stream reads again.
                self.tell(self.watched_users()).await;
            }
        });
    }

    /// One watch, until it breaks.
    async fn watch(&self) -> StoreError {
        let mut watch = match self.inner.store.watch_balances().await {
            Ok(watch) => watch,
            Err(error) => return error,
        };
        loop {
            match watch.next().await {
                Ok(BalanceNews::Changed(users)) => {
                    let watched = {
                        let watched = self.inner.watched();
                        users
                            .into_iter()
                            .filter(|u| watched.contains_key(u))
                            .collect()
                    };
                    self.tell(watched).await;
                }
                Ok(BalanceNews::Missed) => self.tell(self.watched_users()).await,
                Err(error) => return error,
            }
        }
    }

    fn watched_users(&self) -> Vec<UserId> {
        self.inner.watched().keys().copied().collect()
    }

    /// Reads each user's balance once and tells their streams if it changed.
    async fn tell(&self, users: Vec<UserId>) {
        futures_util::stream::iter(users)
            .for_each_concurrent(READS_AT_ONCE, |user| async move {
                metrics::counter!("billing_live_balance_reads_total").increment(1);
                match Snapshot::read(&*self.inner.store, user).await {
                    Ok(now) => {
                        if let Some(watched) = self.inner.watched().get(&user) {
                            watched.latest.send_if_modified(|latest| {
                                let changed = *latest != Some(now);
                                *latest = Some(now);
                                changed
                            });
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, %user, "reading a balance for its streams failed");
                    }
                }
            })
            .await;
    }
}
