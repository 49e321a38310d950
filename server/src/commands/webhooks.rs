//! `server webhooks ...`: the endpoints events go to, the delivery log, and replays.

use std::process::ExitCode;

use billing::domain::Timestamp;
use billing::outbox::new_endpoint_secret;
use billing::store::{ReplayScope, Store, StoreError};

use crate::cli::WebhooksCommand;

pub async fn webhooks(store: &dyn Store, command: WebhooksCommand) -> Result<ExitCode, StoreError> {
    match command {
        WebhooksCommand::Add { url, description } => {
            let parsed = url::Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"));
            if parsed.is_none() {
                eprintln!("error: --url: expected an http:// or https:// URL, got `{url}`");
                return Ok(ExitCode::from(2));
            }
            let secret = new_endpoint_secret();
            let endpoint = store.add_endpoint(&url, &secret, &description).await?;
            println!("Registered endpoint {} for {url}.", endpoint.id);
            println!("Signing secret (shown once, store it where the receiver reads it):");
            println!("{}", secret.expose());
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::List => {
            let endpoints = store.endpoints().await?;
            if endpoints.is_empty() {
                println!("No endpoints.");
            }
            for e in endpoints {
                let state = match e.disabled_at {
                    Some(at) => format!("disabled {}", at.utc_minutes()),
                    None => "active".to_owned(),
                };
                println!(
                    "{:>4}  {}  {}  since {}  {}",
                    e.id,
                    e.url,
                    state,
                    e.created_at.utc_minutes(),
                    e.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::Disable { id } => {
            if store.disable_endpoint(id).await? {
                println!("Endpoint {id} disabled.");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: no active endpoint {id}");
                Ok(ExitCode::FAILURE)
            }
        }
        WebhooksCommand::Log { endpoint, limit } => {
            let lines = store.delivery_log(endpoint, limit.clamp(1, 10_000)).await?;
            if lines.is_empty() {
                println!("No attempts yet.");
            }
            for a in lines {
                println!(
                    "{}  endpoint {}  evt_{} {:<22} user {}  {}  {} ms  {}",
                    a.at.utc_minutes(),
                    a.endpoint,
                    a.event,
                    a.kind.as_str(),
                    a.user,
                    a.status.map_or("no answer".to_owned(), |s| s.to_string()),
                    a.duration_ms,
                    match &a.error {
                        Some(error) =>
                            format!("{error} (the delivery is {} now)", a.state.as_str()),
                        None => format!("accepted (the delivery is {} now)", a.state.as_str()),
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::Replay {
            endpoint,
            failed,
            since,
        } => {
            let now = Timestamp::now();
            let scope = match (failed, since) {
                (true, _) => ReplayScope::Failed,
                (false, Some(age)) => ReplayScope::Since(Timestamp::from_millis(
                    now.as_millis() - age.as_millis() as i64,
                )),
                (false, None) => {
                    eprintln!("error: say which: --failed, or --since 36h");
                    return Ok(ExitCode::from(2));
                }
            };
            let again = store.replay_deliveries(now, endpoint, scope).await?;
            println!("{again} deliveries to endpoint {endpoint} will be sent again.");
            Ok(ExitCode::SUCCESS)
        }
    }
}
