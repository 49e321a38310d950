//! Operator subcommands. Each prints for people on stdout and returns the process's exit code.
//! Outgoing webhooks' are in [`webhooks`].

mod webhooks;

pub use webhooks::webhooks;

use std::process::ExitCode;

use billing::api_key::{NewApiKey, SCOPE_CONSUME};
use billing::auth::Password;
use billing::domain::{Email, Role};
use billing::store::{Store, StoreError};
use rand::RngCore;

use crate::accounts::{self, AccountError};
use crate::cli::{ApiKeyCommand, LedgerCommand, StripeCommand, UserCommand};

pub async fn user(store: &dyn Store, command: UserCommand) -> Result<ExitCode, AccountError> {
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
    let role = if admin { Role::Admin } else { Role::User };
    match accounts::create(store, email.clone(), password, role).await {
        Ok(user) => {
            println!("Created {} {email} (id {}).", role.as_str(), user.id);
            if generated {
                println!("Password (shown once, store it now):");
                println!("{raw}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(AccountError::Store(StoreError::AlreadyExists)) => {
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
            let credits = store.audit_credits().await?;
            if mismatches.is_empty() && credits.is_empty() {
                println!(
                    "OK: every balance equals the sum of its ledger and of its live grants, \
                     and what is held the sum of its open holds."
                );
                return Ok(ExitCode::SUCCESS);
            }
            if !mismatches.is_empty() {
                println!(
                    "MISMATCH: {} user(s) have a balance that disagrees with their ledger:",
                    mismatches.len()
                );
            }
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
            if !credits.is_empty() {
                println!(
                    "MISMATCH: {} user(s) have grants or holds that disagree with their balance:",
                    credits.len()
                );
            }
            for m in &credits {
                println!(
                    "  user {}: balance {}, live grants {}, held {}, open holds {}",
                    m.user, m.balance, m.grants_remaining, m.held, m.open_holds
                );
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Stripe reconciliation and re-application. `fulfilment` is built on the live gateway when
/// keys are set; `live` says whether it was.
pub async fn stripe(
    store: &dyn Store,
    fulfilment: &billing::fulfilment::Fulfilment,
    gateway: &dyn billing::stripe::StripeGateway,
    live: bool,
    command: StripeCommand,
) -> Result<ExitCode, String> {
    use billing::domain::Timestamp;
    use billing::fulfilment::Outcome;

    match command {
        StripeCommand::Reconcile { since } => {
            if !live {
                return Err(
                    "reconciliation asks Stripe for its events: set STRIPE_SECRET_KEY \
                            (the simulator's events live in the server process)"
                        .into(),
                );
            }
            let from = Timestamp::from_millis(
                Timestamp::now().as_millis() - i64::try_from(since.as_millis()).unwrap_or(0),
            );
            let events = gateway
                .events_since(from, &|read| {
                    eprintln!("  read {read} event(s) from Stripe")
                })
                .await
                .map_err(|e| e.to_string())?;
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            let known = store.inbox_known(&ids).await.map_err(|e| e.to_string())?;
            let missing: Vec<_> = events.iter().filter(|e| !known.contains(&e.id)).collect();
            println!(
                "Stripe lists {} event(s) since {}; {} missing from the inbox.",
                events.len(),
                from.utc_minutes(),
                missing.len()
            );
            let mut failed = 0;
            for event in missing {
                match fulfilment.receive(&event.payload).await {
                    Ok(outcome) => {
                        if matches!(outcome, Outcome::Failed(_)) {
                            failed += 1;
                        }
                        println!("  {}: {}", event.id, describe(&outcome));
                    }
                    Err(e) => {
                        failed += 1;
                        println!("  {}: error: {e}", event.id);
                    }
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        StripeCommand::Replay { event } => match fulfilment.reapply(&event).await {
            Ok(outcome) => {
                println!("{event}: {}", describe(&outcome));
                Ok(if matches!(outcome, Outcome::Failed(_)) {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                })
            }
            Err(e) => Err(e.to_string()),
        },
        StripeCommand::Pending => {
            let pending = store.inbox_unfinished().await.map_err(|e| e.to_string())?;
            if pending.is_empty() {
                println!("No unfinished events.");
            }
            for event in pending {
                println!(
                    "{}  {:<34} received {}  attempts {}  {}",
                    event.id,
                    event.kind,
                    event.received_at.utc_minutes(),
                    event.attempts,
                    match (&event.awaiting, &event.detail) {
                        (Some(awaiting), _) => format!("waiting for {awaiting}"),
                        (None, Some(detail)) => detail.clone(),
                        (None, None) => "not attempted yet".into(),
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn describe(outcome: &billing::fulfilment::Outcome) -> String {
    use billing::fulfilment::Outcome;
    match outcome {
        Outcome::Credited(entry) => format!(
            "credited {} tokens to user {}",
            entry.delta.get(),
            entry.user_id
        ),
        Outcome::Reversed(entry) => format!(
            "reversed {} tokens of user {}",
            -entry.delta.get(),
            entry.user_id
        ),
        Outcome::AlreadyApplied => "already applied".into(),
        Outcome::Covered => "nothing left to reverse".into(),
        Outcome::Recorded(what) => format!("recorded ({what})"),
        Outcome::Ignored(why) => format!("ignored ({why})"),
        Outcome::Deferred(awaiting) => format!("held back until {awaiting} is credited"),
        Outcome::Failed(why) => format!("FAILED: {why}"),
    }
}
