//! The servers a history is delivered to: nodes in this process (each with its own pool on
//! the test database), or real server processes over HTTP (the server's tests provide those).

use std::sync::Arc;

use async_trait::async_trait;

use crate::catalog::Catalog;
use crate::config::CreditSettings;
use crate::domain::{Email, HoldId, IdempotencyKey, Reason, Timestamp, Tokens, UserId};
use crate::fulfilment::Fulfilment;
use crate::ledger::{Debit, LedgerError};
use crate::store::{HoldCapture, NewHold, SqlStore, Store, StoreError, TopUps};
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

/// How a request for a hold was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldAnswer {
    Opened {
        hold: i64,
        /// What was available right after.
        available: i64,
        replayed: bool,
    },
    Insufficient,
    Other(String),
}

/// How a hold's capture or release was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Captured: the ledger entry (a replay answers with the first).
    Captured {
        entry: i64,
        replayed: bool,
        balance: i64,
    },
    /// Released, or found released or expired already (`replayed`).
    Released {
        replayed: bool,
    },
    /// The hold is not open (released, expired, captured) or the capture asked too much:
    /// refused, with the reason's words.
    Refused(String),
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

    /// Several consume calls at once, each under its client key: one answer each, in order.
    async fn consume_batch(&self, items: &[(UserId, i64, String)]) -> Vec<Consumed>;

    /// A hold of `tokens` for `ttl_secs` under the client's `key`.
    async fn open_hold(&self, user: UserId, tokens: i64, ttl_secs: i64, key: &str) -> HoldAnswer;

    /// Captures `tokens` of a hold (beyond what it holds only when `exceed`).
    async fn capture(&self, hold: i64, tokens: i64, exceed: bool) -> Settled;

    async fn release(&self, hold: i64) -> Settled;

    /// The sweep each server runs every minute: held-back events whose purchase is credited,
    /// and grants and holds whose time has come.
    async fn sweep(&self) -> Result<usize, String>;

    /// Pays the top-ups of `users` started so far (a server does on its own; nodes in this
    /// process when told): how many were credited.
    async fn pay_topups(&self, now: Timestamp, users: &[UserId]) -> Result<usize, String> {
        let _ = (now, users);
        Ok(0)
    }
}

/// Where a history's nodes come from.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// The nodes for one history, whose Stripe is `sim`.
    async fn nodes(
        &self,
        sim: Arc<Simulator>,
        trial: Option<Tokens>,
        credits: CreditSettings,
    ) -> Vec<Arc<dyn Node>>;

    /// The trial allowance the nodes offer for the history of `seed`.
    fn trial_allowance(&self, seed: u64) -> Option<Tokens>;

    /// Whether the nodes tell time by the history's clock (else by the system's, and what
    /// expires when is not known exactly).
    fn tells_history_time(&self) -> bool {
        false
    }

    /// Whether the nodes pay top-ups when told to (`Node::pay_topups`), so histories may turn
    /// auto top-up on.
    fn pays_topups(&self) -> bool {
        false
    }

    /// When the nodes' grants expire in the history of `seed`.
    fn credit_rules(&self, seed: u64) -> CreditSettings {
        let _ = seed;
        CreditSettings::default()
    }
}

/// Nodes in this process: a fulfilment on each of the given stores (pools).
pub struct InProcess {
    pub stores: Vec<Arc<SqlStore>>,
    pub catalog: Catalog,
}

#[async_trait]
impl Cluster for InProcess {
    async fn nodes(
        &self,
        sim: Arc<Simulator>,
        trial: Option<Tokens>,
        credits: CreditSettings,
    ) -> Vec<Arc<dyn Node>> {
        let catalog = Arc::new(
            self.catalog
                .clone()
                .with_trial_allowance(trial)
                .with_credit_rules(credits),
        );
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

    fn tells_history_time(&self) -> bool {
        true
    }

    fn pays_topups(&self) -> bool {
        true
    }

    /// Packs that last two days in half the histories, so that they expire within one; plan
    /// periods that roll up to 3,000 tokens over in a third.
    fn credit_rules(&self, seed: u64) -> CreditSettings {
        CreditSettings {
            pack_expiry_days: if seed.is_multiple_of(2) {
                Some(2)
            } else {
                Some(CreditSettings::DEFAULT_PACK_EXPIRY_DAYS)
            },
            plan_rollover_cap: (seed % 3 == 1).then(|| Tokens::new(3_000).expect("in range")),
        }
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
        consumed(self.store.spend(debit(user, tokens, key)).await)
    }

    async fn consume_batch(&self, items: &[(UserId, i64, String)]) -> Vec<Consumed> {
        let debits: Vec<Debit> = items
            .iter()
            .map(|(user, tokens, key)| debit(*user, *tokens, key))
            .collect();
        match self.store.post_batch(&debits).await {
            Ok(answers) => answers
                .into_iter()
                .map(|a| consumed(a.map_err(StoreError::from)))
                .collect(),
            Err(e) => vec![Consumed::Other(e.to_string()); items.len()],
        }
    }

    async fn open_hold(&self, user: UserId, tokens: i64, ttl_secs: i64, key: &str) -> HoldAnswer {
        let hold = NewHold {
            user,
            tokens: Tokens::new(tokens).expect("in range"),
            reason: Reason::parse("A job").expect("a valid literal"),
            ttl_ms: ttl_secs * 1000,
            key: IdempotencyKey::scoped("hold:history", key).expect("a valid key"),
            api_key: None,
        };
        match self.store.open_hold(&hold).await {
            Ok(opened) => HoldAnswer::Opened {
                hold: opened.hold.id.get(),
                available: opened.available.spendable(),
                replayed: opened.replayed,
            },
            Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. })) => {
                HoldAnswer::Insufficient
            }
            Err(e) => HoldAnswer::Other(e.to_string()),
        }
    }

    async fn capture(&self, hold: i64, tokens: i64, exceed: bool) -> Settled {
        let capture = HoldCapture {
            hold: HoldId::new(hold).expect("a hold id"),
            tokens: Tokens::new(tokens).expect("in range"),
            may_exceed: exceed,
            api_key: None,
        };
        match self.store.capture_hold(&capture).await {
            Ok(posted) => Settled::Captured {
                entry: posted.entry.id.get(),
                replayed: posted.replayed,
                balance: posted.entry.balance_after.get(),
            },
            Err(refused @ (StoreError::Hold(_) | StoreError::Ledger(_))) => {
                Settled::Refused(refused.to_string())
            }
            Err(e) => Settled::Other(e.to_string()),
        }
    }

    async fn release(&self, hold: i64) -> Settled {
        match self
            .store
            .release_hold(HoldId::new(hold).expect("a hold id"), None)
            .await
        {
            Ok(released) => Settled::Released {
                replayed: released.replayed,
            },
            Err(refused @ StoreError::Hold(_)) => Settled::Refused(refused.to_string()),
            Err(e) => Settled::Other(e.to_string()),
        }
    }

    async fn sweep(&self) -> Result<usize, String> {
        sweep(&self.fulfilment, &*self.store).await
    }

    /// Claims without a lease (the history's steps take turns), so a top-up left unpaid by a
    /// failure is paid again by the next step that asks, as a server's after the claim ran
    /// out: Stripe answers its idempotency key as it did the first time. Other histories on
    /// the same database have Stripe accounts of their own: their top-ups are left alone.
    async fn pay_topups(&self, now: Timestamp, users: &[UserId]) -> Result<usize, String> {
        let due = self
            .store
            .claim_topups(now, 100, std::time::Duration::ZERO)
            .await
            .map_err(|e| e.to_string())?;
        let mut credited = 0;
        let mut errors = Vec::new();
        for topup in due.iter().filter(|t| users.contains(&t.user)) {
            match self.fulfilment.pay_topup(topup).await {
                Ok(crate::fulfilment::TopUpResult::Credited { .. }) => credited += 1,
                Ok(_) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(credited)
        } else {
            Err(errors.join("; "))
        }
    }
}

/// One round of the sweep each server runs every minute: held-back events whose purchase is
/// credited, then the grants and holds whose time has come.
pub async fn sweep(fulfilment: &Fulfilment, store: &dyn Store) -> Result<usize, String> {
    let released = fulfilment.release_held().await.map_err(|e| e.to_string())?;
    let settled = store
        .settle_expiries(500)
        .await
        .map_err(|e| e.to_string())?;
    Ok(released + settled as usize)
}

/// A consume call as the consume route makes it: the client's key, namespaced by the
/// service's.
fn debit(user: UserId, tokens: i64, key: &str) -> Debit {
    Debit::new(
        user,
        Tokens::new(tokens).expect("in range"),
        Reason::parse("Usage").expect("a valid literal"),
        IdempotencyKey::scoped("consume:history", key).expect("a valid key"),
    )
}

fn consumed(answer: Result<crate::ledger::Posted, StoreError>) -> Consumed {
    match answer {
        Ok(posted) => Consumed::Applied {
            entry: posted.entry.id.get(),
            replayed: posted.replayed,
            balance: posted.entry.balance_after.get(),
        },
        Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. })) => Consumed::Insufficient,
        Err(StoreError::Ledger(LedgerError::IdempotencyConflict { .. })) => Consumed::Conflict,
        Err(e) => Consumed::Other(e.to_string()),
    }
}
