//! The gateway to Stripe's API, on async-stripe. The base URL is configurable, so tests (or a
//! stripe-mock server) can stand in for Stripe. Every method parses the ids it sends
//! ([`StripeId`]) before anything else: no id from outside can become a path or a query.

use std::time::Duration;

use async_trait::async_trait;
use stripe::{Client, ClientBuilder, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::invoice_payment::{
    ListInvoicePayment, ListInvoicePaymentPayment, ListInvoicePaymentPaymentType,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionSetupIntentData, CreateCheckoutSessionSubscriptionData,
    ListLineItemsCheckoutSession, RetrieveCheckoutSession,
};
use stripe_core::customer::CreateCustomer;
use stripe_core::payment_intent::{
    CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
    CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, CreatePaymentIntentOffSession,
};
use stripe_shared::CheckoutSessionMode;
use url::Url;

use super::gateway::{
    CardSetup, CardSetupRequest, ChargeRefunds, CheckoutRequest, CheckoutSession, GatewayError,
    GatewayMode, LineItem, ListedEvent, OffSessionOutcome, OffSessionPayment, RefundState,
    RefundStatus, SessionSnapshot, StripeGateway, SubscriptionSnapshot,
};
use super::id::{StripeId, StripeObject};
use super::status::{CheckoutMode, PaymentStatus, SessionStatus, SubscriptionStatus};
use crate::config::Secret;
use crate::domain::{Email, Money, PauseReason, ProductKind, SavedCard, Timestamp, UserId};

/// Each Stripe call gets this long before it counts as failed.
mod requests;

use requests::{classify, idempotent, money, named, user_metadata};

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

    async fn create_card_setup_session(
        &self,
        request: &CardSetupRequest,
    ) -> Result<CheckoutSession, GatewayError> {
        StripeId::parse(StripeObject::Customer, &request.customer)?;
        let currency: stripe_types::Currency = request.currency.as_str().parse().map_err(|_| {
            GatewayError::Refused(format!("currency {}", request.currency.as_str()))
        })?;
        let mut data = CreateCheckoutSessionSetupIntentData::new();
        data.metadata = Some(user_metadata(request.user));
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Setup)
            .currency(currency)
            .customer(request.customer.as_str())
            .client_reference_id(request.user.to_string())
            .metadata(user_metadata(request.user))
            .setup_intent_data(data)
            .success_url(request.success_url.as_str())
            .cancel_url(request.cancel_url.as_str())
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

    async fn saved_card(&self, session: &str) -> Result<Option<CardSetup>, GatewayError> {
        StripeId::parse(StripeObject::CheckoutSession, session)?;
        let s = self
            .get_json(
                format!("/checkout/sessions/{session}"),
                vec![("expand[]", "setup_intent.payment_method".to_owned())],
            )
            .await?;
        if s["mode"].as_str() != Some("setup") || s["status"].as_str() != Some("complete") {
            return Ok(None);
        }
        let method = &s["setup_intent"]["payment_method"];
        let Some(payment_method) = method["id"].as_str() else {
            return Ok(None);
        };
        Ok(Some(CardSetup {
            user: s["client_reference_id"]
                .as_str()
                .and_then(|id| id.parse().ok()),
            customer: s["customer"].as_str().map(str::to_owned),
            created: Timestamp::from_millis(s["created"].as_i64().unwrap_or(0) * 1000),
            card: SavedCard {
                payment_method: payment_method.to_owned(),
                label: card_label(method),
            },
        }))
    }

    async fn charge_saved_card(
        &self,
        payment: &OffSessionPayment,
    ) -> Result<OffSessionOutcome, GatewayError> {
        StripeId::parse(StripeObject::Customer, &payment.customer)?;
        StripeId::parse(StripeObject::PaymentMethod, &payment.payment_method)?;
        let currency: stripe_types::Currency = payment
            .amount
            .currency()
            .as_str()
            .parse()
            .map_err(|_| GatewayError::Refused("an unknown currency".into()))?;
        let mut metadata = user_metadata(payment.user);
        metadata.insert("topup_id".to_owned(), payment.topup.to_string());
        // No one is there to be sent to a bank's page: payment methods that redirect are off.
        let mut methods = CreatePaymentIntentAutomaticPaymentMethods::new(true);
        methods.allow_redirects =
            Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
        let sent = CreatePaymentIntent::new(payment.amount.minor(), currency)
            .customer(payment.customer.as_str())
            .payment_method(payment.payment_method.as_str())
            .automatic_payment_methods(methods)
            .off_session(CreatePaymentIntentOffSession::Bool(true))
            .confirm(true)
            .metadata(metadata)
            .customize()
            .request_strategy(idempotent(&payment.idempotency_key)?)
            .send(&self.client)
            .await;
        match sent {
            Ok(intent) if intent.status.as_str() == "succeeded" => {
                Ok(OffSessionOutcome::Succeeded {
                    payment_intent: intent.id.to_string(),
                })
            }
            // A payment method that clears later: asked again later (the same key answers
            // with the same payment), and Stripe's webhook credits it once it has.
            Ok(intent) if intent.status.as_str() == "processing" => Err(GatewayError::Unavailable(
                format!("payment {} is still processing", intent.id),
            )),
            Ok(intent) => Ok(OffSessionOutcome::Failed {
                payment_intent: Some(intent.id.to_string()),
                reason: PauseReason::AuthenticationRequired,
                message: format!("the payment is {}", intent.status.as_str()),
            }),
            // 402: the card's bank answered; the payment intent, if any, stays unpaid.
            Err(stripe::StripeError::Stripe(api, 402)) => Ok(OffSessionOutcome::Failed {
                payment_intent: api.payment_intent.as_ref().map(|pi| pi.id.to_string()),
                reason: if api.code.as_ref().map(|code| code.as_str())
                    == Some("authentication_required")
                    || api.decline_code.as_deref() == Some("authentication_required")
                {
                    PauseReason::AuthenticationRequired
                } else {
                    PauseReason::Declined
                },
                message: api.message.clone().unwrap_or_else(|| "declined".to_owned()),
            }),
            Err(other) => Err(classify(other)),
        }
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
            mode: named(
                CheckoutMode::parse,
                s.mode.as_str(),
                "checkout session mode",
            )?,
            payment_status: named(
                PaymentStatus::parse,
                s.payment_status.as_str(),
                "checkout payment status",
            )?,
            status: s
                .status
                .as_ref()
                .map(|st| named(SessionStatus::parse, st.as_str(), "checkout session status"))
                .transpose()?,
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
        let listed = self
            .list_all("/refunds", vec![("charge", charge.to_owned())], &|_| {})
            .await?;
        let refunds = listed
            .iter()
            .map(|refund| {
                let (Some(id), Some(amount), Some(status)) = (
                    refund["id"].as_str(),
                    refund["amount"].as_i64(),
                    refund["status"].as_str(),
                ) else {
                    return Err(GatewayError::Unavailable(format!(
                        "a refund of charge {charge} is not Stripe-shaped"
                    )));
                };
                Ok(RefundState {
                    id: id.to_owned(),
                    amount,
                    status: RefundStatus::parse(status).unwrap_or_else(|| {
                        // A status this build does not know: the money is taken to be on its
                        // way back (the tokens follow), never to stay.
                        tracing::warn!(
                            refund = id,
                            status,
                            "a refund status this build does not know"
                        );
                        RefundStatus::Pending
                    }),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ChargeRefunds {
            charge: charge.to_owned(),
            payment_intent: object["payment_intent"].as_str().map(str::to_owned),
            amount,
            refunds,
        })
    }

    async fn subscription(&self, subscription: &str) -> Result<SubscriptionSnapshot, GatewayError> {
        StripeId::parse(StripeObject::Subscription, subscription)?;
        let object = self
            .get_json(format!("/subscriptions/{subscription}"), vec![])
            .await?;
        subscription_snapshot(&object)
    }

    async fn live_subscriptions(
        &self,
        customer: &str,
    ) -> Result<Vec<SubscriptionSnapshot>, GatewayError> {
        StripeId::parse(StripeObject::Customer, customer)?;
        let listed = self
            .list_all(
                "/subscriptions",
                vec![
                    ("customer", customer.to_owned()),
                    ("status", "all".to_owned()),
                ],
                &|_| {},
            )
            .await?;
        Ok(listed
            .iter()
            .map(subscription_snapshot)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|s| s.status.is_live())
            .collect())
    }

    async fn invoice(&self, invoice: &str) -> Result<serde_json::Value, GatewayError> {
        StripeId::parse(StripeObject::Invoice, invoice)?;
        self.get_json(format!("/invoices/{invoice}"), vec![]).await
    }

    async fn invoice_lines(&self, invoice: &str) -> Result<Vec<serde_json::Value>, GatewayError> {
        StripeId::parse(StripeObject::Invoice, invoice)?;
        self.list_all(&format!("/invoices/{invoice}/lines"), vec![], &|_| {})
            .await
    }

    async fn events_since(
        &self,
        since: Timestamp,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Vec<ListedEvent>, GatewayError> {
        let bound = since.as_millis().div_euclid(1000).to_string();
        let listed = self
            .list_all("/events", vec![("created[gte]", bound)], progress)
            .await?;
        let mut events: Vec<ListedEvent> = listed
            .iter()
            .filter_map(|event| {
                Some(ListedEvent {
                    id: event["id"].as_str()?.to_owned(),
                    payload: event.to_string(),
                })
            })
            .collect();
        // Stripe lists newest first; apply oldest first.
        events.reverse();
        Ok(events)
    }
}

/// A subscription object as the gateway describes it.
fn subscription_snapshot(s: &serde_json::Value) -> Result<SubscriptionSnapshot, GatewayError> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let item = &s["items"]["data"][0];
    let id = text(&s["id"])
        .ok_or_else(|| GatewayError::Unavailable("a subscription without an id".into()))?;
    Ok(SubscriptionSnapshot {
        customer: text(&s["customer"])
            .or_else(|| text(&s["customer"]["id"]))
            .unwrap_or_default(),
        user: s["metadata"]["user_id"]
            .as_str()
            .and_then(|id| id.parse().ok()),
        status: named(
            SubscriptionStatus::parse,
            &text(&s["status"]).ok_or_else(|| {
                GatewayError::Unavailable(format!("subscription {id} has no status"))
            })?,
            "subscription status",
        )?,
        price: text(&item["price"]["id"]),
        current_period_end: item["current_period_end"]
            .as_i64()
            .or_else(|| s["current_period_end"].as_i64()),
        cancel_at_period_end: s["cancel_at_period_end"].as_bool().unwrap_or(false),
        cancel_at: s["cancel_at"].as_i64(),
        canceled_at: s["canceled_at"].as_i64(),
        id,
    })
}

/// `Visa •••• 4242`, from a payment method as Stripe writes it.
fn card_label(method: &serde_json::Value) -> String {
    let card = &method["card"];
    let brand = match card["brand"].as_str().unwrap_or("card") {
        "amex" => "American Express".to_owned(),
        "mastercard" => "Mastercard".to_owned(),
        other => {
            let mut letters = other.chars();
            letters
                .next()
                .map(|first| first.to_uppercase().chain(letters).collect())
                .unwrap_or_default()
        }
    };
    match card["last4"].as_str() {
        Some(last4) => format!("{brand} •••• {last4}"),
        None => brand,
    }
}
