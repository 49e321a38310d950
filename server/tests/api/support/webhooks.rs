//! Stripe delivering webhooks to a server: signed with the server's secret, as Stripe signs.

use billing::domain::Timestamp;
use billing::stripe::signature;
use billing::testing::StripeEvent;

use super::requests::{Answer, Request};

/// Stripe's side of the webhook, for one server. Cheap to clone: many deliveries at once.
#[derive(Clone)]
pub struct Webhooks {
    url: String,
    secret: String,
    client: reqwest::Client,
}

/// Now, in seconds, as a `Stripe-Signature` dates itself.
pub fn now() -> i64 {
    Timestamp::now().as_millis().div_euclid(1000)
}

impl Webhooks {
    /// Deliveries to `base`'s webhook route, signed with `secret`.
    pub fn new(base: &str, secret: &str) -> Self {
        Self {
            url: format!("{}/api/webhooks/stripe", base.trim_end_matches('/')),
            secret: secret.to_owned(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("a client"),
        }
    }

    /// A `Stripe-Signature` header for `body`, signed `at` (seconds) with the server's secret.
    pub fn sign_at(&self, body: &str, at: i64) -> String {
        signature::sign(body.as_bytes(), &self.secret, at)
    }

    /// A `Stripe-Signature` header for `body`, signed now with the server's secret.
    pub fn sign(&self, body: &str) -> String {
        self.sign_at(body, now())
    }

    /// `event`, signed now.
    pub async fn send(&self, event: &StripeEvent) -> Answer {
        self.send_payload(&event.payload()).await
    }

    /// `event`, signed now; `None` when no answer came (the server is gone).
    pub async fn try_send(&self, event: &StripeEvent) -> Option<Answer> {
        let payload = event.payload();
        self.delivery(&payload, Some(&self.sign(&payload)))
            .try_send()
            .await
            .ok()
    }

    /// A body as it stands (not an event, say), signed now.
    pub async fn send_payload(&self, payload: &str) -> Answer {
        self.delivery(payload, Some(&self.sign(payload))).await
    }

    /// A delivery of `payload` with this `Stripe-Signature` header (or none): forged, stale...
    pub fn delivery(&self, payload: &str, signature: Option<&str>) -> Request {
        let request = Request::from(
            self.client
                .post(&self.url)
                .header("content-type", "application/json")
                .body(payload.to_owned()),
        );
        match signature {
            Some(signature) => request.header("stripe-signature", signature),
            None => request,
        }
    }
}
