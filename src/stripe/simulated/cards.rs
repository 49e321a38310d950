//! Cards saved for later: what a customer does on the simulated setup page (save one of the
//! test cards, or leave), and what the bank does when a saved card is charged while they are
//! away (pays, declines, or asks for the cardholder).

use super::objects::{SavedMethod, SessionStatus, TestCard};
use super::{Emitted, SimError, Simulator};
use crate::domain::{Money, PauseReason, SavedCard};
use crate::stripe::gateway::{OffSessionOutcome, OffSessionPayment};

/// A setup session as the simulator's page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupView {
    pub id: String,
    pub open: bool,
}

impl Simulator {
    pub fn setup_view(&self, id: &str) -> Option<SetupView> {
        let state = self.state();
        let setup = state.setups.get(id)?;
        Some(SetupView {
            id: setup.id.clone(),
            open: setup.status == SessionStatus::Open,
        })
    }

    /// The customer saves `card`: the session completes. Answers with the success page the
    /// browser goes to.
    pub fn save_card(&self, id: &str, card: TestCard) -> Result<(String, Emitted), SimError> {
        self.act(|act| {
            let pm = act.id("pm");
            let setup = act.state.setups.get_mut(id).ok_or(SimError::NotFound)?;
            if setup.status != SessionStatus::Open {
                return Err(SimError::Refused("this checkout session is no longer open"));
            }
            setup.status = SessionStatus::Complete;
            setup.payment_method = Some(pm.clone());
            let customer = setup.customer.clone();
            let success = setup
                .success_url
                .replace("{CHECKOUT_SESSION_ID}", &setup.id);
            act.state.methods.push(SavedMethod {
                id: pm,
                customer,
                card,
            });
            Ok(success)
        })
    }

    /// The customer left the setup page: back to the app's cancel page, nothing saved.
    pub fn cancel_setup(&self, id: &str) -> Result<String, SimError> {
        let mut state = self.state();
        let setup = state.setups.get_mut(id).ok_or(SimError::NotFound)?;
        if setup.status == SessionStatus::Open {
            setup.status = SessionStatus::Expired;
        }
        Ok(setup.cancel_url.clone())
    }

    /// A saved card's label, as Stripe's card brand and last four digits make it.
    pub(super) fn saved(&self, payment_method: &str) -> Option<SavedCard> {
        let state = self.state();
        let method = state.methods.iter().find(|m| m.id == payment_method)?;
        Some(SavedCard {
            payment_method: method.id.clone(),
            label: format!("Visa •••• {}", method.card.last4()),
        })
    }

    /// Charges a saved card while the customer is away, as the card's bank answers; a repeated
    /// idempotency key answers as the first request did.
    pub(super) fn charge_off_session(
        &self,
        payment: &OffSessionPayment,
    ) -> Result<OffSessionOutcome, SimError> {
        let (outcome, _) = self.act(|act| {
            if let Some(first) = act.state.off_session.get(&payment.idempotency_key) {
                return Ok(first.clone());
            }
            let card = act
                .state
                .methods
                .iter()
                .find(|m| m.id == payment.payment_method && m.customer == payment.customer)
                .map(|m| m.card)
                .ok_or(SimError::Refused("No such PaymentMethod for this customer"))?;
            let payment_intent = act.id("pi");
            let outcome = match card {
                TestCard::Succeeds => {
                    charge(act, &payment_intent, &payment.customer, payment.amount);
                    OffSessionOutcome::Succeeded { payment_intent }
                }
                TestCard::Declines => OffSessionOutcome::Failed {
                    payment_intent: Some(payment_intent),
                    reason: PauseReason::Declined,
                    message: "Your card was declined.".to_owned(),
                },
                TestCard::NeedsAuthentication => OffSessionOutcome::Failed {
                    payment_intent: Some(payment_intent),
                    reason: PauseReason::AuthenticationRequired,
                    message: "Your card was declined. This transaction requires authentication."
                        .to_owned(),
                },
            };
            act.state
                .off_session
                .insert(payment.idempotency_key.clone(), outcome.clone());
            Ok(outcome)
        })?;
        Ok(outcome)
    }
}

/// The charge of a paid payment: refunded and disputed in the portal as any other.
fn charge(act: &mut super::Act<'_>, payment_intent: &str, customer: &str, amount: Money) {
    let charge = super::objects::Charge {
        id: act.id("ch"),
        payment_intent: payment_intent.to_owned(),
        customer: customer.to_owned(),
        amount,
        invoice: None,
        description: "Auto top-up".to_owned(),
        created: act.now,
    };
    act.state.charges.push(charge);
}
