//! The port to Stripe: what billing asks of it. `live` talks to Stripe's API (or a stand-in at
//! another base URL); `simulated` keeps everything in this process for development and tests.

use async_trait::async_trait;
use url::Url;

use crate::domain::{
    Currency, Email, Money, PauseReason, ProductKind, SavedCard, Timestamp, UserId,
};
pub use crate::stripe::status::{
    CheckoutMode, PaymentStatus, RefundStatus, SessionStatus, SubscriptionStatus,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayMode {
    Live,
    Simulated,
}

/// A Checkout session to open for a signed-in user.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub user: UserId,
    pub customer: String,
    pub price: String,
    pub kind: ProductKind,
    /// May hold Stripe's `{CHECKOUT_SESSION_ID}` placeholder, which must stay unencoded.
    pub success_url: String,
    pub cancel_url: String,
    /// Sent as Stripe's Idempotency-Key: a retried request opens the same session.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    /// Where to send the browser.
    pub url: Url,
}

/// One line of a Checkout session: which price, how many, for how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    pub price: String,
    pub quantity: i64,
    pub amount_total: Option<Money>,
}

/// A Checkout session as Stripe describes it now (for the success page, which asks Stripe
/// instead of waiting for the webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub id: String,
    pub user: Option<UserId>,
    pub customer: Option<String>,
    pub mode: CheckoutMode,
    pub payment_status: PaymentStatus,
    /// `None` when Stripe does not say.
    pub status: Option<SessionStatus>,
    pub payment_intent: Option<String>,
    pub amount_total: Option<Money>,
}

/// An event as Stripe lists it: the raw JSON, exactly as it would be delivered.
#[derive(Debug, Clone)]
pub struct ListedEvent {
    pub id: String,
    pub payload: String,
}

/// One refund of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundState {
    pub id: String,
    /// Minor units.
    pub amount: i64,
    pub status: RefundStatus,
}

/// A charge and every refund made of it, as Stripe describes them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRefunds {
    pub charge: String,
    pub payment_intent: Option<String>,
    /// What was charged, in minor units.
    pub amount: i64,
    pub refunds: Vec<RefundState>,
}

/// A subscription as Stripe describes it now (read as each of its events is applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSnapshot {
    pub id: String,
    pub customer: String,
    pub user: Option<UserId>,
    pub status: SubscriptionStatus,
    pub price: Option<String>,
    /// Unix seconds.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
}

/// A setup-mode Checkout session to open: the customer saves a card for payments made while
/// they are away (auto top-up).
#[derive(Debug, Clone)]
pub struct CardSetupRequest {
    pub user: UserId,
    pub customer: String,
    /// The currency the card will pay in (Stripe offers the methods that can).
    pub currency: Currency,
    /// May hold Stripe's `{CHECKOUT_SESSION_ID}` placeholder.
    pub success_url: String,
    pub cancel_url: String,
    pub idempotency_key: String,
}

/// What a completed setup-mode Checkout saved, and for whom it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSetup {
    pub user: Option<UserId>,
    pub customer: Option<String>,
    pub card: SavedCard,
    /// When the session was made: a newer session's card wins.
    pub created: Timestamp,
}

/// A payment with a saved card while the customer is away: one top-up's.
#[derive(Debug, Clone)]
pub struct OffSessionPayment {
    pub user: UserId,
    pub customer: String,
    pub payment_method: String,
    pub amount: Money,
    /// The top-up it pays (in the payment intent's metadata, for the webhook).
    pub topup: i64,
    /// Sent as Stripe's Idempotency-Key: a retried request answers as the first did.
    pub idempotency_key: String,
}

/// How Stripe answered a payment made while the customer was away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffSessionOutcome {
    Succeeded {
        payment_intent: String,
    },
    /// The bank said no (`Declined`) or asked for the cardholder (`AuthenticationRequired`):
    /// nothing was charged.
    Failed {
        payment_intent: Option<String>,
        reason: PauseReason,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Stripe refused the request (a bad price id, a deleted customer...).
    #[error("Stripe refused the request: {0}")]
    Refused(String),
    /// Stripe could not be reached or failed; trying again later may work.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait StripeGateway: Send + Sync + 'static {
    fn mode(&self) -> GatewayMode;

    /// What a price costs (for display), `None` when it is not a fixed amount.
    async fn price(&self, price: &str) -> Result<Option<Money>, GatewayError>;

    /// Creates the Stripe customer for a user (once; the caller stores the id).
    async fn create_customer(&self, user: UserId, email: &Email) -> Result<String, GatewayError>;

    async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, GatewayError>;

    async fn checkout_session(&self, session: &str) -> Result<SessionSnapshot, GatewayError>;

    /// The lines of a Checkout session: webhook payloads do not carry them.
    async fn checkout_line_items(&self, session: &str) -> Result<Vec<LineItem>, GatewayError>;

    /// Opens a setup-mode Checkout, where the customer saves a card for later payments.
    async fn create_card_setup_session(
        &self,
        request: &CardSetupRequest,
    ) -> Result<CheckoutSession, GatewayError>;

    /// The card a completed setup-mode Checkout saved, with the user and customer it was
    /// opened for; `None` while the session is not complete.
    async fn saved_card(&self, session: &str) -> Result<Option<CardSetup>, GatewayError>;

    /// Pays with a saved card while the customer is away (confirmed at once, off-session).
    async fn charge_saved_card(
        &self,
        payment: &OffSessionPayment,
    ) -> Result<OffSessionOutcome, GatewayError>;

    /// Opens the Customer Portal for a customer; the user comes back to `return_url`.
    async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &Url,
    ) -> Result<Url, GatewayError>;

    /// The invoice a payment intent paid, if any (a subscription payment).
    async fn invoice_of_payment_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, GatewayError>;

    /// A charge and all of its refunds, whatever their status.
    async fn charge_refunds(&self, charge: &str) -> Result<ChargeRefunds, GatewayError>;

    async fn subscription(&self, subscription: &str) -> Result<SubscriptionSnapshot, GatewayError>;

    /// The customer's subscriptions that are not over (`incomplete`, `trialing`, `active`,
    /// `past_due`), made here or elsewhere.
    async fn live_subscriptions(
        &self,
        customer: &str,
    ) -> Result<Vec<SubscriptionSnapshot>, GatewayError>;

    /// An invoice, as Stripe writes it (JSON; read with [`super::events::invoice`]).
    async fn invoice(&self, invoice: &str) -> Result<serde_json::Value, GatewayError>;

    /// Every line of an invoice (a webhook's payload carries only the first page).
    async fn invoice_lines(&self, invoice: &str) -> Result<Vec<serde_json::Value>, GatewayError>;

    /// Events created since `since`, oldest first (Stripe keeps 30 days). `progress` is told
    /// how many have been read so far, page by page.
    async fn events_since(
        &self,
        since: Timestamp,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Vec<ListedEvent>, GatewayError>;
}
