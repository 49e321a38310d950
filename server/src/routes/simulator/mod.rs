//! The simulated Stripe's pages (development and tests only): Checkout, where the customer
//! pays or cancels, and the Customer Portal, where they manage their subscription. For
//! testing the rest of billing, the portal also plays the part of Stripe's dashboard:
//! refunds, disputes and renewals. Each action delivers the events it causes, signed, to the
//! app's own webhook endpoint over HTTP, exactly as Stripe would.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use billing::domain::{Money, ProductKind};
use billing::stripe::ListedEvent;
use billing::stripe::simulated::{Emitted, PATH_PREFIX, PayMethod, SimError, Simulator};
use serde::Deserialize;
use url::Url;

/// How many times a delivery is tried before it is given up (Stripe keeps trying for days).
const DELIVERY_ATTEMPTS: u32 = 5;

/// How long an asynchronous payment takes to settle.
const ASYNC_PAYMENT_DELAY: Duration = Duration::from_secs(3);

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
const STYLE: &str = "\
body { font-family: system-ui, sans-serif; margin: 0; background: #f6f9fc; color: #1a1f36; }
.banner { background: #fff4d6; color: #6b4a00; padding: .75rem 1rem; text-align: center; font-weight: 600; }
main { max-width: 34rem; margin: 2rem auto; padding: 0 1rem; }
.card { background: #fff; border: 1px solid #e3e8ee; border-radius: 10px; padding: 1.25rem; margin-bottom: 1rem; }
.amount { font-size: 2rem; font-weight: 700; margin: .25rem 0 1rem; }
form { margin: .5rem 0; } form.inline { display: inline-block; margin: .25rem .25rem .25rem 0; }
button { font: inherit; font-weight: 600; padding: .6rem 1rem; border-radius: 8px; border: 1px solid #635bff; background: #635bff; color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: #635bff; }
input { font: inherit; padding: .5rem; width: 7rem; }
.muted { color: #697386; }
";

/// The policy of these pages: this site's stylesheet, forms posted to this site, no scripts.
const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                      base-uri 'none'; frame-ancestors 'none'";

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

fn page(title: &str, body: &str) -> impl IntoResponse + use<> {
    let html = Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Simulated Stripe</title>
<link rel="stylesheet" href="{PATH_PREFIX}/style.css">
</head>
<body>
<p class="banner" role="status">Simulated Stripe: payments here are not real and no card is charged.</p>
<main>
{body}
</main>
</body>
</html>"#
    ));
    ([(header::CONTENT_SECURITY_POLICY, POLICY)], html)
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn refused(error: SimError) -> Response {
    let status = match error {
        SimError::NotFound => StatusCode::NOT_FOUND,
        SimError::Refused(_) => StatusCode::CONFLICT,
    };
    (
        status,
        page(
            "Not possible",
            &format!(
                r#"<div class="card"><h1>Not possible</h1><p>{}.</p></div>"#,
                esc(&error.to_string())
            ),
        ),
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
    let base = format!("{PATH_PREFIX}/checkout/{}", esc(&view.id));
    let what = match view.product.kind() {
        ProductKind::Pack => format!(
            "{} · {} tokens",
            view.product.label(),
            grouped(view.product.tokens().get())
        ),
        ProductKind::Subscription => format!(
            "{} · {} tokens every month",
            view.product.label(),
            grouped(view.product.tokens().get())
        ),
    };
    let per = if view.product.kind() == ProductKind::Subscription {
        " / month"
    } else {
        ""
    };
    let delayed = if view.product.kind() == ProductKind::Pack {
        format!(
            r#"<form method="post" action="{base}/pay"><input type="hidden" name="method" value="delayed_success"><button class="secondary" type="submit">Pay by bank debit (clears in a few seconds)</button></form>
<form method="post" action="{base}/pay"><input type="hidden" name="method" value="delayed_failure"><button class="secondary" type="submit">Pay by bank debit that fails</button></form>"#
        )
    } else {
        String::new()
    };
    page(
        "Checkout",
        &format!(
            r#"<div class="card">
<h1>Pay PromptBloom</h1>
<p>{what}</p>
<p class="amount">{amount}{per}</p>
<form method="post" action="{base}/pay"><input type="hidden" name="method" value="card"><button type="submit">Pay {amount}</button></form>
{delayed}
<form method="post" action="{base}/cancel"><button class="secondary" type="submit">Cancel and return</button></form>
</div>"#,
            what = esc(&what),
            amount = esc(&view.amount.to_string()),
        ),
    )
    .into_response()
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

async fn portal_page(State(pages): State<SimulatorPages>, Path(id): Path<String>) -> Response {
    let Some(view) = pages.sim.portal_view(&id) else {
        return refused(SimError::NotFound);
    };
    let base = format!("{PATH_PREFIX}/portal/{}", esc(&id));
    let mut html = String::from("<h1>Manage billing</h1>");
    html.push_str(r#"<section class="card"><h2>Subscription</h2>"#);
    if view.subscriptions.is_empty() {
        html.push_str(r#"<p class="muted">No subscription.</p>"#);
    }
    for sub in &view.subscriptions {
        let action = |name: &str, label: &str, class: &str| {
            format!(
                r#"<form class="inline" method="post" action="{base}/subscriptions/{}/{name}"><button class="{class}" type="submit">{label}</button></form>"#,
                esc(&sub.id)
            )
        };
        let state = match (sub.status.as_str(), sub.cancel_at_period_end) {
            ("active", true) => format!("Cancels on {}", sub.period_end.date()),
            ("active", false) => format!("Renews on {}", sub.period_end.date()),
            (other, _) => other.to_owned(),
        };
        html.push_str(&format!(
            r#"<p>Starter monthly · {} / month · <strong data-testid="sim-subscription-state">{}</strong></p>"#,
            esc(&sub.amount.to_string()),
            esc(&state)
        ));
        if sub.status == "active" {
            html.push_str(&if sub.cancel_at_period_end {
                action("resume", "Don't cancel", "")
            } else {
                action("cancel", "Cancel plan", "")
            });
            html.push_str(&action("renew", "Renew now (next month)", "secondary"));
            html.push_str(&action("end", "End now", "secondary"));
        }
    }
    html.push_str(&format!(
        r#"<form method="post" action="{base}/dashboard-subscription"><button class="secondary" type="submit">Add a subscription, as Stripe's Dashboard would</button></form>"#
    ));
    html.push_str("</section>");
    html.push_str(r#"<section class="card"><h2>Payments</h2><p class="muted">Refunds and disputes are made by Stripe's dashboard and banks; the simulator offers them here.</p>"#);
    for payment in &view.payments {
        let action = |name: &str, label: &str, extra: &str| {
            format!(
                r#"<form class="inline" method="post" action="{base}/payments/{}/{name}">{extra}<button class="secondary" type="submit">{label}</button></form>"#,
                esc(&payment.charge)
            )
        };
        html.push_str(&format!(
            r#"<div class="payment"><p><strong>{}</strong> · {} · refunded {}</p>"#,
            esc(&payment.description),
            esc(&payment.amount.to_string()),
            esc(&payment.refunded.to_string())
        ));
        if payment.refunded.minor() < payment.amount.minor() {
            html.push_str(&action(
                "refund",
                "Refund",
                r#"<label>Amount <input name="amount" inputmode="decimal" placeholder="10.00" required></label> "#,
            ));
            html.push_str(&action("refund-all", "Refund in full", ""));
        }
        match &payment.dispute {
            None => html.push_str(&action("dispute", "Dispute", "")),
            Some((dispute, status)) if status.is_open() => {
                let close = |won: bool, label: &str| {
                    format!(
                        r#"<form class="inline" method="post" action="{base}/payments/{}/close-dispute"><input type="hidden" name="dispute" value="{}"><input type="hidden" name="won" value="{won}"><button class="secondary" type="submit">{label}</button></form>"#,
                        esc(&payment.charge),
                        esc(dispute)
                    )
                };
                html.push_str("<p>Disputed.</p>");
                html.push_str(&close(true, "Dispute won"));
                html.push_str(&close(false, "Dispute lost"));
            }
            Some((_, status)) => {
                html.push_str(&format!("<p>Dispute {}.</p>", esc(status.as_str())));
            }
        }
        html.push_str("</div>");
    }
    html.push_str("</section>");
    html.push_str(&format!(
        r#"<p><a href="{}">Return to PromptBloom</a></p>"#,
        esc(view.return_url.as_str())
    ));
    page("Customer portal", &html).into_response()
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

fn grouped(n: i64) -> String {
    billing::domain::Balance::new(n).map_or_else(|_| n.to_string(), |b| b.grouped())
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

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<script>\"x\"&'y'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;"
        );
    }
}
