//! Demo accounts for development: with an empty database, a user and an admin whose
//! credentials are printed at start-up. Never in production (the settings refuse it).

use billing::auth::Password;
use billing::domain::{Email, Role};
use billing::store::{Store, StoreError};

use crate::accounts::{self, AccountError};

const ACCOUNTS: [(&str, &str, Role); 2] = [
    ("demo@promptbloom.test", "sunflower-meadow-42", Role::User),
    ("admin@promptbloom.test", "orchard-lantern-97", Role::Admin),
];

pub async fn seed_when_empty(store: &dyn Store) -> Result<(), AccountError> {
    if store.user_count().await? > 0 {
        return Ok(());
    }
    let mut lines = Vec::new();
    for (address, password, role) in ACCOUNTS {
        let email = Email::parse(address).expect("a valid literal email");
        let chosen = Password::choose(password, &email).expect("the demo password passes");
        match accounts::create(store, email, chosen, role).await {
            // Another node seeded it first.
            Ok(_) | Err(AccountError::Store(StoreError::AlreadyExists)) => {}
            Err(e) => return Err(e),
        }
        lines.push(format!(
            "  {:<6} {address}  password: {password}",
            role.as_str()
        ));
    }
    println!(
        "Development demo accounts (DEMO_ACCOUNTS=false turns this off):\n{}",
        lines.join("\n")
    );
    Ok(())
}
