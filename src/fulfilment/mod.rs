//! Stripe events into ledger changes, exactly once.
//!
//! Every verified event is kept in the inbox first. Applying it looks up what the payload does
//! not carry (a session's line items, the invoice behind a payment), then makes all of its
//! changes and marks it done in one store transaction. Idempotency is keyed by the business
//! object (a checkout session, an invoice, a refunded amount, a dispute), so two events about
//! one payment, or one event delivered twice, credit once. A refund or dispute that arrives
//! before the purchase it reverses is held back and applied when that purchase is credited.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::domain::{IdempotencyKey, LedgerEntry, ProductKind, Reason, Source, Tokens, UserId};
use crate::ledger::{LedgerError, Posting, StripeRefs};
use crate::store::{
    Applied, Change, InboxEvent, Recorded, Reversal, ReversalTarget, Store, StoreError,
};
use crate::stripe::events::{
    self, ChargeRefunded, CheckoutPaid, DisputeEvent, Effect, Envelope, EventError, InvoicePaid,
};
use crate::stripe::{GatewayError, StripeGateway};

/// What handling an event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Tokens added (a purchase, an invoice, a won dispute).
    Credited(LedgerEntry),
    /// Tokens taken back (a refund, a dispute).
    Reversed(LedgerEntry),
    /// Applied before, by this event or another about the same payment: nothing changed.
    AlreadyApplied,
    /// Nothing left to reverse.
    Covered,
    /// State recorded; no change to tokens.
    Recorded(&'static str),
    /// Acknowledged; not an event billing acts on.
    Ignored(&'static str),
    /// Held back until the purchase it refers to is credited.
    Deferred(String),
    /// Cannot be applied as it stands (an unknown price, no user): kept unfinished for an
    /// operator, who can re-apply it after fixing the cause.
    Failed(String),
}

impl Outcome {
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

/// What to do with an event, decided before the transaction.
enum Plan {
    Apply {
        changes: Vec<Change>,
        outcome: &'static str,
        detail: Option<String>,
        /// Held-back events this credit releases (`pi:...`, `invoice:...`).
        releases: Vec<String>,
    },
    Defer {
        awaiting: String,
        detail: String,
    },
    Fail(String),
}

/// The state of a Checkout session, as the success page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutStatus {
    /// Paid; the tokens are in the ledger.
    Credited { entry: LedgerEntry },
    /// A subscription: tokens come with its paid invoice.
    Subscribed,
    /// An asynchronous payment method has not paid yet; `tokens` come when it does.
    Pending { tokens: Option<Tokens> },
    /// Not paid (abandoned, expired).
    Unpaid,
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

    /// A delivery whose signature was verified: kept in the inbox, then applied once.
    pub async fn receive(&self, payload: &str) -> Result<Outcome, FulfilmentError> {
        let event = Envelope::parse(payload.as_bytes())?;
        let recorded = self
            .store
            .inbox_record(&InboxEvent {
                id: event.id.clone(),
                kind: event.kind.clone(),
                livemode: event.livemode,
                created: event.created,
                payload: payload.to_owned(),
            })
            .await?;
        let outcome = match recorded {
            Recorded::Processed { .. } => Outcome::AlreadyApplied,
            _ => self.apply_and_release(&event).await?,
        };
        metrics::counter!(
            "billing_webhook_events_total",
            "type" => event.kind.clone(),
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
        let event = Envelope::parse(stored.payload.as_bytes())?;
        self.apply_and_release(&event).await
    }

    async fn apply_and_release(&self, event: &Envelope) -> Result<Outcome, FulfilmentError> {
        let (outcome, releases) = self.apply(event).await?;
        // Events held back for this purchase (a refund that came first) apply now.
        for awaiting in releases {
            self.release_logged(&awaiting).await;
        }
        Ok(outcome)
    }

    /// Releases what waits for `awaiting`. A failure here does not undo or fail the credit
    /// that came first: it is logged, and the periodic sweep ([`Self::release_held`]) retries.
    async fn release_logged(&self, awaiting: &str) {
        if let Err(error) = self.release(awaiting).await {
            tracing::error!(%error, %awaiting, "releasing held-back events failed; the sweep will retry");
        }
    }

    /// Applies the events held back for `awaiting` (`pi:...`, `invoice:...`), now credited.
    async fn release(&self, awaiting: &str) -> Result<usize, FulfilmentError> {
        let held = self.store.inbox_awaiting(awaiting).await?;
        for stored in &held {
            let held_event = Envelope::parse(stored.payload.as_bytes())?;
            let (released, _) = self.apply(&held_event).await?;
            tracing::info!(event = %stored.id, outcome = released.label(), "applied a held-back event");
        }
        Ok(held.len())
    }

    /// Applies every held-back event whose purchase has been credited since. Releasing
    /// normally follows the credit at once; this sweep (run periodically by the server)
    /// catches a release that was cut short by a crash or a failed query, which no
    /// redelivery would repeat, since the credit's event is already done.
    pub async fn release_held(&self) -> Result<usize, FulfilmentError> {
        let mut released = 0;
        let mut seen = std::collections::BTreeSet::new();
        for stored in self.store.inbox_unfinished().await? {
            let Some(awaiting) = stored.awaiting else {
                continue;
            };
            if seen.insert(awaiting.clone()) && self.is_credited(&awaiting).await? {
                released += self.release(&awaiting).await?;
            }
        }
        Ok(released)
    }

    /// Whether the purchase an event waits for (`pi:...`, `invoice:...`) is in the ledger.
    async fn is_credited(&self, awaiting: &str) -> Result<bool, FulfilmentError> {
        Ok(match awaiting.split_once(':') {
            Some(("pi", payment_intent)) => self
                .store
                .purchase_by_payment_intent(payment_intent)
                .await?
                .is_some(),
            Some(("invoice", invoice)) => self.store.purchase_by_object(invoice).await?.is_some(),
            _ => false,
        })
    }

    async fn apply(&self, event: &Envelope) -> Result<(Outcome, Vec<String>), FulfilmentError> {
        let first = self.carry_out(event, self.plan_for(event).await?).await?;
        // The purchase may have been credited after this event looked for it, and its release
        // may have looked for held events before this one was marked: look once more now that
        // the mark is set, so that neither side misses the other.
        if let (Outcome::Deferred(awaiting), _) = &first
            && self.is_credited(awaiting).await?
        {
            return self.carry_out(event, self.plan_for(event).await?).await;
        }
        Ok(first)
    }

    async fn plan_for(&self, event: &Envelope) -> Result<Plan, FulfilmentError> {
        Ok(match events::interpret(event) {
            Ok(effect) => self.plan(event, effect).await?,
            Err(e) => Plan::Fail(e.to_string()),
        })
    }

    async fn carry_out(
        &self,
        event: &Envelope,
        plan: Plan,
    ) -> Result<(Outcome, Vec<String>), FulfilmentError> {
        match plan {
            Plan::Apply {
                changes,
                outcome,
                detail,
                releases,
            } => {
                let applied = match self
                    .store
                    .apply_event(&event.id, &changes, outcome, detail.as_deref())
                    .await
                {
                    Ok(applied) => applied,
                    Err(StoreError::AlreadyExists) => return Ok((Outcome::AlreadyApplied, vec![])),
                    Err(StoreError::Ledger(
                        e @ (LedgerError::UnknownUser(_) | LedgerError::IdempotencyConflict { .. }),
                    )) => return self.fail(event, e.to_string()).await.map(|o| (o, vec![])),
                    Err(e) => {
                        self.store
                            .inbox_note_attempt(&event.id, None, &e.to_string())
                            .await
                            .ok();
                        return Err(e.into());
                    }
                };
                Ok((summarise(&applied, outcome, detail), releases))
            }
            Plan::Defer { awaiting, detail } => {
                self.store
                    .inbox_note_attempt(&event.id, Some(&awaiting), &detail)
                    .await?;
                tracing::info!(event = %event.id, %awaiting, "held back until the purchase is credited");
                Ok((Outcome::Deferred(awaiting), vec![]))
            }
            Plan::Fail(detail) => self.fail(event, detail).await.map(|o| (o, vec![])),
        }
    }

    async fn fail(&self, event: &Envelope, detail: String) -> Result<Outcome, FulfilmentError> {
        tracing::error!(event = %event.id, kind = %event.kind, %detail, "a Stripe event cannot be applied");
        self.store
            .inbox_note_attempt(&event.id, None, &detail)
            .await?;
        Ok(Outcome::Failed(detail))
    }

    async fn plan(&self, event: &Envelope, effect: Effect) -> Result<Plan, FulfilmentError> {
        let refs = |object: &str, payment_intent: Option<&String>| StripeRefs {
            event_id: Some(event.id.clone()),
            object_id: Some(object.to_owned()),
            payment_intent: payment_intent.cloned(),
        };
        Ok(match effect {
            Effect::CheckoutPaid(paid) => match self.checkout_credit(&paid).await? {
                Ok(posting) => {
                    let posting =
                        posting.with_stripe(refs(&paid.session, paid.payment_intent.as_ref()));
                    let mut changes = vec![Change::Post(posting)];
                    if let (Some(user), Some(customer)) = (paid.user, &paid.customer) {
                        changes.push(Change::LinkCustomer {
                            user,
                            customer: customer.clone(),
                        });
                    }
                    Plan::Apply {
                        changes,
                        outcome: "credited",
                        detail: None,
                        releases: paid
                            .payment_intent
                            .iter()
                            .map(|pi| format!("pi:{pi}"))
                            .collect(),
                    }
                }
                Err(why) => Plan::Fail(why),
            },
            Effect::CheckoutAwaitingPayment { .. } => {
                record("checkout completed; waiting for an asynchronous payment")
            }
            Effect::CheckoutPaymentFailed { .. } => {
                record("the asynchronous payment failed; nothing was credited")
            }
            Effect::SubscriptionCheckout { user, customer, .. } => Plan::Apply {
                changes: match (user, customer) {
                    (Some(user), Some(customer)) => vec![Change::LinkCustomer { user, customer }],
                    _ => vec![],
                },
                outcome: "recorded",
                detail: Some("subscription checkout: tokens come with each paid invoice".into()),
                releases: vec![],
            },
            Effect::InvoicePaid(invoice) => {
                self.invoice_credit(&invoice, refs(&invoice.invoice, None))
                    .await?
            }
            Effect::ChargeRefunded(refund) => self.refund(&refund, event).await?,
            Effect::DisputeOpened(dispute) => self.dispute_opened(&dispute, event).await?,
            Effect::DisputeClosed { dispute, won } => {
                let mut changes = vec![Change::DisputeStatus {
                    dispute: dispute.dispute.clone(),
                    status: if won { "won" } else { "lost" }.to_owned(),
                }];
                if won {
                    changes.push(Change::Reinstate {
                        dispute: dispute.dispute.clone(),
                        key: IdempotencyKey::scoped("stripe:dispute-won", &dispute.dispute)
                            .map_err(|e| EventError::Malformed(e.to_string()))?,
                        reason: reason("Dispute won: tokens restored"),
                    });
                }
                Plan::Apply {
                    changes,
                    outcome: if won { "reinstated" } else { "recorded" },
                    detail: None,
                    releases: vec![],
                }
            }
            Effect::SubscriptionChanged(state) => {
                let user = match state.user {
                    Some(user) => Some(user),
                    None => self.store.user_of_customer(&state.customer).await?,
                };
                match user {
                    Some(user) => Plan::Apply {
                        changes: vec![Change::Subscription(crate::store::SubscriptionRecord {
                            subscription: state.subscription,
                            user,
                            customer: state.customer,
                            status: state.status,
                            price: state.price,
                            current_period_end: state.current_period_end,
                            cancel_at_period_end: state.cancel_at_period_end,
                            cancel_at: state.cancel_at,
                            canceled_at: state.canceled_at,
                            as_of: state.as_of,
                        })],
                        outcome: "recorded",
                        detail: None,
                        releases: vec![],
                    },
                    None => Plan::Fail(format!("no user is linked to customer {}", state.customer)),
                }
            }
            Effect::Ignore { why } => Plan::Apply {
                changes: vec![],
                outcome: "ignored",
                detail: Some(why.into()),
                releases: vec![],
            },
        })
    }

    /// The credit a paid Checkout session grants, from its line items (never from metadata).
    /// `Err` with a reason when it cannot be credited as it stands.
    async fn checkout_credit(
        &self,
        paid: &CheckoutPaid,
    ) -> Result<Result<Posting, String>, FulfilmentError> {
        let user = match paid.user {
            Some(user) => Some(user),
            None => match &paid.customer {
                Some(customer) => self.store.user_of_customer(customer).await?,
                None => None,
            },
        };
        let Some(user) = user else {
            return Ok(Err(format!(
                "checkout session {} names no user",
                paid.session
            )));
        };
        let items = self.gateway.checkout_line_items(&paid.session).await?;
        let mut total = 0i64;
        let mut labels = Vec::new();
        for item in &items {
            let Some(product) = self.catalog.product_of(&item.price) else {
                return Ok(Err(format!(
                    "unknown price {} in checkout session {}",
                    item.price, paid.session
                )));
            };
            if product.kind() != ProductKind::Pack {
                return Ok(Err(format!("price {} is not a token pack", item.price)));
            }
            let quantity = item.quantity.clamp(1, 100);
            total += product.tokens().get() * quantity;
            labels.push(if quantity == 1 {
                product.label().to_owned()
            } else {
                format!("{quantity} × {}", product.label())
            });
        }
        let Ok(tokens) = Tokens::new(total) else {
            return Ok(Err(format!(
                "checkout session {} bought no tokens",
                paid.session
            )));
        };
        let key = IdempotencyKey::scoped("stripe:checkout", &paid.session)
            .map_err(|e| EventError::Malformed(e.to_string()))?;
        let posting = Posting::credit(
            user,
            tokens,
            Source::StripeCheckout,
            reason(&format!(
                "{} ({} tokens)",
                labels.join(", "),
                group(tokens.get())
            )),
            key,
        );
        Ok(Ok(match paid.amount_total {
            Some(amount) => posting.with_amount_paid(amount),
            None => posting,
        }))
    }

    async fn invoice_credit(
        &self,
        invoice: &InvoicePaid,
        refs: StripeRefs,
    ) -> Result<Plan, FulfilmentError> {
        if let Some(reason) = invoice.billing_reason.as_deref()
            && !matches!(reason, "subscription_create" | "subscription_cycle")
        {
            return Ok(record("not a new subscription period: no tokens"));
        }
        let mut total = 0i64;
        for (price, quantity) in &invoice.lines {
            if let Some(product) = self.catalog.product_of(price)
                && product.kind() == ProductKind::Subscription
            {
                total += product.tokens().get() * quantity.clamp(&1, &100);
            }
        }
        // Every subscription sold here is the token plan: a paid invoice for none of its
        // prices (a price changed in Stripe but not in the settings) is a subscriber going
        // without tokens, kept for an operator rather than passed over.
        let Ok(tokens) = Tokens::new(total) else {
            let prices: Vec<&str> = invoice.lines.iter().map(|(p, _)| p.as_str()).collect();
            return Ok(Plan::Fail(format!(
                "unknown price in invoice {}: {} is not the token plan's",
                invoice.invoice,
                if prices.is_empty() {
                    "a line without a price".to_owned()
                } else {
                    prices.join(", ")
                }
            )));
        };
        let user = match invoice.user {
            Some(user) => Some(user),
            None => match &invoice.customer {
                Some(customer) => self.store.user_of_customer(customer).await?,
                None => None,
            },
        };
        let Some(user) = user else {
            return Ok(Plan::Fail(format!(
                "invoice {} names no user",
                invoice.invoice
            )));
        };
        let key = IdempotencyKey::scoped("stripe:invoice", &invoice.invoice)
            .map_err(|e| EventError::Malformed(e.to_string()))?;
        let posting = Posting::credit(
            user,
            tokens,
            Source::StripeInvoice,
            reason(&format!("Starter monthly ({} tokens)", group(tokens.get()))),
            key,
        )
        .with_stripe(refs);
        let posting = match invoice.amount_paid {
            Some(amount) => posting.with_amount_paid(amount),
            None => posting,
        };
        Ok(Plan::Apply {
            changes: vec![Change::Post(posting)],
            outcome: "credited",
            detail: None,
            releases: vec![format!("invoice:{}", invoice.invoice)],
        })
    }

    /// The purchase a payment intent paid for: a pack directly, or a subscription invoice
    /// found through Stripe. `Err(awaiting)` when it has not been credited yet.
    async fn purchase_of(
        &self,
        payment_intent: &str,
    ) -> Result<Result<LedgerEntry, String>, FulfilmentError> {
        if let Some(purchase) = self
            .store
            .purchase_by_payment_intent(payment_intent)
            .await?
        {
            return Ok(Ok(purchase));
        }
        Ok(
            match self
                .gateway
                .invoice_of_payment_intent(payment_intent)
                .await?
            {
                Some(invoice) => match self.store.purchase_by_object(&invoice).await? {
                    Some(purchase) => Ok(purchase),
                    None => Err(format!("invoice:{invoice}")),
                },
                None => Err(format!("pi:{payment_intent}")),
            },
        )
    }

    async fn refund(
        &self,
        refund: &ChargeRefunded,
        event: &Envelope,
    ) -> Result<Plan, FulfilmentError> {
        let Some(payment_intent) = &refund.payment_intent else {
            return Ok(Plan::Fail(format!(
                "charge {} has no payment intent",
                refund.charge
            )));
        };
        let purchase = match self.purchase_of(payment_intent).await? {
            Ok(purchase) => purchase,
            Err(awaiting) => {
                return Ok(Plan::Defer {
                    detail: format!("refund of {payment_intent} before its purchase was credited"),
                    awaiting,
                });
            }
        };
        let granted = purchase.delta.get();
        // Tokens follow money: the share of the charge refunded so far, rounded down.
        let target = share(granted, refund.amount_refunded, refund.amount);
        let key = IdempotencyKey::scoped(
            "stripe:refund",
            &format!("{}:{}", refund.charge, refund.amount_refunded),
        )
        .map_err(|e| EventError::Malformed(e.to_string()))?;
        Ok(Plan::Apply {
            changes: vec![Change::Reverse(Reversal {
                purchase: purchase.id,
                target: ReversalTarget::Cumulative(target),
                source: Source::StripeRefund,
                reason: reason(&format!("Refund: {}", purchase.reason)),
                key,
                stripe: StripeRefs {
                    event_id: Some(event.id.clone()),
                    object_id: Some(refund.charge.clone()),
                    payment_intent: Some(payment_intent.clone()),
                },
                dispute: None,
            })],
            outcome: "reversed",
            detail: Some(format!(
                "refunded {} of {}: {target} of {granted} tokens in all",
                refund.amount_refunded, refund.amount
            )),
            releases: vec![],
        })
    }

    async fn dispute_opened(
        &self,
        dispute: &DisputeEvent,
        event: &Envelope,
    ) -> Result<Plan, FulfilmentError> {
        let Some(payment_intent) = &dispute.payment_intent else {
            return Ok(Plan::Fail(format!(
                "dispute {} has no payment intent",
                dispute.dispute
            )));
        };
        let purchase = match self.purchase_of(payment_intent).await? {
            Ok(purchase) => purchase,
            Err(awaiting) => {
                return Ok(Plan::Defer {
                    detail: format!("dispute of {payment_intent} before its purchase was credited"),
                    awaiting,
                });
            }
        };
        let granted = purchase.delta.get();
        let tokens = match purchase.amount_paid {
            Some(paid) if paid.minor() > 0 => share(granted, dispute.amount, paid.minor()),
            _ => granted,
        };
        Ok(Plan::Apply {
            changes: vec![Change::Reverse(Reversal {
                purchase: purchase.id,
                target: ReversalTarget::Exactly(tokens),
                source: Source::StripeDispute,
                reason: reason(&format!("Disputed payment: {}", purchase.reason)),
                key: IdempotencyKey::scoped("stripe:dispute", &dispute.dispute)
                    .map_err(|e| EventError::Malformed(e.to_string()))?,
                stripe: StripeRefs {
                    event_id: Some(event.id.clone()),
                    object_id: Some(dispute.dispute.clone()),
                    payment_intent: Some(payment_intent.clone()),
                },
                dispute: Some(dispute.dispute.clone()),
            })],
            outcome: "reversed",
            detail: None,
            releases: vec![],
        })
    }

    /// The success page's check: asks Stripe about the session and credits it if paid (the
    /// same credit, under the same key, as the webhook's: whichever comes first applies).
    pub async fn fulfil_checkout(
        &self,
        session: &str,
        user: UserId,
    ) -> Result<Option<CheckoutStatus>, FulfilmentError> {
        let snapshot = self.gateway.checkout_session(session).await?;
        if snapshot.user != Some(user) {
            return Ok(None);
        }
        if snapshot.mode == "subscription" {
            return Ok(Some(if snapshot.status == "complete" {
                CheckoutStatus::Subscribed
            } else {
                CheckoutStatus::Unpaid
            }));
        }
        let paid = CheckoutPaid {
            session: snapshot.id.clone(),
            user: snapshot.user,
            customer: snapshot.customer.clone(),
            payment_intent: snapshot.payment_intent.clone(),
            amount_total: snapshot.amount_total,
        };
        match snapshot.payment_status.as_str() {
            "paid" => {}
            "unpaid" if snapshot.status == "complete" => {
                // What the payment will add once it clears, for the page to say so.
                let tokens = self
                    .checkout_credit(&paid)
                    .await?
                    .ok()
                    .map(|posting| posting.delta.magnitude());
                return Ok(Some(CheckoutStatus::Pending { tokens }));
            }
            _ => return Ok(Some(CheckoutStatus::Unpaid)),
        }
        let posting = match self.checkout_credit(&paid).await? {
            Ok(posting) => posting.with_stripe(StripeRefs {
                event_id: None,
                object_id: Some(snapshot.id.clone()),
                payment_intent: snapshot.payment_intent.clone(),
            }),
            Err(why) => {
                tracing::error!(session, %why, "a paid checkout session cannot be credited");
                return Ok(Some(CheckoutStatus::Unpaid));
            }
        };
        let posted = match self.store.post(posting).await {
            Ok(posted) => posted,
            // The webhook credited it first, with its own event id: the same credit.
            Err(StoreError::Ledger(LedgerError::IdempotencyConflict { existing })) => {
                return Ok(Some(CheckoutStatus::Credited { entry: *existing }));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(payment_intent) = &snapshot.payment_intent {
            self.release_logged(&format!("pi:{payment_intent}")).await;
        }
        Ok(Some(CheckoutStatus::Credited {
            entry: posted.entry,
        }))
    }
}

fn record(detail: &str) -> Plan {
    Plan::Apply {
        changes: vec![],
        outcome: "recorded",
        detail: Some(detail.to_owned()),
        releases: vec![],
    }
}

fn summarise(applied: &[Applied], outcome: &'static str, detail: Option<String>) -> Outcome {
    for change in applied {
        if let Applied::Posted(posted) = change {
            if posted.replayed {
                return Outcome::AlreadyApplied;
            }
            return if posted.entry.delta.is_increase() {
                Outcome::Credited(posted.entry.clone())
            } else {
                Outcome::Reversed(posted.entry.clone())
            };
        }
        if let Applied::Covered = change {
            return Outcome::Covered;
        }
    }
    match outcome {
        "ignored" => Outcome::Ignored("not an event billing acts on"),
        _ => {
            let _ = detail;
            Outcome::Recorded("state recorded")
        }
    }
}

/// `whole × part / of`, rounded down, in exact integers; capped at `whole`.
fn share(whole: i64, part: i64, of: i64) -> i64 {
    if of <= 0 || part <= 0 {
        return 0;
    }
    let part = part.min(of);
    i64::try_from(i128::from(whole) * i128::from(part) / i128::from(of)).unwrap_or(whole)
}

/// A ledger reason made by this module: always valid, bounded.
fn reason(text: &str) -> Reason {
    let bounded: String = text.chars().take(Reason::MAX_CHARS).collect();
    Reason::parse(&bounded).unwrap_or_else(|_| Reason::parse("Stripe").expect("a valid literal"))
}

fn group(n: i64) -> String {
    crate::domain::Balance::new(n).map_or_else(|_| n.to_string(), |b| b.grouped())
}

#[cfg(test)]
mod tests;
