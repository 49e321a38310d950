//! A stand-in for Stripe's API, shared by the tests of the live gateway, of the operator
//! commands and of the history checker. It reads requests as Stripe does (form-encoded
//! parameters with bracketed names; a parameter it does not know is a 400 that names it, a
//! missing key a 401), pages lists as Stripe does (newest first, `limit` 1 to 100,
//! `starting_after`, `has_more`), resolves paths as a web server does before routing them (`..`
//! and `%2e%2e` segments applied), and answers with Stripe's objects and error shape. It
//! remembers every request.
//!
//! Behind it is a Stripe account: the simulated Stripe (`billing::stripe::simulated`), whose
//! objects are written field for field as Stripe writes them (its tests read them with
//! async-stripe's own types). A test acts on that account as Stripe's customers do ([`account`]:
//! pay a Checkout session, subscribe, refund) and delivers the events it makes; the app then
//! reads the session, its line items, the invoice of a payment, a price... from here. Objects a
//! test adds itself (events, charges, refunds, subscriptions, customers) are answered instead
//! of the account's.
//!
//! [`account`]: StripeApi::account

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use billing::domain::{ProductId, ProductKind, UserId};
use billing::stripe::simulated::{PayMethod, Simulator};
use billing::stripe::{CheckoutRequest, StripeGateway};
use billing::testing::StripeEvent;
use serde_json::{Value, json};
use url::Url;

/// The price ids of the live catalog the stand-in's account sells ([`StripeApi::settings`]).
pub const LIVE_PRICES: [(ProductId, &str); 4] = [
    (ProductId::Small, "price_live_small"),
    (ProductId::Medium, "price_live_medium"),
    (ProductId::Large, "price_live_large"),
    (ProductId::Starter, "price_live_starter"),
];

/// The price id of `product` in the live catalog.
pub fn live_price(product: ProductId) -> &'static str {
    LIVE_PRICES
        .iter()
        .find(|(p, _)| *p == product)
        .map(|(_, id)| *id)
        .expect("every product has a live price")
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query's parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The form body's parameters, decoded, in order.
    pub form: Vec<(String, String)>,
    pub authorization: String,
    pub idempotency_key: Option<String>,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(&self.form)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Account {
    /// Stripe's side: what its customers did.
    sim: Arc<Simulator>,
    /// Events in the order they happened (Stripe lists them newest first).
    events: Vec<Value>,
    charges: BTreeMap<String, Value>,
    customers: BTreeMap<String, Value>,
    /// Refunds in the order they were made.
    refunds: Vec<Value>,
    subscriptions: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    /// Misbehaves: answers the first page again whatever `starting_after` says.
    repeats_pages: bool,
    /// An outage: every request fails as Stripe's do when it has trouble (500, `api_error`).
    down: bool,
}

#[derive(Clone)]
pub struct StripeApi {
    pub url: Url,
    account: Arc<Mutex<Account>>,
}

/// A Checkout session paid at Stripe, and the events Stripe sends about it.
pub struct PaidCheckout {
    pub session: String,
    /// A pack's payment (a plan is paid through its invoice).
    pub payment_intent: Option<String>,
    /// `checkout.session.completed`, as Stripe delivers it.
    pub event: StripeEvent,
    /// Every event the payment caused, in the order Stripe made them (for a plan: the
    /// subscription, its first invoice, the session).
    pub events: Vec<StripeEvent>,
}

/// A payment as Stripe's dashboard shows it.
pub struct Payment {
    /// A portal session of the customer's: where the dashboard's actions are taken.
    pub portal: String,
    pub charge: String,
    pub payment_intent: String,
}

/// The simulated account behind a fresh stand-in, selling the live catalog.
fn live_account() -> Arc<Simulator> {
    Arc::new(Simulator::new(
        Url::parse("https://checkout.stripe.com").unwrap(),
        "whsec_unused_the_tests_sign_their_deliveries",
        LIVE_PRICES.map(|(product, id)| (product, id.to_owned())),
    ))
}

impl StripeApi {
    pub async fn start() -> Self {
        let account = Arc::new(Mutex::new(Account {
            sim: live_account(),
            events: Vec::new(),
            charges: BTreeMap::new(),
            customers: BTreeMap::new(),
            refunds: Vec::new(),
            subscriptions: BTreeMap::new(),
            seen: Vec::new(),
            repeats_pages: false,
            down: false,
        }));
        let router = Router::new()
            .route("/v1/events", get(list_events))
            .route("/v1/charges/{id}", get(retrieve_charge))
            .route("/v1/refunds", get(list_refunds))
            .route("/v1/subscriptions/{id}", get(retrieve_subscription))
            .route("/v1/customers/{id}", get(retrieve_customer))
            .route("/v1/invoice_payments", get(list_invoice_payments))
            .route("/v1/payment_intents", post(create_payment_intent))
            .route("/v1/checkout/sessions", post(refuse_unless_working))
            .route("/v1/billing_portal/sessions", post(refuse_unless_working))
            // Checkout sessions and their line items, invoices and their lines, prices...
            .fallback(from_the_account)
            .with_state(account.clone());
        // Paths are resolved before they are routed, as Stripe's servers do.
        let app = tower::Layer::layer(
            &tower::util::MapRequestLayer::new(resolve_dot_segments),
            router,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
            )
            .await
        });
        Self {
            url: Url::parse(&format!("http://{address}")).unwrap(),
            account,
        }
    }

    /// The Stripe account this stands in for: act on it as Stripe's customers and dashboard
    /// do (`pay`, `refund`...), then deliver the events it answers with.
    pub fn account(&self) -> Arc<Simulator> {
        self.account.lock().unwrap().sim.clone()
    }

    /// Answers from another account from now on (each history of the checker has its own).
    pub fn answer_from(&self, sim: Arc<Simulator>) {
        self.account.lock().unwrap().sim = sim;
    }

    /// A Checkout session for `product`, opened for `user` (Stripe's customer `customer`) and
    /// paid by card.
    pub async fn paid_checkout(
        &self,
        user: UserId,
        customer: &str,
        product: ProductId,
    ) -> PaidCheckout {
        let sim = self.account();
        let opened = sim
            .create_checkout_session(&CheckoutRequest {
                user,
                customer: customer.to_owned(),
                price: live_price(product).to_owned(),
                kind: product.kind(),
                success_url: "https://promptbloom.app/app/billing?session_id={CHECKOUT_SESSION_ID}"
                    .into(),
                cancel_url: "https://promptbloom.app/app/billing?canceled=1".into(),
                idempotency_key: format!("checkout-{user}-{}", rand::random::<u64>()),
            })
            .await
            .expect("the account sells the live catalog");
        let (_, emitted) = sim
            .pay(&opened.id, PayMethod::Card)
            .expect("an open session is paid");
        let events: Vec<StripeEvent> = emitted
            .now
            .iter()
            .map(|e| StripeEvent::parse(&e.payload))
            .collect();
        let event = events
            .iter()
            .find(|e| e.json()["type"] == "checkout.session.completed")
            .expect("Stripe says the session completed")
            .clone();
        let payment_intent = match product.kind() {
            ProductKind::Pack => event.json()["data"]["object"]["payment_intent"]
                .as_str()
                .map(str::to_owned),
            ProductKind::Subscription => None,
        };
        PaidCheckout {
            session: opened.id,
            payment_intent,
            event,
            events,
        }
    }

    /// The payments of Stripe's customer `customer`, oldest first.
    pub async fn payments(&self, customer: &str) -> Vec<Payment> {
        let sim = self.account();
        let portal = sim
            .create_portal_session(customer, &Url::parse("https://promptbloom.app/").unwrap())
            .await
            .expect("a portal session");
        let portal = portal.path().rsplit('/').next().unwrap().to_owned();
        let view = sim.portal_view(&portal).expect("the portal just opened");
        let mut payments = Vec::new();
        for payment in view.payments {
            let charge = sim
                .charge_refunds(&payment.charge)
                .await
                .expect("a charge of the account");
            payments.push(Payment {
                portal: portal.clone(),
                charge: payment.charge,
                payment_intent: charge.payment_intent.expect("a charge's payment intent"),
            });
        }
        payments
    }

    pub fn add_event(&self, event: Value) {
        self.account.lock().unwrap().events.push(event);
    }

    pub fn add_charge(&self, charge: Value) {
        let id = charge["id"].as_str().unwrap().to_owned();
        self.account.lock().unwrap().charges.insert(id, charge);
    }

    pub fn add_customer(&self, customer: Value) {
        let id = customer["id"].as_str().unwrap().to_owned();
        self.account.lock().unwrap().customers.insert(id, customer);
    }

    pub fn add_refund(&self, refund: Value) {
        self.account.lock().unwrap().refunds.push(refund);
    }

    pub fn add_subscription(&self, subscription: Value) {
        let id = subscription["id"].as_str().unwrap().to_owned();
        self.account
            .lock()
            .unwrap()
            .subscriptions
            .insert(id, subscription);
    }

    /// From now on lists answer their first page again and again (`has_more` and all).
    pub fn repeat_pages(&self) {
        self.account.lock().unwrap().repeats_pages = true;
    }

    /// Starts (`true`) or ends an outage: meanwhile every request answers 500 `api_error`.
    pub fn set_down(&self, down: bool) {
        self.account.lock().unwrap().down = down;
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.account.lock().unwrap().seen.clone()
    }

    /// The requests so far to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|seen| seen.path == path)
            .collect()
    }

    /// Forgets the requests so far (an app reads its prices when it starts).
    pub fn forget_requests(&self) {
        self.account.lock().unwrap().seen.clear();
    }

    /// The settings that run the app on live Stripe, here (the webhook secret is the app's
    /// own to choose).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let price = |product| live_price(product).to_owned();
        vec![
            ("STRIPE_SECRET_KEY", "sk_test_standin".to_owned()),
            ("STRIPE_API_BASE", self.url.to_string()),
            ("STRIPE_PRICE_TOKENS_SMALL", price(ProductId::Small)),
            ("STRIPE_PRICE_TOKENS_MEDIUM", price(ProductId::Medium)),
            ("STRIPE_PRICE_TOKENS_LARGE", price(ProductId::Large)),
            (
                "STRIPE_PRICE_SUBSCRIPTION_STARTER",
                price(ProductId::Starter),
            ),
        ]
    }
}

/// `/v1/checkout/sessions/../../customers/cus_1` is `/v1/customers/cus_1` to a web server
/// (`%2e%2e` too); the query stays as it came.
fn resolve_dot_segments(mut request: axum::extract::Request) -> axum::extract::Request {
    let resolved = Url::parse("https://api.stripe.com")
        .unwrap()
        .join(request.uri().path())
        .map(|url| url.path().to_owned());
    if let Ok(path) = resolved {
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        if let Ok(uri) = path_and_query.parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

type Shared = State<Arc<Mutex<Account>>>;

fn error(status: StatusCode, kind: &str, message: String, param: Option<&str>) -> Response {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(param) = param {
        error["param"] = param.into();
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn decode(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Which parameters a route takes: these, or any (the account checks them itself).
enum Allowed<'a> {
    Only(&'a [&'a str]),
    Any,
}

/// Records the request, checks the key, fails it during an outage, and refuses parameters
/// not allowed, as Stripe does; answers the decoded parameters.
// The refusal is the answer to send as it stands: boxing it would buy nothing here.
#[allow(clippy::result_large_err)]
fn receive(
    account: &Mutex<Account>,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    allowed: Allowed<'_>,
) -> Result<Vec<(String, String)>, Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        method: method.to_owned(),
        path: uri.path().to_owned(),
        query: decode(uri.query().unwrap_or_default().as_bytes()),
        form: decode(body),
        authorization: header("authorization").unwrap_or_default(),
        idempotency_key: header("idempotency-key"),
    };
    let down = {
        let mut account = account.lock().unwrap();
        account.seen.push(seen.clone());
        account.down
    };
    if !seen.authorization.starts_with("Bearer sk_") {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You did not provide an API key.".into(),
            None,
        ));
    }
    if down {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "An unknown error occurred (a test's outage)".into(),
            None,
        ));
    }
    let params: Vec<(String, String)> = seen.query.into_iter().chain(seen.form).collect();
    if let Allowed::Only(allowed) = allowed
        && let Some((name, _)) = params.iter().find(|(k, _)| !allowed.contains(&k.as_str()))
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("Received unknown parameter: {name}"),
            Some(name),
        ));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A page of a list, newest first, as Stripe pages it.
// The refusal is the answer to send as it stands: boxing it would buy nothing here.
#[allow(clippy::result_large_err)]
fn page(
    url: &str,
    newest_first: Vec<Value>,
    params: &[(String, String)],
    repeats: bool,
) -> Result<Response, Response> {
    let limit = match param(params, "limit") {
        None => 10,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n @ 1..=100) => n,
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    format!("Invalid limit: must be between 1 and 100, got {raw}"),
                    Some("limit"),
                ));
            }
        },
    };
    let start = match param(params, "starting_after") {
        _ if repeats => 0,
        None => 0,
        Some(after) => match newest_first.iter().position(|o| o["id"] == after) {
            Some(at) => at + 1,
            None => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    format!("No such object: '{after}'"),
                    Some("starting_after"),
                ));
            }
        },
    };
    let data: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(limit)
        .cloned()
        .collect();
    let has_more = start + data.len() < newest_first.len();
    Ok(
        axum::Json(json!({ "object": "list", "url": url, "has_more": has_more, "data": data }))
            .into_response(),
    )
}

/// The account's own answer to a `GET` it was asked (parameters already decoded).
fn ask_the_account(account: &Mutex<Account>, uri: &Uri, params: &[(String, String)]) -> Response {
    let sim = account.lock().unwrap().sim.clone();
    let answered = sim.api_get(uri.path(), params);
    (
        StatusCode::from_u16(answered.status).unwrap(),
        axum::Json(answered.body),
    )
        .into_response()
}

async fn from_the_account(
    State(account): Shared,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != axum::http::Method::GET {
        return unknown_path(&account, method.as_str(), &uri, &headers);
    }
    match receive(&account, "GET", &uri, &headers, b"", Allowed::Any) {
        Ok(params) => ask_the_account(&account, &uri, &params),
        Err(refused) => refused,
    }
}

// A page's refusal is the answer to send as it stands (see `page`).
#[allow(clippy::result_large_err)]
async fn list_events(State(account): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let allowed = [
        "created[gte]",
        "created[gt]",
        "created[lte]",
        "created[lt]",
        "limit",
        "starting_after",
        "type",
    ];
    let params = match receive(
        &account,
        "GET",
        &uri,
        &headers,
        b"",
        Allowed::Only(&allowed),
    ) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let bound = |name: &str| param(&params, name).and_then(|v| v.parse::<i64>().ok());
    let listed = {
        let account = account.lock().unwrap();
        (!account.events.is_empty()).then(|| {
            let events: Vec<Value> = account
                .events
                .iter()
                .rev()
                .filter(|e| {
                    let created = e["created"].as_i64().unwrap_or(0);
                    bound("created[gte]").is_none_or(|b| created >= b)
                        && bound("created[gt]").is_none_or(|b| created > b)
                        && bound("created[lte]").is_none_or(|b| created <= b)
                        && bound("created[lt]").is_none_or(|b| created < b)
                        && param(&params, "type").is_none_or(|t| e["type"] == t)
                })
                .cloned()
                .collect();
            page("/v1/events", events, &params, account.repeats_pages)
        })
    };
    match listed {
        Some(page) => page.unwrap_or_else(|refused| refused),
        None => ask_the_account(&account, &uri, &params),
    }
}

/// An object the test added under `id`, or else the account's.
fn added_or_the_accounts(
    account: &Mutex<Account>,
    uri: &Uri,
    headers: &HeaderMap,
    added: impl FnOnce(&Account) -> Option<Value>,
) -> Response {
    let params = match receive(
        account,
        "GET",
        uri,
        headers,
        b"",
        Allowed::Only(&["expand[]"]),
    ) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let found = added(&account.lock().unwrap());
    match found {
        Some(object) => axum::Json(object).into_response(),
        None => ask_the_account(account, uri, &params),
    }
}

async fn retrieve_charge(
    State(account): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    added_or_the_accounts(&account, &uri, &headers, |a| a.charges.get(&id).cloned())
}

async fn retrieve_subscription(
    State(account): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    added_or_the_accounts(&account, &uri, &headers, |a| {
        a.subscriptions.get(&id).cloned()
    })
}

async fn retrieve_customer(
    State(account): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = receive(
        &account,
        "GET",
        &uri,
        &headers,
        b"",
        Allowed::Only(&["expand[]"]),
    ) {
        return refused;
    }
    let customer = account.lock().unwrap().customers.get(&id).cloned();
    match customer {
        Some(customer) => axum::Json(customer).into_response(),
        None => no_such("customer", &id),
    }
}

// A page's refusal is the answer to send as it stands (see `page`).
#[allow(clippy::result_large_err)]
async fn list_refunds(State(account): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let allowed = ["charge", "payment_intent", "limit", "starting_after"];
    let params = match receive(
        &account,
        "GET",
        &uri,
        &headers,
        b"",
        Allowed::Only(&allowed),
    ) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let listed = {
        let account = account.lock().unwrap();
        (!account.refunds.is_empty()).then(|| {
            let refunds: Vec<Value> = account
                .refunds
                .iter()
                .rev()
                .filter(|r| param(&params, "charge").is_none_or(|c| r["charge"] == c))
                .filter(|r| {
                    param(&params, "payment_intent").is_none_or(|p| r["payment_intent"] == p)
                })
                .cloned()
                .collect();
            page("/v1/refunds", refunds, &params, account.repeats_pages)
        })
    };
    match listed {
        Some(page) => page.unwrap_or_else(|refused| refused),
        None => ask_the_account(&account, &uri, &params),
    }
}

/// Stripe's invoice payments, filtered by the payment as Stripe reads the filter: a
/// `payment[...]` filter needs its `payment[type]`, and names a payment of that type.
async fn list_invoice_payments(State(account): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let allowed = [
        "payment[type]",
        "payment[payment_intent]",
        "invoice",
        "limit",
        "starting_after",
    ];
    let params = match receive(
        &account,
        "GET",
        &uri,
        &headers,
        b"",
        Allowed::Only(&allowed),
    ) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let intent = param(&params, "payment[payment_intent]");
    match param(&params, "payment[type]") {
        None if intent.is_some() => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "Missing required param: payment[type].".into(),
                Some("payment[type]"),
            );
        }
        Some(kind) if kind != "payment_intent" || intent.is_none() => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("Invalid payment[type] {kind:?} for the payment given"),
                Some("payment[type]"),
            );
        }
        _ => {}
    }
    ask_the_account(&account, &uri, &params)
}

/// A payment with a saved card while the customer is away, answered by the account (200 paid,
/// 402 with the card's error), each `Idempotency-Key` answered as its first request was.
async fn create_payment_intent(
    State(account): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match receive(&account, "POST", &uri, &headers, &body, Allowed::Any) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let sim = account.lock().unwrap().sim.clone();
    let answered = sim.api_create_payment_intent(&params, key);
    (
        StatusCode::from_u16(answered.status).unwrap(),
        axum::Json(answered.body),
    )
        .into_response()
}

/// Refuses every Checkout and portal request (400, "No such price"), or fails it (500) when
/// its form names `price_broken`.
async fn refuse_unless_working(
    State(account): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = decode(&body);
    // Record without refusing parameters: these endpoints take dozens.
    if let Err(refused) = receive(&account, "POST", &uri, &headers, &body, Allowed::Any) {
        return refused;
    }
    if seen.iter().any(|(_, v)| v == "price_broken") {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Something went wrong".into(),
            None,
        );
    }
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "No such price: 'price_gone'".into(),
        Some("line_items[0][price]"),
    )
}

fn no_such(what: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No such {what}: '{id}'"),
        Some("id"),
    )
}

fn unknown_path(
    account: &Mutex<Account>,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let _ = receive(account, method, uri, headers, b"", Allowed::Any);
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Unrecognized request URL ({method}: {}).", uri.path()),
        None,
    )
}
