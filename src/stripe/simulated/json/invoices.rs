//! A subscription's invoices and their lines, in the shape of the endpoint's API version.

use serde_json::{Value, json};

use super::ApiShape;
use super::subscriptions::{metadata, price};
use crate::stripe::simulated::objects::{Invoice, Subscription};

/// How many lines an invoice object carries; the rest are at `/v1/invoices/{id}/lines`.
const LINES_IN_AN_INVOICE: usize = 10;

pub(in crate::stripe::simulated) fn invoice(
    i: &Invoice,
    s: &Subscription,
    shape: ApiShape,
) -> Value {
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
pub(in crate::stripe::simulated) fn invoice_lines(
    i: &Invoice,
    s: &Subscription,
    shape: ApiShape,
) -> Vec<Value> {
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
