//! The simulated Stripe's pages (development and tests only): Checkout, where the customer
//! pays or cancels, and the Customer Portal, where they manage their subscription. For
//! testing the rest of billing, the portal also plays the part of Stripe's dashboard:
//! refunds, disputes and renewals. Each action delivers the events it causes, signed, to the
//! app's own webhook endpoint over HTTP, exactly as Stripe would. The pages themselves are
//! Leptos views (`pages`); this module routes the forms to the simulator's actions.

mod pages;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use billing::catalog::Catalog;
use billing::config::{Config, Secret};
use billing::domain::Money;
use billing::stripe::ListedEvent;
use billing::stripe::simulated::{Emitted, PATH_PREFIX, PayMethod, SimError, Simulator, TestCard};
use serde::Deserialize;
use url::Url;

/// How many times a delivery is tried before it is given up (Stripe keeps trying for days).
const DELIVERY_ATTEMPTS: u32 = 5;

/// How long an asynchronous payment takes to settle.
const ASYNC_PAYMENT_DELAY: Duration = Duration::from_secs(3);

/// The simulated Stripe of a server without Stripe keys, and its pages. `address` is where the
/// server listens: the simulator delivers its events there.
pub fn start<S>(
    config: &Config,
    catalog: &Catalog,
    webhook_secret: &Secret,
    address: SocketAddr,
) -> (Arc<Simulator>, Router<S>) {
    tracing::warn!("no STRIPE_SECRET_KEY: payments are simulated");
    let simulator = Arc::new(Simulator::new(
        config.site.url.clone(),
        webhook_secret.expose(),
        catalog
            .price_ids()
            .map(|(product, id)| (product, id.to_owned()))
            .collect::<Vec<_>>(),
    ));
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        address.ip().to_string()
    };
    let webhook = Url::parse(&format!(
        "http://{host}:{}/api/webhooks/stripe",
        address.port()
    ))
    .expect("a valid URL");
    let pages = SimulatorPages::new(simulator.clone(), webhook);
    (simulator, pages.router())
}

#[derive(Clone)]
pub struct SimulatorPages {
    sim: Arc<Simulator>,
    webhook: Url,
    http: reqwest::Client,
}

impl SimulatorPages {
    /// `webhook` is the app's own endpoint, at the address the server listens on.
    pub fn new(sim: Arc<Simulator>, webhook: Url) -> Self {
        Self {
            sim,
            webhook,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        }
    }

    pub fn router<S>(self) -> Router<S> {
        Router::new()
            .route(&format!("{PATH_PREFIX}/style.css"), get(style))
            .route(
                &format!("{PATH_PREFIX}/checkout/{{id}}"),
                get(checkout_page),
            )
            .route(&format!("{PATH_PREFIX}/checkout/{{id}}/pay"), post(pay))
            .route(
                &format!("{PATH_PREFIX}/checkout/{{id}}/cancel"),
                post(cancel),
            )
            .route(&format!("{PATH_PREFIX}/setup/{{id}}"), get(setup_page))
            .route(&format!("{PATH_PREFIX}/setup/{{id}}/save"), post(save_card))
            .route(
                &format!("{PATH_PREFIX}/setup/{{id}}/cancel"),
                post(cancel_setup),
            )
            .route(&format!("{PATH_PREFIX}/portal/{{id}}"), get(portal_page))
            .route(
                &format!("{PATH_PREFIX}/portal/{{id}}/subscriptions/{{sub}}/{{action}}"),
                post(subscription_action),
            )
            .route(
                &format!("{PATH_PREFIX}/portal/{{id}}/payments/{{charge}}/{{action}}"),
                post(payment_action),
            )
            .route(
                &format!("{PATH_PREFIX}/portal/{{id}}/dashboard-subscription"),
                post(dashboard_subscription),
            )
            .with_state(self)
    }

    /// Delivers events in order, each retried with backoff until the app accepts it.
    async fn deliver(&self, events: Vec<ListedEvent>) {
        for event in events {
            let mut wait = Duration::from_millis(200);
            for attempt in 1..=DELIVERY_ATTEMPTS {
                let sent = self
                    .http
                    .post(self.webhook.clone())
                    .header("content-type", "application/json")
                    .header("stripe-signature", self.sim.sign(&event.payload))
                    .body(event.payload.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => break,
                    Ok(response) => {
                        tracing::warn!(event = %event.id, status = %response.status(), attempt, "simulated delivery refused")
                    }
                    Err(error) => {
                        tracing::warn!(event = %event.id, %error, attempt, "simulated delivery failed")
                    }
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }

    /// Delivers the events now (awaited); an asynchronous payment settles a little later,
    /// in the background.
    async fn deliver_emitted(&self, emitted: Emitted) {
        self.deliver(emitted.now).await;
        if let Some(session) = emitted.settles {
            let pages = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ASYNC_PAYMENT_DELAY).await;
                match pages.sim.settle(&session) {
                    Ok(settled) => pages.deliver(settled.now).await,
                    Err(error) => {
                        tracing::warn!(%error, %session, "settling a simulated payment failed")
                    }
                }
            });
        }
    }
}

/// The pages' look, served as a file: their policy allows no inline style or script.
const STYLE: &str = include_str!("style.css");

/// The policy of these pages: this site's stylesheet, forms posted to this site, no scripts.
const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                      base-uri 'none'; frame-ancestors 'none'";

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// A page under its own policy.
fn page(html: String) -> impl IntoResponse + use<> {
    ([(header::CONTENT_SECURITY_POLICY, POLICY)], Html(html))
}

fn refused(error: SimError) -> Response {
    let status = match error {
        SimError::NotFound => StatusCode::NOT_FOUND,
        SimError::Refused(_) => StatusCode::CONFLICT,
    };
    (
        status,
        page(pages::render("Not possible", || pages::refusal(&error))),
    )
        .into_response()
}

async fn checkout_page(State(pages): State<SimulatorPages>, Path(id): Path<String>) -> Response {
    let Some(view) = pages.sim.checkout_view(&id) else {
        return refused(SimError::NotFound);
    };
    if !view.open {
        return refused(SimError::Refused("this checkout session is no longer open"));
    }
    page(pages::render("Checkout", || pages::checkout(&view))).into_response()
}

#[derive(Deserialize)]
struct PayForm {
    method: String,
}

async fn pay(
    State(pages): State<SimulatorPages>,
    Path(id): Path<String>,
    Form(form): Form<PayForm>,
) -> Response {
    let method = match form.method.as_str() {
        "card" => PayMethod::Card,
        "delayed_success" => PayMethod::DelayedSuccess,
        "delayed_failure" => PayMethod::DelayedFailure,
        _ => return refused(SimError::Refused("unknown payment method")),
    };
    match pages.sim.pay(&id, method) {
        Ok((success, emitted)) => {
            // Like Stripe, the customer is sent back while the webhooks are on their way.
            let delivering = pages.clone();
            tokio::spawn(async move { delivering.deliver_emitted(emitted).await });
            Redirect::to(&success).into_response()
        }
        Err(error) => refused(error),
    }
}

async fn cancel(State(pages): State<SimulatorPages>, Path(id): Path<String>) -> Response {
    match pages.sim.cancel(&id) {
        Ok(back) => Redirect::to(&back).into_response(),
        Err(error) => refused(error),
    }
}

async fn setup_page(State(pages): State<SimulatorPages>, Path(id): Path<String>) -> Response {
    let Some(view) = pages.sim.setup_view(&id) else {
        return refused(SimError::NotFound);
    };
    if !view.open {
        return refused(SimError::Refused("this checkout session is no longer open"));
    }
    page(pages::render("Save a card", || pages::setup(&view))).into_response()
}

#[derive(Deserialize)]
struct CardForm {
    card: String,
}

async fn save_card(
    State(pages): State<SimulatorPages>,
    Path(id): Path<String>,
    Form(form): Form<CardForm>,
) -> Response {
    let Some(card) = TestCard::parse(&form.card) else {
        return refused(SimError::Refused("unknown test card"));
    };
    match pages.sim.save_card(&id, card) {
        Ok((success, emitted)) => {
            let delivering = pages.clone();
            tokio::spawn(async move { delivering.deliver_emitted(emitted).await });
            Redirect::to(&success).into_response()
        }
        Err(error) => refused(error),
    }
}

async fn cancel_setup(State(pages): State<SimulatorPages>, Path(id): Path<String>) -> Response {
    match pages.sim.cancel_setup(&id) {
        Ok(back) => Redirect::to(&back).into_response(),
        Err(error) => refused(error),
    }
}

async fn portal_page(State(pages): State<SimulatorPages>, Path(id): Path<String>) -> Response {
    let Some(view) = pages.sim.portal_view(&id) else {
        return refused(SimError::NotFound);
    };
    page(pages::render("Customer portal", || {
        pages::portal(&id, &view)
    }))
    .into_response()
}

async fn subscription_action(
    State(pages): State<SimulatorPages>,
    Path((id, sub, action)): Path<(String, String, String)>,
) -> Response {
    let emitted = match action.as_str() {
        "cancel" => pages.sim.set_cancel_at_period_end(&id, &sub, true),
        "resume" => pages.sim.set_cancel_at_period_end(&id, &sub, false),
        "renew" => pages.sim.renew(&id, &sub),
        "end" => pages.sim.cancel_now(&id, &sub),
        _ => Err(SimError::NotFound),
    };
    back_to_portal(&pages, &id, emitted).await
}

/// The merchant subscribes the customer in Stripe's Dashboard: a subscription the app did
/// not start, which it must still show.
async fn dashboard_subscription(
    State(pages): State<SimulatorPages>,
    Path(id): Path<String>,
) -> Response {
    let emitted = pages.sim.subscribe_in_dashboard(&id);
    back_to_portal(&pages, &id, emitted).await
}

#[derive(Deserialize)]
struct PaymentForm {
    amount: Option<String>,
    dispute: Option<String>,
    won: Option<bool>,
}

async fn payment_action(
    State(pages): State<SimulatorPages>,
    Path((id, charge, action)): Path<(String, String, String)>,
    Form(form): Form<PaymentForm>,
) -> Response {
    let view = pages.sim.portal_view(&id);
    let payment = view
        .as_ref()
        .and_then(|v| v.payments.iter().find(|p| p.charge == charge));
    let emitted = match (action.as_str(), payment) {
        (_, None) => Err(SimError::NotFound),
        ("refund", Some(payment)) => match form
            .amount
            .as_deref()
            .and_then(|raw| parse_amount(raw, payment.amount))
        {
            // As Stripe answers an amount greater than the unrefunded amount: refused.
            Some(minor) if minor > payment.amount.minor() - payment.refunded.minor() => Err(
                SimError::Refused("that is more than is left to refund of this payment"),
            ),
            Some(minor) => pages.sim.refund(&id, &charge, minor),
            None => Err(SimError::Refused("enter an amount like 10.00")),
        },
        ("refund-all", Some(payment)) => pages.sim.refund(
            &id,
            &charge,
            payment.amount.minor() - payment.refunded.minor(),
        ),
        ("dispute", Some(_)) => pages.sim.dispute(&id, &charge),
        ("close-dispute", Some(_)) => match (form.dispute.as_deref(), form.won) {
            (Some(dispute), Some(won)) => pages.sim.close_dispute(&id, dispute, won),
            _ => Err(SimError::Refused("which dispute, won or lost?")),
        },
        _ => Err(SimError::NotFound),
    };
    back_to_portal(&pages, &id, emitted).await
}

async fn back_to_portal(
    pages: &SimulatorPages,
    portal: &str,
    emitted: Result<Emitted, SimError>,
) -> Response {
    match emitted {
        Ok(emitted) => {
            pages.deliver_emitted(emitted).await;
            Redirect::to(&format!("{PATH_PREFIX}/portal/{portal}")).into_response()
        }
        Err(error) => refused(error),
    }
}

/// `"10"`, `"10.5"`, `"10.50"` in the currency's minor units; no floats.
fn parse_amount(raw: &str, like: Money) -> Option<i64> {
    let digits = like.currency().minor_digits() as usize;
    let (whole, fraction) = raw.trim().split_once('.').unwrap_or((raw.trim(), ""));
    if whole.is_empty()
        || fraction.len() > digits
        || !(whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<digits$}").parse().ok()?
    };
    let minor = whole
        .checked_mul(10_i64.pow(digits as u32))?
        .checked_add(fraction)?;
    (minor > 0).then_some(minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use billing::domain::Currency;

    #[test]
    fn amounts_parse_to_minor_units_without_floats() {
        let usd = Money::new(4000, Currency::parse("usd").unwrap()).unwrap();
        assert_eq!(parse_amount("10", usd), Some(1000));
        assert_eq!(parse_amount("10.5", usd), Some(1050));
        assert_eq!(parse_amount(" 0.01 ", usd), Some(1));
        for bad in ["", "abc", "1.234", "-5", "0", "1e3", ".5"] {
            assert_eq!(parse_amount(bad, usd), None, "{bad}");
        }
        let yen = Money::new(500, Currency::parse("jpy").unwrap()).unwrap();
        assert_eq!(parse_amount("500", yen), Some(500));
        assert_eq!(parse_amount("5.5", yen), None);
    }
}
