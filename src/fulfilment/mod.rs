//! Stripe events into ledger changes, exactly once.
//!
//! Applying a verified event looks up what the payload does not carry (a session's line items,
//! the invoice behind a payment, a charge's refunds), then makes all of its changes and keeps it
//! in the inbox, done, in one store transaction; an attempt that does not finish keeps it with
//! why, for a retry or an operator. Idempotency is keyed by
//! the business object (a checkout session, an invoice, a charge's refunds, a dispute), so two
//! events about one payment, or one event delivered twice, credit once. A refund or dispute
//! that arrives before the purchase it reverses is held back and applied when that purchase is
//! credited.
//!
//! This file is the inbox's side (receive, re-apply, release what was held back); [`plan`]
//! decides what an event does; [`checkout`] is the success page's own check of a payment.

mod checkout;
mod plan;
#[cfg(test)]
mod tests;
mod topups;

use std::sync::Arc;

pub use checkout::CheckoutStatus;
pub use topups::TopUpResult;

use crate::catalog::Catalog;
use crate::domain::LedgerEntry;
use crate::ledger::LedgerError;
use crate::store::{Applied, Awaiting, InboxEvent, Recorded, Store, StoreError, Unfinished};
use crate::stripe::events::{Envelope, EventError};
use crate::stripe::{GatewayError, StripeGateway};
use plan::Plan;

/// What handling an event came to. `E` is what a change of tokens carries: the ledger entry
/// once it is made, nothing (`()`) in a plan, which names the outcome it means to come to
/// before the store has made any entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<E = LedgerEntry> {
    /// Tokens added (a purchase, an invoice, a won dispute, a failed refund given back).
    Credited(E),
    /// Tokens taken back (a refund, a dispute).
    Reversed(E),
    /// Applied before, by this event or another about the same payment: nothing changed.
    AlreadyApplied,
    /// The tokens already are where Stripe's state puts them: nothing to take or give back.
    Covered,
    /// State recorded; no change to tokens.
    Recorded(&'static str),
    /// Acknowledged; not an event billing acts on.
    Ignored(&'static str),
    /// Held back until the purchase it refers to is credited.
    Deferred(Awaiting),
    /// Cannot be applied as it stands (an unknown price, no user): kept unfinished for an
    /// operator, who can re-apply it after fixing the cause.
    Failed(String),
}

impl<E> Outcome<E> {
    /// The outcome's name, as the inbox keeps it and the metrics count it.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Credited(_) => "credited",
            Outcome::Reversed(_) => "reversed",
            Outcome::AlreadyApplied => "already_applied",
            Outcome::Covered => "covered",
            Outcome::Recorded(_) => "recorded",
            Outcome::Ignored(_) => "ignored",
            Outcome::Deferred(_) => "deferred",
            Outcome::Failed(_) => "failed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FulfilmentError {
    /// The event is not Stripe-shaped JSON: nothing can be kept or applied.
    #[error(transparent)]
    Malformed(#[from] EventError),
    /// The store or Stripe failed; the event is kept and a retry will apply it.
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("Stripe failed: {0}")]
    Gateway(#[from] GatewayError),
    #[error("there is no stored event {0}")]
    UnknownEvent(String),
}

pub struct Fulfilment {
    store: Arc<dyn Store>,
    gateway: Arc<dyn StripeGateway>,
    catalog: Arc<Catalog>,
}

impl Fulfilment {
    pub fn new(
        store: Arc<dyn Store>,
        gateway: Arc<dyn StripeGateway>,
        catalog: Arc<Catalog>,
    ) -> Self {
        Self {
            store,
            gateway,
            catalog,
        }
    }

    /// A delivery whose signature was verified: applied once, and kept in the inbox.
    pub async fn receive(&self, payload: &str) -> Result<Outcome, FulfilmentError> {
        let delivery = Delivery::parse(payload)?;
        let outcome = match self.store.inbox_seen(&delivery.event.id).await? {
            Recorded::Processed { .. } => Outcome::AlreadyApplied,
            Recorded::New | Recorded::Unfinished => self.apply_and_release(&delivery).await?,
        };
        metrics::counter!(
            "billing_webhook_events_total",
            "type" => delivery.event.kind.clone(),
            "outcome" => outcome.label(),
        )
        .increment(1);
        Ok(outcome)
    }

    /// Applies a stored event again (an operator's retry after fixing a failure). Safe for an
    /// event applied before: it changes nothing then.
    pub async fn reapply(&self, id: &str) -> Result<Outcome, FulfilmentError> {
        let stored = self
            .store
            .inbox_event(id)
            .await?
            .ok_or_else(|| FulfilmentError::UnknownEvent(id.to_owned()))?;
        if stored.processed_at.is_some() {
            return Ok(Outcome::AlreadyApplied);
        }
        self.apply_and_release(&Delivery::parse(&stored.payload)?)
            .await
    }

    /// Applies every held-back event whose purchase has been credited since. Releasing
    /// normally follows the credit at once; this sweep (run periodically by the server)
    /// catches a release cut short by a crash or a failure, which no redelivery would repeat,
    /// since Stripe was answered for every event involved. Answers how many it applied.
    pub async fn release_held(&self) -> Result<usize, FulfilmentError> {
        let mut released = 0;
        for awaiting in self.store.inbox_held().await? {
            if self.is_credited(&awaiting).await? {
                released += self.release(&awaiting).await;
            }
        }
        Ok(released)
    }

    async fn apply_and_release(&self, delivery: &Delivery) -> Result<Outcome, FulfilmentError> {
        let (outcome, releases) = self.apply(delivery).await?;
        // Events held back for this purchase (a refund that came first) apply now. A failure
        // here does not undo or fail the credit that came first: the held events keep their
        // mark, and the sweep applies them later.
        if let Some(awaiting) = releases {
            self.release(&awaiting).await;
        }
        Ok(outcome)
    }

    /// Applies the events held back for `awaiting`, now credited; answers how many applied.
    /// Each is tried on its own: one failing leaves it held and the others still apply.
    async fn release(&self, awaiting: &Awaiting) -> usize {
        let held = match self.store.inbox_awaiting(awaiting).await {
            Ok(held) => held,
            Err(error) => {
                tracing::error!(%error, %awaiting, "reading held-back events failed; the sweep will retry");
                return 0;
            }
        };
        let mut applied = 0;
        for stored in &held {
            let released = match Delivery::parse(&stored.payload) {
                Ok(delivery) => self.apply(&delivery).await,
                Err(e) => Err(e.into()),
            };
            match released {
                Ok((Outcome::Deferred(_), _)) => {}
                Ok((outcome, _)) => {
                    applied += 1;
                    tracing::info!(event = %stored.id, outcome = outcome.label(), "applied a held-back event");
                }
                Err(error) => {
                    tracing::error!(event = %stored.id, %error, %awaiting, "releasing a held-back event failed; the sweep will retry");
                }
            }
        }
        applied
    }

    /// Whether the purchase an event waits for is in the ledger.
    async fn is_credited(&self, awaiting: &Awaiting) -> Result<bool, FulfilmentError> {
        Ok(match awaiting {
            Awaiting::PaymentIntent(payment_intent) => self
                .store
                .purchase_by_payment_intent(payment_intent)
                .await?
                .is_some(),
            Awaiting::Invoice(invoice) => self.store.purchase_by_object(invoice).await?.is_some(),
        })
    }

    /// Plans and applies an event; answers with what it came to and the purchase it credited
    /// (whose held-back events may apply now).
    async fn apply(
        &self,
        delivery: &Delivery,
    ) -> Result<(Outcome, Option<Awaiting>), FulfilmentError> {
        let first = self.plan_and_carry_out(delivery).await?;
        // The purchase may have been credited after this event looked for it, and its release
        // may have looked for held events before this one was marked: look once more now that
        // the mark is set, so that neither side misses the other.
        if let (Outcome::Deferred(awaiting), _) = &first
            && self.is_credited(awaiting).await?
        {
            return self.plan_and_carry_out(delivery).await;
        }
        Ok(first)
    }

    async fn plan_and_carry_out(
        &self,
        delivery: &Delivery,
    ) -> Result<(Outcome, Option<Awaiting>), FulfilmentError> {
        match self.plan_for(&delivery.event).await {
            Ok(plan) => self.carry_out(delivery, plan).await,
            Err(error) => {
                self.note(delivery, &Unfinished::Interrupted, &error.to_string())
                    .await;
                Err(error)
            }
        }
    }

    async fn carry_out(
        &self,
        delivery: &Delivery,
        plan: Plan,
    ) -> Result<(Outcome, Option<Awaiting>), FulfilmentError> {
        match plan {
            Plan::Apply {
                changes,
                intent,
                detail,
                releases,
            } => {
                let applied = match self
                    .store
                    .apply_event(&delivery.kept, &changes, intent.label(), detail.as_deref())
                    .await
                {
                    Ok(applied) => applied,
                    Err(StoreError::AlreadyExists) => return Ok((Outcome::AlreadyApplied, None)),
                    Err(StoreError::Ledger(
                        e @ (LedgerError::UnknownUser(_) | LedgerError::IdempotencyConflict { .. }),
                    )) => return Ok((self.fail(delivery, e.to_string()).await?, None)),
                    Err(e) => {
                        self.note(delivery, &Unfinished::Interrupted, &e.to_string())
                            .await;
                        return Err(e.into());
                    }
                };
                Ok((summarise(&applied, intent), releases))
            }
            Plan::Defer { awaiting, detail } => {
                self.store
                    .inbox_note_unfinished(
                        &delivery.kept,
                        &Unfinished::Held(awaiting.clone()),
                        &detail,
                    )
                    .await?;
                tracing::info!(event = %delivery.kept.id, %awaiting, "held back until the purchase is credited");
                Ok((Outcome::Deferred(awaiting), None))
            }
            Plan::Fail(detail) => Ok((self.fail(delivery, detail).await?, None)),
        }
    }

    async fn fail(&self, delivery: &Delivery, detail: String) -> Result<Outcome, FulfilmentError> {
        let event = &delivery.kept;
        tracing::error!(event = %event.id, kind = %event.kind, %detail, "a Stripe event cannot be applied");
        self.store
            .inbox_note_unfinished(event, &Unfinished::Refused, &detail)
            .await?;
        Ok(Outcome::Failed(detail))
    }

    /// Notes why an attempt stopped, for `stripe pending`; a failure to note it is only logged
    /// (the error that stopped the attempt is what the caller reports).
    async fn note(&self, delivery: &Delivery, why: &Unfinished, detail: &str) {
        if let Err(error) = self
            .store
            .inbox_note_unfinished(&delivery.kept, why, detail)
            .await
        {
            tracing::warn!(event = %delivery.kept.id, %error, "noting an unfinished attempt failed");
        }
    }
}

/// An event as delivered: what it says, and the copy the inbox keeps with its first attempt.
struct Delivery {
    event: Envelope,
    kept: InboxEvent,
}

impl Delivery {
    fn parse(payload: &str) -> Result<Self, EventError> {
        let event = Envelope::parse(payload.as_bytes())?;
        let kept = InboxEvent {
            id: event.id.clone(),
            kind: event.kind.clone(),
            livemode: event.livemode,
            created: event.created,
            payload: payload.to_owned(),
        };
        Ok(Self { event, kept })
    }
}

/// What applying a plan came to, from what the store did and the outcome the plan meant.
fn summarise(applied: &[Applied], intent: Outcome<()>) -> Outcome {
    let moves_tokens = matches!(intent, Outcome::Credited(()) | Outcome::Reversed(()));
    for change in applied {
        match change {
            Applied::Posted(posted) if posted.replayed => return Outcome::AlreadyApplied,
            Applied::Posted(posted) if posted.entry.delta.is_increase() => {
                return Outcome::Credited(posted.entry.clone());
            }
            Applied::Posted(posted) => return Outcome::Reversed(posted.entry.clone()),
            // Nothing moved: tokens already where they belong, or a state merely recorded.
            Applied::Covered if moves_tokens => return Outcome::Covered,
            Applied::Covered | Applied::Recorded => {}
        }
    }
    match intent {
        Outcome::Credited(()) | Outcome::Reversed(()) => Outcome::Recorded("state recorded"),
        Outcome::AlreadyApplied => Outcome::AlreadyApplied,
        Outcome::Covered => Outcome::Covered,
        Outcome::Recorded(what) => Outcome::Recorded(what),
        Outcome::Ignored(why) => Outcome::Ignored(why),
        Outcome::Deferred(awaiting) => Outcome::Deferred(awaiting),
        Outcome::Failed(why) => Outcome::Failed(why),
    }
}
