//! Auto top-up's payments: every node pays the top-ups the database starts, at once after the
//! change that started one commits (the store tells it, `TopUps::topups_started`), and every
//! [`SWEEP`] those a node that stopped left claimed.

use std::sync::Arc;
use std::time::Duration;

use billing::clock::Clock;
use billing::fulfilment::{Fulfilment, TopUpResult};
use billing::store::Store;
use tokio::sync::Semaphore;

/// How often top-ups whose claim ran out are looked for, besides being told.
const SWEEP: Duration = Duration::from_secs(30);
/// How long a claim holds: longer than paying takes (Stripe's client gives up after 20 s).
const LEASE: Duration = Duration::from_secs(120);
/// Top-ups claimed a round, and paid at once at most.
const PER_ROUND: i64 = 16;
const IN_FLIGHT: usize = 8;

pub struct TopUpPayer {
    store: Arc<dyn Store>,
    fulfilment: Arc<Fulfilment>,
    clock: Arc<dyn Clock>,
    in_flight: Arc<Semaphore>,
}

impl TopUpPayer {
    pub fn new(store: Arc<dyn Store>, fulfilment: Arc<Fulfilment>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            fulfilment,
            clock,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }

    pub fn spawn(self) {
        let payer = Arc::new(self);
        let started = payer.store.topups_started();
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(SWEEP);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = started.notified() => {}
                    _ = sweep.tick() => {}
                }
                if let Err(error) = payer.round().await {
                    tracing::warn!(%error, "paying top-ups failed; trying again");
                }
            }
        });
    }

    /// Claims what is due and pays each, a round at a time until none are left.
    async fn round(self: &Arc<Self>) -> Result<(), billing::store::StoreError> {
        loop {
            let due = self
                .store
                .claim_topups(self.clock.now(), PER_ROUND, LEASE)
                .await?;
            let full = due.len() as i64 == PER_ROUND;
            for topup in due {
                let permit = self
                    .in_flight
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let payer = self.clone();
                tokio::spawn(async move {
                    let outcome = match payer.fulfilment.pay_topup(&topup).await {
                        Ok(TopUpResult::Credited { tokens, .. }) => {
                            tracing::info!(
                                topup = topup.id,
                                user = topup.user.get(),
                                tokens = tokens.get(),
                                "auto top-up credited"
                            );
                            "credited"
                        }
                        Ok(TopUpResult::Failed(reason)) => {
                            tracing::info!(
                                topup = topup.id,
                                user = topup.user.get(),
                                reason = reason.as_str(),
                                "auto top-up failed and paused"
                            );
                            "failed"
                        }
                        Ok(TopUpResult::Capped) => "capped",
                        Ok(TopUpResult::Canceled) => "canceled",
                        Ok(TopUpResult::AlreadySettled) => "already_settled",
                        Err(error) => {
                            // Left pending: paid again, with the same idempotency key, once
                            // its claim runs out.
                            tracing::warn!(topup = topup.id, %error, "paying a top-up failed; it is tried again");
                            "error"
                        }
                    };
                    metrics::counter!("billing_topups_total", "outcome" => outcome).increment(1);
                    drop(permit);
                });
            }
            if !full {
                return Ok(());
            }
        }
    }
}
