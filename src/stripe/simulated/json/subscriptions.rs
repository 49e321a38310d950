//! A subscription, with the metadata and the price its invoices repeat.

use serde_json::{Value, json};

use crate::stripe::simulated::objects::Subscription;

pub(in crate::stripe::simulated) fn subscription(s: &Subscription) -> Value {
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

pub(super) fn metadata(s: &Subscription) -> Value {
    match s.user {
        Some(user) => json!({ "user_id": user.to_string() }),
        None => json!({}),
    }
}

pub(super) fn price(id: &str, s: &Subscription) -> Value {
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
