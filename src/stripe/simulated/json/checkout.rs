//! A Checkout session, its line item and the prices of the catalog.

use serde_json::{Value, json};

use crate::domain::ProductKind;
use crate::stripe::simulated::objects::Session;

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
pub(in crate::stripe::simulated) fn session(s: &Session) -> Value {
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
pub(in crate::stripe::simulated) fn price_object(
    id: &str,
    product: crate::domain::ProductId,
    created: i64,
) -> Value {
    let amount = crate::stripe::simulated::price_of(product);
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
pub(in crate::stripe::simulated) fn line_item(s: &Session) -> Value {
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
