//! Invoices as their events carry them, in the current shape and the one before 2025.

use serde_json::Value;

use super::fields::{int_at, money, str_at, user_in_metadata};
use crate::domain::{Money, Timestamp, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePaid {
    pub invoice: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    /// From the subscription's metadata, which our Checkout sessions set.
    pub user: Option<UserId>,
    /// `None` for an invoice that gives none.
    pub billing_reason: Option<BillingReason>,
    /// The lines the payload carries: Stripe sends only the first page of a long invoice.
    pub lines: Vec<InvoiceLine>,
    /// False when the invoice has more lines than the payload carries (`lines.has_more`).
    pub lines_complete: bool,
    /// The money actually paid: zero for a trial, a 100% coupon, or an invoice the customer's
    /// credit balance paid.
    pub amount_paid: Option<Money>,
}

/// Why Stripe made an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingReason {
    /// A subscription's first period.
    SubscriptionCreate,
    /// A renewal.
    SubscriptionCycle,
    /// A change mid-period (prorations).
    SubscriptionUpdate,
    /// A one-off invoice.
    Manual,
    /// Anything else Stripe names (`subscription_threshold`, `upcoming`...).
    Other(String),
}

impl BillingReason {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "subscription_create" => Self::SubscriptionCreate,
            "subscription_cycle" => Self::SubscriptionCycle,
            "subscription_update" => Self::SubscriptionUpdate,
            "manual" => Self::Manual,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Whether the invoice starts or renews a period, the only kind that brings tokens.
    pub fn starts_a_period(&self) -> bool {
        matches!(self, Self::SubscriptionCreate | Self::SubscriptionCycle)
    }
}

/// One line of an invoice, wherever the API version puts its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub price: String,
    pub quantity: i64,
    /// Minor units; negative for time given back.
    pub amount: i64,
    /// A proration of a change mid-period, not the period itself.
    pub proration: bool,
    /// The period the line is for (`period.start`, `period.end`), when Stripe says.
    pub period: Option<(Timestamp, Timestamp)>,
}

/// An invoice object, in the current shape or the one before 2025; `Err` names a field it
/// lacks.
pub fn invoice(object: &Value) -> Result<InvoicePaid, &'static str> {
    let lines = object
        .pointer("/lines/data")
        .and_then(Value::as_array)
        .map(|lines| lines.iter().filter_map(invoice_line).collect())
        .unwrap_or_default();
    // Since 2025 the subscription is under `parent`; before, at the top level.
    let details = object.pointer("/parent/subscription_details");
    let metadata = details
        .and_then(|d| d.get("metadata"))
        .or_else(|| object.pointer("/subscription_details/metadata"));
    Ok(InvoicePaid {
        invoice: str_at(object, &["id"]).ok_or("id")?,
        customer: str_at(object, &["customer"]),
        subscription: details
            .and_then(|d| str_at(d, &["subscription"]))
            .or_else(|| str_at(object, &["subscription"])),
        user: metadata.and_then(user_in_metadata),
        billing_reason: str_at(object, &["billing_reason"])
            .as_deref()
            .map(BillingReason::parse),
        lines,
        lines_complete: !object
            .pointer("/lines/has_more")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        amount_paid: money(object, "amount_paid"),
    })
}

/// A line of an invoice in the current shape (`pricing.price_details.price`, the proration
/// under `parent`) or the shape before 2025 (`price`, `plan`, `proration` on the line).
pub fn invoice_line(line: &Value) -> Option<InvoiceLine> {
    let price = str_at(line, &["pricing", "price_details", "price"])
        .or_else(|| str_at(line, &["price"]))
        .or_else(|| str_at(line, &["plan"]))?;
    let parent = line.get("parent");
    let proration = ["subscription_item_details", "invoice_item_details"]
        .iter()
        .find_map(|details| parent?.get(details)?.get("proration")?.as_bool())
        .or_else(|| line.get("proration").and_then(Value::as_bool))
        .unwrap_or(false);
    Some(InvoiceLine {
        price,
        quantity: line.get("quantity").and_then(Value::as_i64).unwrap_or(1),
        amount: int_at(line, "amount").unwrap_or(0),
        proration,
        period: period_of(line),
    })
}

/// A line's `period` (unix seconds), as moments.
fn period_of(line: &Value) -> Option<(Timestamp, Timestamp)> {
    let at = |field: &str| {
        line.pointer(&format!("/period/{field}"))
            .and_then(Value::as_i64)
            .and_then(|secs| secs.checked_mul(1000))
            .map(Timestamp::from_millis)
    };
    Some((at("start")?, at("end")?)).filter(|(start, end)| start < end)
}
