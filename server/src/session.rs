//! Login sessions: tower-sessions with its sqlx store, on the app's own database (the
//! `sessions` table comes with our migrations), so every node sees every session.
//!
//! The cookie is HttpOnly, SameSite=Lax (users come back from Stripe Checkout, a top-level
//! navigation from another site), Secure in production and over https, and expires after a
//! period of inactivity. Expired sessions are deleted in the background.

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

/// The session store of whichever database the app runs on.
#[derive(Debug, Clone)]
pub enum Sessions {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Sessions {
    /// Opens a small pool of the backend's own type (the store needs one) on the same database.
    pub async fn connect(target: &DatabaseTarget) -> Result<Self, sqlx::Error> {
        Ok(match target {
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
                Sessions::Sqlite(
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
                Sessions::Postgres(
                    PostgresStore::new(pool)
                        .with_schema_name("public")
                        .and_then(|store| store.with_table_name(TABLE))
                        .map_err(|e| sqlx::Error::Configuration(e.into()))?,
                )
            }
        })
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
            // signed-in request saves. Anonymous visitors have no session to save.
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

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Sessions::Sqlite(s) => s.create(record).await,
            Sessions::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Sessions::Sqlite(s) => s.save(record).await,
            Sessions::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Sessions::Sqlite(s) => s.load(id).await,
            Sessions::Postgres(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Sessions::Sqlite(s) => s.delete(id).await,
            Sessions::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for Sessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Sessions::Sqlite(s) => s.delete_expired().await,
            Sessions::Postgres(s) => s.delete_expired().await,
        }
    }
}
