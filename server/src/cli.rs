//! The command line: `server` serves; subcommands are operator tasks on the same database.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "server", about = "PromptBloom Billing server", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the site and the API (the default).
    Serve,
    /// User accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Service API keys for `POST /api/tokens/consume`.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Checks the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Stripe events: reconcile with Stripe, list and re-apply unfinished ones.
    #[command(subcommand)]
    Stripe(StripeCommand),
}

#[derive(Debug, Subcommand)]
pub enum StripeCommand {
    /// Lists Stripe's events since a time and applies those missing from the inbox, through
    /// the same code as the webhook (needs STRIPE_SECRET_KEY).
    Reconcile {
        /// How far back: `36h`, `7d` (Stripe keeps 30 days).
        #[arg(long, value_parser = parse_age)]
        since: std::time::Duration,
    },
    /// Re-applies a stored event (after fixing what made it fail). Safe for an event applied
    /// before: nothing changes then.
    Replay {
        /// The event's id, `evt_...`.
        event: String,
    },
    /// Lists events kept but not finished: failed, or held back for their purchase.
    Pending,
}

/// `36h` or `7d`.
fn parse_age(raw: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let count: u64 = number
        .parse()
        .map_err(|_| format!("expected a number of hours or days like 36h or 7d, got `{raw}`"))?;
    let hours = match unit {
        "h" => count,
        "d" => count * 24,
        _ => {
            return Err(format!(
                "expected h or d at the end, like 36h or 7d, got `{raw}`"
            ));
        }
    };
    if hours == 0 || hours > 30 * 24 {
        return Err("Stripe lists the last 30 days of events: from 1h to 30d".into());
    }
    Ok(std::time::Duration::from_secs(hours * 3600))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user (or with --admin, an admin) and prints the password when generated.
    Create {
        #[arg(long)]
        email: String,
        /// Make the account an admin.
        #[arg(long)]
        admin: bool,
        /// The password; read from this environment variable, so it stays out of the shell's
        /// history. Unset: a strong one is generated and printed once.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Creates a key and prints its secret (shown this once only).
    Create {
        /// Who uses the key, e.g. `image-service`.
        #[arg(long)]
        name: String,
    },
    /// Lists keys (never their secrets).
    List,
    /// Revokes a key at once.
    Revoke {
        /// The key's id, from `api-key list`.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Checks that every user's balance equals the sum of their ledger; exits non-zero,
    /// naming the users, on any mismatch.
    Check,
}
