//! What the server is running with: the page uses it to say whether payments are simulated.

use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemStatus {
    pub version: String,
    /// True when payments go through the offline Stripe simulator.
    pub payments_simulated: bool,
    /// `sqlite` or `postgres`.
    pub database: String,
}

#[server(prefix = "/api", endpoint = "status", input = GetUrl)]
pub async fn service_status() -> Result<SystemStatus, ServerFnError> {
    let state = expect_context::<crate::state::AppState>();
    Ok(SystemStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        payments_simulated: state.config.payments_simulated(),
        database: state.config.database.backend_name().to_owned(),
    })
}
