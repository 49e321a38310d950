//! Login sessions: tower-sessions with its sqlx store, on the app's own database (the
//! `sessions` table comes with our migrations), so every node sees every session.
//!
//! The cookie is HttpOnly, SameSite=Lax (users come back from Stripe Checkout, a top-level
//! navigation from another site), Secure in production and over https, and expires after a
//! period of inactivity. Expired sessions are deleted in the background.
//!
//! Every signed-in request pushes the deadline back, but a session whose data did not change is
//! written again only when its deadline would move by a minute or more ([`SAVE_EVERY`]): a page
//! view or an opened balance stream is then one read, not a read and a durable write.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use billing::config::{Config, DatabaseTarget};
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;
use tower_sessions_sqlx_store::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

pub const COOKIE_NAME: &str = "pb_session";
const TABLE: &str = "sessions";

/// How often expired sessions are deleted.
const CLEANUP_PERIOD: Duration = Duration::from_secs(300);

/// A session whose data is as it was loaded is saved again only when that moves its deadline
/// by this much or more: it may then end up to this much before its cookie says.
pub const SAVE_EVERY: time::Duration = time::Duration::MINUTE;

/// The session store of whichever database the app runs on, saving a session again only when
/// its data changed or its deadline moves by [`SAVE_EVERY`] or more.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    /// The records requests in flight on this node loaded, by session id: what a save compares
    /// with. Forgotten at their save, or after a while (a request that failed saves nothing).
    loaded: moka::sync::Cache<Id, Arc<Record>>,
}

#[derive(Debug, Clone)]
enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// The most records kept for requests in flight, and for how long at most.
const LOADED_MOST: u64 = 100_000;
const LOADED_FOR: Duration = Duration::from_secs(300);

impl Sessions {
    fn new(store: Store) -> Self {
        Self {
            store,
            loaded: moka::sync::Cache::builder()
                .max_capacity(LOADED_MOST)
                .time_to_live(LOADED_FOR)
                .build(),
        }
    }

    /// True when saving `record` would write only a deadline less than [`SAVE_EVERY`] later than
    /// the one stored when this request loaded it.
    fn unchanged_since_loaded(&self, record: &Record) -> bool {
        self.loaded.remove(&record.id).is_some_and(|loaded| {
            let moved = record.expiry_date - loaded.expiry_date;
            loaded.data == record.data && moved >= time::Duration::ZERO && moved < SAVE_EVERY
        })
    }

    /// Opens a small pool of the backend's own type (the store needs one) on the same database.
    pub async fn connect(target: &DatabaseTarget) -> Result<Self, sqlx::Error> {
        Ok(Self::new(match target {
            DatabaseTarget::Sqlite { path } => {
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    // A file cannot drop a connection: no check before each query.
                    .test_before_acquire(false)
                    .connect_with(
                        SqliteConnectOptions::new()
                            .filename(path)
                            .busy_timeout(Duration::from_secs(10)),
                    )
                    .await?;
                Store::Sqlite(
                    SqliteStore::new(pool)
                        .with_table_name(TABLE)
                        .map_err(|e| sqlx::Error::Configuration(e.into()))?,
                )
            }
            DatabaseTarget::Postgres { url } => {
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url.expose())
                    .await?;
                Store::Postgres(
                    PostgresStore::new(pool)
                        .with_schema_name("public")
                        .and_then(|store| store.with_table_name(TABLE))
                        .map_err(|e| sqlx::Error::Configuration(e.into()))?,
                )
            }
        }))
    }

    /// The layer that loads and saves sessions around each request; a session ends after
    /// `idle_timeout` without one.
    pub fn layer(&self, config: &Config, idle_timeout: Duration) -> SessionManagerLayer<Sessions> {
        SessionManagerLayer::new(self.clone())
            .with_name(COOKIE_NAME)
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(config.secure_cookies())
            .with_path("/")
            // Inactivity is counted from the last request, not the last login: tower-sessions
            // pushes the deadline (and the cookie's Max-Age) back only when it saves, so every
            // signed-in request saves (and the store writes when the deadline moved enough).
            // Anonymous visitors have no session to save.
            .with_always_save(true)
            .with_expiry(Expiry::OnInactivity(
                time::Duration::try_from(idle_timeout).unwrap_or(time::Duration::DAY),
            ))
    }

    /// Deletes expired sessions every few minutes, for as long as the server runs.
    pub fn spawn_cleanup(&self) {
        let sessions = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CLEANUP_PERIOD);
            loop {
                tick.tick().await;
                if let Err(error) = sessions.delete_expired().await {
                    tracing::warn!(%error, "deleting expired sessions failed");
                }
            }
        });
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.store)
            .field("loaded", &self.loaded.entry_count())
            .finish()
    }
}

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match &self.store {
            Store::Sqlite(s) => s.create(record).await,
            Store::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        if self.unchanged_since_loaded(record) {
            return Ok(());
        }
        match &self.store {
            Store::Sqlite(s) => s.save(record).await,
            Store::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let record = match &self.store {
            Store::Sqlite(s) => s.load(id).await,
            Store::Postgres(s) => s.load(id).await,
        }?;
        if let Some(record) = &record {
            self.loaded.insert(*id, Arc::new(record.clone()));
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.loaded.remove(id);
        match &self.store {
            Store::Sqlite(s) => s.delete(id).await,
            Store::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for Sessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match &self.store {
            Store::Sqlite(s) => s.delete_expired().await,
            Store::Postgres(s) => s.delete_expired().await,
        }
    }
}
