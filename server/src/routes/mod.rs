//! HTTP routes that are not server functions.

pub mod health;
