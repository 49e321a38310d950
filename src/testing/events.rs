//! Stripe events for tests, built from the recorded fixtures (`src/stripe/fixtures`) with just
//! the fields a test cares about changed, so that every event a test sends is Stripe's shape.

use serde_json::Value;

use crate::domain::{Timestamp, UserId};

/// The simulated catalog's plan price, which a server started with no settings sells.
pub const PLAN_PRICE: &str = "price_sim_subscription_starter";

/// An event to send, from a fixture.
#[derive(Debug, Clone)]
pub struct StripeEvent(Value);

fn fixture(text: &str) -> StripeEvent {
    StripeEvent(serde_json::from_str(text).expect("fixtures are JSON"))
}

impl StripeEvent {
    /// A paid first invoice of the plan (the simulated catalog's price), for `user`, now.
    pub fn invoice_paid(user: UserId) -> Self {
        fixture(include_str!("../stripe/fixtures/invoice_paid.json"))
            .user_in("/data/object/parent/subscription_details/metadata", user)
            .set(
                "/data/object/lines/data/0/pricing/price_details/price",
                PLAN_PRICE,
            )
            .period_from_now()
            .created_now()
    }

    /// A paid pack Checkout session for `user`, now.
    pub fn checkout_completed(user: UserId) -> Self {
        fixture(include_str!(
            "../stripe/fixtures/checkout_session_completed.json"
        ))
        .set("/data/object/client_reference_id", user.to_string())
        .user_in("/data/object/metadata", user)
        .created_now()
    }

    /// A plan's Checkout session for `user`, completed and paid, now (its customer is
    /// `cus_RY2s9xN1mT0aQe`, the fixtures' customer).
    pub fn checkout_completed_subscription(user: UserId) -> Self {
        fixture(include_str!(
            "../stripe/fixtures/checkout_session_completed_subscription.json"
        ))
        .set("/data/object/client_reference_id", user.to_string())
        .user_in("/data/object/metadata", user)
        .created_now()
    }

    /// A chargeback opened on the fixtures' pack payment (`pi_3QfJ8jLkdIwHu7ix0x9Y`, 40.00
    /// USD disputed in full), now.
    pub fn dispute_created() -> Self {
        fixture(include_str!(
            "../stripe/fixtures/charge_dispute_created.json"
        ))
        .created_now()
    }

    /// A payment auto top-up made, for `topup` of `user`, paid as `payment_intent`, now.
    pub fn topup_paid(user: UserId, topup: i64, payment_intent: &str) -> Self {
        fixture(include_str!(
            "../stripe/fixtures/payment_intent_succeeded.json"
        ))
        .set("/data/object/id", payment_intent)
        .set("/data/object/metadata/topup_id", topup.to_string())
        .user_in("/data/object/metadata", user)
        .created_now()
    }

    /// An event as Stripe delivered it (one the simulated Stripe made, say).
    pub fn parse(payload: &str) -> Self {
        StripeEvent(serde_json::from_str(payload).expect("an event is JSON"))
    }

    /// An event nobody acts on.
    pub fn customer_created() -> Self {
        fixture(include_str!("../stripe/fixtures/customer_created.json")).created_now()
    }

    pub fn id(self, id: &str) -> Self {
        self.set("/id", id)
    }

    /// The id of the event's object (the invoice, the session...).
    pub fn object_id(self, id: &str) -> Self {
        self.set("/data/object/id", id)
    }

    pub fn created(self, unix_seconds: i64) -> Self {
        self.set("/created", unix_seconds)
    }

    fn created_now(self) -> Self {
        self.created(Timestamp::now().as_millis().div_euclid(1000))
    }

    /// The invoice line's period: a month from now, as a first invoice's is. The fixture's
    /// own dates would pass, and its tokens expire as they are credited.
    fn period_from_now(self) -> Self {
        const MONTH_SECONDS: i64 = 30 * 24 * 60 * 60;
        let now = Timestamp::now().as_millis().div_euclid(1000);
        self.set("/data/object/lines/data/0/period/start", now)
            .set("/data/object/lines/data/0/period/end", now + MONTH_SECONDS)
    }

    fn user_in(self, metadata: &str, user: UserId) -> Self {
        self.set(&format!("{metadata}/user_id"), user.to_string())
    }

    /// Sets the field at a JSON pointer (`/data/object/billing_reason`), which must exist.
    pub fn set(mut self, pointer: &str, value: impl Into<Value>) -> Self {
        *self
            .0
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("the fixture has no {pointer}")) = value.into();
        self
    }

    /// Removes the field at a JSON pointer.
    pub fn without(mut self, pointer: &str) -> Self {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer to a field");
        if let Some(object) = self.0.pointer_mut(parent).and_then(Value::as_object_mut) {
            object.remove(key);
        }
        self
    }

    pub fn json(&self) -> &Value {
        &self.0
    }

    /// The event as JSON, for a stand-in of Stripe's API to list.
    pub fn into_json(self) -> Value {
        self.0
    }

    /// The body Stripe would send.
    pub fn payload(&self) -> String {
        self.0.to_string()
    }
}
