//! The axum server: start-up, HTTP routes, sessions and operator subcommands.

pub mod accounts;
pub mod allocator;
pub mod background;
pub mod cli;
pub mod commands;
pub mod compression_and_caching;
pub mod csrf;
pub mod deliveries;
pub mod demo;
pub mod error;
pub mod live_balances;
pub mod mail;
pub mod observability;
pub mod request_body;
pub mod routes;
pub mod security_headers;
pub mod session;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod topups;
