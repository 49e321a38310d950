//! An offline Stripe for development and tests: it keeps customers, Checkout sessions,
//! charges, refunds, subscriptions, invoices and disputes in memory, and makes the
//! Stripe-shaped events each action would cause. The server shows its checkout and portal
//! pages and delivers those events, signed with the webhook secret, to the app's own webhook
//! endpoint; this module does no HTTP. Refused in production by the settings.
//!
//! One file a room: [`objects`] (what the account holds), [`json`] (how Stripe writes it, a
//! file an object kind), [`checkout`], [`subscriptions`] and [`payments`] (what customers and
//! banks do), [`gateway`] (what the app asks of Stripe, in process) and [`api`] (the same, as
//! Stripe's REST API answers it, for a stand-in over HTTP).

mod api;
mod cards;
mod checkout;
mod gateway;
mod json;
mod objects;
mod payments;
mod subscriptions;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rand::RngCore;
use serde_json::Value;
use url::Url;

pub use api::ApiAnswer;
pub use cards::SetupView;
pub use json::{API_VERSION, ApiShape};
pub use objects::{DisputeStatus, PayMethod, TestCard};

use super::gateway::{ListedEvent, RefundStatus};
use super::signature;
use super::status::SubscriptionStatus;
use crate::clock::{Clock, SystemClock};
use crate::domain::{Currency, Money, ProductId, Timestamp};
use objects::State;

/// Where the server serves the simulator's pages.
pub const PATH_PREFIX: &str = "/simulated-stripe";

/// Thirty days, the simulated billing period.
pub const PERIOD_SECS: i64 = 30 * 24 * 3600;

/// What the simulated products cost.
pub fn price_of(product: ProductId) -> Money {
    let cents = match product {
        ProductId::Small => 1_000,
        ProductId::Medium => 4_000,
        ProductId::Large => 9_000,
        ProductId::Starter => 3_500,
    };
    Money::new(cents, Currency::parse("usd").expect("a valid code")).expect("positive")
}

/// Events a simulated action caused, as Stripe would send them.
#[derive(Debug, Default)]
pub struct Emitted {
    pub now: Vec<ListedEvent>,
    /// An asynchronous payment to settle (with [`Simulator::settle`]) a little later.
    pub settles: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("no such simulated object")]
    NotFound,
    #[error("{0}")]
    Refused(&'static str),
}

/// The simulated Stripe account.
pub struct Simulator {
    site: Url,
    webhook_secret: String,
    /// Price id -> product, from the catalog.
    prices: BTreeMap<String, ProductId>,
    clock: Arc<dyn Clock>,
    shape: ApiShape,
    ids: Ids,
    state: Mutex<State>,
    /// An outage: the API answers only errors while it lasts.
    down: std::sync::atomic::AtomicBool,
}

/// Ids shaped like Stripe's: a prefix, then letters and digits unique to this account.
struct Ids {
    account: String,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        let mut bytes = [0u8; 4];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            account: hex::encode(bytes),
            next: AtomicU64::new(1),
        }
    }

    fn make(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}_sim{}{n:06}", self.account)
    }
}

/// One action on the account: the state it changes, its time, and the events it causes.
struct Act<'a> {
    pub state: &'a mut State,
    /// Unix seconds.
    pub now: i64,
    sim: &'a Simulator,
    emitted: Emitted,
}

impl Act<'_> {
    pub fn id(&self, prefix: &str) -> String {
        self.sim.ids.make(prefix)
    }

    pub fn shape(&self) -> ApiShape {
        self.sim.shape
    }

    /// The plan's price id, when the catalog sells it.
    pub fn plan_price(&self) -> Option<String> {
        self.sim
            .prices
            .iter()
            .find(|(_, product)| **product == ProductId::Starter)
            .map(|(price, _)| price.clone())
    }

    /// Makes an event about `object`, logs it, and sends it with the action's answer.
    pub fn emit(&mut self, kind: &str, object: Value) {
        let id = self.id("evt");
        let payload = json::event(&id, kind, object, self.now, self.sim.shape);
        let listed = ListedEvent { id, payload };
        self.state.log.push((self.now, listed.clone()));
        self.emitted.now.push(listed);
    }

    pub fn settles_later(&mut self, session: &str) {
        self.emitted.settles = Some(session.to_owned());
    }

    /// The customer a portal session belongs to.
    pub fn portal_customer(&self, portal: &str) -> Result<String, SimError> {
        self.state
            .portals
            .get(portal)
            .map(|p| p.customer.clone())
            .ok_or(SimError::NotFound)
    }
}

/// A Checkout session as the simulator's page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutView {
    pub id: String,
    pub product: ProductId,
    pub amount: Money,
    pub open: bool,
}

/// What the simulated portal shows a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalView {
    pub return_url: Url,
    pub subscriptions: Vec<SubscriptionView>,
    pub payments: Vec<PaymentView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionView {
    pub id: String,
    pub status: SubscriptionStatus,
    pub quantity: i64,
    pub amount: Money,
    pub period_end: Timestamp,
    pub cancel_at_period_end: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentView {
    pub charge: String,
    pub description: String,
    pub amount: Money,
    pub refunded: Money,
    pub refunds: Vec<RefundView>,
    /// The dispute's id and status.
    pub dispute: Option<(String, DisputeStatus)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundView {
    pub id: String,
    pub amount: Money,
    pub status: RefundStatus,
}

impl Simulator {
    /// `site` is the app's public origin (the pages live under it); `prices` the catalog's.
    pub fn new(
        site: Url,
        webhook_secret: impl Into<String>,
        prices: impl IntoIterator<Item = (ProductId, String)>,
    ) -> Self {
        Self {
            site,
            webhook_secret: webhook_secret.into(),
            prices: prices.into_iter().map(|(p, id)| (id, p)).collect(),
            clock: Arc::new(SystemClock),
            shape: ApiShape::Current,
            ids: Ids::new(),
            state: Mutex::new(State::default()),
            down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Starts (`true`) or ends an outage of the API: until it ends, every request the app
    /// makes fails as Stripe's do when it is unavailable (the account itself goes on).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Times events and periods by `clock` (tests move it) instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends events in the shape of another API version (an endpoint pinned to an old one).
    pub fn with_shape(mut self, shape: ApiShape) -> Self {
        self.shape = shape;
        self
    }

    /// The `Stripe-Signature` header for a payload, signed now.
    pub fn sign(&self, payload: &str) -> String {
        signature::sign(payload.as_bytes(), &self.webhook_secret, self.now())
    }

    fn now(&self) -> i64 {
        self.clock.now().as_millis().div_euclid(1000)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one action under the account's lock: all or nothing (a refused action leaves the
    /// account as it was), its events in order.
    fn act<T>(
        &self,
        action: impl FnOnce(&mut Act<'_>) -> Result<T, SimError>,
    ) -> Result<(T, Emitted), SimError> {
        let mut state = self.state();
        let before = state.clone();
        let mut act = Act {
            state: &mut state,
            now: self.now(),
            sim: self,
            emitted: Emitted::default(),
        };
        match action(&mut act) {
            Ok(answer) => Ok((answer, act.emitted)),
            Err(refused) => {
                *state = before;
                Err(refused)
            }
        }
    }

    fn page(&self, path: &str) -> Url {
        self.site
            .join(&format!("{PATH_PREFIX}/{path}"))
            .expect("a valid relative path")
    }

    pub fn checkout_view(&self, id: &str) -> Option<CheckoutView> {
        let state = self.state();
        let session = state.sessions.get(id)?;
        Some(CheckoutView {
            id: session.id.clone(),
            product: session.product,
            amount: session.amount,
            open: session.status == objects::SessionStatus::Open,
        })
    }

    pub fn portal_view(&self, id: &str) -> Option<PortalView> {
        let state = self.state();
        let portal = state.portals.get(id)?;
        let subscriptions = state
            .subscriptions
            .values()
            .filter(|s| s.customer == portal.customer)
            .map(|s| SubscriptionView {
                id: s.id.clone(),
                status: s.status,
                quantity: s.quantity,
                amount: s.unit,
                period_end: Timestamp::from_millis(s.period_end * 1000),
                cancel_at_period_end: s.cancel_at_period_end,
            })
            .collect();
        let payments = state
            .charges
            .iter()
            .filter(|c| c.customer == portal.customer)
            .map(|c| {
                let money = |minor| Money::new(minor, c.amount.currency()).expect("not negative");
                PaymentView {
                    charge: c.id.clone(),
                    description: c.description.clone(),
                    amount: c.amount,
                    refunded: money(state.refunded(&c.id)),
                    refunds: state
                        .refunds
                        .iter()
                        .filter(|r| r.charge == c.id)
                        .map(|r| RefundView {
                            id: r.id.clone(),
                            amount: money(r.amount),
                            status: r.status,
                        })
                        .collect(),
                    dispute: state.dispute_of(&c.id).map(|d| (d.id.clone(), d.status)),
                }
            })
            .collect();
        Some(PortalView {
            return_url: portal.return_url.clone(),
            subscriptions,
            payments,
        })
    }
}
