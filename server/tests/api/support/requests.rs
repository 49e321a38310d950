//! Requests as a test reads them: `app.user("ada").await.post_json(path, body)`, answered
//! whole (status, headers, body), so a test asserts instead of building `.send()` chains.
//! Anything else (a header, another body) is a [`Request`] to adjust and `.await`:
//! `browser.post(path).header("origin", "https://evil.example").json(&body).await`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use billing::domain::User;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Serialize;
use serde_json::Value;

use super::app::PASSWORD;

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as it came.
    pub bytes: Vec<u8>,
    /// The body as text (the servers here answer UTF-8).
    pub text: String,
}

impl Answer {
    /// The body as JSON; a body that is not JSON fails the test.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| {
            panic!(
                "the answer is not JSON ({error}): {} {}",
                self.status, self.text
            )
        })
    }

    /// A page's HTML without hydration's markers (`<!>` comments the browser never shows),
    /// to look for what it says.
    pub fn page(&self) -> String {
        self.text.replace("<!>", "")
    }

    /// The body as JSON, when it is JSON.
    pub fn try_json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error message of a refusal (`{"message": ...}`).
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The `Set-Cookie` line that sets `name`, whole (value and attributes).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&prefix))
            .map(str::to_owned)
    }

    async fn read(response: reqwest::Response) -> Result<Self, reqwest::Error> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?.to_vec();
        Ok(Self {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        })
    }
}

/// A request to adjust (headers, a body) and `.await` for its [`Answer`].
#[must_use = "a request does nothing until it is awaited"]
pub struct Request(reqwest::RequestBuilder);

impl Request {
    pub fn header(self, name: &str, value: impl AsRef<str>) -> Self {
        Self(self.0.header(name, value.as_ref()))
    }

    pub fn bearer(self, token: &str) -> Self {
        Self(self.0.bearer_auth(token))
    }

    pub fn query(self, query: &[(&str, &str)]) -> Self {
        Self(self.0.query(query))
    }

    pub fn json(self, body: &impl Serialize) -> Self {
        Self(self.0.json(body))
    }

    pub fn form(self, form: &[(&str, &str)]) -> Self {
        Self(self.0.form(form))
    }

    /// A body sent as it stands (malformed JSON, bytes that are not UTF-8...).
    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self(self.0.body(body))
    }

    /// The answer, or why none came (for servers a test kills or cuts off).
    pub async fn try_send(self) -> Result<Answer, reqwest::Error> {
        Answer::read(self.0.send().await?).await
    }

    /// A stream of server-sent events, read as they come (its status and headers now).
    pub async fn events(self) -> EventStream {
        let response = self.0.send().await.expect("the stream is answered");
        EventStream {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            response,
            unread: String::new(),
        }
    }
}

/// One server-sent event: its `event:` name and its `data:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    pub name: String,
    pub data: String,
}

/// A response of server-sent events, read event by event (keep-alive comments skipped).
pub struct EventStream {
    pub status: u16,
    pub headers: HeaderMap,
    response: reqwest::Response,
    unread: String,
}

impl EventStream {
    /// The next event, or `None` when the stream ends first; panics after `within`.
    pub async fn next(&mut self, within: std::time::Duration) -> Option<ServerEvent> {
        match tokio::time::timeout(within, self.next_event()).await {
            Ok(event) => event,
            Err(_) => panic!("no event and no end of the stream within {within:?}"),
        }
    }

    /// Whether the stream ends within `within` (events before its end are skipped).
    pub async fn ends_within(&mut self, within: std::time::Duration) -> bool {
        tokio::time::timeout(within, async { while self.next_event().await.is_some() {} })
            .await
            .is_ok()
    }

    async fn next_event(&mut self) -> Option<ServerEvent> {
        loop {
            while let Some(end) = self.unread.find("\n\n") {
                let block: String = self.unread.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .filter_map(|line| line.strip_prefix(name))
                        .map(|value| value.strip_prefix(' ').unwrap_or(value))
                        .collect::<Vec<_>>()
                };
                let data = field("data:");
                if data.is_empty() {
                    continue; // a comment (keep-alive) or a bare id
                }
                return Some(ServerEvent {
                    name: field("event:").concat(),
                    data: data.join("\n"),
                });
            }
            // An error (the connection cut off) ends the stream as its end does.
            let chunk = self.response.chunk().await.ok().flatten()?;
            self.unread.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

impl From<reqwest::RequestBuilder> for Request {
    fn from(request: reqwest::RequestBuilder) -> Self {
        Self(request)
    }
}

impl IntoFuture for Request {
    type Output = Answer;
    type IntoFuture = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.try_send().await.expect("the request is answered") })
    }
}

/// A client that keeps cookies and shows redirects instead of following them.
pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // A request that never gets an answer fails its test instead of hanging the run.
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("a client")
}

/// A browser at one server: its own cookie jar, redirects shown rather than followed;
/// signed in as `user` when it has one. A clone is the same browser (the same cookie jar).
#[derive(Clone)]
pub struct Browser {
    base: String,
    client: reqwest::Client,
    pub user: Option<User>,
}

impl Browser {
    /// A new browser, signed in as nobody, at `base` (`http://127.0.0.1:port`).
    pub fn at(base: &str) -> Self {
        Self::with_client(base, client())
    }

    /// A new browser that sends every request with `headers` (the address a proxy names).
    pub fn with_headers(base: &str, headers: HeaderMap) -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .expect("a client");
        Self::with_client(base, client)
    }

    fn with_client(base: &str, client: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
            user: None,
        }
    }

    /// The same browser (the same cookie jar) at another server: another node of a cluster.
    pub fn on(&self, base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client: self.client.clone(),
            user: self.user.clone(),
        }
    }

    /// The signed-in user (panics for an anonymous browser).
    pub fn me(&self) -> &User {
        self.user.as_ref().expect("a signed-in browser")
    }

    /// `path` on this browser's server; an absolute URL (a page Stripe's simulator sent the
    /// browser to) is kept as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> Request {
        Request(self.client.request(method, self.url(path)))
    }

    pub fn get(&self, path: &str) -> Request {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Request {
        self.request(Method::POST, path)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Answer {
        self.post(path).json(&body).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.post(path).form(form).await
    }

    /// Logs in as `email` with the test password; the answer of the login.
    pub async fn log_in(&self, email: &str) -> Answer {
        self.log_in_with(email, PASSWORD).await
    }

    pub async fn log_in_with(&self, email: &str, password: &str) -> Answer {
        self.post_form(
            "/api/auth/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    pub async fn sign_up(&self, email: &str, password: &str) -> Answer {
        self.post_form(
            "/api/auth/signup",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// `/api/auth/me`: who this browser is signed in as (`null` for nobody).
    pub async fn whoami(&self) -> Value {
        let me = self.get("/api/auth/me").await;
        assert_eq!(me.status, 200, "{}", me.text);
        me.json()
    }
}

/// A service calling the consume API with its API key (or with none).
pub struct ApiClient {
    base: String,
    client: reqwest::Client,
    key: Option<String>,
}

impl ApiClient {
    pub fn new(base: &str, key: Option<&str>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("a client"),
            key: key.map(str::to_owned),
        }
    }

    /// `POST path` with the API key (when there is one), nothing else yet.
    pub fn post(&self, path: &str) -> Request {
        let request = Request(self.client.post(format!("{}{path}", self.base)));
        match &self.key {
            Some(key) => request.bearer(key),
            None => request,
        }
    }

    /// `POST /api/tokens/consume` with `body`, under `idempotency_key`.
    pub async fn consume(&self, idempotency_key: &str, body: &Value) -> Answer {
        self.consume_request(Some(idempotency_key)).json(body).await
    }

    /// The consume request before its body (a test's own body or content type), with an
    /// `Idempotency-Key` when there is one.
    pub fn consume_request(&self, idempotency_key: Option<&str>) -> Request {
        let request = self.post("/api/tokens/consume");
        match idempotency_key {
            Some(key) => request.header("idempotency-key", key),
            None => request,
        }
    }

    /// `POST /api/tokens/consume/batch` with `{"items": items}`.
    pub async fn consume_batch(&self, items: &Value) -> Answer {
        self.post("/api/tokens/consume/batch")
            .json(&serde_json::json!({ "items": items }))
            .await
    }

    /// `POST /api/tokens/holds` with `body`, under `idempotency_key`.
    pub async fn open_hold(&self, idempotency_key: &str, body: &Value) -> Answer {
        self.post("/api/tokens/holds")
            .header("idempotency-key", idempotency_key)
            .json(body)
            .await
    }

    /// `POST /api/tokens/holds/{hold}/capture` with `body`; `hold` as it goes in the path
    /// (an id, or anything a test sends instead).
    pub async fn capture_hold(&self, hold: impl std::fmt::Display, body: &Value) -> Answer {
        self.post(&format!("/api/tokens/holds/{hold}/capture"))
            .json(body)
            .await
    }

    /// `POST /api/tokens/holds/{hold}/release`.
    pub async fn release_hold(&self, hold: impl std::fmt::Display) -> Answer {
        self.post(&format!("/api/tokens/holds/{hold}/release"))
            .await
    }
}
