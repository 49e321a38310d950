//! Builds the application: state, routes and the listener.

use std::net::SocketAddr;
use std::sync::Arc;

use app::state::AppState;
use app::{App, shell};
use axum::Router;
use axum::routing::get;
use billing::config::Config;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;

use crate::routes::health;

pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds `leptos_options.site_addr` (port 0 picks a free port) and prepares the routes.
    pub async fn build(config: Config, leptos_options: LeptosOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(leptos_options.site_addr).await?;
        let state = AppState {
            leptos_options,
            config: Arc::new(config),
        };
        Ok(Self {
            listener,
            router: router(state),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
    }
}

fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let context = state.clone();
    Router::new()
        .route("/healthz", get(health::healthz))
        .leptos_routes_with_context(&state, routes, move || provide_context(context.clone()), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
