//! Builds the application: state, routes, layers and the listener.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use app::api::guard::SignedIn;
use app::state::{AppState, Limits};
use app::{App, shell};
use axum::Router;
use billing::catalog::Catalog;
use billing::clock::{Clock, SystemClock};
use billing::config::{Config, RateLimitBackend};
use billing::device_cookie::DeviceCookies;
use billing::fulfilment::Fulfilment;
use billing::local_secret::ServerSecrets;
use billing::rate_limit::{DatabaseLimiter, MemoryLimiter, Quota, RateLimiter};
use billing::store::{self, Store, StoreError};
use billing::stripe::live::LiveGateway;
use billing::stripe::{GatewayError, StripeGateway};
use leptos::prelude::*;
use leptos_axum::{AxumRouteListing, LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;

use crate::accounts::AccountError;
use crate::background;
use crate::compression_and_caching::{self, FrontEndFiles};
use crate::csrf::{self, SiteOrigin};
use crate::deliveries::Deliverer;
use crate::demo;
use crate::error;
use crate::live_balances::LiveBalances;
use crate::mail::{MailError, Mailer};
use crate::observability;
use crate::request_body;
use crate::routes::{consume, consume_batch, health, holds, tokens, webhook};
use crate::security_headers;
use crate::session::Sessions;
use crate::settings::{ServerSettings, Settings};
use crate::shutdown::{self, Shutdown};
use crate::topups::TopUpPayer;

/// The largest request body accepted anywhere (the webhook's own limit is the same) but on
/// the paths of `BODY_LIMITS.larger`.
const MAX_REQUEST_BYTES: usize = webhook::MAX_BODY_BYTES;

const BODY_LIMITS: request_body::BodyLimits = request_body::BodyLimits {
    default: MAX_REQUEST_BYTES,
    larger: &[(consume_batch::PATH, consume_batch::MAX_BODY_BYTES)],
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database: {0}")]
    Database(#[from] StoreError),
    #[error("cannot make the demo accounts: {0}")]
    DemoAccounts(#[from] AccountError),
    #[error("cannot open the session store: {0}")]
    Sessions(#[from] sqlx::Error),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("cannot read or make the secrets in the data folder: {0}")]
    Secrets(std::io::Error),
    #[error("cannot set up Stripe: {0}")]
    Stripe(#[from] GatewayError),
    #[error("no STRIPE_SECRET_KEY, and this build has no simulated Stripe")]
    NoStripe,
    #[error("cannot set up email: {0}")]
    Mail(#[from] MailError),
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: Shutdown,
}

impl Application {
    /// Opens (and migrates) the database, binds `leptos_options.site_addr` (port 0 picks a
    /// free port) and prepares the routes.
    pub async fn build(
        settings: Settings,
        leptos_options: LeptosOptions,
    ) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, leptos_options, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the clock the rate limits read (tests move it).
    pub async fn build_with_clock(
        settings: Settings,
        leptos_options: LeptosOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        Self::build_listening(None, settings, leptos_options, clock).await
    }

    /// As [`Application::build_with_clock`], serving on `listener` (bound already, so a test
    /// keeps the port it took) instead of binding `leptos_options.site_addr`.
    pub async fn build_on(
        listener: TcpListener,
        settings: Settings,
        leptos_options: LeptosOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        Self::build_listening(Some(listener), settings, leptos_options, clock).await
    }

    async fn build_listening(
        listener: Option<TcpListener>,
        settings: Settings,
        leptos_options: LeptosOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let Settings {
            billing: config,
            server,
        } = settings;
        // Installed before anything is counted.
        observability::prometheus();
        // One clock for the whole app: what the store stamps and what its jobs find due agree.
        let store: Arc<dyn Store> = Arc::new(
            store::connect(&config.database)
                .await?
                .with_clock(clock.clone()),
        );
        tracing::info!(backend = store.backend().name(), "database ready");
        let sessions = Sessions::connect(&config.database).await?;
        if server.demo_accounts {
            demo::seed_when_empty(&*store).await?;
        }

        let secrets = ServerSecrets::load(&config, server.device_cookie_key.as_ref())
            .map_err(StartupError::Secrets)?;
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(leptos_options.site_addr).await?,
        };
        let mut catalog = Catalog::from_config(&config);
        let (gateway, stripe_pages) = stripe(&config, &catalog, &secrets, listener.local_addr()?)?;
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
        sessions.spawn_cleanup();
        background::spawn_housekeeping(state.limits.clone());
        background::start_release_sweep(state.fulfilment.clone(), state.store.clone()).await;
        Deliverer::new(state.store.clone(), state.clock.clone()).spawn();
        TopUpPayer::new(
            state.store.clone(),
            state.fulfilment.clone(),
            state.clock.clone(),
        )
        .spawn();
        Mailer::new(
            &server.mail,
            state.config.site.billing_page().as_str(),
            state.store.clone(),
            state.clock.clone(),
        )?
        .spawn();
        let shutdown = Shutdown::new();
        let live = LiveBalances::new(state.store.clone());
        live.clone().spawn(shutdown.clone());
        Ok(Self {
            listener,
            router: router(
                state.clone(),
                &server,
                &sessions,
                stripe_pages,
                shutdown.clone(),
                live,
            ),
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
            shutdown::signal().await;
            // Streams end now; requests in flight (a webhook being applied) finish first.
            shutdown.begin();
        })
        .await
    }
}

/// Stripe: the real one with keys; without them, the simulated one and its pages, in a build
/// that has it (the settings refuse a build without it and without keys).
fn stripe(
    config: &Config,
    catalog: &Catalog,
    secrets: &ServerSecrets,
    address: SocketAddr,
) -> Result<(Arc<dyn StripeGateway>, Router<AppState>), StartupError> {
    match &config.stripe.keys {
        Some(keys) => Ok((
            Arc::new(LiveGateway::new(&keys.secret_key, keys.api_base.as_ref())?),
            Router::new(),
        )),
        #[cfg(feature = "simulator")]
        None => {
            let (simulator, pages) =
                crate::routes::simulator::start(config, catalog, &secrets.webhook, address);
            Ok((simulator, pages))
        }
        #[cfg(not(feature = "simulator"))]
        None => {
            let _ = (catalog, secrets, address);
            Err(StartupError::NoStripe)
        }
    }
}

/// The rate limits, in the database (every node shares them) or in this process.
fn limits(config: &Config, store: &Arc<dyn Store>, clock: &Arc<dyn Clock>) -> Limits {
    let make = |name: &'static str, quota: Quota| -> Arc<dyn RateLimiter> {
        match config.limits.backend {
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
            Quota::per_minute(config.limits.billing_writes_per_minute),
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

/// The Leptos app's routes, found once per process by rendering the app with its resources
/// held back. That hold is one flag for the whole process (`leptos_server`'s
/// `SuppressResourceLoad`): a resource first polled while it is up, by a page rendering for
/// another app in the same process (the server's tests start many), waits forever. So the
/// list is made before any app of the process serves, and never again.
fn app_routes() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

fn router(
    state: AppState,
    server: &ServerSettings,
    sessions: &Sessions,
    stripe_pages: Router<AppState>,
    shutdown: Shutdown,
    live: LiveBalances,
) -> Router {
    let routes = app_routes();
    let context = state.clone();
    let site = SiteOrigin(state.config.site.url.clone());
    // Server functions (and pages) get their bodies read whole first: see `request_body`.
    let pages_and_server_functions = Router::new()
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(context.clone());
                provide_context(SignedIn::default());
            },
            {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .layer(axum::middleware::from_fn_with_state(
            MAX_REQUEST_BYTES,
            request_body::read_whole,
        ));
    let router = Router::new()
        .merge(health::router())
        .merge(observability::router(server.metrics_token.clone()))
        .merge(consume::router())
        .merge(consume_batch::router())
        .merge(holds::router())
        .merge(webhook::router())
        .merge(tokens::router())
        .merge(stripe_pages)
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
        .layer(axum::middleware::from_fn(error::log_causes))
        // On every route and on the fallback (counted as one `unmatched` route).
        .layer(axum::middleware::from_fn(observability::track_requests))
        .layer(sessions.layer(&state.config, server.session_idle_timeout))
        // Outside the sessions: their failure to save is an empty 500.
        .layer(axum::middleware::from_fn(error::api_errors_as_json))
        .layer(axum::middleware::from_fn_with_state(
            site,
            csrf::same_origin_only,
        ))
        .layer(axum::Extension(shutdown))
        .layer(axum::Extension(live))
        // No request needs more: refuse bigger bodies (413) before anything reads them.
        .layer(axum::middleware::from_fn_with_state(
            BODY_LIMITS,
            request_body::limit,
        ))
        .layer(axum::middleware::from_fn(webhook::count_oversized))
        .with_state(state.clone());
    let files = FrontEndFiles::at(&state.leptos_options.site_pkg_dir);
    let router = compression_and_caching::layer(router, files);
    let router = security_headers::layer(router, &state.config.site.url);
    observability::request_ids(router)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Several apps in one process (the server's tests): one starting while another renders.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_render_while_another_app_in_the_process_starts() {
        let data_dir = tempfile::tempdir().unwrap();
        let settings = [
            ("DATA_DIR", data_dir.path().display().to_string()),
            ("DEMO_ACCOUNTS", "false".to_owned()),
        ];
        let settings = Settings::from_lookup(|name| {
            settings
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        })
        .unwrap();
        let leptos_options = LeptosOptions::builder()
            .output_name("billing")
            .site_root("target/site")
            .site_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
            .build();
        let app = Application::build(settings, leptos_options).await.unwrap();
        let login = format!("http://{}/login", app.address());
        tokio::spawn(app.run_until_stopped());

        // What each app does as it starts, over and over, beside the renders below.
        let done = Arc::new(AtomicBool::new(false));
        let starting = std::thread::spawn({
            let done = done.clone();
            let runtime = tokio::runtime::Handle::current();
            move || {
                let _in_runtime = runtime.enter();
                while !done.load(Ordering::Relaxed) {
                    let _ = app_routes();
                }
            }
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut stalled = 0;
        for _ in 0..30 {
            let page = match client.get(&login).send().await {
                Ok(response) => response.text().await,
                Err(error) => Err(error),
            };
            match page {
                Ok(html) => assert!(html.contains("</html>"), "{html}"),
                Err(_) => stalled += 1,
            }
        }
        done.store(true, Ordering::Relaxed);
        starting.join().unwrap();
        assert_eq!(stalled, 0, "renders that never finished");
    }
}
