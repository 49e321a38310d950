//! What server functions and routes share, built once at start-up by the server.

use std::sync::Arc;

use axum::extract::FromRef;
use billing::catalog::Catalog;
use billing::clock::Clock;
use billing::config::{Config, Secret};
use billing::device_cookie::DeviceCookies;
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
    /// What Stripe's webhooks are signed with (a setting, or made in the data folder).
    pub webhook_secret: Secret,
    /// Signs and checks the device cookies that logins leave.
    pub device_cookies: DeviceCookies,
}

/// The rate limits, each keyed by what it protects.
#[derive(Clone)]
pub struct Limits {
    /// Checkout, portal and admin adjustments: per user and IP.
    pub billing_writes: Arc<dyn RateLimiter>,
    /// The success page's check of a Checkout session: per user.
    pub checkout_status: Arc<dyn RateLimiter>,
    /// Login and sign-up attempts from one IP.
    pub login_by_ip: Arc<dyn RateLimiter>,
    /// Login attempts on one account from one IP, without a device cookie of the account.
    pub login_by_account_and_ip: Arc<dyn RateLimiter>,
    /// Login attempts on one account from anywhere, without a device cookie of the account:
    /// the ceiling that guessing from many addresses runs into.
    pub login_by_account: Arc<dyn RateLimiter>,
    /// Login attempts with one device cookie (a browser the account logged in from before).
    pub login_by_device: Arc<dyn RateLimiter>,
}

impl Limits {
    pub fn all(&self) -> [&Arc<dyn RateLimiter>; 6] {
        [
            &self.billing_writes,
            &self.checkout_status,
            &self.login_by_ip,
            &self.login_by_account_and_ip,
            &self.login_by_account,
            &self.login_by_device,
        ]
    }
}
