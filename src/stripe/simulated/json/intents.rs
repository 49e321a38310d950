//! Cards saved and charged later: a setup-mode Checkout session (its setup intent and the
//! card's payment method expanded, as `expand[]=setup_intent.payment_method` asks), and a
//! payment intent confirmed while the customer was away, as Stripe writes them.

use serde_json::{Value, json};

use crate::stripe::simulated::objects::{OffSessionIntent, SavedMethod, SetupSession};

/// A card's payment method.
pub(in crate::stripe::simulated) fn payment_method(m: &SavedMethod, created: i64) -> Value {
    json!({
        "id": m.id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": { "city": null, "country": null, "line1": null, "line2": null,
                "postal_code": null, "state": null },
            "email": null, "name": null, "phone": null, "tax_id": null,
        },
        "card": {
            "brand": "visa",
            "checks": { "address_line1_check": null, "address_postal_code_check": null,
                "cvc_check": "pass" },
            "country": "US",
            "display_brand": "visa",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": format!("fp{}", m.card.last4()),
            "funding": "credit",
            "generated_from": null,
            "last4": m.card.last4(),
            "networks": { "available": ["visa"], "preferred": null },
            "regulated_status": "unregulated",
            "three_d_secure_usage": { "supported": true },
            "wallet": null,
        },
        "created": created,
        "customer": m.customer,
        "livemode": false,
        "metadata": {},
        "type": "card",
    })
}

/// A setup-mode Checkout session: its setup intent expanded with the card it saved when
/// `method` is given (as `expand[]=setup_intent.payment_method` asks), else its id (as
/// webhooks carry it).
pub(in crate::stripe::simulated) fn setup_session(
    s: &SetupSession,
    method: Option<&SavedMethod>,
) -> Value {
    let expanded = |id: &String| {
        json!({
            "id": id,
            "object": "setup_intent",
            "application": null,
            "automatic_payment_methods": null,
            "cancellation_reason": null,
            "client_secret": format!("{id}_secret_sim"),
            "created": s.created,
            "customer": s.customer,
            "description": null,
            "flow_directions": null,
            "last_setup_error": null,
            "latest_attempt": null,
            "livemode": false,
            "mandate": null,
            "metadata": { "user_id": s.user.to_string() },
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": method.map(|m| payment_method(m, s.created)),
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "single_use_mandate": null,
            "status": "succeeded",
            "usage": "off_session",
        })
    };
    let setup_intent = match (&s.setup_intent, method) {
        (Some(id), Some(_)) => expanded(id),
        (Some(id), None) => Value::String(id.clone()),
        (None, _) => Value::Null,
    };
    let mut session = json!({
        "id": s.id,
        "object": "checkout.session",
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "cancel_url": s.cancel_url,
        "client_reference_id": s.user.to_string(),
        "created": s.created,
        "currency": "usd",
        "custom_fields": [],
        "custom_text": { "after_submit": null, "shipping_address": null, "submit": null,
            "terms_of_service_acceptance": null },
        "customer": s.customer,
        "discounts": [],
        "expires_at": s.created + 24 * 3600,
        "livemode": false,
        "metadata": { "user_id": s.user.to_string() },
        "mode": "setup",
        "payment_method_collection": "always",
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "no_payment_required",
        "phone_number_collection": { "enabled": false },
        "setup_intent": setup_intent,
        "shipping_options": [],
        "status": s.status.as_str(),
        "success_url": s.success_url,
        "ui_mode": "hosted",
    });
    for field in SETUP_SESSION_NULLS {
        session[field] = Value::Null;
    }
    session
}

/// What a setup-mode session holds that this app never sets, or that setup mode has not (an
/// amount, a payment intent): null, as Stripe writes it.
const SETUP_SESSION_NULLS: [&str; 22] = [
    "adaptive_pricing",
    "after_expiration",
    "allow_promotion_codes",
    "amount_subtotal",
    "amount_total",
    "billing_address_collection",
    "client_secret",
    "customer_creation",
    "customer_details",
    "customer_email",
    "invoice",
    "invoice_creation",
    "locale",
    "payment_intent",
    "payment_link",
    "recovered_from",
    "shipping_address_collection",
    "shipping_cost",
    "submit_type",
    "subscription",
    "total_details",
    "url",
];

/// A payment intent confirmed while the customer was away: succeeded, or waiting for another
/// payment method with the bank's answer in `last_payment_error`.
pub(in crate::stripe::simulated) fn payment_intent(
    p: &OffSessionIntent,
    method: Option<&SavedMethod>,
) -> Value {
    let metadata: serde_json::Map<String, Value> = p
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let last_payment_error = p.failure.map(|(code, decline_code, message)| {
        json!({
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "payment_method": method.map(|m| payment_method(m, p.created)),
        })
    });
    json!({
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount.minor(),
        "amount_capturable": 0,
        "amount_details": { "tip": {} },
        "amount_received": if p.charge.is_some() { p.amount.minor() } else { 0 },
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic",
        "client_secret": format!("{}_secret_sim", p.id),
        "confirmation_method": "automatic",
        "created": p.created,
        "currency": p.amount.currency().as_str(),
        "customer": p.customer,
        "description": null,
        "excluded_payment_method_types": null,
        "last_payment_error": last_payment_error,
        "latest_charge": p.charge,
        "livemode": false,
        "metadata": metadata,
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": if p.charge.is_some() { Value::String(p.payment_method.clone()) } else { Value::Null },
        "payment_method_configuration_details": null,
        "payment_method_options": { "card": { "installments": null, "mandate_options": null,
            "network": null, "request_three_d_secure": "automatic" } },
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": if p.charge.is_some() { "succeeded" } else { "requires_payment_method" },
        "transfer_data": null,
        "transfer_group": null,
    })
}
