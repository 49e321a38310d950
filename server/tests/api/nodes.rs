//! Two server processes on one PostgreSQL: the production shape. Webhooks, rate limits and
//! sessions live in the database, so any node can take any request.

use std::sync::Arc;

use billing::config::{DatabaseTarget, Secret};
use billing::domain::UserId;
use billing::store::Store;
use std::time::Duration;

use billing::testing::{FakeUser, StripeEvent, empty_postgres_url, paid_purchase};
use serde_json::{Value, json};

use crate::support::{ServerProcess, password_hash};

struct Cluster {
    a: ServerProcess,
    b: ServerProcess,
    store: Arc<dyn Store>,
}

async fn cluster() -> Option<Cluster> {
    let url = empty_postgres_url().await?;
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("RATE_LIMIT_BACKEND", "database"),
    ];
    // The first node migrates; the second finds the schema in place.
    let a = ServerProcess::start(&vars).await;
    let b = ServerProcess::start(&vars).await;
    let store: Arc<dyn Store> = Arc::new(
        billing::store::connect(&DatabaseTarget::Postgres {
            url: Secret::new(url),
        })
        .await
        .unwrap(),
    );
    Some(Cluster { a, b, store })
}

/// root@example.com, an admin who logs in with the test password.
async fn admin(store: &dyn Store) {
    FakeUser::new("root@example.com")
        .admin()
        .password_hash(&password_hash().await)
        .create(store)
        .await;
}

/// A user who logs in with the test password.
async fn account(store: &dyn Store, email: &str) -> UserId {
    FakeUser::new(email)
        .password_hash(&password_hash().await)
        .create(store)
        .await
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_webhook_delivered_to_both_nodes_at_once_credits_once() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let ada = account(&*cluster.store, "ada@example.com").await;
    let event = StripeEvent::invoice_paid(ada)
        .id("evt_cluster")
        .object_id("in_cluster");

    // Stripe retrying eagerly: ten deliveries to each node, all at once.
    let deliveries: Vec<_> = (0..20)
        .map(|i| {
            let node = if i % 2 == 0 { &cluster.a } else { &cluster.b };
            let (webhooks, event) = (node.webhooks(), event.clone());
            tokio::spawn(async move { webhooks.send(&event).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for delivery in deliveries {
        let answer = delivery.await.unwrap();
        assert_eq!(answer.status, 200);
        outcomes.push(answer.json()["outcome"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        outcomes.iter().filter(|o| *o == "credited").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(cluster.store.balance(ada).await.unwrap().get(), 6_000);
    assert!(cluster.store.audit_balances().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_made_on_one_node_works_on_the_other_and_the_rate_limit_spans_both() {
    let Some(cluster) = cluster().await else {
        return;
    };
    admin(&*cluster.store).await;
    let ada = account(&*cluster.store, "ada@example.com").await;
    // One cookie jar: the cookie a node sets goes to the other too (same host, other port).
    let on_a = cluster.a.browser();
    let on_b = on_a.on(&cluster.b.base);
    let login = on_a.log_in("root@example.com").await;
    assert_eq!(login.status, 200);
    assert_eq!(
        on_b.whoami().await["email"],
        "root@example.com",
        "node B knows node A's session"
    );

    // Billing writes alternate between the nodes: the sixth within the minute is refused.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { &on_a } else { &on_b };
        let response = node
            .post_json(
                "/api/admin/tokens/credit",
                json!({ "user": "ada@example.com", "tokens": 10, "reason": "Across nodes" }),
            )
            .await;
        statuses.push(response.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(cluster.store.balance(ada).await.unwrap().get(), 50);

    // Logging out on B ends the session on A too.
    assert_eq!(on_b.post("/api/auth/logout").await.status, 200);
    assert_eq!(on_a.whoami().await, Value::Null);
}

/// A node's balance streams hear changes made anywhere: through the other node, or by another
/// process (PostgreSQL tells each node's one listener).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_on_one_node_hears_a_change_made_through_the_other() {
    let Some(cluster) = cluster().await else {
        return;
    };
    admin(&*cluster.store).await;
    let ada = account(&*cluster.store, "ada@example.com").await;
    let as_ada = cluster.b.browser();
    assert_eq!(as_ada.log_in("ada@example.com").await.status, 200);
    let mut stream = as_ada.get("/api/tokens/stream").events().await;
    assert_eq!(stream.status, 200);
    let first = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(balance(&first), 0);

    let admin = cluster.a.browser();
    assert_eq!(admin.log_in("root@example.com").await.status, 200);
    let credited = admin
        .post_json(
            "/api/admin/tokens/credit",
            json!({ "user": "ada@example.com", "tokens": 25, "reason": "Across nodes" }),
        )
        .await;
    assert_eq!(credited.status, 200);
    let heard = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(balance(&heard), 25);

    paid_purchase(&*cluster.store, ada, 100, "from-another-process").await;
    let heard = stream.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(balance(&heard), 125);
}

fn balance(event: &crate::support::ServerEvent) -> i64 {
    let data: Value = serde_json::from_str(&event.data).expect("JSON");
    data["balance"].as_i64().expect("a balance")
}
