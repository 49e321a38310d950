//! What tests of the store and of fulfilment share: a fresh database per test, on SQLite and
//! on the PostgreSQL server named by `TEST_POSTGRES_URL` (`scripts/test` starts one).

use std::sync::Arc;

use crate::config::{DatabaseTarget, Secret};
use crate::store::{SqlStore, connect};

/// A store on a database no other test uses; holds what must live as long as the store.
pub struct TestDb {
    pub store: Arc<SqlStore>,
    _dir: Option<tempfile::TempDir>,
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
        _dir: Some(dir),
    }
}

/// `None` (the test is skipped, loudly) only outside CI when no server is configured.
pub async fn postgres() -> Option<TestDb> {
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
    let target = DatabaseTarget::Postgres {
        url: Secret::new(url),
    };
    Some(TestDb {
        store: Arc::new(
            connect(&target)
                .await
                .expect("PostgreSQL connects and migrates"),
        ),
        _dir: None,
    })
}

/// Runs each named contract test (an `async fn(Arc<SqlStore>)` in the calling module) once
/// per backend.
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
pub(crate) use contract;
