//! What the server's tests share, written once: a fresh app per test ([`app`]), requests as a
//! test reads them ([`requests`]), the server as a real process ([`process`]), a stand-in for
//! Stripe's API ([`stripe_api`]), and its captured logs ([`logs`]). Users, purchases, Stripe
//! events and test databases come from `billing::testing`.

pub mod app;
pub mod logs;
pub mod process;
pub mod requests;
pub mod stripe_api;

pub use app::{PASSWORD, TestApp, password_hash, spawn_app, spawn_app_with};
pub use logs::capture_logs;
pub use process::ServerProcess;
pub use requests::{Answer, Browser};
pub use stripe_api::StripeApi;
