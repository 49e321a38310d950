//! Property tests: whatever arrives at the webhook, the signature check and the event parser
//! answer without panicking, nothing unsigned ever passes, and each field of Stripe's real
//! events matters exactly as far as billing reads it.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::Value;

use super::events::{Envelope, interpret};
use super::signature::{self, SignatureError};
use crate::domain::UserId;

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
        CHECKOUT_UNPAID_READS,
    ),
    (
        "checkout_session_completed_subscription",
        include_str!("fixtures/checkout_session_completed_subscription.json"),
        CHECKOUT_SUBSCRIPTION_READS,
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

/// A paid session in payment mode: what its credit is made of.
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

/// A session still waiting for its payment: only which session it is, and that it waits (who
/// pays and how much are read when it pays).
const CHECKOUT_UNPAID_READS: &[&str] = &["/id", "/mode", "/payment_status"];

/// A subscription bought through Checkout: the customer to link to the user (the tokens come
/// with each paid invoice, so the session's payment fields are not read).
const CHECKOUT_SUBSCRIPTION_READS: &[&str] = &[
    "/id",
    "/mode",
    "/client_reference_id",
    "/metadata/user_id",
    "/customer",
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

/// What a field billing reads must hold for billing to read it at all.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A non-empty string, or an expanded object with its `id`.
    Id,
    /// Our user's id, as text.
    UserId,
    Bool,
    Int,
}

impl Kind {
    fn reads(self, value: Option<&Value>) -> bool {
        match (self, value) {
            (_, None) => false,
            (Kind::Id, Some(Value::String(s))) => !s.is_empty(),
            (Kind::Id, Some(Value::Object(o))) => o.get("id").is_some_and(Value::is_string),
            (Kind::UserId, Some(Value::String(s))) => s.parse::<UserId>().is_ok(),
            (Kind::Bool, Some(v)) => v.is_boolean(),
            (Kind::Int, Some(v)) => v.is_i64(),
            _ => false,
        }
    }
}

/// Why, by billing's own rule, a change to a field it reads can leave the effect as it was.
#[derive(Debug, Clone, Copy)]
enum Same {
    /// Optional: missing or unreadable, it is read as this default, which the fixture holds.
    DefaultsTo(Usual),
    /// One of two places for one value: unreadable here, the value is read from the other
    /// (`*` is the same line), which the fixture fills too.
    FallsBackTo(&'static str),
    /// Read only when the other place is unreadable, which the fixture fills: any change here
    /// goes unread.
    Behind(&'static str),
}

/// What Stripe leaves out when it is the usual.
#[derive(Debug, Clone, Copy)]
enum Usual {
    False,
    One,
}

impl Usual {
    fn json(self) -> Value {
        match self {
            Usual::False => Value::Bool(false),
            Usual::One => Value::from(1),
        }
    }
}

/// Each field billing reads whose change may mean the same, with how it is read and why.
/// Any other change to a field billing reads must change the effect or be refused by name.
const EQUIVALENT: &[(&str, Kind, Same)] = &[
    // A Checkout session names our user twice, `client_reference_id` first.
    (
        "/client_reference_id",
        Kind::UserId,
        Same::FallsBackTo("/metadata/user_id"),
    ),
    (
        "/metadata/user_id",
        Kind::UserId,
        Same::Behind("/client_reference_id"),
    ),
    // An invoice line's price before 2025: the line's `price`, else its `plan`.
    (
        "/lines/data/*/price",
        Kind::Id,
        Same::FallsBackTo("/lines/data/*/plan"),
    ),
    (
        "/lines/data/*/price/id",
        Kind::Id,
        Same::FallsBackTo("/lines/data/*/plan"),
    ),
    (
        "/lines/data/*/plan",
        Kind::Id,
        Same::Behind("/lines/data/*/price"),
    ),
    (
        "/lines/data/*/plan/id",
        Kind::Id,
        Same::Behind("/lines/data/*/price"),
    ),
    // Left out when usual: no more lines, one of each, no proration.
    (
        "/lines/has_more",
        Kind::Bool,
        Same::DefaultsTo(Usual::False),
    ),
    (
        "/lines/data/*/quantity",
        Kind::Int,
        Same::DefaultsTo(Usual::One),
    ),
    (
        "/lines/data/*/proration",
        Kind::Bool,
        Same::DefaultsTo(Usual::False),
    ),
    (
        "/lines/data/*/parent/subscription_item_details/proration",
        Kind::Bool,
        Same::DefaultsTo(Usual::False),
    ),
];

/// Whether `pointer` is `pattern` (`*` for any array index).
fn matches(pattern: &str, pointer: &str) -> bool {
    let (pattern, field): (Vec<&str>, Vec<&str>) =
        (pattern.split('/').collect(), pointer.split('/').collect());
    pattern.len() == field.len() && field.iter().zip(&pattern).all(|(f, p)| *p == "*" || f == p)
}

/// `other` with each `*` the index `field` has there.
fn beside(other: &str, field: &str) -> String {
    let at: Vec<&str> = field.split('/').collect();
    other
        .split('/')
        .enumerate()
        .map(|(i, part)| if part == "*" { at[i] } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

/// Why changing `field` of `object` to `to` (`None`: dropped) means the same by billing's
/// rules; `None` when nothing says it does. A field that holds others (an object, or null where
/// Stripe may put one) means the same when every field billing reads inside it, dropped, does.
/// The rules that said so are added to `used`.
fn why_the_same(
    object: &Value,
    reads: &[&str],
    field: &str,
    to: Option<&Value>,
    used: &mut BTreeSet<&'static str>,
) -> Option<String> {
    if let Some((pattern, kind, same)) = EQUIVALENT.iter().find(|(p, ..)| matches(p, field)) {
        let filled = |other: &str| kind.reads(object.pointer(&beside(other, field)));
        let why = match *same {
            Same::DefaultsTo(usual) => (!kind.reads(to)
                && object.pointer(field) == Some(&usual.json()))
            .then(|| format!("{field} is read as its default, {}", usual.json())),
            Same::FallsBackTo(other) => (!kind.reads(to) && filled(other))
                .then(|| format!("{field} is unreadable, so {other} is read")),
            Same::Behind(first) => {
                filled(first).then(|| format!("{field} is read only without {first}"))
            }
        };
        if why.is_some() {
            used.insert(pattern);
        }
        return why;
    }
    if reads.iter().any(|read| matches(read, field)) {
        return None;
    }
    let mut inside = Vec::new();
    pointers(object.pointer(field)?, field, &mut inside);
    let read_inside: Vec<&String> = inside
        .iter()
        .filter(|p| reads.iter().any(|read| matches(read, p)))
        .collect();
    read_inside
        .iter()
        .all(|p| why_the_same(object, reads, p, None, used).is_some())
        .then(|| format!("{field} holds only fields that mean the same dropped: {read_inside:?}"))
}

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
        // A number as text (our user ids) also becomes another number.
        Value::String(s) => {
            out.push(Some(Value::from(format!("{s}x"))));
            if let Ok(n) = s.parse::<i64>() {
                out.push(Some(Value::from((n + 1).to_string())));
            }
        }
        Value::Number(n) => out.push(Some(Value::from(n.as_i64().unwrap_or(0) + 1))),
        Value::Bool(b) => out.push(Some(Value::from(!b))),
        _ => {}
    }
    out
}

/// `event` with the field at `full` (a pointer from the event's top) changed `to` (`None`:
/// dropped).
fn mutated(event: &Value, full: &str, to: Option<&Value>) -> Value {
    let mut event = event.clone();
    match to {
        Some(value) => *event.pointer_mut(full).unwrap() = value.clone(),
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
/// changes nothing it decides; a change to one it reads is refused by its name, or understood
/// (the effect changes), or means the same by a rule of [`EQUIVALENT`] that this fixture meets.
#[test]
fn each_field_of_each_fixture_dropped_retyped_or_changed_maps_or_is_refused() {
    let mut checked = 0;
    let mut understood = 0;
    let mut used = BTreeSet::new();
    for (name, text, reads) in FIXTURES {
        let event: Value = serde_json::from_str(text).unwrap();
        let object = &event["data"]["object"];
        let original = interpret(&Envelope::parse(text.as_bytes()).unwrap())
            .unwrap_or_else(|e| panic!("{name} maps: {e}"));
        let mut fields = Vec::new();
        pointers(object, "", &mut fields);
        for field in &fields {
            let at = object.pointer(field).unwrap();
            for change in mutations(at) {
                if change.as_ref() == Some(at) {
                    continue; // not a change
                }
                let changed = mutated(&event, &format!("/data/object{field}"), change.as_ref());
                let envelope = Envelope::parse(changed.to_string().as_bytes())
                    .unwrap_or_else(|e| panic!("{name}{field}: the envelope still parses: {e}"));
                let effect = interpret(&envelope);
                checked += 1;
                if !is_read(field, reads) {
                    assert_eq!(
                        effect.as_ref(),
                        Ok(&original),
                        "{name}: changing {field} (not read) to {change:?} changed the effect"
                    );
                    continue;
                }
                match &effect {
                    Err(error) => {
                        let named = match error {
                            super::events::EventError::Missing { field: missing, .. } => {
                                field.trim_start_matches('/').starts_with(missing)
                                    || reads.iter().any(|r| r.trim_start_matches('/') == *missing)
                            }
                            super::events::EventError::Malformed(_) => false,
                        };
                        assert!(named, "{name}: changing {field} to {change:?}: {error}");
                    }
                    Ok(effect) if *effect != original => understood += 1,
                    Ok(_) => {
                        if why_the_same(object, reads, field, change.as_ref(), &mut used).is_none()
                        {
                            panic!(
                                "{name}: {field} changed to {change:?} was accepted, but the \
                                 effect is as before and no rule of EQUIVALENT says why"
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1_000, "only {checked} mutations were checked");
    assert!(
        understood > 200,
        "only {understood} changes were understood"
    );
    // Every rule of EQUIVALENT is needed by some fixture: none is left over, excusing nothing.
    for (pattern, ..) in EQUIVALENT {
        assert!(
            used.contains(pattern),
            "no fixture needs the rule for {pattern}"
        );
    }
}

/// The envelope of each fixture, changed one field at a time in every way: a broken `id`,
/// `type` or `created` is refused by its name; a change still of its kind is read as it is.
#[test]
fn each_envelope_field_changed_is_read_as_it_is_or_refused_by_name() {
    let mut checked = 0;
    for (name, text, _) in FIXTURES {
        let event: Value = serde_json::from_str(text).unwrap();
        for key in ["id", "type", "created"] {
            let at = &event[key];
            for change in mutations(at) {
                if change.as_ref() == Some(at) {
                    continue;
                }
                let changed = mutated(&event, &format!("/{key}"), change.as_ref());
                checked += 1;
                match Envelope::parse(changed.to_string().as_bytes()) {
                    Err(super::events::EventError::Malformed(why)) => assert!(
                        why.contains(&format!("`{key}`")),
                        "{name}: {key} changed to {change:?} is refused without naming it: {why}"
                    ),
                    Err(other) => panic!("{name}: {key} changed to {change:?}: {other}"),
                    Ok(envelope) => {
                        let read = match key {
                            "id" => Value::from(envelope.id),
                            "type" => Value::from(envelope.kind),
                            _ => Value::from(envelope.created),
                        };
                        assert_eq!(
                            Some(&read),
                            change.as_ref(),
                            "{name}: {key} changed to {change:?} is read as something else"
                        );
                    }
                }
            }
        }
    }
    assert!(
        checked > 150,
        "only {checked} envelope changes were checked"
    );
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
