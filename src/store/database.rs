//! Connecting to the database named by the settings, and what differs between backends.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};

use super::{SqlStore, StoreError};
use crate::config::DatabaseTarget;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// How a transaction that will write begins. SQLite takes its write lock up front, so
    /// two writers never deadlock upgrading read locks; PostgreSQL locks rows as it goes.
    pub(super) fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// The clause that locks selected rows until the transaction ends. SQLite needs none: a
    /// write transaction there holds the whole database. On PostgreSQL the lock is `NO KEY`:
    /// it still makes writers take turns, but lets a ledger insert whose foreign key points at
    /// the locked row go on (`FOR UPDATE` would block it, and two such transactions taking
    /// their locks in opposite orders deadlock).
    pub(super) fn lock_rows(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR NO KEY UPDATE",
        }
    }

    /// How many writers commit usage debits, and how many Stripe events, in groups (see
    /// `sql::group`): one on SQLite, which writes one transaction at a time anyway; a few on
    /// PostgreSQL, whose commits of different users' rows can overlap.
    pub(super) fn group_writers(self) -> usize {
        match self {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        }
    }

    pub(super) fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// Connects to the database, creating a SQLite file (and its folder) when missing, and
/// applies the migrations that have not been applied yet.
pub async fn connect(target: &DatabaseTarget) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let (backend, pool, listen_url) = match target {
        DatabaseTarget::Sqlite { path } => (Backend::Sqlite, sqlite_pool(path).await?, None),
        DatabaseTarget::Postgres { url } => (
            Backend::Postgres,
            AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url.expose())
                .await?,
            Some(url.clone()),
        ),
    };
    backend.migrator().run(&pool).await?;
    Ok(SqlStore::new(pool, backend, listen_url))
}

async fn sqlite_pool(path: &Path) -> Result<AnyPool, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Database(sqlx::Error::Configuration(
                format!("cannot create the data folder {}: {e}", dir.display()).into(),
            ))
        })?;
    }
    check_writable(path)?;
    let url = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .to_url_lossy();
    let options = AnyConnectOptions::from_str(url.as_str())?;
    let pool = AnyPoolOptions::new()
        // One writer at a time is SQLite's rule; a few connections serve readers meanwhile.
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        // A file cannot drop a connection: no round trip to the connection's thread to check it
        // before each query (sqlx still checks it once it is given back).
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; NORMAL is durable across process
                // crashes in WAL mode; waiting up to 10 s for the write lock beats failing.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// SQLite answers a database it cannot write (a read-only file or disk) with "unable to open
/// database file", and only after the pool has retried for its whole timeout: look first, and
/// say which file and why. WAL mode also creates files beside the database, hence the probe.
fn check_writable(path: &Path) -> Result<(), StoreError> {
    let refuse = |what: &Path, e: std::io::Error| {
        StoreError::Database(sqlx::Error::Configuration(
            format!("{} cannot be written: {e}", what.display()).into(),
        ))
    };
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| refuse(path, e))?;
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(".billing-write-check");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| refuse(dir, e))
}
