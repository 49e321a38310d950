//! PromptBloom Billing: the domain and everything server-side that is not HTTP.
//!
//! Without features this crate is WASM-safe: the Leptos app uses its types on both sides.
//! The `server` feature adds configuration, storage and Stripe.

pub mod domain;
pub mod ledger;

#[cfg(feature = "server")]
pub mod api_key;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod catalog;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod device_cookie;
#[cfg(feature = "server")]
pub mod fulfilment;
#[cfg(feature = "server")]
pub mod local_secret;
#[cfg(feature = "server")]
pub mod notices;
#[cfg(feature = "server")]
pub mod outbox;
#[cfg(feature = "server")]
pub mod rate_limit;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod stripe;
#[cfg(any(all(test, feature = "server"), feature = "testing"))]
pub mod testing;
