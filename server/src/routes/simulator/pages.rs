//! The simulated Stripe's pages, written as Leptos views like the app's own and rendered to
//! HTML on the server. They are not hydrated and run no script (their policy allows none);
//! Leptos escapes every text and attribute value they show.

use billing::domain::{Money, ProductKind};
use billing::stripe::SubscriptionStatus;
use billing::stripe::simulated::{
    CheckoutView, PATH_PREFIX, PaymentView, PortalView, SetupView, SimError, SubscriptionView,
    TestCard,
};
use leptos::prelude::*;

/// A whole page: the document, the banner that says payments are simulated, and `body`.
pub fn render(title: &str, body: impl FnOnce() -> AnyView) -> String {
    let title = format!("{title} · Simulated Stripe");
    Owner::new().with(move || {
        view! {
            <!DOCTYPE html>
            <html lang="en">
                <head>
                    <meta charset="utf-8" />
                    <meta name="viewport" content="width=device-width, initial-scale=1" />
                    <title>{title}</title>
                    <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                    <link rel="stylesheet" href=format!("{PATH_PREFIX}/style.css") />
                </head>
                <body>
                    <p class="banner" role="status">
                        "Simulated Stripe: payments here are not real and no card is charged."
                    </p>
                    <main>{body()}</main>
                </body>
            </html>
        }
        .to_html()
        // Hydration's markers (`erase_components` puts one after each text): these pages are
        // never hydrated, and in the title a browser would show the marker as text. Escaped
        // text never holds one.
        .replace("<!>", "")
    })
}

/// Why an action or a page is not possible.
pub fn refusal(error: &SimError) -> AnyView {
    let why = format!("{error}.");
    view! {
        <div class="card">
            <h1>"Not possible"</h1>
            <p>{why}</p>
            <p>
                <a href="/app/billing">"Back to billing"</a>
            </p>
        </div>
    }
    .into_any()
}

/// Checkout: pay (by card, or by a bank debit that clears or fails later) or cancel.
/// A setup-mode Checkout: save one of the test cards (each behaves as Stripe's test card of
/// that number does when charged later), or leave.
pub fn setup(view: &SetupView) -> AnyView {
    let base = format!("{PATH_PREFIX}/setup/{}", view.id);
    view! {
        <div class="card">
            <h1>"Save a card for PromptBloom"</h1>
            <p>"It pays for auto top-up while you are away."</p>
            {TestCard::ALL
                .into_iter()
                .map(|card| {
                    view! {
                        <form method="post" action=format!("{base}/save")>
                            <input type="hidden" name="card" value=card.as_str() />
                            <button
                                class=if card == TestCard::Succeeds { "" } else { "secondary" }
                                type="submit"
                            >
                                {format!("Save card •••• {} (later, it {})", card.last4(), card.behaviour())}
                            </button>
                        </form>
                    }
                })
                .collect_view()}
            <form method="post" action=format!("{base}/cancel")>
                <button class="secondary" type="submit">
                    "Cancel and return"
                </button>
            </form>
        </div>
    }
    .into_any()
}

pub fn checkout(view: &CheckoutView) -> AnyView {
    let base = format!("{PATH_PREFIX}/checkout/{}", view.id);
    let product = view.product;
    let tokens = grouped(product.tokens().get());
    let (what, per) = match product.kind() {
        ProductKind::Pack => (format!("{} · {tokens} tokens", product.label()), ""),
        ProductKind::Subscription => (
            format!("{} · {tokens} tokens every month", product.label()),
            " / month",
        ),
    };
    let amount = view.amount.to_string();
    let pay = |method: &'static str, label: String, class: &'static str| {
        view! {
            <form method="post" action=format!("{base}/pay")>
                <input type="hidden" name="method" value=method />
                <button class=class type="submit">
                    {label}
                </button>
            </form>
        }
    };
    let bank_debits = (product.kind() == ProductKind::Pack).then(|| {
        view! {
            {pay(
                "delayed_success",
                "Pay by bank debit (clears in a few seconds)".to_owned(),
                "secondary",
            )}
            {pay("delayed_failure", "Pay by bank debit that fails".to_owned(), "secondary")}
        }
    });
    view! {
        <div class="card">
            <h1>"Pay PromptBloom"</h1>
            <p>{what}</p>
            <p class="amount">{format!("{amount}{per}")}</p>
            {pay("card", format!("Pay {amount}"), "")}
            {bank_debits}
            <form method="post" action=format!("{base}/cancel")>
                <button class="secondary" type="submit">
                    "Cancel and return"
                </button>
            </form>
        </div>
    }
    .into_any()
}

/// The Customer Portal, which also plays Stripe's Dashboard: subscriptions, then payments with
/// their refunds and disputes.
pub fn portal(portal: &str, view: &PortalView) -> AnyView {
    let base = format!("{PATH_PREFIX}/portal/{portal}");
    let none = view
        .subscriptions
        .is_empty()
        .then(|| view! { <p class="muted">"No subscription."</p> });
    let subscriptions = view
        .subscriptions
        .iter()
        .map(|sub| subscription(&base, sub))
        .collect_view();
    let payments = view
        .payments
        .iter()
        .map(|p| payment(&base, p))
        .collect_view();
    view! {
        <h1>"Manage billing"</h1>
        <section class="card">
            <h2>"Subscription"</h2>
            {none}
            {subscriptions}
            <form method="post" action=format!("{base}/dashboard-subscription")>
                <button class="secondary" type="submit">
                    "Add a subscription, as Stripe's Dashboard would"
                </button>
            </form>
        </section>
        <section class="card">
            <h2>"Payments"</h2>
            <p class="muted">
                "Refunds and disputes are made by Stripe's dashboard and banks; the simulator offers them here."
            </p>
            {payments}
        </section>
        <p>
            <a href=view.return_url.to_string()>"Return to PromptBloom"</a>
        </p>
    }
    .into_any()
}

fn subscription(base: &str, sub: &SubscriptionView) -> AnyView {
    let at = |action: &str| format!("{base}/subscriptions/{}/{action}", sub.id);
    let active = sub.status == SubscriptionStatus::Active;
    let state = match (active, sub.cancel_at_period_end) {
        (true, true) => format!("Cancels on {}", sub.period_end.date()),
        (true, false) => format!("Renews on {}", sub.period_end.date()),
        (false, _) => sub.status.as_str().to_owned(),
    };
    let actions = active.then(|| {
        let (toggle, label) = if sub.cancel_at_period_end {
            ("resume", "Don't cancel")
        } else {
            ("cancel", "Cancel plan")
        };
        view! {
            {button_form(at(toggle), label, "")}
            {button_form(at("renew"), "Renew now (next month)", "secondary")}
            {button_form(at("end"), "End now", "secondary")}
        }
    });
    view! {
        <p>
            {format!("Starter monthly · {} / month · ", sub.amount)}
            <strong data-testid="sim-subscription-state">{state}</strong>
        </p>
        {actions}
    }
    .into_any()
}

fn payment(base: &str, payment: &PaymentView) -> AnyView {
    let at = |action: &str| format!("{base}/payments/{}/{action}", payment.charge);
    let refundable = Money::new(
        payment.amount.minor() - payment.refunded.minor(),
        payment.amount.currency(),
    )
    .map(|left| left.to_string())
    .unwrap_or_default();
    let refunds = (payment.refunded.minor() < payment.amount.minor()).then(|| {
        view! {
            <form class="inline" method="post" action=at("refund")>
                <label>
                    {format!("Amount to refund, up to {} ", refundable)}
                    <input name="amount" inputmode="decimal" required=true />
                </label>
                " "
                <button class="secondary" type="submit">
                    "Refund"
                </button>
            </form>
            {button_form(at("refund-all"), "Refund in full", "secondary")}
        }
    });
    let dispute = match &payment.dispute {
        None => button_form(at("dispute"), "Dispute", "secondary").into_any(),
        Some((dispute, status)) if status.is_open() => {
            let close = |won: bool, label: &'static str| {
                view! {
                    <form class="inline" method="post" action=at("close-dispute")>
                        <input type="hidden" name="dispute" value=dispute.clone() />
                        <input type="hidden" name="won" value=won.to_string() />
                        <button class="secondary" type="submit">
                            {label}
                        </button>
                    </form>
                }
            };
            view! {
                <p>"Disputed."</p>
                {close(true, "Dispute won")}
                {close(false, "Dispute lost")}
            }
            .into_any()
        }
        Some((_, status)) => view! { <p>{format!("Dispute {}.", status.as_str())}</p> }.into_any(),
    };
    view! {
        <div class="payment">
            <p>
                <strong>{payment.description.clone()}</strong>
                {format!(" · {} · refunded {}", payment.amount, payment.refunded)}
            </p>
            {refunds}
            {dispute}
        </div>
    }
    .into_any()
}

/// A form that is one button, posting to `action`.
fn button_form(action: String, label: &'static str, class: &'static str) -> AnyView {
    view! {
        <form class="inline" method="post" action=action>
            <button class=class type="submit">
                {label}
            </button>
        </form>
    }
    .into_any()
}

fn grouped(n: i64) -> String {
    billing::domain::Balance::new(n).map_or_else(|_| n.to_string(), |b| b.grouped())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_page_shows_is_escaped() {
        let html = render("Checkout <b>", || {
            refusal(&SimError::Refused(
                "no <script>alert(1)</script> & \"quotes\"",
            ))
        });
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(
            html.contains("<title>Checkout &lt;b&gt; · Simulated Stripe</title>"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp;"),
            "{html}"
        );
        assert!(html.contains("/simulated-stripe/style.css"), "{html}");
        assert!(
            html.contains("Simulated Stripe: payments here are not real"),
            "{html}"
        );
    }

    #[test]
    fn attribute_values_are_escaped_too() {
        let html = render("Checkout", || {
            button_form("/x\"><script>".to_owned(), "Go", "")
        });
        assert!(!html.contains("\"><script>"), "{html}");
        assert!(html.contains("action=\"/x&quot;"), "{html}");
    }

    #[test]
    fn setup_offers_each_test_card_and_a_way_back() {
        let view = SetupView {
            id: "cs_9".into(),
            open: true,
        };
        let html = render("Save a card", || setup(&view));
        for text in [
            "Save card •••• 4242 (later, it pays)",
            "Save card •••• 0002 (later, it is declined)",
            "Save card •••• 3184 (later, it needs the cardholder (authentication))",
            "action=\"/simulated-stripe/setup/cs_9/save\"",
            "value=\"needs_authentication\"",
            "Cancel and return",
        ] {
            assert!(html.contains(text), "{text} in {html}");
        }
    }

    #[test]
    fn checkout_offers_a_card_bank_debits_and_a_way_back() {
        use billing::domain::{Currency, Money, ProductId};
        let view = CheckoutView {
            id: "cs_1".into(),
            product: ProductId::Medium,
            amount: Money::new(4000, Currency::parse("usd").unwrap()).unwrap(),
            open: true,
        };
        let html = render("Checkout", || checkout(&view));
        for text in [
            "Medium pack · 5,000 tokens",
            ">Pay $40.00<",
            "Pay by bank debit that fails",
            "Cancel and return",
            "action=\"/simulated-stripe/checkout/cs_1/pay\"",
            "value=\"delayed_success\"",
        ] {
            assert!(html.contains(text), "{text} in {html}");
        }
    }
}
