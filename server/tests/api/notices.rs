//! Email notices, end to end: a change that takes what is available under the user's threshold
//! (once per crossing), and tokens about to expire, reach a real SMTP server as letters to the
//! user; a mail server that is away gets the letter once it is back, once.

use std::time::Duration;

use billing::clock::Clock;
use billing::domain::{GrantTerms, IdempotencyKey, Reason, Source, Timestamp, Tokens};
use billing::ledger::Posting;
use billing::testing::paid_purchase;
use serde_json::json;

use crate::support::mail::Letter;
use crate::support::wait::eventually;
use crate::support::{MailServer, TestApp, spawn_app_with};

const LOW_BALANCE: &str = "/api/billing/notices/low-balance";

fn vars<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn consume(app: &TestApp, key: &str, user: i64, tokens: i64, request: &str) {
    let body = json!({ "user": user, "tokens": tokens, "reason": "Chat" });
    let answer = app.service(key).consume(request, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

async fn letters_are(mail: &MailServer, n: usize) -> Vec<Letter> {
    eventually(&format!("{n} letters at the mail server"), async || {
        mail.letters().len() >= n
    })
    .await;
    let letters = mail.letters();
    assert_eq!(letters.len(), n, "{letters:#?}");
    letters
}

#[tokio::test]
async fn going_under_the_threshold_is_one_letter_per_crossing() {
    let Some(mail) = MailServer::get() else {
        return;
    };
    going_under_the_threshold_is_one_letter_per_crossing_with(&mail, &[]).await;
}

#[tokio::test]
async fn going_under_the_threshold_is_one_letter_per_crossing_on_postgres() {
    let Some(mail) = MailServer::get() else {
        return;
    };
    let Some(url) = billing::testing::empty_postgres_url().await else {
        return;
    };
    going_under_the_threshold_is_one_letter_per_crossing_with(&mail, &[("DATABASE_URL", &url)])
        .await;
}

async fn going_under_the_threshold_is_one_letter_per_crossing_with(
    mail: &MailServer,
    extra: &[(&'static str, &str)],
) {
    let settings = mail.settings();
    let app = spawn_app_with(&[&vars(&settings)[..], extra].concat()).await;
    let browser = app.user("ada").await;
    let ada = browser.me().clone();
    paid_purchase(&*app.store, ada.id, 1000, "first").await;
    let answer = browser
        .post_json(LOW_BALANCE, json!({ "below": 500 }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let key = app.api_key().await;

    consume(&app, &key, ada.id.get(), 400, "r1").await; // 600 left
    consume(&app, &key, ada.id.get(), 200, "r2").await; // 400: under
    consume(&app, &key, ada.id.get(), 100, "r3").await; // 300: still under
    let letters = letters_are(mail, 1).await;
    let letter = &letters[0];
    assert_eq!(letter.to, "ada@example.com");
    assert_eq!(letter.subject, "Your balance is low: 400 tokens left");
    assert!(
        letter
            .text
            .contains("You asked to hear when fewer than 500 tokens are left."),
        "{}",
        letter.text
    );
    assert!(
        letter
            .text
            .contains(&format!("{}/app/billing", app.address)),
        "the letter links to the billing page: {}",
        letter.text
    );

    // Bought back over the mark, then under it again: a second crossing, a second letter.
    paid_purchase(&*app.store, ada.id, 1000, "second").await; // 1,300
    consume(&app, &key, ada.id.get(), 900, "r4").await; // 400
    let letters = letters_are(mail, 2).await;
    assert_ne!(letters[0].message_id, letters[1].message_id);
    // Nothing more arrives: each crossing was one letter.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mail.letters().len(), 2);
}

#[tokio::test]
async fn tokens_about_to_expire_are_mailed_a_week_and_a_day_before() {
    let Some(mail) = MailServer::get() else {
        return;
    };
    let settings = mail.settings();
    let app = spawn_app_with(&vars(&settings)).await;
    let ada = app.user_with_tokens("ada@example.com", 0).await;
    const DAY: Duration = Duration::from_secs(86_400);
    let ends = Timestamp::from_millis(app.clock.now().as_millis() + 10 * DAY.as_millis() as i64);
    let pack = Posting::credit(
        ada.id,
        Tokens::new(1200).unwrap(),
        Source::StripeCheckout,
        Reason::parse("Pack").unwrap(),
        IdempotencyKey::scoped("stripe:checkout", "pack").unwrap(),
    )
    .expiring(GrantTerms::expiring_at(ends));
    app.store.post(pack).await.unwrap();

    app.clock.advance(DAY * 5); // five days left
    // The minute sweep's job, run now instead of waiting for its minute.
    assert_eq!(app.store.warn_expiring_grants(100).await.unwrap(), 1);
    let letters = letters_are(&mail, 1).await;
    assert_eq!(letters[0].subject, "1,200 tokens expire in 5 days");
    app.clock.advance(DAY * 4 + Duration::from_secs(60)); // under a day left
    assert_eq!(app.store.warn_expiring_grants(100).await.unwrap(), 1);
    let letters = letters_are(&mail, 2).await;
    assert_eq!(letters[1].subject, "1,200 tokens expire tomorrow");
    assert!(letters[1].text.contains("(UTC)"), "{}", letters[1].text);
}

#[tokio::test]
async fn a_letter_waits_while_the_mail_server_is_away_and_goes_once_it_is_back() {
    let Some(mail) = MailServer::get() else {
        return;
    };
    let relay = mail.relay().await;
    relay.set_up(false);
    let settings = mail.settings_through(relay.port);
    let app = spawn_app_with(&vars(&settings)).await;
    let ada = app.user_with_tokens("ada@example.com", 1000).await;
    app.store
        .set_low_balance_threshold(ada.id, Some(Tokens::new(500).unwrap()))
        .await
        .unwrap();
    let key = app.api_key().await;
    consume(&app, &key, ada.id.get(), 600, "r1").await;

    eventually("a failed attempt", async || {
        let notices = app.store.notices_of(ada.id, 10).await.unwrap();
        notices.len() == 1 && notices[0].attempts == 1
    })
    .await;
    let notice = &app.store.notices_of(ada.id, 10).await.unwrap()[0];
    assert!(notice.last_error.is_some(), "{notice:?}");
    relay.set_up(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(mail.letters().is_empty(), "not before its retry is due");

    app.clock.advance(Duration::from_secs(31));
    let letters = letters_are(&mail, 1).await;
    assert_eq!(letters[0].subject, "Your balance is low: 400 tokens left");
    eventually("the notice recorded as delivered", async || {
        let notices = app.store.notices_of(ada.id, 10).await.unwrap();
        notices[0].state == billing::outbox::DeliveryState::Delivered
    })
    .await;
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mail.letters().len(), 1, "sent once");
}

#[tokio::test]
async fn the_mark_is_set_read_and_turned_off_by_its_owner_only_and_bad_ones_change_nothing() {
    let app = crate::support::spawn_app().await;
    let ada = app.user("ada").await;
    let notices = || async { ada.get("/api/billing/notices").await.json() };
    assert_eq!(notices().await, json!({ "low_balance_below": null }));

    let answer = ada.post_json(LOW_BALANCE, json!({ "below": 1500 })).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json(), json!({ "low_balance_below": 1500 }));
    for bad in [
        json!({ "below": 0 }),
        json!({ "below": -5 }),
        json!({ "below": 1_000_000_001_i64 }),
        json!({ "below": "lots" }),
        json!({ "below": 10, "user": 1 }),
    ] {
        let answer = ada.post_json(LOW_BALANCE, bad.clone()).await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.text);
        assert_eq!(answer.json()["error"], "invalid", "{bad}: {}", answer.text);
    }
    assert_eq!(notices().await, json!({ "low_balance_below": 1500 }));
    let nobody = app.browser();
    assert_eq!(
        nobody
            .post_json(LOW_BALANCE, json!({ "below": 5 }))
            .await
            .status,
        401
    );
    assert_eq!(nobody.get("/api/billing/notices").await.status, 401);

    // Without JavaScript: a form post, sent back to the page.
    let form_post = |form: &'static [(&'static str, &'static str)]| {
        ada.post(LOW_BALANCE)
            .header("accept", "text/html")
            .form(form)
    };
    let answer = form_post(&[("below", "800")]).await;
    assert_eq!(answer.status, 302, "{}", answer.text);
    assert_eq!(answer.header("location"), Some("/app/billing"));
    assert_eq!(notices().await, json!({ "low_balance_below": 800 }));
    let answer = form_post(&[]).await;
    assert_eq!(answer.status, 302, "{}", answer.text);
    assert_eq!(
        notices().await,
        json!({ "low_balance_below": null }),
        "turned off"
    );
}
