//! Sends the outbox's events to the endpoints an operator registered (`server webhooks add`),
//! after the changes that made them have committed: signed in the Standard Webhooks scheme,
//! each at least once (a receiver drops repeats by `webhook-id`), one user's in the order they
//! happened, retried with a doubling wait for three days. Every node sends; a claim keeps two
//! from sending the same delivery at once. The ledger never waits for any of it: a dead
//! endpoint only makes its own deliveries wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billing::clock::Clock;
use billing::domain::Timestamp;
use billing::outbox::{AfterAttempt, after_failure, signature};
use billing::store::{Attempted, DueDelivery, Store, StoreError};
use tokio::sync::{Notify, Semaphore};

/// How often a node looks for events to send.
pub const PERIOD: Duration = Duration::from_secs(1);
/// How long an endpoint has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is this node's (longer than an attempt can take).
const LEASE: Duration = Duration::from_secs(60);
/// How many events one statement makes deliveries of.
const EVENTS_PER_ROUND: i64 = 1_000;
/// How many requests are in flight at once, and to one endpoint at most: a slow endpoint
/// keeps only its own waiting.
const IN_FLIGHT: usize = 16;
const PER_ENDPOINT: usize = 4;

pub struct Deliverer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    /// One permit a request in flight.
    in_flight: Arc<Semaphore>,
    /// Requests in flight, by endpoint.
    busy: Mutex<HashMap<i64, usize>>,
    /// Rung when an attempt ends: the user's next event may go at once.
    attempt_ended: Notify,
}

impl Deliverer {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("PromptBloom-Billing/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with these settings builds");
        Self {
            store,
            clock,
            client,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
            busy: Mutex::default(),
            attempt_ended: Notify::new(),
        }
    }

    /// Sends for as long as the server runs: every [`PERIOD`], and as soon as an attempt ends.
    pub fn spawn(self) {
        let deliverer = Arc::new(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = deliverer.attempt_ended.notified() => {}
                }
                if let Err(error) = deliverer.dispatch().await {
                    tracing::warn!(%error, "sending outgoing webhooks failed; trying again");
                }
            }
        });
    }

    /// New events become deliveries, and of each active endpoint's deliveries due as many
    /// as it and the node have free requests for are sent, each on its own.
    async fn dispatch(self: &Arc<Self>) -> Result<(), StoreError> {
        let now = self.clock.now();
        while self.store.fan_out_events(now, EVENTS_PER_ROUND).await? == EVENTS_PER_ROUND as u64 {}
        for endpoint in self.store.endpoints().await? {
            if endpoint.disabled_at.is_some() {
                continue;
            }
            let busy = self.busy_with(endpoint.id, 0);
            let free = self
                .in_flight
                .available_permits()
                .min(PER_ENDPOINT.saturating_sub(busy));
            if free == 0 {
                continue;
            }
            // Read now, not before the fan-out: the claim's lease counts from the claim.
            let due = self
                .store
                .claim_deliveries(self.clock.now(), endpoint.id, free as i64, LEASE)
                .await?;
            for delivery in due {
                let permit = self
                    .in_flight
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                self.busy_with(endpoint.id, 1);
                let deliverer = self.clone();
                tokio::spawn(async move {
                    let endpoint = delivery.endpoint.id;
                    deliverer.deliver(delivery).await;
                    deliverer.busy_with(endpoint, -1);
                    drop(permit);
                    deliverer.attempt_ended.notify_one();
                });
            }
        }
        Ok(())
    }

    /// Changes the requests in flight to `endpoint` by `change`; how many there are.
    fn busy_with(&self, endpoint: i64, change: isize) -> usize {
        let mut busy = self
            .busy
            .lock()
            .expect("never poisoned: nothing panics holding it");
        let count = busy.entry(endpoint).or_default();
        *count = count.saturating_add_signed(change);
        *count
    }

    async fn deliver(&self, delivery: DueDelivery) {
        let attempted = self.attempt(&delivery).await;
        let outcome = match attempted.next {
            AfterAttempt::Delivered => "delivered",
            AfterAttempt::RetryAt(_) => "retrying",
            AfterAttempt::GiveUp => "failed",
        };
        metrics::counter!("billing_webhook_attempts_total", "outcome" => outcome).increment(1);
        if let Some(error) = &attempted.error {
            tracing::warn!(
                endpoint = delivery.endpoint.id,
                event = delivery.event.id,
                kind = delivery.event.kind.as_str(),
                attempt = delivery.attempts + 1,
                outcome,
                error,
                "an outgoing webhook was not accepted"
            );
        }
        if let Err(error) = self.store.record_attempt(&delivery, &attempted).await {
            // Unrecorded, the claim runs out and the delivery is sent again: at least once.
            tracing::error!(%error, delivery = delivery.id, "recording a webhook attempt failed");
        }
    }

    async fn attempt(&self, delivery: &DueDelivery) -> Attempted {
        let message_id = delivery.event.message_id();
        let body = delivery.event.body();
        // The moment of sending, by the wall clock: receivers check it against theirs.
        let sent_at = Timestamp::now().as_millis() / 1000;
        let started = Instant::now();
        let answer = match signature(&delivery.endpoint.secret, &message_id, sent_at, &body) {
            Err(bad) => Err(bad.to_string()),
            Ok(signature) => self
                .client
                .post(&delivery.endpoint.url)
                .header("content-type", "application/json")
                .header("webhook-id", &message_id)
                .header("webhook-timestamp", sent_at.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .map(|response| response.status())
                .map_err(|e| e.without_url().to_string()),
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        let now = self.clock.now();
        let (status, error) = match answer {
            Ok(status) if status.is_success() => (Some(status.as_u16()), None),
            Ok(status) => (Some(status.as_u16()), Some(format!("answered {status}"))),
            Err(error) => (None, Some(error)),
        };
        let next = match error {
            None => AfterAttempt::Delivered,
            Some(_) => after_failure(delivery.attempts + 1, delivery.retrying_since, now),
        };
        Attempted {
            at: now,
            status,
            error,
            duration_ms,
            next,
        }
    }
}
