//! Operator subcommands. Each prints for people on stdout and returns the process's exit code.

use std::process::ExitCode;

use billing::api_key::{NewApiKey, SCOPE_CONSUME};
use billing::auth::{self, Password};
use billing::domain::{Email, Role};
use billing::store::{NewUser, Store, StoreError};
use rand::RngCore;

use crate::cli::{ApiKeyCommand, LedgerCommand, UserCommand};

pub async fn user(store: &dyn Store, command: UserCommand) -> Result<ExitCode, StoreError> {
    let UserCommand::Create {
        email,
        admin,
        password_env,
    } = command;
    let Ok(email) = Email::parse(&email) else {
        eprintln!("error: --email: that does not look like an email address");
        return Ok(ExitCode::from(2));
    };
    let (raw, generated) = match password_env {
        Some(var) => match std::env::var(&var) {
            Ok(raw) => (raw, false),
            Err(_) => {
                eprintln!("error: --password-env: the variable {var} is not set");
                return Ok(ExitCode::from(2));
            }
        },
        None => {
            let mut bytes = [0u8; 15];
            rand::rng().fill_bytes(&mut bytes);
            (hex::encode(bytes), true)
        }
    };
    let password = match Password::choose(&raw, &email) {
        Ok(password) => password,
        Err(e) => {
            eprintln!("error: the password is refused: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let hash = auth::hash_password(password)
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let role = if admin { Role::Admin } else { Role::User };
    match store
        .create_user(NewUser {
            email: email.clone(),
            password_hash: Some(hash),
            role,
        })
        .await
    {
        Ok(user) => {
            println!("Created {} {email} (id {}).", role.as_str(), user.id);
            if generated {
                println!("Password (shown once, store it now):");
                println!("{raw}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::AlreadyExists) => {
            eprintln!("error: there is already an account for {email}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e),
    }
}

pub async fn api_key(store: &dyn Store, command: ApiKeyCommand) -> Result<ExitCode, StoreError> {
    match command {
        ApiKeyCommand::Create { name } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 100 {
                eprintln!("error: --name must be 1 to 100 characters");
                return Ok(ExitCode::from(2));
            }
            let made = NewApiKey::generate();
            let key = store
                .create_api_key(name, &made.display_prefix, &made.digest, &[SCOPE_CONSUME])
                .await?;
            println!(
                "Created API key {} ({name}) with scope {SCOPE_CONSUME}.",
                key.id
            );
            println!("Secret (shown once, store it now):");
            println!("{}", made.secret.expose());
            Ok(ExitCode::SUCCESS)
        }
        ApiKeyCommand::List => {
            let keys = store.api_keys().await?;
            if keys.is_empty() {
                println!("No API keys. Create one with `server api-key create --name NAME`.");
            }
            for key in keys {
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {}", at.utc_minutes()),
                    None => "active".to_owned(),
                };
                println!(
                    "{:>4}  {:<24} {}…  {:<16} created {}  {state}",
                    key.id,
                    key.name,
                    key.display_prefix,
                    key.scopes.join(","),
                    key.created_at.utc_minutes()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApiKeyCommand::Revoke { id } => {
            if store.revoke_api_key(id).await? {
                println!("Revoked API key {id}.");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: there is no active API key {id}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

pub async fn ledger(store: &dyn Store, command: LedgerCommand) -> Result<ExitCode, StoreError> {
    match command {
        LedgerCommand::Check => {
            let mismatches = store.audit_balances().await?;
            if mismatches.is_empty() {
                println!("OK: every balance equals the sum of its ledger.");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "MISMATCH: {} user(s) have a balance that disagrees with their ledger:",
                mismatches.len()
            );
            for m in &mismatches {
                let balance = m
                    .balance
                    .map_or_else(|| "no balance row".to_owned(), |b| b.to_string());
                let last = m
                    .last_balance_after
                    .map_or_else(|| "no entries".to_owned(), |b| b.to_string());
                println!(
                    "  user {}: balance {balance}, ledger sum {}, newest balance_after {last}",
                    m.user, m.ledger_sum
                );
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
