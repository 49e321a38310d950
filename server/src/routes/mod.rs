//! HTTP routes that are not server functions.

pub mod consume;
pub mod consume_batch;
pub mod health;
pub mod holds;
pub mod service;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod tokens;
pub mod webhook;
