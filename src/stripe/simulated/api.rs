//! Stripe's REST API, answered from the simulated account: what a stand-in at
//! `STRIPE_API_BASE` serves, so that the live gateway (and async-stripe's typed parsing) can
//! run against the simulator. Reads, and one write (a payment with a saved card, made while
//! the customer is away); objects written field for field as Stripe writes
//! them, lists paged as Stripe pages them (newest first, `limit`, `starting_after`), and
//! Stripe's errors: an unknown parameter is a 400 naming it, an unknown object a 404.

use serde_json::{Value, json};

use super::objects::State;
use super::{Simulator, json as stripe_json};

/// A status and a JSON body, as Stripe would answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiAnswer {
    pub status: u16,
    pub body: Value,
}

impl ApiAnswer {
    fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    fn error(status: u16, message: String, param: Option<&str>) -> Self {
        let mut error = json!({ "type": "invalid_request_error", "message": message });
        if let Some(param) = param {
            error["param"] = param.into();
        }
        if status == 404 {
            error["code"] = "resource_missing".into();
        }
        Self {
            status,
            body: json!({ "error": error }),
        }
    }
}

type Params<'a> = &'a [(String, String)];

fn param<'a>(params: Params<'a>, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn only(params: Params<'_>, allowed: &[&str]) -> Result<(), ApiAnswer> {
    match params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((name, _)) => Err(ApiAnswer::error(
            400,
            format!("Received unknown parameter: {name}"),
            Some(name),
        )),
        None => Ok(()),
    }
}

fn no_such(what: &str, id: &str) -> ApiAnswer {
    ApiAnswer::error(404, format!("No such {what}: '{id}'"), Some("id"))
}

/// A page of `ordered` (newest first for most lists), as Stripe pages lists: `limit` of them
/// after `starting_after`.
fn page(url: &str, ordered: Vec<Value>, params: Params<'_>) -> ApiAnswer {
    let newest_first = ordered;
    let limit = match param(params, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n @ 1..=100)) => n,
        Some(_) => {
            return ApiAnswer::error(
                400,
                "Invalid limit: must be between 1 and 100".into(),
                Some("limit"),
            );
        }
    };
    let start = match param(params, "starting_after") {
        None => 0,
        Some(after) => match newest_first.iter().position(|o| o["id"] == after) {
            Some(at) => at + 1,
            None => return no_such("object", after),
        },
    };
    let data: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .cloned()
        .collect();
    let has_more = start + data.len() < newest_first.len();
    ApiAnswer::ok(json!({ "object": "list", "url": url, "has_more": has_more, "data": data }))
}

impl Simulator {
    /// Answers `POST /v1/payment_intents` as Stripe does for a payment with a saved card
    /// confirmed while the customer is away (`confirm=true`, `off_session=true`): 200 with the
    /// payment intent when the card pays, else 402 with the card's error and the payment
    /// intent; a repeated `Idempotency-Key` answers as the first request did. What this
    /// account does not simulate (a payment the customer confirms) is refused as Stripe
    /// refuses a bad parameter.
    pub fn api_create_payment_intent(&self, params: Params<'_>, key: Option<&str>) -> ApiAnswer {
        if self.is_down() {
            return ApiAnswer {
                status: 503,
                body: json!({ "error": { "type": "api_error", "message": "Stripe is not answering (simulated outage)" } }),
            };
        }
        if let Some((name, _)) = params.iter().find(|(k, _)| {
            !matches!(
                k.as_str(),
                "amount"
                    | "currency"
                    | "customer"
                    | "payment_method"
                    | "confirm"
                    | "off_session"
                    | "return_url"
                    | "automatic_payment_methods[enabled]"
                    | "automatic_payment_methods[allow_redirects]"
            ) && !k.starts_with("metadata[")
                && !k.starts_with("payment_method_types[")
        }) {
            return ApiAnswer::error(
                400,
                format!("Received unknown parameter: {name}"),
                Some(name),
            );
        }
        // Payment methods enabled in the Dashboard are on by default (API versions since
        // 2023-08-16): confirming needs somewhere to come back to, unless redirects are off or
        // the types are named.
        let named_types = params
            .iter()
            .any(|(k, _)| k.starts_with("payment_method_types["));
        let no_redirects =
            param(params, "automatic_payment_methods[allow_redirects]") == Some("never");
        if param(params, "confirm") == Some("true")
            && param(params, "return_url").is_none()
            && !named_types
            && !no_redirects
        {
            return ApiAnswer::error(
                400,
                "This PaymentIntent is configured to accept payment methods enabled in your \
                 Dashboard. Because some of these payment methods might redirect your customer \
                 off of your page, you must provide a `return_url`. If you don't want to accept \
                 redirect-based payment methods, set `automatic_payment_methods[enabled]` to \
                 `true` and `automatic_payment_methods[allow_redirects]` to `never` when \
                 creating Setup Intents and Payment Intents."
                    .into(),
                None,
            );
        }
        let required = |name: &str| {
            param(params, name).ok_or_else(|| {
                ApiAnswer::error(400, format!("Missing required param: {name}."), Some(name))
            })
        };
        let answer = (|| {
            let amount: i64 = required("amount")?
                .parse()
                .ok()
                .filter(|a| *a > 0)
                .ok_or_else(|| {
                    ApiAnswer::error(400, "Invalid integer: amount".into(), Some("amount"))
                })?;
            let currency = crate::domain::Currency::parse(required("currency")?)
                .map_err(|_| ApiAnswer::error(400, "Invalid currency".into(), Some("currency")))?;
            let customer = required("customer")?;
            let payment_method = required("payment_method")?;
            if param(params, "confirm") != Some("true")
                || param(params, "off_session") != Some("true")
            {
                return Err(ApiAnswer::error(
                    400,
                    "This account simulates only payments confirmed while the customer is away \
                     (confirm=true, off_session=true)"
                        .into(),
                    Some("confirm"),
                ));
            }
            let metadata: Vec<(String, String)> = params
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("metadata[")
                        .and_then(|k| k.strip_suffix(']'))
                        .map(|k| (k.to_owned(), v.clone()))
                })
                .collect();
            let amount = crate::domain::Money::new(amount, currency)
                .map_err(|_| ApiAnswer::error(400, "Invalid amount".into(), Some("amount")))?;
            let key = key.map_or_else(|| format!("no-key-{}", self.ids.make("req")), str::to_owned);
            let intent = self
                .off_session(&key, customer, payment_method, amount, metadata)
                .map_err(|_| {
                    ApiAnswer::error(
                        400,
                        format!("No such PaymentMethod: '{payment_method}'"),
                        Some("payment_method"),
                    )
                })?;
            let method = self.saved_method(payment_method);
            let object = stripe_json::payment_intent(&intent, method.as_ref());
            Ok(match intent.failure {
                None => ApiAnswer::ok(object),
                Some((code, decline_code, message)) => ApiAnswer {
                    status: 402,
                    body: json!({ "error": {
                        "type": "card_error",
                        "code": code,
                        "decline_code": decline_code,
                        "message": message,
                        "payment_intent": object,
                        "doc_url": format!("https://docs.stripe.com/error-codes/{}", code.replace('_', "-")),
                    }}),
                },
            })
        })();
        answer.unwrap_or_else(|refused| refused)
    }

    /// Answers `GET {path}?{params}` as Stripe's API would, from the account's state.
    pub fn api_get(&self, path: &str, params: Params<'_>) -> ApiAnswer {
        if self.is_down() {
            return ApiAnswer {
                status: 503,
                body: json!({ "error": { "type": "api_error", "message": "Stripe is not answering (simulated outage)" } }),
            };
        }
        let state = self.state();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let answer = match segments.as_slice() {
            ["v1", "checkout", "sessions", id] => only(params, &["expand[]"]).and_then(|()| {
                if let Some(setup) = state.setups.get(*id) {
                    let method = setup
                        .payment_method
                        .as_ref()
                        .and_then(|pm| state.methods.iter().find(|m| &m.id == pm));
                    return Ok(ApiAnswer::ok(stripe_json::setup_session(setup, method)));
                }
                let s = state
                    .sessions
                    .get(*id)
                    .ok_or_else(|| no_such("checkout.session", id))?;
                Ok(ApiAnswer::ok(stripe_json::session(s)))
            }),
            ["v1", "payment_intents", id] => only(params, &["expand[]"]).and_then(|()| {
                let p = state
                    .off_session
                    .values()
                    .find(|p| p.id == *id)
                    .ok_or_else(|| no_such("payment_intent", id))?;
                let method = state.methods.iter().find(|m| m.id == p.payment_method);
                Ok(ApiAnswer::ok(stripe_json::payment_intent(p, method)))
            }),
            ["v1", "checkout", "sessions", id, "line_items"] => {
                only(params, &["limit", "starting_after"]).and_then(|()| {
                    let s = state
                        .sessions
                        .get(*id)
                        .ok_or_else(|| no_such("checkout.session", id))?;
                    Ok(page(
                        &format!("/v1/checkout/sessions/{id}/line_items"),
                        vec![stripe_json::line_item(s)],
                        params,
                    ))
                })
            }
            ["v1", "invoice_payments"] => only(
                params,
                &[
                    "payment[type]",
                    "payment[payment_intent]",
                    "invoice",
                    "limit",
                    "starting_after",
                ],
            )
            .map(|()| invoice_payments(&state, params)),
            ["v1", "charges", id] => only(params, &["expand[]"]).and_then(|()| {
                let c = state.charge(id).ok_or_else(|| no_such("charge", id))?;
                let disputed = state.dispute_of(id).is_some();
                Ok(ApiAnswer::ok(stripe_json::charge(
                    c,
                    state.refunded(id),
                    disputed,
                )))
            }),
            ["v1", "refunds"] => only(
                params,
                &["charge", "payment_intent", "limit", "starting_after"],
            )
            .map(|()| {
                let refunds = state
                    .refunds
                    .iter()
                    .rev()
                    .filter(|r| param(params, "charge").is_none_or(|c| r.charge == c))
                    .filter(|r| {
                        param(params, "payment_intent").is_none_or(|p| r.payment_intent == p)
                    })
                    .map(|r| {
                        let currency = state.charge(&r.charge).map_or("usd".to_owned(), |c| {
                            c.amount.currency().as_str().to_owned()
                        });
                        stripe_json::refund(r, &currency)
                    })
                    .collect();
                page("/v1/refunds", refunds, params)
            }),
            ["v1", "invoices", id] => only(params, &["expand[]"]).and_then(|()| {
                let i = state
                    .invoices
                    .get(*id)
                    .ok_or_else(|| no_such("invoice", id))?;
                let sub = state
                    .subscriptions
                    .get(&i.subscription)
                    .ok_or_else(|| no_such("subscription", &i.subscription))?;
                Ok(ApiAnswer::ok(stripe_json::invoice(i, sub, self.shape)))
            }),
            ["v1", "invoices", id, "lines"] => {
                only(params, &["limit", "starting_after"]).and_then(|()| {
                    let i = state
                        .invoices
                        .get(*id)
                        .ok_or_else(|| no_such("invoice", id))?;
                    let sub = state
                        .subscriptions
                        .get(&i.subscription)
                        .ok_or_else(|| no_such("subscription", &i.subscription))?;
                    // An invoice's lines are listed in the invoice's order.
                    Ok(page(
                        &format!("/v1/invoices/{id}/lines"),
                        stripe_json::invoice_lines(i, sub, self.shape),
                        params,
                    ))
                })
            }
            ["v1", "subscriptions"] => {
                only(params, &["customer", "status", "limit", "starting_after"]).map(|()| {
                    let subscriptions = state
                        .subscriptions
                        .values()
                        .rev()
                        .filter(|s| param(params, "customer").is_none_or(|c| s.customer == c))
                        .filter(|s| match param(params, "status") {
                            None => s.status.as_str() != "canceled",
                            Some("all") => true,
                            Some(status) => s.status.as_str() == status,
                        })
                        .map(stripe_json::subscription)
                        .collect();
                    page("/v1/subscriptions", subscriptions, params)
                })
            }
            ["v1", "subscriptions", id] => only(params, &["expand[]"]).and_then(|()| {
                let s = state
                    .subscriptions
                    .get(*id)
                    .ok_or_else(|| no_such("subscription", id))?;
                Ok(ApiAnswer::ok(stripe_json::subscription(s)))
            }),
            ["v1", "prices", id] => only(params, &["expand[]"]).and_then(|()| {
                let product = self.prices.get(*id).ok_or_else(|| no_such("price", id))?;
                Ok(ApiAnswer::ok(stripe_json::price_object(id, *product, 0)))
            }),
            ["v1", "events"] => only(
                params,
                &[
                    "created[gte]",
                    "created[gt]",
                    "created[lte]",
                    "created[lt]",
                    "limit",
                    "starting_after",
                    "type",
                ],
            )
            .map(|()| events(&state, params)),
            _ => Err(ApiAnswer::error(
                404,
                format!("Unrecognized request URL (GET: {path})."),
                None,
            )),
        };
        answer.unwrap_or_else(|refused| refused)
    }
}

fn invoice_payments(state: &State, params: Params<'_>) -> ApiAnswer {
    let payment_intent = param(params, "payment[payment_intent]");
    let payments = state
        .charges
        .iter()
        .rev()
        .filter_map(|c| Some((c, c.invoice.as_deref()?)))
        .filter(|(c, _)| payment_intent.is_none_or(|pi| c.payment_intent == pi))
        .filter(|(_, invoice)| param(params, "invoice").is_none_or(|i| *invoice == i))
        .map(|(c, invoice)| stripe_json::invoice_payment(c, invoice))
        .collect();
    page("/v1/invoice_payments", payments, params)
}

fn events(state: &State, params: Params<'_>) -> ApiAnswer {
    let bound = |name: &str| param(params, name).and_then(|v| v.parse::<i64>().ok());
    let events = state
        .log
        .iter()
        .rev()
        .filter(|(at, _)| {
            bound("created[gte]").is_none_or(|b| *at >= b)
                && bound("created[gt]").is_none_or(|b| *at > b)
                && bound("created[lte]").is_none_or(|b| *at <= b)
                && bound("created[lt]").is_none_or(|b| *at < b)
        })
        .map(|(_, e)| serde_json::from_str::<Value>(&e.payload).expect("events are JSON"))
        .filter(|e| param(params, "type").is_none_or(|t| e["type"] == t))
        .collect();
    page("/v1/events", events, params)
}
