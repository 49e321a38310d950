//! `CurrentBalance`: the signed-in user's tokens, kept current while the page is open.
//!
//! In the browser it listens to the server's `/api/tokens/stream` (server-sent events) and
//! reloads when the ledger changes. When the stream drops, the page says the server cannot be
//! reached and keeps the last balance, marked as not current; the stream is opened again, sooner
//! at first and less often the longer the server stays away, and everything reloads once it
//! answers.

use leptos::prelude::*;

use billing::domain::{Grant, group_thousands};

use super::{BillingLive, Connection, Load};
use crate::api::tokens::{BalanceView, token_balance};
use crate::components::local_time::LocalTime;

#[component]
pub fn CurrentBalance() -> impl IntoView {
    let live = BillingLive::expect();
    let balance = live.load(
        || (),
        move |_| async move {
            live.settled().await;
            token_balance().await
        },
    );
    let stale = move || live.connection.get() == Connection::Lost;
    // Runs once, in the browser only.
    Effect::new(move |_| follow_changes(live, balance));

    view! {
        <section class="card balance" aria-labelledby="balance-title">
            <h2 id="balance-title">"Your balance"</h2>
            // The live region stays in the page while its content is replaced, so screen
            // readers announce each new balance (a region inserted anew is often not read).
            <div role="status" aria-live="polite" aria-atomic="true" data-testid="balance-live">
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match balance.await {
                            Ok(view) => {
                                let negative = view.balance.is_negative();
                                view! {
                                    <p class="balance-stale" hidden=move || !stale()>
                                        "Last known balance, not current:"
                                    </p>
                                    <p
                                        class="balance-amount"
                                        class:negative=negative
                                        class:stale=stale
                                        data-testid="balance"
                                    >
                                        <span class="balance-number">{view.balance.grouped()}</span>
                                        " tokens"
                                        {(view.held > 0)
                                            .then(|| {
                                                view! {
                                                    ", "
                                                    <span data-testid="reserved">
                                                        {group_thousands(view.held)}
                                                    </span>
                                                    " reserved"
                                                }
                                            })}
                                    </p>
                                    {(view.held > 0)
                                        .then(|| {
                                            view! {
                                                <p class="hint">
                                                    "Reserved tokens are held for jobs still running; what they do not use comes back."
                                                </p>
                                            }
                                        })}
                                    {negative
                                        .then(|| {
                                            view! {
                                                <p class="hint">
                                                    "A refund or dispute took back tokens that were already spent. New purchases cover this first."
                                                </p>
                                            }
                                        })}
                                    <Grants grants=view.grants />
                                }
                                    .into_any()
                            }
                            Err(error) => {
                                view! { <p class="error" role="alert">{error.to_string()}</p> }
                                    .into_any()
                            }
                        }
                    })}
                </Transition>
            </div>
        </section>
    }
}

/// What is left of each purchase or grant, in the order tokens are spent: the soonest to
/// expire first.
#[component]
fn Grants(grants: Vec<Grant>) -> impl IntoView {
    (!grants.is_empty()).then(|| {
        view! {
            <div class="grants" data-testid="grants">
                <h3 id="grants-title">"What is left, spent soonest-expiring first"</h3>
                <ul aria-labelledby="grants-title">
                    {grants
                        .into_iter()
                        .map(|grant| {
                            let expires = match grant.expires_at {
                                Some(at) => view! { "expires " <LocalTime at /> }.into_any(),
                                None => "never expires".into_any(),
                            };
                            view! {
                                <li>
                                    <span class="grant-label">{grant.label}</span>
                                    <span class="grant-left num">
                                        {format!(
                                            "{} of {} left",
                                            group_thousands(grant.remaining),
                                            group_thousands(grant.tokens.get()),
                                        )}
                                    </span>
                                    <span class="grant-expiry muted">{expires}</span>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </div>
        }
    })
}

/// How soon the stream is opened again after it drops: at first, and at most; and how long it
/// must have stayed open for the next drop to count as a first one again.
#[cfg(feature = "hydrate")]
const REOPEN_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
#[cfg(feature = "hydrate")]
const REOPEN_MOST: std::time::Duration = std::time::Duration::from_secs(30);
#[cfg(feature = "hydrate")]
const STEADY_MS: f64 = 10_000.0;

/// Listens to the balance stream while the page is open, and alone says whether the server can
/// be reached (a load that got no answer only doubts it).
///
/// When the stream errs (the browser would retry by itself, but silently, and never after an
/// error status) or a load doubts it, it is closed and the server asked once for the balance: no
/// answer marks the connection lost; an answer (the stream was refused: too many tabs, logged
/// out) marks it open. Either way the stream is opened again after a wait that doubles each time
/// (1 s up to 30 s, each a random part of it, so that a server coming back is not met by every
/// page at once; back to 1 s after a stream that spoke for 10 s). Its first event after a loss,
/// or the server's answer, tells the parts to load again.
#[cfg(feature = "hydrate")]
fn follow_changes(live: BillingLive, balance: Load<BalanceView>) {
    use futures::StreamExt;
    use futures::channel::mpsc;
    use leptos::wasm_bindgen::JsCast;
    use leptos::wasm_bindgen::closure::Closure;
    use web_sys::js_sys::{Date, Math};
    use web_sys::{EventSource, MessageEvent};

    use crate::error::AppError;

    /// What the task hears: from the stream it opened `n`th, a load's doubt, or that the page
    /// was left.
    enum Heard {
        Balance(u32, Option<String>),
        Dropped(u32),
        Doubt,
        Left,
    }

    /// Whether the server answers at all (whatever it says).
    async fn answers() -> bool {
        !matches!(token_balance().await, Err(AppError::Network))
    }

    /// What a balance event says, as the stream writes it.
    #[derive(serde::Deserialize, PartialEq)]
    struct Said {
        balance: i64,
        held: i64,
        latest_entry: Option<i64>,
    }
    impl Said {
        fn of(data: Option<&str>) -> Option<Self> {
            crate::api::wire::from_str(data?).ok()
        }
        /// What the page shows (the server's render, before the first event).
        fn shown(balance: Load<BalanceView>) -> Option<Self> {
            let view = balance.get_untracked()?.ok()?;
            Some(Self {
                balance: view.balance.get(),
                held: view.held,
                latest_entry: view.latest_entry.map(|entry| entry.get()),
            })
        }
    }

    let (tell, mut heard) = mpsc::unbounded::<Heard>();
    let left = tell.clone();
    on_cleanup(move || {
        let _ = left.unbounded_send(Heard::Left);
    });
    // A load that got no answer marks the connection lost: the stream may still look open.
    let doubt = tell.clone();
    Effect::watch(
        move || live.connection.get(),
        move |connection, _, _| {
            if *connection == Connection::Lost {
                let _ = doubt.unbounded_send(Heard::Doubt);
            }
        },
        false,
    );
    leptos::task::spawn_local(async move {
        let mut wait = REOPEN_FIRST;
        // The first event is told apart from what the page shows: the ledger may have changed
        // between the server rendering the page and the stream opening (a webhook landing
        // meanwhile), and only then do the parts load again.
        let mut last: Option<Said> = None;
        for n in 0.. {
            let source = EventSource::new("/api/tokens/stream").ok();
            // When the stream first spoke: how long it lived decides the next wait.
            let mut heard_since: Option<f64> = None;
            let on_balance = {
                let tell = tell.clone();
                Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                    let _ = tell.unbounded_send(Heard::Balance(n, event.data().as_string()));
                })
            };
            let on_error = {
                let tell = tell.clone();
                Closure::<dyn FnMut()>::new(move || {
                    let _ = tell.unbounded_send(Heard::Dropped(n));
                })
            };
            if let Some(source) = &source {
                let _ = source.add_event_listener_with_callback(
                    "balance",
                    on_balance.as_ref().unchecked_ref(),
                );
                source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            } else {
                let _ = tell.unbounded_send(Heard::Dropped(n));
            }
            let mut gone = false;
            while let Some(news) = heard.next().await {
                match news {
                    Heard::Balance(from, data) if from == n => {
                        heard_since.get_or_insert_with(Date::now);
                        let said = Said::of(data.as_deref());
                        let before = last.take().or_else(|| Said::shown(balance));
                        if !live.reached() && (said.is_none() || said != before) {
                            live.changed();
                        }
                        last = said;
                    }
                    Heard::Dropped(from) if from == n => break,
                    // Checked as a drop is: the stream opened again tells. (A doubt the stream
                    // has answered since is no longer one.)
                    Heard::Doubt if live.connection.get_untracked() == Connection::Lost => break,
                    Heard::Doubt => {}
                    Heard::Left => {
                        gone = true;
                        break;
                    }
                    // From a stream closed before.
                    Heard::Balance(..) | Heard::Dropped(_) => {}
                }
            }
            if let Some(source) = &source {
                source.set_onerror(None);
                let _ = source.remove_event_listener_with_callback(
                    "balance",
                    on_balance.as_ref().unchecked_ref(),
                );
                source.close();
            }
            if gone {
                return;
            }
            if heard_since.is_some_and(|since| Date::now() - since >= STEADY_MS) {
                wait = REOPEN_FIRST;
            }
            // The server answering while its stream does not (too many tabs, logged out) is
            // no outage; one that does not answer is.
            if answers().await {
                live.reached();
            } else {
                live.lost();
            }
            sleep(wait.mul_f64(0.5 + 0.5 * Math::random())).await;
            wait = (wait * 2).min(REOPEN_MOST);
            // What came meanwhile is about the closed stream (or the loss just marked), unless
            // the page was left.
            while let Ok(news) = heard.try_recv() {
                if matches!(news, Heard::Left) {
                    return;
                }
            }
        }
    });
}

#[cfg(feature = "hydrate")]
async fn sleep(duration: std::time::Duration) {
    let (done, wait) = futures::channel::oneshot::channel::<()>();
    set_timeout(
        move || {
            let _ = done.send(());
        },
        duration,
    );
    let _ = wait.await;
}

#[cfg(not(feature = "hydrate"))]
fn follow_changes(_live: BillingLive, _balance: Load<BalanceView>) {}
