//! The axum server: start-up, HTTP routes and operator subcommands.

pub mod cli;
pub mod routes;
pub mod startup;
pub mod telemetry;
