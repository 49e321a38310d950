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
    let target = empty_postgres().await?;
    Some(TestDb {
        store: Arc::new(
            connect(&target)
                .await
                .expect("PostgreSQL connects and migrates"),
        ),
        _dir: None,
    })
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

/// Real database failures on demand. A trigger fails the statement that marks a chosen Stripe
/// event done, after the event's changes were made in the same transaction, so the database
/// rolls all of it back: what a dropped connection, a lock timeout or a busy SQLite does to a
/// transaction in the middle of applying an event.
pub struct Faults {
    store: Arc<SqlStore>,
}

impl Faults {
    pub async fn install(store: &Arc<SqlStore>) -> Self {
        use crate::store::{Backend, Store};
        let trigger = match store.backend() {
            Backend::Sqlite => {
                "CREATE TABLE injected_faults (event_id TEXT PRIMARY KEY);
                 CREATE TRIGGER injected_fault BEFORE UPDATE OF processed_at ON stripe_events
                 WHEN NEW.processed_at IS NOT NULL
                     AND EXISTS (SELECT 1 FROM injected_faults WHERE event_id = NEW.id)
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
            }
            Backend::Postgres => {
                "CREATE TABLE injected_faults (event_id TEXT PRIMARY KEY);
                 CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     IF NEW.processed_at IS NOT NULL
                         AND EXISTS (SELECT 1 FROM injected_faults WHERE event_id = NEW.id) THEN
                         RAISE EXCEPTION 'injected fault';
                     END IF;
                     RETURN NEW;
                 END $$;
                 CREATE TRIGGER injected_fault BEFORE UPDATE ON stripe_events
                     FOR EACH ROW EXECUTE FUNCTION injected_fault();"
            }
        };
        sqlx::raw_sql(trigger)
            .execute(store.pool())
            .await
            .expect("the fault trigger installs");
        Self {
            store: store.clone(),
        }
    }

    /// Every transaction that would finish `event` fails from now on.
    pub async fn fail(&self, event: &str) {
        sqlx::query("INSERT INTO injected_faults (event_id) VALUES ($1)")
            .bind(event)
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    /// The database is well again.
    pub async fn heal(&self) {
        sqlx::query("DELETE FROM injected_faults")
            .execute(self.store.pool())
            .await
            .unwrap();
    }
}
