//! A Checkout payment's credit, and the success page's own check of it: the page asks Stripe
//! about the session instead of waiting for the webhook, and credits it under the same key,
//! so whichever comes first applies and the other finds it done.

use crate::domain::{IdempotencyKey, LedgerEntry, ProductKind, Source, Tokens, UserId};
use crate::ledger::{LedgerError, Posting, StripeRefs};
use crate::store::{Awaiting, StoreError};
use crate::stripe::events::{CheckoutPaid, EventError};
use crate::stripe::status::{CheckoutMode, PaymentStatus, SessionStatus};

use super::plan::{Credit, group, reason};
use super::{Fulfilment, FulfilmentError};

/// The state of a Checkout session, as the success page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutStatus {
    /// Paid; the tokens are in the ledger.
    Credited { entry: LedgerEntry },
    /// A subscription: tokens come with its paid invoice.
    Subscribed,
    /// An asynchronous payment method has not paid yet; `tokens` come when it does.
    Pending { tokens: Option<Tokens> },
    /// Not paid (abandoned, expired), or nothing to pay.
    Unpaid,
}

impl Fulfilment {
    /// The credit a paid Checkout session grants, from its line items (never from metadata).
    pub(super) async fn checkout_credit(
        &self,
        paid: &CheckoutPaid,
    ) -> Result<Credit, FulfilmentError> {
        let Some(user) = self.user_of(paid.user, paid.customer.as_deref()).await? else {
            return Ok(Credit::Refused(format!(
                "checkout session {} names no user",
                paid.session
            )));
        };
        let items = self.gateway.checkout_line_items(&paid.session).await?;
        let mut total = 0i64;
        let mut labels = Vec::new();
        for item in &items {
            let Some(product) = self.catalog.product_of(&item.price) else {
                return Ok(Credit::Refused(format!(
                    "unknown price {} in checkout session {}",
                    item.price, paid.session
                )));
            };
            if product.kind() != ProductKind::Pack {
                return Ok(Credit::Refused(format!(
                    "price {} is not a token pack",
                    item.price
                )));
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
            return Ok(Credit::Refused(format!(
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
        )
        .expiring(self.catalog.pack_terms());
        Ok(Credit::Post(Box::new(match paid.amount_total {
            Some(amount) => posting.with_amount_paid(amount),
            None => posting,
        })))
    }

    /// The success page's check: asks Stripe about the session and credits it if paid.
    pub async fn fulfil_checkout(
        &self,
        session: &str,
        user: UserId,
    ) -> Result<Option<CheckoutStatus>, FulfilmentError> {
        let snapshot = self.gateway.checkout_session(session).await?;
        if snapshot.user != Some(user) {
            return Ok(None);
        }
        if snapshot.mode == CheckoutMode::Subscription {
            return Ok(Some(if snapshot.status == Some(SessionStatus::Complete) {
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
        match snapshot.payment_status {
            PaymentStatus::Paid => {}
            PaymentStatus::Unpaid if snapshot.status == Some(SessionStatus::Complete) => {
                // What the payment will add once it clears, for the page to say so.
                let tokens = match self.checkout_credit(&paid).await? {
                    Credit::Post(posting) => Some(posting.delta.magnitude()),
                    Credit::Refused(_) => None,
                };
                return Ok(Some(CheckoutStatus::Pending { tokens }));
            }
            _ => return Ok(Some(CheckoutStatus::Unpaid)),
        }
        let posting = match self.checkout_credit(&paid).await? {
            Credit::Post(posting) => (*posting).with_stripe(StripeRefs {
                event_id: None,
                object_id: Some(snapshot.id.clone()),
                payment_intent: snapshot.payment_intent.clone(),
            }),
            Credit::Refused(why) => {
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
            self.release(&Awaiting::PaymentIntent(payment_intent.clone()))
                .await;
        }
        Ok(Some(CheckoutStatus::Credited {
            entry: posted.entry,
        }))
    }
}
