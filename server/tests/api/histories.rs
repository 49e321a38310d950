//! The history checker against two server processes on one PostgreSQL: webhooks signed and
//! delivered over HTTP, success pages and consume calls through the real routes, and the
//! servers' live gateway asking a stand-in for Stripe's API that answers from the history's
//! simulated Stripe (so line items, refunds and invoice payments are what Stripe would say).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use billing::api_key::{NewApiKey, SCOPE_CONSUME};
use billing::catalog::Catalog;
use billing::clock::ManualClock;
use billing::config::{CreditSettings, DatabaseTarget, Secret};
use billing::domain::{Email, Timestamp, Tokens, UserId};
use billing::fulfilment::Fulfilment;
use billing::store::{SqlStore, Store};
use billing::stripe::live::LiveGateway;
use billing::stripe::simulated::Simulator;
use billing::testing::history::nodes::{Cluster, Consumed, Heard, HoldAnswer, Node, Settled};
use billing::testing::history::{self, Settings};
use serde_json::json;

use crate::support::{ApiClient, Browser, ServerProcess, StripeApi, Webhooks, password_hash};

const SECRET_KEY: &str = "sk_test_history";
const WEBHOOK_SECRET: &str = "whsec_history";

struct Servers {
    nodes: Vec<Arc<dyn Node>>,
    /// Stripe's API for the servers, answered from the current history's simulated Stripe.
    stripe: StripeApi,
}

#[async_trait]
impl Cluster for Servers {
    async fn nodes(
        &self,
        sim: Arc<Simulator>,
        _trial: Option<Tokens>,
        _credits: CreditSettings,
    ) -> Vec<Arc<dyn Node>> {
        self.stripe.answer_from(sim);
        self.nodes.clone()
    }

    /// The servers run without a trial allowance.
    fn trial_allowance(&self, _seed: u64) -> Option<Tokens> {
        None
    }
}

/// One server process, reached over HTTP.
struct ServerNode {
    server: ServerProcess,
    webhooks: Webhooks,
    service: ApiClient,
    /// Logged-in browsers by email: sessions live in the database, so any node accepts them.
    sessions: Arc<Mutex<HashMap<String, Browser>>>,
    /// The sweep every server runs each minute, run here on demand.
    sweeper: Fulfilment,
    /// The database the servers share, for the sweep's expiries.
    store: Arc<SqlStore>,
}

impl ServerNode {
    /// A browser logged in as `email`, from an address of its own (the servers trust one
    /// proxy, so each user's login counts against their own address's limit).
    async fn session(&self, email: &Email) -> Result<Browser, String> {
        if let Some(browser) = self.sessions.lock().unwrap().get(email.as_str()) {
            return Ok(browser.on(&self.server.base));
        }
        let address = format!("10.{}.{}.{}", rand::random::<u8>(), rand::random::<u8>(), 1);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        let browser = Browser::with_headers(&self.server.base, headers);
        let login = browser
            .post("/api/auth/login")
            .form(&[
                ("email", email.as_str()),
                ("password", crate::support::PASSWORD),
            ])
            .try_send()
            .await
            .map_err(|e| e.to_string())?;
        if login.status != 200 {
            return Err(format!("login of {email}: {}", login.status));
        }
        self.sessions
            .lock()
            .unwrap()
            .insert(email.as_str().to_owned(), browser.clone());
        Ok(browser)
    }
}

#[async_trait]
impl Node for ServerNode {
    async fn deliver(&self, payload: &str) -> Heard {
        let signature = self.webhooks.sign(payload);
        let sent = self
            .webhooks
            .delivery(payload, Some(&signature))
            .try_send()
            .await;
        match sent {
            Ok(answer) if (200..300).contains(&answer.status) => {
                let body = answer.try_json().unwrap_or_default();
                Heard::Acknowledged(body["outcome"].as_str().unwrap_or("?").to_owned())
            }
            Ok(answer) => Heard::NotAcknowledged(format!("{} {}", answer.status, answer.text)),
            Err(error) => Heard::NotAcknowledged(error.to_string()),
        }
    }

    async fn success_page(&self, session: &str, _: UserId, email: &Email) -> Result<(), String> {
        let browser = self.session(email).await?;
        let answer = browser
            .get(&format!(
                "/api/billing/checkout-status?session_id={session}"
            ))
            .try_send()
            .await
            .map_err(|e| e.to_string())?;
        match answer.status {
            200 => Ok(()),
            status => Err(format!(
                "the success page answered {status}: {}",
                answer.text
            )),
        }
    }

    async fn consume(&self, user: UserId, tokens: i64, key: &str) -> Consumed {
        let sent = self
            .service
            .consume_request(Some(key))
            .json(&json!({ "user": user, "tokens": tokens, "reason": "Usage" }))
            .try_send()
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(error) => return Consumed::Other(error.to_string()),
        };
        let replayed = answer.header("idempotent-replayed").is_some();
        match answer.status {
            200 => {
                let body = answer.try_json().unwrap_or_default();
                Consumed::Applied {
                    entry: body["entry_id"].as_i64().unwrap_or(-1),
                    replayed,
                    balance: body["balance"].as_i64().unwrap_or(i64::MIN),
                }
            }
            402 => Consumed::Insufficient,
            409 => Consumed::Conflict,
            status => Consumed::Other(format!("{status} {}", answer.text)),
        }
    }

    async fn consume_batch(&self, items: &[(UserId, i64, String)]) -> Vec<Consumed> {
        let body = json!({
            "items": items
                .iter()
                .map(|(user, tokens, key)| json!({
                    "user": user, "tokens": tokens, "reason": "Usage", "idempotency_key": key,
                }))
                .collect::<Vec<_>>(),
        });
        let answer = match self
            .service
            .post("/api/tokens/consume/batch")
            .json(&body)
            .try_send()
            .await
        {
            Ok(answer) if answer.status == 200 => answer,
            Ok(answer) => {
                let why = format!("{} {}", answer.status, answer.text);
                return vec![Consumed::Other(why); items.len()];
            }
            Err(error) => return vec![Consumed::Other(error.to_string()); items.len()],
        };
        let body = answer.try_json().unwrap_or_default();
        let Some(answers) = body["items"].as_array() else {
            return vec![Consumed::Other(answer.text.clone()); items.len()];
        };
        answers
            .iter()
            .map(|item| match item["status"].as_str() {
                Some(status @ ("applied" | "replayed")) => Consumed::Applied {
                    entry: item["entry_id"].as_i64().unwrap_or(-1),
                    replayed: status == "replayed",
                    balance: item["balance"].as_i64().unwrap_or(i64::MIN),
                },
                Some("insufficient") => Consumed::Insufficient,
                Some("conflict") => Consumed::Conflict,
                _ => Consumed::Other(item.to_string()),
            })
            .collect()
    }

    async fn open_hold(&self, user: UserId, tokens: i64, ttl_secs: i64, key: &str) -> HoldAnswer {
        let sent = self
            .service
            .post("/api/tokens/holds")
            .header("idempotency-key", key)
            .json(
                &json!({ "user": user, "tokens": tokens, "ttl_secs": ttl_secs, "reason": "A job" }),
            )
            .try_send()
            .await;
        match sent {
            Ok(answer) if answer.status == 200 => {
                let body = answer.try_json().unwrap_or_default();
                HoldAnswer::Opened {
                    hold: body["hold_id"].as_i64().unwrap_or(-1),
                    available: body["available"].as_i64().unwrap_or(i64::MIN),
                    replayed: answer.header("idempotent-replayed").is_some(),
                }
            }
            Ok(answer) if answer.status == 402 => HoldAnswer::Insufficient,
            Ok(answer) => HoldAnswer::Other(format!("{} {}", answer.status, answer.text)),
            Err(error) => HoldAnswer::Other(error.to_string()),
        }
    }

    async fn capture(&self, hold: i64, tokens: i64, exceed: bool) -> Settled {
        let sent = self
            .service
            .post(&format!("/api/tokens/holds/{hold}/capture"))
            .json(&json!({ "tokens": tokens, "allow_exceed": exceed }))
            .try_send()
            .await;
        match sent {
            Ok(answer) if answer.status == 200 => {
                let body = answer.try_json().unwrap_or_default();
                Settled::Captured {
                    entry: body["entry_id"].as_i64().unwrap_or(-1),
                    replayed: answer.header("idempotent-replayed").is_some(),
                    balance: body["balance"].as_i64().unwrap_or(i64::MIN),
                }
            }
            Ok(answer) if matches!(answer.status, 402 | 409 | 422) => {
                Settled::Refused(format!("{} {}", answer.status, answer.text))
            }
            Ok(answer) => Settled::Other(format!("{} {}", answer.status, answer.text)),
            Err(error) => Settled::Other(error.to_string()),
        }
    }

    async fn release(&self, hold: i64) -> Settled {
        let sent = self
            .service
            .post(&format!("/api/tokens/holds/{hold}/release"))
            .try_send()
            .await;
        match sent {
            Ok(answer) if answer.status == 200 => Settled::Released {
                replayed: answer.header("idempotent-replayed").is_some(),
            },
            Ok(answer) if answer.status == 409 => {
                Settled::Refused(format!("{} {}", answer.status, answer.text))
            }
            Ok(answer) => Settled::Other(format!("{} {}", answer.status, answer.text)),
            Err(error) => Settled::Other(error.to_string()),
        }
    }

    async fn sweep(&self) -> Result<usize, String> {
        history::nodes::sweep(&self.sweeper, &*self.store).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn histories_hold_on_two_server_processes_on_postgres() {
    let Some(target) = billing::testing::empty_postgres().await else {
        return;
    };
    let DatabaseTarget::Postgres { url } = &target else {
        unreachable!("a PostgreSQL target")
    };
    let stripe = StripeApi::start().await;
    let api_base = stripe.url.to_string();
    let prices = history::prices();
    let starter = prices.subscription_starter.clone().unwrap();
    let vars = [
        ("DATABASE_URL", url.expose()),
        ("STRIPE_SECRET_KEY", SECRET_KEY),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("STRIPE_API_BASE", api_base.as_str()),
        ("STRIPE_PRICE_TOKENS_SMALL", prices.tokens_small.as_str()),
        ("STRIPE_PRICE_TOKENS_MEDIUM", prices.tokens_medium.as_str()),
        ("STRIPE_PRICE_TOKENS_LARGE", prices.tokens_large.as_str()),
        ("STRIPE_PRICE_SUBSCRIPTION_STARTER", starter.as_str()),
        ("TRUSTED_PROXIES", "1"),
    ];
    // The first server migrates the database; the second finds it ready.
    let first = ServerProcess::start(&vars).await;
    let second = ServerProcess::start(&vars).await;
    let store: Arc<SqlStore> = Arc::new(billing::store::connect(&target).await.unwrap());
    let key = NewApiKey::generate();
    store
        .create_api_key(
            "history",
            &key.display_prefix,
            &key.digest,
            &[SCOPE_CONSUME],
        )
        .await
        .unwrap();
    let sessions = Arc::new(Mutex::new(HashMap::new()));
    let sweeper = || {
        Fulfilment::new(
            store.clone(),
            Arc::new(
                LiveGateway::new(
                    &Secret::new(SECRET_KEY),
                    Some(&url::Url::parse(&api_base).unwrap()),
                )
                .unwrap(),
            ),
            Arc::new(Catalog::from_prices(&prices)),
        )
    };
    let nodes: Vec<Arc<dyn Node>> = [first, second]
        .into_iter()
        .map(|server| {
            Arc::new(ServerNode {
                webhooks: Webhooks::new(&server.base, WEBHOOK_SECRET),
                service: ApiClient::new(&server.base, Some(key.secret.expose())),
                server,
                sessions: sessions.clone(),
                sweeper: sweeper(),
                store: store.clone(),
            }) as Arc<dyn Node>
        })
        .collect();
    let cluster = Servers { nodes, stripe };

    let count = std::env::var("SERVER_HISTORIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("HISTORY_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| u64::from(rand::random::<u32>()));
    let started = std::time::Instant::now();
    match history::check_many_on(
        store.clone(),
        &cluster,
        Some(password_hash().await),
        ManualClock::starting_at(Timestamp::now()),
        seed,
        count,
        Settings::default(),
    )
    .await
    {
        Ok(events) => eprintln!(
            "{count} histories from seed {seed} on two servers: {events} events, all as Stripe says, in {:.1?}",
            started.elapsed()
        ),
        Err(failure) => panic!("{failure}"),
    }
    assert!(store.audit_balances().await.unwrap().is_empty());
}
