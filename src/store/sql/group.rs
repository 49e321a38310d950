//! Group commit for usage debits (consume calls): debits that arrive while a transaction is
//! committing wait for it, and the next transaction takes all of them together as one batch
//! ([`batch::post`]). Each debit is still decided alone by the ledger's rules, under its own
//! key and with its own ledger row, and never overdraws; one hot user's debits in one group
//! become one balance update; and each caller is answered only after the group's commit.
//!
//! The window is the commit before: a debit that finds no transaction under way starts one at
//! once (no timer, so a lone debit waits for nothing), and debits that come while it commits
//! are the next group. Debits are spread over a few writers by user (one on SQLite, which has
//! one write lock anyway), so a user's debits always take turns in one of them, and writers
//! never wait on each other's rows.
//!
//! A writer is a task of its own, not the caller that started it: a caller that goes away (a
//! client that hangs up) leaves the group it was in to commit and answer the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::{SqlStore, batch};
use crate::domain::UserId;
use crate::ledger::{Debit, Posted};
use crate::store::{BatchItem, StoreError};

/// The most debits one transaction takes; the rest wait for the next.
const MAX_GROUP: usize = 1_000;

/// What a debit's caller is told: its own answer, or why its group's transaction failed.
type Answer = Result<BatchItem, Arc<StoreError>>;

/// The writers of one store, each with the debits waiting for it.
pub(super) struct GroupCommit {
    writers: Box<[Mutex<Queue>]>,
    /// How many groups have committed.
    committed: AtomicU64,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(Debit, oneshot::Sender<Answer>)>,
    /// Whether a writer task is taking groups from this queue.
    writing: bool,
}

impl GroupCommit {
    /// `writers` writers (at least one).
    pub(super) fn new(writers: usize) -> Self {
        Self {
            writers: (0..writers.max(1)).map(|_| Mutex::default()).collect(),
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

    fn queue(&self, writer: usize) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned queue is still whole.
        self.writers[writer]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Applies `debit` with whatever other debits of its writer arrive meanwhile, in one
/// transaction; answered once that transaction has committed.
pub(super) async fn spend(store: &SqlStore, debit: Debit) -> Result<Posted, StoreError> {
    let writer = store.group.writer_of(debit.posting().user);
    let (answer, answered) = oneshot::channel();
    let start = {
        let mut queue = store.group.queue(writer);
        queue.waiting.push((debit, answer));
        !std::mem::replace(&mut queue.writing, true)
    };
    if start {
        tokio::spawn(write(store.clone(), writer));
    }
    match answered.await {
        Ok(Ok(item)) => item.map_err(StoreError::from),
        Ok(Err(failed)) => Err(StoreError::Group(failed)),
        // The writer panicked with this debit in its group (and wrote nothing of it).
        Err(_) => Err(StoreError::Group(Arc::new(StoreError::Corrupt(
            "the group's writer stopped before answering".to_owned(),
        )))),
    }
}

/// Commits the writer's queue group by group until it is empty.
async fn write(store: SqlStore, writer: usize) {
    let _done = Stopped {
        store: &store,
        writer,
    };
    loop {
        let group: Vec<_> = {
            let mut queue = store.group.queue(writer);
            if queue.waiting.is_empty() {
                queue.writing = false;
                return;
            }
            let take = queue.waiting.len().min(MAX_GROUP);
            queue.waiting.drain(..take).collect()
        };
        let (debits, answers): (Vec<Debit>, Vec<_>) = group.into_iter().unzip();
        metrics::histogram!("billing_group_commit_debits").record(debits.len() as f64);
        match batch::post(&store, &debits).await {
            Ok(items) => {
                store.group.committed.fetch_add(1, Ordering::Relaxed);
                for (answer, item) in answers.into_iter().zip(items) {
                    // A caller that went away is not told.
                    let _ = answer.send(Ok(item));
                }
            }
            Err(failed) => {
                tracing::warn!(error = %failed, debits = debits.len(), "a group commit failed");
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
/// another takes over the debits still waiting.
struct Stopped<'a> {
    store: &'a SqlStore,
    writer: usize,
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.store.group.queue(self.writer);
            if queue.waiting.is_empty() {
                queue.writing = false;
            } else {
                tokio::spawn(write(self.store.clone(), self.writer));
            }
        }
    }
}
