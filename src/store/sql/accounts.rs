//! Users and service API keys.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use crate::api_key::KeyDigest;
use crate::domain::{Email, Role, Timestamp, User, UserId};
use crate::store::{ApiKey, NewUser, StoreError};

const USER_COLUMNS: &str = "id, email, role, created_at";

const API_KEY_COLUMNS: &str = "id, name, prefix, scopes, created_at, revoked_at";

pub(super) async fn create_user(store: &SqlStore, user: NewUser) -> Result<User, StoreError> {
    let now = Timestamp::now();
    let mut tx = store.pool.begin_with(store.backend.begin_write()).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, role, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(user.email.as_str())
    .bind(user.password_hash.as_deref())
    .bind(user.role.as_str())
    .bind(now.as_millis())
    .fetch_one(&mut *tx)
    .await
    .map_err(unique_as_exists)?;
    sqlx::query("INSERT INTO token_balances (user_id, balance, updated_at) VALUES ($1, 0, $2)")
        .bind(id)
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(User {
        id: UserId::new(id)?,
        email: user.email,
        role: user.role,
        created_at: now,
    })
}

pub(super) async fn user_by_id(store: &SqlStore, id: UserId) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id.get())
        .fetch_optional(&store.pool)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) async fn user_by_email(
    store: &SqlStore,
    email: &Email,
) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
    ))
    .bind(email.as_str())
    .fetch_optional(&store.pool)
    .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) async fn credentials(
    store: &SqlStore,
    email: &Email,
) -> Result<Option<(User, Option<String>)>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"
    ))
    .bind(email.as_str())
    .fetch_optional(&store.pool)
    .await?;
    row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
        .transpose()
}

pub(super) async fn replace_password_hash(
    store: &SqlStore,
    user: UserId,
    old: &str,
    new: &str,
) -> Result<bool, StoreError> {
    let replaced =
        sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
            .bind(user.get())
            .bind(old)
            .bind(new)
            .execute(&store.pool)
            .await?;
    Ok(replaced.rows_affected() == 1)
}

pub(super) async fn user_count(store: &SqlStore) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&store.pool)
        .await?)
}

pub(super) async fn create_api_key(
    store: &SqlStore,
    name: &str,
    display_prefix: &str,
    digest: &KeyDigest,
    scopes: &[&str],
) -> Result<ApiKey, StoreError> {
    let now = Timestamp::now();
    let row = sqlx::query(&format!(
        "INSERT INTO api_keys (name, prefix, digest, scopes, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {API_KEY_COLUMNS}"
    ))
    .bind(name)
    .bind(display_prefix)
    .bind(digest.as_str())
    .bind(scopes.join(" "))
    .bind(now.as_millis())
    .fetch_one(&store.pool)
    .await
    .map_err(unique_as_exists)?;
    api_key_from_row(&row)
}

pub(super) async fn active_api_key(
    store: &SqlStore,
    digest: &KeyDigest,
) -> Result<Option<ApiKey>, StoreError> {
    if let Some(key) = store.api_keys.get(digest.as_str()) {
        return Ok(Some(key));
    }
    let row = sqlx::query(&format!(
        "SELECT {API_KEY_COLUMNS}, digest FROM api_keys \
         WHERE digest = $1 AND revoked_at IS NULL"
    ))
    .bind(digest.as_str())
    .fetch_optional(&store.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stored = KeyDigest::from_stored(row.try_get("digest")?);
    if !stored.verifies(digest) {
        return Ok(None);
    }
    let key = api_key_from_row(&row)?;
    store
        .api_keys
        .insert(digest.as_str().to_owned(), key.clone());
    Ok(Some(key))
}

pub(super) async fn revoke_api_key(store: &SqlStore, id: i64) -> Result<bool, StoreError> {
    let result =
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(Timestamp::now().as_millis())
            .execute(&store.pool)
            .await?;
    // Refused on this node from now on; other nodes forget it within the cache's time.
    store.api_keys.invalidate_all();
    Ok(result.rows_affected() == 1)
}

pub(super) async fn api_keys(store: &SqlStore) -> Result<Vec<ApiKey>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id"
    ))
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(api_key_from_row).collect()
}

fn unique_as_exists(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists,
        _ => StoreError::Database(e),
    }
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::new(row.try_get("id")?)?,
        email: Email::parse(&row.try_get::<String, _>("email")?)?,
        role: Role::parse(&row.try_get::<String, _>("role")?)?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn api_key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_prefix: row.try_get("prefix")?,
        scopes: row
            .try_get::<String, _>("scopes")?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(Timestamp::from_millis),
    })
}

/// The active keys this node looked up lately, by digest: every consume call asks for its
/// key, and may be answered from here for [`KEY_CACHE_TTL`]. Revoking a key on this node
/// forgets them all at once; another node forgets it within that time. A digest with no
/// active key is not kept (a key made on another node works at once).
pub(super) type KeyCache = moka::sync::Cache<String, ApiKey>;

/// How long a looked-up key is trusted without asking the database again.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_millis(500);

pub(super) fn key_cache() -> KeyCache {
    moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(KEY_CACHE_TTL)
        .build()
}
