//! What an event does: the changes to make in one transaction, decided before it begins, from
//! the event, the catalog, the store and (for what payloads do not carry) Stripe itself.
//!
//! One file a kind of event: [`invoices`] (a plan's periods), [`reversals`] (refunds and
//! disputes), [`subscriptions`] (their state); Checkout payments are in `super::checkout`.

mod invoices;
mod reversals;
mod subscriptions;

use crate::domain::{LedgerEntry, Reason, UserId};
use crate::ledger::{Posting, StripeRefs};
use crate::store::{Awaiting, Change};
use crate::stripe::events::{self, Effect, Envelope};

use super::{Fulfilment, FulfilmentError, Outcome};

/// What to do with an event.
pub(super) enum Plan {
    Apply {
        changes: Vec<Change>,
        /// The outcome it means to come to: `Credited` or `Reversed` for changes of tokens
        /// (the store may find them covered), else what it records or ignores.
        intent: Outcome<()>,
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

impl Plan {
    pub(super) fn apply(changes: Vec<Change>, intent: Outcome<()>) -> Self {
        Plan::Apply {
            changes,
            intent,
            detail: None,
            releases: None,
        }
    }

    pub(super) fn record(what: &'static str) -> Self {
        Plan::Apply {
            changes: vec![],
            intent: Outcome::Recorded(what),
            detail: Some(what.to_owned()),
            releases: None,
        }
    }
}

/// A credit to make for a payment, or why it cannot be made as things stand.
pub(super) enum Credit {
    Post(Box<Posting>),
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
                        (*posting).with_stripe(refs(&paid.session, paid.payment_intent.as_ref()));
                    let mut changes = vec![Change::Post(posting)];
                    if let (Some(user), Some(customer)) = (paid.user, &paid.customer) {
                        changes.push(Change::LinkCustomer {
                            user,
                            customer: customer.clone(),
                        });
                    }
                    Plan::Apply {
                        changes,
                        intent: Outcome::Credited(()),
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
                Outcome::Recorded("subscription checkout: tokens come with each paid invoice"),
            ),
            Effect::InvoicePaid(invoice) => {
                let refs = refs(&invoice.invoice, None);
                self.invoice_credit(&invoice, refs).await?
            }
            Effect::RefundsChanged(refunds) => self.refunds(&refunds, event).await?,
            Effect::Dispute(dispute) => self.dispute(&dispute, event).await?,
            Effect::SubscriptionChanged(state) => self.subscription(state).await?,
            Effect::CardSaved {
                session,
                user,
                customer,
            } => self.card_saved(&session, user, customer.as_deref()).await?,
            Effect::TopUpPaid {
                payment_intent,
                topup,
                user,
            } => {
                let refs = refs(&payment_intent, Some(&payment_intent));
                self.topup_paid(&payment_intent, topup, user, refs).await?
            }
            Effect::Ignore { why } => Plan::apply(vec![], Outcome::Ignored(why)),
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

    /// The purchase a payment intent paid for: a pack directly, or a subscription invoice
    /// found through Stripe; when it is not credited yet, what to wait for.
    pub(super) async fn purchase_of(
        &self,
        payment_intent: &str,
    ) -> Result<Purchase, FulfilmentError> {
        if let Some(purchase) = self
            .store
            .purchase_by_payment_intent(payment_intent)
            .await?
        {
            return Ok(Purchase::Credited(purchase));
        }
        Ok(
            match self
                .gateway
                .invoice_of_payment_intent(payment_intent)
                .await?
            {
                Some(invoice) => match self.store.purchase_by_object(&invoice).await? {
                    Some(purchase) => Purchase::Credited(purchase),
                    None => Purchase::NotYet(Awaiting::Invoice(invoice)),
                },
                None => Purchase::NotYet(Awaiting::PaymentIntent(payment_intent.to_owned())),
            },
        )
    }
}

/// The purchase a payment paid for, as things stand.
pub(super) enum Purchase {
    /// In the ledger.
    Credited(LedgerEntry),
    /// Not credited yet: the purchase to wait for (the pack's payment intent, or the invoice
    /// the payment paid).
    NotYet(Awaiting),
}

/// A ledger reason made by this module: always valid, bounded.
pub(super) fn reason(text: &str) -> Reason {
    Reason::made_from(text)
}

pub(super) fn group(n: i64) -> String {
    crate::domain::Balance::new(n).map_or_else(|_| n.to_string(), |b| b.grouped())
}
