//! Server functions: the HTTP API the page and JSON clients share.

pub mod admin;
pub mod auth;
pub mod billing;
pub(crate) mod codec;
#[cfg(feature = "ssr")]
pub mod guard;
pub mod notices;
pub mod tokens;
pub mod topups;
pub mod wire;
