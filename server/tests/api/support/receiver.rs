//! A product's backend receiving the outgoing webhooks: a real HTTP server on a free port that
//! checks each request with the Standard Webhooks reference library (as a receiver would),
//! answers as the test tells it (fail a few times first, or never answer at all), and keeps
//! what it got.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use billing::config::Secret;
use serde_json::Value;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`: the same on every attempt of one event.
    pub id: String,
    pub kind: String,
    pub body: Value,
    /// Whether the signature and its timestamp checked out.
    pub verified: bool,
}

#[derive(Clone)]
struct Shared {
    secret: Arc<Secret>,
    got: Arc<Mutex<Vec<Received>>>,
    /// What the next requests are answered, in turn; then 204.
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
    /// Never answer: hold every request open.
    hangs: bool,
}

pub struct Receiver {
    pub url: String,
    pub secret: Secret,
    shared: Shared,
}

impl Receiver {
    /// A receiver that accepts everything (204).
    pub async fn start() -> Self {
        Self::answering(&[]).await
    }

    /// A receiver that answers `first` to its first requests, in turn, then 204.
    pub async fn answering(first: &[u16]) -> Self {
        Self::spawn(first, false).await
    }

    /// An endpoint that takes the connection and never answers.
    pub async fn hanging() -> Self {
        Self::spawn(&[], true).await
    }

    async fn spawn(first: &[u16], hangs: bool) -> Self {
        let secret = billing::outbox::new_endpoint_secret();
        let shared = Shared {
            secret: Arc::new(secret.clone()),
            got: Arc::default(),
            answers: Arc::new(Mutex::new(
                first
                    .iter()
                    .map(|s| StatusCode::from_u16(*s).expect("a status"))
                    .collect(),
            )),
            hangs,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/hooks", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            secret,
            shared,
        }
    }

    /// Everything received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verifier = standardwebhooks::Webhook::new(shared.secret.expose()).expect("a secret");
    let verified = verifier.verify(&body, &headers).is_ok();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.got.lock().unwrap().push(Received {
        id: headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        kind: json["type"].as_str().unwrap_or_default().to_owned(),
        body: json,
        verified,
    });
    if shared.hangs {
        std::future::pending::<()>().await;
    }
    let answer = shared.answers.lock().unwrap().pop_front();
    answer.unwrap_or(StatusCode::NO_CONTENT)
}
