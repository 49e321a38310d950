use std::process::ExitCode;

use billing::config::Config;
use clap::Parser;
use server::cli::{Cli, Command};
use server::settings::Settings;
use server::startup::Application;
use server::{commands, telemetry};

fn main() -> ExitCode {
    // SAFETY: the first thing the process does: the runtime's threads do not exist yet.
    unsafe { server::allocator::hold_little() };
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.server.log_format);

    let command = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => return serve(settings).await,
        other => other,
    };
    let config = settings.billing;
    let store = match billing::store::connect(&config.database).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!(
                "error: cannot open the {} database: {e}",
                config.database.backend_name()
            );
            return ExitCode::FAILURE;
        }
    };
    if let Command::Stripe(command) = command {
        return stripe_command(config, store, command).await;
    }
    let outcome = match command {
        Command::Serve | Command::Stripe(_) => unreachable!("handled above"),
        Command::User(command) => commands::user(&store, command)
            .await
            .map_err(|e| e.to_string()),
        Command::ApiKey(command) => commands::api_key(&store, command)
            .await
            .map_err(|e| e.to_string()),
        Command::Ledger(command) => commands::ledger(&store, command)
            .await
            .map_err(|e| e.to_string()),
        Command::Webhooks(command) => commands::webhooks(&store, command)
            .await
            .map_err(|e| e.to_string()),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

async fn stripe_command(
    config: Config,
    store: billing::store::SqlStore,
    command: server::cli::StripeCommand,
) -> ExitCode {
    use std::sync::Arc;

    use billing::catalog::Catalog;
    use billing::fulfilment::Fulfilment;
    use billing::stripe::StripeGateway;
    use billing::stripe::live::LiveGateway;

    let catalog = Arc::new(Catalog::from_config(&config));
    let (gateway, live): (Arc<dyn StripeGateway>, bool) = match &config.stripe.keys {
        Some(keys) => match LiveGateway::new(&keys.secret_key, keys.api_base.as_ref()) {
            Ok(gateway) => (Arc::new(gateway), true),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        #[cfg(feature = "simulator")]
        None => {
            let secret = match billing::local_secret::webhook_secret(&config) {
                Ok(secret) => secret,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let prices = catalog.price_ids().map(|(p, id)| (p, id.to_owned()));
            let simulator = billing::stripe::simulated::Simulator::new(
                config.site.url.clone(),
                secret.expose(),
                prices.collect::<Vec<_>>(),
            );
            (Arc::new(simulator), false)
        }
        #[cfg(not(feature = "simulator"))]
        None => {
            unreachable!("the settings require STRIPE_SECRET_KEY in a build without the simulator")
        }
    };
    let store: Arc<dyn billing::store::Store> = Arc::new(store);
    let fulfilment = Fulfilment::new(store.clone(), gateway.clone(), catalog);
    commands::stripe(&*store, &fulfilment, &*gateway, live, command)
        .await
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })
}

async fn serve(settings: Settings) -> ExitCode {
    let mut leptos_options = match leptos::config::get_configuration(None) {
        Ok(conf) => conf.leptos_options,
        Err(e) => {
            eprintln!("error: Leptos settings (LEPTOS_*): {e}");
            return ExitCode::from(2);
        }
    };
    // The build names the front end's files by their contents and lists the names in
    // `hash.txt` beside this binary: unless LEPTOS_HASH_FILES says otherwise, pages link
    // whatever the build made.
    if std::env::var_os("LEPTOS_HASH_FILES").is_none() {
        leptos_options.hash_files = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join(&*leptos_options.hash_file)))
            .is_some_and(|hashes| hashes.exists());
    }
    let app = match Application::build(settings, leptos_options).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "could not start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(address = %app.address(), "listening");
    // Whatever the log settings, on stdout: started on port 0, a caller reads where it is.
    println!("listening on http://{}", app.address());
    if let Err(e) = app.run_until_stopped().await {
        tracing::error!(error = %e, "server stopped with an error");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
