//! Auto top-up, end to end on the simulated Stripe: a user chooses a mark, a pack and a cap,
//! saves a card in a setup-mode Checkout, and a spend that takes what is available under the
//! mark buys the pack at once, credited once; a declined card or a bank asking for the
//! cardholder pauses it and tells the user (the page, an email) until the card is updated; the
//! month's cap holds.

use serde_json::{Value, json};

use billing::domain::Source;
use billing::testing::paid_purchase;

use crate::support::mail::Letter;
use crate::support::wait::eventually;
use crate::support::{Answer, Browser, MailServer, TestApp, spawn_app, spawn_app_with};

const CHOOSE: &str = "/api/billing/auto-topup/choose";

async fn consume(app: &TestApp, key: &str, user: i64, tokens: i64, request: &str) {
    let body = json!({ "user": user, "tokens": tokens, "reason": "Chat" });
    let answer = app.service(key).consume(request, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

async fn state(browser: &Browser) -> Value {
    let answer = browser.get("/api/billing/auto-topup").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()
}

/// The user chooses auto top-up: under 500 tokens, the small pack, at most 5,000 a month.
async fn choose(browser: &Browser) -> Answer {
    browser
        .post_json(
            CHOOSE,
            json!({ "below": 500, "pack": "small", "monthly_cap": 5000 }),
        )
        .await
}

/// The user opens a setup-mode Checkout and saves `card` (one of the simulator's test cards)
/// on Stripe's page, which sends them back to the billing page (its webhook on its way);
/// answers the session.
async fn saved_at_stripe(app: &TestApp, browser: &Browser, card: &str) -> String {
    let started = browser
        .post_json("/api/billing/auto-topup/card", json!({}))
        .await;
    assert_eq!(started.status, 200, "{}", started.text);
    let session = started.json()["session_id"].as_str().unwrap().to_owned();
    let url = started.json()["url"].as_str().unwrap().to_owned();
    assert!(
        url.contains(&format!("/simulated-stripe/setup/{session}")),
        "{url}"
    );
    let page = app
        .browser()
        .get(&format!("/simulated-stripe/setup/{session}"))
        .await;
    assert!(page.text.contains("Save card •••• 4242"), "{}", page.text);
    let saved = app
        .browser()
        .post_form(
            &format!("/simulated-stripe/setup/{session}/save"),
            &[("card", card)],
        )
        .await;
    assert!(
        saved
            .header("location")
            .is_some_and(|to| to.ends_with(&format!("/app/billing?card_setup={session}"))),
        "{saved:?}"
    );
    session
}

/// The user saves `card` in a setup-mode Checkout, and comes back to the billing page, which
/// reports it.
pub(crate) async fn save_card(app: &TestApp, browser: &Browser, card: &str) -> Value {
    let session = saved_at_stripe(app, browser, card).await;
    let back = browser
        .post_json(
            "/api/billing/auto-topup/card-saved",
            json!({ "session_id": session }),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.text);
    back.json()
}

async fn turned_on(app: &TestApp, below: i64, cap: i64, card: &str) -> (Browser, i64) {
    let ada = app.user("ada").await;
    let id = ada.me().id;
    paid_purchase(&*app.store, id, 1000, "first").await;
    let chosen = ada
        .post_json(
            CHOOSE,
            json!({ "below": below, "pack": "small", "monthly_cap": cap }),
        )
        .await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    assert_eq!(chosen.json()["auto"]["state"]["state"], "card_needed");
    let saved = save_card(app, &ada, card).await;
    assert_eq!(saved["auto"]["state"]["state"], "on", "{saved}");
    assert!(
        saved["auto"]["card"].get("payment_method").is_none(),
        "Stripe's card id stays on the server: {saved}"
    );
    assert_eq!(
        saved["auto"]["card"]["label"],
        format!("Visa •••• {}", last4(card))
    );
    (ada, id.get())
}

fn last4(card: &str) -> &'static str {
    match card {
        "succeeds" => "4242",
        "declines" => "0002",
        _ => "3184",
    }
}

async fn letters(mail: Option<&MailServer>, n: usize) -> Vec<Letter> {
    let Some(mail) = mail else {
        return Vec::new();
    };
    eventually(&format!("{n} letters"), async || mail.letters().len() >= n).await;
    mail.letters()
}

#[tokio::test]
async fn a_spend_under_the_mark_buys_the_pack_at_once_and_credits_it_once() {
    let mail = MailServer::get();
    let settings = mail.as_ref().map(MailServer::settings).unwrap_or_default();
    let vars: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with(&vars).await;
    let (ada, id) = turned_on(&app, 500, 5000, "succeeds").await;
    let key = app.api_key().await;

    consume(&app, &key, id, 600, "r1").await; // 400: under the mark
    eventually("the top-up credited", async || {
        app.balance(ada.me()).await == 1400
    })
    .await;
    let view = state(&ada).await;
    assert_eq!(view["recent"][0]["state"]["state"], "succeeded", "{view}");
    assert_eq!(view["recent"][0]["tokens"], 1000);
    let ledger = app
        .store
        .ledger_page(ada.me().id, &billing::store::LedgerQuery::first(10))
        .await
        .unwrap();
    let credit = &ledger.entries[0];
    assert_eq!(
        (credit.source, credit.delta.get()),
        (Source::AutoTopUp, 1000)
    );
    assert_eq!(app.store.audit_balances().await.unwrap(), vec![]);

    // Still over the mark after it: nothing more; the next crossing buys again.
    consume(&app, &key, id, 500, "r2").await; // 900
    consume(&app, &key, id, 500, "r3").await; // 400
    eventually("the second top-up credited", async || {
        app.balance(ada.me()).await == 1400
    })
    .await;
    assert_eq!(state(&ada).await["recent"].as_array().unwrap().len(), 2);
    let got = letters(mail.as_ref(), 2).await;
    if mail.is_some() {
        assert!(
            got.iter()
                .all(|l| l.subject == "Auto top-up: 1,000 tokens added"),
            "{got:#?}"
        );
    }
}

#[tokio::test]
async fn a_declined_card_pauses_auto_top_up_until_the_card_is_updated() {
    let mail = MailServer::get();
    let settings = mail.as_ref().map(MailServer::settings).unwrap_or_default();
    let vars: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with(&vars).await;
    let (ada, id) = turned_on(&app, 500, 5000, "declines").await;
    let key = app.api_key().await;

    consume(&app, &key, id, 600, "r1").await;
    eventually("auto top-up paused", async || {
        state(&ada).await["auto"]["state"] == json!({ "state": "paused", "reason": "declined" })
    })
    .await;
    assert_eq!(app.balance(ada.me()).await, 400, "nothing credited");
    let view = state(&ada).await;
    assert_eq!(
        view["recent"][0]["state"],
        json!({ "state": "failed", "reason": "declined" })
    );
    if mail.is_some() {
        let got = letters(mail.as_ref(), 1).await;
        assert_eq!(got[0].subject, "Auto top-up paused: your card was declined");
        assert!(got[0].text.contains("/app/billing"), "{}", got[0].text);
    }
    // Paused: a further spend buys nothing.
    consume(&app, &key, id, 100, "r2").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.balance(ada.me()).await, 300);

    // The card updated: on again, and under the mark, so the pack is bought at once.
    let fixed = save_card(&app, &ada, "succeeds").await;
    assert_eq!(fixed["auto"]["state"]["state"], "on", "{fixed}");
    eventually("the top-up after the fix credited", async || {
        app.balance(ada.me()).await == 1300
    })
    .await;
    assert_eq!(app.store.audit_balances().await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_bank_asking_for_the_cardholder_pauses_auto_top_up_too() {
    let app = spawn_app().await;
    let (ada, id) = turned_on(&app, 500, 5000, "needs_authentication").await;
    let key = app.api_key().await;
    consume(&app, &key, id, 600, "r1").await;
    eventually("auto top-up paused", async || {
        state(&ada).await["auto"]["state"]
            == json!({ "state": "paused", "reason": "authentication_required" })
    })
    .await;
    assert_eq!(app.balance(ada.me()).await, 400);
}

#[tokio::test]
async fn the_monthly_cap_holds_and_leaves_auto_top_up_on() {
    let app = spawn_app().await;
    let (ada, id) = turned_on(&app, 500, 1000, "succeeds").await; // one small pack a month
    let key = app.api_key().await;
    consume(&app, &key, id, 600, "r1").await;
    eventually("the first top-up credited", async || {
        app.balance(ada.me()).await == 1400
    })
    .await;
    consume(&app, &key, id, 1000, "r2").await; // 400: under again
    eventually("the second top-up capped", async || {
        state(&ada).await["recent"][0]["state"]["state"] == "capped"
    })
    .await;
    assert_eq!(
        app.balance(ada.me()).await,
        400,
        "nothing charged past the cap"
    );
    assert_eq!(state(&ada).await["auto"]["state"]["state"], "on");
}

#[tokio::test]
async fn bad_choices_and_other_users_setups_change_nothing() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    for bad in [
        json!({ "below": 0, "pack": "small", "monthly_cap": 5000 }),
        json!({ "below": 500, "pack": "starter", "monthly_cap": 5000 }),
        json!({ "below": 500, "pack": "huge", "monthly_cap": 5000 }),
        json!({ "below": 500, "pack": "large", "monthly_cap": 5000 }),
        json!({ "below": 500, "pack": "small", "monthly_cap": 5000, "price": "price_cheap" }),
        // A small pack (1,000) would leave the balance under a mark of 1,000.
        json!({ "below": 1000, "pack": "small", "monthly_cap": 5000 }),
    ] {
        let answer = ada.post_json(CHOOSE, bad.clone()).await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.text);
    }
    assert_eq!(state(&ada).await["auto"], Value::Null);
    assert_eq!(
        app.browser()
            .post_json(
                CHOOSE,
                json!({ "below": 5, "pack": "small", "monthly_cap": 5000 })
            )
            .await
            .status,
        401
    );
    let card_first = ada
        .post_json("/api/billing/auto-topup/card", json!({}))
        .await;
    assert_eq!(card_first.status, 409, "{}", card_first.text);

    // Bob's completed setup is not Ada's to use.
    assert_eq!(choose(&bob).await.status, 200);
    choose(&ada).await;
    let session = saved_at_stripe(&app, &bob, "succeeds").await;
    let stolen = ada
        .post_json(
            "/api/billing/auto-topup/card-saved",
            json!({ "session_id": session }),
        )
        .await;
    assert_eq!(stolen.status, 404, "{}", stolen.text);
    assert_eq!(state(&ada).await["auto"]["card"], Value::Null);
    let crafted = ada
        .post_json(
            "/api/billing/auto-topup/card-saved",
            json!({ "session_id": "../../v1/customers" }),
        )
        .await;
    assert_eq!(crafted.status, 404, "{}", crafted.text);
}

#[tokio::test]
async fn stripes_webhook_for_a_top_up_credits_nothing_twice_and_nothing_for_another_user() {
    use billing::testing::StripeEvent;
    let app = spawn_app().await;
    let (ada, id) = turned_on(&app, 500, 5000, "succeeds").await;
    let key = app.api_key().await;
    consume(&app, &key, id, 600, "r1").await;
    eventually("the top-up credited", async || {
        app.balance(ada.me()).await == 1400
    })
    .await;
    let topup = state(&ada).await["recent"][0]["id"].as_i64().unwrap();
    let ledger = app
        .store
        .ledger_page(ada.me().id, &billing::store::LedgerQuery::first(1))
        .await
        .unwrap();
    let paid_as = ledger.entries[0]
        .stripe_object_id
        .clone()
        .expect("the credit names its payment");

    // Stripe's webhook for the same payment, after the server credited it: nothing twice.
    let answer = app
        .stripe_sends(&StripeEvent::topup_paid(ada.me().id, topup, &paid_as))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(app.balance(ada.me()).await, 1400);

    // A payment naming Ada's top-up but another user is refused, and credits nobody.
    let bob = app.user("bob").await;
    let forged = StripeEvent::topup_paid(bob.me().id, topup, "pi_3QhT0pLkdIwHu7ix0zZ9")
        .id("evt_forged_topup");
    let answer = app.stripe_sends(&forged).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(app.balance(bob.me()).await, 0);
    assert_eq!(app.balance(ada.me()).await, 1400);
    assert_eq!(app.store.audit_balances().await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_refund_of_a_top_up_takes_its_tokens_back() {
    let app = spawn_app().await;
    let (ada, id) = turned_on(&app, 500, 5000, "succeeds").await;
    let key = app.api_key().await;
    consume(&app, &key, id, 600, "r1").await;
    eventually("the top-up credited", async || {
        app.balance(ada.me()).await == 1400
    })
    .await;

    let portal = ada
        .post_json("/api/billing/create-portal-session", json!({}))
        .await;
    let portal_url = portal.json()["url"].as_str().unwrap().to_owned();
    let page = ada.get(&portal_url).await.text;
    let charge = page
        .split("/payments/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    assert!(page.contains("Auto top-up"), "{page}");
    let refunded = ada
        .post_form(
            &format!("{portal_url}/payments/{charge}/refund"),
            &[("amount", "10.00")],
        )
        .await;
    assert_eq!(refunded.status, 303, "{}", refunded.text);
    eventually("the refund reversed", async || {
        app.balance(ada.me()).await == 400
    })
    .await;
    // Under the mark again, by the refund: the card whose payment was just given back is not
    // charged again.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.balance(ada.me()).await, 400);
    assert_eq!(state(&ada).await["recent"].as_array().unwrap().len(), 1);
    assert_eq!(app.store.audit_balances().await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_card_saved_by_a_user_who_never_comes_back_is_saved_by_stripes_webhook() {
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    let chosen = choose(&ada).await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    // Saved on Stripe's page; the browser is closed before it is back on the billing page.
    let session = saved_at_stripe(&app, &ada, "succeeds").await;
    eventually("the card saved by the webhook", async || {
        state(&ada).await["auto"]["state"]["state"] == "on"
    })
    .await;
    assert_eq!(state(&ada).await["auto"]["card"]["label"], "Visa •••• 4242");
    // Back at last: the same card again changes nothing.
    let back = ada
        .post_json(
            "/api/billing/auto-topup/card-saved",
            json!({ "session_id": session }),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(back.json()["auto"]["state"]["state"], "on");
}

#[tokio::test]
async fn a_late_webhook_of_an_older_card_setup_never_replaces_the_newer_card() {
    use billing::testing::StripeEvent;
    let app = spawn_app().await;
    let ada = app.user("ada").await;
    choose(&ada).await;
    // The first card, saved on Stripe's page (its webhook saves it).
    let older = saved_at_stripe(&app, &ada, "declines").await;
    eventually("the first card saved", async || {
        state(&ada).await["auto"]["card"]["label"] == "Visa •••• 0002"
    })
    .await;
    // A second later (Stripe's sessions are timed in seconds), a better card.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = save_card(&app, &ada, "succeeds").await;
    assert_eq!(newer["auto"]["card"]["label"], "Visa •••• 4242");

    // Stripe retries the first session's webhook now.
    let customer = app.store.customer_of(ada.me().id).await.unwrap().unwrap();
    let late = StripeEvent::parse(
        &json!({
            "id": "evt_late_setup",
            "object": "event",
            "api_version": "2026-09-30.endive",
            "created": billing::domain::Timestamp::now().as_millis() / 1000,
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": "checkout.session.completed",
            "data": { "object": {
                "id": older,
                "object": "checkout.session",
                "mode": "setup",
                "status": "complete",
                "customer": customer,
                "client_reference_id": ada.me().id.to_string(),
                "metadata": { "user_id": ada.me().id.to_string() },
            }},
        })
        .to_string(),
    );
    let answer = app.stripe_sends(&late).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        state(&ada).await["auto"]["card"]["label"],
        "Visa •••• 4242",
        "the newer card stays"
    );
}
