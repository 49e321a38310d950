//! Accounts: sign up, log in, log out, and who is signed in.
//!
//! Plain form posts (no JavaScript) work too: on success the server redirects to `next`, on
//! failure back to the form, which shows the error.

use billing::domain::{Role, UserId};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

use crate::api::wire::WireJson;
use crate::error::AppError;

/// The signed-in user, as the pages show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: UserId,
    pub email: String,
    pub role: Role,
}

impl SessionUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Where to go after logging in: only a path on this site, never another origin.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/app/billing".to_owned(),
    }
}

#[server(prefix = "/api", endpoint = "auth/me", input = GetUrl, output = WireJson)]
pub async fn who_am_i() -> Result<Option<SessionUser>, AppError> {
    ssr::answer(|call| async move { Ok(call.current_user().await?.map(ssr::session_user)) }).await
}

/// The sign-up form's fields (its arguments), as its errors name them ([`AppError::field`]).
pub const EMAIL: &str = "email";
pub const PASSWORD: &str = "password";

#[server(prefix = "/api", endpoint = "auth/signup", output = WireJson)]
pub async fn sign_up(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<SessionUser, AppError> {
    ssr::answer(|call| ssr::sign_up(call, email, password, next)).await
}

#[server(prefix = "/api", endpoint = "auth/login", output = WireJson)]
pub async fn log_in(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<SessionUser, AppError> {
    ssr::answer(|call| ssr::log_in(call, email, password, next)).await
}

#[server(prefix = "/api", endpoint = "auth/logout", output = WireJson)]
pub async fn log_out() -> Result<(), AppError> {
    ssr::answer(|call| async move {
        call.end_session().await?;
        call.redirect("/login");
        Ok(())
    })
    .await
}

#[cfg(feature = "ssr")]
mod ssr {
    use billing::auth::{self, Password};
    use billing::domain::{Email, Role, User};
    use billing::store::{NewUser, StoreError};

    pub use crate::api::guard::answer;
    use crate::api::guard::{Call, internal};

    use super::{AppError, SessionUser, safe_next};

    pub fn session_user(user: User) -> SessionUser {
        SessionUser {
            id: user.id,
            email: user.email.to_string(),
            role: user.role,
        }
    }

    /// Login and sign-up attempts from one address.
    async fn limit_address(call: &Call) -> Result<(), AppError> {
        call.rate_limit(&*call.state().limits.login_by_ip, &call.ip_key())
            .await
    }

    /// Login attempts on one account. From a device the account logged in from before (a
    /// valid device cookie naming it), only that device's own limit applies; from anywhere
    /// else, a limit per address and a higher one for the whole account. So guessing from
    /// many addresses holds new devices back, never the owner's own browser.
    async fn limit_account(
        call: &Call,
        email: &Email,
        known: Option<&User>,
    ) -> Result<(), AppError> {
        let limits = &call.state().limits;
        let device = call
            .device()
            .filter(|device| known.is_some_and(|user| user.id == device.user));
        match device {
            Some(device) => {
                call.rate_limit(&*limits.login_by_device, device.nonce())
                    .await
            }
            None => {
                let at = format!("{}|{}", email.as_str(), call.ip_key());
                call.rate_limit(&*limits.login_by_account_and_ip, &at)
                    .await?;
                call.rate_limit(&*limits.login_by_account, email.as_str())
                    .await
            }
        }
    }

    pub async fn sign_up(
        call: Call,
        email: String,
        password: String,
        next: Option<String>,
    ) -> Result<SessionUser, AppError> {
        limit_address(&call).await?;
        let email = Email::parse(&email)
            .map_err(|e| AppError::invalid(capitalise(&e)).on_field(super::EMAIL))?;
        let password = Password::choose(&password, &email)
            .map_err(|e| AppError::invalid(capitalise(&e)).on_field(super::PASSWORD))?;
        let hash = auth::hash_password(password)
            .await
            .map_err(internal("hashing a new password failed"))?;
        let user = call
            .state()
            .store
            .create_user(NewUser {
                email,
                password_hash: Some(hash),
                role: Role::User,
            })
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => {
                    AppError::conflict("An account with this email already exists. Log in instead.")
                        .on_field(super::EMAIL)
                }
                other => internal("creating a user failed")(other),
            })?;
        tracing::info!(user = %user.id, "signed up");
        call.start_session(&user).await?;
        call.remember_device(&user);
        call.redirect(&safe_next(next.as_deref()));
        Ok(session_user(user))
    }

    pub async fn log_in(
        call: Call,
        email: String,
        password: String,
        next: Option<String>,
    ) -> Result<SessionUser, AppError> {
        limit_address(&call).await?;
        let (Some(email), Some(password)) =
            (Email::parse(&email).ok(), Password::offered(&password))
        else {
            return Err(AppError::WrongCredentials);
        };
        let found = call
            .state()
            .store
            .credentials(&email)
            .await
            .map_err(internal("loading credentials failed"))?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        limit_account(&call, &email, user.as_ref()).await?;
        // Checked even for an unknown email (against a dummy hash), so that the answer and
        // its timing are the same whether or not the account exists.
        let verified = auth::verify_password(password, hash.clone()).await;
        match (user, verified) {
            (Some(user), auth::Verified::Right { rehashed }) => {
                tracing::info!(user = %user.id, "logged in");
                if let (Some(old), Some(new)) = (hash, rehashed) {
                    upgrade_hash(&call, &user, &old, &new).await;
                }
                call.start_session(&user).await?;
                call.remember_device(&user);
                call.redirect(&safe_next(next.as_deref()));
                Ok(session_user(user))
            }
            _ => {
                tracing::info!("login refused: wrong credentials");
                Err(AppError::WrongCredentials)
            }
        }
    }

    /// Stores a password's new hash (today's settings) in place of the older one it matched.
    /// The login stands either way: on failure the old hash stays, and is upgraded next time.
    async fn upgrade_hash(call: &Call, user: &User, old: &str, new: &str) {
        match call
            .state()
            .store
            .replace_password_hash(user.id, old, new)
            .await
        {
            Ok(true) => tracing::info!(user = %user.id, "password hash upgraded"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(user = %user.id, %error, "upgrading a password hash failed")
            }
        }
    }

    fn capitalise(error: &impl std::fmt::Display) -> String {
        let text = error.to_string();
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_only_leads_to_this_site() {
        assert_eq!(safe_next(Some("/admin?q=1")), "/admin?q=1");
        for bad in [
            None,
            Some(""),
            Some("https://evil.example"),
            Some("//evil.example"),
            Some("/\\evil.example"),
            Some("javascript:alert(1)"),
        ] {
            assert_eq!(safe_next(bad), "/app/billing", "{bad:?}");
        }
    }
}
