//! The servers a history is delivered to: nodes in this process (each with its own pool on
//! the test database), or real server processes over HTTP (the server's tests provide those).

use std::sync::Arc;

use async_trait::async_trait;

use crate::catalog::Catalog;
use crate::domain::{Email, IdempotencyKey, Reason, Tokens, UserId};
use crate::fulfilment::Fulfilment;
use crate::ledger::{LedgerError, Posting};
use crate::store::{SqlStore, Store, StoreError};
use crate::stripe::simulated::Simulator;

/// What Stripe hears back from a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// 2xx, with the outcome's label (`credited`, `deferred`, `failed`...).
    Acknowledged(String),
    /// Not acknowledged (a 5xx, an error): Stripe sends it again later.
    NotAcknowledged(String),
}

/// How a consume call was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    Applied {
        entry: i64,
        replayed: bool,
        balance: i64,
    },
    Insufficient,
    Conflict,
    Other(String),
}

/// One server.
#[async_trait]
pub trait Node: Send + Sync {
    async fn deliver(&self, payload: &str) -> Heard;

    /// The user back on the success page of a Checkout session; `Err` when it failed.
    async fn success_page(&self, session: &str, user: UserId, email: &Email) -> Result<(), String>;

    /// A consume call under the client's `key`.
    async fn consume(&self, user: UserId, tokens: i64, key: &str) -> Consumed;

    /// The sweep each server runs every minute: held-back events whose purchase is credited.
    async fn sweep(&self) -> Result<usize, String>;
}

/// Where a history's nodes come from.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// The nodes for one history, whose Stripe is `sim`.
    async fn nodes(&self, sim: Arc<Simulator>, trial: Option<Tokens>) -> Vec<Arc<dyn Node>>;

    /// The trial allowance the nodes offer for the history of `seed`.
    fn trial_allowance(&self, seed: u64) -> Option<Tokens>;
}

/// Nodes in this process: a fulfilment on each of the given stores (pools).
pub struct InProcess {
    pub stores: Vec<Arc<SqlStore>>,
    pub catalog: Catalog,
}

#[async_trait]
impl Cluster for InProcess {
    async fn nodes(&self, sim: Arc<Simulator>, trial: Option<Tokens>) -> Vec<Arc<dyn Node>> {
        let catalog = Arc::new(self.catalog.clone().with_trial_allowance(trial));
        self.stores
            .iter()
            .map(|store| {
                Arc::new(LocalNode {
                    store: store.clone(),
                    fulfilment: Fulfilment::new(store.clone(), sim.clone(), catalog.clone()),
                }) as Arc<dyn Node>
            })
            .collect()
    }

    fn trial_allowance(&self, seed: u64) -> Option<Tokens> {
        seed.is_multiple_of(3)
            .then(|| Tokens::new(500).expect("in range"))
    }
}

struct LocalNode {
    store: Arc<SqlStore>,
    fulfilment: Fulfilment,
}

#[async_trait]
impl Node for LocalNode {
    async fn deliver(&self, payload: &str) -> Heard {
        match self.fulfilment.receive(payload).await {
            Ok(outcome) => Heard::Acknowledged(outcome.label().to_owned()),
            Err(error) => Heard::NotAcknowledged(error.to_string()),
        }
    }

    async fn success_page(&self, session: &str, user: UserId, _: &Email) -> Result<(), String> {
        self.fulfilment
            .fulfil_checkout(session, user)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn consume(&self, user: UserId, tokens: i64, key: &str) -> Consumed {
        // As the consume route does: the client's key, namespaced by the service's.
        let posting = Posting::debit(
            user,
            Tokens::new(tokens).expect("in range"),
            Reason::parse("Usage").expect("a valid literal"),
            IdempotencyKey::scoped("consume:history", key).expect("a valid key"),
        );
        match self.store.post(posting).await {
            Ok(posted) => Consumed::Applied {
                entry: posted.entry.id.get(),
                replayed: posted.replayed,
                balance: posted.entry.balance_after.get(),
            },
            Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. })) => {
                Consumed::Insufficient
            }
            Err(StoreError::Ledger(LedgerError::IdempotencyConflict { .. })) => Consumed::Conflict,
            Err(e) => Consumed::Other(e.to_string()),
        }
    }

    async fn sweep(&self) -> Result<usize, String> {
        self.fulfilment
            .release_held()
            .await
            .map_err(|e| e.to_string())
    }
}
