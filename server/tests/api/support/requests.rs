//! Requests as a test reads them: `app.user("ada").await.post_json(path, body)`, answered
//! whole (status, headers, body), so a test asserts instead of building `.send()` chains.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::app::{PASSWORD, TestApp};
use billing::domain::User;

/// A browser: its own cookie jar, redirects shown rather than followed; signed in as `user`
/// when it has one.
pub struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    pub user: Option<User>,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
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

    async fn read(response: reqwest::Response) -> Self {
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.expect("the body is read"),
        }
    }
}

impl<'a> Browser<'a> {
    pub(super) fn new(app: &'a TestApp, client: reqwest::Client, user: Option<User>) -> Self {
        Self { app, client, user }
    }

    /// The signed-in user (panics for an anonymous browser).
    pub fn me(&self) -> &User {
        self.user.as_ref().expect("a signed-in browser")
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(self.app.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Answer {
        self.send(self.client.post(self.app.url(path)).json(&body))
            .await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send(self.client.post(self.app.url(path)).form(form))
            .await
    }

    /// Any request this browser builds (another method, headers of its own).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::read(request.send().await.expect("the request is sent")).await
    }

    /// Logs in as `email` with the test password; the answer of the login.
    pub async fn log_in(&mut self, email: &str) -> Answer {
        self.post_form(
            "/api/auth/login",
            &[("email", email), ("password", PASSWORD)],
        )
        .await
    }
}
