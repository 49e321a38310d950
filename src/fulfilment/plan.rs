//! What an event does: the changes to make in one transaction, decided before it begins, from
//! the event, the catalog, the store and (for what payloads do not carry) Stripe itself.

use crate::domain::{IdempotencyKey, LedgerEntry, ProductKind, Reason, Source, Tokens, UserId};
use crate::ledger::{Posting, StripeRefs, share_of};
use crate::store::{Awaiting, Change, DisputeChange, DisputeTake, RefundSync, SubscriptionRecord};
use crate::stripe::events::{
    self, DisputeEvent, DisputeStatus, Effect, Envelope, EventError, InvoicePaid, RefundsChanged,
    SubscriptionState,
};

use super::{Fulfilment, FulfilmentError};

/// What to do with an event.
pub(super) enum Plan {
    Apply {
        changes: Vec<Change>,
        intent: Intent,
        detail: Option<String>,
        /// The purchase this credits, whose held-back events may apply after it.
        releases: Option<Awaiting>,
    },
    Defer {
        awaiting: Awaiting,
        detail: String,
    },
    Fail(String),
}

/// What a plan means to do, which names its outcome when the store changes no tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Intent {
    Credit,
    Reverse,
    Record(&'static str),
    Ignore(&'static str),
}

impl Intent {
    /// The outcome kept in the inbox.
    pub(super) fn label(self) -> &'static str {
        match self {
            Intent::Credit => "credited",
            Intent::Reverse => "reversed",
            Intent::Record(_) => "recorded",
            Intent::Ignore(_) => "ignored",
        }
    }
}

impl Plan {
    fn apply(changes: Vec<Change>, intent: Intent) -> Self {
        Plan::Apply {
            changes,
            intent,
            detail: None,
            releases: None,
        }
    }

    fn record(what: &'static str) -> Self {
        Plan::Apply {
            changes: vec![],
            intent: Intent::Record(what),
            detail: Some(what.to_owned()),
            releases: None,
        }
    }
}

/// A credit to make for a payment, or why it cannot be made as things stand.
pub(super) enum Credit {
    Post(Posting),
    Refused(String),
}

impl Fulfilment {
    pub(super) async fn plan_for(&self, event: &Envelope) -> Result<Plan, FulfilmentError> {
        let effect = match events::interpret(event) {
            Ok(effect) => effect,
            Err(e) => return Ok(Plan::Fail(e.to_string())),
        };
        let refs = |object: &str, payment_intent: Option<&String>| StripeRefs {
            event_id: Some(event.id.clone()),
            object_id: Some(object.to_owned()),
            payment_intent: payment_intent.cloned(),
        };
        Ok(match effect {
            Effect::CheckoutPaid(paid) => match self.checkout_credit(&paid).await? {
                Credit::Post(posting) => {
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
                        intent: Intent::Credit,
                        detail: None,
                        releases: paid.payment_intent.map(Awaiting::PaymentIntent),
                    }
                }
                Credit::Refused(why) => Plan::Fail(why),
            },
            Effect::CheckoutAwaitingPayment { .. } => {
                Plan::record("checkout completed; waiting for an asynchronous payment")
            }
            Effect::CheckoutPaymentFailed { .. } => {
                Plan::record("the asynchronous payment failed; nothing was credited")
            }
            Effect::SubscriptionCheckout { user, customer, .. } => Plan::apply(
                match (user, customer) {
                    (Some(user), Some(customer)) => vec![Change::LinkCustomer { user, customer }],
                    _ => vec![],
                },
                Intent::Record("subscription checkout: tokens come with each paid invoice"),
            ),
            Effect::InvoicePaid(invoice) => {
                let refs = refs(&invoice.invoice, None);
                self.invoice_credit(&invoice, refs).await?
            }
            Effect::RefundsChanged(refunds) => self.refunds(&refunds, event).await?,
            Effect::Dispute(dispute) => self.dispute(&dispute, event).await?,
            Effect::SubscriptionChanged(state) => self.subscription(state).await?,
            Effect::Ignore { why } => Plan::apply(vec![], Intent::Ignore(why)),
        })
    }

    /// Our user: the one an object names in its metadata, else the customer's.
    pub(super) async fn user_of(
        &self,
        named: Option<UserId>,
        customer: Option<&str>,
    ) -> Result<Option<UserId>, FulfilmentError> {
        Ok(match (named, customer) {
            (Some(user), _) => Some(user),
            (None, Some(customer)) => self.store.user_of_customer(customer).await?,
            (None, None) => None,
        })
    }

    async fn invoice_credit(
        &self,
        invoice: &InvoicePaid,
        refs: StripeRefs,
    ) -> Result<Plan, FulfilmentError> {
        if let Some(reason) = invoice.billing_reason.as_deref()
            && !matches!(reason, "subscription_create" | "subscription_cycle")
        {
            return Ok(Plan::record("not a new subscription period: no tokens"));
        }
        // The plan's tokens, times the seats of the new period. Prorations (a change within a
        // period) and time given back credit nothing: the period line says what was bought.
        let mut total = 0i64;
        for line in invoice
            .lines
            .iter()
            .filter(|l| !l.proration && l.amount >= 0)
        {
            if let Some(product) = self.catalog.product_of(&line.price)
                && product.kind() == ProductKind::Subscription
            {
                total += product.tokens().get() * line.quantity.clamp(1, 100);
            }
        }
        let Some(paid) = invoice.total else {
            return Ok(Plan::Fail(format!(
                "invoice {} says nothing of its total",
                invoice.invoice
            )));
        };
        let user = self
            .user_of(invoice.user, invoice.customer.as_deref())
            .await?;
        if paid <= 0 {
            // A trial or a 100% coupon: no money, so no tokens, unless a trial allowance is
            // offered, once per customer, under its own source.
            return Ok(
                match (
                    self.catalog.trial_allowance(),
                    user,
                    invoice.billing_reason.as_deref(),
                ) {
                    (Some(tokens), Some(user), Some("subscription_create")) if total > 0 => {
                        let once_for = invoice.customer.clone().unwrap_or_else(|| user.to_string());
                        let key = IdempotencyKey::scoped("stripe:trial", &once_for)
                            .map_err(|e| EventError::Malformed(e.to_string()))?;
                        let posting = Posting::credit(
                            user,
                            tokens,
                            Source::Trial,
                            reason(&format!("Trial allowance ({} tokens)", group(tokens.get()))),
                            key,
                        )
                        .with_stripe(refs);
                        Plan::apply(vec![Change::Post(posting)], Intent::Credit)
                    }
                    _ => Plan::record("nothing was paid (a trial or a 100% coupon): no tokens"),
                },
            );
        }
        // Every subscription sold here is the token plan: a paid invoice for none of its
        // prices (a price changed in Stripe but not in the settings) is a subscriber going
        // without tokens, kept for an operator rather than passed over.
        let Ok(tokens) = Tokens::new(total) else {
            let prices: Vec<&str> = invoice.lines.iter().map(|l| l.price.as_str()).collect();
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
            intent: Intent::Credit,
            detail: None,
            releases: Some(Awaiting::Invoice(invoice.invoice.clone())),
        })
    }

    /// The purchase a payment intent paid for: a pack directly, or a subscription invoice
    /// found through Stripe. `Err` names what to wait for when it is not credited yet.
    async fn purchase_of(
        &self,
        payment_intent: &str,
    ) -> Result<Result<LedgerEntry, Awaiting>, FulfilmentError> {
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
                    None => Err(Awaiting::Invoice(invoice)),
                },
                None => Err(Awaiting::PaymentIntent(payment_intent.to_owned())),
            },
        )
    }

    /// Any news of a charge's refunds: Stripe is asked for all of them as they are now, and
    /// the tokens follow the money (a failed refund's come back).
    async fn refunds(
        &self,
        news: &RefundsChanged,
        event: &Envelope,
    ) -> Result<Plan, FulfilmentError> {
        let mut fetched = None;
        let payment_intent = match &news.payment_intent {
            Some(pi) => pi.clone(),
            None => {
                let state = self.gateway.charge_refunds(&news.charge).await?;
                let Some(pi) = state.payment_intent.clone() else {
                    return Ok(Plan::Fail(format!(
                        "charge {} has no payment intent",
                        news.charge
                    )));
                };
                fetched = Some(state);
                pi
            }
        };
        let purchase = match self.purchase_of(&payment_intent).await? {
            Ok(purchase) => purchase,
            Err(awaiting) => {
                return Ok(Plan::Defer {
                    detail: format!("refund of {payment_intent} before its purchase was credited"),
                    awaiting,
                });
            }
        };
        let state = match fetched {
            Some(state) => state,
            None => self.gateway.charge_refunds(&news.charge).await?,
        };
        let refunded: i64 = state
            .refunds
            .iter()
            .filter(|r| r.status.returns_money())
            .map(|r| r.amount)
            .sum();
        let detail = format!(
            "refunded {refunded} of {}: {} of {} tokens in all",
            state.amount,
            share_of(purchase.delta.get(), refunded, state.amount),
            purchase.delta.get()
        );
        Ok(Plan::Apply {
            changes: vec![Change::SyncRefunds(RefundSync {
                purchase: purchase.id,
                charge: news.charge.clone(),
                charge_amount: state.amount,
                refunds: state.refunds,
                taken: reason(&format!("Refund: {}", purchase.reason)),
                given_back: reason(&format!(
                    "Refund failed, tokens restored: {}",
                    purchase.reason
                )),
                stripe: StripeRefs {
                    event_id: Some(event.id.clone()),
                    object_id: Some(news.charge.clone()),
                    payment_intent: Some(payment_intent),
                },
            })],
            intent: Intent::Reverse,
            detail: Some(detail),
            releases: None,
        })
    }

    /// Where a dispute stands. A chargeback (or a loss, for an endpoint that never heard of
    /// the withdrawal) takes the disputed share once; a win gives it back once.
    async fn dispute(
        &self,
        dispute: &DisputeEvent,
        event: &Envelope,
    ) -> Result<Plan, FulfilmentError> {
        let key = |scope| {
            IdempotencyKey::scoped(scope, &dispute.dispute)
                .map_err(|e| EventError::Malformed(e.to_string()))
        };
        let take = if dispute.status.takes() {
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
                        detail: format!(
                            "dispute of {payment_intent} before its purchase was credited"
                        ),
                        awaiting,
                    });
                }
            };
            let granted = purchase.delta.get();
            let tokens = match purchase.amount_paid {
                Some(paid) if paid.minor() > 0 => share_of(granted, dispute.amount, paid.minor()),
                _ => granted,
            };
            Tokens::new(tokens).ok().map(|tokens| DisputeTake {
                purchase: purchase.id,
                tokens,
                reason: reason(&format!("Disputed payment: {}", purchase.reason)),
                stripe: StripeRefs {
                    event_id: Some(event.id.clone()),
                    object_id: Some(dispute.dispute.clone()),
                    payment_intent: Some(payment_intent.clone()),
                },
            })
        } else {
            None
        };
        let intent = match &dispute.status {
            status if status.takes() => Intent::Reverse,
            DisputeStatus::Won => Intent::Credit,
            DisputeStatus::Inquiry => Intent::Record("a dispute inquiry: no money was taken"),
            _ => Intent::Record("the dispute's state was recorded"),
        };
        Ok(Plan::apply(
            vec![Change::Dispute(DisputeChange {
                dispute: dispute.dispute.clone(),
                status: dispute.status.clone(),
                take_key: key("stripe:dispute")?,
                take,
                give_back_key: key("stripe:dispute-won")?,
                give_back_reason: reason("Dispute won: tokens restored"),
            })],
            intent,
        ))
    }

    /// A subscription's state. Stripe times events to the second: two that carry the same
    /// second and disagree (`created` incomplete, `updated` active) cannot be ordered by
    /// their time, so Stripe is asked how the subscription is now.
    async fn subscription(&self, state: SubscriptionState) -> Result<Plan, FulfilmentError> {
        let Some(user) = self.user_of(state.user, Some(&state.customer)).await? else {
            return Ok(Plan::Fail(format!(
                "no user is linked to customer {}",
                state.customer
            )));
        };
        let mut record = SubscriptionRecord {
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
        };
        if let Some(stored) = self.store.subscription(&record.subscription).await?
            && stored.as_of == record.as_of
            && stored != record
        {
            let now = self.gateway.subscription(&record.subscription).await?;
            record.status = now.status;
            record.price = now.price.or(record.price);
            record.current_period_end = now.current_period_end.or(record.current_period_end);
            record.cancel_at_period_end = now.cancel_at_period_end;
            record.cancel_at = now.cancel_at;
            record.canceled_at = now.canceled_at;
        }
        Ok(Plan::apply(
            vec![Change::Subscription(record)],
            Intent::Record("state recorded"),
        ))
    }
}

/// A ledger reason made by this module: always valid, bounded.
pub(super) fn reason(text: &str) -> Reason {
    let bounded: String = text.chars().take(Reason::MAX_CHARS).collect();
    Reason::parse(&bounded).unwrap_or_else(|_| Reason::parse("Stripe").expect("a valid literal"))
}

pub(super) fn group(n: i64) -> String {
    crate::domain::Balance::new(n).map_or_else(|_| n.to_string(), |b| b.grouped())
}
