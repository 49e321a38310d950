//! What server functions and routes share, built once at start-up by the server.

use std::sync::Arc;

use axum::extract::FromRef;
use billing::config::Config;
use leptos::prelude::LeptosOptions;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
}
