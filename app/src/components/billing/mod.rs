//! The billing page's components. Each loads its own data through the server functions in
//! `crate::api`; [`BillingLive`] tells them when the ledger changed, so they reload together.

pub mod auto_topup;
pub mod buy_tokens;
pub mod checkout_banner;
pub mod connection_notice;
pub mod current_balance;
pub mod ledger_table;
pub mod low_balance_notice;
pub mod manage_billing;

pub use auto_topup::AutoTopUp;
pub use buy_tokens::BuyTokens;
pub use checkout_banner::CheckoutBanner;
pub use connection_notice::ConnectionNotice;
pub use current_balance::CurrentBalance;
pub use ledger_table::LedgerTable;
pub use low_balance_notice::LowBalanceNotice;
pub use manage_billing::ManageBilling;

use leptos::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::billing::{CheckoutProgress, checkout_status};
use crate::api::wire::Carried;
use crate::error::AppError;

/// A part's load: its answer, carried in the page the server rendered (JSON the browser reads
/// with its own parser, [`Carried`]).
pub type Load<T> = Resource<Result<T, AppError>, Carried>;

/// What the billing components share: a version bumped whenever the user's ledger changes
/// (a webhook, a purchase, usage), on which each reloads its data; whether the server can be
/// reached; and the Checkout session the user came back from, which the others wait for (it may
/// credit tokens first).
#[derive(Clone, Copy)]
pub struct BillingLive {
    pub query: StoredValue<BillingQuery>,
    pub version: RwSignal<u64>,
    pub connection: RwSignal<Connection>,
    pub checkout: Resource<Option<Result<CheckoutProgress, AppError>>, Carried>,
}

/// What the billing page's address asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingQuery {
    pub session_id: Option<String>,
    pub canceled: Option<String>,
    pub card_setup: Option<String>,
    pub source: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl BillingQuery {
    /// What the page's address asks for (the island reads it itself, on either side).
    pub fn from_address() -> Self {
        use crate::components::address::query_param;
        Self {
            session_id: query_param("session_id"),
            canceled: query_param("canceled"),
            card_setup: query_param("card_setup"),
            source: query_param("source"),
            before: query_param("before"),
            after: query_param("after"),
        }
    }
}

/// Whether the page hears from the server: what its last load or the balance stream found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Open,
    /// A request got no answer, or the stream dropped: what the page shows is as of before.
    Lost,
}

impl BillingLive {
    pub fn provide(query: BillingQuery) -> Self {
        let version = RwSignal::new(0);
        let query = StoredValue::new(query);
        // Once a session is settled (credited, subscribed, unpaid) its answer is final: only a
        // payment still clearing (or an error) is asked about again when the ledger changes.
        let settled = RwSignal::new(false);
        let checkout = Resource::new_with_options(
            move || {
                let session = query
                    .with_value(|q| q.session_id.clone())
                    .filter(|id| !id.is_empty());
                let round = if settled.get() { 0 } else { version.get() };
                (session, round)
            },
            |(session, _)| async move {
                match session {
                    Some(id) => Some(checkout_status(id).await),
                    None => None,
                }
            },
            false,
        );
        Effect::new(move |_| {
            let done = matches!(
                checkout.get(),
                Some(Some(Ok(progress))) if !matches!(progress, CheckoutProgress::Pending { .. })
            );
            if done != settled.get_untracked() {
                settled.set(done);
            }
        });
        let live = Self {
            query,
            version,
            connection: RwSignal::new(Connection::Open),
            checkout,
        };
        provide_context(live);
        live
    }

    /// A load of the answer to `question`, again whenever the ledger changes (or the question
    /// does). While the server cannot be reached, the last answer to the same question stands
    /// instead of an error: the connection is marked lost and the page shows one notice
    /// ([`ConnectionNotice`]), not an error in every part. The balance stream alone says when the
    /// server is back ([`BillingLive::reached`]), and every part loads again then.
    pub fn load<S, T, Fut>(
        self,
        question: impl Fn() -> S + Send + Sync + 'static,
        fetch: impl Fn(S) -> Fut + Send + Sync + 'static,
    ) -> Load<T>
    where
        S: PartialEq + Clone + Send + Sync + 'static,
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
        Fut: Future<Output = Result<T, AppError>> + Send + 'static,
    {
        let question = std::sync::Arc::new(question);
        // The last answer, and what it answered: another question (the ledger's next page, say)
        // gets the error, not an answer to the one before.
        let last = StoredValue::new(None::<(S, T)>);
        let resource = Resource::new_with_options(
            {
                let question = question.clone();
                move || (question(), self.version.get())
            },
            move |(asked, _)| {
                let answer = fetch(asked.clone());
                async move {
                    match answer.await {
                        Err(AppError::Network) => {
                            self.lost();
                            last.try_get_value()
                                .flatten()
                                .filter(|(before, _)| *before == asked)
                                .map(|(_, value)| value)
                                .ok_or(AppError::Network)
                        }
                        answer => {
                            if let Ok(value) = &answer {
                                last.try_set_value(Some((asked, value.clone())));
                            }
                            answer
                        }
                    }
                }
            },
            false,
        );
        // The answer the page came with is the first to keep: in the browser, the fetcher did
        // not run for it (once, after hydration; the billing page renders whole before it is
        // sent, `SsrMode::Async`, so the answer is there by then).
        Effect::new(move |_| {
            if let Some(Ok(value)) = resource.get_untracked() {
                last.set_value(Some((untrack(|| question()), value)));
            }
        });
        resource
    }

    /// The balance stream heard from the server. If it had been out of reach, every part loads
    /// again (what they show is from before); true then.
    pub fn reached(self) -> bool {
        if self.connection.try_get_untracked() != Some(Connection::Lost) {
            return false;
        }
        self.connection.set(Connection::Open);
        self.changed();
        true
    }

    /// A request got no answer, or the stream dropped and the server did not answer after.
    pub fn lost(self) {
        if self.connection.try_get_untracked() == Some(Connection::Open) {
            self.connection.set(Connection::Lost);
        }
    }

    /// Waits until the Checkout session the user came back from is settled (the success page
    /// may credit it), so that a read made now sees its tokens.
    pub async fn settled(self) {
        let _ = self.checkout.await;
    }

    pub fn expect() -> Self {
        expect_context()
    }

    pub fn changed(self) {
        self.version.try_update(|v| *v += 1);
    }
}

/// A fresh id for a form's submission, so that a double submission applies once (the
/// server makes one when the browser sends none).
pub fn fresh_request_id() -> String {
    #[cfg(feature = "ssr")]
    {
        use rand::RngCore;
        let mut bytes = [0u8; 12];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    }
    #[cfg(not(feature = "ssr"))]
    String::new()
}

/// Sends the browser to another site (Stripe's pages).
pub fn go_to(url: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().set_href(url);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = url;
}
