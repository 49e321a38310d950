//! Refunds and disputes: news of a purchase's charge, which the store weighs with what it
//! already knows of it (see `store::sql::reversals` for the shares the money says).

use crate::domain::LedgerEntry;
use crate::ledger::StripeRefs;
use crate::store::{Awaiting, Change, DisputeNews, ReversalReasons, ReversalSync};
use crate::stripe::events::{self, DisputeEvent, DisputeStatus, Envelope, RefundsChanged};

use super::invoices::InvoiceTokens;
use super::{Plan, Purchase, reason};
use crate::fulfilment::{Fulfilment, FulfilmentError, Outcome};

/// What a refund or a dispute found of the purchase it is about.
enum Found {
    Purchase(LedgerEntry),
    /// Not credited yet: wait for it.
    Wait(Awaiting),
    /// The payment bought no tokens (an invoice of a plan change, a one-off): nothing to take.
    NothingBought,
}

impl Fulfilment {
    /// Any news of a charge's refunds: Stripe is asked for all of them as they are now, and
    /// the tokens follow the money (a failed refund's come back).
    pub(super) async fn refunds(
        &self,
        news: &RefundsChanged,
        event: &Envelope,
    ) -> Result<Plan, FulfilmentError> {
        let state = self.gateway.charge_refunds(&news.charge).await?;
        let Some(payment_intent) = news
            .payment_intent
            .clone()
            .or_else(|| state.payment_intent.clone())
        else {
            return Ok(Plan::Fail(format!(
                "charge {} has no payment intent",
                news.charge
            )));
        };
        let purchase = match self.found(&payment_intent).await? {
            Found::Purchase(purchase) => purchase,
            Found::Wait(awaiting) => {
                return Ok(Plan::Defer {
                    detail: format!("refund of {payment_intent} before its purchase was credited"),
                    awaiting,
                });
            }
            Found::NothingBought => return Ok(Plan::record(NOTHING_BOUGHT)),
        };
        let refunded: i64 = state
            .refunds
            .iter()
            .filter(|r| r.status.returns_money())
            .map(|r| r.amount)
            .sum();
        Ok(Plan::Apply {
            detail: Some(format!("refunded {refunded} of {}", state.amount)),
            changes: vec![Change::SyncReversals(ReversalSync {
                purchase: purchase.id,
                user: purchase.user_id,
                charge: news.charge.clone(),
                charge_amount: state.amount,
                refunds: Some(state.refunds),
                dispute: None,
                reasons: reasons(&purchase),
                stripe: refs(event, &news.charge, &payment_intent),
            })],
            intent: Outcome::Reversed(()),
            releases: None,
        })
    }

    /// Where a dispute stands. A chargeback takes the disputed share while the bank holds
    /// the money; a loss keeps it (less what had been refunded); a win gives it back; an
    /// inquiry takes nothing.
    pub(super) async fn dispute(
        &self,
        dispute: &DisputeEvent,
        event: &Envelope,
    ) -> Result<Plan, FulfilmentError> {
        let (Some(charge), Some(payment_intent)) = (&dispute.charge, &dispute.payment_intent)
        else {
            return Ok(Plan::Fail(format!(
                "dispute {} names no charge or payment intent",
                dispute.dispute
            )));
        };
        let purchase = match self.found(payment_intent).await? {
            Found::Purchase(purchase) => purchase,
            Found::Wait(awaiting) => {
                return Ok(Plan::Defer {
                    detail: format!("dispute of {payment_intent} before its purchase was credited"),
                    awaiting,
                });
            }
            Found::NothingBought => return Ok(Plan::record(NOTHING_BOUGHT)),
        };
        let charged = match purchase.amount_paid {
            Some(paid) if paid.minor() > 0 => paid.minor(),
            _ => self.gateway.charge_refunds(charge).await?.amount,
        };
        let intent = match &dispute.status {
            status if status.takes() => Outcome::Reversed(()),
            DisputeStatus::Won => Outcome::Credited(()),
            DisputeStatus::Inquiry => Outcome::Recorded("a dispute inquiry: no money was taken"),
            _ => Outcome::Recorded("the dispute's state was recorded"),
        };
        Ok(Plan::apply(
            vec![Change::SyncReversals(ReversalSync {
                purchase: purchase.id,
                user: purchase.user_id,
                charge: charge.clone(),
                charge_amount: charged,
                refunds: None,
                dispute: Some(DisputeNews {
                    dispute: dispute.dispute.clone(),
                    status: dispute.status.clone(),
                    amount: dispute.amount,
                }),
                reasons: reasons(&purchase),
                stripe: refs(event, &dispute.dispute, payment_intent),
            })],
            intent,
        ))
    }

    /// The purchase a payment paid for, or what to wait for, or that it bought nothing.
    async fn found(&self, payment_intent: &str) -> Result<Found, FulfilmentError> {
        Ok(match self.purchase_of(payment_intent).await? {
            Purchase::Credited(purchase) => Found::Purchase(purchase),
            Purchase::NotYet(Awaiting::Invoice(invoice)) => {
                // An invoice not credited: one that never will be (it bought no tokens) would
                // hold its refunds and disputes back forever.
                let object = self.gateway.invoice(&invoice).await?;
                match events::invoice(&object) {
                    Ok(read) => match self.invoice_tokens(&read).await? {
                        InvoiceTokens::Nothing(_) | InvoiceTokens::Trial(..) => {
                            Found::NothingBought
                        }
                        InvoiceTokens::Period(..) | InvoiceTokens::Refused(_) => {
                            Found::Wait(Awaiting::Invoice(invoice))
                        }
                    },
                    Err(_) => Found::Wait(Awaiting::Invoice(invoice)),
                }
            }
            Purchase::NotYet(awaiting) => Found::Wait(awaiting),
        })
    }
}

const NOTHING_BOUGHT: &str = "the payment bought no tokens: nothing to take back";

fn reasons(purchase: &LedgerEntry) -> ReversalReasons {
    ReversalReasons {
        purchase: reason(&purchase.reason),
    }
}

fn refs(event: &Envelope, object: &str, payment_intent: &str) -> StripeRefs {
    StripeRefs {
        event_id: Some(event.id.clone()),
        object_id: Some(object.to_owned()),
        payment_intent: Some(payment_intent.to_owned()),
    }
}
