//! Stopping: the signals that end the server, and the notice long-lived responses (the balance
//! streams) watch, so that a graceful shutdown waits only for real work in flight (a webhook
//! being applied).

/// Tells long-lived responses that the server is stopping.
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }

    pub fn watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.0.subscribe()
    }

    /// Ends the streams; requests in flight finish.
    pub fn begin(&self) {
        let _ = self.0.send(true);
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
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

#[cfg(test)]
mod tests {
    use super::Shutdown;

    #[tokio::test]
    async fn watchers_hear_that_the_server_stops() {
        let shutdown = Shutdown::new();
        let mut watching = shutdown.watch();
        assert!(!*watching.borrow());
        shutdown.begin();
        watching.changed().await.unwrap();
        assert!(*watching.borrow());
    }
}
