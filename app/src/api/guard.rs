//! What server functions check before they act: who is asking (the session), whether they
//! may (their role), and whether they are asking too often (the rate limits). Server-only.
//!
//! Every server function body runs inside [`answer`], which hands it a [`Call`] and turns its
//! error into the HTTP status a JSON client expects (401, 403, 429 with `Retry-After`...).
//! A `Call` holds everything taken from the reactive context, captured before the first
//! `.await`: Leptos's context is only reliably there until a server function first yields.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ConnectInfo;
use billing::device_cookie::{self, Device};
use billing::domain::{User, UserId};
use billing::rate_limit::{Decision, RateLimiter, client_address};
use billing::store::StoreError;
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode, header};
use leptos::prelude::use_context;
use leptos::server_fn::redirect::REDIRECT_HEADER;
use leptos_axum::ResponseOptions;
use tower_sessions::Session;

use crate::error::AppError;
use crate::state::AppState;

/// The session key holding the signed-in user's id.
const SESSION_USER: &str = "user_id";

/// Runs a server function's body and gives its error the right HTTP status. A plain HTML
/// form post keeps the framework's redirect back to the form (which then shows the error).
pub async fn answer<T, F, Fut>(body: F) -> Result<T, AppError>
where
    F: FnOnce(Call) -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    let Some(call) = Call::capture() else {
        return Err(AppError::Internal);
    };
    let response = call.response.clone();
    // Only a call made over HTTP gets an error status: a page whose rendering calls server
    // functions keeps its own status, and a plain form post gets the framework's redirect.
    let sets_status = call.is_api_request() && !call.is_form_post();
    let result = body(call).await;
    if let (Err(error), Some(response)) = (&result, response)
        && sets_status
    {
        response.set_status(
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        );
        if let AppError::RateLimited { retry_after_secs } = error {
            response.insert_header(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
    }
    result
}

/// Logs an internal failure with its context and gives the generic error.
pub fn internal<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> AppError {
    move |error| {
        tracing::error!(%error, "{context}");
        AppError::Internal
    }
}

/// Why the signed-in user could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("reading the session failed: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error("loading the session's user failed: {0}")]
    Store(#[from] StoreError),
}

/// The user a session is signed in as (also for the server's own routes).
pub async fn session_user(
    state: &AppState,
    session: &Session,
) -> Result<Option<User>, SessionError> {
    let Some(id) = session_user_id(session).await? else {
        return Ok(None);
    };
    Ok(state.store.user_by_id(id).await?)
}

/// The id of the user a session is signed in as.
async fn session_user_id(session: &Session) -> Result<Option<UserId>, SessionError> {
    Ok(session
        .get::<i64>(SESSION_USER)
        .await?
        .and_then(|id| UserId::new(id).ok()))
}

/// Who a request is signed in as, once read: rendering the billing page calls several server
/// functions, and each asks. The server provides a new one for every request; it keeps the user
/// only for the id the session holds (a login or logout within the request reads again).
#[derive(Clone, Default)]
pub struct SignedIn(Arc<Mutex<Option<User>>>);

impl SignedIn {
    fn get(&self, id: UserId) -> Option<User> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.as_ref().filter(|user| user.id == id).cloned()
    }

    fn keep(&self, user: &User) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(user.clone());
    }
}

/// One server function call: the app's state, the request, and its response's options.
#[derive(Clone)]
pub struct Call {
    state: AppState,
    parts: Option<Parts>,
    response: Option<ResponseOptions>,
    signed_in: Option<SignedIn>,
}

impl Call {
    /// `None` (logged) when the server did not provide its state: a wiring bug, answered as
    /// an internal error rather than a panic.
    fn capture() -> Option<Self> {
        let Some(state) = use_context::<AppState>() else {
            tracing::error!("a server function ran without the app's state in its context");
            return None;
        };
        Some(Self {
            state,
            parts: use_context::<Parts>(),
            response: use_context::<ResponseOptions>(),
            signed_in: use_context::<SignedIn>(),
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A request for a server function's own URL (not a page rendering it).
    fn is_api_request(&self) -> bool {
        self.parts
            .as_ref()
            .is_some_and(|parts| parts.uri.path().starts_with("/api/"))
    }

    fn is_form_post(&self) -> bool {
        self.header(header::ACCEPT)
            .is_some_and(|accept| accept.contains("text/html"))
    }

    fn header(&self, name: HeaderName) -> Option<&str> {
        self.parts.as_ref()?.headers.get(name)?.to_str().ok()
    }

    fn session(&self) -> Result<Session, AppError> {
        self.parts
            .as_ref()
            .and_then(|parts| parts.extensions.get::<Session>().cloned())
            .ok_or_else(|| internal("the session layer is missing")("no Session extension"))
    }

    /// The address the request came from (through the site's own proxies, when it has some).
    pub fn client_ip(&self) -> Option<IpAddr> {
        let parts = self.parts.as_ref()?;
        let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
        let forwarded_for: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        Some(client_address(
            peer.ip(),
            &forwarded_for,
            self.state.config.limits.trusted_proxies,
        ))
    }

    /// Sends a plain form post (no JavaScript) on to `url`, e.g. Stripe's pages; the hydrated
    /// page navigates there itself with the URL it gets back.
    pub fn redirect_form_post(&self, url: &str) {
        if self.is_form_post() {
            self.redirect(url);
        }
    }

    /// Sends the browser to `path` when the call succeeds: a 302 for a plain form post, and
    /// for the hydrated page a header its server function client follows.
    pub fn redirect(&self, path: &str) {
        let (Some(response), Ok(location)) = (&self.response, HeaderValue::from_str(path)) else {
            return;
        };
        response.insert_header(header::LOCATION, location);
        if self.is_form_post() {
            response.set_status(StatusCode::FOUND);
        } else {
            response.insert_header(
                HeaderName::from_static(REDIRECT_HEADER),
                HeaderValue::from_static(""),
            );
        }
    }

    /// Sets the response's status outside of an error (a page that renders a refusal).
    pub fn set_status(&self, status: StatusCode) {
        if let Some(response) = &self.response {
            response.set_status(status);
        }
    }

    /// The signed-in user, if any.
    pub async fn current_user(&self) -> Result<Option<User>, AppError> {
        const FAILED: &str = "reading the signed-in user failed";
        let Some(id) = session_user_id(&self.session()?)
            .await
            .map_err(internal(FAILED))?
        else {
            return Ok(None);
        };
        if let Some(user) = self.signed_in.as_ref().and_then(|kept| kept.get(id)) {
            return Ok(Some(user));
        }
        let user = self
            .state
            .store
            .user_by_id(id)
            .await
            .map_err(internal(FAILED))?;
        if let (Some(kept), Some(user)) = (&self.signed_in, &user) {
            kept.keep(user);
        }
        Ok(user)
    }

    /// The signed-in user, or 401.
    pub async fn require_user(&self) -> Result<User, AppError> {
        self.current_user().await?.ok_or(AppError::Unauthorized)
    }

    /// The signed-in admin: 401 without a session, 403 for anyone else.
    pub async fn require_admin(&self) -> Result<User, AppError> {
        let user = self.require_user().await?;
        if user.is_admin() {
            Ok(user)
        } else {
            tracing::warn!(user = %user.id, "refused: admin role required");
            Err(AppError::Forbidden)
        }
    }

    /// Starts a signed-in session under a new id, so an id planted before login is worthless.
    pub async fn start_session(&self, user: &User) -> Result<(), AppError> {
        let session = self.session()?;
        session
            .cycle_id()
            .await
            .map_err(internal("cycling the session id failed"))?;
        session
            .insert(SESSION_USER, user.id.get())
            .await
            .map_err(internal("writing the session failed"))
    }

    /// Ends the session: deletes it from the store and expires the cookie.
    pub async fn end_session(&self) -> Result<(), AppError> {
        self.session()?
            .flush()
            .await
            .map_err(internal("deleting the session failed"))
    }

    /// Counts one request against `limiter` for `key`; 429 when over the limit.
    pub async fn rate_limit(&self, limiter: &dyn RateLimiter, key: &str) -> Result<(), AppError> {
        match limiter
            .check(key)
            .await
            .map_err(internal("the rate limiter failed"))?
        {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => {
                // Not the key: it may be an email address.
                tracing::info!(limit = limiter.name(), "rate limited");
                metrics::counter!("billing_rate_limit_refusals_total", "limit" => limiter.name())
                    .increment(1);
                Err(AppError::RateLimited {
                    retry_after_secs: u64::try_from(retry_after.as_millis().div_ceil(1000))
                        .unwrap_or(u64::MAX)
                        .max(1),
                })
            }
        }
    }

    /// The device cookie this request carries, when this server signed it.
    pub fn device(&self) -> Option<Device> {
        let parts = self.parts.as_ref()?;
        parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|line| line.to_str().ok())
            .flat_map(tower_sessions::cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|cookie| cookie.name() == device_cookie::COOKIE_NAME)
            .find_map(|cookie| self.state.device_cookies.verify(cookie.value()))
    }

    /// Leaves a fresh device cookie for `user` (at a successful login): later logins from
    /// this browser are not held by the account-wide limit. Sent to the login endpoint only.
    pub fn remember_device(&self, user: &User) {
        use tower_sessions::cookie::{Cookie, SameSite, time::Duration};
        let Some(response) = &self.response else {
            return;
        };
        let cookie = Cookie::build((
            device_cookie::COOKIE_NAME,
            self.state.device_cookies.issue(user.id),
        ))
        .path("/api/auth")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(self.state.config.secure_cookies())
        .max_age(Duration::days(device_cookie::MAX_AGE_DAYS))
        .build();
        match HeaderValue::from_str(&cookie.to_string()) {
            Ok(value) => response.append_header(header::SET_COOKIE, value),
            Err(error) => tracing::error!(%error, "a device cookie is not a header value"),
        }
    }

    /// The client's address as a rate-limit key part.
    pub fn ip_key(&self) -> String {
        self.client_ip()
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }

    /// The success page's check of a Checkout session (it asks Stripe): per user.
    pub async fn limit_checkout_status(&self, user: &User) -> Result<(), AppError> {
        self.rate_limit(&*self.state.limits.checkout_status, &user.id.to_string())
            .await
    }

    /// A billing write (checkout, portal, admin adjustment): 5 a minute per user and IP.
    pub async fn limit_billing_write(&self, user: &User) -> Result<(), AppError> {
        let key = format!("{}:{}", user.id, self.ip_key());
        self.rate_limit(&*self.state.limits.billing_writes, &key)
            .await
    }
}
