//! What tests share (this crate's, the server's and the benchmark, behind the `testing`
//! feature): a fresh database per test, on SQLite and on the PostgreSQL server named by
//! `TEST_POSTGRES_URL` (`scripts/test` starts one); users and purchases made straight in the
//! store ([`fakes`]); Stripe events built from the recorded fixtures ([`events`]); real
//! database failures on demand ([`faults`]); and the model-based history checker
//! ([`history`]).

pub mod events;
pub mod fakes;
pub mod faults;
pub mod history;

use std::sync::Arc;

pub use events::StripeEvent;
pub use fakes::{FakeUser, balance, paid_purchase};
pub use faults::Faults;

use crate::clock::ManualClock;
use crate::config::{DatabaseTarget, Secret};
use crate::store::{Backend, SqlStore, connect};

/// The settings of a production server with live Stripe, short of what only the HTTP server
/// reads (its device-cookie key and metrics token).
pub const PRODUCTION_SETTINGS: [(&str, &str); 7] = [
    ("APP_ENV", "production"),
    ("SITE_URL", "https://promptbloom.app"),
    ("STRIPE_SECRET_KEY", "sk_live_123"),
    ("STRIPE_WEBHOOK_SECRET", "whsec_abc"),
    ("STRIPE_PRICE_TOKENS_SMALL", "price_s"),
    ("STRIPE_PRICE_TOKENS_MEDIUM", "price_m"),
    ("STRIPE_PRICE_TOKENS_LARGE", "price_l"),
];

/// A store on a database no other test uses; holds what must live as long as the store.
pub struct TestDb {
    pub store: Arc<SqlStore>,
    target: DatabaseTarget,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// The database's URL, for a server process to connect to.
    pub fn url(&self) -> String {
        match &self.target {
            DatabaseTarget::Sqlite { path } => format!("sqlite://{}", path.display()),
            DatabaseTarget::Postgres { url } => url.expose().to_owned(),
        }
    }

    /// Another store on the same database, with a pool of its own: a second server.
    pub async fn another_node(&self) -> Arc<SqlStore> {
        Arc::new(connect(&self.target).await.expect("a second node connects"))
    }

    /// A store on the same database that tells time by `clock`, for what expires.
    pub async fn with_clock(&self, clock: &ManualClock) -> Arc<SqlStore> {
        let store = connect(&self.target)
            .await
            .expect("a clocked store connects");
        Arc::new(store.with_clock(Arc::new(clock.clone())))
    }

    pub fn backend(&self) -> Backend {
        crate::store::Store::backend(&*self.store)
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let target = DatabaseTarget::Sqlite {
        path: dir.path().join("nested/billing.sqlite3"),
    };
    TestDb {
        store: Arc::new(
            connect(&target)
                .await
                .expect("SQLite connects and migrates"),
        ),
        target,
        _dir: Some(dir),
    }
}

/// `None` (the test is skipped, loudly) only outside CI when no server is configured.
pub async fn postgres() -> Option<TestDb> {
    let target = empty_postgres().await?;
    Some(TestDb {
        store: Arc::new(
            connect(&target)
                .await
                .expect("PostgreSQL connects and migrates"),
        ),
        target,
        _dir: None,
    })
}

/// The URL of a new, empty database on the test PostgreSQL server, for a server process.
pub async fn empty_postgres_url() -> Option<String> {
    match empty_postgres().await? {
        DatabaseTarget::Postgres { url } => Some(url.expose().to_owned()),
        DatabaseTarget::Sqlite { .. } => unreachable!("a PostgreSQL target"),
    }
}

/// A new, empty database on the test PostgreSQL server (nothing migrated yet).
pub async fn empty_postgres() -> Option<DatabaseTarget> {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "TEST_POSTGRES_URL is required in CI: run the tests through scripts/test"
        );
        eprintln!("SKIPPED: TEST_POSTGRES_URL is unset (scripts/test starts a PostgreSQL)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("billing_test_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .expect("the test PostgreSQL answers");
    sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("TEST_POSTGRES_URL must name a database"),
    };
    Some(DatabaseTarget::Postgres {
        url: Secret::new(url),
    })
}

/// Runs each named contract test (an `async fn(Arc<SqlStore>)` in the calling module) once
/// per backend.
#[cfg(test)]
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let db = $crate::testing::sqlite().await;
                    super::$test(db.store.clone()).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some(db) = $crate::testing::postgres().await {
                        super::$test(db.store.clone()).await;
                    }
                }
            )*
        }
    };
}
#[cfg(test)]
pub(crate) use contract;

/// Like [`contract!`], for tests of what expires: each gets a store whose clock starts at
/// [`clocked_start`] and moves only when the test moves it
/// (`async fn(Arc<SqlStore>, ManualClock)`).
#[cfg(test)]
macro_rules! clocked_contract {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let db = $crate::testing::sqlite().await;
                    let clock = $crate::testing::clocked_start();
                    super::$test(db.with_clock(&clock).await, clock).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some(db) = $crate::testing::postgres().await {
                        let clock = $crate::testing::clocked_start();
                        super::$test(db.with_clock(&clock).await, clock).await;
                    }
                }
            )*
        }
    };
}
#[cfg(test)]
pub(crate) use clocked_contract;

/// A manual clock at a fixed moment (2027-01-15 08:00 UTC).
pub fn clocked_start() -> ManualClock {
    ManualClock::starting_at(crate::domain::Timestamp::from_millis(1_800_000_000_000))
}
