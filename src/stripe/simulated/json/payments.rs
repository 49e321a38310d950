//! What moves money: charges, their refunds and disputes, and the invoice payment that says
//! which invoice a charge paid.

use serde_json::{Value, json};

use crate::stripe::simulated::objects::{Charge, Dispute, Refund};

/// What Stripe's invoice payments say of a charge that paid an invoice.
pub(in crate::stripe::simulated) fn invoice_payment(c: &Charge, invoice: &str) -> Value {
    json!({
        "id": format!("inpay_{}", &c.id[3..]),
        "object": "invoice_payment",
        "amount_paid": c.amount.minor(),
        "amount_requested": c.amount.minor(),
        "created": c.created,
        "currency": c.amount.currency().as_str(),
        "invoice": invoice,
        "is_default": true,
        "livemode": false,
        "payment": { "type": "payment_intent", "payment_intent": c.payment_intent, "charge": null },
        "status": "paid",
        "status_transitions": { "canceled_at": null, "paid_at": c.created },
    })
}

pub(in crate::stripe::simulated) fn charge(c: &Charge, refunded: i64, disputed: bool) -> Value {
    json!({
        "id": c.id,
        "object": "charge",
        "amount": c.amount.minor(),
        "amount_captured": c.amount.minor(),
        "amount_refunded": refunded,
        "captured": true,
        "currency": c.amount.currency().as_str(),
        "customer": c.customer,
        "description": c.description,
        "disputed": disputed,
        "payment_intent": c.payment_intent,
        "paid": true,
        "refunded": refunded >= c.amount.minor(),
        "status": "succeeded",
        "created": c.created,
        "livemode": false,
    })
}

pub(in crate::stripe::simulated) fn refund(r: &Refund, currency: &str) -> Value {
    json!({
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "charge": r.charge,
        "currency": currency,
        "payment_intent": r.payment_intent,
        "reason": "requested_by_customer",
        "status": r.status.as_str(),
        "failure_reason": if r.status.returns_money() { None } else { Some("expired_or_canceled_card") },
        "created": r.created,
        "metadata": {},
    })
}

pub(in crate::stripe::simulated) fn dispute(d: &Dispute, c: &Charge) -> Value {
    json!({
        "id": d.id,
        "object": "dispute",
        "amount": d.amount,
        "currency": c.amount.currency().as_str(),
        "charge": c.id,
        "payment_intent": c.payment_intent,
        "reason": "fraudulent",
        "status": d.status.as_str(),
        "is_charge_refundable": false,
        "created": d.created,
        "livemode": false,
    })
}
