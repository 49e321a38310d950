//! The gateway to Stripe's API, on async-stripe. The base URL is configurable, so tests (or a
//! stripe-mock server) can stand in for Stripe. Every method parses the ids it sends
//! ([`StripeId`]) before anything else: no id from outside can become a path or a query.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::invoice_payment::{
    ListInvoicePayment, ListInvoicePaymentPayment, ListInvoicePaymentPaymentType,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionSubscriptionData, ListLineItemsCheckoutSession, RetrieveCheckoutSession,
};
use stripe_client_core::{RequestBuilder, StripeMethod};
use stripe_core::customer::CreateCustomer;
use stripe_shared::CheckoutSessionMode;
use url::Url;

use super::gateway::{
    ChargeRefunds, CheckoutRequest, CheckoutSession, GatewayError, GatewayMode, LineItem,
    ListedEvent, RefundState, RefundStatus, SessionSnapshot, StripeGateway, SubscriptionSnapshot,
};
use super::id::{StripeId, StripeObject};
use crate::config::Secret;
use crate::domain::{Currency, Email, Money, ProductKind, Timestamp, UserId};

/// Each Stripe call gets this long before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(20);

pub struct LiveGateway {
    client: Client,
}

impl LiveGateway {
    /// A client for Stripe, or for another base URL (a stand-in in tests).
    pub fn new(secret_key: &Secret, api_base: Option<&Url>) -> Result<Self, GatewayError> {
        let mut builder = ClientBuilder::new(secret_key.expose()).timeout(TIMEOUT);
        if let Some(base) = api_base {
            // The client appends `v1/...` to the base as it stands.
            let base = base.as_str();
            builder = builder.url(if base.ends_with('/') {
                base.to_owned()
            } else {
                format!("{base}/")
            });
        }
        let client = builder
            .build()
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        Ok(Self { client })
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, GatewayError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| GatewayError::Refused(format!("idempotency key: {e}")))
}

/// Stripe's own refusals (4xx) are final; anything else may pass on a retry.
fn classify(error: stripe::StripeError) -> GatewayError {
    match &error {
        stripe::StripeError::Stripe(api, status)
            if (400..500).contains(status) && *status != 429 =>
        {
            GatewayError::Refused(api.message.clone().unwrap_or_else(|| error.to_string()))
        }
        _ => GatewayError::Unavailable(error.to_string()),
    }
}

fn user_metadata(user: UserId) -> HashMap<String, String> {
    HashMap::from([("user_id".to_owned(), user.to_string())])
}

fn money(amount: Option<i64>, currency: Option<String>) -> Option<Money> {
    let currency = Currency::parse(&currency?).ok()?;
    Money::new(amount?, currency).ok()
}

/// A `GET` whose answer is kept as raw JSON: the events the inbox keeps exactly as Stripe
/// sends them, and objects only a field or two of which are read.
struct RawGet {
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
fn query_string(pairs: &[(&'static str, String)]) -> String {
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
    async fn get_json(
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

#[async_trait]
impl StripeGateway for LiveGateway {
    fn mode(&self) -> GatewayMode {
        GatewayMode::Live
    }

    async fn price(&self, price: &str) -> Result<Option<Money>, GatewayError> {
        StripeId::parse(StripeObject::Price, price)?;
        let price = self.get_json(format!("/prices/{price}"), vec![]).await?;
        Ok(money(
            price["unit_amount"].as_i64(),
            price["currency"].as_str().map(str::to_owned),
        ))
    }

    async fn create_customer(&self, user: UserId, email: &Email) -> Result<String, GatewayError> {
        let customer = CreateCustomer::new()
            .email(email.as_str())
            .metadata(user_metadata(user))
            .customize()
            .request_strategy(idempotent(&format!("promptbloom-customer-{user}"))?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(customer.id.to_string())
    }

    async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, GatewayError> {
        StripeId::parse(StripeObject::Customer, &request.customer)?;
        StripeId::parse(StripeObject::Price, &request.price)?;
        let mut line = CreateCheckoutSessionLineItems::new();
        line.price = Some(request.price.clone());
        line.quantity = Some(1);
        let mut create = CreateCheckoutSession::new()
            .customer(request.customer.as_str())
            .client_reference_id(request.user.to_string())
            .metadata(user_metadata(request.user))
            .line_items(vec![line])
            .success_url(request.success_url.as_str())
            .cancel_url(request.cancel_url.as_str());
        create = match request.kind {
            ProductKind::Pack => {
                let mut data = CreateCheckoutSessionPaymentIntentData::new();
                data.metadata = Some(user_metadata(request.user));
                create
                    .mode(CheckoutSessionMode::Payment)
                    .payment_intent_data(data)
            }
            ProductKind::Subscription => {
                let mut data = CreateCheckoutSessionSubscriptionData::new();
                data.metadata = Some(user_metadata(request.user));
                create
                    .mode(CheckoutSessionMode::Subscription)
                    .subscription_data(data)
            }
        };
        let session = create
            .customize()
            .request_strategy(idempotent(&request.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        let url = session
            .url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| GatewayError::Unavailable("Stripe sent no Checkout URL".into()))?;
        Ok(CheckoutSession {
            id: session.id.to_string(),
            url,
        })
    }

    async fn checkout_session(&self, session: &str) -> Result<SessionSnapshot, GatewayError> {
        StripeId::parse(StripeObject::CheckoutSession, session)?;
        let s = RetrieveCheckoutSession::new(session)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(SessionSnapshot {
            id: s.id.to_string(),
            user: s
                .client_reference_id
                .as_deref()
                .and_then(|id| id.parse().ok()),
            customer: s.customer.as_ref().map(|c| c.id().to_string()),
            mode: s.mode.as_str().to_owned(),
            payment_status: s.payment_status.as_str().to_owned(),
            status: s
                .status
                .as_ref()
                .map_or_else(String::new, |st| st.as_str().to_owned()),
            payment_intent: s.payment_intent.as_ref().map(|p| p.id().to_string()),
            amount_total: money(s.amount_total, s.currency.map(|c| c.to_string())),
        })
    }

    async fn checkout_line_items(&self, session: &str) -> Result<Vec<LineItem>, GatewayError> {
        StripeId::parse(StripeObject::CheckoutSession, session)?;
        let items = ListLineItemsCheckoutSession::new(session)
            .limit(100)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(items
            .data
            .into_iter()
            .filter_map(|item| {
                Some(LineItem {
                    price: item.price?.id.to_string(),
                    quantity: item.quantity.map_or(1, |q| i64::try_from(q).unwrap_or(1)),
                    amount_total: money(Some(item.amount_total), Some(item.currency.to_string())),
                })
            })
            .collect())
    }

    async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &Url,
    ) -> Result<Url, GatewayError> {
        StripeId::parse(StripeObject::Customer, customer)?;
        let portal = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url.as_str())
            .send(&self.client)
            .await
            .map_err(classify)?;
        Url::parse(&portal.url).map_err(|e| GatewayError::Unavailable(e.to_string()))
    }

    async fn invoice_of_payment_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, GatewayError> {
        StripeId::parse(StripeObject::PaymentIntent, payment_intent)?;
        let mut payment =
            ListInvoicePaymentPayment::new(ListInvoicePaymentPaymentType::PaymentIntent);
        payment.payment_intent = Some(payment_intent.to_owned());
        let payments = ListInvoicePayment::new()
            .payment(payment)
            .limit(1)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(payments
            .data
            .first()
            .and_then(|p| p.invoice.id().as_ref().map(ToString::to_string)))
    }

    async fn charge_refunds(&self, charge: &str) -> Result<ChargeRefunds, GatewayError> {
        StripeId::parse(StripeObject::Charge, charge)?;
        let object = self.get_json(format!("/charges/{charge}"), vec![]).await?;
        let amount = object["amount"]
            .as_i64()
            .ok_or_else(|| GatewayError::Unavailable(format!("charge {charge} has no amount")))?;
        let mut refunds = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("charge", charge.to_owned()), ("limit", "100".to_owned())];
            if let Some(after) = &after {
                query.push(("starting_after", after.clone()));
            }
            let page = self.get_json("/refunds".to_owned(), query).await?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            for refund in &data {
                let (Some(id), Some(amount), Some(status)) = (
                    refund["id"].as_str(),
                    refund["amount"].as_i64(),
                    refund["status"].as_str().and_then(RefundStatus::parse),
                ) else {
                    return Err(GatewayError::Unavailable(format!(
                        "a refund of charge {charge} is not Stripe-shaped"
                    )));
                };
                refunds.push(RefundState {
                    id: id.to_owned(),
                    amount,
                    status,
                });
            }
            let last = refunds.last().map(|r| r.id.clone());
            match (page["has_more"].as_bool().unwrap_or(false), last) {
                // A page that does not move on would be asked for forever.
                (true, Some(last)) if after.as_ref() != Some(&last) => after = Some(last),
                (true, _) => {
                    return Err(GatewayError::Unavailable(format!(
                        "Stripe's refunds of charge {charge} did not move past a page"
                    )));
                }
                _ => break,
            }
        }
        Ok(ChargeRefunds {
            charge: charge.to_owned(),
            payment_intent: object["payment_intent"].as_str().map(str::to_owned),
            amount,
            refunds,
        })
    }

    async fn subscription(&self, subscription: &str) -> Result<SubscriptionSnapshot, GatewayError> {
        StripeId::parse(StripeObject::Subscription, subscription)?;
        let s = self
            .get_json(format!("/subscriptions/{subscription}"), vec![])
            .await?;
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let item = &s["items"]["data"][0];
        Ok(SubscriptionSnapshot {
            id: text(&s["id"]).unwrap_or_else(|| subscription.to_owned()),
            customer: text(&s["customer"])
                .or_else(|| text(&s["customer"]["id"]))
                .unwrap_or_default(),
            user: s["metadata"]["user_id"]
                .as_str()
                .and_then(|id| id.parse().ok()),
            status: text(&s["status"]).ok_or_else(|| {
                GatewayError::Unavailable(format!("subscription {subscription} has no status"))
            })?,
            price: text(&item["price"]["id"]),
            current_period_end: item["current_period_end"].as_i64(),
            cancel_at_period_end: s["cancel_at_period_end"].as_bool().unwrap_or(false),
            cancel_at: s["cancel_at"].as_i64(),
            canceled_at: s["canceled_at"].as_i64(),
        })
    }

    async fn events_since(
        &self,
        since: Timestamp,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Vec<ListedEvent>, GatewayError> {
        let mut events: Vec<ListedEvent> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![
                (
                    "created[gte]",
                    since.as_millis().div_euclid(1000).to_string(),
                ),
                ("limit", "100".to_owned()),
            ];
            if let Some(after) = &after {
                query.push(("starting_after", after.clone()));
            }
            let page = self.get_json("/events".to_owned(), query).await?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            for event in &data {
                if let Some(id) = event["id"].as_str() {
                    events.push(ListedEvent {
                        id: id.to_owned(),
                        payload: event.to_string(),
                    });
                }
            }
            progress(events.len());
            let last = events.last().map(|e| e.id.clone());
            match (page["has_more"].as_bool().unwrap_or(false), last) {
                // A page that does not move on would be asked for forever.
                (true, Some(last)) if after.as_ref() != Some(&last) => after = Some(last),
                (true, _) => {
                    return Err(GatewayError::Unavailable(
                        "Stripe's event list did not move past its last page".into(),
                    ));
                }
                _ => break,
            }
        }
        // Stripe lists newest first; apply oldest first.
        events.reverse();
        Ok(events)
    }
}
