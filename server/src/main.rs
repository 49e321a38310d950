use std::process::ExitCode;

use billing::config::Config;
use clap::Parser;
use server::cli::{Cli, Command};
use server::startup::Application;
use server::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let leptos_options = match leptos::config::get_configuration(None) {
                Ok(conf) => conf.leptos_options,
                Err(e) => {
                    eprintln!("error: Leptos settings (LEPTOS_*): {e}");
                    return ExitCode::from(2);
                }
            };
            let app = match Application::build(config, leptos_options).await {
                Ok(app) => app,
                Err(e) => {
                    tracing::error!(error = %e, "could not start");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(address = %app.address(), "listening");
            if let Err(e) = app.run_until_stopped().await {
                tracing::error!(error = %e, "server stopped with an error");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}
