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
    /// Outgoing webhooks: endpoints for the product's backend, the delivery log, replays.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

#[derive(Debug, Subcommand)]
pub enum StripeCommand {
    /// Lists Stripe's events since a time and applies those missing from the inbox, through
    /// the same code as the webhook (needs STRIPE_SECRET_KEY).
    Reconcile {
        /// How far back: `36h`, `7d` (Stripe keeps 30 days).
        #[arg(long, value_parser = parse_stripe_age)]
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

/// `36h` or `7d`, within the 30 days Stripe keeps events.
fn parse_stripe_age(raw: &str) -> Result<std::time::Duration, String> {
    let age = parse_age(raw)?;
    if age > std::time::Duration::from_secs(30 * 24 * 3600) {
        return Err("Stripe lists the last 30 days of events: from 1h to 30d".into());
    }
    Ok(age)
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
    if hours == 0 {
        return Err("expected at least 1h".into());
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

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Registers an endpoint for events and prints its signing secret (shown this once only).
    Add {
        /// Where events are posted: an http:// or https:// URL.
        #[arg(long)]
        url: String,
        /// Who or what it is, e.g. `backend`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Lists endpoints (never their secrets).
    List,
    /// Stops sending to an endpoint (what is pending for it is not sent).
    Disable {
        /// The endpoint's id, from `webhooks list`.
        id: i64,
    },
    /// The delivery log: the latest attempts, newest first.
    Log {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<i64>,
        /// How many lines.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Sends deliveries to an endpoint again, with three more days of retries: those given
    /// up on (`--failed`), or every one of events since a time (`--since 36h`).
    Replay {
        /// The endpoint's id, from `webhooks list`.
        #[arg(long)]
        endpoint: i64,
        /// Those given up on.
        #[arg(long, conflicts_with = "since")]
        failed: bool,
        /// Events from this long ago on: `36h`, `7d`.
        #[arg(long, value_parser = parse_age)]
        since: Option<std::time::Duration>,
    },
}
