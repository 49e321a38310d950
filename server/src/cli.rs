//! The command line: `server` serves; subcommands are operator tasks.

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
}
