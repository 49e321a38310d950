//! Load benchmarks: figures printed, nothing asserted about speed.
//!
//!   scripts/bench                      (both backends; starts a private PostgreSQL)
//!   cargo bench -p server --bench load -- sqlite
//!
//! The server runs as its own process (the release binary); this process is the client.
//! Measured: consume over HTTP at a fixed concurrency (many users, one hot user) beside the
//! same postings made straight through the store (the ceiling); signed webhook ingest with 30%
//! duplicates (the ledger is checked afterwards); server-rendered billing pages; and the
//! server's peak memory.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use billing::api_key::{NewApiKey, SCOPE_CONSUME};
use billing::config::{DatabaseTarget, Secret};
use billing::domain::{Email, IdempotencyKey, Reason, Role, Source, Timestamp, Tokens, UserId};
use billing::ledger::Posting;
use billing::store::{NewUser, Store};
use billing::stripe::signature;
use serde_json::json;

const CONCURRENCY: usize = 32;
const CONSUME_REQUESTS: usize = 20_000;
const USERS: usize = 1_000;
const WEBHOOK_EVENTS: usize = 5_000;
const PAGE_REQUESTS: usize = 2_000;
/// What the benchmark's server checks Stripe's signatures with.
const WEBHOOK_SECRET: &str = "whsec_benchmark_secret";

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(vars: &[(&str, String)]) -> Self {
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let base = format!("http://{address}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .env("LEPTOS_SITE_ADDR", address.to_string())
            .env("LEPTOS_OUTPUT_NAME", "billing")
            .env("LEPTOS_SITE_ROOT", "target/site")
            .env("SITE_URL", &base)
            .env("DEMO_ACCOUNTS", "false")
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env(
                "DEVICE_COOKIE_KEY",
                "benchmark-device-cookie-key-0123456789abcdef",
            )
            .env("RUST_LOG", "error")
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                return Self { child, base };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not start");
    }

    /// The server's peak resident memory so far (VmHWM), in MiB.
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Throughput and latency of `total` calls of `call(i)`, `CONCURRENCY` at a time.
struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

async fn run<F, Fut>(total: usize, call: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (call, next) = (call.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let at = Instant::now();
                    if !call(i).await {
                        errors += 1;
                    }
                    latencies.push(at.elapsed());
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at =
        |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    Figures {
        per_second: total as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        errors,
    }
}

fn line(name: &str, f: &Figures) {
    println!(
        "  {name:<44} {:>9.0} /s   p50 {:>6.2} ms   p99 {:>6.2} ms{}",
        f.per_second,
        f.p50_ms,
        f.p99_ms,
        if f.errors > 0 {
            format!("   ({} errors)", f.errors)
        } else {
            String::new()
        }
    );
}

async fn users(store: &Arc<dyn Store>, count: usize, tokens_each: i64) -> Vec<UserId> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let user = store
            .create_user(NewUser {
                email: Email::parse(&format!("bench{i}@example.com")).unwrap(),
                password_hash: None,
                role: Role::User,
            })
            .await
            .unwrap();
        store
            .post(Posting::credit(
                user.id,
                Tokens::new(tokens_each).unwrap(),
                Source::Manual,
                Reason::parse("Benchmark").unwrap(),
                IdempotencyKey::parse(&format!("bench-grant-{i}")).unwrap(),
            ))
            .await
            .unwrap();
        ids.push(user.id);
    }
    ids
}

/// The consume transaction as plain SQL on a bare, typed sqlx pool: the guarded balance
/// update and the ledger insert, committed together.
async fn plain_sql(
    target: &DatabaseTarget,
    hot_only: bool,
    ids: Arc<Vec<UserId>>,
    tag: &'static str,
) -> Figures {
    const UPDATE: &str = "UPDATE token_balances SET balance = balance - 1, updated_at = $2 \
         WHERE user_id = $1 AND balance >= 1 RETURNING balance";
    const INSERT: &str = "INSERT INTO token_ledger (user_id, delta, balance_after, source, reason, \
         idempotency_key, created_at) VALUES ($1, -1, $2, 'consume', 'Benchmark', $3, $4) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id";
    let hot = ids[0];
    match target {
        DatabaseTarget::Postgres { url } => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .connect(url.expose())
                .await
                .unwrap();
            run(CONSUME_REQUESTS, move |i| {
                let user = if hot_only { hot } else { ids[i % ids.len()] }.get();
                let pool = pool.clone();
                async move {
                    let now = Timestamp::now().as_millis();
                    let mut tx = pool.begin().await.unwrap();
                    let Some(after): Option<i64> = sqlx::query_scalar(UPDATE)
                        .bind(user)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await
                        .unwrap()
                    else {
                        return false;
                    };
                    let ok = sqlx::query_scalar::<_, i64>(INSERT)
                        .bind(user)
                        .bind(after)
                        .bind(format!("plain-{tag}-{i}"))
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await
                        .unwrap()
                        .is_some();
                    tx.commit().await.unwrap();
                    ok
                }
            })
            .await
        }
        DatabaseTarget::Sqlite { path } => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(path)
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(10)),
                )
                .await
                .unwrap();
            run(CONSUME_REQUESTS, move |i| {
                let user = if hot_only { hot } else { ids[i % ids.len()] }.get();
                let pool = pool.clone();
                async move {
                    let now = Timestamp::now().as_millis();
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                    let Some(after): Option<i64> = sqlx::query_scalar(UPDATE)
                        .bind(user)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await
                        .unwrap()
                    else {
                        return false;
                    };
                    let ok = sqlx::query_scalar::<_, i64>(INSERT)
                        .bind(user)
                        .bind(after)
                        .bind(format!("plain-{tag}-{i}"))
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await
                        .unwrap()
                        .is_some();
                    tx.commit().await.unwrap();
                    ok
                }
            })
            .await
        }
    }
}

async fn bench(backend: &str, target: DatabaseTarget, vars: Vec<(&'static str, String)>) {
    let store: Arc<dyn Store> = Arc::new(billing::store::connect(&target).await.unwrap());
    let ids = Arc::new(users(&store, USERS, 1_000_000).await);
    let hot = ids[0];
    let key = NewApiKey::generate();
    store
        .create_api_key("bench", &key.display_prefix, &key.digest, &[SCOPE_CONSUME])
        .await
        .unwrap();
    let secret = Arc::new(key.secret.expose().to_owned());
    let server = Server::start(&vars).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    println!("{backend} (concurrency {CONCURRENCY}):");

    // Consume over HTTP: many users, then one hot user.
    for (name, hot_only) in [
        ("consume over HTTP, many users", false),
        ("consume over HTTP, one hot user", true),
    ] {
        let (http, base, secret, who) = (
            client.clone(),
            server.base.clone(),
            secret.clone(),
            ids.clone(),
        );
        let tag = if hot_only { "hot" } else { "many" };
        let figures = run(CONSUME_REQUESTS, move |i| {
            let user = if hot_only { hot } else { who[i % who.len()] };
            let request = http
                .post(format!("{base}/api/tokens/consume"))
                .bearer_auth(secret.as_str())
                .header("idempotency-key", format!("{tag}-{i}"))
                .json(&json!({ "user": user, "tokens": 1, "reason": "Benchmark" }));
            async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
        line(name, &figures);

        // The ceiling: the same postings straight through the store, no HTTP.
        let (direct, who) = (store.clone(), ids.clone());
        let ceiling = run(CONSUME_REQUESTS, move |i| {
            let user = if hot_only { hot } else { who[i % who.len()] };
            let store = direct.clone();
            async move {
                store
                    .post(Posting::debit(
                        user,
                        Tokens::new(1).unwrap(),
                        Reason::parse("Benchmark").unwrap(),
                        IdempotencyKey::parse(&format!("sql-{tag}-{i}")).unwrap(),
                    ))
                    .await
                    .is_ok()
            }
        })
        .await;
        line("  same postings through the Store trait", &ceiling);

        // The ceiling: the same two statements in one transaction, on a bare sqlx pool.
        let plain = plain_sql(&target, hot_only, ids.clone(), tag).await;
        line("  same transaction as plain SQL (ceiling)", &plain);
        println!(
            "  {:<44} {:>9.0} %   (Store trait / plain SQL: {:.0} %)",
            "  HTTP / plain SQL",
            figures.per_second / plain.per_second * 100.0,
            ceiling.per_second / plain.per_second * 100.0
        );
    }

    // Webhook ingest: signed invoice events, 30% of them duplicates.
    let unique = WEBHOOK_EVENTS * 7 / 10;
    let events: Arc<Vec<String>> = Arc::new(
        (0..unique)
            .map(|n| {
                let user = ids[n % ids.len()];
                json!({
                    "id": format!("evt_bench_{n}"), "object": "event", "type": "invoice.paid",
                    "created": Timestamp::now().as_millis() / 1000,
                    "data": { "object": {
                        "id": format!("in_bench_{n}"), "object": "invoice", "customer": "cus_bench",
                        "billing_reason": "subscription_cycle", "amount_paid": 3500, "currency": "usd",
                        "parent": { "type": "subscription_details", "subscription_details": {
                            "subscription": "sub_bench", "metadata": { "user_id": user.to_string() } } },
                        "lines": { "object": "list", "data": [{ "quantity": 1, "pricing": { "type": "price_details",
                            "price_details": { "price": "price_sim_subscription_starter" } } }] }
                    }}
                })
                .to_string()
            })
            .collect(),
    );
    let (c, base, ev) = (client.clone(), server.base.clone(), events.clone());
    let ingest = run(WEBHOOK_EVENTS, move |i| {
        // Every tenth-or-so delivery repeats an earlier event, as Stripe's retries do.
        let body = ev[(i * 7919) % ev.len()].clone();
        let now = Timestamp::now().as_millis() / 1000;
        let request = c
            .post(format!("{base}/api/webhooks/stripe"))
            .header(
                "stripe-signature",
                signature::sign(body.as_bytes(), WEBHOOK_SECRET, now),
            )
            .body(body);
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    line("signed webhook ingest (30% duplicates)", &ingest);
    let audit = store.audit_balances().await.unwrap();
    let credited: i64 = {
        let mut seen = std::collections::HashSet::new();
        (0..WEBHOOK_EVENTS)
            .filter(|i| seen.insert((i * 7919) % unique))
            .count() as i64
    };
    let invoiced = {
        let mut total = 0;
        for n in 0..unique {
            let key = IdempotencyKey::parse(&format!("stripe:invoice:in_bench_{n}")).unwrap();
            if store.entry_by_key(&key).await.unwrap().is_some() {
                total += 1;
            }
        }
        total
    };
    println!(
        "  {:<44} {invoiced} invoices credited for {credited} distinct events; audit: {}",
        "  ledger afterwards",
        if audit.is_empty() {
            "balance = sum(ledger) for every user".to_owned()
        } else {
            format!("{} MISMATCHES", audit.len())
        }
    );

    // Server-rendered billing pages for a signed-in user.
    let hash = billing::auth::hash_password(
        billing::auth::Password::choose(
            "bench sunflower meadow",
            &Email::parse("page@example.com").unwrap(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    store
        .create_user(NewUser {
            email: Email::parse("page@example.com").unwrap(),
            password_hash: Some(hash),
            role: Role::User,
        })
        .await
        .unwrap();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    browser
        .post(format!("{}/api/auth/login", server.base))
        .form(&[
            ("email", "page@example.com"),
            ("password", "bench sunflower meadow"),
        ])
        .send()
        .await
        .unwrap();
    let base = server.base.clone();
    let pages = run(PAGE_REQUESTS, move |_| {
        let request = browser
            .get(format!("{base}/app/billing"))
            .header("accept", "text/html");
        async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await;
    line("billing page, server-rendered", &pages);
    println!(
        "  {:<44} {:>9.1} MiB",
        "server peak memory (VmHWM)",
        server.peak_mib()
    );
    println!();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run_sqlite = wanted.is_empty() || wanted.iter().any(|w| w == "sqlite");
    let run_postgres = wanted.is_empty() || wanted.iter().any(|w| w == "postgres");

    if run_sqlite {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite {
            path: dir.path().join("billing.sqlite3"),
        };
        bench(
            "SQLite (WAL, synchronous=NORMAL)",
            target,
            vec![("DATA_DIR", dir.path().display().to_string())],
        )
        .await;
    }
    if run_postgres {
        let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
            println!("PostgreSQL: skipped (TEST_POSTGRES_URL is unset; scripts/bench starts one)");
            return;
        };
        use sqlx::Connection;
        let name = format!("billing_bench_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        let target = DatabaseTarget::Postgres {
            url: Secret::new(url.clone()),
        };
        bench(
            "PostgreSQL 15 (durable commits)",
            target,
            vec![("DATABASE_URL", url)],
        )
        .await;
    }
}
