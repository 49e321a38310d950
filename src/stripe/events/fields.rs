//! Reading fields out of an event's JSON.

use serde_json::Value;

use crate::domain::{Currency, Money, UserId};

/// A string at `path`; an expanded object counts by its `id`.
pub(super) fn str_at(value: &Value, path: &[&str]) -> Option<String> {
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

pub(super) fn int_at(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

pub(super) fn money(object: &Value, key: &str) -> Option<Money> {
    let currency = Currency::parse(object.get("currency")?.as_str()?).ok()?;
    Money::new(int_at(object, key)?, currency).ok()
}

/// Our user id: `client_reference_id` first, then `metadata.user_id`.
pub(super) fn user_of(object: &Value) -> Option<UserId> {
    str_at(object, &["client_reference_id"])
        .and_then(|id| id.parse().ok())
        .or_else(|| object.get("metadata").and_then(user_in_metadata))
}

pub(super) fn user_in_metadata(metadata: &Value) -> Option<UserId> {
    metadata.get("user_id")?.as_str()?.parse().ok()
}
