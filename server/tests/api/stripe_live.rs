//! The live gateway's requests as Stripe receives them: a stand-in at the configured API base
//! records each request and answers with Stripe's error shape.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use billing::config::Secret;
use billing::domain::{ProductKind, UserId};
use billing::stripe::live::LiveGateway;
use billing::stripe::{CheckoutRequest, GatewayError, StripeGateway};
use serde_json::json;
use url::Url;

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: String,
    idempotency_key: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Refuses every request (400, "No such price"), or fails it (500) when its form names
/// `price_broken`; remembers what it was sent.
async fn stand_in() -> (Url, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let answer = move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let broken = form.iter().any(|(_, v)| v == "price_broken");
            log.lock().unwrap().push(Seen {
                path: uri.path().to_owned(),
                authorization: header("authorization").unwrap_or_default(),
                idempotency_key: header("idempotency-key"),
                form,
            });
            let (status, message) = if broken {
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
            } else {
                (StatusCode::BAD_REQUEST, "No such price: 'price_gone'")
            };
            let error = json!({ "error": { "type": "invalid_request_error", "message": message } });
            (status, axum::Json(error))
        }
    };
    let router = Router::new()
        .route("/v1/checkout/sessions", post(answer.clone()))
        .route("/v1/billing_portal/sessions", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (Url::parse(&format!("http://{address}")).unwrap(), seen)
}

fn gateway(base: &Url) -> LiveGateway {
    LiveGateway::new(&Secret::new("sk_test_standin"), Some(base)).unwrap()
}

fn request(kind: ProductKind, price: &str) -> CheckoutRequest {
    CheckoutRequest {
        user: UserId::new(42).unwrap(),
        customer: "cus_standin".into(),
        price: price.into(),
        kind,
        success_url: "https://promptbloom.app/app/billing?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://promptbloom.app/app/billing?canceled=1".into(),
        idempotency_key: "promptbloom-checkout-42-abc".into(),
    }
}

#[tokio::test]
async fn a_pack_checkout_names_the_user_the_price_and_an_idempotency_key() {
    let (base, seen) = stand_in().await;
    let refused = gateway(&base)
        .create_checkout_session(&request(ProductKind::Pack, "price_gone"))
        .await;
    assert!(
        matches!(&refused, Err(GatewayError::Refused(why)) if why == "No such price: 'price_gone'"),
        "Stripe's 4xx is a final refusal, in Stripe's own words: {refused:?}"
    );

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "sent once: {seen:?}");
    let sent = &seen[0];
    assert_eq!(sent.path, "/v1/checkout/sessions");
    assert_eq!(sent.authorization, "Bearer sk_test_standin");
    assert_eq!(
        sent.idempotency_key.as_deref(),
        Some("promptbloom-checkout-42-abc")
    );
    for (field, value) in [
        ("mode", "payment"),
        ("customer", "cus_standin"),
        ("client_reference_id", "42"),
        ("metadata[user_id]", "42"),
        ("payment_intent_data[metadata][user_id]", "42"),
        ("line_items[0][price]", "price_gone"),
        ("line_items[0][quantity]", "1"),
        (
            "success_url",
            "https://promptbloom.app/app/billing?session_id={CHECKOUT_SESSION_ID}",
        ),
        (
            "cancel_url",
            "https://promptbloom.app/app/billing?canceled=1",
        ),
    ] {
        assert_eq!(sent.field(field), Some(value), "{field} in {:?}", sent.form);
    }
    assert!(
        sent.form.iter().all(|(k, _)| !k.contains("amount")),
        "amounts come from the price, never from us: {:?}",
        sent.form
    );
}

#[tokio::test]
async fn a_plan_checkout_is_a_subscription_that_carries_the_user() {
    let (base, seen) = stand_in().await;
    let _ = gateway(&base)
        .create_checkout_session(&request(ProductKind::Subscription, "price_gone"))
        .await;
    let sent = seen.lock().unwrap()[0].clone();
    assert_eq!(sent.field("mode"), Some("subscription"));
    assert_eq!(
        sent.field("subscription_data[metadata][user_id]"),
        Some("42")
    );
    assert_eq!(sent.field("payment_intent_data[metadata][user_id]"), None);
}

#[tokio::test]
async fn stripe_failing_is_unavailable_not_refused() {
    let (base, _) = stand_in().await;
    let failed = gateway(&base)
        .create_checkout_session(&request(ProductKind::Pack, "price_broken"))
        .await;
    assert!(
        matches!(failed, Err(GatewayError::Unavailable(_))),
        "{failed:?}"
    );
}

#[tokio::test]
async fn the_portal_opens_for_the_customer_and_returns_to_the_billing_page() {
    let (base, seen) = stand_in().await;
    let _ = gateway(&base)
        .create_portal_session(
            "cus_standin",
            &Url::parse("https://promptbloom.app/app/billing").unwrap(),
        )
        .await;
    let sent = seen.lock().unwrap()[0].clone();
    assert_eq!(sent.path, "/v1/billing_portal/sessions");
    assert_eq!(sent.field("customer"), Some("cus_standin"));
    assert_eq!(
        sent.field("return_url"),
        Some("https://promptbloom.app/app/billing")
    );
}
