//! A stand-in for Stripe's API, shared by the tests of the live gateway and of the operator
//! commands. It reads requests as Stripe does (form-encoded parameters with bracketed names;
//! a parameter it does not know is a 400 that names it, a missing key a 401), pages lists as
//! Stripe does (newest first, `limit` 1 to 100, `starting_after`, `has_more`), resolves paths
//! as a web server does before routing them (`..` and `%2e%2e` segments applied), and answers
//! with Stripe's objects and error shape. It remembers every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use url::Url;

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Seen {
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

#[derive(Default)]
struct Account {
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
}

#[derive(Clone)]
pub struct StripeApi {
    pub url: Url,
    account: Arc<Mutex<Account>>,
}

impl StripeApi {
    pub async fn start() -> Self {
        let account = Arc::new(Mutex::new(Account::default()));
        let router = Router::new()
            .route("/v1/events", get(list_events))
            .route("/v1/charges/{id}", get(retrieve_charge))
            .route("/v1/refunds", get(list_refunds))
            .route("/v1/subscriptions/{id}", get(retrieve_subscription))
            .route("/v1/customers/{id}", get(retrieve_customer))
            .route("/v1/prices/{id}", get(no_such_price))
            .route("/v1/checkout/sessions/{id}", get(no_such_session))
            .route(
                "/v1/checkout/sessions/{id}/line_items",
                get(no_such_session),
            )
            .route("/v1/invoice_payments", get(list_invoice_payments))
            .route("/v1/checkout/sessions", post(refuse_unless_working))
            .route("/v1/billing_portal/sessions", post(refuse_unless_working))
            .fallback(unknown_path)
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

    pub fn requests(&self) -> Vec<Seen> {
        self.account.lock().unwrap().seen.clone()
    }

    /// Forgets the requests so far (an app reads its prices when it starts).
    pub fn forget_requests(&self) {
        self.account.lock().unwrap().seen.clear();
    }

    /// The settings that run the app on live Stripe, here.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STRIPE_SECRET_KEY", "sk_test_standin".to_owned()),
            ("STRIPE_WEBHOOK_SECRET", "whsec_standin".to_owned()),
            ("STRIPE_API_BASE", self.url.to_string()),
            ("STRIPE_PRICE_TOKENS_SMALL", "price_live_small".to_owned()),
            ("STRIPE_PRICE_TOKENS_MEDIUM", "price_live_medium".to_owned()),
            ("STRIPE_PRICE_TOKENS_LARGE", "price_live_large".to_owned()),
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

/// Records the request, checks the key, and refuses parameters not in `allowed`, as Stripe
/// does; answers the decoded parameters.
// The refusal is the answer to send as it stands: boxing it would buy nothing here.
#[allow(clippy::result_large_err)]
fn receive(
    account: &Mutex<Account>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    allowed: &[&str],
) -> Result<Vec<(String, String)>, Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        path: uri.path().to_owned(),
        query: decode(uri.query().unwrap_or_default().as_bytes()),
        form: decode(body),
        authorization: header("authorization").unwrap_or_default(),
        idempotency_key: header("idempotency-key"),
    };
    account.lock().unwrap().seen.push(seen.clone());
    if !seen.authorization.starts_with("Bearer sk_") {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You did not provide an API key.".into(),
            None,
        ));
    }
    let params: Vec<(String, String)> = seen.query.into_iter().chain(seen.form).collect();
    if let Some((name, _)) = params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
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
    let params = match receive(&account, &uri, &headers, b"", &allowed) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let bound = |name: &str| param(&params, name).and_then(|v| v.parse::<i64>().ok());
    let account = account.lock().unwrap();
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
    page("/v1/events", events, &params, account.repeats_pages).unwrap_or_else(|refused| refused)
}

async fn retrieve_charge(
    State(account): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = receive(&account, &uri, &headers, b"", &["expand[]"]) {
        return refused;
    }
    let charge = account.lock().unwrap().charges.get(&id).cloned();
    match charge {
        Some(charge) => axum::Json(charge).into_response(),
        None => no_such("charge", &id),
    }
}

async fn retrieve_customer(
    State(account): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = receive(&account, &uri, &headers, b"", &["expand[]"]) {
        return refused;
    }
    let customer = account.lock().unwrap().customers.get(&id).cloned();
    match customer {
        Some(customer) => axum::Json(customer).into_response(),
        None => no_such("customer", &id),
    }
}

/// No price is known here: the app's read of its prices at start-up finds none.
async fn no_such_price(
    State(account): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = receive(&account, &uri, &headers, b"", &["expand[]"]) {
        return refused;
    }
    no_such("price", &id)
}

/// No Checkout session is known here.
async fn no_such_session(
    State(account): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let allowed = ["expand[]", "limit", "starting_after"];
    if let Err(refused) = receive(&account, &uri, &headers, b"", &allowed) {
        return refused;
    }
    no_such("checkout.session", &id)
}

/// No invoice payment is known here: an empty list.
async fn list_invoice_payments(State(account): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let allowed = [
        "payment[type]",
        "payment[payment_intent]",
        "limit",
        "starting_after",
    ];
    let params = match receive(&account, &uri, &headers, b"", &allowed) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    page("/v1/invoice_payments", Vec::new(), &params, false).unwrap_or_else(|refused| refused)
}

async fn list_refunds(State(account): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let allowed = ["charge", "payment_intent", "limit", "starting_after"];
    let params = match receive(&account, &uri, &headers, b"", &allowed) {
        Ok(params) => params,
        Err(refused) => return refused,
    };
    let account = account.lock().unwrap();
    let refunds: Vec<Value> = account
        .refunds
        .iter()
        .rev()
        .filter(|r| param(&params, "charge").is_none_or(|c| r["charge"] == c))
        .filter(|r| param(&params, "payment_intent").is_none_or(|p| r["payment_intent"] == p))
        .cloned()
        .collect();
    page("/v1/refunds", refunds, &params, account.repeats_pages).unwrap_or_else(|refused| refused)
}

async fn retrieve_subscription(
    State(account): Shared,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = receive(&account, &uri, &headers, b"", &["expand[]"]) {
        return refused;
    }
    let subscription = account.lock().unwrap().subscriptions.get(&id).cloned();
    match subscription {
        Some(subscription) => axum::Json(subscription).into_response(),
        None => no_such("subscription", &id),
    }
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
    let allowed: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    if let Err(refused) = receive(&account, &uri, &headers, &body, &allowed) {
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

async fn unknown_path(State(account): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let _ = receive(&account, &uri, &headers, b"", &[]);
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Unrecognized request URL (GET: {}).", uri.path()),
        None,
    )
}
