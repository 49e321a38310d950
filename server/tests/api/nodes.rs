//! Two server processes on one PostgreSQL: the production shape. Webhooks, rate limits and
//! sessions live in the database, so any node can take any request.

use std::sync::Arc;

use billing::config::{DatabaseTarget, Secret};
use billing::domain::{Email, Role, Timestamp, UserId};
use billing::store::{NewUser, Store};
use billing::stripe::signature;
use serde_json::{Value, json};

use billing::testing::empty_postgres_url;

use crate::support::ServerProcess;
use crate::support::{PASSWORD, password_hash};

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

async fn account(store: &dyn Store, email: &str, role: Role) -> UserId {
    store
        .create_user(NewUser {
            email: Email::parse(email).unwrap(),
            password_hash: Some(password_hash().await),
            role,
        })
        .await
        .unwrap()
        .id
}

fn invoice_paid(user: UserId) -> String {
    json!({
        "id": "evt_cluster", "object": "event", "type": "invoice.paid",
        "created": Timestamp::now().as_millis() / 1000,
        "data": { "object": {
            "id": "in_cluster", "object": "invoice", "customer": "cus_cluster",
            "billing_reason": "subscription_create", "amount_paid": 3500, "currency": "usd",
            "parent": { "type": "subscription_details", "subscription_details": {
                "subscription": "sub_cluster", "metadata": { "user_id": user.to_string() } } },
            "lines": { "object": "list", "data": [{ "quantity": 1, "pricing": { "type": "price_details",
                "price_details": { "price": "price_sim_subscription_starter" } } }] }
        }}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_webhook_delivered_to_both_nodes_at_once_credits_once() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let ada = account(&*cluster.store, "ada@example.com", Role::User).await;
    let body = invoice_paid(ada);
    let client = reqwest::Client::new();

    // Stripe retrying eagerly: ten deliveries to each node, all at once.
    let deliveries: Vec<_> = (0..20)
        .map(|i| {
            let node = if i % 2 == 0 { &cluster.a } else { &cluster.b };
            let request = client
                .post(node.url("/api/webhooks/stripe"))
                .header(
                    "stripe-signature",
                    signature::sign(
                        body.as_bytes(),
                        crate::support::process::WEBHOOK_SECRET,
                        Timestamp::now().as_millis() / 1000,
                    ),
                )
                .body(body.clone());
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for delivery in deliveries {
        let response = delivery.await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        outcomes.push(body["outcome"].as_str().unwrap().to_owned());
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
    account(&*cluster.store, "root@example.com", Role::Admin).await;
    let ada = account(&*cluster.store, "ada@example.com", Role::User).await;
    // One cookie jar: the cookie a node sets goes to the other too (same host, other port).
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = browser
        .post(cluster.a.url("/api/auth/login"))
        .form(&[("email", "root@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let me: Value = browser
        .get(cluster.b.url("/api/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["email"], "root@example.com",
        "node B knows node A's session"
    );

    // Billing writes alternate between the nodes: the sixth within the minute is refused.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { &cluster.a } else { &cluster.b };
        let response = browser
            .post(node.url("/api/admin/tokens/credit"))
            .json(&json!({ "user": "ada@example.com", "tokens": 10, "reason": "Across nodes" }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(cluster.store.balance(ada).await.unwrap().get(), 50);

    // Logging out on B ends the session on A too.
    browser
        .post(cluster.b.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    let me: Value = browser
        .get(cluster.a.url("/api/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me, Value::Null);
}
