//! The user's email notices: the low-balance mark under which they are told (once each time
//! what they can spend goes under it). Tokens about to expire are always told.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::api::codec::{FormOrJson, form_or_json};
use crate::api::wire::WireJson;
use crate::error::AppError;

/// What the user is emailed about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailNotices {
    /// Email when what is available goes under this many tokens; `None`: no low-balance email.
    pub low_balance_below: Option<i64>,
}

#[server(prefix = "/api", endpoint = "billing/notices", input = GetUrl, output = WireJson)]
pub async fn notice_settings() -> Result<EmailNotices, AppError> {
    crate::api::guard::answer(|call| async move {
        let user = call.require_user().await?;
        ssr::read(&call, &user).await
    })
    .await
}

/// Sets the low-balance mark (`below`), or turns the email off (no `below`). Rate limited as
/// a billing write.
#[server(prefix = "/api", endpoint = "billing/notices/low-balance", input = FormOrJson, output = WireJson)]
pub async fn set_low_balance_notice(
    #[server(default)] below: Option<i64>,
) -> Result<EmailNotices, AppError> {
    crate::api::guard::answer(|call| async move {
        let user = call.require_user().await?;
        let below = below
            .map(|n| {
                billing::domain::Tokens::new(n).map_err(|_| {
                    AppError::invalid(
                        "The mark is a whole number of tokens from 1 to 1,000,000,000.",
                    )
                })
            })
            .transpose()?;
        call.limit_billing_write(&user).await?;
        call.state()
            .store
            .set_low_balance_threshold(user.id, below)
            .await
            .map_err(crate::api::guard::internal(
                "setting the low-balance mark failed",
            ))?;
        // A plain form post (no JavaScript) goes back to the page, which shows the new mark.
        call.redirect_form_post("/app/billing");
        ssr::read(&call, &user).await
    })
    .await
}

form_or_json!(SetLowBalanceNotice => ["below"]);

#[cfg(feature = "ssr")]
mod ssr {
    use billing::domain::{Tokens, User};

    use super::EmailNotices;
    use crate::api::guard::{Call, internal};
    use crate::error::AppError;

    pub async fn read(call: &Call, user: &User) -> Result<EmailNotices, AppError> {
        let below = call
            .state()
            .store
            .low_balance_threshold(user.id)
            .await
            .map_err(internal("reading the low-balance mark failed"))?;
        Ok(EmailNotices {
            low_balance_below: below.map(Tokens::get),
        })
    }
}
