//! Auto top-up's payments: a started top-up paid with the user's saved card while they are
//! away, within the month's cap, and credited by the same posting whether the server's own
//! path (Stripe's answer) or Stripe's `payment_intent.succeeded` webhook comes first.

use crate::domain::{IdempotencyKey, Month, ProductId, Source, Tokens, UserId};
use crate::ledger::{Posting, StripeRefs};
use crate::store::{Change, DueTopUp, Unpaid};
use crate::stripe::events::EventError;
use crate::stripe::{OffSessionOutcome, OffSessionPayment};

use super::plan::{Plan, group, reason};
use super::{Fulfilment, FulfilmentError, Outcome};

/// How paying a top-up went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopUpResult {
    /// Paid, and its tokens credited (`replayed`: by the webhook, before).
    Credited { tokens: Tokens, replayed: bool },
    /// The bank said no, or asked for the cardholder: auto top-up paused.
    Failed(crate::domain::PauseReason),
    /// It would have passed the month's cap: nothing charged.
    Capped,
    /// Auto top-up was turned off while it waited: nothing charged.
    Canceled,
    /// Settled before (another node, or the webhook).
    AlreadySettled,
}

impl Fulfilment {
    /// Pays a claimed top-up. A failure to reach Stripe is an error, and the top-up stays
    /// pending: once its claim runs out it is paid again, with the same idempotency key, so
    /// Stripe answers as it did the first time and nothing is charged twice.
    pub async fn pay_topup(&self, due: &DueTopUp) -> Result<TopUpResult, FulfilmentError> {
        // Right before charging: turned off (or settled by another path) meanwhile, nothing.
        match self.store.topup(due.id).await? {
            Some((_, topup)) if topup.state == crate::domain::TopUpState::Pending => {}
            _ => return Ok(TopUpResult::AlreadySettled),
        }
        let on = self
            .store
            .auto_topup(due.user)
            .await?
            .is_some_and(|auto| auto.state == crate::domain::AutoTopUpState::On);
        if !on {
            return self.unpaid(due, Unpaid::Canceled, None).await;
        }
        let tokens = due.pack.tokens();
        let month = Month::of(due.created_at);
        let so_far = self.store.topped_up_since(due.user, month.start()).await?;
        if so_far + tokens.get() > due.monthly_cap {
            return self.unpaid(due, Unpaid::Capped, None).await;
        }
        let (Some(card), Some(customer)) = (&due.card, &due.customer) else {
            // Auto top-up is on only with a card saved for a Stripe customer.
            tracing::error!(
                topup = due.id,
                "a top-up without a saved card or a customer"
            );
            return self
                .unpaid(
                    due,
                    Unpaid::Failed(crate::domain::PauseReason::Declined),
                    None,
                )
                .await;
        };
        let price = self.catalog.price_id(due.pack).ok_or_else(|| {
            FulfilmentError::Gateway(crate::stripe::GatewayError::Refused(format!(
                "no price for the {} pack",
                due.pack.as_str()
            )))
        })?;
        let amount = self.gateway.price(price).await?.ok_or_else(|| {
            FulfilmentError::Gateway(crate::stripe::GatewayError::Refused(format!(
                "price {price} has no fixed amount"
            )))
        })?;
        let charged = self
            .gateway
            .charge_saved_card(&OffSessionPayment {
                user: due.user,
                customer: customer.clone(),
                payment_method: card.payment_method.clone(),
                amount,
                topup: due.id,
                // With the moment it started: a database restored or reset against the same
                // Stripe account never meets a key of the top-ups it forgot.
                idempotency_key: format!("topup-{}-{}", due.id, due.created_at.as_millis()),
            })
            .await;
        let outcome = match charged {
            Ok(outcome) => outcome,
            // Stripe refused the payment itself (the card detached in the portal, the customer
            // deleted): it never will take it; the user is told to save a card again.
            Err(crate::stripe::GatewayError::Refused(why)) => {
                tracing::warn!(topup = due.id, why, "Stripe refused a top-up's payment");
                return self
                    .unpaid(
                        due,
                        Unpaid::Failed(crate::domain::PauseReason::Declined),
                        None,
                    )
                    .await;
            }
            Err(unavailable) => return Err(unavailable.into()),
        };
        match outcome {
            OffSessionOutcome::Succeeded { payment_intent } => {
                let credit = self
                    .topup_credit(due.user, due.pack, &payment_intent)?
                    .with_amount_paid(amount);
                let posted = self
                    .store
                    .credit_topup(credit, due.id, &payment_intent, tokens)
                    .await?;
                Ok(TopUpResult::Credited {
                    tokens,
                    replayed: posted.replayed,
                })
            }
            OffSessionOutcome::Failed {
                payment_intent,
                reason,
                message,
            } => {
                tracing::info!(
                    topup = due.id,
                    reason = reason.as_str(),
                    message,
                    "a top-up was not paid"
                );
                self.unpaid(due, Unpaid::Failed(reason), payment_intent.as_deref())
                    .await
            }
        }
    }

    async fn unpaid(
        &self,
        due: &DueTopUp,
        unpaid: Unpaid,
        payment_intent: Option<&str>,
    ) -> Result<TopUpResult, FulfilmentError> {
        let settled = self
            .store
            .settle_unpaid_topup(due.id, unpaid, payment_intent)
            .await?;
        Ok(match (settled, unpaid) {
            (false, _) => TopUpResult::AlreadySettled,
            (true, Unpaid::Capped) => TopUpResult::Capped,
            (true, Unpaid::Canceled) => TopUpResult::Canceled,
            (true, Unpaid::Failed(reason)) => TopUpResult::Failed(reason),
        })
    }

    /// `payment_intent.succeeded` of a top-up: the same credit as [`Fulfilment::pay_topup`]'s,
    /// for the top-up the payment names, if it is the user's the metadata says.
    pub(super) async fn topup_paid(
        &self,
        payment_intent: &str,
        topup: i64,
        user: Option<UserId>,
        refs: StripeRefs,
    ) -> Result<Plan, FulfilmentError> {
        let Some((owner, found)) = self.store.topup(topup).await? else {
            return Ok(Plan::Fail(format!(
                "payment {payment_intent} names top-up {topup}, which does not exist"
            )));
        };
        if user.is_some_and(|user| user != owner) {
            return Ok(Plan::Fail(format!(
                "payment {payment_intent} names top-up {topup} of another user"
            )));
        }
        let credit = self
            .topup_credit(owner, found.pack, payment_intent)?
            .with_stripe(refs);
        Ok(Plan::apply(
            vec![
                Change::Post(credit),
                Change::TopUpPaid {
                    topup,
                    payment_intent: payment_intent.to_owned(),
                    tokens: found.pack.tokens(),
                },
            ],
            Outcome::Credited(()),
        ))
    }
}

impl Fulfilment {
    /// A setup-mode Checkout completed: its card becomes auto top-up's, as the billing page
    /// makes it when the user comes back (whichever comes second changes nothing).
    pub(super) async fn card_saved(
        &self,
        session: &str,
        user: Option<UserId>,
        customer: Option<&str>,
    ) -> Result<Plan, FulfilmentError> {
        let Some(user) = self.user_of(user, customer).await? else {
            return Ok(Plan::Fail(format!("setup session {session} names no user")));
        };
        let Some(setup) = self.gateway.saved_card(session).await? else {
            return Ok(Plan::record("the setup session saved no card"));
        };
        let theirs = self.store.customer_of(user).await?;
        if setup.user.is_some_and(|named| named != user)
            || setup.customer.is_none()
            || setup.customer != theirs
        {
            return Ok(Plan::Fail(format!(
                "setup session {session} is not its user's customer's"
            )));
        }
        Ok(Plan::apply(
            vec![Change::SaveTopUpCard {
                user,
                card: setup.card,
                as_of: setup.created,
            }],
            Outcome::Recorded("card saved for auto top-up"),
        ))
    }

    /// A top-up's credit, keyed by its payment intent (so the two paths post it once), naming it
    /// (so a refund or a dispute of its charge finds it), expiring as packs do.
    fn topup_credit(
        &self,
        user: UserId,
        pack: ProductId,
        payment_intent: &str,
    ) -> Result<Posting, FulfilmentError> {
        let key = IdempotencyKey::scoped("stripe:topup", payment_intent)
            .map_err(|e| EventError::Malformed(e.to_string()))?;
        let tokens = pack.tokens();
        Ok(Posting::credit(
            user,
            tokens,
            Source::AutoTopUp,
            reason(&format!(
                "Auto top-up: {} ({} tokens)",
                pack.label(),
                group(tokens.get())
            )),
            key,
        )
        .expiring(self.catalog.pack_terms())
        .with_stripe(StripeRefs {
            event_id: None,
            object_id: Some(payment_intent.to_owned()),
            payment_intent: Some(payment_intent.to_owned()),
        }))
    }
}
