//! The model-based history checker: money stays right under any order, any failure and any
//! concurrency, judged from Stripe's side.
//!
//! A seeded generator draws a history over a few users ([`steps`]): packs bought by card and
//! by delayed payment methods, subscriptions with renewals, seat changes and cancellations,
//! refunds (some failing), disputes (inquiries, chargebacks, won and lost), consume calls
//! (some retried, some with a changed body), admin credits, auto top-up turned on with cards
//! that pay, are declined or need the cardholder, and its top-ups paid. Each step acts on the simulated
//! Stripe at once; the events it sends wait and are delivered by later steps the way Stripe
//! delivers: in any order, twice at once, again later, to either of two nodes (each with its
//! own pool on the same database), with the database failing midway through applying one, and
//! with users back on success pages at the same moment. At the end, Stripe retries whatever
//! was not acknowledged, sends some events again, and the sweep runs.
//!
//! The reference [`model`] then says what every balance must be, and the run checks each to
//! the token, `balance == sum(ledger)`, that every event was applied, that consume calls
//! were answered as their keys require, and that every ledger row is one outgoing event. A failing seed is shrunk to the shortest history that
//! still fails; the seed replays the original.

mod calls;
mod credits;
pub mod model;
pub mod nodes;
mod outbox;
mod statements;
pub mod steps;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use url::Url;

use self::calls::{HoldCall, HoldSeen};
use self::model::{Dispute, Model, PLAN_TOKENS};
use self::nodes::{Cluster, Consumed, Heard, InProcess, Node};
use self::steps::{Act, Known, Pick, Step};
use super::{FakeUser, Faults, TestDb};
use crate::catalog::Catalog;
use crate::clock::{Clock, ManualClock};
use crate::config::PriceIds;
use crate::domain::TopUpChoice;
use crate::domain::{Email, IdempotencyKey, ProductId, Reason, Timestamp, TokenDelta};
use crate::ledger::{LedgerError, Posting};
use crate::store::TopUps;
use crate::store::{Outbox, SqlStore, Store, StoreError};
use crate::stripe::gateway::{CardSetupRequest, CheckoutRequest, ListedEvent, StripeGateway};
use crate::stripe::simulated::{ApiShape, DisputeStatus, PayMethod, Simulator, TestCard};

/// How big a history is.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub users: usize,
    pub steps: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            users: 3,
            steps: 40,
        }
    }
}

/// A history whose outcome disagrees with the model.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub problems: Vec<String>,
    /// The shortest history found that still fails.
    pub shortest: Vec<Step>,
    pub drawn: usize,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history seed {} failed (HISTORY_SEED={} replays it):",
            self.seed, self.seed
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        writeln!(
            f,
            "shortest failing history found: {} of {} steps",
            self.shortest.len(),
            self.drawn
        )?;
        for step in &self.shortest {
            writeln!(f, "  {:>3}: {:?}", step.id, step.act)?;
        }
        Ok(())
    }
}

/// Runs `count` histories from `first_seed` on, each on users of its own in `db`, delivered
/// to two nodes in this process.
pub async fn check_many(
    db: &TestDb,
    first_seed: u64,
    count: u64,
    settings: Settings,
) -> Result<u64, Box<Failure>> {
    // The nodes tell time by the histories' clock, as the simulated Stripe does: what
    // expires, expires when the history says.
    let clock = ManualClock::starting_at(Timestamp::now());
    let store = db.with_clock(&clock).await;
    let cluster = InProcess {
        stores: vec![store.clone(), db.with_clock(&clock).await],
        catalog: Catalog::from_prices(&prices()),
    };
    check_many_on(store, &cluster, None, clock, first_seed, count, settings).await
}

/// As [`check_many`], delivered to the nodes of `cluster`; `store` is the database they
/// share, and every user gets `password_hash` (for nodes that need users to log in). The
/// histories' simulated Stripe tells time by `clock`, which only moves forward from one
/// history to the next (nodes on the system clock see its periods end in the future).
pub async fn check_many_on(
    store: Arc<SqlStore>,
    cluster: &dyn Cluster,
    password_hash: Option<String>,
    clock: ManualClock,
    first_seed: u64,
    count: u64,
    settings: Settings,
) -> Result<u64, Box<Failure>> {
    // An endpoint, so that every ledger row is an event the outbox check can count (nothing
    // listens there: a node that sends finds the port closed and retries, beside the ledger).
    store
        .add_endpoint(
            "http://127.0.0.1:9/history",
            &crate::outbox::new_endpoint_secret(),
            "the history checker",
        )
        .await
        .expect("an endpoint for the histories");
    let bench = Bench {
        faults: Faults::install(&store).await,
        store,
        cluster,
        password_hash,
        clock,
        runs: Default::default(),
    };
    let mut events = 0;
    for seed in first_seed..first_seed + count {
        match bench.run(seed, settings, None).await {
            Ok(sent) => events += sent,
            Err(problems) => return Err(Box::new(bench.shrink(seed, settings, problems).await)),
        }
    }
    Ok(events)
}

/// What every history on one database shares.
struct Bench<'c> {
    store: Arc<SqlStore>,
    cluster: &'c dyn Cluster,
    password_hash: Option<String>,
    faults: Faults,
    clock: ManualClock,
    /// Tells the histories' users apart.
    runs: std::sync::atomic::AtomicU64,
}

/// The catalog's simulated price ids, which the simulated Stripe sells and the nodes know.
pub fn prices() -> PriceIds {
    PriceIds {
        tokens_small: "price_sim_tokens_small".into(),
        tokens_medium: "price_sim_tokens_medium".into(),
        tokens_large: "price_sim_tokens_large".into(),
        subscription_starter: Some("price_sim_subscription_starter".into()),
    }
}

impl Bench<'_> {
    /// Draws and runs the history of `seed` (or runs `only` those of its steps); answers how
    /// many events it sent, or what went wrong.
    async fn run(
        &self,
        seed: u64,
        settings: Settings,
        only: Option<&[Step]>,
    ) -> Result<u64, Vec<String>> {
        let mut run = Run::start(self, seed, settings).await;
        match only {
            Some(steps) => {
                for step in steps {
                    run.apply(step).await;
                }
            }
            None => {
                let mut rng = StdRng::seed_from_u64(seed);
                for id in 0..settings.steps {
                    let step = steps::draw(&mut rng, id, &run.known());
                    run.apply(&step).await;
                    run.drawn.push(step);
                }
            }
        }
        run.finish(seed).await
    }

    /// Shortens a failing history as far as it still fails: chunks of steps are dropped,
    /// halves first, then smaller, while the failure stays.
    async fn shrink(&self, seed: u64, settings: Settings, problems: Vec<String>) -> Failure {
        let mut drawn = Vec::new();
        {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut run = Run::start(self, seed, settings).await;
            for id in 0..settings.steps {
                let step = steps::draw(&mut rng, id, &run.known());
                run.apply(&step).await;
                drawn.push(step);
            }
        }
        let total = drawn.len();
        let mut shortest = drawn;
        let mut last = problems;
        let mut chunk = shortest.len().div_ceil(2);
        let mut tries = 0;
        while chunk >= 1 && tries < 300 {
            let mut at = 0;
            let mut removed_any = false;
            while at < shortest.len() && tries < 300 {
                let mut candidate = shortest.clone();
                candidate.drain(at..(at + chunk).min(candidate.len()));
                tries += 1;
                match self.run(seed, settings, Some(&candidate)).await {
                    Err(problems) => {
                        shortest = candidate;
                        last = problems;
                        removed_any = true;
                    }
                    Ok(_) => at += chunk,
                }
            }
            if !removed_any {
                chunk /= 2;
            }
        }
        Failure {
            seed,
            problems: last,
            shortest,
            drawn: total,
        }
    }
}

/// A user of a history, as the app and Stripe know them.
struct Customer {
    user: crate::domain::UserId,
    email: Email,
    customer: String,
    portal: String,
}

/// A subscription as the history made it.
struct Plan {
    id: String,
    user: usize,
    /// Seats billed at the next renewal.
    seats: i64,
    live: bool,
    ends_at_renewal: bool,
}

/// A consume call as it was answered.
struct ConsumeCall {
    user: usize,
    tokens: i64,
    key: String,
    applied: Option<i64>,
}

/// One history being run.
struct Run<'a> {
    bench: &'a Bench<'a>,
    /// Whether the endpoint listens to every event (or only to the ones billing needs).
    every_event: bool,
    /// Tells this run's keys from other runs' on the same database.
    nonce: u64,
    sim: Arc<Simulator>,
    clock: ManualClock,
    nodes: Vec<Arc<dyn Node>>,
    users: Vec<Customer>,
    admin: crate::domain::UserId,
    trial: Option<i64>,
    model: Model,
    /// Checkout sessions: id, user, and how they are paid.
    sessions: Vec<(String, usize, PayMethod)>,
    /// Sessions whose payment is still clearing.
    settling: Vec<usize>,
    charges: Vec<String>,
    refunds: Vec<String>,
    disputes: Vec<String>,
    plans: Vec<Plan>,
    consumed: BTreeMap<usize, ConsumeCall>,
    /// Consume calls made during deliveries so far (each with a key of its own).
    live_consumes: usize,
    holds: Vec<HoldCall>,
    /// Events by the step that made them and their place among its events.
    events: BTreeMap<(usize, usize), ListedEvent>,
    pending: BTreeSet<(usize, usize)>,
    delivered: BTreeSet<(usize, usize)>,
    problems: Vec<String>,
    drawn: Vec<Step>,
}

impl<'a> Run<'a> {
    async fn start(bench: &'a Bench<'a>, seed: u64, settings: Settings) -> Self {
        let run = bench
            .runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let clock = bench.clock.clone();
        let sim = Arc::new(
            Simulator::new(
                Url::parse("http://127.0.0.1:3000").unwrap(),
                "whsec_history",
                Catalog::from_prices(&prices())
                    .price_ids()
                    .map(|(p, id)| (p, id.to_owned()))
                    .collect::<Vec<_>>(),
            )
            .with_clock(Arc::new(clock.clone()))
            // Some accounts' endpoints are pinned to an API version from before 2025.
            .with_shape(if seed % 4 == 1 {
                ApiShape::Before2025
            } else {
                ApiShape::Current
            }),
        );
        let trial = bench.cluster.trial_allowance(seed);
        let nodes = bench
            .cluster
            .nodes(sim.clone(), trial, bench.cluster.credit_rules(seed))
            .await;
        let store = &bench.store;
        let admin = FakeUser::new(&format!("admin-{seed}-{run}@example.com"))
            .admin()
            .create(&**store)
            .await
            .id;
        let mut users = Vec::new();
        for n in 0..settings.users {
            let user = FakeUser::new(&format!("u{n}-{seed}-{run}@example.com"))
                .maybe_password_hash(bench.password_hash.as_deref())
                .create(&**store)
                .await;
            let customer = sim.create_customer(user.id, &user.email).await.unwrap();
            store.link_customer(user.id, &customer).await.unwrap();
            let portal = sim
                .create_portal_session(&customer, &Url::parse("http://x/").unwrap())
                .await
                .unwrap();
            users.push(Customer {
                user: user.id,
                email: user.email,
                customer,
                portal: portal.path().rsplit('/').next().unwrap().to_owned(),
            });
        }
        Self {
            bench,
            every_event: seed % 5 != 2,
            nonce: run,
            sim,
            clock,
            nodes,
            users,
            admin,
            trial: trial.map(|t| t.get()),
            model: Model::default(),
            sessions: Vec::new(),
            settling: Vec::new(),
            charges: Vec::new(),
            refunds: Vec::new(),
            disputes: Vec::new(),
            plans: Vec::new(),
            consumed: BTreeMap::new(),
            live_consumes: 0,
            holds: Vec::new(),
            events: BTreeMap::new(),
            pending: BTreeSet::new(),
            delivered: BTreeSet::new(),
            problems: Vec::new(),
            drawn: Vec::new(),
        }
    }

    fn known(&self) -> Known {
        Known {
            users: self.users.len(),
            nodes: self.nodes.len(),
            sessions: self.sessions.len(),
            settling: self.settling.len(),
            charges: self.charges.len(),
            refunds: self.refunds.len(),
            disputes: self.disputes.len(),
            consumes: self.consumed.keys().copied().collect(),
            holds: self.holds.len(),
            topups: self.bench.cluster.pays_topups(),
            pending: self.pending.iter().copied().collect(),
            delivered: self.delivered.iter().copied().collect(),
        }
    }

    /// Keeps the events a step made, to be delivered later: those the endpoint listens to
    /// (some endpoints are not subscribed to a dispute's updates, withdrawals and
    /// reinstatements, and must do with its opening and its close).
    fn sent(&mut self, step: &Step, events: Vec<ListedEvent>) {
        const EXTRAS: [&str; 3] = [
            "charge.dispute.updated",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.funds_reinstated",
        ];
        for (ordinal, event) in events.into_iter().enumerate() {
            let kind = serde_json::from_str::<serde_json::Value>(&event.payload)
                .ok()
                .and_then(|e| e["type"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if !self.every_event && EXTRAS.contains(&kind.as_str()) {
                continue;
            }
            let tag = (step.id, ordinal);
            self.events.insert(tag, event);
            self.pending.insert(tag);
        }
    }

    /// Charges of a user's customer that the history has not seen yet, oldest first.
    fn new_charges(&mut self, user: usize) -> Vec<(String, i64)> {
        let view = self.sim.portal_view(&self.users[user].portal).unwrap();
        let fresh: Vec<(String, i64)> = view
            .payments
            .iter()
            .filter(|p| !self.charges.contains(&p.charge))
            .map(|p| (p.charge.clone(), p.amount.minor()))
            .collect();
        self.charges.extend(fresh.iter().map(|(c, _)| c.clone()));
        fresh
    }

    /// The subscription a step just made for `user`.
    fn new_plan(&mut self, user: usize) -> Option<String> {
        let view = self.sim.portal_view(&self.users[user].portal).unwrap();
        let id = view
            .subscriptions
            .iter()
            .map(|s| s.id.clone())
            .find(|id| !self.plans.iter().any(|p| &p.id == id))?;
        self.plans.push(Plan {
            id: id.clone(),
            user,
            seats: 1,
            live: true,
            ends_at_renewal: false,
        });
        Some(id)
    }

    fn live_plan(&self, user: usize, nth: usize) -> Option<usize> {
        let live: Vec<usize> = (0..self.plans.len())
            .filter(|&i| self.plans[i].user == user && self.plans[i].live)
            .collect();
        (!live.is_empty()).then(|| live[nth % live.len()])
    }

    async fn checkout(&self, user: usize, product: ProductId, key: String) -> String {
        let catalog = Catalog::from_prices(&prices());
        self.sim
            .create_checkout_session(&CheckoutRequest {
                user: self.users[user].user,
                customer: self.users[user].customer.clone(),
                price: catalog.price_id(product).unwrap().to_owned(),
                kind: product.kind(),
                success_url: "http://x/app/billing?session_id={CHECKOUT_SESSION_ID}".into(),
                cancel_url: "http://x/app/billing?canceled=1".into(),
                idempotency_key: key,
            })
            .await
            .unwrap()
            .id
    }

    async fn apply(&mut self, step: &Step) {
        let user = |u: usize, run: &Self| u % run.users.len();
        match step.act.clone() {
            Act::Buy {
                user: u,
                pack,
                method,
            } => {
                let u = user(u, self);
                let session = self.checkout(u, pack, format!("buy-{}", step.id)).await;
                let Ok((_, emitted)) = self.sim.pay(&session, method) else {
                    return;
                };
                self.sessions.push((session, u, method));
                if matches!(
                    method,
                    PayMethod::DelayedSuccess | PayMethod::DelayedFailure
                ) {
                    self.settling.push(self.sessions.len() - 1);
                }
                for (charge, amount) in self.new_charges(u) {
                    self.model.paid(u, &charge, pack.tokens().get(), amount);
                }
                self.sent(step, emitted.now);
            }
            Act::Settle { nth } => {
                if self.settling.is_empty() {
                    return;
                }
                let at = nth % self.settling.len();
                let (session, u, method) = self.sessions[self.settling.remove(at)].clone();
                let Ok(emitted) = self.sim.settle(&session) else {
                    return;
                };
                let pack = self.sim.checkout_view(&session).unwrap().product;
                for (charge, amount) in self.new_charges(u) {
                    debug_assert_eq!(method, PayMethod::DelayedSuccess);
                    self.model.paid(u, &charge, pack.tokens().get(), amount);
                }
                self.sent(step, emitted.now);
            }
            Act::Subscribe { user: u, free } => {
                let u = user(u, self);
                // The app refuses a second subscription Checkout.
                if self.plans.iter().any(|p| p.user == u && p.live) {
                    return;
                }
                let session = self
                    .checkout(u, ProductId::Starter, format!("sub-{}", step.id))
                    .await;
                let method = if free {
                    PayMethod::FreeCoupon
                } else {
                    PayMethod::Card
                };
                let Ok((_, emitted)) = self.sim.pay(&session, method) else {
                    return;
                };
                self.sessions.push((session, u, method));
                self.new_plan(u);
                if free {
                    let customer = self.users[u].customer.clone();
                    self.model.free_first_invoice(u, &customer, self.trial);
                }
                for (charge, amount) in self.new_charges(u) {
                    self.model.paid(u, &charge, PLAN_TOKENS, amount);
                }
                self.sent(step, emitted.now);
            }
            Act::DashboardSubscribe { user: u } => {
                let u = user(u, self);
                let portal = self.users[u].portal.clone();
                let Ok(emitted) = self.sim.subscribe_in_dashboard(&portal) else {
                    return;
                };
                self.new_plan(u);
                for (charge, amount) in self.new_charges(u) {
                    self.model.paid(u, &charge, PLAN_TOKENS, amount);
                }
                self.sent(step, emitted.now);
            }
            Act::Renew { user: u, nth } => {
                let u = user(u, self);
                let Some(p) = self.live_plan(u, nth) else {
                    return;
                };
                let portal = self.users[u].portal.clone();
                let Ok(emitted) = self.sim.renew(&portal, &self.plans[p].id.clone()) else {
                    return;
                };
                if self.plans[p].ends_at_renewal {
                    self.plans[p].live = false;
                }
                let seats = self.plans[p].seats;
                for (charge, amount) in self.new_charges(u) {
                    self.model.paid(u, &charge, PLAN_TOKENS * seats, amount);
                }
                self.sent(step, emitted.now);
            }
            Act::SetQuantity {
                user: u,
                nth,
                quantity,
            } => {
                let u = user(u, self);
                let Some(p) = self.live_plan(u, nth) else {
                    return;
                };
                let portal = self.users[u].portal.clone();
                let id = self.plans[p].id.clone();
                if let Ok(emitted) = self.sim.set_quantity(&portal, &id, quantity) {
                    self.plans[p].seats = quantity;
                    self.sent(step, emitted.now);
                }
            }
            Act::CancelAtPeriodEnd { user: u, nth } => {
                let u = user(u, self);
                let Some(p) = self.live_plan(u, nth) else {
                    return;
                };
                let portal = self.users[u].portal.clone();
                let id = self.plans[p].id.clone();
                if let Ok(emitted) = self.sim.set_cancel_at_period_end(&portal, &id, true) {
                    self.plans[p].ends_at_renewal = true;
                    self.sent(step, emitted.now);
                }
            }
            Act::CancelNow { user: u, nth } => {
                let u = user(u, self);
                let Some(p) = self.live_plan(u, nth) else {
                    return;
                };
                let portal = self.users[u].portal.clone();
                let id = self.plans[p].id.clone();
                if let Ok(emitted) = self.sim.cancel_now(&portal, &id) {
                    self.plans[p].live = false;
                    self.sent(step, emitted.now);
                }
            }
            Act::Refund { nth, percent } => {
                let Some((charge, u)) = self.charge(nth) else {
                    return;
                };
                let view = self.payment(u, &charge);
                let asked = (view.amount.minor() * percent / 100).max(1);
                let expected = asked.min(self.model.refundable(&charge));
                let before: Vec<String> = view.refunds.iter().map(|r| r.id.clone()).collect();
                let portal = self.users[u].portal.clone();
                let Ok(emitted) = self.sim.refund(&portal, &charge, asked) else {
                    return;
                };
                let view = self.payment(u, &charge);
                let Some(made) = view.refunds.iter().find(|r| !before.contains(&r.id)) else {
                    return;
                };
                if made.amount.minor() != expected {
                    self.problems.push(format!(
                        "Stripe refunded {} of {charge} where {expected} was left to refund",
                        made.amount.minor()
                    ));
                }
                self.model.refunded(&charge, &made.id, made.amount.minor());
                self.refunds.push(made.id.clone());
                self.sent(step, emitted.now);
            }
            Act::FailRefund { nth } => {
                if self.refunds.is_empty() {
                    return;
                }
                let refund = self.refunds[nth % self.refunds.len()].clone();
                for u in 0..self.users.len() {
                    let portal = self.users[u].portal.clone();
                    if let Ok(emitted) = self.sim.fail_refund(&portal, &refund) {
                        self.model.refund_failed(&refund);
                        self.sent(step, emitted.now);
                        return;
                    }
                }
            }
            Act::Dispute { nth, inquiry } => {
                let Some((charge, u)) = self.charge(nth) else {
                    return;
                };
                let portal = self.users[u].portal.clone();
                let opened = if inquiry {
                    self.sim.inquire(&portal, &charge)
                } else {
                    self.sim.dispute(&portal, &charge)
                };
                let Ok(emitted) = opened else {
                    return;
                };
                let object: serde_json::Value =
                    serde_json::from_str(&emitted.now[0].payload).unwrap();
                let dispute = object["data"]["object"]["id"].as_str().unwrap().to_owned();
                let amount = object["data"]["object"]["amount"].as_i64().unwrap();
                self.model.disputed(&charge, &dispute, amount, inquiry);
                self.disputes.push(dispute);
                self.sent(step, emitted.now);
            }
            Act::Escalate { nth } => {
                let Some((dispute, portal)) = self.dispute(nth) else {
                    return;
                };
                if let Ok(emitted) = self.sim.escalate(&portal, &dispute) {
                    // An endpoint that hears neither updates nor withdrawals learns of the
                    // escalation only when the dispute closes.
                    if self.every_event {
                        self.model.dispute_now(&dispute, Dispute::Chargeback);
                    }
                    self.sent(step, emitted.now);
                }
            }
            Act::CloseDispute { nth, won } => {
                let Some((dispute, portal)) = self.dispute(nth) else {
                    return;
                };
                let Ok(emitted) = self.sim.close_dispute(&portal, &dispute, won) else {
                    return;
                };
                let view = self
                    .users
                    .iter()
                    .flat_map(|c| self.sim.portal_view(&c.portal).unwrap().payments)
                    .find_map(|p| p.dispute.filter(|(id, _)| id == &dispute))
                    .unwrap();
                self.model.dispute_now(
                    &dispute,
                    match view.1 {
                        DisputeStatus::WarningClosed => Dispute::InquiryClosed,
                        DisputeStatus::Won => Dispute::Won,
                        _ => Dispute::Lost,
                    },
                );
                self.sent(step, emitted.now);
            }
            Act::Consume {
                user: u,
                tokens,
                key,
            } => {
                let u = user(u, self);
                self.consume(step.id, u, tokens, key).await;
            }
            Act::AdminCredit { user: u, tokens } => {
                let u = user(u, self);
                let posting = Posting::adjustment(
                    self.users[u].user,
                    TokenDelta::new(tokens).unwrap(),
                    Reason::parse("Goodwill").unwrap(),
                    IdempotencyKey::parse(&format!("admin:{}:{}", self.users[u].user, step.id))
                        .unwrap(),
                    self.admin,
                );
                match self.bench.store.post(posting).await {
                    Ok(_) => self.model.credited(u, tokens),
                    Err(e) => self.problems.push(format!("an admin credit failed: {e}")),
                }
            }
            Act::AdminDebit { user: u, tokens } => {
                let u = user(u, self);
                let posting = Posting::adjustment(
                    self.users[u].user,
                    TokenDelta::new(-tokens).unwrap(),
                    Reason::parse("Correction").unwrap(),
                    IdempotencyKey::parse(&format!("admin:{}:{}", self.users[u].user, step.id))
                        .unwrap(),
                    self.admin,
                );
                match self.bench.store.post(posting).await {
                    Ok(posted) => {
                        if posted.entry.balance_after.get() < 0 {
                            self.problems
                                .push(format!("an admin debit left user {u} below zero"));
                        }
                        self.model.debited(u, tokens);
                    }
                    Err(StoreError::Ledger(LedgerError::InsufficientTokens { .. })) => {}
                    Err(e) => self.problems.push(format!("an admin debit failed: {e}")),
                }
            }
            Act::Deliver { picks } => self.deliver(&picks).await,
            Act::Tick { secs } => self.clock.advance(Duration::from_secs(secs)),
            Act::Advance { days } => self.clock.advance(Duration::from_secs(days * 86_400)),
            Act::Hold {
                user: u,
                tokens,
                ttl_secs,
            } => {
                let u = user(u, self);
                self.hold(step.id, u, tokens, ttl_secs).await;
            }
            Act::Capture {
                nth,
                percent,
                exceed,
                again,
            } if !self.holds.is_empty() => {
                self.capture(step.id, nth, percent, exceed, again).await;
            }
            Act::Release { nth } if !self.holds.is_empty() => self.release(step.id, nth).await,
            Act::Capture { .. } | Act::Release { .. } => {}
            Act::Batch { items } => self.batch(step.id, items).await,
            Act::AutoTopUp {
                user: u,
                below,
                card,
            } => {
                let u = user(u, self);
                self.auto_topup(step.id, u, below, card).await;
            }
            Act::PayTopUps { node } => self.pay_topups(node).await,
        }
    }

    /// The user chooses auto top-up (the small pack, a cap it never reaches) and saves `card`
    /// in a setup-mode Checkout, as the billing page does.
    async fn auto_topup(&mut self, step: usize, u: usize, below: i64, card: TestCard) {
        let customer = &self.users[u];
        let choice = TopUpChoice::new(
            crate::domain::Tokens::new(below).unwrap(),
            ProductId::Small,
            crate::domain::Tokens::new(crate::domain::Tokens::MAX).unwrap(),
        )
        .unwrap();
        let store = self.bench.store.clone();
        if let Err(e) = store.choose_auto_topup(customer.user, choice).await {
            self.problems
                .push(format!("choosing auto top-up failed: {e}"));
            return;
        }
        let setup = self
            .sim
            .create_card_setup_session(&CardSetupRequest {
                user: customer.user,
                customer: customer.customer.clone(),
                currency: crate::domain::Currency::parse("usd").unwrap(),
                success_url: "http://x/app/billing?card_setup={CHECKOUT_SESSION_ID}".into(),
                cancel_url: "http://x/app/billing".into(),
                idempotency_key: format!("setup-{}-{step}", self.nonce),
            })
            .await
            .unwrap();
        let (_, emitted) = self.sim.save_card(&setup.id, card).unwrap();
        let saved = self.sim.saved_card(&setup.id).await.unwrap().unwrap();
        // Back on the billing page; the session's webhook saves it too, later.
        if let Err(e) = store
            .save_topup_card(customer.user, &saved.card, saved.created)
            .await
        {
            self.problems.push(format!("saving a card failed: {e}"));
        }
        let step = Step {
            id: step,
            act: Act::AutoTopUp {
                user: u,
                below,
                card,
            },
        };
        self.sent(&step, emitted.now);
    }

    /// A node pays the top-ups started so far; what Stripe charged is each a payment of the
    /// small pack's tokens, which the model holds the ledger to.
    async fn pay_topups(&mut self, node: usize) {
        let node = &self.nodes[node % self.nodes.len()];
        let users: Vec<crate::domain::UserId> = self.users.iter().map(|c| c.user).collect();
        if let Err(e) = node.pay_topups(self.clock.now(), &users).await {
            self.problems.push(format!("paying top-ups failed: {e}"));
        }
        for u in 0..self.users.len() {
            for (charge, amount) in self.new_charges(u) {
                self.model
                    .paid(u, &charge, ProductId::Small.tokens().get(), amount);
            }
        }
    }

    /// The `nth` charge and the user who paid it.
    fn charge(&self, nth: usize) -> Option<(String, usize)> {
        if self.charges.is_empty() {
            return None;
        }
        let charge = self.charges[nth % self.charges.len()].clone();
        let user = (0..self.users.len()).find(|&u| {
            self.sim
                .portal_view(&self.users[u].portal)
                .unwrap()
                .payments
                .iter()
                .any(|p| p.charge == charge)
        })?;
        Some((charge, user))
    }

    fn payment(&self, user: usize, charge: &str) -> crate::stripe::simulated::PaymentView {
        self.sim
            .portal_view(&self.users[user].portal)
            .unwrap()
            .payments
            .into_iter()
            .find(|p| p.charge == charge)
            .unwrap()
    }

    /// The `nth` dispute and the portal of its customer.
    fn dispute(&self, nth: usize) -> Option<(String, String)> {
        if self.disputes.is_empty() {
            return None;
        }
        let dispute = self.disputes[nth % self.disputes.len()].clone();
        let portal = self.users.iter().find_map(|c| {
            self.sim
                .portal_view(&c.portal)
                .unwrap()
                .payments
                .iter()
                .any(|p| p.dispute.as_ref().is_some_and(|(id, _)| id == &dispute))
                .then(|| c.portal.clone())
        })?;
        Some((dispute, portal))
    }

    /// Delivers the picked events (and success pages) all at once.
    async fn deliver(&mut self, picks: &[Pick]) {
        let mut faulted = Vec::new();
        let mut tasks = Vec::new();
        let mut spent = Vec::new();
        let outage = picks.iter().any(|p| matches!(p, Pick::StripeDown));
        if outage {
            self.sim.set_down(true);
        }
        for pick in picks {
            match *pick {
                Pick::StripeDown => {}
                Pick::Consume { user, tokens, node } => {
                    let u = user % self.users.len();
                    let node = self.nodes[node % self.nodes.len()].clone();
                    let (who, key) = (
                        self.users[u].user,
                        format!("live-{}-{}", self.nonce, self.live_consumes),
                    );
                    self.live_consumes += 1;
                    spent.push((
                        u,
                        tokens,
                        tokio::spawn(async move { node.consume(who, tokens, &key).await }),
                    ));
                }
                Pick::Event {
                    step,
                    ordinal,
                    node,
                    copies,
                    fault,
                } => {
                    let Some(event) = self.events.get(&(step, ordinal)).cloned() else {
                        continue;
                    };
                    if fault {
                        self.bench.faults.fail(&event.id).await;
                        faulted.push(event.id.clone());
                    }
                    // A failure is expected from a fault, or while Stripe is down.
                    let excused = fault || outage;
                    for _ in 0..copies.max(1) {
                        let node = self.nodes[node % self.nodes.len()].clone();
                        let payload = event.payload.clone();
                        let tag = (step, ordinal);
                        tasks.push(tokio::spawn(async move {
                            (Some(tag), excused, Ok(node.deliver(&payload).await))
                        }));
                    }
                }
                Pick::SuccessPage { nth, node } => {
                    if self.sessions.is_empty() {
                        continue;
                    }
                    let (session, u, _) = self.sessions[nth % self.sessions.len()].clone();
                    let node = self.nodes[node % self.nodes.len()].clone();
                    let (user, email) = (self.users[u].user, self.users[u].email.clone());
                    tasks.push(tokio::spawn(async move {
                        let page = node.success_page(&session, user, &email).await;
                        (
                            None,
                            outage,
                            page.map(|()| Heard::Acknowledged("page".into())),
                        )
                    }));
                }
            }
        }
        for task in tasks {
            let (tag, excused, outcome) = task.await.expect("a delivery task ended");
            self.delivered_as(tag, excused, outcome);
        }
        for (user, tokens, task) in spent {
            match task.await.expect("a consume task ended") {
                Consumed::Applied {
                    replayed: false,
                    balance,
                    ..
                } => {
                    if balance < 0 {
                        self.problems
                            .push(format!("a debit took user {user} below zero ({balance})"));
                    }
                    self.model.debited(user, tokens);
                }
                Consumed::Insufficient => {}
                other => self.problems.push(format!(
                    "a consume call during deliveries answered {other:?}"
                )),
            }
        }
        if outage {
            self.sim.set_down(false);
        }
        if !faulted.is_empty() {
            self.bench.faults.heal().await;
        }
    }

    /// Keeps what a delivery came to: acknowledged events are Stripe's no longer to send.
    fn delivered_as(
        &mut self,
        tag: Option<(usize, usize)>,
        fault: bool,
        heard: Result<Heard, String>,
    ) {
        match (tag, heard) {
            (Some(tag), Ok(Heard::Acknowledged(outcome))) => {
                if outcome == "failed" {
                    self.problems.push(format!(
                        "event {} was refused as it stands",
                        self.events[&tag].id
                    ));
                }
                self.pending.remove(&tag);
                self.delivered.insert(tag);
            }
            // Stripe sends it again later.
            (Some(_), Ok(Heard::NotAcknowledged(_))) if fault => {}
            (Some(tag), Ok(Heard::NotAcknowledged(error))) => self.problems.push(format!(
                "delivering {} failed with no fault injected: {error}",
                self.events[&tag].id
            )),
            (None, Ok(_)) => {}
            (None, Err(_)) if fault => {}
            (_, Err(error)) => self
                .problems
                .push(format!("a success page failed: {error}")),
        }
    }

    async fn sweep(&mut self) {
        if let Err(error) = self.nodes[1 % self.nodes.len()].sweep().await {
            self.problems.push(format!("the sweep failed: {error}"));
        }
    }

    /// Stripe retries whatever was not acknowledged and sends some events again; the sweep
    /// runs; then every balance is held against the model.
    async fn finish(mut self, seed: u64) -> Result<u64, Vec<String>> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_f1a5);
        for _ in 0..5 {
            let mut pending: Vec<(usize, usize)> = self.pending.iter().copied().collect();
            pending.shuffle(&mut rng);
            for (step, ordinal) in pending {
                let node = rng.random_range(0..self.nodes.len());
                self.deliver(&[Pick::Event {
                    step,
                    ordinal,
                    node,
                    copies: 1,
                    fault: false,
                }])
                .await;
            }
        }
        let mut again: Vec<(usize, usize)> = self.delivered.iter().copied().collect();
        again.shuffle(&mut rng);
        // Sent again: applied before, or held back and acknowledged, it may apply now; it
        // must never fail.
        for tag in again.into_iter().take(5) {
            let heard = self.nodes[0].deliver(&self.events[&tag].payload).await;
            let fine = matches!(&heard, Heard::Acknowledged(outcome) if outcome != "failed");
            if !fine {
                self.problems.push(format!(
                    "{} sent again after it was acknowledged: {heard:?}",
                    self.events[&tag].id
                ));
            }
        }
        // Top-ups started and not paid yet are paid (one left unpaid by a failure, again).
        self.pay_topups(0).await;
        self.sweep().await;
        // Jobs still running end: their holds are given up.
        for at in 0..self.holds.len() {
            if self.holds[at].seen == HoldSeen::Open {
                self.release(0, at).await;
            }
        }

        let store = self.bench.store.clone();
        // What expired was Stripe's to sell and the user's to lose: the model's balance less
        // it is what is left (the grants replayed below say whether each expiry was right).
        let mut left = Vec::new();
        for n in 0..self.users.len() {
            let totals = store.ledger_totals(self.users[n].user).await.unwrap();
            let expired: i64 = totals
                .by_source
                .iter()
                .filter(|t| t.source == crate::domain::Source::Expiry)
                .map(|t| t.taken)
                .sum();
            left.push(self.model.balance(n) - expired);
        }
        for (n, customer) in self.users.iter().enumerate() {
            let balance = store.balance(customer.user).await.unwrap().get();
            let expected = left[n];
            if balance != expected {
                self.problems.push(format!(
                    "user {n} has {balance} tokens; Stripe's side, less what expired, says \
                     {expected}"
                ));
            }
        }
        // What the model says is left is exactly what can be spent: all of it, and no more.
        for (n, &expected) in left.iter().enumerate() {
            let node = self.nodes[n % self.nodes.len()].clone();
            let user = self.users[n].user;
            if expected > 0 {
                let key = format!("drain-{}-{n}", self.nonce);
                match node.consume(user, expected, &key).await {
                    Consumed::Applied { balance: 0, .. } => self.model.debited(n, expected),
                    other => self.problems.push(format!(
                        "user {n} could not spend the {expected} tokens the model says are left: {other:?}"
                    )),
                }
            }
            let key = format!("beyond-{}-{n}", self.nonce);
            match node.consume(user, 1, &key).await {
                Consumed::Insufficient => {}
                other => self.problems.push(format!(
                    "user {n} spent a token the model says is not there: {other:?}"
                )),
            }
        }
        let pack_ms = self
            .bench
            .cluster
            .credit_rules(seed)
            .pack_expiry_days
            .map(|days| i64::from(days) * 86_400_000);
        for n in 0..self.users.len() {
            let who = format!("user {n}");
            let found = credits::replay(&store, self.users[n].user, &who, pack_ms).await;
            self.problems.extend(found);
            let found = statements::check(&store, self.users[n].user, &who).await;
            self.problems.extend(found);
            let found = outbox::check(&store, self.users[n].user, &who).await;
            self.problems.extend(found);
        }
        let credits = store.audit_credits().await.unwrap();
        if !credits.is_empty() {
            self.problems.push(format!(
                "grants or holds disagree with balances: {credits:?}"
            ));
        }
        // Every subscription is as Stripe has it now.
        for plan in &self.plans {
            let kept = store
                .subscription(&plan.id)
                .await
                .unwrap()
                .map(|s| s.status);
            let now = self
                .sim
                .portal_view(&self.users[plan.user].portal)
                .unwrap()
                .subscriptions
                .into_iter()
                .find(|s| s.id == plan.id)
                .map(|s| s.status);
            if kept != now {
                self.problems.push(format!(
                    "subscription {} is kept as {kept:?}; Stripe has {now:?}",
                    plan.id
                ));
            }
        }
        let mismatches = store.audit_balances().await.unwrap();
        if !mismatches.is_empty() {
            self.problems
                .push(format!("balance != sum(ledger): {mismatches:?}"));
        }
        for event in self.events.values() {
            match store.inbox_event(&event.id).await.unwrap() {
                Some(stored) if stored.processed_at.is_some() => {}
                stored => self.problems.push(format!(
                    "{} was never applied: {:?}",
                    event.id,
                    stored.map(|s| (s.kind, s.detail, s.awaiting))
                )),
            }
        }
        if self.problems.is_empty() {
            Ok(self.events.len() as u64)
        } else {
            Err(self.problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many histories a run checks: `HISTORIES`, or a budget that fits the test command.
    fn budget() -> (u64, u64) {
        let count = std::env::var("HISTORIES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(300);
        let seed = std::env::var("HISTORY_SEED")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(rand::random::<u32>)
            .into();
        (seed, count)
    }

    async fn check(db: TestDb) {
        let (seed, count) = budget();
        let started = std::time::Instant::now();
        match check_many(&db, seed, count, Settings::default()).await {
            Ok(events) => eprintln!(
                "{count} histories from seed {seed} on {}: {events} events, all as Stripe says, in {:.1?}",
                db.backend().name(),
                started.elapsed()
            ),
            Err(failure) => panic!("{failure}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn histories_hold_on_sqlite() {
        check(crate::testing::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn histories_hold_on_postgres() {
        if let Some(db) = crate::testing::postgres().await {
            check(db).await;
        }
    }
}
