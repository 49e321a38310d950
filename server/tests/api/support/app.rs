//! `spawn_app`: a fresh server with its own data folder, the users and browsers of a test, and
//! Stripe's deliveries to it.

use std::collections::HashMap;
use std::sync::Arc;

use billing::api_key::{NewApiKey, SCOPE_CONSUME};
use billing::auth::{self, Password};
use billing::clock::ManualClock;
use billing::config::Secret;
use billing::domain::{Email, Role, Timestamp, User};
use billing::store::Store;
use billing::testing::{FakeUser, StripeEvent, balance, paid_purchase};
use leptos::prelude::LeptosOptions;
use server::settings::Settings;
use server::startup::Application;
use tempfile::TempDir;
use tokio::sync::OnceCell;

use super::requests::{Answer, ApiClient, Browser};
use super::stripe_api::StripeApi;
use super::wait::eventually;
use super::webhooks::Webhooks;

pub struct TestApp {
    /// `http://127.0.0.1:port`, where the app listens.
    pub address: String,
    pub store: Arc<dyn Store>,
    pub data_dir: TempDir,
    /// The clock the rate limits read: move it instead of sleeping.
    pub clock: ManualClock,
    /// What the app checks Stripe's signatures with (made in its data folder unless set).
    pub webhook_secret: Secret,
    /// When the app was built, on tokio's clock: its background jobs count their periods
    /// from a moment after this.
    pub started: tokio::time::Instant,
}

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stripe's deliveries to this app, signed with its secret.
    pub fn webhooks(&self) -> Webhooks {
        Webhooks::new(&self.address, self.webhook_secret.expose())
    }

    /// Stripe delivering `event`, signed now with the app's secret.
    pub async fn stripe_sends(&self, event: &StripeEvent) -> Answer {
        self.webhooks().send(event).await
    }

    /// A `Stripe-Signature` header for `body`, signed `at` (seconds) with the app's secret.
    pub fn sign_at(&self, body: &str, at: i64) -> String {
        self.webhooks().sign_at(body, at)
    }

    /// A `Stripe-Signature` header for `body`, signed now with the app's secret.
    pub fn sign(&self, body: &str) -> String {
        self.webhooks().sign(body)
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

    /// A service calling the consume API with `key`.
    pub fn service(&self, key: &str) -> ApiClient {
        ApiClient::new(&self.address, Some(key))
    }

    /// A caller of the consume API without any key.
    pub fn service_without_key(&self) -> ApiClient {
        ApiClient::new(&self.address, None)
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
    pub async fn user(&self, name: &str) -> Browser {
        self.signed_in(name, Role::User).await
    }

    /// `name@example.com`, a new admin, signed in in a browser of their own.
    pub async fn admin(&self, name: &str) -> Browser {
        self.signed_in(name, Role::Admin).await
    }

    async fn signed_in(&self, name: &str, role: Role) -> Browser {
        let email = format!("{name}@example.com");
        let user = self.account(&email, role).await;
        self.log_in(&email, user).await
    }

    /// A new browser signed in as `user` (an account made with the test password).
    pub async fn log_in(&self, email: &str, user: User) -> Browser {
        let mut browser = self.browser();
        let login = browser.log_in(email).await;
        assert_eq!(login.status, 200, "login of {email}: {}", login.text);
        browser.user = Some(user);
        browser
    }

    /// A browser of its own, signed in as nobody.
    pub fn browser(&self) -> Browser {
        Browser::at(&self.address)
    }

    /// The user's balance, in tokens.
    pub async fn balance(&self, user: &User) -> i64 {
        balance(&*self.store, user.id).await
    }

    /// A connection of the test's own to the app's SQLite database, for what no route or
    /// store method shows (a session's deadline, an inbox row as stored).
    pub async fn sqlite(&self) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        let path = self.data_dir.path().join("billing.sqlite3");
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("the app's database opens")
    }

    /// Moves every session's inactivity deadline to `deadline`, in the record and in the
    /// column the store filters on, as the store itself saves them: time passing, for sessions.
    pub async fn age_sessions(&self, deadline: time::OffsetDateTime) {
        use tower_sessions::SessionStore;
        use tower_sessions::session::Id;
        use tower_sessions_sqlx_store::SqliteStore;
        use tower_sessions_sqlx_store::sqlx::SqlitePool;

        let path = self.data_dir.path().join("billing.sqlite3");
        let pool = SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("the app's database opens");
        let store = SqliteStore::new(pool.clone())
            .with_table_name("sessions")
            .unwrap();
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(!ids.is_empty(), "no session to age");
        for id in ids {
            let id: Id = id.parse().expect("a session id as the store writes it");
            let mut record = store.load(&id).await.unwrap().expect("a live session");
            record.expiry_date = deadline;
            store.save(&record).await.unwrap();
        }
        pool.close().await;
    }

    /// Waits until `check` holds and no Stripe event is left unfinished (the simulated
    /// Stripe's webhooks arrive in the background).
    pub async fn settled(&self, what: &str, check: impl AsyncFn() -> bool) {
        eventually(what, async || {
            check().await && self.store.inbox_unfinished().await.unwrap().is_empty()
        })
        .await
    }
}

/// The webhook secret of an app on live Stripe ([`spawn_app_on`]).
pub const LIVE_WEBHOOK_SECRET: &str = "whsec_standin";

/// Spawns the app on live Stripe, the stand-in `stripe`, with settings on top; the prices it
/// reads as it starts are forgotten, so that a test sees only the requests it causes.
pub async fn spawn_app_on(stripe: &StripeApi, vars: &[(&str, &str)]) -> TestApp {
    let settings = stripe.settings();
    let mut all: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("STRIPE_WEBHOOK_SECRET", LIVE_WEBHOOK_SECRET));
    all.extend_from_slice(vars);
    let app = spawn_app_with(&all).await;
    stripe.forget_requests();
    app
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns the app on a fresh database of the test PostgreSQL server; `None` where there is
/// none (outside CI: the test then passes on SQLite alone).
pub async fn spawn_app_on_postgres() -> Option<TestApp> {
    let url = billing::testing::empty_postgres_url().await?;
    Some(spawn_app_with(&[("DATABASE_URL", &url)]).await)
}

/// Spawns the app with settings on top of the embedded default.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    spawn(vars, "target/site").await
}

/// Spawns the app serving the site folder `site_root` (the front end's files in its `pkg`).
pub async fn spawn_app_serving(site_root: &std::path::Path) -> TestApp {
    spawn(&[], &site_root.display().to_string()).await
}

async fn spawn(vars: &[(&str, &str)], site_root: &str) -> TestApp {
    // `TEST_LOG=1 cargo test ...` shows the server's logs.
    if std::env::var_os("TEST_LOG").is_some() {
        server::telemetry::init(server::settings::LogFormat::Pretty);
    }
    let data_dir = tempfile::tempdir().expect("a temporary folder");
    // The site's own URL must be known before it starts (the simulated Stripe's pages and
    // return URLs point at it): the port is taken now, and the app serves on this listener.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("a bound listener's address");
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
    let settings =
        Settings::from_lookup(|name| settings.get(name).cloned()).expect("valid settings");
    let leptos_options = LeptosOptions::builder()
        .output_name("billing")
        .site_root(site_root)
        .site_addr(address)
        .build();

    let clock = ManualClock::starting_at(Timestamp::now());
    let started = tokio::time::Instant::now();
    let app = Application::build_on(listener, settings, leptos_options, Arc::new(clock.clone()))
        .await
        .expect("the app starts");
    assert_eq!(
        app.address(),
        address,
        "the app serves on the listener it was given"
    );
    let store = app.state().store.clone();
    let webhook_secret = app.state().webhook_secret.clone();
    tokio::spawn(app.run_until_stopped());

    TestApp {
        address: format!("http://{address}"),
        store,
        data_dir,
        clock,
        webhook_secret,
        started,
    }
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
