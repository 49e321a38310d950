//! Builds the application: state, routes, layers and the listener.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use app::state::{AppState, Limits};
use app::{App, shell};
use axum::Router;
use axum::routing::{get, post};
use billing::catalog::Catalog;
use billing::clock::{Clock, SystemClock};
use billing::config::{Config, RateLimitBackend};
use billing::device_cookie::DeviceCookies;
use billing::fulfilment::Fulfilment;
use billing::local_secret::ServerSecrets;
use billing::rate_limit::{DatabaseLimiter, MemoryLimiter, Quota, RateLimiter};
use billing::store::{self, Store, StoreError};
use billing::stripe::live::LiveGateway;
use billing::stripe::simulated::Simulator;
use billing::stripe::{GatewayError, StripeGateway};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use url::Url;

use crate::csrf::{self, SiteOrigin};
use crate::demo;
use crate::observability;
use crate::request_body;
use crate::routes::simulator::SimulatorPages;
use crate::routes::{consume, health, tokens, webhook};
use crate::security_headers;
use crate::session::Sessions;

/// The largest request body accepted anywhere (the webhook's own limit is the same).
const MAX_REQUEST_BYTES: usize = webhook::MAX_BODY_BYTES;

/// How often idle rate-limit keys are forgotten.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(300);

/// How often the inbox is swept for held-back events whose purchase has been credited.
const RELEASE_PERIOD: Duration = Duration::from_secs(60);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database: {0}")]
    Database(#[from] StoreError),
    #[error("cannot open the session store: {0}")]
    Sessions(#[from] sqlx::Error),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("cannot read or make the secrets in the data folder: {0}")]
    Secrets(std::io::Error),
    #[error("cannot set up Stripe: {0}")]
    Stripe(#[from] GatewayError),
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: Shutdown,
}

/// Tells long-lived responses (the balance streams) that the server is stopping, so that a
/// graceful shutdown waits only for real work in flight (a webhook being applied).
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Sender<bool>);

impl Shutdown {
    pub fn watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.0.subscribe()
    }
}

impl Application {
    /// Opens (and migrates) the database, binds `leptos_options.site_addr` (port 0 picks a
    /// free port) and prepares the routes.
    pub async fn build(
        config: Config,
        leptos_options: LeptosOptions,
    ) -> Result<Self, StartupError> {
        Self::build_with_clock(config, leptos_options, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the clock the rate limits read (tests move it).
    pub async fn build_with_clock(
        config: Config,
        leptos_options: LeptosOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        Self::build_listening(None, config, leptos_options, clock).await
    }

    /// As [`Application::build_with_clock`], serving on `listener` (bound already, so a test
    /// keeps the port it took) instead of binding `leptos_options.site_addr`.
    pub async fn build_on(
        listener: TcpListener,
        config: Config,
        leptos_options: LeptosOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        Self::build_listening(Some(listener), config, leptos_options, clock).await
    }

    async fn build_listening(
        listener: Option<TcpListener>,
        config: Config,
        leptos_options: LeptosOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        // Installed before anything is counted.
        observability::prometheus();
        let store: Arc<dyn Store> = Arc::new(store::connect(&config.database).await?);
        tracing::info!(backend = store.backend().name(), "database ready");
        let sessions = Sessions::connect(&config.database).await?;
        if config.demo_accounts {
            demo::seed_when_empty(&*store).await?;
        }

        let secrets = ServerSecrets::load(&config).map_err(StartupError::Secrets)?;
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(leptos_options.site_addr).await?,
        };
        let mut catalog =
            Catalog::from_prices(&config.prices).with_trial_allowance(config.trial_allowance);
        let (gateway, simulator): (Arc<dyn StripeGateway>, _) = match &config.stripe {
            Some(keys) => (
                Arc::new(LiveGateway::new(&keys.secret_key, keys.api_base.as_ref())?),
                None,
            ),
            None => {
                tracing::warn!("no STRIPE_SECRET_KEY: payments are simulated");
                let sim = Arc::new(Simulator::new(
                    config.site_url.clone(),
                    secrets.webhook.expose(),
                    catalog
                        .price_ids()
                        .map(|(product, id)| (product, id.to_owned()))
                        .collect::<Vec<_>>(),
                ));
                (sim.clone() as Arc<dyn StripeGateway>, Some(sim))
            }
        };
        show_prices(&mut catalog, &*gateway).await;
        let catalog = Arc::new(catalog);
        let state = AppState {
            leptos_options,
            limits: limits(&config, &store, &clock),
            fulfilment: Arc::new(Fulfilment::new(
                store.clone(),
                gateway.clone(),
                catalog.clone(),
            )),
            gateway,
            catalog,
            config: Arc::new(config),
            store,
            clock,
            webhook_secret: secrets.webhook,
            device_cookies: DeviceCookies::new(secrets.device_cookie_key),
        };
        let simulator = simulator.map(|sim| {
            let address = listener
                .local_addr()
                .expect("a bound listener has an address");
            let webhook = Url::parse(&format!(
                "http://{}:{}/api/webhooks/stripe",
                if address.ip().is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    address.ip().to_string()
                },
                address.port()
            ))
            .expect("a valid URL");
            SimulatorPages::new(sim, webhook)
        });
        sessions.spawn_cleanup();
        spawn_housekeeping(state.limits.clone());
        spawn_release_sweep(state.fulfilment.clone());
        let shutdown = Shutdown(tokio::sync::watch::channel(false).0);
        Ok(Self {
            listener,
            router: router(state.clone(), &sessions, simulator, shutdown.clone()),
            state,
            shutdown,
        })
    }

    /// What the routes share; tests reach the store through it.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shutdown = self.shutdown;
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Streams end now; requests in flight (a webhook being applied) finish first.
            let _ = shutdown.0.send(true);
        })
        .await
    }
}

/// The rate limits, in the database (every node shares them) or in this process.
fn limits(config: &Config, store: &Arc<dyn Store>, clock: &Arc<dyn Clock>) -> Limits {
    let make = |name: &'static str, quota: Quota| -> Arc<dyn RateLimiter> {
        match config.rate_limit_backend {
            RateLimitBackend::Database => Arc::new(DatabaseLimiter::new(
                name,
                quota,
                store.clone(),
                clock.clone(),
            )),
            RateLimitBackend::Memory => Arc::new(MemoryLimiter::new(name, quota, clock.clone())),
        }
    };
    let per = |n: u32, period: Duration| Quota {
        burst: NonZeroU32::new(n).expect("a literal above zero"),
        period,
    };
    Limits {
        billing_writes: make(
            "billing",
            Quota::per_minute(config.billing_writes_per_minute),
        ),
        // The success page asks every 3 s while a payment clears: 20 a minute.
        checkout_status: make("checkout-status", per(30, Duration::from_secs(60))),
        login_by_ip: make("login-ip", per(20, Duration::from_secs(60))),
        login_by_account_and_ip: make("login-account-ip", per(10, Duration::from_secs(600))),
        login_by_account: make("login-account", per(100, Duration::from_secs(3600))),
        login_by_device: make("login-device", per(10, Duration::from_secs(600))),
    }
}

/// Asks Stripe what each product costs, for the page; a product without a known price is
/// still sold (Checkout shows the price).
async fn show_prices(catalog: &mut Catalog, gateway: &dyn StripeGateway) {
    let prices: Vec<_> = catalog
        .price_ids()
        .map(|(product, id)| (product, id.to_owned()))
        .collect();
    for (product, id) in prices {
        match gateway.price(&id).await {
            Ok(Some(price)) => catalog.set_price(product, price),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, price = %id, "could not read a price from Stripe"),
        }
    }
}

fn spawn_housekeeping(limits: Limits) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_PERIOD);
        loop {
            tick.tick().await;
            for limiter in limits.all() {
                if let Err(error) = limiter.forget_idle().await {
                    tracing::warn!(%error, "forgetting idle rate-limit keys failed");
                }
            }
        }
    });
}

/// Applies refunds and disputes held back for a purchase whose release was cut short (see
/// `Fulfilment::release_held`). Every node sweeps; applying is idempotent.
fn spawn_release_sweep(fulfilment: Arc<Fulfilment>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELEASE_PERIOD);
        loop {
            tick.tick().await;
            match fulfilment.release_held().await {
                Ok(0) => {}
                Ok(released) => tracing::info!(released, "applied held-back Stripe events"),
                Err(error) => tracing::warn!(%error, "sweeping held-back Stripe events failed"),
            }
        }
    });
}

fn router(
    state: AppState,
    sessions: &Sessions,
    simulator: Option<SimulatorPages>,
    shutdown: Shutdown,
) -> Router {
    let routes = generate_route_list(App);
    let context = state.clone();
    let site = SiteOrigin(state.config.site_url.clone());
    let simulator = simulator.map_or_else(Router::new, SimulatorPages::router);
    // Server functions (and pages) get their bodies read whole first: see `request_body`.
    let pages_and_server_functions = Router::new()
        .leptos_routes_with_context(&state, routes, move || provide_context(context.clone()), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .layer(axum::middleware::from_fn_with_state(
            MAX_REQUEST_BYTES,
            request_body::read_whole,
        ));
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observability::metrics))
        .route("/api/tokens/consume", post(consume::consume))
        .route(webhook::PATH, post(webhook::receive))
        .route("/api/tokens/stream", get(tokens::stream))
        .route("/api/tokens/ledger.csv", get(tokens::export_csv))
        .merge(simulator)
        .merge(pages_and_server_functions)
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(
            {
                let state = state.clone();
                move || provide_context(state.clone())
            },
            shell,
        ))
        // On every route and on the fallback (counted as one `unmatched` route).
        .layer(axum::middleware::from_fn(observability::track_requests))
        .layer(sessions.layer(&state.config))
        .layer(axum::middleware::from_fn_with_state(
            site,
            csrf::same_origin_only,
        ))
        .layer(axum::Extension(shutdown))
        // No request needs more: refuse bigger bodies (413) before anything reads them.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_REQUEST_BYTES,
        ))
        .layer(axum::middleware::from_fn(webhook::count_oversized))
        .with_state(state.clone());
    let router = security_headers::layer(router, &state.config.site_url);
    observability::request_ids(router)
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
