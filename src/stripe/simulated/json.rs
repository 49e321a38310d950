//! The simulated objects as Stripe's API writes them, field for field, in the shape of the API
//! version the account's webhook endpoint is set to.

use serde_json::{Value, json};

use super::objects::{Charge, Dispute, Invoice, Refund, Session, Subscription};
use crate::domain::ProductKind;

/// The API version simulated events claim (the one async-stripe is generated for).
pub const API_VERSION: &str = "2026-09-30.endive";

/// A version from before Stripe moved invoices' subscriptions and prices (2025).
pub const API_VERSION_BEFORE_2025: &str = "2024-06-20";

/// Which shape of the API the webhook endpoint receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiShape {
    Current,
    /// The subscription and the price at the top level of invoices and their lines.
    Before2025,
}

impl ApiShape {
    pub fn version(self) -> &'static str {
        match self {
            ApiShape::Current => API_VERSION,
            ApiShape::Before2025 => API_VERSION_BEFORE_2025,
        }
    }
}

pub(super) fn event(id: &str, kind: &str, object: Value, created: i64, shape: ApiShape) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": shape.version(),
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
        "data": { "object": object },
    })
    .to_string()
}

/// What a Checkout session holds that this app never sets: null, as Stripe writes it.
const SESSION_NULLS: [&str; 27] = [
    "after_expiration",
    "allow_promotion_codes",
    "billing_address_collection",
    "client_secret",
    "collected_information",
    "consent",
    "consent_collection",
    "currency_conversion",
    "customer_creation",
    "customer_details",
    "customer_email",
    "invoice_creation",
    "locale",
    "payment_link",
    "payment_method_configuration_details",
    "recovered_from",
    "saved_payment_method_options",
    "setup_intent",
    "shipping_address_collection",
    "shipping_cost",
    "submit_type",
    "url",
    "permissions",
    "presentment_details",
    "return_url",
    "wallet_options",
    "optional_items",
];

/// A Checkout session, every field Stripe writes.
pub(super) fn session(s: &Session) -> Value {
    let subscription = s.product.kind() == ProductKind::Subscription;
    let currency = s.amount.currency();
    let mut session = json!({
        "id": s.id,
        "object": "checkout.session",
        "adaptive_pricing": { "enabled": false },
        "amount_subtotal": s.amount.minor(),
        "amount_total": s.amount_total,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "cancel_url": s.cancel_url,
        "client_reference_id": s.user.to_string(),
        "created": s.created,
        "currency": currency.as_str(),
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null,
        },
        "customer": s.customer,
        "discounts": [],
        "expires_at": s.created + 24 * 3600,
        "invoice": s.invoice,
        "livemode": false,
        "metadata": { "user_id": s.user.to_string(), "product": s.product.as_str() },
        "mode": if subscription { "subscription" } else { "payment" },
        "payment_intent": s.payment_intent,
        "payment_method_collection": "always",
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": s.payment_status.as_str(),
        "phone_number_collection": { "enabled": false },
        "shipping_options": [],
        "status": s.status.as_str(),
        "subscription": s.subscription,
        "success_url": s.success_url,
        "total_details": {
            "amount_discount": s.amount.minor() - s.amount_total,
            "amount_shipping": 0,
            "amount_tax": 0,
        },
        "ui_mode": "hosted",
    });
    for field in SESSION_NULLS {
        session[field] = Value::Null;
    }
    session
}

/// A price of the catalog, as `GET /v1/prices/{id}` and line items write it.
pub(super) fn price_object(id: &str, product: crate::domain::ProductId, created: i64) -> Value {
    let amount = super::price_of(product);
    let recurring = product.kind() == ProductKind::Subscription;
    json!({
        "id": id,
        "object": "price",
        "active": true,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": amount.currency().as_str(),
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": null,
        "metadata": {},
        "nickname": null,
        "product": format!("prod_sim{}", product.as_str()),
        "recurring": if recurring {
            json!({ "interval": "month", "interval_count": 1, "meter": null, "usage_type": "licensed" })
        } else {
            Value::Null
        },
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": if recurring { "recurring" } else { "one_time" },
        "unit_amount": amount.minor(),
        "unit_amount_decimal": amount.minor().to_string(),
    })
}

/// The one line item of a Checkout session.
pub(super) fn line_item(s: &Session) -> Value {
    json!({
        "id": format!("li_{}", &s.id[3..]),
        "object": "item",
        "adjustable_quantity": null,
        "amount_discount": s.amount.minor() - s.amount_total,
        "amount_subtotal": s.amount.minor(),
        "amount_tax": 0,
        "amount_total": s.amount_total,
        "currency": s.amount.currency().as_str(),
        "description": s.product.label(),
        "discounts": [],
        "metadata": {},
        "price": price_object(&s.price, s.product, s.created),
        "quantity": 1,
        "taxes": [],
    })
}

/// What Stripe's invoice payments say of a charge that paid an invoice.
pub(super) fn invoice_payment(c: &Charge, invoice: &str) -> Value {
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

pub(super) fn subscription(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "object": "subscription",
        "customer": s.customer,
        "status": s.status.as_str(),
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancel_at": if s.cancel_at_period_end { Some(s.period_end) } else { None },
        "canceled_at": s.canceled_at,
        "ended_at": s.canceled_at,
        "created": s.created,
        "start_date": s.created,
        "billing_cycle_anchor": s.created,
        "collection_method": "charge_automatically",
        "currency": s.unit.currency().as_str(),
        "metadata": metadata(s),
        "livemode": false,
        "items": {
            "object": "list",
            "has_more": false,
            "data": [{
                "id": s.item_id(),
                "object": "subscription_item",
                "quantity": s.quantity,
                "current_period_start": s.period_start,
                "current_period_end": s.period_end,
                "subscription": s.id,
                "price": price(&s.price, s),
            }],
        },
    })
}

fn metadata(s: &Subscription) -> Value {
    match s.user {
        Some(user) => json!({ "user_id": user.to_string() }),
        None => json!({}),
    }
}

fn price(id: &str, s: &Subscription) -> Value {
    json!({
        "id": id,
        "object": "price",
        "active": true,
        "currency": s.unit.currency().as_str(),
        "unit_amount": s.unit.minor(),
        "product": "prod_simstarter",
        "type": "recurring",
        "recurring": { "interval": "month", "interval_count": 1, "usage_type": "licensed" },
    })
}

/// How many lines an invoice object carries; the rest are at `/v1/invoices/{id}/lines`.
pub(super) const LINES_IN_AN_INVOICE: usize = 10;

pub(super) fn invoice(i: &Invoice, s: &Subscription, shape: ApiShape) -> Value {
    let currency = s.unit.currency();
    let currency = currency.as_str();
    let lines = invoice_lines(i, s, shape);
    let total_count = lines.len();
    let more = total_count > LINES_IN_AN_INVOICE;
    let lines: Vec<Value> = lines.into_iter().take(LINES_IN_AN_INVOICE).collect();
    let subtotal: i64 = i.lines.iter().map(|l| l.amount).sum();
    let metadata = metadata(s);
    let mut value = json!({
        "id": i.id,
        "object": "invoice",
        "customer": s.customer,
        "status": "paid",
        "billing_reason": i.reason.as_str(),
        "collection_method": "charge_automatically",
        "subtotal": subtotal,
        "total": i.total,
        "starting_balance": i.starting_balance,
        "ending_balance": i.ending_balance,
        "amount_due": i.amount_paid,
        "amount_paid": i.amount_paid,
        "amount_remaining": 0,
        "currency": currency,
        "created": i.created,
        "period_start": s.period_start,
        "period_end": s.period_end,
        "livemode": false,
        "lines": {
            "object": "list",
            "has_more": more,
            "total_count": total_count,
            "url": format!("/v1/invoices/{}/lines", i.id),
            "data": lines,
        },
    });
    match shape {
        ApiShape::Current => {
            value["parent"] = json!({
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": { "subscription": s.id, "metadata": metadata },
            });
        }
        ApiShape::Before2025 => {
            value["subscription"] = s.id.clone().into();
            value["subscription_details"] = json!({ "metadata": metadata });
            value["paid"] = true.into();
            value["charge"] = i.charge.clone().into();
            value["payment_intent"] = i.payment_intent.clone().into();
        }
    }
    value
}

/// Every line of an invoice, in order (prorations first, then the period), as Stripe writes
/// them.
pub(super) fn invoice_lines(i: &Invoice, s: &Subscription, shape: ApiShape) -> Vec<Value> {
    let currency = s.unit.currency();
    let currency = currency.as_str();
    i.lines
        .iter()
        .map(|line| {
            let mut value = json!({
                "id": line.id,
                "object": "line_item",
                "amount": line.amount,
                "currency": currency,
                "description": line.description,
                "quantity": line.quantity,
                "period": { "start": line.period_start, "end": line.period_end },
                "discountable": true,
                "livemode": false,
            });
            match shape {
                ApiShape::Current => {
                    value["parent"] = match &line.invoice_item {
                        Some(item) => json!({
                            "type": "invoice_item_details",
                            "invoice_item_details": {
                                "invoice_item": item,
                                "proration": line.proration,
                                "proration_details": { "credited_items": null },
                                "subscription": s.id,
                            },
                            "subscription_item_details": null,
                        }),
                        None => json!({
                            "type": "subscription_item_details",
                            "invoice_item_details": null,
                            "subscription_item_details": {
                                "invoice_item": null,
                                "proration": line.proration,
                                "proration_details": { "credited_items": null },
                                "subscription": s.id,
                                "subscription_item": s.item_id(),
                            },
                        }),
                    };
                    value["pricing"] = json!({
                        "type": "price_details",
                        "price_details": { "price": s.price, "product": "prod_simstarter" },
                        "unit_amount_decimal": s.unit.minor().to_string(),
                    });
                }
                ApiShape::Before2025 => {
                    value["type"] = if line.invoice_item.is_some() {
                        "invoiceitem"
                    } else {
                        "subscription"
                    }
                    .into();
                    value["proration"] = line.proration.into();
                    value["invoice_item"] = line.invoice_item.clone().into();
                    value["subscription"] = s.id.clone().into();
                    value["subscription_item"] = s.item_id().into();
                    value["price"] = price(&s.price, s);
                    value["plan"] = json!({
                        "id": s.price,
                        "object": "plan",
                        "amount": s.unit.minor(),
                        "currency": currency,
                        "interval": "month",
                    });
                }
            }
            value
        })
        .collect()
}

pub(super) fn charge(c: &Charge, refunded: i64, disputed: bool) -> Value {
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

pub(super) fn refund(r: &Refund, currency: &str) -> Value {
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

pub(super) fn dispute(d: &Dispute, c: &Charge) -> Value {
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
