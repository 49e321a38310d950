//! Property tests: whatever arrives at the webhook, the signature check and the event parser
//! answer without panicking, nothing unsigned ever passes, and each field of Stripe's real
//! events matters exactly as far as billing reads it.

use proptest::prelude::*;
use serde_json::Value;

use super::events::{Envelope, interpret};
use super::signature::{self, SignatureError};

const SECRET: &str = "whsec_property";
const NOW: i64 = 1_800_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_header_is_answered_and_only_a_real_signature_passes(header in ".{0,300}", body in ".{0,200}") {
        let result = signature::verify(body.as_bytes(), &header, SECRET, NOW);
        prop_assert_ne!(result, Ok(()));
    }

    #[test]
    fn header_shaped_noise_never_verifies(t in any::<i64>(), sigs in prop::collection::vec("[0-9a-f]{0,70}", 0..4)) {
        let header = std::iter::once(format!("t={t}"))
            .chain(sigs.iter().map(|s| format!("v1={s}")))
            .collect::<Vec<_>>()
            .join(",");
        let result = signature::verify(b"{}", &header, SECRET, NOW);
        prop_assert!(matches!(
            result,
            Err(SignatureError::NoMatch | SignatureError::Malformed | SignatureError::Missing)
        ), "{result:?}");
    }

    #[test]
    fn a_signature_survives_only_its_own_body(body in ".{0,200}", other in ".{0,200}") {
        let header = signature::sign(body.as_bytes(), SECRET, NOW);
        prop_assert_eq!(signature::verify(body.as_bytes(), &header, SECRET, NOW), Ok(()));
        if other != body {
            prop_assert_eq!(
                signature::verify(other.as_bytes(), &header, SECRET, NOW),
                Err(SignatureError::NoMatch)
            );
        }
    }

    #[test]
    fn any_bytes_are_parsed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Envelope::parse(&bytes);
    }

}

/// The recorded fixtures, each with the fields of its object that billing reads (as JSON
/// pointers under `data.object`, `*` for any array index): the rest must not matter.
const FIXTURES: &[(&str, &str, &[&str])] = &[
    (
        "checkout_session_completed",
        include_str!("fixtures/checkout_session_completed.json"),
        CHECKOUT_READS,
    ),
    (
        "checkout_session_completed_unpaid",
        include_str!("fixtures/checkout_session_completed_unpaid.json"),
        CHECKOUT_READS,
    ),
    (
        "checkout_session_completed_subscription",
        include_str!("fixtures/checkout_session_completed_subscription.json"),
        CHECKOUT_READS,
    ),
    (
        "checkout_session_async_payment_succeeded",
        include_str!("fixtures/checkout_session_async_payment_succeeded.json"),
        CHECKOUT_READS,
    ),
    (
        "invoice_paid",
        include_str!("fixtures/invoice_paid.json"),
        INVOICE_READS,
    ),
    (
        "invoice_paid_before_2025",
        include_str!("fixtures/invoice_paid_before_2025.json"),
        INVOICE_READS,
    ),
    (
        "charge_refunded",
        include_str!("fixtures/charge_refunded.json"),
        &["/id", "/payment_intent"],
    ),
    (
        "charge_dispute_created",
        include_str!("fixtures/charge_dispute_created.json"),
        DISPUTE_READS,
    ),
    (
        "charge_dispute_closed_won",
        include_str!("fixtures/charge_dispute_closed_won.json"),
        DISPUTE_READS,
    ),
    (
        "customer_subscription_updated",
        include_str!("fixtures/customer_subscription_updated.json"),
        &[
            "/id",
            "/customer",
            "/metadata/user_id",
            "/status",
            "/items/data/0/price/id",
            "/items/data/0/current_period_end",
            "/cancel_at_period_end",
            "/cancel_at",
            "/canceled_at",
        ],
    ),
    (
        "customer_created",
        include_str!("fixtures/customer_created.json"),
        &[],
    ),
];

const CHECKOUT_READS: &[&str] = &[
    "/id",
    "/mode",
    "/payment_status",
    "/client_reference_id",
    "/metadata/user_id",
    "/customer",
    "/payment_intent",
    "/amount_total",
    "/currency",
];

const INVOICE_READS: &[&str] = &[
    "/id",
    "/customer",
    "/parent/subscription_details/subscription",
    "/parent/subscription_details/metadata/user_id",
    "/subscription",
    "/subscription_details/metadata/user_id",
    "/billing_reason",
    "/lines/has_more",
    "/lines/data/*/pricing/price_details/price",
    "/lines/data/*/price/id",
    "/lines/data/*/plan/id",
    "/lines/data/*/quantity",
    "/lines/data/*/amount",
    "/lines/data/*/parent/subscription_item_details/proration",
    "/lines/data/*/parent/invoice_item_details/proration",
    "/lines/data/*/proration",
    "/lines/data/*/period/start",
    "/lines/data/*/period/end",
    "/amount_paid",
    "/currency",
];

const DISPUTE_READS: &[&str] = &["/id", "/charge", "/payment_intent", "/amount", "/status"];

/// Every field of `value` (objects and arrays too), as JSON pointers.
fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (format!("{at}/{k}"), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{at}/{i}"), v))
            .collect(),
        _ => return,
    };
    for (pointer, child) in children {
        out.push(pointer.clone());
        pointers(child, &pointer, out);
    }
}

/// Whether billing reads the field at `pointer`, or a field inside it.
fn is_read(pointer: &str, reads: &[&str]) -> bool {
    reads.iter().any(|read| {
        let (read, field): (Vec<&str>, Vec<&str>) =
            (read.split('/').collect(), pointer.split('/').collect());
        // The field is read, or holds one that is (an ancestor of it).
        field.len() <= read.len() && field.iter().zip(&read).all(|(f, r)| *r == "*" || f == r)
    })
}

/// One field dropped, or given another type, or another value of its type.
fn mutations(original: &Value) -> Vec<Option<Value>> {
    let mut out = vec![
        None,
        Some(Value::Null),
        Some(Value::from("mutated")),
        Some(Value::from(7)),
        Some(Value::from(true)),
        Some(serde_json::json!({})),
    ];
    match original {
        Value::String(s) => out.push(Some(Value::from(format!("{s}x")))),
        Value::Number(n) => out.push(Some(Value::from(n.as_i64().unwrap_or(0) + 1))),
        Value::Bool(b) => out.push(Some(Value::from(!b))),
        _ => {}
    }
    out
}

fn mutated(event: &Value, pointer: &str, to: Option<&Value>) -> Value {
    let mut event = event.clone();
    let full = format!("/data/object{pointer}");
    match to {
        Some(value) => *event.pointer_mut(&full).unwrap() = value.clone(),
        None => {
            let (parent, key) = full.rsplit_once('/').unwrap();
            match event.pointer_mut(parent).unwrap() {
                Value::Object(map) => {
                    map.remove(key);
                }
                Value::Array(items) => {
                    items.remove(key.parse::<usize>().unwrap());
                }
                _ => unreachable!("a field's parent holds it"),
            }
        }
    }
    event
}

/// Each real fixture, changed one field at a time in every way: a field billing does not read
/// changes nothing it decides; one it reads is either understood or refused by its name, and
/// never reaches past the parser as something else.
#[test]
fn each_field_of_each_fixture_dropped_retyped_or_changed_maps_or_is_refused() {
    let mut checked = 0;
    for (name, text, reads) in FIXTURES {
        let event: Value = serde_json::from_str(text).unwrap();
        let original = interpret(&Envelope::parse(text.as_bytes()).unwrap())
            .unwrap_or_else(|e| panic!("{name} maps: {e}"));
        let mut fields = Vec::new();
        pointers(&event["data"]["object"], "", &mut fields);
        for field in &fields {
            let at = event["data"]["object"].pointer(field).unwrap();
            for change in mutations(at) {
                let changed = mutated(&event, field, change.as_ref());
                let envelope = Envelope::parse(changed.to_string().as_bytes())
                    .unwrap_or_else(|e| panic!("{name}{field}: the envelope still parses: {e}"));
                let effect = interpret(&envelope);
                if !is_read(field, reads) {
                    assert_eq!(
                        effect.as_ref(),
                        Ok(&original),
                        "{name}: changing {field} (not read) to {change:?} changed the effect"
                    );
                } else if let Err(error) = &effect {
                    let named = match error {
                        super::events::EventError::Missing { field: missing, .. } => {
                            field.trim_start_matches('/').starts_with(missing)
                                || reads.iter().any(|r| r.trim_start_matches('/') == *missing)
                        }
                        super::events::EventError::Malformed(_) => false,
                    };
                    assert!(named, "{name}: changing {field} to {change:?}: {error}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1_000, "only {checked} mutations were checked");
}

#[test]
fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Envelope::parse(deep.as_bytes()).is_err());
    let nested_object = format!(
        r#"{{"id":"evt_1","type":"x","created":1,"data":{{"object":{}1{}}}}}"#,
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    assert!(Envelope::parse(nested_object.as_bytes()).is_err());
}
