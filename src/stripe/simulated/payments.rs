//! What happens to a payment after it is made: refunds (which may fail) and the customer's
//! bank disputing it (an inquiry first, or a chargeback at once).

use super::objects::{Charge, Dispute, DisputeStatus, Refund};
use super::{Act, Emitted, SimError, Simulator, json};
use crate::stripe::gateway::RefundStatus;

impl Simulator {
    /// Refunds `amount` minor units of a payment (what is left of it, at most).
    pub fn refund(&self, portal: &str, charge: &str, amount: i64) -> Result<Emitted, SimError> {
        self.on_charge(portal, charge, |act, charge| {
            // While the bank holds the payment (an inquiry or a chargeback), or kept it, the
            // merchant cannot refund it; after a won dispute or a closed inquiry it can.
            if act
                .state
                .dispute_of(&charge.id)
                .is_some_and(|d| d.status.is_open() || d.status == DisputeStatus::Lost)
            {
                return Err(SimError::Refused("a disputed payment cannot be refunded"));
            }
            let left = charge.amount.minor() - act.state.refunded(&charge.id);
            if amount <= 0 || left <= 0 {
                return Err(SimError::Refused("nothing left to refund"));
            }
            let refund = Refund {
                id: act.id("re"),
                charge: charge.id.clone(),
                payment_intent: charge.payment_intent.clone(),
                amount: amount.min(left),
                status: RefundStatus::Succeeded,
                created: act.now,
            };
            act.state.refunds.push(refund.clone());
            emit_charge(act, "charge.refunded", charge);
            let currency = charge.amount.currency();
            act.emit("refund.created", json::refund(&refund, currency.as_str()));
            Ok(())
        })
    }

    /// The customer's bank returns a refund (a closed account, an expired card): the money is
    /// the merchant's again.
    pub fn fail_refund(&self, portal: &str, refund: &str) -> Result<Emitted, SimError> {
        self.act(|act| {
            let customer = act.portal_customer(portal)?;
            // Everything is checked before anything changes: a refused action changes nothing.
            let r = act
                .state
                .refunds
                .iter()
                .find(|r| r.id == refund)
                .cloned()
                .ok_or(SimError::NotFound)?;
            let charge = act
                .state
                .charge(&r.charge)
                .filter(|c| c.customer == customer)
                .cloned()
                .ok_or(SimError::NotFound)?;
            if !r.status.returns_money() {
                return Err(SimError::Refused("the refund has already failed"));
            }
            let r = act
                .state
                .refunds
                .iter_mut()
                .find(|r| r.id == refund)
                .expect("found above");
            r.status = RefundStatus::Failed;
            let r = r.clone();
            let object = json::refund(&r, charge.amount.currency().as_str());
            act.emit("charge.refund.updated", object.clone());
            act.emit("refund.updated", object.clone());
            act.emit("refund.failed", object);
            Ok(())
        })
        .map(|((), emitted)| emitted)
    }

    /// The customer's bank disputes the payment: a chargeback, the money withdrawn at once.
    pub fn dispute(&self, portal: &str, charge: &str) -> Result<Emitted, SimError> {
        self.open_dispute(portal, charge, DisputeStatus::NeedsResponse)
    }

    /// The customer's bank asks about the payment (an inquiry): no money moves yet.
    pub fn inquire(&self, portal: &str, charge: &str) -> Result<Emitted, SimError> {
        self.open_dispute(portal, charge, DisputeStatus::WarningNeedsResponse)
    }

    /// The inquiry becomes a chargeback: the money is withdrawn.
    pub fn escalate(&self, portal: &str, dispute: &str) -> Result<Emitted, SimError> {
        self.on_dispute(portal, dispute, |act, d, charge| {
            if d.status != DisputeStatus::WarningNeedsResponse {
                return Err(SimError::Refused("only an open inquiry can be escalated"));
            }
            escalate(act, d, charge);
            Ok(())
        })
    }

    /// The dispute ends, won or lost. An inquiry that is won closes without a chargeback; one
    /// that is lost becomes a chargeback first.
    pub fn close_dispute(
        &self,
        portal: &str,
        dispute: &str,
        won: bool,
    ) -> Result<Emitted, SimError> {
        self.on_dispute(portal, dispute, |act, d, charge| {
            match (d.status, won) {
                (DisputeStatus::WarningNeedsResponse, true) => {
                    d.status = DisputeStatus::WarningClosed;
                    act.emit("charge.dispute.closed", json::dispute(d, charge));
                }
                (DisputeStatus::WarningNeedsResponse, false) => {
                    escalate(act, d, charge);
                    lose(act, d, charge);
                }
                (DisputeStatus::NeedsResponse, true) => {
                    d.status = DisputeStatus::Won;
                    act.emit("charge.dispute.closed", json::dispute(d, charge));
                    act.emit("charge.dispute.funds_reinstated", json::dispute(d, charge));
                }
                (DisputeStatus::NeedsResponse, false) => lose(act, d, charge),
                _ => return Err(SimError::Refused("the dispute is already closed")),
            }
            Ok(())
        })
    }

    fn open_dispute(
        &self,
        portal: &str,
        charge: &str,
        status: DisputeStatus,
    ) -> Result<Emitted, SimError> {
        self.on_charge(portal, charge, |act, charge| {
            if act.state.dispute_of(&charge.id).is_some() {
                return Err(SimError::Refused("the payment is already disputed"));
            }
            // A bank disputes the whole payment, even one partly refunded (a fully refunded
            // card payment cannot be disputed).
            if act.state.refunded(&charge.id) >= charge.amount.minor() {
                return Err(SimError::Refused("a refunded payment cannot be disputed"));
            }
            let dispute = Dispute {
                id: act.id("du"),
                charge: charge.id.clone(),
                amount: charge.amount.minor(),
                status,
                created: act.now,
            };
            act.state.disputes.push(dispute.clone());
            act.emit("charge.dispute.created", json::dispute(&dispute, charge));
            if status == DisputeStatus::NeedsResponse {
                act.emit(
                    "charge.dispute.funds_withdrawn",
                    json::dispute(&dispute, charge),
                );
            }
            Ok(())
        })
    }

    /// One action on a charge of the portal's customer.
    fn on_charge(
        &self,
        portal: &str,
        charge: &str,
        action: impl FnOnce(&mut Act<'_>, &Charge) -> Result<(), SimError>,
    ) -> Result<Emitted, SimError> {
        self.act(|act| {
            let customer = act.portal_customer(portal)?;
            let charge = act
                .state
                .charge(charge)
                .filter(|c| c.customer == customer)
                .cloned()
                .ok_or(SimError::NotFound)?;
            action(act, &charge)
        })
        .map(|((), emitted)| emitted)
    }

    /// One action on a dispute of a charge of the portal's customer.
    fn on_dispute(
        &self,
        portal: &str,
        dispute: &str,
        action: impl FnOnce(&mut Act<'_>, &mut Dispute, &Charge) -> Result<(), SimError>,
    ) -> Result<Emitted, SimError> {
        self.act(|act| {
            let customer = act.portal_customer(portal)?;
            let mut d = act
                .state
                .disputes
                .iter()
                .find(|d| d.id == dispute)
                .cloned()
                .ok_or(SimError::NotFound)?;
            let charge = act
                .state
                .charge(&d.charge)
                .filter(|c| c.customer == customer)
                .cloned()
                .ok_or(SimError::NotFound)?;
            action(act, &mut d, &charge)?;
            if let Some(kept) = act.state.disputes.iter_mut().find(|k| k.id == d.id) {
                *kept = d;
            }
            Ok(())
        })
        .map(|((), emitted)| emitted)
    }
}

/// The bank keeps the disputed money, but for what had been refunded already: Stripe gives
/// that back (a payment disputed in full after a partial refund).
fn lose(act: &mut Act<'_>, d: &mut Dispute, charge: &Charge) {
    d.status = DisputeStatus::Lost;
    act.emit("charge.dispute.closed", json::dispute(d, charge));
    if act.state.refunded(&charge.id) > 0 {
        act.emit("charge.dispute.funds_reinstated", json::dispute(d, charge));
    }
}

fn escalate(act: &mut Act<'_>, d: &mut Dispute, charge: &Charge) {
    d.status = DisputeStatus::NeedsResponse;
    act.emit("charge.dispute.updated", json::dispute(d, charge));
    act.emit("charge.dispute.funds_withdrawn", json::dispute(d, charge));
}

fn emit_charge(act: &mut Act<'_>, kind: &str, charge: &Charge) {
    let refunded = act.state.refunded(&charge.id);
    let disputed = act.state.dispute_of(&charge.id).is_some();
    act.emit(kind, json::charge(charge, refunded, disputed));
}
