//! The billing page's components. Each loads its own data through the server functions in
//! `crate::api`; [`BillingLive`] tells them when the ledger changed, so they reload together.

pub mod auto_topup;
pub mod buy_tokens;
pub mod checkout_banner;
pub mod current_balance;
pub mod ledger_table;
pub mod low_balance_notice;
pub mod manage_billing;

pub use auto_topup::AutoTopUp;
pub use buy_tokens::BuyTokens;
pub use checkout_banner::CheckoutBanner;
pub use current_balance::CurrentBalance;
pub use ledger_table::LedgerTable;
pub use low_balance_notice::LowBalanceNotice;
pub use manage_billing::ManageBilling;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::billing::{CheckoutProgress, checkout_status};
use crate::error::AppError;

/// What the billing components share: a version bumped whenever the user's ledger changes
/// (a webhook, a purchase, usage), on which each reloads its data; and the Checkout session
/// the user came back from, which the others wait for (it may credit tokens first).
#[derive(Clone, Copy)]
pub struct BillingLive {
    pub version: RwSignal<u64>,
    pub checkout: Resource<Option<Result<CheckoutProgress, AppError>>>,
}

impl BillingLive {
    pub fn provide() -> Self {
        let version = RwSignal::new(0);
        let query = use_query_map();
        // Once a session is settled (credited, subscribed, unpaid) its answer is final: only a
        // payment still clearing (or an error) is asked about again when the ledger changes.
        let settled = RwSignal::new(false);
        let checkout = Resource::new(
            move || {
                let session = query.read().get("session_id").filter(|id| !id.is_empty());
                let round = if settled.get() { 0 } else { version.get() };
                (session, round)
            },
            |(session, _)| async move {
                match session {
                    Some(id) => Some(checkout_status(id).await),
                    None => None,
                }
            },
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
        let live = Self { version, checkout };
        provide_context(live);
        live
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
        self.version.update(|v| *v += 1);
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
