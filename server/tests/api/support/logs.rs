//! The logs of a test's server, captured for asserting on (nothing above WARN, say).

use std::sync::Arc;

/// What the tests' server wrote to its logs, for as long as this is kept (on this thread: a
/// `#[tokio::test]` runs the server it spawned on its own thread).
pub struct CapturedLogs {
    text: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl CapturedLogs {
    /// Every log line at or above `level` so far.
    pub fn at_least(&self, level: tracing::Level) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned();
        text.lines()
            .filter(|line| {
                line.split_whitespace()
                    .next()
                    .and_then(|word| word.parse::<tracing::Level>().ok())
                    .is_some_and(|found| found <= level)
            })
            .map(str::to_owned)
            .collect()
    }
}

/// Starts capturing the logs of everything that runs on this thread.
pub fn capture_logs() -> CapturedLogs {
    #[derive(Clone)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let text = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Sink(text.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .with_writer(move || sink.clone())
        .finish();
    CapturedLogs {
        text,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}
