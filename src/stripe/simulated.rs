//! An offline Stripe for development and tests: it keeps customers, Checkout sessions,
//! payments, subscriptions and disputes in memory, and makes the Stripe-shaped events each
//! action would cause. The server shows its checkout and portal pages and delivers those
//! events, signed with the webhook secret, to the app's own webhook endpoint; this module does
//! no HTTP. Refused in production by the settings.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use rand::RngCore;
use serde_json::{Value, json};
use url::Url;

use super::gateway::{
    CheckoutRequest, CheckoutSession, GatewayError, GatewayMode, LineItem, ListedEvent,
    SessionSnapshot, StripeGateway,
};
use super::signature;
use crate::domain::{Currency, Email, Money, ProductId, ProductKind, Timestamp, UserId};

/// Where the server serves the simulator's pages.
pub const PATH_PREFIX: &str = "/simulated-stripe";

/// The API version the simulated events claim (the one async-stripe is generated for).
const API_VERSION: &str = "2026-09-30.endive";

/// Thirty days, the simulated billing period.
const PERIOD_SECS: i64 = 30 * 24 * 3600;

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

/// How the simulated customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayMethod {
    /// A card: paid at once.
    Card,
    /// A bank debit that succeeds later.
    DelayedSuccess,
    /// A bank debit that fails later.
    DelayedFailure,
}

/// Events a simulated action caused, as Stripe would send them.
#[derive(Debug, Default)]
pub struct Emitted {
    pub now: Vec<ListedEvent>,
    /// An asynchronous payment to settle (with [`Simulator::settle`]) a little later.
    pub settles: Option<String>,
}

impl Emitted {
    fn one(event: ListedEvent) -> Self {
        Self {
            now: vec![event],
            settles: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    #[error("no such simulated object")]
    NotFound,
    #[error("{0}")]
    Refused(&'static str),
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    user: UserId,
    customer: String,
    price: String,
    product: ProductId,
    amount: Money,
    success_url: String,
    cancel_url: String,
    idempotency_key: String,
    status: &'static str,
    payment_status: &'static str,
    /// An asynchronous payment method chosen, not settled yet.
    settling: Option<PayMethod>,
    payment_intent: Option<String>,
    subscription: Option<String>,
    invoice: Option<String>,
    created: i64,
}

#[derive(Debug, Clone)]
struct Payment {
    charge: String,
    payment_intent: String,
    customer: String,
    amount: Money,
    refunded: i64,
    invoice: Option<String>,
    description: String,
    created: i64,
}

#[derive(Debug, Clone)]
struct Subscription {
    id: String,
    customer: String,
    user: UserId,
    price: String,
    amount: Money,
    status: &'static str,
    period_start: i64,
    period_end: i64,
    cancel_at_period_end: bool,
    canceled_at: Option<i64>,
    created: i64,
}

#[derive(Debug, Clone)]
struct Dispute {
    id: String,
    charge: String,
    status: &'static str,
}

#[derive(Debug, Clone)]
struct Portal {
    customer: String,
    return_url: Url,
}

#[derive(Default)]
struct State {
    sessions: BTreeMap<String, Session>,
    payments: Vec<Payment>,
    subscriptions: BTreeMap<String, Subscription>,
    disputes: Vec<Dispute>,
    portals: BTreeMap<String, Portal>,
    /// Every event made, oldest first (what `GET /v1/events` lists).
    log: Vec<(i64, ListedEvent)>,
}

/// The simulated Stripe account.
pub struct Simulator {
    site: Url,
    webhook_secret: String,
    /// Price id -> product, from the catalog.
    prices: BTreeMap<String, ProductId>,
    state: Mutex<State>,
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
    pub status: String,
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
    pub dispute: Option<(String, String)>,
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_sim{}", hex::encode(bytes))
}

fn now_secs() -> i64 {
    Timestamp::now().as_millis() / 1000
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
            state: Mutex::new(State::default()),
        }
    }

    /// The `Stripe-Signature` header for a payload, signed now.
    pub fn sign(&self, payload: &str) -> String {
        signature::sign(payload.as_bytes(), &self.webhook_secret, now_secs())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            open: session.status == "open",
        })
    }

    /// The customer left Checkout: back to the app's cancel page, nothing charged.
    pub fn cancel(&self, id: &str) -> Result<String, SimError> {
        let mut state = self.state();
        let session = state.sessions.get_mut(id).ok_or(SimError::NotFound)?;
        if session.status == "open" {
            session.status = "expired";
        }
        Ok(session.cancel_url.clone())
    }

    /// The customer pays: the session completes, and the events follow.
    pub fn pay(&self, id: &str, method: PayMethod) -> Result<(String, Emitted), SimError> {
        let mut state = self.state();
        let mut session = state.sessions.get(id).cloned().ok_or(SimError::NotFound)?;
        if session.status != "open" {
            return Err(SimError::Refused("this checkout session is no longer open"));
        }
        let now = now_secs();
        let mut emitted = Emitted::default();
        session.status = "complete";
        let success = session
            .success_url
            .replace("{CHECKOUT_SESSION_ID}", &session.id);

        if session.product.kind() == ProductKind::Subscription {
            if method != PayMethod::Card {
                return Err(SimError::Refused("subscriptions are paid by card here"));
            }
            session.payment_status = "paid";
            let sub = Subscription {
                id: random_id("sub"),
                customer: session.customer.clone(),
                user: session.user,
                price: session.price.clone(),
                amount: session.amount,
                status: "active",
                period_start: now,
                period_end: now + PERIOD_SECS,
                cancel_at_period_end: false,
                canceled_at: None,
                created: now,
            };
            session.subscription = Some(sub.id.clone());
            state.subscriptions.insert(sub.id.clone(), sub.clone());
            let (invoice, invoice_events) =
                Self::invoice(&mut state, &sub, "subscription_create", now);
            session.invoice = Some(invoice);
            state.sessions.insert(session.id.clone(), session.clone());
            // Stripe sends these in no fixed order; the app must not care.
            let created = event(
                &mut state,
                "customer.subscription.created",
                subscription_json(&sub),
                now,
            );
            emitted.now.push(created);
            emitted.now.extend(invoice_events);
            let completed = event(
                &mut state,
                "checkout.session.completed",
                session_json(&session),
                now,
            );
            emitted.now.push(completed);
            return Ok((success, emitted));
        }

        let payment_intent = random_id("pi");
        session.payment_intent = Some(payment_intent.clone());
        match method {
            PayMethod::Card => {
                session.payment_status = "paid";
                Self::charge(&mut state, &session, &payment_intent, None, now);
                state.sessions.insert(session.id.clone(), session.clone());
                let completed = event(
                    &mut state,
                    "checkout.session.completed",
                    session_json(&session),
                    now,
                );
                emitted.now.push(completed);
            }
            PayMethod::DelayedSuccess | PayMethod::DelayedFailure => {
                session.payment_status = "unpaid";
                session.settling = Some(method);
                state.sessions.insert(session.id.clone(), session.clone());
                let completed = event(
                    &mut state,
                    "checkout.session.completed",
                    session_json(&session),
                    now,
                );
                emitted.now.push(completed);
                emitted.settles = Some(session.id.clone());
            }
        }
        Ok((success, emitted))
    }

    /// The bank answers an asynchronous payment: paid (and charged), or failed.
    pub fn settle(&self, id: &str) -> Result<Emitted, SimError> {
        let mut state = self.state();
        let mut session = state.sessions.get(id).cloned().ok_or(SimError::NotFound)?;
        let method = session
            .settling
            .take()
            .ok_or(SimError::Refused("no payment is waiting to settle"))?;
        let now = now_secs();
        let kind = if method == PayMethod::DelayedSuccess {
            session.payment_status = "paid";
            let payment_intent = session.payment_intent.clone().unwrap_or_default();
            Self::charge(&mut state, &session, &payment_intent, None, now);
            "checkout.session.async_payment_succeeded"
        } else {
            "checkout.session.async_payment_failed"
        };
        state.sessions.insert(session.id.clone(), session.clone());
        let settled = event(&mut state, kind, session_json(&session), now);
        Ok(Emitted::one(settled))
    }

    fn charge(
        state: &mut State,
        session: &Session,
        payment_intent: &str,
        invoice: Option<String>,
        now: i64,
    ) -> Payment {
        let payment = Payment {
            charge: random_id("ch"),
            payment_intent: payment_intent.to_owned(),
            customer: session.customer.clone(),
            amount: session.amount,
            refunded: 0,
            invoice,
            description: session.product.label().to_owned(),
            created: now,
        };
        state.payments.push(payment.clone());
        payment
    }

    /// A paid invoice for a subscription period, and its `invoice.paid` event.
    fn invoice(
        state: &mut State,
        sub: &Subscription,
        reason: &str,
        now: i64,
    ) -> (String, Vec<ListedEvent>) {
        let id = random_id("in");
        let payment = Payment {
            charge: random_id("ch"),
            payment_intent: random_id("pi"),
            customer: sub.customer.clone(),
            amount: sub.amount,
            refunded: 0,
            invoice: Some(id.clone()),
            description: format!("{} invoice", ProductId::Starter.label()),
            created: now,
        };
        state.payments.push(payment);
        let invoice = json!({
            "id": id,
            "object": "invoice",
            "customer": sub.customer,
            "status": "paid",
            "billing_reason": reason,
            "amount_due": sub.amount.minor(),
            "amount_paid": sub.amount.minor(),
            "amount_remaining": 0,
            "currency": sub.amount.currency().as_str(),
            "created": now,
            "period_start": sub.period_start,
            "period_end": sub.period_end,
            "livemode": false,
            "parent": {
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": {
                    "subscription": sub.id,
                    "metadata": { "user_id": sub.user.to_string() },
                },
            },
            "lines": {
                "object": "list",
                "has_more": false,
                "data": [{
                    "id": random_id("il"),
                    "object": "line_item",
                    "amount": sub.amount.minor(),
                    "currency": sub.amount.currency().as_str(),
                    "quantity": 1,
                    "period": { "start": sub.period_start, "end": sub.period_end },
                    "pricing": {
                        "type": "price_details",
                        "price_details": { "price": sub.price, "product": "prod_simstarter" },
                    },
                }],
            },
        });
        let paid = event(state, "invoice.paid", invoice, now);
        (id, vec![paid])
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
                status: s.status.to_owned(),
                amount: s.amount,
                period_end: Timestamp::from_millis(s.period_end * 1000),
                cancel_at_period_end: s.cancel_at_period_end,
            })
            .collect();
        let payments = state
            .payments
            .iter()
            .filter(|p| p.customer == portal.customer)
            .map(|p| PaymentView {
                charge: p.charge.clone(),
                description: p.description.clone(),
                amount: p.amount,
                refunded: Money::new(p.refunded, p.amount.currency()).expect("not negative"),
                dispute: state
                    .disputes
                    .iter()
                    .find(|d| d.charge == p.charge)
                    .map(|d| (d.id.clone(), d.status.to_owned())),
            })
            .collect();
        Some(PortalView {
            return_url: portal.return_url.clone(),
            subscriptions,
            payments,
        })
    }

    fn portal_subscription<'a>(
        state: &'a mut State,
        portal: &str,
        sub: &str,
    ) -> Result<&'a mut Subscription, SimError> {
        let customer = state
            .portals
            .get(portal)
            .ok_or(SimError::NotFound)?
            .customer
            .clone();
        state
            .subscriptions
            .get_mut(sub)
            .filter(|s| s.customer == customer)
            .ok_or(SimError::NotFound)
    }

    /// Cancels at the end of the period (as the portal usually does), or resumes.
    pub fn set_cancel_at_period_end(
        &self,
        portal: &str,
        sub: &str,
        cancel: bool,
    ) -> Result<Emitted, SimError> {
        let mut state = self.state();
        let now = now_secs();
        let s = Self::portal_subscription(&mut state, portal, sub)?;
        if s.status != "active" {
            return Err(SimError::Refused("the subscription is not active"));
        }
        s.cancel_at_period_end = cancel;
        let snapshot = s.clone();
        let updated = event(
            &mut state,
            "customer.subscription.updated",
            subscription_json(&snapshot),
            now,
        );
        Ok(Emitted::one(updated))
    }

    /// Ends the subscription now.
    pub fn cancel_now(&self, portal: &str, sub: &str) -> Result<Emitted, SimError> {
        let mut state = self.state();
        let now = now_secs();
        let s = Self::portal_subscription(&mut state, portal, sub)?;
        if s.status == "canceled" {
            return Err(SimError::Refused("the subscription is already canceled"));
        }
        s.status = "canceled";
        s.canceled_at = Some(now);
        let snapshot = s.clone();
        let deleted = event(
            &mut state,
            "customer.subscription.deleted",
            subscription_json(&snapshot),
            now,
        );
        Ok(Emitted::one(deleted))
    }

    /// Moves the subscription to its next period: a new paid invoice (as at each renewal).
    pub fn renew(&self, portal: &str, sub: &str) -> Result<Emitted, SimError> {
        let mut state = self.state();
        let now = now_secs();
        let s = Self::portal_subscription(&mut state, portal, sub)?;
        if s.status != "active" {
            return Err(SimError::Refused("the subscription is not active"));
        }
        if s.cancel_at_period_end {
            s.status = "canceled";
            s.canceled_at = Some(now);
            let snapshot = s.clone();
            let deleted = event(
                &mut state,
                "customer.subscription.deleted",
                subscription_json(&snapshot),
                now,
            );
            return Ok(Emitted::one(deleted));
        }
        s.period_start = s.period_end;
        s.period_end += PERIOD_SECS;
        let snapshot = s.clone();
        let (_, mut events) = Self::invoice(&mut state, &snapshot, "subscription_cycle", now);
        events.push(event(
            &mut state,
            "customer.subscription.updated",
            subscription_json(&snapshot),
            now,
        ));
        Ok(Emitted {
            now: events,
            settles: None,
        })
    }

    fn portal_payment<'a>(
        state: &'a mut State,
        portal: &str,
        charge: &str,
    ) -> Result<&'a mut Payment, SimError> {
        let customer = state
            .portals
            .get(portal)
            .ok_or(SimError::NotFound)?
            .customer
            .clone();
        state
            .payments
            .iter_mut()
            .find(|p| p.charge == charge && p.customer == customer)
            .ok_or(SimError::NotFound)
    }

    /// Refunds `amount` minor units of a payment (what is left of it, at most).
    pub fn refund(&self, portal: &str, charge: &str, amount: i64) -> Result<Emitted, SimError> {
        let mut state = self.state();
        let now = now_secs();
        let payment = Self::portal_payment(&mut state, portal, charge)?;
        let left = payment.amount.minor() - payment.refunded;
        if amount <= 0 || left <= 0 {
            return Err(SimError::Refused("nothing left to refund"));
        }
        payment.refunded += amount.min(left);
        let snapshot = payment.clone();
        let refunded = event(&mut state, "charge.refunded", charge_json(&snapshot), now);
        Ok(Emitted::one(refunded))
    }

    /// The customer's bank disputes the whole payment.
    pub fn dispute(&self, portal: &str, charge: &str) -> Result<Emitted, SimError> {
        let mut state = self.state();
        let now = now_secs();
        let payment = Self::portal_payment(&mut state, portal, charge)?.clone();
        if state.disputes.iter().any(|d| d.charge == payment.charge) {
            return Err(SimError::Refused("the payment is already disputed"));
        }
        let dispute = Dispute {
            id: random_id("du"),
            charge: payment.charge.clone(),
            status: "needs_response",
        };
        state.disputes.push(dispute.clone());
        let created = event(
            &mut state,
            "charge.dispute.created",
            dispute_json(&dispute, &payment),
            now,
        );
        Ok(Emitted::one(created))
    }

    /// The dispute ends, won or lost.
    pub fn close_dispute(
        &self,
        portal: &str,
        dispute: &str,
        won: bool,
    ) -> Result<Emitted, SimError> {
        let mut state = self.state();
        let now = now_secs();
        let charge = state
            .disputes
            .iter()
            .find(|d| d.id == dispute)
            .ok_or(SimError::NotFound)?
            .charge
            .clone();
        let payment = Self::portal_payment(&mut state, portal, &charge)?.clone();
        let d = state
            .disputes
            .iter_mut()
            .find(|d| d.id == dispute)
            .ok_or(SimError::NotFound)?;
        if d.status != "needs_response" {
            return Err(SimError::Refused("the dispute is already closed"));
        }
        d.status = if won { "won" } else { "lost" };
        let snapshot = d.clone();
        let closed = event(
            &mut state,
            "charge.dispute.closed",
            dispute_json(&snapshot, &payment),
            now,
        );
        Ok(Emitted::one(closed))
    }
}

/// Makes an event around `object`, logs it, and returns it.
fn event(state: &mut State, kind: &str, object: Value, now: i64) -> ListedEvent {
    let id = random_id("evt");
    let payload = json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
        "data": { "object": object },
    })
    .to_string();
    let listed = ListedEvent { id, payload };
    state.log.push((now, listed.clone()));
    listed
}

fn session_json(s: &Session) -> Value {
    let subscription = s.product.kind() == ProductKind::Subscription;
    json!({
        "id": s.id,
        "object": "checkout.session",
        "mode": if subscription { "subscription" } else { "payment" },
        "status": s.status,
        "payment_status": s.payment_status,
        "client_reference_id": s.user.to_string(),
        "customer": s.customer,
        "metadata": { "user_id": s.user.to_string(), "product": s.product.as_str() },
        "payment_intent": s.payment_intent,
        "subscription": s.subscription,
        "invoice": s.invoice,
        "amount_subtotal": s.amount.minor(),
        "amount_total": s.amount.minor(),
        "currency": s.amount.currency().as_str(),
        "success_url": s.success_url,
        "cancel_url": s.cancel_url,
        "url": null,
        "created": s.created,
        "expires_at": s.created + 24 * 3600,
        "livemode": false,
    })
}

fn subscription_json(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "object": "subscription",
        "customer": s.customer,
        "status": s.status,
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancel_at": if s.cancel_at_period_end { Some(s.period_end) } else { None },
        "canceled_at": s.canceled_at,
        "created": s.created,
        "start_date": s.created,
        "metadata": { "user_id": s.user.to_string() },
        "livemode": false,
        "items": {
            "object": "list",
            "has_more": false,
            "data": [{
                "id": format!("si_{}", &s.id[4..]),
                "object": "subscription_item",
                "quantity": 1,
                "current_period_start": s.period_start,
                "current_period_end": s.period_end,
                "price": {
                    "id": s.price,
                    "object": "price",
                    "unit_amount": s.amount.minor(),
                    "currency": s.amount.currency().as_str(),
                    "recurring": { "interval": "month", "interval_count": 1 },
                },
            }],
        },
    })
}

fn charge_json(p: &Payment) -> Value {
    json!({
        "id": p.charge,
        "object": "charge",
        "amount": p.amount.minor(),
        "amount_captured": p.amount.minor(),
        "amount_refunded": p.refunded,
        "currency": p.amount.currency().as_str(),
        "customer": p.customer,
        "payment_intent": p.payment_intent,
        "paid": true,
        "refunded": p.refunded >= p.amount.minor(),
        "status": "succeeded",
        "created": p.created,
        "livemode": false,
    })
}

fn dispute_json(d: &Dispute, p: &Payment) -> Value {
    json!({
        "id": d.id,
        "object": "dispute",
        "amount": p.amount.minor(),
        "currency": p.amount.currency().as_str(),
        "charge": p.charge,
        "payment_intent": p.payment_intent,
        "reason": "fraudulent",
        "status": d.status,
        "created": p.created,
        "livemode": false,
    })
}

#[async_trait]
impl StripeGateway for Simulator {
    fn mode(&self) -> GatewayMode {
        GatewayMode::Simulated
    }

    async fn price(&self, price: &str) -> Result<Option<Money>, GatewayError> {
        Ok(self.prices.get(price).map(|product| price_of(*product)))
    }

    async fn create_customer(&self, _user: UserId, _email: &Email) -> Result<String, GatewayError> {
        Ok(random_id("cus"))
    }

    async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, GatewayError> {
        let product = *self
            .prices
            .get(&request.price)
            .ok_or_else(|| GatewayError::Refused(format!("No such price: '{}'", request.price)))?;
        let mut state = self.state();
        // Stripe answers a repeated idempotency key with the first response.
        if let Some(existing) = state
            .sessions
            .values()
            .find(|s| s.idempotency_key == request.idempotency_key)
        {
            return Ok(CheckoutSession {
                id: existing.id.clone(),
                url: self.page(&format!("checkout/{}", existing.id)),
            });
        }
        let session = Session {
            id: random_id("cs"),
            user: request.user,
            customer: request.customer.clone(),
            price: request.price.clone(),
            product,
            amount: price_of(product),
            success_url: request.success_url.clone(),
            cancel_url: request.cancel_url.clone(),
            idempotency_key: request.idempotency_key.clone(),
            status: "open",
            payment_status: "unpaid",
            settling: None,
            payment_intent: None,
            subscription: None,
            invoice: None,
            created: now_secs(),
        };
        let created = CheckoutSession {
            id: session.id.clone(),
            url: self.page(&format!("checkout/{}", session.id)),
        };
        state.sessions.insert(session.id.clone(), session);
        Ok(created)
    }

    async fn checkout_session(&self, session: &str) -> Result<SessionSnapshot, GatewayError> {
        let state = self.state();
        let s = state.sessions.get(session).ok_or_else(|| {
            GatewayError::Refused(format!("No such checkout session: '{session}'"))
        })?;
        Ok(SessionSnapshot {
            id: s.id.clone(),
            user: Some(s.user),
            customer: Some(s.customer.clone()),
            mode: if s.product.kind() == ProductKind::Subscription {
                "subscription"
            } else {
                "payment"
            }
            .to_owned(),
            payment_status: s.payment_status.to_owned(),
            status: s.status.to_owned(),
            payment_intent: s.payment_intent.clone(),
            amount_total: Some(s.amount),
        })
    }

    async fn checkout_line_items(&self, session: &str) -> Result<Vec<LineItem>, GatewayError> {
        let state = self.state();
        let s = state.sessions.get(session).ok_or_else(|| {
            GatewayError::Refused(format!("No such checkout session: '{session}'"))
        })?;
        Ok(vec![LineItem {
            price: s.price.clone(),
            quantity: 1,
            amount_total: Some(s.amount),
        }])
    }

    async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &Url,
    ) -> Result<Url, GatewayError> {
        let id = random_id("bps");
        self.state().portals.insert(
            id.clone(),
            Portal {
                customer: customer.to_owned(),
                return_url: return_url.clone(),
            },
        );
        Ok(self.page(&format!("portal/{id}")))
    }

    async fn invoice_of_payment_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, GatewayError> {
        Ok(self
            .state()
            .payments
            .iter()
            .find(|p| p.payment_intent == payment_intent)
            .and_then(|p| p.invoice.clone()))
    }

    async fn events_since(&self, since: Timestamp) -> Result<Vec<ListedEvent>, GatewayError> {
        let since = since.as_millis() / 1000;
        Ok(self
            .state()
            .log
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, e)| e.clone())
            .collect())
    }
}
