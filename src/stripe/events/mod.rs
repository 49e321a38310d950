//! Stripe events, read into what they mean for billing. Pure functions: no I/O, no clock.
//!
//! Only the fields billing needs are read, each where Stripe's current API puts it (see
//! docs/BILLING.md); anything else in the payload is ignored, so an event from a newer API
//! version still maps as long as those fields stay put. What to do about an event (credit,
//! reverse, record) is decided here; the fulfilment module carries it out.

use serde::Deserialize;
use serde_json::Value;

mod disputes;
mod fields;
mod invoices;

pub use disputes::DisputeStatus;
pub use invoices::{BillingReason, InvoiceLine, InvoicePaid, invoice, invoice_line};

use crate::domain::{Money, UserId};
use crate::stripe::status::SubscriptionStatus;
use fields::{int_at, money, str_at, user_in_metadata, user_of};

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
            serde_json::from_slice(body).map_err(|e| EventError::Malformed(at_fault(body, &e)))?;
        if !envelope.id.starts_with("evt_") || envelope.id.len() > 255 {
            return Err(EventError::Malformed(
                "the event's `id` must start with evt_ (at most 255 characters)".into(),
            ));
        }
        Ok(envelope)
    }
}

/// Why an envelope was refused, naming its field: serde names a missing one, but of one of the
/// wrong type it says only what it expected. Runs only for a refused body.
fn at_fault(body: &[u8], error: &serde_json::Error) -> String {
    type Check = fn(&Value) -> bool;
    let fields: [(&str, Check); 5] = [
        ("id", Value::is_string),
        ("type", Value::is_string),
        ("created", Value::is_i64),
        ("livemode", Value::is_boolean),
        ("data", |data| data.get("object").is_some()),
    ];
    if error.is_data()
        && let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(body)
        && let Some((field, _)) = fields
            .iter()
            .find(|(field, ok)| event.get(*field).is_some_and(|v| !ok(v)))
    {
        return format!("`{field}`: {error}");
    }
    error.to_string()
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
    /// A charge's refunds changed (one made, one failed): Stripe is asked what they are now.
    RefundsChanged(RefundsChanged),
    /// Stripe says where a dispute stands.
    Dispute(DisputeEvent),
    /// A subscription's state, as Stripe now describes it.
    SubscriptionChanged(SubscriptionState),
    /// A setup-mode Checkout completed: the card it saved is auto top-up's (Stripe is asked
    /// which card; the session names no payment).
    CardSaved {
        session: String,
        user: Option<UserId>,
        customer: Option<String>,
    },
    /// A payment auto top-up made succeeded: credit its pack once per payment.
    TopUpPaid {
        payment_intent: String,
        topup: i64,
        user: Option<UserId>,
    },
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
pub struct RefundsChanged {
    pub charge: String,
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeEvent {
    pub dispute: String,
    pub charge: Option<String>,
    pub payment_intent: Option<String>,
    /// Minor units disputed.
    pub amount: i64,
    pub status: DisputeStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub subscription: String,
    pub customer: String,
    pub user: Option<UserId>,
    pub status: SubscriptionStatus,
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
                Some("setup") if event.kind == "checkout.session.completed" => {
                    return Ok(Effect::CardSaved {
                        session,
                        user: user_of(object),
                        customer: str_at(object, &["customer"]),
                    });
                }
                _ => {
                    return Ok(Effect::Ignore {
                        why: "not a token purchase",
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
        "payment_intent.succeeded" => {
            let metadata = object.get("metadata");
            match metadata
                .and_then(|m| m.get("topup_id"))
                .and_then(|id| id.as_str())
                .and_then(|id| id.parse::<i64>().ok())
            {
                Some(topup) => Effect::TopUpPaid {
                    payment_intent: str_at(object, &["id"]).ok_or_else(|| missing("id"))?,
                    topup,
                    user: metadata.and_then(user_in_metadata),
                },
                None => Effect::Ignore {
                    why: "a payment made elsewhere: Checkout's and invoices' events credit those",
                },
            }
        }
        "invoice.paid" | "invoice.payment_succeeded" => {
            Effect::InvoicePaid(invoice(object).map_err(&missing)?)
        }
        "charge.refunded" => Effect::RefundsChanged(RefundsChanged {
            charge: str_at(object, &["id"]).ok_or_else(|| missing("id"))?,
            payment_intent: str_at(object, &["payment_intent"]),
        }),
        "charge.refund.updated" | "refund.created" | "refund.updated" | "refund.failed" => {
            Effect::RefundsChanged(RefundsChanged {
                charge: str_at(object, &["charge"]).ok_or_else(|| missing("charge"))?,
                payment_intent: str_at(object, &["payment_intent"]),
            })
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated"
        | "charge.dispute.closed" => {
            let status = DisputeStatus::parse(
                &str_at(object, &["status"]).ok_or_else(|| missing("status"))?,
            );
            Effect::Dispute(DisputeEvent {
                dispute: str_at(object, &["id"]).ok_or_else(|| missing("id"))?,
                charge: str_at(object, &["charge"]),
                payment_intent: str_at(object, &["payment_intent"]),
                amount: int_at(object, "amount").ok_or_else(|| missing("amount"))?,
                // `funds_reinstated` says what its status says: a win, or the refunded part of
                // a payment disputed in full coming back with a loss.
                status,
            })
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
                    SubscriptionStatus::Canceled
                } else {
                    // A status this build does not know is no status it can read: the event
                    // is kept unfinished, for `server stripe replay` once the code knows it.
                    str_at(object, &["status"])
                        .and_then(|raw| SubscriptionStatus::parse(&raw))
                        .ok_or_else(|| missing("status"))?
                },
                price: first_item.and_then(|item| str_at(item, &["price", "id"])),
                // On the item since 2025; on the subscription before (events listed by
                // reconciliation keep the version they were made in).
                current_period_end: first_item
                    .and_then(|item| int_at(item, "current_period_end"))
                    .or_else(|| int_at(object, "current_period_end")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, Timestamp};

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

    fn period(start: i64, end: i64) -> Option<(Timestamp, Timestamp)> {
        Some((
            Timestamp::from_millis(start * 1000),
            Timestamp::from_millis(end * 1000),
        ))
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
                billing_reason: Some(BillingReason::SubscriptionCreate),
                lines: vec![InvoiceLine {
                    price: "price_starter".into(),
                    quantity: 1,
                    amount: 3500,
                    proration: false,
                    period: period(1795600090, 1798192090),
                }],
                lines_complete: true,
                amount_paid: usd(3500),
            })
        );
    }

    #[test]
    fn invoices_read_the_shape_before_2025_and_their_prorations() {
        assert_eq!(
            effect("invoice_paid_before_2025"),
            Effect::InvoicePaid(InvoicePaid {
                invoice: "in_1PzLegacy".into(),
                customer: Some("cus_RY2s9xN1mT0aQe".into()),
                subscription: Some("sub_1QfJ9AL".into()),
                user: user(),
                billing_reason: Some(BillingReason::SubscriptionCycle),
                lines: vec![
                    InvoiceLine {
                        price: "price_starter".into(),
                        quantity: 1,
                        amount: -1750,
                        proration: true,
                        period: period(1796896090, 1798192090),
                    },
                    InvoiceLine {
                        price: "price_starter".into(),
                        quantity: 2,
                        amount: 3500,
                        proration: true,
                        period: period(1796896090, 1798192090),
                    },
                    InvoiceLine {
                        price: "price_starter".into(),
                        quantity: 2,
                        amount: 7000,
                        proration: false,
                        period: period(1798192090, 1800784090),
                    },
                ],
                lines_complete: true,
                amount_paid: usd(8750),
            })
        );
    }

    #[test]
    fn every_refund_event_names_its_charge() {
        let charge = RefundsChanged {
            charge: "ch_3QfJ8jLkdIwHu7ix".into(),
            payment_intent: Some("pi_3QfJ8jLkdIwHu7ix0x9Y".into()),
        };
        assert_eq!(
            effect("charge_refunded"),
            Effect::RefundsChanged(charge.clone())
        );
        for kind in [
            "charge.refund.updated",
            "refund.created",
            "refund.updated",
            "refund.failed",
        ] {
            let mut refund = read("charge_refunded");
            refund.kind = kind.into();
            refund.data.object = serde_json::json!({
                "id": "re_3QfJ9x", "object": "refund", "amount": 1000,
                "charge": "ch_3QfJ8jLkdIwHu7ix", "payment_intent": "pi_3QfJ8jLkdIwHu7ix0x9Y",
                "status": "failed", "currency": "usd",
            });
            assert_eq!(
                interpret(&refund).unwrap(),
                Effect::RefundsChanged(charge.clone()),
                "{kind}"
            );
        }
    }

    #[test]
    fn disputes_say_where_they_stand() {
        let dispute = |status| {
            Effect::Dispute(DisputeEvent {
                dispute: "du_1QfJAAL".into(),
                charge: Some("ch_3QfJ8jLkdIwHu7ix".into()),
                payment_intent: Some("pi_3QfJ8jLkdIwHu7ix0x9Y".into()),
                amount: 4000,
                status,
            })
        };
        assert_eq!(
            effect("charge_dispute_created"),
            dispute(DisputeStatus::Chargeback)
        );
        assert_eq!(
            effect("charge_dispute_closed_won"),
            dispute(DisputeStatus::Won)
        );
        let as_kind = |kind: &str, status: &str| {
            let mut event = read("charge_dispute_created");
            event.kind = kind.into();
            event.data.object["status"] = status.into();
            interpret(&event).unwrap()
        };
        assert_eq!(
            as_kind("charge.dispute.funds_withdrawn", "needs_response"),
            dispute(DisputeStatus::Chargeback)
        );
        assert_eq!(
            as_kind("charge.dispute.funds_reinstated", "won"),
            dispute(DisputeStatus::Won)
        );
        assert_eq!(
            as_kind("charge.dispute.funds_reinstated", "lost"),
            dispute(DisputeStatus::Lost),
            "the refunded part of a payment disputed in full comes back with a loss"
        );
        assert_eq!(
            as_kind("charge.dispute.created", "warning_needs_response"),
            dispute(DisputeStatus::Inquiry)
        );
        assert_eq!(
            as_kind("charge.dispute.closed", "lost"),
            dispute(DisputeStatus::Lost)
        );
        assert_eq!(
            as_kind("charge.dispute.closed", "warning_closed"),
            dispute(DisputeStatus::InquiryClosed)
        );
        assert_eq!(
            as_kind("charge.dispute.updated", "prevented"),
            dispute(DisputeStatus::Other("prevented".into()))
        );
    }

    #[test]
    fn a_dispute_never_reopens_once_it_ended() {
        use DisputeStatus::*;
        assert_eq!(Inquiry.merged(Chargeback), Chargeback);
        assert_eq!(Chargeback.merged(Inquiry), Chargeback);
        assert_eq!(Chargeback.merged(Lost), Lost);
        assert_eq!(Won.merged(Chargeback), Won);
        assert_eq!(Lost.merged(Inquiry), Lost);
        assert_eq!(InquiryClosed.merged(Chargeback), InquiryClosed);
        assert_eq!(Won.merged(Lost), Won, "the first end stays");
        assert!(Chargeback.takes() && Lost.takes());
        assert!(!Inquiry.takes() && !Won.takes() && !InquiryClosed.takes());
    }

    #[test]
    fn subscriptions_read_the_period_from_their_item() {
        assert_eq!(
            effect("customer_subscription_updated"),
            Effect::SubscriptionChanged(SubscriptionState {
                subscription: "sub_1QfJ9AL".into(),
                customer: "cus_RY2s9xN1mT0aQe".into(),
                user: user(),
                status: SubscriptionStatus::Active,
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
        let mut no_amount = read("charge_dispute_created");
        no_amount
            .data
            .object
            .as_object_mut()
            .unwrap()
            .remove("amount");
        assert_eq!(
            interpret(&no_amount).unwrap_err(),
            EventError::Missing {
                kind: "charge.dispute.created".into(),
                field: "amount"
            }
        );
    }
}
