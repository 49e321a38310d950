//! Accounts the server makes itself (the demo accounts, `server user create`): the password is
//! hashed, then the user stored. A hashing failure is its own error, never the store's.

use std::future::Future;

use billing::auth::{self, HashError, Password};
use billing::domain::{Email, Role, User};
use billing::store::{NewUser, Store, StoreError};

/// Why an account could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("cannot hash the password: {0}")]
    Hash(HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hashes `password` (argon2id) and stores the account.
pub async fn create(
    store: &dyn Store,
    email: Email,
    password: Password,
    role: Role,
) -> Result<User, AccountError> {
    create_with(store, email, password, role, auth::hash_password).await
}

async fn create_with<H, F>(
    store: &dyn Store,
    email: Email,
    password: Password,
    role: Role,
    hash: H,
) -> Result<User, AccountError>
where
    H: FnOnce(Password) -> F,
    F: Future<Output = Result<String, HashError>>,
{
    let hash = hash(password).await.map_err(AccountError::Hash)?;
    Ok(store
        .create_user(NewUser {
            email,
            password_hash: Some(hash),
            role,
        })
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hashing_failure_is_reported_as_one_and_stores_nothing() {
        let db = billing::testing::sqlite().await;
        let email = Email::parse("ada@example.com").unwrap();
        let password = Password::choose("sunflower-meadow-42", &email).unwrap();
        let error = create_with(&*db.store, email, password, Role::User, |_| async {
            Err(HashError::Task("the blocking pool is shutting down".into()))
        })
        .await
        .unwrap_err();
        assert!(matches!(error, AccountError::Hash(_)), "{error:?}");
        let message = error.to_string();
        assert_eq!(
            message,
            "cannot hash the password: the hashing task stopped: the blocking pool is shutting down"
        );
        assert!(!message.contains("stored data"), "{message}");
        assert_eq!(db.store.user_count().await.unwrap(), 0);
    }
}
