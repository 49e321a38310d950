//! The Leptos application: one crate compiled twice, for the server (`ssr`) and for the
//! browser (`hydrate`). Pages and components render on both sides; server functions run on
//! the server and are plain HTTP calls from the browser.

pub mod api;
pub mod components;
pub mod content_security_policy;
pub mod error;
pub mod pages;
mod shell;
#[cfg(feature = "ssr")]
pub mod state;

pub use shell::{App, shell};
