//! What the server's tests share, written once: a fresh app per test ([`app`]), requests as a
//! test reads them ([`requests`]), Stripe's webhook deliveries ([`webhooks`]), waiting for
//! what happens in the background ([`wait`]), the server as a real process ([`process`]), a
//! stand-in for Stripe's API ([`stripe_api`]), its captured logs ([`logs`]), its metrics
//! ([`metrics`]) and the mail it sends ([`mail`]). Users, purchases, Stripe events and test databases come from
//! `billing::testing`.

pub mod app;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod process;
pub mod receiver;
pub mod requests;
pub mod stripe_api;
pub mod wait;
pub mod webhooks;

pub use app::{
    PASSWORD, TestApp, password_hash, spawn_app, spawn_app_on, spawn_app_on_postgres,
    spawn_app_serving, spawn_app_with,
};
pub use logs::capture_logs;
pub use mail::MailServer;
pub use metrics::Metrics;
pub use process::ServerProcess;
pub use receiver::Receiver;
pub use requests::{Answer, ApiClient, Browser, ServerEvent};
pub use stripe_api::StripeApi;
pub use wait::eventually_within;
pub use webhooks::Webhooks;

/// What a server process offers a test, as [`TestApp`] does.
impl ServerProcess {
    /// A browser of its own at this server, signed in as nobody.
    pub fn browser(&self) -> Browser {
        Browser::at(&self.base)
    }

    /// Stripe's deliveries to this server, signed with [`process::WEBHOOK_SECRET`].
    pub fn webhooks(&self) -> Webhooks {
        Webhooks::new(&self.base, process::WEBHOOK_SECRET)
    }
}
