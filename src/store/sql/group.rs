//! Group commit: work that arrives while a transaction is committing waits for it, and the
//! next transaction takes all of it together. Two kinds of work go this way: usage debits
//! (consume calls, [`spend`], as one batch through [`batch::post`]) and Stripe events
//! ([`apply_event`], each in a savepoint of its own, see `stripe::apply_group`). Each piece is
//! still decided alone, by the same rules as when it had a transaction to itself, and each
//! caller is answered only after the group's commit.
//!
//! The window is the commit before: work that finds no transaction under way starts one at
//! once (no timer, so a lone request waits for nothing), and work that comes while it commits
//! is the next group. Debits and events are spread over a few writers by user (one on SQLite,
//! which has one write lock anyway), so a user's debits always take turns in one of them, and
//! writers seldom wait on each other's rows (an event goes by the first user it changes).
//!
//! A writer is a task of its own, not the caller that started it: a caller that goes away (a
//! client that hangs up) leaves the group it was in to commit and answer the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::stripe::{self, EventToApply};
use super::{SqlStore, batch};
use crate::domain::UserId;
use crate::ledger::{Debit, Posted};
use crate::store::billing::Applied;
use crate::store::{BatchItem, StoreError};

/// What a piece of work's caller is told: its own answer, or why its group's transaction
/// failed.
type Answer<A> = Result<A, Arc<StoreError>>;

/// One transaction for a group: an answer for each piece of work, in order, or the error
/// that failed them all.
type Commit<W, A> =
    fn(SqlStore, Vec<W>) -> Pin<Box<dyn Future<Output = Result<Vec<A>, StoreError>> + Send>>;

/// The writers of one kind of work for one store, each with the work waiting for it.
pub(super) struct GroupCommit<W, A> {
    writers: Box<[Mutex<Queue<W, A>>]>,
    /// The most pieces one transaction takes; the rest wait for the next.
    most: usize,
    commit: Commit<W, A>,
    /// The histogram of how many pieces each transaction took.
    sizes: &'static str,
    /// How many groups have committed.
    committed: AtomicU64,
}

struct Queue<W, A> {
    waiting: Vec<(W, oneshot::Sender<Answer<A>>)>,
    /// Whether a writer task is taking groups from this queue.
    writing: bool,
}

/// Usage debits, a group a batch.
pub(super) type Debits = GroupCommit<Debit, BatchItem>;
/// Stripe events, a group a transaction with a savepoint for each.
pub(super) type Events = GroupCommit<EventToApply, Result<Vec<Applied>, StoreError>>;

pub(super) fn debits(writers: usize) -> Debits {
    GroupCommit::new(
        writers,
        1_000,
        "billing_group_commit_debits",
        |store, debits| Box::pin(async move { batch::post(&store, &debits).await }),
    )
}

pub(super) fn events(writers: usize) -> Events {
    GroupCommit::new(
        writers,
        200,
        "billing_group_commit_events",
        |store, events| Box::pin(async move { stripe::apply_group(&store, &events).await }),
    )
}

impl<W: Send + 'static, A: Send + 'static> GroupCommit<W, A> {
    fn new(writers: usize, most: usize, sizes: &'static str, commit: Commit<W, A>) -> Self {
        Self {
            writers: (0..writers.max(1))
                .map(|_| {
                    Mutex::new(Queue {
                        waiting: Vec::new(),
                        writing: false,
                    })
                })
                .collect(),
            most,
            commit,
            sizes,
            committed: AtomicU64::new(0),
        }
    }

    /// How many transactions the groups have committed so far.
    pub(super) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    fn writer_of(&self, user: UserId) -> usize {
        // User ids are sequential: the remainder spreads them evenly.
        user.get().unsigned_abs() as usize % self.writers.len()
    }

    fn queue(&self, writer: usize) -> MutexGuard<'_, Queue<W, A>> {
        // Nothing panics while holding the lock; a poisoned queue is still whole.
        self.writers[writer]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Does `work` with whatever else `writer` gets meanwhile, in one transaction; answered
    /// once that transaction has committed.
    async fn submit(
        self: &Arc<Self>,
        store: &SqlStore,
        writer: usize,
        work: W,
    ) -> Result<A, StoreError> {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.queue(writer);
            queue.waiting.push((work, answer));
            !std::mem::replace(&mut queue.writing, true)
        };
        if start {
            tokio::spawn(write(self.clone(), store.clone(), writer));
        }
        match answered.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failed)) => Err(StoreError::Group(failed)),
            // The writer panicked with this work in its group (and wrote nothing of it).
            Err(_) => Err(StoreError::Group(Arc::new(StoreError::Corrupt(
                "the group's writer stopped before answering".to_owned(),
            )))),
        }
    }
}

/// Applies `debit` with whatever other debits of its writer arrive meanwhile.
pub(super) async fn spend(store: &SqlStore, debit: Debit) -> Result<Posted, StoreError> {
    let writer = store.debits.writer_of(debit.posting().user);
    let item = store.debits.submit(store, writer, debit).await?;
    item.map_err(StoreError::from)
}

/// Applies an event's changes and its "done" mark with whatever other events arrive
/// meanwhile, each in a savepoint of its own: one event refused or failing leaves the others
/// to commit.
pub(super) async fn apply_event(
    store: &SqlStore,
    event: EventToApply,
) -> Result<Vec<Applied>, StoreError> {
    let writer = event
        .users()
        .min()
        .map_or(0, |user| store.events.writer_of(user));
    store.events.submit(store, writer, event).await?
}

/// Commits the writer's queue group by group until it is empty.
async fn write<W: Send + 'static, A: Send + 'static>(
    group: Arc<GroupCommit<W, A>>,
    store: SqlStore,
    writer: usize,
) {
    let _done = Stopped {
        group: &group,
        store: &store,
        writer,
    };
    loop {
        let taken: Vec<_> = {
            let mut queue = group.queue(writer);
            if queue.waiting.is_empty() {
                queue.writing = false;
                return;
            }
            let take = queue.waiting.len().min(group.most);
            queue.waiting.drain(..take).collect()
        };
        let (work, answers): (Vec<W>, Vec<_>) = taken.into_iter().unzip();
        let pieces = work.len();
        // A count of pieces, recorded in a histogram of counts.
        metrics::histogram!(group.sizes).record(pieces as f64);
        match (group.commit)(store.clone(), work).await {
            Ok(done) => {
                group.committed.fetch_add(1, Ordering::Relaxed);
                for (answer, done) in answers.into_iter().zip(done) {
                    // A caller that went away is not told.
                    let _ = answer.send(Ok(done));
                }
            }
            Err(failed) => {
                tracing::warn!(error = %failed, pieces, group = group.sizes, "a group commit failed");
                let failed = Arc::new(failed);
                for answer in answers {
                    let _ = answer.send(Err(failed.clone()));
                }
            }
        }
        store.spent();
    }
}

/// If the writer stops by panicking (its group's callers are told by their dropped answers),
/// another takes over the work still waiting.
struct Stopped<'a, W: Send + 'static, A: Send + 'static> {
    group: &'a Arc<GroupCommit<W, A>>,
    store: &'a SqlStore,
    writer: usize,
}

impl<W: Send + 'static, A: Send + 'static> Drop for Stopped<'_, W, A> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.group.queue(self.writer);
            if queue.waiting.is_empty() {
                queue.writing = false;
            } else {
                tokio::spawn(write(self.group.clone(), self.store.clone(), self.writer));
            }
        }
    }
}
