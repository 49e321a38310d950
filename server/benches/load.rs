//! Load benchmarks: figures printed, nothing asserted about speed; the ledger is checked
//! afterwards, and a benchmark whose ledger disagrees with what it sent fails.
//!
//!   scripts/bench                      (both backends; starts a private PostgreSQL)
//!   cargo bench -p server --bench load -- sqlite
//!   BENCH_QUICK=1 cargo bench -p server --bench load --profile dev -- sqlite
//!                                      (a tiny load: checks the benchmark itself, in seconds)
//!
//! The server runs as its own process (the release binary); this process is the client.
//! Measured: consume over HTTP at a fixed concurrency (many users, one hot user) and how many
//! debits group commit put in a transaction, beside the same debits through `Store::spend`,
//! the transaction on a bare sqlx pool (one commit each), and the same transaction by pgbench
//! or the sqlite3 shell (the independent ceilings, `load/ceilings.rs`), then an open loop at
//! half the rate (`load/open_loop.rs`); the same number of consumes sent as batches
//! (`/api/tokens/consume/batch`, 500 items each); signed webhook ingest with 30% duplicates;
//! server-rendered billing pages; the server's peak memory; and 10,000 open balance streams
//! (`load/streams.rs`). Checked: every call succeeded, the ledger holds exactly one entry per
//! consume call, ceiling transaction, batch item and distinct invoice delivered, every balance
//! is the sum of its ledger and its grants and holds agree with it, the page measured is the
//! signed-in billing page (a failed login stops the benchmark), and every stream heard every
//! change of its user.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use billing::api_key::{NewApiKey, SCOPE_CONSUME};
use billing::config::DatabaseTarget;
use billing::domain::{Email, IdempotencyKey, Reason, Source, Timestamp, Tokens, UserId};
use billing::ledger::Debit;
use billing::store::Store;
use billing::stripe::signature;
use billing::testing::{FakeUser, StripeEvent, paid_purchase};
use serde_json::json;

// The server as a child process, shared with the server's tests (which use the rest of it).
#[allow(dead_code)]
#[path = "../tests/api/support/process.rs"]
mod process;

use process::{ServerProcess, WEBHOOK_SECRET};

#[path = "load/ceilings.rs"]
mod ceilings;
#[path = "load/open_loop.rs"]
mod open_loop;
#[path = "load/streams.rs"]
mod streams;

/// What the benchmark reads the server's metrics with.
const METRICS_TOKEN: &str = "bench-metrics-token-0123456789";

/// How much load: the full benchmark, or a tiny one (`BENCH_QUICK=1`) that checks the
/// benchmark works without loading the machine.
#[derive(Clone, Copy)]
struct Load {
    concurrency: usize,
    consume_requests: usize,
    users: usize,
    webhook_events: usize,
    /// Deliveries in flight at once: Stripe sends an account's events concurrently, and a
    /// burst (a billing cycle's invoices) arrives as many at a time, not 32.
    webhooks_in_flight: usize,
    page_requests: usize,
}

impl Load {
    const FULL: Load = Load {
        concurrency: 32,
        consume_requests: 20_000,
        users: 1_000,
        webhook_events: 20_000,
        webhooks_in_flight: 256,
        page_requests: 2_000,
    };
    const QUICK: Load = Load {
        concurrency: 4,
        consume_requests: 200,
        users: 20,
        webhook_events: 100,
        webhooks_in_flight: 8,
        page_requests: 20,
    };

    fn from_env() -> Self {
        match std::env::var("BENCH_QUICK") {
            Ok(v) if !v.is_empty() && v != "0" => Self::QUICK,
            _ => Self::FULL,
        }
    }
}

/// Why a benchmark's results cannot be trusted.
type Failed = String;

/// Items per batch in the batch run, and how many batches are in flight at once (a service
/// sending batches needs few connections).
const BATCH_ITEMS: usize = 500;
const BATCH_CONCURRENCY: usize = 4;

/// The server's memory, in MiB, from `/proc/<pid>/status`.
struct Memory {
    /// Resident now (VmRSS).
    resident: f64,
    /// Resident at its peak so far (VmHWM).
    peak: f64,
    /// Of what is resident now, the heap and other anonymous memory (RssAnon)...
    anonymous: f64,
    /// ...and the pages of files, mostly the binary's code (RssFile).
    files: f64,
}

fn memory(server: &ServerProcess) -> Memory {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    Memory {
        resident: field("VmRSS:"),
        peak: field("VmHWM:"),
        anonymous: field("RssAnon:"),
        files: field("RssFile:"),
    }
}

/// Prints the server's resident memory after a load, and its peak so far: which load set the
/// peak shows.
fn memory_line(server: &ServerProcess) {
    let m = memory(server);
    println!(
        "  {:<44} {:>9.1} MiB ({:.1} heap, {:.1} code and files; peak so far {:.1} MiB)",
        "  server resident memory after it", m.resident, m.anonymous, m.files, m.peak
    );
}

/// The server's metrics as Prometheus reads them.
async fn metrics(client: &reqwest::Client, server: &ServerProcess) -> String {
    client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One value of `metrics` (zero when it is not there yet).
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// "   (3 errors)", or nothing.
fn errors_note(errors: usize) -> String {
    if errors > 0 {
        format!("   ({errors} errors)")
    } else {
        String::new()
    }
}

/// Throughput and latency of `total` calls of `call(i)`, `concurrency` at a time.
struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

async fn run<F, Fut>(concurrency: usize, total: usize, call: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
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
        errors_note(f.errors)
    );
}

/// `count` users, each with `tokens_each` tokens bought.
async fn users(store: &Arc<dyn Store>, count: usize, tokens_each: i64) -> Vec<UserId> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let user = FakeUser::new(&format!("bench{i}@example.com"))
            .create(&**store)
            .await;
        paid_purchase(&**store, user.id, tokens_each, &format!("bench-grant-{i}")).await;
        ids.push(user.id);
    }
    ids
}

/// The ledger entries of `source` over every one of `users`.
async fn entries_of(store: &Arc<dyn Store>, users: &[UserId], source: Source) -> i64 {
    let mut total = 0;
    for &user in users {
        let totals = store.ledger_totals(user).await.unwrap();
        total += totals
            .by_source
            .iter()
            .filter(|t| t.source == source)
            .map(|t| t.entries)
            .sum::<i64>();
    }
    total
}

/// Fails unless every one of `total` calls succeeded.
fn all_succeeded(what: &str, total: usize, figures: &Figures) -> Result<(), Failed> {
    match figures.errors {
        0 => Ok(()),
        errors => Err(format!("{what}: {errors} of {total} calls failed")),
    }
}

/// The consume transaction as plain SQL on a bare, typed sqlx pool: the guarded balance
/// update (what is available, nothing due to expire) and the ledger insert naming the grant
/// spent first (which the database draws from), committed together.
/// The consume transaction's two statements, which every ceiling runs: the guarded balance
/// update ($1 the user, $2 now in ms, $3 the key) and the ledger insert ($2 the balance after,
/// $4 now).
const UPDATE: &str = "UPDATE token_balances SET balance = balance - 1, updated_at = $2 \
     WHERE user_id = $1 AND balance - held >= 1 \
         AND (next_expiry IS NULL OR next_expiry > $2) \
         AND NOT EXISTS (SELECT 1 FROM token_ledger WHERE idempotency_key = $3) \
     RETURNING balance";
const INSERT: &str = "INSERT INTO token_ledger (user_id, delta, balance_after, source, reason, \
     idempotency_key, drawn_from, created_at) VALUES ($1, -1, $2, 'consume', 'Benchmark', $3, \
         (SELECT id FROM (SELECT id, remaining FROM token_grants \
             WHERE user_id = $1 AND expired_at IS NULL AND remaining > 0 \
             ORDER BY CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, id LIMIT 1) \
             AS first WHERE remaining >= 1), $4) \
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id";

/// The consume transaction as plain SQL on a bare, typed sqlx pool: the project's own
/// ceiling (the same statements, no HTTP, no authentication, no JSON, one commit each).
async fn plain_sql(
    load: Load,
    target: &DatabaseTarget,
    hot_only: bool,
    ids: Arc<Vec<UserId>>,
    tag: &'static str,
) -> Figures {
    // One body for both pools: the statements are the same, the transaction's type is not.
    macro_rules! consume_one {
        ($tx:ident, $user:expr, $i:expr) => {{
            let now = Timestamp::now().as_millis();
            let key = format!("plain-{}-{}", tag, $i);
            let Some(after): Option<i64> = sqlx::query_scalar(UPDATE)
                .bind($user)
                .bind(now)
                .bind(&key)
                .fetch_optional(&mut *$tx)
                .await
                .unwrap()
            else {
                return false;
            };
            if sqlx::query_scalar::<_, i64>(INSERT)
                .bind($user)
                .bind(after)
                .bind(&key)
                .bind(now)
                .fetch_optional(&mut *$tx)
                .await
                .unwrap()
                .is_none()
            {
                return false;
            }
            $tx.commit().await.unwrap();
            true
        }};
    }
    let hot = ids[0];
    match target {
        DatabaseTarget::Postgres { url } => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .connect(url.expose())
                .await
                .unwrap();
            run(load.concurrency, load.consume_requests, move |i| {
                let user = if hot_only { hot } else { ids[i % ids.len()] }.get();
                let pool = pool.clone();
                async move {
                    let mut tx = pool.begin().await.unwrap();
                    consume_one!(tx, user, i)
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
            run(load.concurrency, load.consume_requests, move |i| {
                let user = if hot_only { hot } else { ids[i % ids.len()] }.get();
                let pool = pool.clone();
                async move {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                    consume_one!(tx, user, i)
                }
            })
            .await
        }
    }
}

/// The consume transaction by pgbench or the sqlite3 shell, over the same users.
fn independent_ceiling(
    load: Load,
    target: &DatabaseTarget,
    hot_only: bool,
    ids: &[UserId],
    tag: &str,
) -> Result<ceilings::Ceiling, Failed> {
    let users: Vec<i64> = if hot_only {
        vec![ids[0].get()]
    } else {
        ids.iter().map(|u| u.get()).collect()
    };
    match target {
        DatabaseTarget::Postgres { url } => {
            let (lo, hi) = (users[0], users[users.len() - 1]);
            if hi - lo + 1 != users.len() as i64 {
                return Err("pgbench picks users from a range: the ids are not one".to_owned());
            }
            ceilings::pgbench(
                url.expose(),
                lo..=hi,
                load.concurrency,
                load.consume_requests,
                (UPDATE, INSERT),
            )
        }
        DatabaseTarget::Sqlite { path } => {
            ceilings::sqlite3(path, &users, load.consume_requests, tag, (UPDATE, INSERT))
        }
    }
}

/// Group commit's transactions and the pieces (debits, or events) they took, as the
/// server's metrics say.
#[derive(Clone, Copy, Default)]
struct Groups {
    count: u64,
    pieces: f64,
}

impl Groups {
    fn since(self, before: Groups) -> Groups {
        Groups {
            count: self.count - before.count,
            pieces: self.pieces - before.pieces,
        }
    }

    fn mean(self) -> f64 {
        self.pieces / self.count.max(1) as f64
    }
}

/// `histogram`: `billing_group_commit_debits` or `billing_group_commit_events`.
async fn group_commits(
    client: &reqwest::Client,
    server: &ServerProcess,
    histogram: &str,
) -> Groups {
    let metrics = metrics(client, server).await;
    Groups {
        count: metric(&metrics, &format!("{histogram}_count")) as u64,
        pieces: metric(&metrics, &format!("{histogram}_sum")),
    }
}

const DEBITS: &str = "billing_group_commit_debits";
const EVENTS: &str = "billing_group_commit_events";

/// A batch run's figures: per batch of `items`.
struct BatchRun {
    figures: Figures,
    batches: usize,
    items: usize,
}

/// `load.consume_requests` consumes, one token each over many users, sent as batches of up
/// to [`BATCH_ITEMS`] items; a batch counts as failed unless every item was applied.
async fn consume_batches(
    load: Load,
    client: &reqwest::Client,
    base: &str,
    secret: &Arc<String>,
    ids: &Arc<Vec<UserId>>,
) -> BatchRun {
    let items = BATCH_ITEMS.min(load.consume_requests.div_ceil(BATCH_CONCURRENCY));
    let batches = load.consume_requests / items;
    let (http, base, secret, who) = (client.clone(), base.to_owned(), secret.clone(), ids.clone());
    let figures = run(BATCH_CONCURRENCY.min(batches), batches, move |b| {
        let body: Vec<_> = (b * items..(b + 1) * items)
            .map(|i| {
                json!({ "user": who[i % who.len()], "tokens": 1, "reason": "Benchmark",
                        "idempotency_key": format!("batch-{i}") })
            })
            .collect();
        let request = http
            .post(format!("{base}/api/tokens/consume/batch"))
            .bearer_auth(secret.as_str())
            .json(&json!({ "items": body }));
        async move {
            let Ok(response) = request.send().await else {
                return false;
            };
            if !response.status().is_success() {
                return false;
            }
            let Ok(answer) = response.json::<serde_json::Value>().await else {
                return false;
            };
            answer["items"].as_array().is_some_and(|answers| {
                answers.len() == items && answers.iter().all(|a| a["status"] == "applied")
            })
        }
    })
    .await;
    BatchRun {
        figures,
        batches,
        items,
    }
}

async fn bench(
    load: Load,
    backend: &str,
    target: DatabaseTarget,
    vars: Vec<(&'static str, String)>,
) -> Result<(), Failed> {
    let Load {
        concurrency,
        consume_requests,
        ..
    } = load;
    let store: Arc<dyn Store> = Arc::new(billing::store::connect(&target).await.unwrap());
    let ids = Arc::new(users(&store, load.users, 1_000_000).await);
    let hot = ids[0];
    let key = NewApiKey::generate();
    store
        .create_api_key("bench", &key.display_prefix, &key.digest, &[SCOPE_CONSUME])
        .await
        .unwrap();
    let secret = Arc::new(key.secret.expose().to_owned());
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("RUST_LOG", "error"));
    vars.push(("METRICS_TOKEN", METRICS_TOKEN));
    // The streams benchmark signs its users in from addresses of their own.
    vars.push(("TRUSTED_PROXIES", "1"));
    let server = ServerProcess::start(&vars).await;
    // A connection kept for each request in flight, the webhooks' many included.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(load.webhooks_in_flight))
        .build()
        .unwrap();
    println!("{backend} (concurrency {concurrency}):");

    // Consume over HTTP: many users, then one hot user; each beside its ceilings, then at
    // half its rate as an open loop.
    let mut single_many = None;
    let mut consumed_expected = 0;
    for (name, hot_only) in [
        ("consume over HTTP, many users", false),
        ("consume over HTTP, one hot user", true),
    ] {
        let tag = if hot_only { "hot" } else { "many" };
        let consume = {
            let (http, base, secret, who) = (
                client.clone(),
                server.base.clone(),
                secret.clone(),
                ids.clone(),
            );
            move |label: &'static str| {
                let (http, base, secret, who) =
                    (http.clone(), base.clone(), secret.clone(), who.clone());
                move |i: usize| {
                    let user = if hot_only { hot } else { who[i % who.len()] };
                    let request = http
                        .post(format!("{base}/api/tokens/consume"))
                        .bearer_auth(secret.as_str())
                        .header("idempotency-key", format!("{label}-{tag}-{i}"))
                        .json(&json!({ "user": user, "tokens": 1, "reason": "Benchmark" }));
                    async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
                }
            }
        };
        let groups_before = group_commits(&client, &server, DEBITS).await;
        let figures = run(concurrency, consume_requests, consume("closed")).await;
        let groups = group_commits(&client, &server, DEBITS)
            .await
            .since(groups_before);
        line(name, &figures);
        memory_line(&server);
        println!(
            "  {:<44} {:>9.1} debits a transaction ({} transactions)",
            "  group commit",
            groups.mean(),
            groups.count
        );
        all_succeeded(name, consume_requests, &figures)?;
        consumed_expected += consume_requests;

        // The same debits straight through the store (group commit, no HTTP).
        let (direct, who) = (store.clone(), ids.clone());
        let through_store = run(concurrency, consume_requests, move |i| {
            let user = if hot_only { hot } else { who[i % who.len()] };
            let store = direct.clone();
            async move {
                store
                    .spend(Debit::new(
                        user,
                        Tokens::new(1).unwrap(),
                        Reason::parse("Benchmark").unwrap(),
                        IdempotencyKey::parse(&format!("store-{tag}-{i}")).unwrap(),
                    ))
                    .await
                    .is_ok()
            }
        })
        .await;
        line("  same debits through Store::spend", &through_store);
        all_succeeded("the Store's debits", consume_requests, &through_store)?;
        consumed_expected += consume_requests;

        // The project's ceiling: the transaction on a bare sqlx pool, one commit each.
        let plain = plain_sql(load, &target, hot_only, ids.clone(), tag).await;
        line("  same transaction on a bare sqlx pool", &plain);
        all_succeeded("the plain SQL transactions", consume_requests, &plain)?;
        consumed_expected += consume_requests;

        // The independent ceiling: the transaction by a tool that is not this project.
        let independent = independent_ceiling(load, &target, hot_only, &ids, tag)?;
        println!(
            "  {:<44} {:>9.0} /s   ({}, {} transactions, {})",
            format!("  same transaction by {}", independent.tool),
            independent.per_second,
            independent.tool,
            independent.transactions,
            independent.detail
        );
        consumed_expected += independent.transactions;
        let target_ratio = match target {
            DatabaseTarget::Postgres { .. } => 1.0,
            DatabaseTarget::Sqlite { .. } => 0.5,
        };
        let ratio = figures.per_second / independent.per_second;
        println!(
            "  {:<44} {:>9.2}×  (target {target_ratio}×: {})   HTTP / sqlx pool {:.2}×",
            format!("  HTTP / {}", independent.tool),
            ratio,
            if ratio >= target_ratio {
                "met"
            } else {
                "NOT met"
            },
            figures.per_second / plain.per_second,
        );

        // Half the closed loop's rate, as a fixed arrival rate.
        let rate = figures.per_second / 2.0;
        let open = open_loop::run(rate, consume_requests / 2, consume("open")).await;
        println!(
            "  {:<44} {:>9.0} /s   p50 {:>6.2} ms   p99 {:>6.2} ms   p99.9 {:>6.2} ms   max {:.1} ms{}",
            format!("  open loop at {:.0}/s (half)", open.rate),
            open.answered,
            open.p50_ms,
            open.p99_ms,
            open.p999_ms,
            open.max_ms,
            errors_note(open.errors)
        );
        println!(
            "  {:<44} p99 {:.2} ms (target under 20 ms: {})",
            "    latency at half the peak",
            open.p99_ms,
            if open.p99_ms < 20.0 { "met" } else { "NOT met" }
        );
        if open.errors > 0 {
            return Err(format!("the open loop: {} calls failed", open.errors));
        }
        consumed_expected += consume_requests / 2;
        if !hot_only {
            single_many = Some(figures);
        }
    }
    let single = single_many.expect("the many-users run happened");

    // The same number of consumes over HTTP as batches, many users.
    let batch = consume_batches(load, &client, &server.base, &secret, &ids).await;
    line(
        &format!("consume batches of {} over HTTP, many users", batch.items),
        &batch.figures,
    );
    all_succeeded("the batches", batch.batches, &batch.figures)?;
    memory_line(&server);
    let items_per_second = batch.figures.per_second * batch.items as f64;
    let speedup = items_per_second / single.per_second;
    println!(
        "  {:<44} {items_per_second:>9.0} items/s   single consume {:.0} items/s   {speedup:.1}×",
        "  items a second", single.per_second,
    );

    // Each run above made one entry per call or transaction, the batches one per item, and
    // nothing else consumed.
    let consumed = entries_of(&store, &ids, Source::Consume).await;
    let sent = (consumed_expected + batch.batches * batch.items) as i64;
    println!(
        "  {:<44} {consumed} consume entries for {sent} calls and batch items",
        "  ledger afterwards"
    );
    if consumed != sent {
        return Err(format!(
            "the ledger holds {consumed} consume entries for {sent} successful calls and items"
        ));
    }

    // Webhook ingest: signed invoice events, 30% of them duplicates.
    let unique = load.webhook_events * 7 / 10;
    let events: Arc<Vec<String>> = Arc::new(
        (0..unique)
            .map(|n| {
                StripeEvent::invoice_paid(ids[n % ids.len()])
                    .id(&format!("evt_bench_{n}"))
                    .object_id(&format!("in_bench_{n}"))
                    .set("/data/object/billing_reason", "subscription_cycle")
                    .payload()
            })
            .collect(),
    );
    let (c, base, ev) = (client.clone(), server.base.clone(), events.clone());
    let groups_before = group_commits(&client, &server, EVENTS).await;
    let ingest = run(load.webhooks_in_flight, load.webhook_events, move |i| {
        // The first 70% of deliveries are each event once (7919 is prime to their count);
        // the rest repeat earlier ones, as Stripe's retries do.
        let body = ev[(i * 7919) % ev.len()].clone();
        let now = Timestamp::now().as_millis() / 1000;
        let request = c
            .post(format!("{base}/api/webhooks/stripe"))
            .header("content-type", "application/json")
            .header(
                "stripe-signature",
                signature::sign(body.as_bytes(), WEBHOOK_SECRET, now),
            )
            .body(body);
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    line(
        &format!(
            "signed webhooks, 30% dup., {} in flight",
            load.webhooks_in_flight
        ),
        &ingest,
    );
    let groups = group_commits(&client, &server, EVENTS)
        .await
        .since(groups_before);
    println!(
        "  {:<44} {:.1} ({} transactions)",
        "  new events a transaction (group commit)",
        groups.mean(),
        groups.count
    );
    memory_line(&server);
    all_succeeded("webhook ingest", load.webhook_events, &ingest)?;
    let delivered: HashSet<usize> = (0..load.webhook_events)
        .map(|i| (i * 7919) % unique)
        .collect();
    let mut credited_delivered = 0;
    let mut credited_unsent = 0;
    for n in 0..unique {
        let key = IdempotencyKey::scoped("stripe:invoice", &format!("in_bench_{n}")).unwrap();
        if store.entry_by_key(&key).await.unwrap().is_some() {
            if delivered.contains(&n) {
                credited_delivered += 1;
            } else {
                credited_unsent += 1;
            }
        }
    }
    let invoice_entries = entries_of(&store, &ids, Source::StripeInvoice).await;
    println!(
        "  {:<44} {credited_delivered} invoices credited for {} distinct events, {invoice_entries} invoice entries",
        "  ledger afterwards",
        delivered.len(),
    );
    if credited_delivered != delivered.len() || credited_unsent != 0 {
        return Err(format!(
            "{credited_delivered} invoices credited for {} distinct events delivered \
             ({credited_unsent} credited that were never sent)",
            delivered.len()
        ));
    }
    if invoice_entries != delivered.len() as i64 {
        return Err(format!(
            "{invoice_entries} invoice entries in the ledger for {} distinct invoices",
            delivered.len()
        ));
    }

    // Server-rendered billing pages for a signed-in user.
    let email = "page@example.com";
    let password = "bench sunflower meadow";
    let hash = billing::auth::hash_password(
        billing::auth::Password::choose(password, &Email::parse(email).unwrap()).unwrap(),
    )
    .await
    .unwrap();
    FakeUser::new(email)
        .password_hash(&hash)
        .create(&*store)
        .await;
    // Redirects are not followed: a lost session answers 302 (to the login page), an error
    // here, rather than the login page measured as if it were the billing page.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser
        .post(format!("{}/api/auth/login", server.base))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .map_err(|e| format!("the login before the page benchmark failed: {e}"))?;
    if login.status() != 200 {
        let status = login.status();
        return Err(format!(
            "the login before the page benchmark answered {status}: {}",
            login.text().await.unwrap_or_default()
        ));
    }
    println!("  one login (its password checked: argon2id, 7 MiB):");
    memory_line(&server);
    let page = browser
        .get(format!("{}/app/billing", server.base))
        .header("accept", "text/html")
        .send()
        .await
        .map_err(|e| format!("the billing page failed: {e}"))?;
    let status = page.status();
    let html = page.text().await.unwrap_or_default();
    if status != 200 || !html.contains(email) {
        return Err(format!(
            "the signed-in billing page answered {status} without the user's email: not the page to measure"
        ));
    }
    let base = server.base.clone();
    let pages = run(concurrency, load.page_requests, move |_| {
        let request = browser
            .get(format!("{base}/app/billing"))
            .header("accept", "text/html");
        async move {
            match request.send().await {
                Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await;
    line("billing page, server-rendered", &pages);
    memory_line(&server);
    all_succeeded("billing pages", load.page_requests, &pages)?;
    println!(
        "  {:<44} {:>9.1} MiB",
        "server peak memory (VmHWM)",
        memory(&server).peak
    );

    // Live balances: thousands of streams open on the node.
    let users = if concurrency == Load::FULL.concurrency {
        streams::USERS
    } else {
        20
    };
    streams::bench(users, &server, &store, password, &hash).await?;

    let audit = store.audit_balances().await.unwrap();
    println!(
        "  {:<44} {}",
        "  audit",
        if audit.is_empty() {
            "balance = sum(ledger) for every user".to_owned()
        } else {
            format!("{} MISMATCHES", audit.len())
        }
    );
    if !audit.is_empty() {
        return Err(format!(
            "{} user(s) whose balance is not the sum of their ledger: {audit:?}",
            audit.len()
        ));
    }
    let credits = store.audit_credits().await.unwrap();
    println!(
        "  {:<44} {}",
        "  audit of grants and holds",
        if credits.is_empty() {
            "live grants = balance, open holds = held, for every user".to_owned()
        } else {
            format!("{} MISMATCHES", credits.len())
        }
    );
    if !credits.is_empty() {
        return Err(format!(
            "{} user(s) whose grants or holds disagree with their balance: {credits:?}",
            credits.len()
        ));
    }
    println!();
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run_sqlite = wanted.is_empty() || wanted.iter().any(|w| w == "sqlite");
    let run_postgres = wanted.is_empty() || wanted.iter().any(|w| w == "postgres");
    let load = Load::from_env();

    let mut failed = Vec::new();
    if run_sqlite {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite {
            path: dir.path().join("billing.sqlite3"),
        };
        let backend = "SQLite (WAL, synchronous=NORMAL)";
        let vars = vec![("DATA_DIR", dir.path().display().to_string())];
        if let Err(why) = bench(load, backend, target, vars).await {
            failed.push(format!("{backend}: {why}"));
        }
    }
    if run_postgres {
        match billing::testing::empty_postgres().await {
            None => println!(
                "PostgreSQL: skipped (TEST_POSTGRES_URL is unset; scripts/bench starts one)"
            ),
            Some(target) => {
                let DatabaseTarget::Postgres { url } = &target else {
                    unreachable!("a PostgreSQL target")
                };
                let backend = "PostgreSQL 15 (durable commits)";
                let vars = vec![("DATABASE_URL", url.expose().to_owned())];
                if let Err(why) = bench(load, backend, target, vars).await {
                    failed.push(format!("{backend}: {why}"));
                }
            }
        }
    }
    for why in &failed {
        eprintln!("error: {why}");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
