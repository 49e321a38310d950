//! Property tests: whatever arrives at the webhook, the signature check and the event parser
//! answer without panicking, and nothing unsigned ever passes.

use proptest::prelude::*;
use serde_json::Value;

use super::events::{Envelope, interpret};
use super::signature::{self, SignatureError};

const SECRET: &str = "whsec_property";
const NOW: i64 = 1_800_000_000;

/// JSON values of any shape, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::String),
        Just(Value::String("evt_1".into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    "[a-z_]{1,10}",
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("data".to_owned()),
                    Just("object".to_owned()),
                    Just("amount".to_owned()),
                    Just("mode".to_owned()),
                    Just("payment_status".to_owned()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const KINDS: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "invoice.paid",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "something.else",
];

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

    #[test]
    fn any_object_of_any_event_type_maps_or_is_refused(object in json(), kind in prop::sample::select(KINDS)) {
        let event = serde_json::json!({
            "id": "evt_prop", "type": kind, "created": NOW, "data": { "object": object }
        });
        let envelope = Envelope::parse(event.to_string().as_bytes()).unwrap();
        let _ = interpret(&envelope);
    }
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
