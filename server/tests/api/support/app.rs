//! `spawn_app`: a fresh server with its own data folder, the users and browsers of a test, and
//! Stripe's deliveries to it.

use std::collections::HashMap;
use std::sync::Arc;

use billing::api_key::{NewApiKey, SCOPE_CONSUME};
use billing::auth::{self, Password};
use billing::clock::ManualClock;
use billing::config::{Config, Secret};
use billing::domain::{Email, Role, Timestamp, User};
use billing::store::Store;
use billing::testing::{FakeUser, StripeEvent, balance, paid_purchase};
use leptos::prelude::LeptosOptions;
use server::startup::Application;
use tempfile::TempDir;
use tokio::sync::OnceCell;

use super::requests::{Answer, Browser};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub data_dir: TempDir,
    /// The clock the rate limits read: move it instead of sleeping.
    pub clock: ManualClock,
    /// What the app checks Stripe's signatures with (made in its data folder unless set).
    pub webhook_secret: Secret,
}

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A `Stripe-Signature` header for `body`, signed `at` (seconds) with the app's secret.
    pub fn sign_at(&self, body: &str, at: i64) -> String {
        billing::stripe::signature::sign(body.as_bytes(), self.webhook_secret.expose(), at)
    }

    /// A `Stripe-Signature` header for `body`, signed now with the app's secret.
    pub fn sign(&self, body: &str) -> String {
        self.sign_at(body, Timestamp::now().as_millis() / 1000)
    }

    /// A user with `tokens` already bought (none when zero), without a password.
    pub async fn user_with_tokens(&self, email: &str, tokens: i64) -> User {
        let user = FakeUser::new(email).create(&*self.store).await;
        if tokens > 0 {
            paid_purchase(&*self.store, user.id, tokens, &format!("test:{email}")).await;
        }
        user
    }

    /// A fresh service API key allowed to consume; returns its secret.
    pub async fn api_key(&self) -> String {
        let made = NewApiKey::generate();
        self.store
            .create_api_key("test", &made.display_prefix, &made.digest, &[SCOPE_CONSUME])
            .await
            .unwrap();
        made.secret.expose().to_owned()
    }

    /// A user or admin with the test password, made directly in the store.
    pub async fn account(&self, email: &str, role: Role) -> User {
        let user = FakeUser::new(email).password_hash(&password_hash().await);
        let user = match role {
            Role::Admin => user.admin(),
            Role::User => user,
        };
        user.create(&*self.store).await
    }

    /// `name@example.com`, a new user, signed in in a browser of their own.
    pub async fn user(&self, name: &str) -> Browser<'_> {
        self.signed_in(name, Role::User).await
    }

    /// `name@example.com`, a new admin, signed in in a browser of their own.
    pub async fn admin(&self, name: &str) -> Browser<'_> {
        self.signed_in(name, Role::Admin).await
    }

    async fn signed_in(&self, name: &str, role: Role) -> Browser<'_> {
        let email = format!("{name}@example.com");
        let user = self.account(&email, role).await;
        let mut browser = Browser::new(self, client(), Some(user));
        let login = browser.log_in(&email).await;
        assert_eq!(login.status, 200, "login of {email}: {}", login.text);
        browser
    }

    /// A browser of its own, signed in as nobody.
    pub fn browser(&self) -> Browser<'_> {
        Browser::new(self, client(), None)
    }

    /// A client with a cookie jar of its own (another browser).
    pub fn new_client(&self) -> reqwest::Client {
        client()
    }

    /// A new client, logged in as `email`.
    pub async fn logged_in(&self, email: &str) -> reqwest::Client {
        let client = self.new_client();
        let response = client
            .post(self.url("/api/auth/login"))
            .form(&[("email", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login of {email}");
        client
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the request is sent")
    }

    /// Stripe delivering `event`, signed now with the app's secret.
    pub async fn stripe_sends(&self, event: &StripeEvent) -> Answer {
        let body = event.payload();
        self.browser()
            .send(
                self.client
                    .post(self.url("/api/webhooks/stripe"))
                    .header("content-type", "application/json")
                    .header("stripe-signature", self.sign(&body))
                    .body(body),
            )
            .await
    }

    /// The user's balance, in tokens.
    pub async fn balance(&self, user: &User) -> i64 {
        balance(&*self.store, user.id).await
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns the app with settings on top of the embedded default.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    // `TEST_LOG=1 cargo test ...` shows the server's logs.
    if std::env::var_os("TEST_LOG").is_some() {
        server::telemetry::init(billing::config::LogFormat::Pretty);
    }
    let data_dir = tempfile::tempdir().expect("a temporary folder");
    // The site's own URL must be known before it starts (the simulated Stripe's pages and
    // return URLs point at it): take a free port now.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut settings: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings
        .entry("DATA_DIR".into())
        .or_insert_with(|| data_dir.path().display().to_string());
    settings
        .entry("DEMO_ACCOUNTS".into())
        .or_insert_with(|| "false".into());
    settings
        .entry("SITE_URL".into())
        .or_insert_with(|| format!("http://{address}"));
    let config = Config::from_lookup(|name| settings.get(name).cloned()).expect("valid settings");
    let leptos_options = LeptosOptions::builder()
        .output_name("billing")
        .site_root("target/site")
        .site_addr(address)
        .build();

    let clock = ManualClock::starting_at(Timestamp::now());
    let app = Application::build_with_clock(config, leptos_options, Arc::new(clock.clone()))
        .await
        .expect("the app starts");
    let address = format!("http://{}", app.address());
    let store = app.state().store.clone();
    let webhook_secret = app.state().webhook_secret.clone();
    tokio::spawn(app.run_until_stopped());

    TestApp {
        address,
        client: client(),
        store,
        data_dir,
        clock,
        webhook_secret,
    }
}

/// A client that keeps cookies and shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // A request that never gets an answer fails its test instead of hanging the run.
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("a client")
}

/// A password hash for [`PASSWORD`], for accounts made straight in the database (made once:
/// argon2 is slow on purpose, and one hash verifies for any account).
pub async fn password_hash() -> String {
    static HASH: OnceCell<String> = OnceCell::const_new();
    HASH.get_or_init(|| async {
        auth::hash_password(
            Password::choose(PASSWORD, &Email::parse("someone@example.com").unwrap()).unwrap(),
        )
        .await
        .unwrap()
    })
    .await
    .clone()
}
