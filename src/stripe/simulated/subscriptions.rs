//! Subscriptions in the simulated portal and Dashboard: renewals with their invoices,
//! quantity changes with their prorations, cancellation.

use super::objects::{
    BillingReason, Charge, Invoice, InvoiceLine, Proration, Subscription, SubscriptionStatus,
};
use super::{Act, Emitted, PERIOD_SECS, SimError, Simulator, json};
use crate::domain::ProductId;

/// How an invoice is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bill {
    /// Charged to the card on file.
    Charged,
    /// A 100% coupon: nothing to pay.
    Free,
}

/// Invoices a subscription's current period (with the prorations waiting for it) and pays
/// it; answers with the invoice's id.
pub(super) fn bill(
    act: &mut Act<'_>,
    subscription: &str,
    reason: BillingReason,
    how: Bill,
) -> Result<String, SimError> {
    let sub = act
        .state
        .subscriptions
        .get_mut(subscription)
        .ok_or(SimError::NotFound)?;
    let pending = std::mem::take(&mut sub.pending);
    let sub = sub.clone();
    let mut lines: Vec<InvoiceLine> = pending
        .into_iter()
        .map(|p| InvoiceLine {
            id: act.id("il"),
            quantity: p.quantity,
            amount: p.amount,
            proration: true,
            invoice_item: Some(p.id),
            description: p.description,
            period_start: p.period_start,
            period_end: p.period_end,
        })
        .collect();
    // A plan change invoiced at once bills its prorations alone; a period bills the period.
    if reason != BillingReason::Update {
        lines.push(InvoiceLine {
            id: act.id("il"),
            quantity: sub.quantity,
            amount: sub.unit.minor() * sub.quantity,
            proration: false,
            invoice_item: None,
            description: format!("{} × {}", sub.quantity, ProductId::Starter.label()),
            period_start: sub.period_start,
            period_end: sub.period_end,
        });
    }
    let subtotal: i64 = lines.iter().map(|l| l.amount).sum();
    let total = match how {
        Bill::Charged => subtotal,
        Bill::Free => 0,
    };
    // The customer's credit balance pays first; an invoice that comes to less than nothing
    // adds to it (as Stripe does with the unused time of seats given up).
    let credit = act.state.credit.entry(sub.customer.clone()).or_insert(0);
    let starting_balance = -*credit;
    let from_balance = total.clamp(0, *credit);
    *credit -= from_balance;
    if total < 0 {
        *credit += -total;
    }
    let ending_balance = -*credit;
    let amount_paid = total.max(0) - from_balance;
    let id = act.id("in");
    let (charge, payment_intent) = if amount_paid > 0 {
        let charge = Charge {
            id: act.id("ch"),
            payment_intent: act.id("pi"),
            customer: sub.customer.clone(),
            amount: crate::domain::Money::new(amount_paid, sub.unit.currency()).expect("positive"),
            invoice: Some(id.clone()),
            description: format!("{} invoice", ProductId::Starter.label()),
            created: act.now,
        };
        let ids = (Some(charge.id.clone()), Some(charge.payment_intent.clone()));
        act.state.charges.push(charge);
        ids
    } else {
        (None, None)
    };
    let invoice = Invoice {
        id: id.clone(),
        subscription: sub.id.clone(),
        reason,
        lines,
        total,
        amount_paid,
        starting_balance,
        ending_balance,
        charge,
        payment_intent,
        created: act.now,
    };
    let object = json::invoice(&invoice, &sub, act.shape());
    act.state.invoices.insert(id.clone(), invoice);
    act.emit("invoice.paid", object.clone());
    if amount_paid > 0 {
        act.emit("invoice.payment_succeeded", object);
    }
    Ok(id)
}

impl Simulator {
    /// A subscription to the plan that the merchant made in Stripe's Dashboard for the
    /// portal's customer: no Checkout, and none of the app's metadata.
    pub fn subscribe_in_dashboard(&self, portal: &str) -> Result<Emitted, SimError> {
        self.act(|act| {
            let customer = act.portal_customer(portal)?;
            let price = act
                .plan_price()
                .ok_or(SimError::Refused("no plan is on sale"))?;
            let sub = Subscription {
                id: act.id("sub"),
                customer,
                user: None,
                price,
                unit: super::price_of(ProductId::Starter),
                quantity: 1,
                status: SubscriptionStatus::Active,
                period_start: act.now,
                period_end: act.now + PERIOD_SECS,
                cancel_at_period_end: false,
                canceled_at: None,
                created: act.now,
                pending: Vec::new(),
            };
            act.state.subscriptions.insert(sub.id.clone(), sub.clone());
            act.emit("customer.subscription.created", json::subscription(&sub));
            bill(act, &sub.id, BillingReason::Create, Bill::Charged)?;
            Ok(())
        })
        .map(|((), emitted)| emitted)
    }

    /// Cancels at the end of the period (as the portal usually does), or resumes.
    pub fn set_cancel_at_period_end(
        &self,
        portal: &str,
        sub: &str,
        cancel: bool,
    ) -> Result<Emitted, SimError> {
        self.change_subscription(portal, sub, |act, s| {
            if s.status != SubscriptionStatus::Active {
                return Err(SimError::Refused("the subscription is not active"));
            }
            s.cancel_at_period_end = cancel;
            act.emit("customer.subscription.updated", json::subscription(s));
            Ok(())
        })
    }

    /// Ends the subscription now.
    pub fn cancel_now(&self, portal: &str, sub: &str) -> Result<Emitted, SimError> {
        self.change_subscription(portal, sub, |act, s| {
            if s.status == SubscriptionStatus::Canceled {
                return Err(SimError::Refused("the subscription is already canceled"));
            }
            s.status = SubscriptionStatus::Canceled;
            s.canceled_at = Some(act.now);
            act.emit("customer.subscription.deleted", json::subscription(s));
            Ok(())
        })
    }

    /// Changes how many seats the subscription has, now: the unused time of the old quantity
    /// is credited and the rest of the period at the new quantity charged, on the next invoice.
    pub fn set_quantity(
        &self,
        portal: &str,
        sub: &str,
        quantity: i64,
    ) -> Result<Emitted, SimError> {
        self.change_quantity(portal, sub, quantity, false)
    }

    /// As [`Simulator::set_quantity`], with the prorations invoiced (and charged) at once, as
    /// Stripe does with `proration_behavior=always_invoice`.
    pub fn set_quantity_invoiced_now(
        &self,
        portal: &str,
        sub: &str,
        quantity: i64,
    ) -> Result<Emitted, SimError> {
        self.change_quantity(portal, sub, quantity, true)
    }

    fn change_quantity(
        &self,
        portal: &str,
        sub: &str,
        quantity: i64,
        invoice_now: bool,
    ) -> Result<Emitted, SimError> {
        self.change_subscription(portal, sub, |act, s| {
            if s.status != SubscriptionStatus::Active {
                return Err(SimError::Refused("the subscription is not active"));
            }
            if !(1..=100).contains(&quantity) || quantity == s.quantity {
                return Err(SimError::Refused("choose a different quantity, 1 to 100"));
            }
            let left = (s.period_end - act.now).clamp(0, PERIOD_SECS);
            let part = |q: i64| s.unit.minor() * q * left / PERIOD_SECS;
            let (old, now) = (s.quantity, act.now);
            s.pending.push(Proration {
                id: act.id("ii"),
                quantity: old,
                amount: -part(old),
                description: format!("Unused time on {old} × {}", ProductId::Starter.label()),
                period_start: now,
                period_end: s.period_end,
            });
            s.pending.push(Proration {
                id: act.id("ii"),
                quantity,
                amount: part(quantity),
                description: format!(
                    "Remaining time on {quantity} × {}",
                    ProductId::Starter.label()
                ),
                period_start: now,
                period_end: s.period_end,
            });
            s.quantity = quantity;
            act.emit("customer.subscription.updated", json::subscription(s));
            if invoice_now {
                // Billed from the stored subscription, which must hold the change first.
                act.state.subscriptions.insert(s.id.clone(), s.clone());
                bill(act, &s.id, BillingReason::Update, Bill::Charged)?;
                s.pending.clear();
            }
            Ok(())
        })
    }

    /// Moves the subscription to its next period: a new paid invoice (as at each renewal), or
    /// its end when it was set to cancel.
    pub fn renew(&self, portal: &str, sub: &str) -> Result<Emitted, SimError> {
        self.act(|act| {
            let customer = act.portal_customer(portal)?;
            let now = act.now;
            let s = own_subscription(act, &customer, sub)?;
            if s.status != SubscriptionStatus::Active {
                return Err(SimError::Refused("the subscription is not active"));
            }
            if s.cancel_at_period_end {
                s.status = SubscriptionStatus::Canceled;
                s.canceled_at = Some(now);
                let snapshot = json::subscription(s);
                act.emit("customer.subscription.deleted", snapshot);
                return Ok(());
            }
            s.period_start = s.period_end;
            s.period_end += PERIOD_SECS;
            let id = s.id.clone();
            bill(act, &id, BillingReason::Cycle, Bill::Charged)?;
            let snapshot = json::subscription(&act.state.subscriptions[&id]);
            act.emit("customer.subscription.updated", snapshot);
            Ok(())
        })
        .map(|((), emitted)| emitted)
    }

    /// One change to a subscription of the portal's customer.
    fn change_subscription(
        &self,
        portal: &str,
        sub: &str,
        change: impl FnOnce(&mut Act<'_>, &mut Subscription) -> Result<(), SimError>,
    ) -> Result<Emitted, SimError> {
        self.act(|act| {
            let customer = act.portal_customer(portal)?;
            let mut s = own_subscription(act, &customer, sub)?.clone();
            change(act, &mut s)?;
            act.state.subscriptions.insert(s.id.clone(), s);
            Ok(())
        })
        .map(|((), emitted)| emitted)
    }
}

fn own_subscription<'a>(
    act: &'a mut Act<'_>,
    customer: &str,
    sub: &str,
) -> Result<&'a mut Subscription, SimError> {
    act.state
        .subscriptions
        .get_mut(sub)
        .filter(|s| s.customer == customer)
        .ok_or(SimError::NotFound)
}
