//! Stripe events, read into what they mean for billing. Pure functions: no I/O, no clock.
//!
//! Only the fields billing needs are read, each where Stripe's current API puts it (see
//! docs/BILLING.md); anything else in the payload is ignored, so an event from a newer API
//! version still maps as long as those fields stay put. What to do about an event (credit,
//! reverse, record) is decided here; the fulfilment module carries it out.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Currency, Money, UserId};

/// The envelope every event shares.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    pub data: EnvelopeData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnvelopeData {
    pub object: Value,
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|e| EventError::Malformed(e.to_string()))?;
        if !envelope.id.starts_with("evt_") || envelope.id.len() > 255 {
            return Err(EventError::Malformed(
                "the event id must start with evt_".into(),
            ));
        }
        Ok(envelope)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not valid JSON of Stripe's shape: {0}")]
    Malformed(String),
    #[error("the {kind} event lacks {field}")]
    Missing { kind: String, field: &'static str },
}

/// What an event asks billing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A Checkout payment went through: credit the pack's tokens once per session.
    CheckoutPaid(CheckoutPaid),
    /// Checkout finished but an asynchronous payment method has not paid yet.
    CheckoutAwaitingPayment { session: String },
    /// The asynchronous payment failed: nothing to credit.
    CheckoutPaymentFailed { session: String },
    /// A subscription was bought through Checkout: tokens come with each paid invoice, but
    /// the customer is linked to the user now.
    SubscriptionCheckout {
        session: String,
        user: Option<UserId>,
        customer: Option<String>,
    },
    /// A subscription invoice was paid: credit the plan's tokens once per invoice.
    InvoicePaid(InvoicePaid),
    /// A charge was refunded, in part or in full (`amount_refunded` is cumulative).
    ChargeRefunded(ChargeRefunded),
    /// A dispute was opened: the disputed tokens are reversed.
    DisputeOpened(DisputeEvent),
    /// A dispute was closed; when won, the reversed tokens come back.
    DisputeClosed { dispute: DisputeEvent, won: bool },
    /// A subscription's state, as Stripe now describes it.
    SubscriptionChanged(SubscriptionState),
    /// Acknowledged and recorded; no effect on billing.
    Ignore { why: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutPaid {
    pub session: String,
    pub user: Option<UserId>,
    pub customer: Option<String>,
    pub payment_intent: Option<String>,
    pub amount_total: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePaid {
    pub invoice: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    /// From the subscription's metadata, which our Checkout sessions set.
    pub user: Option<UserId>,
    pub billing_reason: Option<String>,
    /// Price ids and quantities of the invoice's lines.
    pub lines: Vec<(String, i64)>,
    pub amount_paid: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRefunded {
    pub charge: String,
    pub payment_intent: Option<String>,
    /// What was charged.
    pub amount: i64,
    /// Everything refunded so far on this charge.
    pub amount_refunded: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeEvent {
    pub dispute: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub subscription: String,
    pub customer: String,
    pub user: Option<UserId>,
    pub status: String,
    pub price: Option<String>,
    /// Unix seconds; from the first item (Stripe moved it off the subscription in 2025).
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    /// Seconds: the event's time, so an older event never overwrites a newer state.
    pub as_of: i64,
}

/// Reads what `event` means for billing.
pub fn interpret(event: &Envelope) -> Result<Effect, EventError> {
    let object = &event.data.object;
    let missing = |field| EventError::Missing {
        kind: event.kind.clone(),
        field,
    };
    Ok(match event.kind.as_str() {
        "checkout.session.completed"
        | "checkout.session.async_payment_succeeded"
        | "checkout.session.async_payment_failed" => {
            let session = str_at(object, &["id"]).ok_or_else(|| missing("id"))?;
            match str_at(object, &["mode"]).as_deref() {
                Some("payment") => {}
                Some("subscription") => {
                    return Ok(if event.kind == "checkout.session.completed" {
                        Effect::SubscriptionCheckout {
                            session,
                            user: user_of(object),
                            customer: str_at(object, &["customer"]),
                        }
                    } else {
                        Effect::Ignore {
                            why: "subscription payments are credited by invoice.paid",
                        }
                    });
                }
                _ => {
                    return Ok(Effect::Ignore {
                        why: "not a token purchase (setup mode)",
                    });
                }
            }
            if event.kind == "checkout.session.async_payment_failed" {
                return Ok(Effect::CheckoutPaymentFailed { session });
            }
            match str_at(object, &["payment_status"]).as_deref() {
                Some("paid") => Effect::CheckoutPaid(CheckoutPaid {
                    user: user_of(object),
                    customer: str_at(object, &["customer"]),
                    payment_intent: str_at(object, &["payment_intent"]),
                    amount_total: money(object, "amount_total"),
                    session,
                }),
                Some("unpaid") => Effect::CheckoutAwaitingPayment { session },
                _ => Effect::Ignore {
                    why: "no payment required: nothing was bought",
                },
            }
        }
        "invoice.paid" | "invoice.payment_succeeded" => {
            let lines = object
                .pointer("/lines/data")
                .and_then(Value::as_array)
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(|line| {
                            let price = str_at(line, &["pricing", "price_details", "price"])?;
                            let quantity =
                                line.get("quantity").and_then(Value::as_i64).unwrap_or(1);
                            Some((price, quantity))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let details = object.pointer("/parent/subscription_details");
            Effect::InvoicePaid(InvoicePaid {
                invoice: str_at(object, &["id"]).ok_or_else(|| missing("id"))?,
                customer: str_at(object, &["customer"]),
                subscription: details.and_then(|d| str_at(d, &["subscription"])),
                user: details.and_then(|d| user_in_metadata(d.get("metadata")?)),
                billing_reason: str_at(object, &["billing_reason"]),
                lines,
                amount_paid: money(object, "amount_paid"),
            })
        }
        "charge.refunded" => Effect::ChargeRefunded(ChargeRefunded {
            charge: str_at(object, &["id"]).ok_or_else(|| missing("id"))?,
            payment_intent: str_at(object, &["payment_intent"]),
            amount: int_at(object, "amount").ok_or_else(|| missing("amount"))?,
            amount_refunded: int_at(object, "amount_refunded")
                .ok_or_else(|| missing("amount_refunded"))?,
        }),
        "charge.dispute.created" | "charge.dispute.funds_withdrawn" | "charge.dispute.closed" => {
            let dispute = DisputeEvent {
                dispute: str_at(object, &["id"]).ok_or_else(|| missing("id"))?,
                charge: str_at(object, &["charge"]),
                payment_intent: str_at(object, &["payment_intent"]),
                amount: int_at(object, "amount").ok_or_else(|| missing("amount"))?,
            };
            let status = str_at(object, &["status"]);
            // An inquiry (`warning_needs_response`...) takes no money, so no tokens either. If
            // it becomes a chargeback, Stripe withdraws the funds and says so with
            // `funds_withdrawn`, which reverses under the same key as `created`: once.
            let inquiry = status.as_deref().is_some_and(|s| s.starts_with("warning_"));
            match event.kind.as_str() {
                "charge.dispute.closed" => Effect::DisputeClosed {
                    won: status.as_deref() == Some("won"),
                    dispute,
                },
                _ if inquiry => Effect::Ignore {
                    why: "a dispute inquiry: no money was taken",
                },
                _ => Effect::DisputeOpened(dispute),
            }
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            let first_item = object.pointer("/items/data/0");
            Effect::SubscriptionChanged(SubscriptionState {
                subscription: str_at(object, &["id"]).ok_or_else(|| missing("id"))?,
                customer: str_at(object, &["customer"]).ok_or_else(|| missing("customer"))?,
                user: object.get("metadata").and_then(user_in_metadata),
                status: if event.kind == "customer.subscription.deleted" {
                    "canceled".to_owned()
                } else {
                    str_at(object, &["status"]).ok_or_else(|| missing("status"))?
                },
                price: first_item.and_then(|item| str_at(item, &["price", "id"])),
                current_period_end: first_item.and_then(|item| int_at(item, "current_period_end")),
                cancel_at_period_end: object
                    .get("cancel_at_period_end")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                cancel_at: int_at(object, "cancel_at"),
                canceled_at: int_at(object, "canceled_at"),
                as_of: event.created,
            })
        }
        _ => Effect::Ignore {
            why: "not an event billing acts on",
        },
    })
}

/// A string at `path`; an expanded object counts by its `id`.
fn str_at(value: &Value, path: &[&str]) -> Option<String> {
    let mut at = value;
    for key in path {
        at = at.get(key)?;
    }
    match at {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn int_at(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

fn money(object: &Value, key: &str) -> Option<Money> {
    let currency = Currency::parse(object.get("currency")?.as_str()?).ok()?;
    Money::new(int_at(object, key)?, currency).ok()
}

/// Our user id: `client_reference_id` first, then `metadata.user_id`.
fn user_of(object: &Value) -> Option<UserId> {
    str_at(object, &["client_reference_id"])
        .and_then(|id| id.parse().ok())
        .or_else(|| object.get("metadata").and_then(user_in_metadata))
}

fn user_in_metadata(metadata: &Value) -> Option<UserId> {
    metadata.get("user_id")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(fixture: &str) -> Envelope {
        let path = format!(
            "{}/src/stripe/fixtures/{fixture}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Envelope::parse(&body).unwrap()
    }

    fn effect(fixture: &str) -> Effect {
        interpret(&read(fixture)).unwrap()
    }

    fn usd(minor: i64) -> Option<Money> {
        Some(Money::new(minor, Currency::parse("usd").unwrap()).unwrap())
    }

    fn user() -> Option<UserId> {
        Some(UserId::new(42).unwrap())
    }

    #[test]
    fn a_paid_checkout_is_a_purchase_of_its_session() {
        assert_eq!(
            effect("checkout_session_completed"),
            Effect::CheckoutPaid(CheckoutPaid {
                session: "cs_test_a1Yx0h6Wb3kHq1".into(),
                user: user(),
                customer: Some("cus_RY2s9xN1mT0aQe".into()),
                payment_intent: Some("pi_3QfJ8jLkdIwHu7ix0x9Y".into()),
                amount_total: usd(4000),
            })
        );
        // The asynchronous success names the same session: the same purchase.
        assert!(matches!(
            effect("checkout_session_async_payment_succeeded"),
            Effect::CheckoutPaid(CheckoutPaid { session, .. }) if session == "cs_test_a1Yx0h6Wb3kHq1"
        ));
    }

    #[test]
    fn an_unpaid_checkout_waits_and_a_subscription_checkout_credits_nothing() {
        assert_eq!(
            effect("checkout_session_completed_unpaid"),
            Effect::CheckoutAwaitingPayment {
                session: "cs_test_a1Yx0h6Wb3kHq1".into()
            }
        );
        assert_eq!(
            effect("checkout_session_completed_subscription"),
            Effect::SubscriptionCheckout {
                session: "cs_test_a1Yx0h6Wb3kHq1".into(),
                user: user(),
                customer: Some("cus_RY2s9xN1mT0aQe".into()),
            }
        );
    }

    #[test]
    fn invoices_read_the_2025_shape() {
        assert_eq!(
            effect("invoice_paid"),
            Effect::InvoicePaid(InvoicePaid {
                invoice: "in_1QfJ9BL".into(),
                customer: Some("cus_RY2s9xN1mT0aQe".into()),
                subscription: Some("sub_1QfJ9AL".into()),
                user: user(),
                billing_reason: Some("subscription_create".into()),
                lines: vec![("price_starter".into(), 1)],
                amount_paid: usd(3500),
            })
        );
    }

    #[test]
    fn refunds_carry_the_cumulative_amount() {
        assert_eq!(
            effect("charge_refunded"),
            Effect::ChargeRefunded(ChargeRefunded {
                charge: "ch_3QfJ8jLkdIwHu7ix".into(),
                payment_intent: Some("pi_3QfJ8jLkdIwHu7ix0x9Y".into()),
                amount: 4000,
                amount_refunded: 1000,
            })
        );
    }

    #[test]
    fn disputes_open_and_close() {
        let dispute = DisputeEvent {
            dispute: "du_1QfJAAL".into(),
            charge: Some("ch_3QfJ8jLkdIwHu7ix".into()),
            payment_intent: Some("pi_3QfJ8jLkdIwHu7ix0x9Y".into()),
            amount: 4000,
        };
        assert_eq!(
            effect("charge_dispute_created"),
            Effect::DisputeOpened(dispute.clone())
        );
        assert_eq!(
            effect("charge_dispute_closed_won"),
            Effect::DisputeClosed {
                dispute: dispute.clone(),
                won: true
            }
        );
        // The chargeback's withdrawal is the same reversal as its opening (one key: once).
        let mut withdrawn = read("charge_dispute_created");
        withdrawn.kind = "charge.dispute.funds_withdrawn".into();
        assert_eq!(
            interpret(&withdrawn).unwrap(),
            Effect::DisputeOpened(dispute)
        );
    }

    #[test]
    fn a_dispute_inquiry_takes_nothing() {
        for kind in ["charge.dispute.created", "charge.dispute.funds_withdrawn"] {
            let mut inquiry = read("charge_dispute_created");
            inquiry.kind = kind.into();
            inquiry.data.object["status"] = "warning_needs_response".into();
            assert!(
                matches!(interpret(&inquiry).unwrap(), Effect::Ignore { .. }),
                "{kind}"
            );
        }
        let mut closed = read("charge_dispute_closed_won");
        closed.data.object["status"] = "warning_closed".into();
        assert!(matches!(
            interpret(&closed).unwrap(),
            Effect::DisputeClosed { won: false, .. }
        ));
    }

    #[test]
    fn subscriptions_read_the_period_from_their_item() {
        assert_eq!(
            effect("customer_subscription_updated"),
            Effect::SubscriptionChanged(SubscriptionState {
                subscription: "sub_1QfJ9AL".into(),
                customer: "cus_RY2s9xN1mT0aQe".into(),
                user: user(),
                status: "active".into(),
                price: Some("price_starter".into()),
                current_period_end: Some(1_798_192_090),
                cancel_at_period_end: true,
                cancel_at: Some(1_798_192_090),
                canceled_at: Some(1_795_600_390),
                as_of: 1_795_600_400,
            })
        );
        let mut deleted = read("customer_subscription_updated");
        deleted.kind = "customer.subscription.deleted".into();
        assert!(matches!(
            interpret(&deleted).unwrap(),
            Effect::SubscriptionChanged(SubscriptionState { status, .. }) if status == "canceled"
        ));
    }

    #[test]
    fn other_events_are_acknowledged_without_effect() {
        assert!(matches!(effect("customer_created"), Effect::Ignore { .. }));
    }

    #[test]
    fn malformed_events_are_refused_before_anything_is_kept() {
        for body in [
            &b"not json"[..],
            b"{}",
            br#"{"id":"evt_1","type":"x","created":1}"#,
            br#"{"id":"not-an-event","type":"x","created":1,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"x","created":"yesterday","data":{"object":{}}}"#,
        ] {
            assert!(
                Envelope::parse(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let mut no_amount = read("charge_refunded");
        no_amount
            .data
            .object
            .as_object_mut()
            .unwrap()
            .remove("amount_refunded");
        assert_eq!(
            interpret(&no_amount).unwrap_err(),
            EventError::Missing {
                kind: "charge.refunded".into(),
                field: "amount_refunded"
            }
        );
    }
}
