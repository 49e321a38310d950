//! Structured logs through `tracing`; `RUST_LOG` picks the level.

use crate::settings::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,server=info,billing=info,app=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests spawn many apps in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
