//! The simulator's actions: the events each causes and what the gateway then answers.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::*;
use crate::clock::ManualClock;
use crate::domain::{Email, ProductKind, UserId};
use crate::stripe::gateway::{CheckoutRequest, StripeGateway};

const START: i64 = 1_800_000_000;

struct Account {
    sim: Simulator,
    clock: ManualClock,
    customer: String,
}

async fn account() -> Account {
    let clock = ManualClock::starting_at(Timestamp::from_millis(START * 1000));
    let sim = Simulator::new(
        Url::parse("http://127.0.0.1:3000").unwrap(),
        "whsec_test",
        [
            (ProductId::Small, "price_small".to_owned()),
            (ProductId::Medium, "price_medium".to_owned()),
            (ProductId::Starter, "price_starter".to_owned()),
        ],
    )
    .with_clock(Arc::new(clock.clone()));
    let customer = sim
        .create_customer(UserId::new(7).unwrap(), &Email::parse("a@b.co").unwrap())
        .await
        .unwrap();
    Account {
        sim,
        clock,
        customer,
    }
}

impl Account {
    async fn checkout(&self, price: &str, kind: ProductKind) -> String {
        self.sim
            .create_checkout_session(&CheckoutRequest {
                user: UserId::new(7).unwrap(),
                customer: self.customer.clone(),
                price: price.into(),
                kind,
                success_url: "http://x/ok?session_id={CHECKOUT_SESSION_ID}".into(),
                cancel_url: "http://x/no".into(),
                idempotency_key: format!("k-{price}-{}", rand::random::<u32>()),
            })
            .await
            .unwrap()
            .id
    }

    async fn portal(&self) -> String {
        let url = self
            .sim
            .create_portal_session(&self.customer, &Url::parse("http://x/").unwrap())
            .await
            .unwrap();
        url.path().rsplit('/').next().unwrap().to_owned()
    }
}

fn kinds(emitted: &Emitted) -> Vec<String> {
    emitted
        .now
        .iter()
        .map(|e| object(e)["type"].as_str().unwrap().to_owned())
        .collect()
}

fn object(event: &ListedEvent) -> Value {
    serde_json::from_str(&event.payload).unwrap()
}

#[tokio::test]
async fn a_card_payment_completes_the_session_and_charges_once() {
    let a = account().await;
    let session = a.checkout("price_medium", ProductKind::Pack).await;
    let (success, emitted) = a.sim.pay(&session, PayMethod::Card).unwrap();
    assert_eq!(success, format!("http://x/ok?session_id={session}"));
    assert_eq!(kinds(&emitted), ["checkout.session.completed"]);
    let completed = object(&emitted.now[0]);
    assert_eq!(completed["created"], START);
    assert_eq!(completed["data"]["object"]["payment_status"], "paid");
    assert_eq!(completed["data"]["object"]["amount_total"], 4000);
    assert!(completed["id"].as_str().unwrap().starts_with("evt_sim"));
    assert_eq!(
        a.sim.pay(&session, PayMethod::Card).unwrap_err(),
        SimError::Refused("this checkout session is no longer open")
    );
    let portal = a.portal().await;
    assert_eq!(a.sim.portal_view(&portal).unwrap().payments.len(), 1);
}

#[tokio::test]
async fn a_free_coupon_completes_without_a_charge() {
    let a = account().await;
    let session = a.checkout("price_small", ProductKind::Pack).await;
    let (_, emitted) = a.sim.pay(&session, PayMethod::FreeCoupon).unwrap();
    let completed = object(&emitted.now[0]);
    assert_eq!(
        completed["data"]["object"]["payment_status"],
        "no_payment_required"
    );
    assert_eq!(completed["data"]["object"]["amount_total"], 0);
    let portal = a.portal().await;
    assert!(a.sim.portal_view(&portal).unwrap().payments.is_empty());
}

#[tokio::test]
async fn a_subscription_starts_incomplete_and_its_first_invoice_is_paid() {
    let a = account().await;
    let session = a.checkout("price_starter", ProductKind::Subscription).await;
    let (_, emitted) = a.sim.pay(&session, PayMethod::Card).unwrap();
    assert_eq!(
        kinds(&emitted),
        [
            "customer.subscription.created",
            "invoice.paid",
            "invoice.payment_succeeded",
            "customer.subscription.updated",
            "checkout.session.completed",
        ]
    );
    let created = object(&emitted.now[0]);
    assert_eq!(created["data"]["object"]["status"], "incomplete");
    let updated = object(&emitted.now[3]);
    assert_eq!(updated["data"]["object"]["status"], "active");
    let invoice = &object(&emitted.now[1])["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_create");
    assert_eq!(invoice["amount_paid"], 3500);
    assert_eq!(
        invoice["lines"]["data"][0]["pricing"]["price_details"]["price"],
        "price_starter"
    );
    assert_eq!(
        invoice["parent"]["subscription_details"]["metadata"]["user_id"],
        "7"
    );
    // The session's invoice has a payment: the one the app can trace a refund to.
    let portal = a.portal().await;
    let view = a.sim.portal_view(&portal).unwrap();
    let pi = a
        .sim
        .charge_refunds(&view.payments[0].charge)
        .await
        .unwrap()
        .payment_intent
        .unwrap();
    assert_eq!(
        a.sim
            .invoice_of_payment_intent(&pi)
            .await
            .unwrap()
            .as_deref(),
        invoice["id"].as_str()
    );
}

#[tokio::test]
async fn a_quantity_change_is_prorated_on_the_next_invoice() {
    let a = account().await;
    let session = a.checkout("price_starter", ProductKind::Subscription).await;
    a.sim.pay(&session, PayMethod::Card).unwrap();
    let portal = a.portal().await;
    let sub = a.sim.portal_view(&portal).unwrap().subscriptions[0]
        .id
        .clone();
    a.clock.advance(Duration::from_secs(PERIOD_SECS as u64 / 2));
    let changed = a.sim.set_quantity(&portal, &sub, 2).unwrap();
    assert_eq!(kinds(&changed), ["customer.subscription.updated"]);
    let renewal = a.sim.renew(&portal, &sub).unwrap();
    let invoice = &object(&renewal.now[0])["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_cycle");
    let lines = invoice["lines"]["data"].as_array().unwrap();
    let summary: Vec<(i64, i64, bool)> = lines
        .iter()
        .map(|l| {
            let parent = &l["parent"];
            let proration = parent["invoice_item_details"]["proration"]
                .as_bool()
                .or(parent["subscription_item_details"]["proration"].as_bool())
                .unwrap();
            (
                l["quantity"].as_i64().unwrap(),
                l["amount"].as_i64().unwrap(),
                proration,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(1, -1750, true), (2, 3500, true), (2, 7000, false)]
    );
    assert_eq!(invoice["amount_paid"], 8750);

    // An endpoint on an API version from before 2025 gets the old shape of the same thing.
    let legacy = account().await;
    let legacy = Account {
        sim: legacy.sim.with_shape(ApiShape::Before2025),
        ..legacy
    };
    let session = legacy
        .checkout("price_starter", ProductKind::Subscription)
        .await;
    let (_, emitted) = legacy.sim.pay(&session, PayMethod::Card).unwrap();
    let event = object(&emitted.now[1]);
    assert_eq!(event["api_version"], "2024-06-20");
    let invoice = &event["data"]["object"];
    assert!(
        invoice["subscription"]
            .as_str()
            .unwrap()
            .starts_with("sub_")
    );
    assert_eq!(invoice["lines"]["data"][0]["price"]["id"], "price_starter");
    assert_eq!(invoice["lines"]["data"][0]["proration"], false);
    assert!(invoice.get("parent").is_none());
}

#[tokio::test]
async fn a_refund_can_fail_and_the_charge_is_whole_again() {
    let a = account().await;
    let session = a.checkout("price_medium", ProductKind::Pack).await;
    a.sim.pay(&session, PayMethod::Card).unwrap();
    let portal = a.portal().await;
    let charge = a.sim.portal_view(&portal).unwrap().payments[0]
        .charge
        .clone();
    let refunded = a.sim.refund(&portal, &charge, 1_000).unwrap();
    assert_eq!(kinds(&refunded), ["charge.refunded", "refund.created"]);
    assert_eq!(
        object(&refunded.now[0])["data"]["object"]["amount_refunded"],
        1000
    );
    let refund = a.sim.portal_view(&portal).unwrap().payments[0].refunds[0]
        .id
        .clone();

    let failed = a.sim.fail_refund(&portal, &refund).unwrap();
    assert_eq!(
        kinds(&failed),
        ["charge.refund.updated", "refund.updated", "refund.failed"]
    );
    assert_eq!(object(&failed.now[2])["data"]["object"]["status"], "failed");
    let state = a.sim.charge_refunds(&charge).await.unwrap();
    assert_eq!(state.amount, 4000);
    assert_eq!(state.refunds[0].status, RefundStatus::Failed);
    assert_eq!(
        a.sim.portal_view(&portal).unwrap().payments[0]
            .refunded
            .minor(),
        0
    );
    assert!(a.sim.fail_refund(&portal, &refund).is_err(), "once");
}

#[tokio::test]
async fn an_inquiry_escalates_to_a_chargeback_and_can_be_lost() {
    let a = account().await;
    let session = a.checkout("price_medium", ProductKind::Pack).await;
    a.sim.pay(&session, PayMethod::Card).unwrap();
    let portal = a.portal().await;
    let charge = a.sim.portal_view(&portal).unwrap().payments[0]
        .charge
        .clone();
    a.sim.refund(&portal, &charge, 1_000).unwrap();

    let inquiry = a.sim.inquire(&portal, &charge).unwrap();
    assert_eq!(kinds(&inquiry), ["charge.dispute.created"]);
    let opened = &object(&inquiry.now[0])["data"]["object"];
    assert_eq!(opened["status"], "warning_needs_response");
    assert_eq!(opened["amount"], 4000, "banks dispute the whole payment");
    let dispute = opened["id"].as_str().unwrap().to_owned();

    let lost = a.sim.close_dispute(&portal, &dispute, false).unwrap();
    assert_eq!(
        kinds(&lost),
        [
            "charge.dispute.updated",
            "charge.dispute.funds_withdrawn",
            "charge.dispute.closed",
            "charge.dispute.funds_reinstated"
        ],
        "lost, but the refunded part comes back"
    );
    assert_eq!(object(&lost.now[3])["data"]["object"]["status"], "lost");
    assert_eq!(object(&lost.now[2])["data"]["object"]["status"], "lost");
    assert!(
        a.sim.refund(&portal, &charge, 100).is_err(),
        "a lost charge is not refundable"
    );

    // A chargeback won gives the money back, and says so twice.
    let session = a.checkout("price_small", ProductKind::Pack).await;
    a.sim.pay(&session, PayMethod::Card).unwrap();
    let charge = a.sim.portal_view(&portal).unwrap().payments[1]
        .charge
        .clone();
    let opened = a.sim.dispute(&portal, &charge).unwrap();
    assert_eq!(
        kinds(&opened),
        ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    );
    let dispute = object(&opened.now[0])["data"]["object"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let won = a.sim.close_dispute(&portal, &dispute, true).unwrap();
    assert_eq!(
        kinds(&won),
        ["charge.dispute.closed", "charge.dispute.funds_reinstated"]
    );
}

#[tokio::test]
async fn a_dashboard_subscription_carries_none_of_the_apps_metadata() {
    let a = account().await;
    let portal = a.portal().await;
    let emitted = a.sim.subscribe_in_dashboard(&portal).unwrap();
    assert_eq!(
        kinds(&emitted),
        [
            "customer.subscription.created",
            "invoice.paid",
            "invoice.payment_succeeded"
        ]
    );
    let created = object(&emitted.now[0]);
    assert_eq!(created["data"]["object"]["metadata"], serde_json::json!({}));
    assert_eq!(created["data"]["object"]["customer"], a.customer.as_str());
    assert_eq!(a.sim.portal_view(&portal).unwrap().subscriptions.len(), 1);
    assert_eq!(
        a.sim.subscribe_in_dashboard("bps_nobody").unwrap_err(),
        SimError::NotFound
    );
}

#[tokio::test]
async fn events_are_listed_from_a_time_on_and_ids_look_like_stripes() {
    let a = account().await;
    let first = a.checkout("price_small", ProductKind::Pack).await;
    a.sim.pay(&first, PayMethod::Card).unwrap();
    a.clock.advance(Duration::from_secs(60));
    let second = a.checkout("price_small", ProductKind::Pack).await;
    a.sim.pay(&second, PayMethod::Card).unwrap();
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let listed = a
        .sim
        .events_since(Timestamp::from_millis((START + 30) * 1000), &|n| {
            seen.store(n, std::sync::atomic::Ordering::SeqCst)
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(seen.into_inner(), 1);
    for id in [&first, &second, &listed[0].id, &a.customer] {
        let (prefix, rest) = id.split_once('_').unwrap();
        assert!(
            !prefix.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_refused_action_changes_nothing() {
    let a = account().await;
    let session = a.checkout("price_medium", ProductKind::Pack).await;
    a.sim.pay(&session, PayMethod::Card).unwrap();
    let portal = a.portal().await;
    let charge = a.sim.portal_view(&portal).unwrap().payments[0]
        .charge
        .clone();
    a.sim.refund(&portal, &charge, 1_000).unwrap();
    let refund = a.sim.portal_view(&portal).unwrap().payments[0].refunds[0]
        .id
        .clone();
    // Another customer's portal may not fail this refund, and trying leaves it as it was.
    let stranger = a
        .sim
        .create_portal_session("cus_other", &Url::parse("http://x/").unwrap())
        .await
        .unwrap();
    let stranger = stranger.path().rsplit('/').next().unwrap();
    assert_eq!(
        a.sim.fail_refund(stranger, &refund).unwrap_err(),
        SimError::NotFound
    );
    let view = a.sim.portal_view(&portal).unwrap();
    assert_eq!(view.payments[0].refunds[0].status, RefundStatus::Succeeded);
    assert!(a.sim.fail_refund(&portal, &refund).is_ok());
}

/// What the API stand-in answers must be what async-stripe itself parses (every field it
/// requires, of the types it requires), or the live gateway would fail against Stripe too.
fn parses<T: miniserde::Deserialize>(answer: &ApiAnswer) -> T {
    assert_eq!(answer.status, 200, "{}", answer.body);
    miniserde::json::from_str(&answer.body.to_string())
        .unwrap_or_else(|_| panic!("async-stripe cannot read {}", answer.body))
}

#[tokio::test]
async fn the_api_answers_as_stripe_does_and_async_stripe_reads_it() {
    let a = account().await;
    let pack = a.checkout("price_medium", ProductKind::Pack).await;
    a.sim.pay(&pack, PayMethod::Card).unwrap();
    let session: stripe_shared::CheckoutSession =
        parses(&a.sim.api_get(&format!("/v1/checkout/sessions/{pack}"), &[]));
    assert_eq!(session.id.as_str(), pack);
    assert_eq!(session.payment_status.as_str(), "paid");
    assert_eq!(session.client_reference_id.as_deref(), Some("7"));
    assert_eq!(session.amount_total, Some(4000));

    let limit = [("limit".to_owned(), "100".to_owned())];
    let items: stripe_types::List<stripe_shared::CheckoutSessionItem> = parses(
        &a.sim
            .api_get(&format!("/v1/checkout/sessions/{pack}/line_items"), &limit),
    );
    assert_eq!(items.data.len(), 1);
    let price = items.data[0].price.as_ref().unwrap();
    assert_eq!(price.id.as_str(), "price_medium");
    assert_eq!(items.data[0].quantity, Some(1));

    // A subscription's payment is found through Stripe's invoice payments.
    let plan = a.checkout("price_starter", ProductKind::Subscription).await;
    let (_, emitted) = a.sim.pay(&plan, PayMethod::Card).unwrap();
    let invoice = object(&emitted.now[1])["data"]["object"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let portal = a.portal().await;
    let charge = a.sim.portal_view(&portal).unwrap().payments[1]
        .charge
        .clone();
    let pi = a
        .sim
        .charge_refunds(&charge)
        .await
        .unwrap()
        .payment_intent
        .unwrap();
    let query = [
        ("payment[type]".to_owned(), "payment_intent".to_owned()),
        ("payment[payment_intent]".to_owned(), pi),
        ("limit".to_owned(), "1".to_owned()),
    ];
    let payments: stripe_types::List<stripe_shared::InvoicePayment> =
        parses(&a.sim.api_get("/v1/invoice_payments", &query));
    assert_eq!(payments.data.len(), 1);
    assert_eq!(
        payments.data[0].invoice.id().as_ref().map(|i| i.as_str()),
        Some(invoice.as_str())
    );

    let price: stripe_shared::Price = parses(&a.sim.api_get("/v1/prices/price_small", &[]));
    assert_eq!(price.unit_amount, Some(1000));

    // Stripe's refusals: a parameter it does not know, an object that does not exist.
    let unknown = a.sim.api_get(
        "/v1/events",
        &[("0[0]".to_owned(), "created%5Bgte%5D".to_owned())],
    );
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.body["error"]["message"],
        "Received unknown parameter: 0[0]"
    );
    let missing = a.sim.api_get("/v1/charges/ch_nope", &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "resource_missing");
    assert_eq!(a.sim.api_get("/v1/customers/../../x", &[]).status, 404);
}
