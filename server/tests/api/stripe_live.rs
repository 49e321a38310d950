//! The live gateway's requests as Stripe receives them: the shared stand-in at the configured
//! API base records each request and answers as Stripe would.

use billing::config::Secret;
use billing::domain::{Currency, Money, ProductId, ProductKind, UserId};
use billing::stripe::live::LiveGateway;
use billing::stripe::status::{CheckoutMode, PaymentStatus, SessionStatus};
use billing::stripe::{CheckoutRequest, GatewayError, LineItem, SessionSnapshot, StripeGateway};
use serde_json::json;
use url::Url;

use crate::support::{Answer, Browser, StripeApi, TestApp, spawn_app_on};

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
    let stripe = StripeApi::start().await;
    let refused = gateway(&stripe.url)
        .create_checkout_session(&request(ProductKind::Pack, "price_gone"))
        .await;
    assert!(
        matches!(&refused, Err(GatewayError::Refused(why)) if why == "No such price: 'price_gone'"),
        "Stripe's 4xx is a final refusal, in Stripe's own words: {refused:?}"
    );

    let seen = stripe.requests();
    assert_eq!(seen.len(), 1, "sent once: {seen:?}");
    let sent = &seen[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
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
        assert_eq!(sent.param(field), Some(value), "{field} in {:?}", sent.form);
    }
    assert!(
        sent.form.iter().all(|(k, _)| !k.contains("amount")),
        "amounts come from the price, never from us: {:?}",
        sent.form
    );
}

#[tokio::test]
async fn a_plan_checkout_is_a_subscription_that_carries_the_user() {
    let stripe = StripeApi::start().await;
    let _ = gateway(&stripe.url)
        .create_checkout_session(&request(ProductKind::Subscription, "price_gone"))
        .await;
    let sent = stripe.requests()[0].clone();
    assert_eq!(sent.param("mode"), Some("subscription"));
    assert_eq!(
        sent.param("subscription_data[metadata][user_id]"),
        Some("42")
    );
    assert_eq!(sent.param("payment_intent_data[metadata][user_id]"), None);
}

#[tokio::test]
async fn stripe_failing_is_unavailable_not_refused() {
    let stripe = StripeApi::start().await;
    let failed = gateway(&stripe.url)
        .create_checkout_session(&request(ProductKind::Pack, "price_broken"))
        .await;
    assert!(
        matches!(failed, Err(GatewayError::Unavailable(_))),
        "{failed:?}"
    );
}

#[tokio::test]
async fn the_portal_opens_for_the_customer_and_returns_to_the_billing_page() {
    let stripe = StripeApi::start().await;
    let _ = gateway(&stripe.url)
        .create_portal_session(
            "cus_standin",
            &Url::parse("https://promptbloom.app/app/billing").unwrap(),
        )
        .await;
    let sent = stripe.requests()[0].clone();
    assert_eq!(sent.path, "/v1/billing_portal/sessions");
    assert_eq!(sent.param("customer"), Some("cus_standin"));
    assert_eq!(
        sent.param("return_url"),
        Some("https://promptbloom.app/app/billing")
    );
}

#[tokio::test]
async fn a_charges_refunds_are_read_whole_with_their_status() {
    let stripe = StripeApi::start().await;
    stripe.add_charge(serde_json::json!({
        "id": "ch_1", "object": "charge", "amount": 4000, "amount_refunded": 1000,
        "currency": "usd", "payment_intent": "pi_1", "status": "succeeded", "refunded": false,
    }));
    for (n, status) in (0..105).map(|n| (n, if n == 3 { "failed" } else { "succeeded" })) {
        stripe.add_refund(serde_json::json!({
            "id": format!("re_{n:03}"), "object": "refund", "amount": 10, "charge": "ch_1",
            "payment_intent": "pi_1", "currency": "usd", "status": status,
        }));
    }
    let state = gateway(&stripe.url).charge_refunds("ch_1").await.unwrap();
    assert_eq!(state.amount, 4000);
    assert_eq!(state.payment_intent.as_deref(), Some("pi_1"));
    assert_eq!(state.refunds.len(), 105, "both pages");
    let failed: Vec<_> = state
        .refunds
        .iter()
        .filter(|r| r.status == billing::stripe::RefundStatus::Failed)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(failed, ["re_003"]);
    let requests = stripe.requests();
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/charges/ch_1", "/v1/refunds", "/v1/refunds"]);
    assert_eq!(requests[1].param("charge"), Some("ch_1"));
    assert_eq!(requests[1].param("limit"), Some("100"));
    assert_eq!(requests[2].param("starting_after"), Some("re_005"));

    let missing = gateway(&stripe.url).charge_refunds("ch_missing").await;
    assert!(
        matches!(&missing, Err(GatewayError::Refused(why)) if why.contains("No such charge")),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_subscription_is_read_again_from_stripe() {
    let stripe = StripeApi::start().await;
    stripe.add_subscription(serde_json::json!({
        "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active",
        "cancel_at_period_end": false, "cancel_at": null, "canceled_at": null,
        "metadata": { "user_id": "42" },
        "items": { "object": "list", "data": [{
            "id": "si_1", "object": "subscription_item", "quantity": 1,
            "current_period_start": 1_800_000_000, "current_period_end": 1_802_592_000,
            "price": { "id": "price_starter", "object": "price" }
        }]}
    }));
    let now = gateway(&stripe.url).subscription("sub_1").await.unwrap();
    assert_eq!(now.status, "active");
    assert_eq!(now.customer, "cus_1");
    assert_eq!(now.user, Some(UserId::new(42).unwrap()));
    assert_eq!(now.price.as_deref(), Some("price_starter"));
    assert_eq!(now.current_period_end, Some(1_802_592_000));
    assert_eq!(stripe.requests()[0].path, "/v1/subscriptions/sub_1");
}

/// Ids a caller might craft to reach another Stripe path, add a query, or just be odd.
const CRAFTED_IDS: &[&str] = &[
    "../../customers/cus_known",
    "cs_test_a1/../../../customers/cus_known",
    "cs_test_a1?expand[]=customer",
    "cs_test_a1#top",
    "%2e%2e%2f%2e%2e%2fcustomers%2fcus_known",
    "cs_test_a1%2f..%2f..%2fcustomers%2fcus_known",
    "cs_test a1",
    "cs_test_\u{e9}t\u{e9}",
    "cs_test_a1\n",
    "cs_",
    "cus_known",
    "",
];

fn long_id() -> String {
    format!("cs_test_{}", "a".repeat(300))
}

#[tokio::test]
async fn crafted_ids_never_reach_stripe_from_the_gateway() {
    let stripe = StripeApi::start().await;
    let gateway = gateway(&stripe.url);
    let return_url = Url::parse("https://promptbloom.app/app/billing").unwrap();
    let long = long_id();
    for id in CRAFTED_IDS.iter().copied().chain([long.as_str()]) {
        // The same shapes for other kinds of object; an id of the wrong kind for each.
        let customer = match id {
            "cus_known" => "cs_test_a1".to_owned(),
            other => other.replace("cs_test_", "cus_"),
        };
        let price = id.replace("cs_test_", "price_");
        let intent = id.replace("cs_test_", "pi_");
        let charge = id.replace("cs_test_", "ch_");
        let subscription = id.replace("cs_test_", "sub_");
        let invoice = id.replace("cs_test_", "in_");
        for (call, result) in [
            ("checkout_session", gateway.checkout_session(id).await.err()),
            (
                "checkout_line_items",
                gateway.checkout_line_items(id).await.err(),
            ),
            ("price", gateway.price(&price).await.err()),
            (
                "charge_refunds",
                gateway.charge_refunds(&charge).await.err(),
            ),
            (
                "subscription",
                gateway.subscription(&subscription).await.err(),
            ),
            (
                "create_portal_session",
                gateway
                    .create_portal_session(&customer, &return_url)
                    .await
                    .err(),
            ),
            (
                "invoice_of_payment_intent",
                gateway.invoice_of_payment_intent(&intent).await.err(),
            ),
            ("invoice", gateway.invoice(&invoice).await.err()),
            ("invoice_lines", gateway.invoice_lines(&invoice).await.err()),
            (
                "live_subscriptions",
                gateway.live_subscriptions(&customer).await.err(),
            ),
        ] {
            assert!(
                matches!(result, Some(GatewayError::Refused(_))),
                "{call}({id:?}) is refused before it is sent: {result:?}"
            );
        }
    }
    assert_eq!(stripe.requests().len(), 0, "{:#?}", stripe.requests());
}

/// An app on live Stripe (the stand-in), with a user signed in.
async fn live_app(stripe: &StripeApi) -> (TestApp, Browser) {
    let app = spawn_app_on(stripe, &[]).await;
    // Someone else's customer: what a crafted path would have read.
    stripe.add_customer(serde_json::json!({
        "id": "cus_known", "object": "customer", "email": "someone.else@example.com"
    }));
    let ada = app.user("ada").await;
    (app, ada)
}

async fn checkout_status(browser: &Browser, id: &str) -> Answer {
    browser
        .get("/api/billing/checkout-status")
        .query(&[("session_id", id)])
        .await
}

#[tokio::test]
async fn a_crafted_session_id_on_the_success_page_never_reaches_stripe() {
    let stripe = StripeApi::start().await;
    let (_app, ada) = live_app(&stripe).await;
    let long = long_id();
    for id in CRAFTED_IDS.iter().copied().chain([long.as_str()]) {
        let response = checkout_status(&ada, id).await;
        assert_eq!(response.status, 422, "{id:?}");
        assert_eq!(
            response.json()["message"],
            "That is not a Checkout session id.",
            "{id:?}"
        );
    }
    assert_eq!(stripe.requests().len(), 0, "{:#?}", stripe.requests());

    // A well-formed id is asked about, at its own path and nothing more; an unknown one is
    // "not yours", the same answer as a session of someone else's.
    let response = checkout_status(&ada, "cs_test_a1B2c3").await;
    assert_eq!(response.status, 404);
    let seen = stripe.requests();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].path, "/v1/checkout/sessions/cs_test_a1B2c3");
    assert!(seen[0].query.is_empty(), "{:?}", seen[0].query);
}

#[tokio::test]
async fn the_success_page_check_is_rate_limited_per_user() {
    let stripe = StripeApi::start().await;
    let (app, ada) = live_app(&stripe).await;
    for _ in 0..30 {
        assert_eq!(checkout_status(&ada, "cs_test_missing").await.status, 404);
    }
    let limited = checkout_status(&ada, "cs_test_missing").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("2"));
    // Crafted ids count too: guessing ids is what the limit is for.
    assert_eq!(checkout_status(&ada, "../x").await.status, 429);
    assert_eq!(stripe.requests().len(), 30);

    // Another user has a limit of their own.
    let bob = app.user("bob").await;
    assert_eq!(checkout_status(&bob, "cs_test_missing").await.status, 404);
}

#[tokio::test]
async fn a_paid_session_its_line_items_a_price_and_a_payments_invoice_are_read_as_stripe_answers_them()
 {
    let stripe = StripeApi::start().await;
    let user = UserId::new(42).unwrap();
    let pack = stripe
        .paid_checkout(user, "cus_standin", ProductId::Medium)
        .await;
    let gateway = gateway(&stripe.url);

    let session = gateway.checkout_session(&pack.session).await.unwrap();
    assert_eq!(
        session,
        SessionSnapshot {
            id: pack.session.clone(),
            user: Some(user),
            customer: Some("cus_standin".into()),
            mode: CheckoutMode::Payment,
            payment_status: PaymentStatus::Paid,
            status: Some(SessionStatus::Complete),
            payment_intent: pack.payment_intent.clone(),
            amount_total: Some(usd(4_000)),
        }
    );
    let items = gateway.checkout_line_items(&pack.session).await.unwrap();
    assert_eq!(
        items,
        [LineItem {
            price: "price_live_medium".into(),
            quantity: 1,
            amount_total: Some(usd(4_000)),
        }]
    );
    assert_eq!(
        gateway.price("price_live_large").await.unwrap(),
        Some(usd(9_000))
    );

    // A plan is paid through its first invoice: Stripe's invoice payments lead from the
    // payment to it. A pack's payment paid no invoice.
    let plan = stripe
        .paid_checkout(user, "cus_standin", ProductId::Starter)
        .await;
    let invoice = plan.event.json()["data"]["object"]["invoice"]
        .as_str()
        .unwrap()
        .to_owned();
    let payments = stripe.payments("cus_standin").await;
    let [_, plan_payment] = &payments[..] else {
        panic!("the pack's payment, then the plan's");
    };
    assert_eq!(
        gateway
            .invoice_of_payment_intent(&plan_payment.payment_intent)
            .await
            .unwrap(),
        Some(invoice)
    );
    let pack_intent = pack.payment_intent.as_deref().unwrap();
    assert_eq!(
        gateway
            .invoice_of_payment_intent(pack_intent)
            .await
            .unwrap(),
        None
    );

    // Each asked at its own path, with the parameters Stripe reads.
    let seen = stripe.requests();
    let paths: Vec<_> = seen.iter().map(|r| r.path.as_str()).collect();
    let session_path = format!("/v1/checkout/sessions/{}", pack.session);
    let items_path = format!("{session_path}/line_items");
    assert_eq!(
        paths,
        [
            session_path.as_str(),
            items_path.as_str(),
            "/v1/prices/price_live_large",
            "/v1/invoice_payments",
            "/v1/invoice_payments",
        ]
    );
    assert!(seen[0].query.is_empty(), "{:?}", seen[0].query);
    assert_eq!(seen[1].query, [("limit".to_owned(), "100".to_owned())]);
    for (request, intent) in [
        (&seen[3], plan_payment.payment_intent.as_str()),
        (&seen[4], pack_intent),
    ] {
        assert_eq!(request.param("payment[type]"), Some("payment_intent"));
        assert_eq!(request.param("payment[payment_intent]"), Some(intent));
        assert_eq!(request.param("limit"), Some("1"));
    }
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("usd").unwrap()).unwrap()
}

/// The success page's answer for `session`.
async fn progress(browser: &Browser, session: &str) -> serde_json::Value {
    let answer = checkout_status(browser, session).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()
}

#[tokio::test]
async fn live_tokens_come_from_the_line_items_whichever_of_the_page_and_the_webhook_comes_first() {
    let stripe = StripeApi::start().await;
    let (app, ada) = live_app(&stripe).await;
    let me = ada.me().id;

    // Back on the success page first: it reads the session and its line items from Stripe.
    let medium = stripe.paid_checkout(me, "cus_ada", ProductId::Medium).await;
    let status = progress(&ada, &medium.session).await;
    assert_eq!(
        status,
        json!({ "Credited": { "tokens": 5_000, "balance": 5_000 } })
    );
    // Then the webhook, whose metadata claims a bigger pack: the line items say what was paid
    // for, and the page credited it already.
    let claims_large = medium
        .event
        .clone()
        .set("/data/object/metadata/product", "large");
    let webhook = app.stripe_sends(&claims_large).await;
    assert_eq!(webhook.status, 200, "{}", webhook.text);
    assert_eq!(webhook.json()["outcome"], "already_applied");
    assert_eq!(app.balance(ada.me()).await, 5_000);

    // The webhook first this time: it credits from the line items; the page finds it done.
    let small = stripe.paid_checkout(me, "cus_ada", ProductId::Small).await;
    let claims_large = small
        .event
        .clone()
        .set("/data/object/metadata/product", "large");
    let webhook = app.stripe_sends(&claims_large).await;
    assert_eq!(webhook.status, 200, "{}", webhook.text);
    assert_eq!(webhook.json()["outcome"], "credited");
    assert_eq!(webhook.json()["detail"], "1000");
    let status = progress(&ada, &small.session).await;
    assert_eq!(
        status,
        json!({ "Credited": { "tokens": 1_000, "balance": 6_000 } })
    );
    let entries = app
        .store
        .ledger_page(me, &billing::store::LedgerQuery::first(10))
        .await
        .unwrap()
        .entries;
    let credits: Vec<i64> = entries.iter().map(|e| e.delta.get()).collect();
    assert_eq!(credits, [1_000, 5_000], "one entry a purchase");
    assert!(app.store.audit_balances().await.unwrap().is_empty());

    // Every read of line items asked Stripe for the whole list.
    for session in [&medium.session, &small.session] {
        let reads = stripe.requests_to(&format!("/v1/checkout/sessions/{session}/line_items"));
        assert_eq!(reads.len(), 2, "the page and the webhook: {reads:#?}");
        assert!(reads.iter().all(|r| r.param("limit") == Some("100")));
    }
}

#[tokio::test]
async fn a_refund_of_a_plan_payment_is_traced_to_its_invoice_through_stripes_invoice_payments() {
    let stripe = StripeApi::start().await;
    let (app, ada) = live_app(&stripe).await;
    let plan = stripe
        .paid_checkout(ada.me().id, "cus_ada", ProductId::Starter)
        .await;
    for event in &plan.events {
        let answer = app.stripe_sends(event).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_eq!(app.balance(ada.me()).await, 6_000, "the first invoice");
    assert_eq!(
        app.store.customer_of(ada.me().id).await.unwrap().as_deref(),
        Some("cus_ada")
    );

    // Half of the $35.00 is refunded from Stripe's dashboard.
    let payment = stripe.payments("cus_ada").await.remove(0);
    let refunded = stripe
        .account()
        .refund(&payment.portal, &payment.charge, 1_750)
        .unwrap();
    stripe.forget_requests();
    for event in &refunded.now {
        let answer = app.webhooks().send_payload(&event.payload).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_eq!(app.balance(ada.me()).await, 3_000, "half the tokens back");
    let asked = stripe.requests_to("/v1/invoice_payments");
    assert!(!asked.is_empty(), "{:#?}", stripe.requests());
    for request in &asked {
        assert_eq!(request.param("payment[type]"), Some("payment_intent"));
        assert_eq!(
            request.param("payment[payment_intent]"),
            Some(payment.payment_intent.as_str())
        );
    }
    assert!(app.store.inbox_unfinished().await.unwrap().is_empty());
    assert!(app.store.audit_balances().await.unwrap().is_empty());
}

/// Auto top-up's two calls on live Stripe: the card a setup-mode Checkout saved (read with its
/// setup intent and payment method expanded), and a payment with it while the customer is
/// away, sent as Stripe reads it and answered as Stripe answers (200 paid; 402 with the card's
/// error and the payment intent), each idempotency key answered as the first time.
#[tokio::test]
async fn a_saved_card_is_read_and_charged_off_session_as_stripe_answers() {
    use billing::domain::PauseReason;
    use billing::stripe::simulated::TestCard;
    use billing::stripe::{CardSetupRequest, OffSessionOutcome, OffSessionPayment};

    let stripe = StripeApi::start().await;
    let sim = stripe.account();
    let user = UserId::new(42).unwrap();
    let email = billing::domain::Email::parse("ada@example.com").unwrap();
    let customer = sim.create_customer(user, &email).await.unwrap();
    let live = gateway(&stripe.url);
    let usd = Currency::parse("usd").unwrap();

    let mut cards = Vec::new();
    for (n, card) in TestCard::ALL.into_iter().enumerate() {
        let setup = sim
            .create_card_setup_session(&CardSetupRequest {
                user,
                customer: customer.clone(),
                currency: usd,
                success_url: "https://promptbloom.app/app/billing?card_setup={CHECKOUT_SESSION_ID}"
                    .into(),
                cancel_url: "https://promptbloom.app/app/billing".into(),
                idempotency_key: format!("setup-{n}"),
            })
            .await
            .unwrap();
        assert_eq!(
            live.saved_card(&setup.id).await.unwrap(),
            None,
            "not saved yet"
        );
        sim.save_card(&setup.id, card).unwrap();
        let saved = live
            .saved_card(&setup.id)
            .await
            .unwrap()
            .expect("a saved card");
        assert_eq!(saved.user, Some(user));
        assert_eq!(saved.customer.as_deref(), Some(customer.as_str()));
        assert_eq!(saved.card.label, format!("Visa •••• {}", card.last4()));
        assert!(saved.card.payment_method.starts_with("pm_"), "{saved:?}");
        let asked = stripe.requests_to(&format!("/v1/checkout/sessions/{}", setup.id));
        assert!(
            asked.iter().all(|seen| seen.query
                == [(
                    "expand[]".to_owned(),
                    "setup_intent.payment_method".to_owned()
                )]),
            "{asked:?}"
        );
        cards.push(saved.card.payment_method);
    }

    let pay = |payment_method: &str, topup: i64| OffSessionPayment {
        user,
        customer: customer.clone(),
        payment_method: payment_method.to_owned(),
        amount: Money::new(1000, usd).unwrap(),
        topup,
        idempotency_key: format!("topup-{topup}"),
    };
    let paid = live.charge_saved_card(&pay(&cards[0], 7)).await.unwrap();
    let OffSessionOutcome::Succeeded { payment_intent } = &paid else {
        panic!("{paid:?}");
    };
    let sent = stripe.requests_to("/v1/payment_intents");
    let form = &sent.last().unwrap().form;
    for (name, value) in [
        ("amount", "1000"),
        ("currency", "usd"),
        ("customer", customer.as_str()),
        ("payment_method", cards[0].as_str()),
        ("confirm", "true"),
        ("off_session", "true"),
        // Nobody is there to follow a redirect.
        ("automatic_payment_methods[enabled]", "true"),
        ("automatic_payment_methods[allow_redirects]", "never"),
        ("metadata[topup_id]", "7"),
        ("metadata[user_id]", "42"),
    ] {
        assert!(
            form.iter().any(|(k, v)| k == name && v == value),
            "{name}={value} in {form:?}"
        );
    }
    assert_eq!(
        sent.last().unwrap().idempotency_key.as_deref(),
        Some("topup-7")
    );
    assert_eq!(
        live.charge_saved_card(&pay(&cards[0], 7)).await.unwrap(),
        paid,
        "the same key, the same payment"
    );
    assert_eq!(
        sim.portal_view(&{
            let portal = sim
                .create_portal_session(&customer, &Url::parse("http://x/").unwrap())
                .await
                .unwrap();
            portal.path().rsplit('/').next().unwrap().to_owned()
        })
        .unwrap()
        .payments
        .len(),
        1,
        "charged once: {payment_intent}"
    );

    for (card, reason) in [
        (&cards[1], PauseReason::Declined),
        (&cards[2], PauseReason::AuthenticationRequired),
    ] {
        match live
            .charge_saved_card(&pay(card, 8 + reason as i64))
            .await
            .unwrap()
        {
            OffSessionOutcome::Failed {
                payment_intent,
                reason: said,
                message,
            } => {
                assert_eq!(said, reason, "{message}");
                assert!(payment_intent.is_some_and(|pi| pi.starts_with("pi_")));
            }
            other => panic!("{other:?}"),
        }
    }
    let refused = live.charge_saved_card(&pay("pm_someone_elses", 20)).await;
    assert!(
        matches!(refused, Err(GatewayError::Refused(_))),
        "{refused:?}"
    );
}
