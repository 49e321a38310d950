//! Cards saved for later: what a customer does on the simulated setup page (save one of the
//! test cards, or leave), and what the bank does when a saved card is charged while they are
//! away (pays, declines, or asks for the cardholder).

use super::objects::{OffSessionIntent, SavedMethod, SessionStatus, TestCard};
use super::{Emitted, SimError, Simulator, json};
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
            let seti = act.id("seti");
            let setup = act.state.setups.get_mut(id).ok_or(SimError::NotFound)?;
            if setup.status != SessionStatus::Open {
                return Err(SimError::Refused("this checkout session is no longer open"));
            }
            setup.status = SessionStatus::Complete;
            setup.setup_intent = Some(seti);
            setup.payment_method = Some(pm.clone());
            let customer = setup.customer.clone();
            let success = setup
                .success_url
                .replace("{CHECKOUT_SESSION_ID}", &setup.id);
            let completed = json::setup_session(setup, None);
            act.state.methods.push(SavedMethod {
                id: pm,
                customer,
                card,
            });
            act.emit("checkout.session.completed", completed);
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

    /// A saved card, as the account keeps it.
    pub(super) fn saved_method(&self, payment_method: &str) -> Option<SavedMethod> {
        let state = self.state();
        state
            .methods
            .iter()
            .find(|m| m.id == payment_method)
            .cloned()
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
        let metadata = vec![
            ("topup_id".to_owned(), payment.topup.to_string()),
            ("user_id".to_owned(), payment.user.to_string()),
        ];
        self.off_session(
            &payment.idempotency_key,
            &payment.customer,
            &payment.payment_method,
            payment.amount,
            metadata,
        )
        .map(|intent| outcome(&intent))
    }

    /// A payment with a saved card, confirmed while the customer is away: recorded under its
    /// idempotency key, charged when the card pays.
    pub(super) fn off_session(
        &self,
        key: &str,
        customer: &str,
        payment_method: &str,
        amount: Money,
        metadata: Vec<(String, String)>,
    ) -> Result<OffSessionIntent, SimError> {
        let (intent, _) = self.act(|act| {
            if let Some(first) = act.state.off_session.get(key) {
                return Ok(first.clone());
            }
            let card = act
                .state
                .methods
                .iter()
                .find(|m| m.id == payment_method && m.customer == customer)
                .map(|m| m.card)
                .ok_or(SimError::Refused("No such PaymentMethod for this customer"))?;
            let id = act.id("pi");
            let (charge, failure) = match card {
                TestCard::Succeeds => (Some(charge(act, &id, customer, amount)), None),
                TestCard::Declines => (
                    None,
                    Some((
                        "card_declined",
                        Some("generic_decline"),
                        "Your card was declined.",
                    )),
                ),
                TestCard::NeedsAuthentication => (
                    None,
                    Some((
                        "authentication_required",
                        Some("authentication_required"),
                        "Your card was declined. This transaction requires authentication.",
                    )),
                ),
            };
            let intent = OffSessionIntent {
                id,
                amount,
                customer: customer.to_owned(),
                payment_method: payment_method.to_owned(),
                metadata,
                charge,
                failure,
                created: act.now,
            };
            act.state.off_session.insert(key.to_owned(), intent.clone());
            Ok(intent)
        })?;
        Ok(intent)
    }
}

/// What Stripe's answer to a payment made while the customer was away comes to.
fn outcome(intent: &OffSessionIntent) -> OffSessionOutcome {
    match intent.failure {
        None => OffSessionOutcome::Succeeded {
            payment_intent: intent.id.clone(),
        },
        Some((code, _, message)) => OffSessionOutcome::Failed {
            payment_intent: Some(intent.id.clone()),
            reason: if code == "authentication_required" {
                PauseReason::AuthenticationRequired
            } else {
                PauseReason::Declined
            },
            message: message.to_owned(),
        },
    }
}

/// The charge of a paid payment: refunded and disputed in the portal as any other.
fn charge(act: &mut super::Act<'_>, payment_intent: &str, customer: &str, amount: Money) -> String {
    let id = act.id("ch");
    let charge = super::objects::Charge {
        id: id.clone(),
        payment_intent: payment_intent.to_owned(),
        customer: customer.to_owned(),
        amount,
        invoice: None,
        description: "Auto top-up".to_owned(),
        created: act.now,
    };
    act.state.charges.push(charge);
    id
}
