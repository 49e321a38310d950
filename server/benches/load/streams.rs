//! Live balances at scale: 10,000 balance streams held open on one node (8 for each of 1,250
//! signed-in users, the most a user may keep on a node), then ledger changes made by another
//! process. Printed: how long the streams took to open, the server's memory with them open,
//! how long each change took to reach all of its user's streams, and the database reads made
//! per ledger change (the node's watch reads a changed balance once for all its streams).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use billing::store::Store;
use billing::testing::{FakeUser, paid_purchase};
use futures_util::StreamExt;

use super::process::ServerProcess;
use super::{Failed, memory};

pub const USERS: usize = 1_250;
pub const STREAMS_PER_USER: usize = 8;
/// Ledger changes made with every stream open, each to a user of its own.
const CHANGES: usize = 100;

/// A counter of the server's metrics.
async fn counter(client: &reqwest::Client, server: &ServerProcess, name: &str) -> f64 {
    super::metric(&super::metrics(client, server).await, name)
}

pub async fn bench(
    users: usize,
    server: &ServerProcess,
    store: &Arc<dyn Store>,
    password: &str,
    hash: &str,
) -> Result<(), Failed> {
    let streams = users * STREAMS_PER_USER;
    let changes = CHANGES.min(users);
    // Sign-ins, each from an address of its own (the server trusts one proxy here), so that
    // the per-address sign-in limit does not stop the benchmark.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut accounts = Vec::with_capacity(users);
    for i in 0..users {
        let email = format!("stream{i}@example.com");
        let user = FakeUser::new(&email)
            .password_hash(hash)
            .create(&**store)
            .await;
        accounts.push((user.id, email));
    }
    let started = Instant::now();
    let cookies: Vec<String> = futures_util::stream::iter(accounts.iter().enumerate())
        .map(|(i, (_, email))| {
            let client = client.clone();
            async move {
                let login = client
                    .post(format!("{}/api/auth/login", server.base))
                    .header("x-forwarded-for", format!("10.{}.{}.1", i / 250, i % 250))
                    .form(&[("email", email.as_str()), ("password", password)])
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if login.status() != 200 {
                    return Err(format!("a sign-in answered {}", login.status()));
                }
                let cookies: Vec<String> = login
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|c| c.to_str().ok()?.split(';').next().map(str::to_owned))
                    .collect();
                Ok(cookies.join("; "))
            }
        })
        .buffered(4)
        .collect::<Vec<Result<String, String>>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let signed_in = started.elapsed();

    // Every stream counts the events it hears.
    let heard = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let streaming = reqwest::Client::builder().build().unwrap();
    let started = Instant::now();
    let mut open = Vec::with_capacity(streams);
    for cookie in &cookies {
        for _ in 0..STREAMS_PER_USER {
            let (http, base, cookie) = (streaming.clone(), server.base.clone(), cookie.clone());
            let (heard, refused) = (heard.clone(), refused.clone());
            open.push(tokio::spawn(async move {
                let mut response = match http
                    .get(format!("{base}/api/tokens/stream"))
                    .header("cookie", cookie)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => r,
                    answer => {
                        if refused.fetch_add(1, Ordering::Relaxed) == 0 {
                            // The first refusal says why, once.
                            let why = match answer {
                                Ok(r) => {
                                    format!("{} {}", r.status(), r.text().await.unwrap_or_default())
                                }
                                Err(e) => e.to_string(),
                            };
                            eprintln!("  the first stream refused: {why}");
                        }
                        return;
                    }
                };
                // Counted whole, however the events are cut into chunks.
                let mut unread = Vec::new();
                while let Ok(Some(chunk)) = response.chunk().await {
                    unread.extend_from_slice(&chunk);
                    const EVENT: &[u8] = b"event: balance\n";
                    let mut from = 0;
                    while let Some(at) =
                        unread[from..].windows(EVENT.len()).position(|w| w == EVENT)
                    {
                        heard.fetch_add(1, Ordering::Relaxed);
                        from += at + EVENT.len();
                    }
                    unread.drain(..from.max(unread.len().saturating_sub(EVENT.len())));
                }
            }));
        }
    }
    let opened = wait_for(&heard, streams, &refused, Duration::from_secs(300)).await;
    let open_time = started.elapsed();
    if !opened {
        return Err(format!(
            "{} of {streams} streams sent their first event ({} refused)",
            heard.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed)
        ));
    }
    let open_memory = memory(server);
    let (rss, hwm) = (open_memory.resident, open_memory.peak);

    // Changes made by another process (this one, straight to the database): each must reach
    // all eight of its user's streams.
    let reads_before = counter(&client, server, "billing_live_balance_reads_total").await;
    let started = Instant::now();
    for (n, (user, _)) in accounts.iter().take(changes).enumerate() {
        paid_purchase(&**store, *user, 10, &format!("stream-change-{n}")).await;
    }
    let want = streams + changes * STREAMS_PER_USER;
    let told = wait_for(&heard, want, &refused, Duration::from_secs(60)).await;
    let fan_out = started.elapsed();
    let reads = counter(&client, server, "billing_live_balance_reads_total").await - reads_before;
    let rss_after = memory(server).resident;
    for stream in &open {
        stream.abort();
    }
    if !told {
        return Err(format!(
            "{changes} changes reached {} of {} stream events",
            heard.load(Ordering::Relaxed) - streams,
            changes * STREAMS_PER_USER
        ));
    }
    println!(
        "  {:<44} {streams} streams of {users} users ({STREAMS_PER_USER} each), open in {:.1} s (sign-ins {:.1} s)",
        "balance streams held open",
        open_time.as_secs_f64(),
        signed_in.as_secs_f64()
    );
    println!(
        "  {:<44} {rss:.1} MiB resident with them open, {rss_after:.1} MiB after the changes (peak so far {hwm:.1} MiB)",
        "  server memory"
    );
    println!(
        "  {:<44} {changes} changes reached all {} of their streams in {:.2} s",
        "  ledger changes made by another process",
        changes * STREAMS_PER_USER,
        fan_out.as_secs_f64()
    );
    println!(
        "  {:<44} {:.2} balance reads a change (each two queries), whatever the streams; \
         a poll a second per stream would make {} queries a second",
        "  database reads per ledger change",
        reads / changes as f64,
        2 * streams
    );
    Ok(())
}

/// Waits until `heard` reaches `want` (true) or `within` passes or every stream was refused.
async fn wait_for(
    heard: &AtomicUsize,
    want: usize,
    refused: &AtomicUsize,
    within: Duration,
) -> bool {
    let until = Instant::now() + within;
    while heard.load(Ordering::Relaxed) < want {
        if Instant::now() > until || refused.load(Ordering::Relaxed) > 0 {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}
