//! The Leptos application: one crate compiled twice, for the server (`ssr`) and for the
//! browser (`hydrate`). The server renders every page; the browser takes over only the islands
//! (`#[island]`: the billing page's parts, the admin tools, the account forms). Server functions
//! run on the server and are plain HTTP calls from the browser.

// The server's HTML and the browser's hydration must be built alike, or the page cannot be
// hydrated: `.cargo/config.toml` gives every build `erase_components`. A `RUSTFLAGS` variable or
// a `target.<triple>.rustflags` setting elsewhere replaces it, for one side only perhaps.
#[cfg(not(any(erase_components, doc, doctest)))]
compile_error!(
    "build with `--cfg erase_components` (.cargo/config.toml): RUSTFLAGS or a target's rustflags replaced it"
);

pub mod api;
pub mod components;
pub mod content_security_policy;
pub mod error;
pub mod pages;
mod shell;
#[cfg(feature = "ssr")]
pub mod state;

pub use shell::{App, shell};
