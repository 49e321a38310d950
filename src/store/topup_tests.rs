//! Auto top-up as the store keeps it: a top-up starts in the transaction of the change that
//! takes what is available under the mark (none for a change rolled back, none while one is in
//! flight, none while auto top-up is not on), is claimed by one node, and settles as paid
//! (credited once, whichever path comes second), failed (auto top-up pauses until a card is
//! saved again), capped or canceled, each with its event.

use std::sync::Arc;
use std::time::Duration;

use super::credit_tests::{credit, spend, user};
use super::tests::{reason, tokens};
use super::*;
use crate::clock::{Clock, ManualClock};
use crate::domain::{
    AutoTopUpState, GrantTerms, PauseReason, ProductId, SavedCard, Source, TopUpChoice, TopUpState,
};
use crate::ledger::{Posting, StripeRefs};
use crate::outbox::EventKind;
use crate::testing::clocked_contract;

clocked_contract!(
    a_debit_under_the_mark_starts_one_top_up_which_credits_once,
    a_failed_top_up_pauses_until_a_card_is_saved_and_off_cancels_what_is_in_flight,
);

const LEASE: Duration = Duration::from_secs(60);

fn choice(below: i64, cap: i64) -> TopUpChoice {
    TopUpChoice::new(tokens(below), ProductId::Small, tokens(cap)).unwrap()
}

fn card(pm: &str) -> SavedCard {
    SavedCard {
        payment_method: pm.to_owned(),
        label: "Visa •••• 4242".to_owned(),
    }
}

async fn pending(store: &SqlStore, user: UserId) -> usize {
    store
        .topups_of(user, 100)
        .await
        .unwrap()
        .iter()
        .filter(|t| t.state == TopUpState::Pending)
        .count()
}

async fn kinds(store: &SqlStore, user: UserId) -> Vec<EventKind> {
    let mut kinds: Vec<EventKind> = store
        .notices_of(user, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.event.kind)
        .collect();
    kinds.reverse();
    kinds
}

fn topup_credit(user: UserId, n: i64, payment_intent: &str) -> Posting {
    Posting::credit(
        user,
        tokens(n),
        Source::AutoTopUp,
        reason("Auto top-up: Small pack"),
        IdempotencyKey::scoped("stripe:topup", payment_intent).unwrap(),
    )
    .with_stripe(StripeRefs {
        event_id: None,
        object_id: Some(payment_intent.to_owned()),
        payment_intent: Some(payment_intent.to_owned()),
    })
}

async fn a_debit_under_the_mark_starts_one_top_up_which_credits_once(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    let chosen = store
        .choose_auto_topup(ada, choice(500, 5000))
        .await
        .unwrap();
    assert_eq!(chosen.state, AutoTopUpState::CardNeeded);
    spend(&store, ada, 600, "c1").await.unwrap(); // 400: under, but no card yet
    assert_eq!(pending(&store, ada).await, 0);

    // The card saved: on, and under the mark already, so one starts now.
    let saved = store
        .save_topup_card(ada, &card("pm_1"), clock.now())
        .await
        .unwrap();
    assert_eq!(saved.state, AutoTopUpState::On);
    assert_eq!(saved.card, Some(card("pm_1")));
    assert_eq!(pending(&store, ada).await, 1);
    spend(&store, ada, 100, "c2").await.unwrap();
    assert_eq!(pending(&store, ada).await, 1, "one in flight at most");

    let due = store.claim_topups(clock.now(), 10, LEASE).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].user, due[0].pack), (ada, ProductId::Small));
    assert_eq!(due[0].card, Some(card("pm_1")));
    assert_eq!(due[0].monthly_cap, 5000);
    assert!(
        store
            .claim_topups(clock.now(), 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "claimed: another node leaves it alone"
    );

    let paid = store
        .credit_topup(
            topup_credit(ada, 1000, "pi_1"),
            due[0].id,
            "pi_1",
            tokens(1000),
        )
        .await
        .unwrap();
    assert!(!paid.replayed);
    let again = store
        .credit_topup(
            topup_credit(ada, 1000, "pi_1"),
            due[0].id,
            "pi_1",
            tokens(1000),
        )
        .await
        .unwrap();
    assert!(again.replayed, "credited once");
    assert_eq!(store.balance(ada).await.unwrap().get(), 1300);
    let (_, topup) = store.topup(due[0].id).await.unwrap().unwrap();
    assert_eq!(
        (topup.state, topup.tokens),
        (TopUpState::Succeeded, Some(1000))
    );
    let since = Timestamp::from_millis(clock.now().as_millis() - 1000);
    assert_eq!(store.topped_up_since(ada, since).await.unwrap(), 1000);
    assert_eq!(kinds(&store, ada).await, [EventKind::TopUpSucceeded]);
    let event = &store.notices_of(ada, 1).await.unwrap()[0].event;
    assert!(
        matches!(event.detail, crate::outbox::EventDetail::TopUp { entry: Some(e), tokens: Some(1000), .. } if e == paid.entry.id.get()),
        "{event:?}"
    );

    // A change that crosses but is rolled back starts nothing.
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("UPDATE token_balances SET balance = 10 WHERE user_id = $1")
        .bind(ada.get())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(pending(&store, ada).await, 0);
    spend(&store, ada, 900, "c3").await.unwrap(); // 400: under again
    assert_eq!(pending(&store, ada).await, 1);
    audited(&store).await;
}

async fn a_failed_top_up_pauses_until_a_card_is_saved_and_off_cancels_what_is_in_flight(
    store: Arc<SqlStore>,
    clock: ManualClock,
) {
    let ada = user(&store, "ada@example.com").await;
    credit(&store, ada, 1000, "pack", GrantTerms::NEVER).await;
    store
        .choose_auto_topup(ada, choice(500, 5000))
        .await
        .unwrap();
    store
        .save_topup_card(ada, &card("pm_1"), clock.now())
        .await
        .unwrap();
    spend(&store, ada, 600, "c1").await.unwrap();
    let due = store.claim_topups(clock.now(), 10, LEASE).await.unwrap();
    assert_eq!(due.len(), 1);

    let declined = Unpaid::Failed(PauseReason::Declined);
    assert!(
        store
            .settle_unpaid_topup(due[0].id, declined, Some("pi_1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .settle_unpaid_topup(due[0].id, declined, Some("pi_1"))
            .await
            .unwrap(),
        "settled once"
    );
    let paused = store.auto_topup(ada).await.unwrap().unwrap();
    assert_eq!(paused.state, AutoTopUpState::Paused(PauseReason::Declined));
    assert_eq!(kinds(&store, ada).await, [EventKind::TopUpFailed]);
    // Paused: more spending under the mark starts nothing; choosing again keeps it paused.
    spend(&store, ada, 100, "c2").await.unwrap();
    credit(&store, ada, 1000, "more", GrantTerms::NEVER).await;
    spend(&store, ada, 1000, "c3").await.unwrap();
    assert_eq!(pending(&store, ada).await, 0);
    let chosen = store
        .choose_auto_topup(ada, choice(600, 5000))
        .await
        .unwrap();
    assert_eq!(chosen.state, AutoTopUpState::Paused(PauseReason::Declined));

    // A card saved again: on, and under the mark, so a top-up starts at once.
    let fixed = store
        .save_topup_card(ada, &card("pm_2"), clock.now())
        .await
        .unwrap();
    assert_eq!(fixed.state, AutoTopUpState::On);
    assert_eq!(pending(&store, ada).await, 1);
    // Capped: nothing charged, auto top-up stays on.
    let due = store.claim_topups(clock.now(), 10, LEASE).await.unwrap();
    assert!(
        store
            .settle_unpaid_topup(due[0].id, Unpaid::Capped, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.auto_topup(ada).await.unwrap().unwrap().state,
        AutoTopUpState::On
    );

    // Off: what is in flight is canceled, and nothing starts; the card stays saved.
    credit(&store, ada, 1000, "again", GrantTerms::NEVER).await;
    spend(&store, ada, 1000, "c4").await.unwrap();
    assert_eq!(pending(&store, ada).await, 1);
    assert!(store.turn_off_auto_topup(ada).await.unwrap());
    assert_eq!(pending(&store, ada).await, 0);
    let off = store.auto_topup(ada).await.unwrap().unwrap();
    assert_eq!(
        (off.state, off.card),
        (AutoTopUpState::Off, Some(card("pm_2")))
    );
    let states: Vec<TopUpState> = store
        .topups_of(ada, 10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(
        states,
        [
            TopUpState::Canceled,
            TopUpState::Capped,
            TopUpState::Failed(PauseReason::Declined)
        ]
    );
    audited(&store).await;
}

async fn audited(store: &SqlStore) {
    assert_eq!(store.audit_balances().await.unwrap(), vec![]);
    assert_eq!(store.audit_credits().await.unwrap(), vec![]);
}
