//! `GET /api/tokens/stream`: the balance as server-sent events.

use std::future::IntoFuture;
use std::time::Duration;

use billing::testing::{FakeUser, paid_purchase};
use serde_json::{Value, json};

use crate::support::metrics::Metrics;
use crate::support::process::sqlite_store;
use crate::support::{ServerProcess, password_hash, spawn_app};
use server::live_balances::STREAMS_PER_USER;

fn balance_of(event: &crate::support::ServerEvent) -> Value {
    assert_eq!(event.name, "balance", "{event:?}");
    serde_json::from_str(&event.data).expect("a balance event's data is JSON")
}

#[tokio::test]
async fn the_stream_sends_the_balance_at_once_and_again_when_the_ledger_changes() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    let mut stream = ada.get("/api/tokens/stream").events().await;
    assert_eq!(stream.status, 200);

    let first = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(
        balance_of(&first),
        json!({ "balance": 0, "held": 0, "latest_entry": null })
    );

    let bought = paid_purchase(&*app.store, ada.me().id, 700, "stream").await;
    let changed = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(
        balance_of(&changed),
        json!({ "balance": 700, "held": 0, "latest_entry": bought.id })
    );

    // A hold changes no balance and writes no entry, but what is available: the page hears.
    app.store
        .open_hold(&billing::store::NewHold {
            user: ada.me().id,
            tokens: billing::domain::Tokens::new(200).unwrap(),
            reason: billing::domain::Reason::parse("a job").unwrap(),
            ttl_ms: 600_000,
            key: billing::domain::IdempotencyKey::parse("hold:stream").unwrap(),
            api_key: None,
        })
        .await
        .unwrap();
    let held = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(
        balance_of(&held),
        json!({ "balance": 700, "held": 200, "latest_entry": bought.id })
    );
}

/// Every stream of a user on a node hears a change and starts from the same read (the node
/// reads a balance once for all of them);
/// a user may keep `STREAMS_PER_USER` open on one node, and one more is refused until one
/// of them closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_of_a_users_streams_hears_a_change_and_one_too_many_is_refused() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    let reads = async || {
        Metrics::scrape(&ada)
            .await
            .value("billing_live_balance_reads_total", &[])
    };
    let before = reads().await;
    let mut open = Vec::new();
    for _ in 0..STREAMS_PER_USER {
        let mut stream = ada.get("/api/tokens/stream").events().await;
        assert_eq!(stream.status, 200);
        let first = stream.next(Duration::from_secs(5)).await.expect("an event");
        assert_eq!(balance_of(&first)["balance"], 0);
        open.push(stream);
    }
    assert_eq!(
        reads().await - before,
        1.0,
        "one read for the user's first stream only"
    );
    let refused = ada.get("/api/tokens/stream").events().await;
    assert_eq!(refused.status, 429, "one stream too many");

    let bought = paid_purchase(&*app.store, ada.me().id, 700, "streams").await;
    for stream in &mut open {
        let changed = stream.next(Duration::from_secs(5)).await.expect("an event");
        assert_eq!(
            balance_of(&changed),
            json!({ "balance": 700, "held": 0, "latest_entry": bought.id })
        );
    }

    // Another user's streams are their own.
    let bob = app.user("bob").await;
    assert_eq!(bob.get("/api/tokens/stream").events().await.status, 200);

    // Closing one makes room for another.
    drop(open.pop());
    let reopened = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let stream = ada.get("/api/tokens/stream").events().await;
            if stream.status == 200 {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a stream opens again once one closed");
    assert_eq!(reopened.status, 200);
}

#[tokio::test]
async fn the_stream_needs_a_session() {
    let app = spawn_app().await;
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        app.browser().get("/api/tokens/stream").into_future(),
    )
    .await
    .expect("a refusal, not a stream that stays open");
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_ends_when_the_server_gets_sigterm_and_the_server_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    FakeUser::new("ada@example.com")
        .password_hash(&password_hash().await)
        .create(&*store)
        .await;
    let data = dir.path().display().to_string();
    let server = ServerProcess::start(&[("DATA_DIR", &data)]).await;
    let ada = server.browser();
    assert_eq!(ada.log_in("ada@example.com").await.status, 200);
    let mut stream = ada.get("/api/tokens/stream").events().await;
    assert_eq!(stream.status, 200);
    stream.next(Duration::from_secs(5)).await.expect("an event");

    let stopping = tokio::spawn(server.terminate(Duration::from_secs(20)));
    assert!(
        stream.ends_within(Duration::from_secs(10)).await,
        "the stream is still open after SIGTERM"
    );
    assert_eq!(
        stopping.await.unwrap(),
        Some(0),
        "the server exited cleanly"
    );
}
