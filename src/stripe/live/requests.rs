//! How the gateway asks Stripe and reads its answers: idempotency keys, errors sorted into
//! refused and unavailable, metadata, amounts and statuses, and plain GETs of the JSON
//! async-stripe has no type for.

use std::collections::HashMap;

use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::LiveGateway;
use crate::domain::{Currency, Money, UserId};
use crate::stripe::gateway::GatewayError;

pub(super) fn idempotent(key: &str) -> Result<RequestStrategy, GatewayError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| GatewayError::Refused(format!("idempotency key: {e}")))
}

/// Stripe's own refusals (4xx) are final; anything else may pass on a retry.
pub(super) fn classify(error: stripe::StripeError) -> GatewayError {
    match &error {
        stripe::StripeError::Stripe(api, status)
            if (400..500).contains(status) && *status != 429 =>
        {
            GatewayError::Refused(api.message.clone().unwrap_or_else(|| error.to_string()))
        }
        _ => GatewayError::Unavailable(error.to_string()),
    }
}

pub(super) fn user_metadata(user: UserId) -> HashMap<String, String> {
    HashMap::from([("user_id".to_owned(), user.to_string())])
}

/// A status Stripe named, read as ours; one this build does not know is Stripe's answer
/// misunderstood, so the call fails (and is retried) rather than guessing.
pub(super) fn named<T>(
    parse: fn(&str) -> Option<T>,
    raw: &str,
    what: &str,
) -> Result<T, GatewayError> {
    parse(raw).ok_or_else(|| GatewayError::Unavailable(format!("unknown {what} `{raw}`")))
}

pub(super) fn money(amount: Option<i64>, currency: Option<String>) -> Option<Money> {
    let currency = Currency::parse(&currency?).ok()?;
    Money::new(amount?, currency).ok()
}

/// A `GET` whose answer is kept as raw JSON: the events the inbox keeps exactly as Stripe
/// sends them, and objects only a field or two of which are read.
pub(super) struct RawGet {
    path: String,
    query: Vec<(&'static str, String)>,
}

impl StripeRequest for RawGet {
    type Output = miniserde::json::Value;

    fn build(&self) -> RequestBuilder {
        let mut request = RequestBuilder::new(StripeMethod::Get, self.path.as_str());
        if !self.query.is_empty() {
            request.query = Some(query_string(&self.query));
        }
        request
    }
}

/// `created[gte]=1796106296&limit=100`, as Stripe reads parameters: each name as it stands
/// (brackets and all), each value percent-encoded.
pub(super) fn query_string(pairs: &[(&'static str, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| {
            let value: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl LiveGateway {
    /// Every object of a list, page by page as Stripe pages it (newest first, 100 a page,
    /// `starting_after` the last one); `progress` hears how many so far. A page that does
    /// not move on is an error: asked for again it would be asked for forever.
    pub(super) async fn list_all(
        &self,
        path: &str,
        filters: Vec<(&'static str, String)>,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Vec<serde_json::Value>, GatewayError> {
        let mut all: Vec<serde_json::Value> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = filters.clone();
            query.push(("limit", "100".to_owned()));
            if let Some(after) = &after {
                query.push(("starting_after", after.clone()));
            }
            let page = self.get_json(path.to_owned(), query).await?;
            all.extend(page["data"].as_array().cloned().unwrap_or_default());
            progress(all.len());
            let last = all.last().and_then(|o| o["id"].as_str()).map(str::to_owned);
            match (page["has_more"].as_bool().unwrap_or(false), last) {
                (true, Some(last)) if after.as_ref() != Some(&last) => after = Some(last),
                (true, _) => {
                    return Err(GatewayError::Unavailable(format!(
                        "Stripe's list at {path} did not move past its last page"
                    )));
                }
                _ => return Ok(all),
            }
        }
    }

    pub(super) async fn get_json(
        &self,
        path: String,
        query: Vec<(&'static str, String)>,
    ) -> Result<serde_json::Value, GatewayError> {
        let value = RawGet { path, query }
            .customize()
            .send(&self.client)
            .await
            .map_err(classify)?;
        serde_json::from_str(&miniserde::json::to_string(&value))
            .map_err(|e| GatewayError::Unavailable(e.to_string()))
    }
}
