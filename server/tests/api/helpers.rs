//! `spawn_app`: a fresh server with its own data folder, and a client that keeps cookies.

use std::collections::HashMap;
use std::sync::Arc;

use billing::api_key::{NewApiKey, SCOPE_CONSUME};
use billing::auth::{self, Password};
use billing::clock::ManualClock;
use billing::config::{Config, Secret};
use billing::domain::{Email, IdempotencyKey, Reason, Role, Source, Timestamp, Tokens, User};
use billing::ledger::Posting;
use billing::store::{NewUser, Store};
use leptos::prelude::LeptosOptions;
use server::startup::Application;
use tempfile::TempDir;

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

    /// A user with `tokens` already bought (none when zero).
    pub async fn user_with_tokens(&self, email: &str, tokens: i64) -> User {
        let user = self
            .store
            .create_user(NewUser {
                email: Email::parse(email).unwrap(),
                password_hash: None,
                role: Role::User,
            })
            .await
            .unwrap();
        if tokens > 0 {
            self.store
                .post(Posting::credit(
                    user.id,
                    Tokens::new(tokens).unwrap(),
                    Source::StripeCheckout,
                    Reason::parse("Test purchase").unwrap(),
                    IdempotencyKey::parse(&format!("test:{email}")).unwrap(),
                ))
                .await
                .unwrap();
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

    /// A user or admin with a password, made directly in the store.
    pub async fn account(&self, email: &str, role: Role) -> User {
        let email = Email::parse(email).unwrap();
        let hash = auth::hash_password(Password::choose(PASSWORD, &email).unwrap())
            .await
            .unwrap();
        self.store
            .create_user(NewUser {
                email,
                password_hash: Some(hash),
                role,
            })
            .await
            .unwrap()
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

/// A fresh database on the PostgreSQL server named by `TEST_POSTGRES_URL` (`scripts/test`
/// starts one); `None`, skipping the test loudly, only outside CI when none is configured.
pub async fn fresh_postgres_database() -> Option<String> {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "TEST_POSTGRES_URL is required in CI: run the tests through scripts/test"
        );
        eprintln!("SKIPPED: TEST_POSTGRES_URL is unset (scripts/test starts a PostgreSQL)");
        return None;
    };
    use sqlx::Connection;
    let name = format!("billing_server_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("the test PostgreSQL answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (server, _) = admin_url.rsplit_once('/').expect("a URL naming a database");
    Some(format!("{server}/{name}"))
}

/// A password hash for [`PASSWORD`], for accounts made straight in the database.
pub async fn password_hash() -> String {
    auth::hash_password(
        Password::choose(PASSWORD, &Email::parse("someone@example.com").unwrap()).unwrap(),
    )
    .await
    .unwrap()
}

/// What the tests' server wrote to its logs, for as long as this is kept (on this thread: a
/// `#[tokio::test]` runs the server it spawned on its own thread).
pub struct CapturedLogs {
    text: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl CapturedLogs {
    /// Every log line at or above `level` so far.
    pub fn at_least(&self, level: tracing::Level) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned();
        text.lines()
            .filter(|line| {
                line.split_whitespace()
                    .next()
                    .and_then(|word| word.parse::<tracing::Level>().ok())
                    .is_some_and(|found| found <= level)
            })
            .map(str::to_owned)
            .collect()
    }
}

/// Starts capturing the logs of everything that runs on this thread.
pub fn capture_logs() -> CapturedLogs {
    #[derive(Clone)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let text = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Sink(text.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .with_writer(move || sink.clone())
        .finish();
    CapturedLogs {
        text,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}
