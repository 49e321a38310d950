//! Users and purchases made straight in the store, for tests that need them as a given.

use crate::domain::{
    Email, IdempotencyKey, LedgerEntry, Reason, Role, Source, Tokens, User, UserId,
};
use crate::ledger::Posting;
use crate::store::{NewUser, Store, StoreError};

/// A user to create: `FakeUser::new("ada@example.com").admin().create(store)`.
#[derive(Debug, Clone)]
pub struct FakeUser {
    email: Email,
    role: Role,
    password_hash: Option<String>,
}

impl FakeUser {
    pub fn new(email: &str) -> Self {
        Self {
            email: Email::parse(email).expect("a test email"),
            role: Role::User,
            password_hash: None,
        }
    }

    pub fn admin(mut self) -> Self {
        self.role = Role::Admin;
        self
    }

    /// With this argon2 hash, so the user can log in.
    pub fn password_hash(mut self, hash: &str) -> Self {
        self.password_hash = Some(hash.to_owned());
        self
    }

    /// With this argon2 hash when there is one (a password the caller may or may not have).
    pub fn maybe_password_hash(mut self, hash: Option<&str>) -> Self {
        self.password_hash = hash.map(str::to_owned);
        self
    }

    pub async fn create(self, store: &dyn Store) -> User {
        self.try_create(store).await.expect("the test user is new")
    }

    /// As [`FakeUser::create`], answering the store's refusal (an email already taken).
    pub async fn try_create(self, store: &dyn Store) -> Result<User, StoreError> {
        store
            .create_user(NewUser {
                email: self.email,
                password_hash: self.password_hash,
                role: self.role,
            })
            .await
    }
}

/// `tokens` bought by `user`, as a paid Checkout session credits them (`key` names it).
pub async fn paid_purchase(store: &dyn Store, user: UserId, tokens: i64, key: &str) -> LedgerEntry {
    store
        .post(Posting::credit(
            user,
            Tokens::new(tokens).expect("a test amount"),
            Source::StripeCheckout,
            Reason::parse("Test purchase").expect("a valid reason"),
            IdempotencyKey::scoped("stripe:checkout", key).expect("a valid key"),
        ))
        .await
        .expect("the purchase posts")
        .entry
}

/// The user's balance, in tokens.
pub async fn balance(store: &dyn Store, user: UserId) -> i64 {
    store.balance(user).await.expect("the user exists").get()
}
