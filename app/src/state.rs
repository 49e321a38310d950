//! What server functions and routes share, built once at start-up by the server.

use std::sync::Arc;

use axum::extract::FromRef;
use billing::catalog::Catalog;
use billing::clock::Clock;
use billing::config::Config;
use billing::fulfilment::Fulfilment;
use billing::rate_limit::RateLimiter;
use billing::store::Store;
use billing::stripe::StripeGateway;
use leptos::prelude::LeptosOptions;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub limits: Limits,
    /// Stripe, live or simulated.
    pub gateway: Arc<dyn StripeGateway>,
    /// What is on sale: price ids, tokens, prices.
    pub catalog: Arc<Catalog>,
    /// Stripe events (and the success page) into ledger changes, once.
    pub fulfilment: Arc<Fulfilment>,
    pub clock: Arc<dyn Clock>,
}

/// The rate limits, each keyed by what it protects.
#[derive(Clone)]
pub struct Limits {
    /// Checkout, portal and admin adjustments: per user and IP.
    pub billing_writes: Arc<dyn RateLimiter>,
    /// Login and sign-up attempts from one IP.
    pub login_by_ip: Arc<dyn RateLimiter>,
    /// Login attempts on one account, from anywhere.
    pub login_by_email: Arc<dyn RateLimiter>,
}
