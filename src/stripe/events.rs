//! Stripe events, read into what they mean for billing. Pure functions: no I/O, no clock.
//!
//! Only the fields billing needs are read, each where Stripe's current API puts it (see
//! docs/BILLING.md); anything else in the payload is ignored, so an event from a newer API
//! version still maps as long as those fields stay put. What to do about an event (credit,
//! reverse, record) is decided here; the fulfilment module carries it out.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Currency, Money, UserId};
use crate::stripe::status::SubscriptionStatus;

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
    /// A charge's refunds changed (one made, one failed): Stripe is asked what they are now.
    RefundsChanged(RefundsChanged),
    /// Stripe says where a dispute stands.
    Dispute(DisputeEvent),
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

/// Where a dispute stands. An inquiry takes no money; a chargeback takes it until it is won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisputeStatus {
    /// `warning_needs_response`, `warning_under_review`.
    Inquiry,
    /// `warning_closed`: the inquiry ended without a chargeback.
    InquiryClosed,
    /// `needs_response`, `under_review`: the money is withdrawn.
    Chargeback,
    Won,
    Lost,
    /// A status this build does not know (kept as Stripe wrote it); it moves no tokens.
    Other(String),
}

impl DisputeStatus {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "warning_needs_response" | "warning_under_review" => Self::Inquiry,
            "warning_closed" => Self::InquiryClosed,
            "needs_response" | "under_review" => Self::Chargeback,
            "won" => Self::Won,
            "lost" => Self::Lost,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Inquiry => "warning_needs_response",
            Self::InquiryClosed => "warning_closed",
            Self::Chargeback => "needs_response",
            Self::Won => "won",
            Self::Lost => "lost",
            Self::Other(raw) => raw,
        }
    }

    /// Whether the customer's bank holds the money: the disputed tokens are taken.
    pub fn takes(&self) -> bool {
        matches!(self, Self::Chargeback | Self::Lost)
    }

    /// A dispute that ended stays ended, whatever older events arrive after.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::InquiryClosed | Self::Won | Self::Lost)
    }

    /// What the store keeps when it knew `self` and hears `news`: an end never reopens, and
    /// a chargeback never goes back to being an inquiry.
    pub fn merged(self, news: DisputeStatus) -> DisputeStatus {
        let rank = |s: &DisputeStatus| match s {
            s if s.is_final() => 2,
            DisputeStatus::Chargeback => 1,
            _ => 0,
        };
        if rank(&news) > rank(&self) || (rank(&news) == rank(&self) && !self.is_final()) {
            news
        } else {
            self
        }
    }
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
                    let raw = str_at(object, &["status"]).ok_or_else(|| missing("status"))?;
                    SubscriptionStatus::parse(&raw).ok_or_else(|| {
                        EventError::Malformed(format!("unknown subscription status `{raw}`"))
                    })?
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
                billing_reason: Some(BillingReason::SubscriptionCreate),
                lines: vec![InvoiceLine {
                    price: "price_starter".into(),
                    quantity: 1,
                    amount: 3500,
                    proration: false
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
                        proration: true
                    },
                    InvoiceLine {
                        price: "price_starter".into(),
                        quantity: 2,
                        amount: 3500,
                        proration: true
                    },
                    InvoiceLine {
                        price: "price_starter".into(),
                        quantity: 2,
                        amount: 7000,
                        proration: false
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
