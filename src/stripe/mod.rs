//! Stripe: the signature on webhooks, what events mean, and the gateway to Stripe's API.
//!
//! One walk from Stripe to a ledger row: the server's webhook route -> [`signature`] (verify
//! the raw body) -> [`events`] (pure: what the event means) -> [`crate::fulfilment`] (look up
//! what the event does not carry, then one store transaction).
//!
//! Every id that goes into a request to Stripe is parsed with [`StripeId::parse`] first
//! ([`id`]): only Stripe's own id shape, never a path or a query.

pub mod events;
pub mod gateway;
pub mod id;
pub mod live;
pub mod signature;
#[cfg(any(test, feature = "simulator"))]
pub mod simulated;
pub mod status;

#[cfg(test)]
mod abuse_tests;

pub use gateway::{
    CardSetup, CardSetupRequest, ChargeRefunds, CheckoutRequest, CheckoutSession, GatewayError,
    GatewayMode, LineItem, ListedEvent, OffSessionOutcome, OffSessionPayment, RefundState,
    SessionSnapshot, StripeGateway, SubscriptionSnapshot,
};
pub use id::{InvalidStripeId, StripeId, StripeObject};
pub use status::{CheckoutMode, PaymentStatus, RefundStatus, SessionStatus, SubscriptionStatus};
