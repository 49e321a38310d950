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
