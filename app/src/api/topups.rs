//! Auto top-up, as the billing page sets it: the mark, the pack and the monthly cap, the card
//! it pays with (saved in a setup-mode Checkout), and the latest top-ups. Every function needs
//! a session; the writes are billing writes (rate limited).

use billing::domain::{AutoTopUp, ProductId, TopUp};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::api::billing::CheckoutStarted;
use crate::api::codec::{FormOrJson, form_or_json};
use crate::api::wire::WireJson;
use crate::error::AppError;

/// Auto top-up as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoTopUpView {
    /// `None`: never set up.
    pub auto: Option<AutoTopUp>,
    /// The latest top-ups, newest first.
    pub recent: Vec<TopUp>,
}

#[server(prefix = "/api", endpoint = "billing/auto-topup", input = GetUrl, output = WireJson)]
pub async fn auto_topup() -> Result<AutoTopUpView, AppError> {
    crate::api::guard::answer(|call| async move {
        let user = call.require_user().await?;
        ssr::view(&call, &user).await
    })
    .await
}

/// Turns auto top-up on (or changes it): buy `pack` when what is available goes under
/// `below`, adding at most `monthly_cap` tokens a month. Without a saved card it waits for one
/// (`start_card_setup`).
#[server(prefix = "/api", endpoint = "billing/auto-topup/choose", input = FormOrJson, output = WireJson)]
pub async fn choose_auto_topup(
    below: i64,
    pack: ProductId,
    monthly_cap: i64,
) -> Result<AutoTopUpView, AppError> {
    crate::api::guard::answer(|call| ssr::choose(call, below, pack, monthly_cap)).await
}

#[server(prefix = "/api", endpoint = "billing/auto-topup/off", input = FormOrJson, output = WireJson)]
pub async fn turn_off_auto_topup() -> Result<AutoTopUpView, AppError> {
    crate::api::guard::answer(|call| async move {
        let user = call.require_user().await?;
        call.limit_billing_write(&user).await?;
        call.state()
            .store
            .turn_off_auto_topup(user.id)
            .await
            .map_err(crate::api::guard::internal(
                "turning auto top-up off failed",
            ))?;
        call.redirect_form_post("/app/billing");
        ssr::view(&call, &user).await
    })
    .await
}

/// Opens a setup-mode Checkout where the user saves the card top-ups pay with (a new one, or
/// one to replace a card that was declined).
#[server(prefix = "/api", endpoint = "billing/auto-topup/card", input = FormOrJson, output = WireJson)]
pub async fn start_card_setup(
    #[server(default)] request_id: Option<String>,
) -> Result<CheckoutStarted, AppError> {
    crate::api::guard::answer(|call| ssr::start_card_setup(call, request_id)).await
}

/// Back from the setup-mode Checkout: the card it saved becomes the one top-ups pay with.
#[server(prefix = "/api", endpoint = "billing/auto-topup/card-saved", input = FormOrJson, output = WireJson)]
pub async fn card_saved(session_id: String) -> Result<AutoTopUpView, AppError> {
    crate::api::guard::answer(|call| ssr::card_saved(call, session_id)).await
}

form_or_json!(
    ChooseAutoTopup => ["below", "pack", "monthly_cap"],
    TurnOffAutoTopup => [],
    StartCardSetup => ["request_id"],
    CardSaved => ["session_id"],
);

#[cfg(feature = "ssr")]
mod ssr {
    use billing::domain::{ProductId, ProductKind, Tokens, TopUpChoice, User};
    use billing::store::StoreError;
    use billing::stripe::{CardSetupRequest, StripeId, StripeObject};

    use super::AutoTopUpView;
    use crate::api::billing::CheckoutStarted;
    use crate::api::billing::ssr::{customer, request_id_or_new, unavailable};
    use crate::api::guard::{Call, internal};
    use crate::error::AppError;

    pub async fn view(call: &Call, user: &User) -> Result<AutoTopUpView, AppError> {
        let store = &call.state().store;
        Ok(AutoTopUpView {
            auto: store
                .auto_topup(user.id)
                .await
                .map_err(internal("reading auto top-up failed"))?,
            recent: store
                .topups_of(user.id, 5)
                .await
                .map_err(internal("reading top-ups failed"))?,
        })
    }

    pub async fn choose(
        call: Call,
        below: i64,
        pack: ProductId,
        monthly_cap: i64,
    ) -> Result<AutoTopUpView, AppError> {
        let user = call.require_user().await?;
        let tokens = |n: i64, what: &str| {
            Tokens::new(n).map_err(|_| {
                AppError::invalid(format!(
                    "The {what} is a whole number of tokens from 1 to 1,000,000,000."
                ))
            })
        };
        let (below, monthly_cap) = (tokens(below, "mark")?, tokens(monthly_cap, "monthly cap")?);
        if pack.kind() != ProductKind::Pack || call.state().catalog.price_id(pack).is_none() {
            return Err(AppError::invalid(
                "Auto top-up buys one of the token packs on sale.",
            ));
        }
        if pack.tokens() <= below {
            return Err(AppError::invalid(
                "Choose a pack of more tokens than the mark: a top-up must lift the balance \
                 back over it.",
            ));
        }
        if monthly_cap < pack.tokens() {
            return Err(AppError::invalid(
                "The monthly cap is less than one pack: auto top-up could never buy it.",
            ));
        }
        let choice = TopUpChoice::new(below, pack, monthly_cap)
            .map_err(|_| AppError::invalid("Auto top-up buys one of the token packs on sale."))?;
        call.limit_billing_write(&user).await?;
        call.state()
            .store
            .choose_auto_topup(user.id, choice)
            .await
            .map_err(internal("choosing auto top-up failed"))?;
        call.redirect_form_post("/app/billing");
        view(&call, &user).await
    }

    pub async fn start_card_setup(
        call: Call,
        request_id: Option<String>,
    ) -> Result<CheckoutStarted, AppError> {
        let user = call.require_user().await?;
        let state = call.state().clone();
        let chosen = state
            .store
            .auto_topup(user.id)
            .await
            .map_err(internal("reading auto top-up failed"))?
            .ok_or_else(|| AppError::conflict("Choose auto top-up's mark and pack first."))?;
        // The card pays in the currency of the pack it buys.
        let currency = state
            .catalog
            .offers()
            .into_iter()
            .find(|offer| offer.product == chosen.choice.pack())
            .and_then(|offer| offer.price)
            .map(|price| price.currency())
            .ok_or(AppError::PaymentsUnavailable)?;
        call.limit_billing_write(&user).await?;
        let customer = customer(&call, &user).await?;
        let request_id = request_id_or_new(request_id);
        let page = state
            .config
            .site
            .url
            .join("/app/billing")
            .map_err(internal("building the setup's return URL failed"))?;
        let session = state
            .gateway
            .create_card_setup_session(&CardSetupRequest {
                user: user.id,
                customer,
                currency,
                success_url: format!("{page}?card_setup={{CHECKOUT_SESSION_ID}}"),
                cancel_url: page.to_string(),
                idempotency_key: format!("card-setup-{}-{request_id}", user.id),
            })
            .await
            .map_err(unavailable("creating a setup-mode Checkout session failed"))?;
        tracing::info!(user = %user.id, session = %session.id, "card setup started");
        call.redirect_form_post(session.url.as_str());
        Ok(CheckoutStarted {
            session_id: session.id,
            url: session.url.to_string(),
        })
    }

    pub async fn card_saved(call: Call, session_id: String) -> Result<AutoTopUpView, AppError> {
        let user = call.require_user().await?;
        call.limit_checkout_status(&user).await?;
        StripeId::parse(StripeObject::CheckoutSession, &session_id)
            .map_err(|_| AppError::not_found("There is no such card setup."))?;
        let state = call.state().clone();
        let setup = state
            .gateway
            .saved_card(&session_id)
            .await
            .map_err(unavailable("reading a setup-mode Checkout session failed"))?
            .ok_or_else(|| AppError::conflict("The card is not saved yet."))?;
        let mine = state
            .store
            .customer_of(user.id)
            .await
            .map_err(internal("reading a customer failed"))?;
        // Another user's session is answered as one that does not exist.
        if setup.user != Some(user.id) || setup.customer.is_none() || setup.customer != mine {
            return Err(AppError::not_found("There is no such card setup."));
        }
        match state
            .store
            .save_topup_card(user.id, &setup.card, setup.created)
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(AppError::conflict(
                    "Choose auto top-up's mark and pack first.",
                ));
            }
            Err(error) => return Err(internal("saving the card failed")(error)),
        }
        tracing::info!(user = %user.id, session = %session_id, "card saved for auto top-up");
        view(&call, &user).await
    }
}
