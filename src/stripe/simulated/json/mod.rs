//! The simulated objects as Stripe's API writes them, field for field, in the shape of the API
//! version the account's webhook endpoint is set to.
//!
//! One file an object kind: [`checkout`] (sessions, their line items, prices), [`intents`]
//! (cards saved in setup mode, payments made with them later), [`subscriptions`],
//! [`invoices`] (with their lines) and [`payments`] (charges, refunds, disputes, and the
//! invoice payment that ties a charge to an invoice); this file is the event around them.

mod checkout;
mod intents;
mod invoices;
mod payments;
mod subscriptions;

use serde_json::{Value, json};

pub(super) use checkout::{line_item, price_object, session};
pub(super) use intents::{payment_intent, setup_session};
pub(super) use invoices::{invoice, invoice_lines};
pub(super) use payments::{charge, dispute, invoice_payment, refund};
pub(super) use subscriptions::subscription;

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
