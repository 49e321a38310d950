//! Buying and managing: the catalog, Stripe Checkout and the Customer Portal, the
//! subscription's state, and the success page's check of a returning Checkout session.
//! Every function needs a session; the writes are rate limited.

use billing::domain::{Balance, Offer, ProductId, Timestamp};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::api::codec::{FormOrJson, form_or_json};
use crate::api::wire::WireJson;
use crate::error::AppError;

/// What the page offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storefront {
    pub offers: Vec<Offer>,
    /// True when payments go through the offline simulator.
    pub payments_simulated: bool,
    /// True when the user has a live subscription: the plan is not offered again.
    pub subscribed: bool,
}

/// Where to send the browser to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutStarted {
    pub session_id: String,
    pub url: String,
}

/// Where to send the browser to manage billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalOpened {
    pub url: String,
}

/// The user's subscription as ManageBilling shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// Stripe's status: `active`, `past_due`, `canceled`...
    pub status: String,
    pub plan: Option<String>,
    /// The end of the paid period: the next renewal, or the end when it is cancelled.
    pub period_end: Option<Timestamp>,
    pub cancel_at_period_end: bool,
    /// Not over: it charges, or is about to (the server's one definition).
    pub live: bool,
}

impl SubscriptionView {
    pub fn is_live(&self) -> bool {
        self.live
    }
}

/// A Checkout session the user came back from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckoutProgress {
    /// Paid and credited.
    Credited { tokens: i64, balance: Balance },
    /// A subscription: its first invoice brings the tokens.
    Subscribed,
    /// An asynchronous payment has not cleared yet; it will add `tokens`.
    Pending { tokens: Option<i64> },
    /// Not paid.
    Unpaid,
}

#[server(prefix = "/api", endpoint = "billing/catalog", input = GetUrl, output = WireJson)]
pub async fn offers() -> Result<Storefront, AppError> {
    crate::api::guard::answer(|call| async move {
        let user = call.require_user().await?;
        Ok(Storefront {
            offers: call.state().catalog.offers(),
            payments_simulated: call.state().config.payments_simulated(),
            subscribed: ssr::has_live_subscription(&call, &user).await?,
        })
    })
    .await
}

/// Opens Stripe Checkout for a product of the catalog (the seed's
/// `POST /api/billing/create-checkout-session`). The body names the product and nothing
/// else: the price and the tokens come from the server's catalog. `request_id` makes a
/// double submission open one session.
#[server(prefix = "/api", endpoint = "billing/create-checkout-session", input = FormOrJson, output = WireJson)]
pub async fn create_checkout_session(
    product: ProductId,
    #[server(default)] request_id: Option<String>,
) -> Result<CheckoutStarted, AppError> {
    crate::api::guard::answer(|call| ssr::checkout(call, product, request_id)).await
}

/// Opens the Stripe Customer Portal (the seed's `POST /api/billing/create-portal-session`).
#[server(prefix = "/api", endpoint = "billing/create-portal-session", input = FormOrJson, output = WireJson)]
pub async fn create_portal_session() -> Result<PortalOpened, AppError> {
    crate::api::guard::answer(ssr::portal).await
}

form_or_json!(
    CreateCheckoutSession => ["product", "request_id"],
    CreatePortalSession => [],
);

/// The user's live subscription, or else their most recent one.
#[server(prefix = "/api", endpoint = "billing/subscription", input = GetUrl, output = WireJson)]
pub async fn subscription() -> Result<Option<SubscriptionView>, AppError> {
    crate::api::guard::answer(|call| async move {
        Ok(ssr::subscriptions(&call).await?.into_iter().next())
    })
    .await
}

/// Every subscription of the user, live ones first: one made outside this app (in Stripe's
/// Dashboard) is shown too, not hidden behind the first.
#[server(prefix = "/api", endpoint = "billing/subscriptions", input = GetUrl, output = WireJson)]
pub async fn subscriptions() -> Result<Vec<SubscriptionView>, AppError> {
    crate::api::guard::answer(|call| async move { ssr::subscriptions(&call).await }).await
}

/// The success page's check: asks Stripe about the session the user came back from and
/// credits it when paid (once, whether the webhook or this comes first). Rate limited per
/// user; an id that is not of Stripe's shape is refused before Stripe is asked.
#[server(prefix = "/api", endpoint = "billing/checkout-status", input = GetUrl, output = WireJson)]
pub async fn checkout_status(session_id: String) -> Result<CheckoutProgress, AppError> {
    crate::api::guard::answer(|call| ssr::checkout_status(call, session_id)).await
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use billing::domain::{ProductId, ProductKind, Timestamp, User};
    use billing::fulfilment::{CheckoutStatus, FulfilmentError};
    use billing::stripe::{CheckoutRequest, GatewayError, StripeId, StripeObject};
    use rand::RngCore;

    use super::{CheckoutProgress, CheckoutStarted, PortalOpened, SubscriptionView};
    use crate::api::guard::{Call, internal};
    use crate::error::AppError;

    pub async fn subscriptions(call: &Call) -> Result<Vec<SubscriptionView>, AppError> {
        let user = call.require_user().await?;
        let state = call.state();
        let records = state
            .store
            .subscriptions_of(user.id)
            .await
            .map_err(internal("reading subscriptions failed"))?;
        Ok(records
            .into_iter()
            .map(|s| SubscriptionView {
                live: s.is_live(),
                plan: s
                    .price
                    .as_deref()
                    .and_then(|price| state.catalog.product_of(price))
                    .map(|product| product.label().to_owned()),
                status: s.status.as_str().to_owned(),
                period_end: s
                    .current_period_end
                    .map(|secs| Timestamp::from_millis(secs * 1000)),
                cancel_at_period_end: s.cancel_at_period_end || s.cancel_at.is_some(),
            })
            .collect())
    }

    pub async fn has_live_subscription(call: &Call, user: &User) -> Result<bool, AppError> {
        let records = call
            .state()
            .store
            .subscriptions_of(user.id)
            .await
            .map_err(internal("reading subscriptions failed"))?;
        Ok(records.iter().any(|s| s.is_live()))
    }

    pub(crate) fn unavailable(context: &'static str) -> impl FnOnce(GatewayError) -> AppError {
        move |error| {
            tracing::error!(%error, "{context}");
            AppError::PaymentsUnavailable
        }
    }

    /// The form's request id (what makes a resubmitted form ask Stripe once), when it is one
    /// of ours (letters, digits, dashes, 64 at most); else a fresh one.
    pub(crate) fn request_id_or_new(request_id: Option<String>) -> String {
        request_id
            .filter(|id| {
                !id.is_empty()
                    && id.len() <= 64
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .unwrap_or_else(|| {
                let mut bytes = [0u8; 12];
                rand::rng().fill_bytes(&mut bytes);
                hex::encode(bytes)
            })
    }

    /// The user's Stripe customer, created (once) on first need.
    pub(crate) async fn customer(call: &Call, user: &User) -> Result<String, AppError> {
        let state = call.state();
        if let Some(customer) = state
            .store
            .customer_of(user.id)
            .await
            .map_err(internal("reading a customer failed"))?
        {
            return Ok(customer);
        }
        let created = state
            .gateway
            .create_customer(user.id, &user.email)
            .await
            .map_err(unavailable("creating a Stripe customer failed"))?;
        state
            .store
            .link_customer(user.id, &created)
            .await
            .map_err(internal("storing a Stripe customer failed"))
    }

    pub async fn checkout(
        call: Call,
        product: ProductId,
        request_id: Option<String>,
    ) -> Result<CheckoutStarted, AppError> {
        let user = call.require_user().await?;
        let state = call.state().clone();
        let price = state
            .catalog
            .price_id(product)
            .ok_or_else(|| AppError::invalid(format!("The {} is not on sale.", product.label())))?;
        call.limit_billing_write(&user).await?;
        let customer = customer(&call, &user).await?;
        // One plan at a time. The store knows what webhooks told it; Stripe also knows one
        // paid a moment ago (its webhook still on its way) or one still being paid.
        if product.kind() == ProductKind::Subscription {
            let live_here = has_live_subscription(&call, &user).await?;
            let live_at_stripe = live_here
                || !state
                    .gateway
                    .live_subscriptions(&customer)
                    .await
                    .map_err(unavailable("listing the customer's subscriptions failed"))?
                    .is_empty();
            if live_here || live_at_stripe {
                return Err(AppError::conflict(
                    "You already have the Starter plan. Manage or cancel it with Manage \
                     billing; a second one would charge you twice.",
                ));
            }
        }

        let request_id = request_id_or_new(request_id);
        let return_url = state.config.site.billing_return_url.as_str();
        let joiner = if return_url.contains('?') { '&' } else { '?' };
        let session = state
            .gateway
            .create_checkout_session(&CheckoutRequest {
                user: user.id,
                customer,
                price: price.to_owned(),
                kind: product.kind(),
                // Stripe fills in the session id; the success page checks it.
                success_url: format!("{return_url}{joiner}session_id={{CHECKOUT_SESSION_ID}}"),
                cancel_url: state.config.site.billing_cancel_url.to_string(),
                idempotency_key: format!("checkout-{}-{}-{request_id}", user.id, product),
            })
            .await
            .map_err(unavailable("creating a Checkout session failed"))?;
        tracing::info!(user = %user.id, %product, session = %session.id, "checkout started");
        call.redirect_form_post(session.url.as_str());
        Ok(CheckoutStarted {
            session_id: session.id,
            url: session.url.to_string(),
        })
    }

    pub async fn portal(call: Call) -> Result<PortalOpened, AppError> {
        let user = call.require_user().await?;
        call.limit_billing_write(&user).await?;
        let customer = customer(&call, &user).await?;
        let state = call.state();
        let return_url = state
            .config
            .site
            .url
            .join("/app/billing")
            .map_err(internal("building the portal's return URL failed"))?;
        let url = state
            .gateway
            .create_portal_session(&customer, &return_url)
            .await
            .map_err(unavailable("creating a portal session failed"))?;
        call.redirect_form_post(url.as_str());
        Ok(PortalOpened {
            url: url.to_string(),
        })
    }

    pub async fn checkout_status(
        call: Call,
        session_id: String,
    ) -> Result<CheckoutProgress, AppError> {
        let user = call.require_user().await?;
        // Counted before the id is even looked at: guessing ids is what the limit is for.
        call.limit_checkout_status(&user).await?;
        if StripeId::parse(StripeObject::CheckoutSession, &session_id).is_err() {
            return Err(AppError::invalid("That is not a Checkout session id."));
        }
        let state = call.state();
        let status = match state.fulfilment.fulfil_checkout(&session_id, user.id).await {
            Ok(status) => status,
            Err(FulfilmentError::Gateway(GatewayError::Refused(_))) => None,
            Err(error) => {
                tracing::error!(%error, session = %session_id, "checking a Checkout session failed");
                return Err(AppError::PaymentsUnavailable);
            }
        };
        match status {
            None => Err(AppError::not_found(
                "There is no such Checkout session of yours.",
            )),
            Some(CheckoutStatus::Credited { entry }) => Ok(CheckoutProgress::Credited {
                tokens: entry.delta.get(),
                balance: state
                    .store
                    .balance(user.id)
                    .await
                    .map_err(internal("reading a balance failed"))?,
            }),
            Some(CheckoutStatus::Subscribed) => Ok(CheckoutProgress::Subscribed),
            Some(CheckoutStatus::Pending { tokens }) => Ok(CheckoutProgress::Pending {
                tokens: tokens.map(|t| t.get()),
            }),
            Some(CheckoutStatus::Unpaid) => Ok(CheckoutProgress::Unpaid),
        }
    }
}
