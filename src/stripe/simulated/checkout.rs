//! What a customer does on the simulated Checkout page: pay (now, later, or not at all with a
//! coupon), or leave.

use super::objects::{
    Charge, PayMethod, PaymentStatus, Session, SessionStatus, Subscription, SubscriptionStatus,
};
use super::subscriptions::{Bill, bill};
use super::{Act, Emitted, PERIOD_SECS, SimError, Simulator, json};
use crate::domain::ProductKind;

impl Simulator {
    /// The customer left Checkout: back to the app's cancel page, nothing charged.
    pub fn cancel(&self, id: &str) -> Result<String, SimError> {
        let mut state = self.state();
        let session = state.sessions.get_mut(id).ok_or(SimError::NotFound)?;
        if session.status == SessionStatus::Open {
            session.status = SessionStatus::Expired;
        }
        Ok(session.cancel_url.clone())
    }

    /// The customer pays: the session completes, and the events follow. Answers with the
    /// success page the browser goes to.
    pub fn pay(&self, id: &str, method: PayMethod) -> Result<(String, Emitted), SimError> {
        self.act(|act| {
            let mut session = act
                .state
                .sessions
                .get(id)
                .cloned()
                .ok_or(SimError::NotFound)?;
            if session.status != SessionStatus::Open {
                return Err(SimError::Refused("this checkout session is no longer open"));
            }
            session.status = SessionStatus::Complete;
            if session.product.kind() == ProductKind::Subscription {
                subscribe(act, &mut session, method)?;
            } else {
                buy_pack(act, &mut session, method);
            }
            Ok(session
                .success_url
                .replace("{CHECKOUT_SESSION_ID}", &session.id))
        })
    }

    /// The bank answers an asynchronous payment: paid (and charged), or failed.
    pub fn settle(&self, id: &str) -> Result<Emitted, SimError> {
        self.act(|act| {
            let session = act.state.sessions.get_mut(id).ok_or(SimError::NotFound)?;
            let method = session
                .settling
                .take()
                .ok_or(SimError::Refused("no payment is waiting to settle"))?;
            let kind = if method == PayMethod::DelayedSuccess {
                session.payment_status = PaymentStatus::Paid;
                "checkout.session.async_payment_succeeded"
            } else {
                "checkout.session.async_payment_failed"
            };
            let session = session.clone();
            if method == PayMethod::DelayedSuccess {
                charge_session(act, &session);
            }
            act.emit(kind, json::session(&session));
            Ok(())
        })
        .map(|((), emitted)| emitted)
    }
}

fn buy_pack(act: &mut Act<'_>, session: &mut Session, method: PayMethod) {
    if method == PayMethod::FreeCoupon {
        session.amount_total = 0;
        session.payment_status = PaymentStatus::NoPaymentRequired;
        act.state
            .sessions
            .insert(session.id.clone(), session.clone());
        act.emit("checkout.session.completed", json::session(session));
        return;
    }
    session.payment_intent = Some(act.id("pi"));
    if method == PayMethod::Card {
        session.payment_status = PaymentStatus::Paid;
        charge_session(act, session);
    } else {
        session.payment_status = PaymentStatus::Unpaid;
        session.settling = Some(method);
        act.settles_later(&session.id);
    }
    act.state
        .sessions
        .insert(session.id.clone(), session.clone());
    act.emit("checkout.session.completed", json::session(session));
}

/// A subscription's Checkout: the subscription starts incomplete, its first invoice is paid,
/// and it turns active; Stripe sends these in no fixed order, and the app must not care.
fn subscribe(act: &mut Act<'_>, session: &mut Session, method: PayMethod) -> Result<(), SimError> {
    let bill_as = match method {
        PayMethod::Card => Bill::Charged,
        PayMethod::FreeCoupon => Bill::Free,
        PayMethod::DelayedSuccess | PayMethod::DelayedFailure => {
            return Err(SimError::Refused("subscriptions are paid by card here"));
        }
    };
    let mut sub = Subscription {
        id: act.id("sub"),
        customer: session.customer.clone(),
        user: Some(session.user),
        price: session.price.clone(),
        unit: session.amount,
        quantity: 1,
        status: SubscriptionStatus::Incomplete,
        period_start: act.now,
        period_end: act.now + PERIOD_SECS,
        cancel_at_period_end: false,
        canceled_at: None,
        created: act.now,
        pending: Vec::new(),
    };
    act.emit("customer.subscription.created", json::subscription(&sub));
    sub.status = SubscriptionStatus::Active;
    act.state.subscriptions.insert(sub.id.clone(), sub.clone());
    let invoice = bill(act, &sub.id, super::objects::BillingReason::Create, bill_as)?;
    act.emit("customer.subscription.updated", json::subscription(&sub));

    session.payment_status = match bill_as {
        Bill::Charged => PaymentStatus::Paid,
        Bill::Free => PaymentStatus::NoPaymentRequired,
    };
    session.amount_total = act
        .state
        .invoices
        .get(&invoice)
        .map_or(0, |i| i.total.max(0));
    session.subscription = Some(sub.id.clone());
    session.invoice = Some(invoice);
    act.state
        .sessions
        .insert(session.id.clone(), session.clone());
    act.emit("checkout.session.completed", json::session(session));
    Ok(())
}

fn charge_session(act: &mut Act<'_>, session: &Session) {
    let charge = Charge {
        id: act.id("ch"),
        payment_intent: session.payment_intent.clone().unwrap_or_default(),
        customer: session.customer.clone(),
        amount: session.amount,
        invoice: None,
        description: session.product.label().to_owned(),
        created: act.now,
    };
    act.state.charges.push(charge);
}
