//! PromptBloom Billing: the domain and everything server-side that is not HTTP.
//!
//! Without features this crate is WASM-safe: the Leptos app uses its types on both sides.
//! The `server` feature adds configuration, storage and Stripe.

#[cfg(feature = "server")]
pub mod config;
